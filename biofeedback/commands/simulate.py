"""``biofeedback simulate``: write a simulated recording and its true events."""

from __future__ import annotations

from pathlib import Path

from biofeedback.errors import ParameterError, check_sampling_rate

DESCRIPTION = """\
Simulate a surface-EMG biofeedback session (rest, cued contractions with
ramps, uncued spasms, a cramp) and write it as CSV, with its true events in
FILE.events.csv beside it.

example:
  biofeedback simulate --duration 60 --fs 1000 --out session.csv
"""


def register(sub, formatter_class):
    p = sub.add_parser("simulate", help="write a simulated sEMG recording with its true events",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--duration", type=float, default=60.0, metavar="S", help="length in seconds")
    p.add_argument("--fs", type=float, default=1000.0, metavar="HZ", help="sampling rate in Hz")
    p.add_argument("--channels", type=int, default=1, metavar="N", help="number of channels")
    p.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="set burst amplitudes for this SNR in dB (20 log10 burst RMS / rest RMS)")
    p.add_argument("--mains", type=float, choices=[50.0, 60.0], default=None, help="add mains hum (Hz)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same signal)")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="output CSV file")
    p.set_defaults(func=run)


def events_path(path: Path) -> Path:
    """``session.csv`` -> ``session.events.csv``."""
    return path.with_name(path.stem + ".events.csv")


def run(args) -> int:
    from dataclasses import replace

    from biofeedback.io.csv_io import write_events, write_recording
    from biofeedback.sources.simulator import default_session, simulate

    fs = check_sampling_rate(args.fs, "--fs")
    if not args.duration >= 30:
        raise ParameterError("--duration", "at least 30 s (10 s rest, contractions, spasms, a cramp)", args.duration)
    if args.channels < 1:
        raise ParameterError("--channels", "at least 1", args.channels)
    scenario = default_session(args.duration, n_channels=args.channels)
    if args.snr is not None:
        scenario = scenario.with_snr(args.snr)
    if args.mains is not None:
        scenario = replace(scenario, mains_hz=args.mains, mains_uv=max(scenario.mains_uv, 20.0))
    recording = simulate(scenario, fs, seed=args.seed)
    out = Path(args.out)
    write_recording(out, recording)
    write_events(events_path(out), recording.events)
    print(f"wrote {out} ({recording.duration_s:g} s, {fs:g} Hz, {recording.info.n_channels} channel(s)) "
          f"and {events_path(out)} ({len(recording.events)} true events)")
    return 0
