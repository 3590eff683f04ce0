"""``biofeedback history``: the list of recorded sessions and their trends across weeks."""

from __future__ import annotations

import sys
from pathlib import Path

from biofeedback.errors import BiofeedbackError, ParameterError

DESCRIPTION = """\
List the recorded sessions of a user (or of every user) with their trend
metrics: resting tone, spasms per relax minute, time to relax after a spasm
and endurance mean; write history.csv, trends.png (trends across weeks) and
history.html into the output folder. Each session's metrics are cached in
its folder (summary.json) and computed again only when the session changes.
Interrupted or repaired sessions are marked with *.

Sessions are looked for in $BIOFEEDBACK_HOME/sessions (default
~/.local/share/biofeedback/sessions), one folder per user.

example:
  biofeedback history --user anna
  biofeedback history --user anna --out ~/anna-history
"""


def register(sub, formatter_class):
    p = sub.add_parser("history", help="list recorded sessions and plot their trends across weeks",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--user", default=None, metavar="NAME", help="only this user's sessions (default: every user)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for history.csv, trends.png and history.html "
                        "(default: <sessions root>/<user>/history, or <sessions root>/history for every user)")
    p.add_argument("--root", default=None, metavar="DIR", help="sessions root (default: see above)")
    p.add_argument("--no-cache", action="store_true", help="compute every session's metrics again")
    p.add_argument("--no-plots", action="store_true", help="only print the table (no files written)")
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.session.history import collect_history, format_table, list_users, sessions_root, write_history

    root = Path(args.root).expanduser() if args.root else sessions_root()
    users = list_users(root)
    if args.user is not None and args.user not in users:
        known = ", ".join(users) if users else "none yet"
        raise ParameterError("--user", f"a user with recorded sessions under {root} (known: {known})", args.user)
    if not users:
        print(f"biofeedback history: no sessions recorded yet under {root}", file=sys.stderr)
        return 0
    entries = collect_history(root, args.user, use_cache=not args.no_cache)
    print(format_table(entries))
    for e in entries:
        if e.error:
            print(f"biofeedback history: {e.folder}: not summarised: {e.error}", file=sys.stderr)
    if args.no_plots:
        return 0
    from biofeedback.session.report import require_matplotlib

    require_matplotlib()
    out = Path(args.out).expanduser() if args.out else (root / args.user / "history" if args.user
                                                        else root / "history")
    if out.exists() and not out.is_dir():
        raise ParameterError("--out", "a folder", f"a file: {out}")
    try:
        paths = write_history(entries, out)
    except OSError as exc:
        raise BiofeedbackError(f"cannot write to {exc.filename or out}: {exc.strerror or exc}") from None
    print(f"wrote {paths['csv']}, {paths['png']} and {paths['html']}")
    return 0
