"""``biofeedback repair``: close a session cut short by a crash, a power cut or a full disk."""

from __future__ import annotations

DESCRIPTION = """\
Close a session folder that was not closed (the program was killed, the
machine lost power, the disk was full). Every complete row is kept; an
incomplete last line (a write cut by the crash) is dropped; the rows of the
phases that ended, and of the phase that was running (cut at the last
sample), are written; the session is marked "repaired" with a note saying
what was done. A session that needs nothing is left as it is.

example:
  biofeedback repair ~/.local/share/biofeedback/sessions/default/20261121-180000-glazer
"""


def register(sub, formatter_class):
    p = sub.add_parser("repair", help="close a session cut short by a crash", description=DESCRIPTION,
                       formatter_class=formatter_class)
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session folder(s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.session.store import repair_session

    for path in args.sessions:
        data, actions = repair_session(path)
        if not actions:
            print(f"{data.path}: nothing to repair (status {data.status}, {data.n_samples} samples)")
            continue
        print(f"{data.path}: repaired")
        for action in actions:
            print(f"  - {action}")
        for warning in data.warnings:
            print(f"  ! {warning}")
    return 0
