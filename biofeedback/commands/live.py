"""``biofeedback live``: the live feedback window (or its terminal twin)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from biofeedback.commands._common import add_pipeline_arguments, settings_from_args
from biofeedback.errors import ParameterError

DESCRIPTION = """\
Live surface-EMG feedback: per channel the filtered signal and its envelope
scroll with the resting band and the relax/contract thresholds; a large
panel says RELAXED, CONTRACTING, SPASM or CHECK ELECTRODE against your own
resting baseline, with a level gauge, the level in µV and in % of rest (or
%MVC). Without a sensor it runs the built-in simulator (a scripted session
with cued contractions, uncued spasms and a cramp), so anyone can try it.

Until a baseline exists, the first seconds are used to calibrate (relax).
Press C for a guided calibration (a timed rest, then an optional maximum
contraction with --mvc-s); its result is saved in the profile and reused.

keys: Space pause · C calibrate · M marker · D debug overlay · Q/Esc quit
      (replay: ←/→ seek 5 s, Home to the start)

Without a display (SSH), or with --headless, the same feedback is shown as
a terminal bar.

examples:
  biofeedback live                          # a sensor if one is found, else the simulator
  biofeedback live --source sim --channels 2 --feedback all
  biofeedback live --source /dev/ttyACM0 --protocol bridge --record session.csv
  biofeedback live --source sim --duration 20 --screenshot window.png
  biofeedback live --headless --duration 30
"""


def register(sub, formatter_class):
    p = sub.add_parser("live", help="live feedback window (simulator when no sensor is found)",
                       description=DESCRIPTION, formatter_class=formatter_class)
    g = p.add_argument_group("source")
    g.add_argument("--source", default="auto", metavar="sim|auto|PORT|FILE",
                   help="sim: built-in simulator; auto: the one recognised sensor, else the simulator; "
                        "a serial port or pyserial URL; or a recording file (replayed in real time)")
    g.add_argument("--protocol", default="auto", metavar="NAME",
                   help="device protocol (bridge, ascii, chords, p2, cyton) or auto")
    g.add_argument("--channels", default=None, metavar="SPEC",
                   help="simulator/device: number of channels; file: channel names or columns")
    g.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate: the simulator's (default 1000), or to state for a device or file")
    g.add_argument("--session", type=float, default=120.0, metavar="S",
                   help="length of the simulated session in seconds")
    g.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="simulator/file pace: 1 real time, 4 four times faster")
    g.add_argument("--seed", type=int, default=0, help="simulator random seed")
    add_feedback_arguments(p)
    g = p.add_argument_group("recording")
    g.add_argument("--record", default=None, metavar="FILE.csv",
                   help="write every sample received, and the events, to FILE.csv and FILE.events.csv")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --record file")
    add_pipeline_arguments(p)
    p.set_defaults(func=run)


def add_feedback_arguments(p) -> None:
    """Options shared by ``live`` and ``replay``: feedback, calibration, display."""
    g = p.add_argument_group("feedback")
    g.add_argument("--mode", choices=["relax", "train"], default="relax",
                   help="without a cue track, a burst is a SPASM in relax mode (down-training) "
                        "and CONTRACTING in train mode; with cues, the cues decide")
    g.add_argument("--feedback", default=None, metavar="CHANNELS",
                   help="channels with a big feedback panel: names or 1-based numbers, comma-separated, "
                        "or 'all' (default: the first)")
    g.add_argument("--profile", default="default", metavar="NAME",
                   help="calibration profile to use and to save guided calibrations in")
    g.add_argument("--no-profile", action="store_true", help="ignore saved profiles; do not save one")
    g.add_argument("--calibration-s", type=float, default=8.0, metavar="S",
                   help="rest used to calibrate at the start when no profile fits")
    g.add_argument("--rest-s", type=float, default=30.0, metavar="S",
                   help="length of the guided rest started with C (30-60 s recommended)")
    g.add_argument("--mvc-s", type=float, default=0.0, metavar="S",
                   help="after the guided rest, a maximum contraction of S seconds (0: none)")
    g.add_argument("--sound", choices=["off", "tone", "chime"], default="off",
                   help="tone: pitch and loudness follow the level (silent at rest); chime: on a spasm")
    g = p.add_argument_group("display")
    g.add_argument("--headless", action="store_true",
                   help="terminal bar instead of a window (automatic when no display is available)")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    g.add_argument("--screenshot", default=None, metavar="FILE.png",
                   help="save the window when --duration ends (renders off-screen without a display)")
    g.add_argument("--window", type=float, default=10.0, metavar="S", help="seconds of signal shown")
    g.add_argument("--fps", type=float, default=60.0, help="display frame rate")
    g.add_argument("--debug", action="store_true", help="show the frame-rate and latency overlay")


def run(args) -> int:
    from biofeedback.live.sources import resolve_source

    check_display_arguments(args)
    if args.record:
        check_record_path(args.record, args.overwrite)
    opened = resolve_source(args.source, protocol=args.protocol, channels=args.channels, fs=args.fs,
                            session_s=args.session, speed=args.speed, seed=args.seed,
                            say=lambda text: print(text, file=sys.stderr))
    return run_session(args, opened, title="biofeedback live")


def check_display_arguments(args) -> None:
    if args.duration is not None and not args.duration > 0:
        raise ParameterError("--duration", "a positive number of seconds", args.duration)
    if args.screenshot and args.duration is None:
        raise ParameterError("--screenshot", "--duration S too (the window is saved when it ends)",
                             args.screenshot)
    if args.screenshot and args.headless:
        raise ParameterError("--screenshot", "the window (not --headless)", "--headless")
    if not args.window > 0:
        raise ParameterError("--window", "a positive number of seconds", args.window)
    if not 1 <= args.fps <= 240:
        raise ParameterError("--fps", "a frame rate between 1 and 240", args.fps)
    if not args.speed >= 0:
        raise ParameterError("--speed", "a number >= 0 (0: as fast as possible)", args.speed)


def check_record_path(path, overwrite: bool) -> None:
    from biofeedback.acquisition.recorder import events_path_for

    path = Path(path)
    for target in (path, events_path_for(path)):
        if target.exists() and not overwrite:
            raise ParameterError("--record", "a new file (or --overwrite)", f"{target} exists")
    if not path.parent.exists():
        raise ParameterError("--record", "a file in an existing folder", str(path))


class _Recorder:
    """Adapter from the worker's recorder calls to the acquisition CSV writer."""

    def __init__(self, path, overwrite: bool):
        self.path, self.overwrite, self.writer = path, overwrite, None

    def open(self, info):
        from biofeedback.acquisition.recorder import RecordingWriter

        self.writer = RecordingWriter(self.path, info, overwrite=self.overwrite)

    def write(self, chunk):
        self.writer.write_chunk(chunk)

    def write_events(self, events):
        for event in events:
            self.writer.write_event(event)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _profile_loader(name, settings):
    """Called on the worker thread once the channels are known: reads the profile file."""
    def load(info):
        from biofeedback.errors import BiofeedbackError
        from biofeedback.live.profile import load_profile, processing_key

        try:
            profile = load_profile(name)
        except BiofeedbackError as exc:
            return None, None, f"profile not used: {exc}"
        if profile is None:
            return None, None, f"no profile '{name}' yet: press C for a guided calibration to save one"
        why = profile.mismatch(info.ch_names, info.units, processing_key(settings))
        if why:
            return None, None, f"profile '{name}' not used: {why}; calibrating from your rest"
        return profile.baseline(), profile.mvc_array(), f"using profile '{name}' (calibrated {profile.created})"
    return load


def run_session(args, opened, title: str, cue_provider=None) -> int:
    """Build the worker for ``opened`` and show the window or the terminal feedback.

    ``cue_provider`` is a guided session (see :class:`~biofeedback.live.worker.LiveWorker`):
    its cues and phases are shown in the window or the terminal line.
    """
    from biofeedback.live.sound import open_sound
    from biofeedback.live.worker import LiveWorker
    from biofeedback.ui.app import NO_DISPLAY_MESSAGE, display_available, qt_available

    settings = settings_from_args(args)
    headless = args.headless
    if not headless:
        missing = qt_available()
        if missing:
            if args.screenshot:
                raise ParameterError("--screenshot", "the optional GUI packages", missing)
            print(f"{missing}; showing the feedback in the terminal", file=sys.stderr)
            headless = True
        elif not display_available():
            if args.screenshot:
                os.environ["QT_QPA_PLATFORM"] = "offscreen"  # render the capture without a screen
            else:
                print(NO_DISPLAY_MESSAGE, file=sys.stderr)
                headless = True
    feedback = _feedback_channels(args.feedback)
    sound_channel = 0
    if feedback and feedback != ["all"]:
        digits = re.search(r"(\d+)$", feedback[0])
        sound_channel = int(digits.group(1)) - 1 if digits else 0  # "2" or "ch2": the second channel
    sound = open_sound(args.sound, sound_channel, say=lambda text: print(text, file=sys.stderr))
    profile = None if args.no_profile else args.profile
    if profile:
        from biofeedback.live.profile import profile_path

        profile_path(profile)  # check the name now, with the option named
    worker = LiveWorker(
        opened.source, settings, mode=args.mode, calibration_s=args.calibration_s, profile_name=profile,
        profile_loader=_profile_loader(profile, settings) if profile else None,
        recorder=_Recorder(args.record, args.overwrite) if args.record else None, sound=sound,
        block_when_full=not opened.realtime, source_name=opened.name, cue_provider=cue_provider)
    if headless:
        from biofeedback.live.terminal import run_headless

        return run_headless(worker, duration_s=args.duration, feedback_channels=feedback)
    from biofeedback.ui.app import run_window

    return run_window(worker, duration_s=args.duration, screenshot=args.screenshot, window_s=args.window,
                      fps=args.fps, feedback_channels=feedback, rest_s=args.rest_s, mvc_s=args.mvc_s,
                      debug=args.debug, title=title)


def _feedback_channels(text):
    if not text:
        return None
    if text.strip().lower() == "all":
        return ["all"]
    return [part.strip() for part in text.split(",") if part.strip()]
