"""``biofeedback analyze``: detect and classify muscle activity in recordings, write tables."""

from __future__ import annotations

import sys
from pathlib import Path

from biofeedback.commands._common import (
    add_pipeline_arguments, parse_time_range, parse_value_range, settings_from_args,
)
from biofeedback.errors import BiofeedbackError, ParameterError, check_sampling_rate

DESCRIPTION = """\
Analyse recordings with the same pipeline as live feedback and write
DIR/events.csv (one row per event) and DIR/summary.csv (one row per file and
channel). Without --rest, the resting baseline is estimated from the quietest
1 s windows of each recording (those the quality check did not flag).

With a cue track (the cue column of a file written by this program, or
--cue-column), activations are classified: contraction (cued),
failure_to_relax (outlasts its cue), spasm, cramp and twitch (uncued, by
duration); elevated_tone reports a raised resting level. Signal problems are
reported as events of their own kind (electrode_off, saturation, mains,
motion, ecg); activations during electrode_off or motion are dropped, a
channel that is flat or saturated throughout is not analysed.

example:
  biofeedback analyze sample_data/sim_session.csv --out results/
  biofeedback analyze myo.txt --fs 200 --channels '!8' --cue-column 8 --out results/
  biofeedback analyze pelvic.csv --preset pelvic --rest 0:30 --profile anna --out results/
"""

EVENT_COLUMNS = ("file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak")
SUMMARY_COLUMNS = ("file", "channel", "duration_s", "fs_hz", "units", "resting_rms")


def register(sub, formatter_class):
    from biofeedback.detect.calibration import MIN_REST_S
    from biofeedback.detect.classify import ClassifierSettings

    c = ClassifierSettings()
    p = sub.add_parser("analyze", help="detect contractions in recorded files and write summary tables",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (CSV/TXT)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate in Hz when the file has no time column or rate comment")
    p.add_argument("--channels", default=None, metavar="SPEC",
                   help="channels to analyse: names or 0-based columns, ranges 0-7, exclusions !8")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    g = p.add_argument_group("calibration")
    g.add_argument("--rest", default=None, metavar="START:END",
                   help=f"rest period in seconds to calibrate from (at least {MIN_REST_S:g} s, checked for "
                        "quiet); without it, the quietest windows of each recording")
    g.add_argument("--mvc", default=None, metavar="START:END",
                   help="maximum voluntary contraction in seconds (for --mvc-on thresholds)")
    g.add_argument("--profile", default=None, metavar="NAME",
                   help="with --rest: save the calibration under NAME; without: reuse the one saved under NAME "
                        "(folder $BIOFEEDBACK_HOME/profiles or ~/.local/share/biofeedback/profiles)")
    g = p.add_argument_group("cues and classification")
    g.add_argument("--cue-column", default=None, metavar="NAME|INDEX",
                   help="column holding the cue or label of each sample (name or 0-based index)")
    g.add_argument("--rest-labels", default="rest,relax,relaxed,off,0,none,baseline", metavar="LIST",
                   help="cue labels meaning rest (numbers equal to 0 too); every other label means contract")
    g.add_argument("--twitch-max", type=float, default=c.twitch_max_s, metavar="S",
                   help="uncued bursts shorter than this are twitches")
    g.add_argument("--cramp-min", type=float, default=c.cramp_min_s, metavar="S",
                   help="uncued activity this long or longer is a cramp (shorter: spasm)")
    g.add_argument("--relax-grace", type=float, default=c.relax_grace_s, metavar="S",
                   help="activity lasting longer than this after a relax cue is a failure to relax")
    g.add_argument("--tone-factor", type=float, default=c.tone_factor, metavar="X",
                   help="resting envelope above X times the baseline is elevated tone")
    g.add_argument("--tone-min", type=float, default=c.tone_min_s, metavar="S",
                   help="elevated tone must last this long")
    g = p.add_argument_group("signal quality")
    g.add_argument("--adc-range", default=None, metavar="LOW:HIGH",
                   help="ADC limits in the file's units; without it, a rail is where samples pile up at an extreme")
    g.add_argument("--no-quality", action="store_true", help="skip the signal-quality flags")
    add_pipeline_arguments(p)
    p.set_defaults(func=run)


def _options(args, settings):
    """Turn the calibration/classification/quality options into analysis keyword arguments."""
    from biofeedback.detect.calibration import load_calibration
    from biofeedback.detect.classify import ClassifierSettings, CueMap
    from biofeedback.detect.quality import QualitySettings

    kwargs = {
        "rest": parse_time_range(args.rest, "--rest") if args.rest else None,
        "mvc": parse_time_range(args.mvc, "--mvc") if args.mvc else None,
        "classifier": ClassifierSettings(twitch_max_s=args.twitch_max, cramp_min_s=args.cramp_min,
                                         relax_grace_s=args.relax_grace, tone_factor=args.tone_factor,
                                         tone_min_s=args.tone_min),
        "cue_map": CueMap(rest=tuple(t.strip().lower() for t in args.rest_labels.split(",") if t.strip())),
        "quality": not args.no_quality,
    }
    if args.adc_range:
        kwargs["quality_settings"] = QualitySettings(rails=parse_value_range(args.adc_range, "--adc-range"))
    if args.profile and not args.rest:
        if args.mvc:
            raise ParameterError("--mvc", "to be given with --rest (a new calibration)", args.mvc)
        calibration = load_calibration(args.profile)
        if calibration is None:
            raise ParameterError("--profile", f"a saved calibration (none is called {args.profile!r}; "
                                 "give --rest START:END to make one)", args.profile)
        kwargs["calibration"] = calibration
    return kwargs


def analyze_file(path, args, settings, options=None):
    """Analyse one file; returns (result, event rows, summary rows)."""
    from biofeedback.analysis.batch import analyze_stream
    from biofeedback.io.csv_io import iter_csv

    options = options if options is not None else _options(args, settings)
    cue_column = getattr(args, "cue_column", None)
    info, chunks = iter_csv(path, chunk_samples=65536, fs=args.fs, channels=args.channels, cue_column=cue_column)
    result = analyze_stream(info, chunks, settings, **options)
    name = str(path)
    event_rows = [{"file": name, **e.as_row()} for e in result.events]
    return result, event_rows, result.summary_rows(name)


def run(args) -> int:
    from biofeedback.detect.calibration import save_calibration
    from biofeedback.detect.classify import ACTIVATION_KINDS
    from biofeedback.io.tables import write_rows

    settings = settings_from_args(args)
    if args.fs is not None:
        args.fs = check_sampling_rate(args.fs, "--fs")
    options = _options(args, settings)
    if args.profile and args.rest and len(args.files) > 1:
        raise ParameterError("--profile with --rest", "one file (the calibration recording)",
                             f"{len(args.files)} files")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError("--out", "a folder", f"a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    events, summary, failures = [], [], 0
    for path in args.files:
        try:
            result, event_rows, summary_rows = analyze_file(Path(path), args, settings, options)
        except BiofeedbackError as exc:
            failures += 1
            print(f"biofeedback analyze: error: {exc}", file=sys.stderr)
            continue
        for message in result.messages.values():
            print(f"biofeedback analyze: {path}: {message}", file=sys.stderr)
        events.extend(event_rows)
        summary.extend(summary_rows)
        if args.profile and args.rest and result.calibration is not None:
            saved = save_calibration(result.calibration, args.profile)
            if not args.quiet:
                print(f"saved the calibration as profile {args.profile!r} ({saved})")
        if not args.quiet:
            active = [e["channel"] for e in event_rows if e["kind"] in ACTIVATION_KINDS]
            counts = ", ".join(f"{r['channel']}: {active.count(r['channel'])}" for r in summary_rows)
            flags = sorted({e["kind"] for e in event_rows if e["kind"] not in ACTIVATION_KINDS})
            print(f"{path}: {result.duration_s:.1f} s at {result.info.fs:g} Hz, {result.mains_note}; "
                  f"{result.ecg_note}; "
                  f"activations per channel {counts}" + (f"; also {', '.join(flags)}" if flags else ""))
    write_rows(out / "events.csv", events, EVENT_COLUMNS)
    write_rows(out / "summary.csv", summary, SUMMARY_COLUMNS)
    if not args.quiet:
        print(f"wrote {out / 'events.csv'} ({len(events)} events) and {out / 'summary.csv'}")
    return 2 if failures else 0
