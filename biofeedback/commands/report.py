"""``biofeedback report``: the clinical report of a recorded session (HTML, optional PDF)."""

from __future__ import annotations

import sys
from pathlib import Path

from biofeedback.errors import ParameterError

DESCRIPTION = """\
Write the report of a session folder: per phase the clinical metrics
(resting mean and variability, flick peak, rise and recovery times, tonic
mean and variability, endurance mean and median-frequency slope, spasms and
time to relax), plots of the session, and the definition of every number.
The page is self-contained (plots embedded) and prints on A4. A session cut
short by a crash is reported for what was saved, with a note saying so.

Needs matplotlib (pip install 'biofeedback[report]').

example:
  biofeedback report ~/.local/share/biofeedback/sessions/anna/20261121-180000-glazer
  biofeedback report SESSION --out glazer.html --pdf
"""


def register(sub, formatter_class):
    p = sub.add_parser("report", help="write the HTML (and PDF) report of a recorded session",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("session", metavar="SESSION", help="session folder (the one holding session.json)")
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help="report file (default: report.html in the session folder)")
    p.add_argument("--pdf", action="store_true", help="also write a PDF beside the HTML (same name, .pdf)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings")
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.session.report import build_report, require_matplotlib
    from biofeedback.session.store import load_session

    require_matplotlib()
    folder = Path(args.session).expanduser()
    session = load_session(folder)
    for warning in session.warnings:
        print(f"biofeedback report: warning: {warning}", file=sys.stderr)
    out = Path(args.out).expanduser() if args.out else Path(session.path) / "report.html"
    if out.exists() and out.is_dir():
        raise ParameterError("--out", "a file name (e.g. report.html)", f"a folder: {out}")
    pdf = out.with_suffix(".pdf") if args.pdf else None
    html_path, pdf_path, analysis = build_report(session, out, pdf=pdf)
    if not args.quiet:
        s = analysis.summary
        status = session.meta.get("status", "unknown")
        print(f"{session.path}: {analysis.signals.duration_s:.1f} s, {len(analysis.phases)} phases, "
              f"status {status}; {s['spasm_count']} spasm(s) in {s['relax_min']:.1f} min of relax cues")
        print(f"wrote {html_path}" + (f" and {pdf_path}" if pdf_path else ""))
    return 0
