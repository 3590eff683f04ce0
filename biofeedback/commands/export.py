"""``biofeedback export``: a session as EDF+ with annotations."""

from __future__ import annotations

DESCRIPTION = """\
Export a session folder for other software. --edf writes EDF+ (one 16-bit
signal per channel; phases, cue changes, events and protocol pauses as
annotations; anonymous header). Needs the optional package edfio:
pip install 'biofeedback[formats]'. The session itself is already open
CSV and JSON (see docs/session_format.md).

example:
  biofeedback export SESSION_DIR --edf session.edf
"""


def register(sub, formatter_class):
    p = sub.add_parser("export", help="export a session (EDF+ with annotations)", description=DESCRIPTION,
                       formatter_class=formatter_class)
    p.add_argument("session", metavar="SESSION", help="session folder")
    p.add_argument("--edf", required=True, metavar="OUT.edf", help="EDF+ file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.session.edf import export_edf
    from biofeedback.session.store import load_session

    session = load_session(args.session)
    for warning in session.warnings:
        print(f"note: {warning}")
    path = export_edf(session, args.edf, overwrite=args.overwrite)
    print(f"wrote {path} ({session.recording.duration_s:.1f} s, {session.recording.info.n_channels} channel(s), "
          f"{len(session.phases)} phases, {len(session.events)} events)")
    return 0
