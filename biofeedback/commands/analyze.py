"""``biofeedback analyze``: detect contractions in recordings, write tables."""

from __future__ import annotations

import sys
from pathlib import Path

from biofeedback.commands._common import add_pipeline_arguments, parse_time_range, settings_from_args
from biofeedback.errors import BiofeedbackError, ParameterError, check_sampling_rate

DESCRIPTION = """\
Analyse recordings with the same pipeline as live feedback and write
DIR/events.csv (one row per event) and DIR/summary.csv (one row per file and
channel). Without --rest, the resting baseline is estimated from the quietest
1 s windows of each recording.

example:
  biofeedback analyze sample_data/sim_session.csv --out results/
  biofeedback analyze myo.txt --fs 200 --channels '!8' --out results/
"""

EVENT_COLUMNS = ("file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak")
SUMMARY_COLUMNS = ("file", "channel", "duration_s", "fs_hz", "units", "resting_rms")


def register(sub, formatter_class):
    p = sub.add_parser("analyze", help="detect contractions in recorded files and write summary tables",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (CSV/TXT)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate in Hz when the file has no time column or rate comment")
    p.add_argument("--channels", default=None, metavar="SPEC",
                   help="channels to analyse: names or 0-based columns, ranges 0-7, exclusions !8")
    p.add_argument("--rest", default=None, metavar="START:END",
                   help="rest period in seconds for the baseline (default: quietest windows)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_pipeline_arguments(p)
    p.set_defaults(func=run)


def analyze_file(path, args, settings):
    """Analyse one file; returns (event rows, summary rows)."""
    from biofeedback.analysis.batch import analyze_stream
    from biofeedback.io.csv_io import iter_csv

    rest = parse_time_range(args.rest, "--rest") if args.rest else None
    info, chunks = iter_csv(path, chunk_samples=65536, fs=args.fs, channels=args.channels)
    result = analyze_stream(info, chunks, settings, rest=rest)
    name = str(path)
    event_rows = [{"file": name, **e.as_row()} for e in result.events]
    return result, event_rows, result.summary_rows(name)


def run(args) -> int:
    from biofeedback.io.tables import write_rows

    settings = settings_from_args(args)
    if args.fs is not None:
        args.fs = check_sampling_rate(args.fs, "--fs")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError("--out", "a folder", f"a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    events, summary, failures = [], [], 0
    for path in args.files:
        try:
            result, event_rows, summary_rows = analyze_file(Path(path), args, settings)
        except BiofeedbackError as exc:
            failures += 1
            print(f"biofeedback analyze: error: {exc}", file=sys.stderr)
            continue
        events.extend(event_rows)
        summary.extend(summary_rows)
        if not args.quiet:
            counts = ", ".join(f"{r['channel']}: {sum(1 for e in event_rows if e['channel'] == r['channel'])}"
                               for r in summary_rows)
            print(f"{path}: {result.duration_s:.1f} s at {result.info.fs:g} Hz, {result.mains_note}; "
                  f"events per channel {counts}")
    write_rows(out / "events.csv", events, EVENT_COLUMNS)
    write_rows(out / "summary.csv", summary, SUMMARY_COLUMNS)
    if not args.quiet:
        print(f"wrote {out / 'events.csv'} ({len(events)} events) and {out / 'summary.csv'}")
    return 2 if failures else 0
