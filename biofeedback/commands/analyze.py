"""``biofeedback analyze``: detect and classify muscle activity in recordings, write tables."""

from __future__ import annotations

import sys
from pathlib import Path

from biofeedback.commands._common import (
    add_pipeline_arguments, parse_time_range, parse_value_range, settings_from_args,
)
from biofeedback.errors import ParameterError, check_sampling_rate

DESCRIPTION = """\
Analyse recordings with the same pipeline as live feedback and write, in
DIR, events.csv (one row per event), summary.csv (one row per file and
channel), errors.csv (files that failed and why) and report.html (overview
and one plot per file). PATH may be a file, a folder (searched recursively)
or a glob pattern ('data/**/*.edf'), in any mix; the format of each file is
told from its content: CSV/TSV/text, OpenBCI GUI, OpenSignals .txt/.h5,
EDF/EDF+/BDF, WFDB (.hea), WAV, MATLAB .mat, Excel .xlsx. A file that fails
is listed in errors.csv and the others go on; the exit status is 0 when
every file was analysed and 2 when any failed (or a setting is wrong).

Without --rest, the resting baseline is estimated from the quietest 1 s
windows of each recording (those the quality check did not flag).

With a cue track (the cue column of a file written by this program, or
--cue-column), activations are classified: contraction (cued),
failure_to_relax (outlasts its cue), spasm, cramp and twitch (uncued, by
duration); elevated_tone reports a raised resting level. Signal problems are
reported as events of their own kind (electrode_off, saturation, mains,
motion, ecg); activations during electrode_off or motion are dropped, a
channel that is flat or saturated throughout is not analysed.

--fs is the rate of files that do not state one (text without a time column
or rate comment, spreadsheets); formats whose header states the rate keep
it. --channels applies to every file (names or positions among the channels
the format offers: data columns of a CSV, EXG channels of OpenBCI, signals
of EDF/WFDB).

--jobs N analyses N files at once in worker processes; --engine dask
--scheduler tcp://HOST:8786 sends the files to the workers of a running
Dask cluster (pip install 'biofeedback[cluster]'; every worker needs this
biofeedback version and must see the files at the same paths). Results are
the same whichever way the files are run.

example:
  biofeedback analyze sample_data/sim_session.csv --out results/
  biofeedback analyze myo.txt --fs 200 --cue-column 8 --out results/
  biofeedback analyze pelvic.csv --preset pelvic --rest 0:30 --profile anna --out results/
  biofeedback analyze recordings/ 'more/**/*.edf' --jobs 2 --out results/
  biofeedback analyze /shared/study --engine dask --scheduler tcp://10.0.0.5:8786 --json --out results/
"""

EVENT_COLUMNS = ("file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak")
SUMMARY_COLUMNS = ("file", "channel", "duration_s", "fs_hz", "units", "resting_rms")


def register(sub, formatter_class):
    from biofeedback.detect.calibration import MIN_REST_S
    from biofeedback.io.readers.sniff import FORMATS
    from biofeedback.detect.classify import ClassifierSettings

    c = ClassifierSettings()
    p = sub.add_parser("analyze", help="detect contractions in recorded files and write summary tables",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("files", nargs="+", metavar="PATH",
                   help="recordings, folders (searched recursively) or glob patterns, any mix of formats")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate in Hz when the file has no time column or rate comment")
    p.add_argument("--channels", default=None, metavar="SPEC",
                   help="channels to analyse: names or 0-based columns, ranges 0-7, exclusions !8")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true",
                   help="print one JSON summary on stdout and nothing else (for scripts)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    g = p.add_argument_group("files and formats")
    g.add_argument("--format", default=None, choices=sorted(FORMATS),
                   help="read every file as this format instead of detecting it")
    g.add_argument("--sheet", default=None, metavar="NAME|INDEX",
                   help="spreadsheet sheet (default: the first whose name contains 'emg', else the first)")
    g.add_argument("--device", default=None, metavar="MAC|INDEX",
                   help="OpenSignals device of a multi-device file (default: the one with the highest rate)")
    g.add_argument("--mat-variable", default=None, metavar="NAME",
                   help="MATLAB variable holding the signals, e.g. EMG or EMG.channelData (default: found)")
    g.add_argument("--resample", type=float, default=None, metavar="HZ",
                   help="for text files with an irregular time column: sample and hold onto a regular HZ grid")
    g = p.add_argument_group("parallel and cluster runs")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (files analysed at once)")
    g.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local: this machine (--jobs processes); dask: a Dask distributed cluster")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (tcp://host:8786); without it --engine dask starts a local "
                        "cluster of --jobs workers")
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
    g.add_argument("--no-refine", action="store_true",
                   help="keep the live detector's events as they are: do not merge activations of a channel that "
                        "had no relaxation between them (see README, batch refinement)")
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
    if args.no_refine:
        kwargs["refine"] = None
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


def reader_options(args):
    """The reader options given on the command line."""
    from biofeedback.io.readers import ReaderOptions

    resample = getattr(args, "resample", None)
    if resample is not None:
        resample = check_sampling_rate(resample, "--resample")
    return ReaderOptions(fs=args.fs, channels=args.channels, cue_column=getattr(args, "cue_column", None),
                         sheet=getattr(args, "sheet", None), device=getattr(args, "device", None),
                         variable=getattr(args, "mat_variable", None), resample=resample)


def analyze_file(path, args, settings, options=None):
    """Analyse one file; returns (outcome, event rows, summary rows); raises on a bad file."""
    from biofeedback.analysis.runner import JobSpec, analyze_one
    from biofeedback.errors import InputFileError

    options = options if options is not None else _options(args, settings)
    job = JobSpec(settings=settings, analysis=options, reader=reader_options(args), plot=False,
                  format=getattr(args, "format", None))
    outcome = analyze_one(0, str(path), job)
    if not outcome.ok:
        raise InputFileError(str(path), outcome.error)
    return outcome, outcome.event_rows, outcome.summary_rows


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int, enabled: bool):
        import time

        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.start = time.monotonic()
        self._clock = time.monotonic
        self._shown = False

    def _draw(self, name=""):
        if not self.enabled:
            return
        width = 28
        frac = self.done / self.total
        filled = int(round(width * frac))
        elapsed = self._clock() - self.start
        eta = f", ~{elapsed / self.done * (self.total - self.done):.0f} s left" if 0 < self.done < self.total else ""
        text = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} files, {elapsed:.0f} s{eta}"
        if name:
            text += f"  {name[-40:]}"
        sys.stderr.write(text + "\x1b[K")
        sys.stderr.flush()
        self._shown = True

    def clear(self):
        if self.enabled and self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False

    def step(self, name=""):
        self.done += 1
        self._draw(name)

    def say(self, text, err=False):
        self.clear()
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
        self._draw()


def run(args) -> int:
    import json

    import biofeedback
    from biofeedback.analysis.batch_report import write_report
    from biofeedback.analysis.runner import (JobSpec, describe_error, discover, run_batch, tune_allocator,
                                             write_tables)
    from biofeedback.detect.calibration import save_calibration
    from biofeedback.detect.classify import ACTIVATION_KINDS

    settings = settings_from_args(args)
    if args.fs is not None:
        args.fs = check_sampling_rate(args.fs, "--fs")
    if args.jobs < 1:
        raise ParameterError("--jobs", "a positive number of worker processes", args.jobs)
    if args.scheduler and args.engine != "dask":
        raise ParameterError("--scheduler", "to be used with --engine dask", args.scheduler)
    options = _options(args, settings)
    reader = reader_options(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError("--out", "a folder", f"a file: {out}")
    files, problems = discover(args.files, skip_dir=out)
    if args.profile and args.rest and len(files) > 1:
        raise ParameterError("--profile with --rest", "one file (the calibration recording)",
                             f"{len(files)} files")
    out.mkdir(parents=True, exist_ok=True)
    quiet = args.quiet or args.json
    report = not args.no_report
    job = JobSpec(settings=settings, analysis=options, reader=reader, plot=report, format=args.format)
    tune_allocator()  # this process analyses files too (--jobs 1)
    progress = _Progress(len(files), enabled=not quiet and sys.stderr.isatty())
    for item, why in problems:
        if not args.json:
            progress.say(f"biofeedback analyze: error: {item}: {why}", err=True)

    def done(outcome):
        progress.step(outcome.file)
        if not outcome.ok:
            if not args.json:
                progress.say(f"biofeedback analyze: error: {describe_error(outcome.file, outcome.error)}", err=True)
            return
        if not args.json:
            for message in outcome.messages.values():
                progress.say(f"biofeedback analyze: {outcome.file}: {message}", err=True)
        if args.profile and args.rest and outcome.calibration is not None:
            saved = save_calibration(outcome.calibration, args.profile)
            if not quiet:
                progress.say(f"saved the calibration as profile {args.profile!r} ({saved})")
        if not quiet:
            rows = outcome.event_rows
            active = [e["channel"] for e in rows if e["kind"] in ACTIVATION_KINDS]
            counts = ", ".join(f"{r['channel']}: {active.count(r['channel'])}" for r in outcome.summary_rows)
            flags = sorted({e["kind"] for e in rows if e["kind"] not in ACTIVATION_KINDS})
            progress.say(f"{outcome.file}: {outcome.duration_s:.1f} s at {outcome.fs:g} Hz, {outcome.mains_note}; "
                         f"{outcome.ecg_note}; "
                         f"activations per channel {counts}" + (f"; also {', '.join(flags)}" if flags else ""))

    try:
        outcomes = run_batch(files, job, jobs=args.jobs, engine=args.engine, scheduler=args.scheduler, on_done=done)
    finally:
        progress.clear()
    paths = write_tables(out, outcomes, problems, EVENT_COLUMNS, SUMMARY_COLUMNS)
    low, high, order = settings.band()
    if report:
        paths["report"] = write_report(out / "report.html", outcomes, problems, {
            "version": biofeedback.__version__,
            "settings": f"band-pass {low:g}-{'auto' if high is None else f'{high:g}'} Hz (order {order}), "
                        f"mains {settings.mains}, {settings.envelope} envelope {settings.rms_window_s:g} s, "
                        f"preset {settings.preset}",
        })
    failed = [o for o in outcomes if not o.ok]
    n_events = sum(len(o.event_rows) for o in outcomes)
    status = 2 if (failed or problems) else 0
    if args.json:
        summary = {
            "status": status,
            "files": len(files) + len(problems),
            "analysed": len(outcomes) - len(failed),
            "failed": len(failed) + len(problems),
            "events": n_events,
            "outputs": paths,
            "errors": [{"file": f, "error": w} for f, w in problems] + [{"file": o.file, "error": o.error}
                                                                       for o in failed],
            "results": [{"file": o.file, "format": o.format, "duration_s": round(o.duration_s, 6), "fs_hz": o.fs,
                         "channels": list(o.channels), "units": o.units,
                         "events": {k: sum(1 for e in o.event_rows if e["kind"] == k)
                                    for k in sorted({e["kind"] for e in o.event_rows})},
                         "not_analysed": o.messages}
                        for o in outcomes if o.ok],
        }
        print(json.dumps(summary, indent=None, sort_keys=False))
    elif not args.quiet:
        listed = ", ".join(Path(p).name for k, p in paths.items() if k != "events")
        print(f"wrote {paths['events']} ({n_events} events), {listed} in {out}"
              + (f"; {len(failed) + len(problems)} file(s) failed (see errors.csv)" if status else ""))
    return status
