"""``biofeedback session``: run a guided protocol, give feedback and record everything."""

from __future__ import annotations

import inspect
import math
import re
import sys
from pathlib import Path

from biofeedback.commands._common import add_pipeline_arguments, settings_from_args
from biofeedback.errors import BiofeedbackError, ParameterError

DESCRIPTION = """\
Run a guided session from a protocol (phases that ask you to relax or to
contract, with a countdown and a target band), give feedback, detect events
against the cues (a contraction during a contract cue is voluntary, a burst
during a relax cue is a spasm) and record everything in a session folder:
raw samples with the cue track, events, phases as run, calibration and
metadata. The folder is private to you (mode 0700), written append-only and
flushed at least every second, so a crash or a power cut loses at most the
last second; `biofeedback repair DIR` closes a session cut short.

Built-in protocols (see --list-protocols): glazer (pelvic-floor assessment),
downtraining (relaxation with a stay-below target), kegel (contract-relax
at %MVC), quick_release (relaxation time). Your own protocol is a TOML file
(format: docs/session_format.md and the built-in files).

If the source disconnects, the protocol pauses while the recording goes on,
and resumes when samples come back; the session notes say what happened.

examples:
  biofeedback session --list-protocols
  biofeedback session --protocol glazer --source sim --headless --speed 0
  biofeedback session --protocol downtraining --source /dev/ttyACM0 --device-protocol bridge
  biofeedback session --protocol my_protocol.toml --user anna
"""

_USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def register(sub, formatter_class):
    p = sub.add_parser("session", help="run a guided protocol (assessment, down-training...) and record it",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--protocol", default=None, metavar="NAME|FILE.toml",
                   help="built-in protocol name, a protocol in your protocols folder, or a TOML file")
    p.add_argument("--list-protocols", action="store_true", help="list the available protocols and exit")
    p.add_argument("--user", default="default", metavar="U", help="whose session this is (sessions are kept per user)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="session folder to create (default: the sessions folder, "
                        "$BIOFEEDBACK_HOME/sessions/USER/DATE-TIME-PROTOCOL)")
    g = p.add_argument_group("source")
    g.add_argument("--source", default="auto", metavar="sim|auto|PORT|FILE",
                   help="sim: the simulator runs the protocol itself; auto: the one recognised sensor, else the "
                        "simulator; a serial port or pyserial URL; or a recording file")
    g.add_argument("--device-protocol", default="auto", metavar="NAME",
                   help="device protocol (bridge, ascii, chords, p2, cyton) or auto")
    g.add_argument("--channels", default=None, metavar="N", help="simulator/device: number of channels")
    g.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate: the simulator's (default 1000), or to state for a device or file")
    g.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="simulator/file pace: 1 real time, 4 four times faster, 0 as fast as possible")
    g.add_argument("--duration-scale", type=float, default=1.0, metavar="X",
                   help="multiply every phase's duration by X (0.1 for a short demo)")
    g.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="simulator: spasm amplitude as SNR over the resting level (default 40 uV bursts)")
    g.add_argument("--spasms", type=int, default=4, metavar="N",
                   help="simulator: spasms injected in the relax phases")
    g.add_argument("--seed", type=int, default=0, help="simulator random seed")
    g = p.add_argument_group("feedback")
    g.add_argument("--headless", action="store_true",
                   help="feedback in the terminal instead of the window (automatic without a display)")
    g.add_argument("--profile", default=None, metavar="NAME",
                   help="use the resting baseline (and MVC) of a saved calibration profile; "
                        "default: calibrate on the protocol's first rest")
    g.add_argument("--calibration-s", type=float, default=8.0, metavar="S",
                   help="without a profile, the first S seconds of rest set the baseline")
    g.add_argument("--quiet", action="store_true", help="headless: no status line, only phases and events")
    add_pipeline_arguments(p)
    p.set_defaults(func=run)


def list_protocols_text() -> str:
    from biofeedback.session.protocol import list_protocols

    lines = []
    for name, where, protocol, error in list_protocols():
        if protocol is None:
            lines.append(f"{name:<16} {where}: cannot be read: {error}")
            continue
        minutes = protocol.duration_s / 60.0
        lines.append(f"{name:<16} {minutes:5.1f} min  {len(protocol.phases):>3} phases  "
                     f"{'' if where == 'built-in' else '[' + where + '] '}{protocol.description}")
    return "\n".join(lines)


def _check_args(args) -> None:
    if not _USER.match(args.user or ""):
        raise ParameterError("--user", "a name of letters, digits, '_', '.' or '-' (at most 64)", args.user)
    if not args.speed >= 0:
        raise ParameterError("--speed", "a number >= 0 (0: as fast as possible)", args.speed)
    if not (args.duration_scale > 0 and math.isfinite(args.duration_scale)):
        raise ParameterError("--duration-scale", "a positive number", args.duration_scale)
    if args.spasms < 0:
        raise ParameterError("--spasms", "a number >= 0", args.spasms)
    if args.seed < 0:
        raise ParameterError("--seed", "a non-negative integer", args.seed)
    if not args.calibration_s > 0:
        raise ParameterError("--calibration-s", "a positive number of seconds", args.calibration_s)
    if args.snr is not None and not math.isfinite(args.snr):
        raise ParameterError("--snr", "a number of dB", args.snr)


def _check_folder(folder: Path) -> None:
    """Fail before the source starts when the session folder cannot be created."""
    import os

    from biofeedback.session.store import SessionStorageError

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ParameterError("--out", "a new or empty folder", str(folder))
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SessionStorageError(f"cannot create the session folder {folder}: {parent} is not writable")


class ProtocolBoundSource:
    """A source that stops when the protocol is over (and says how long it will run)."""

    def __init__(self, source, session, name: str):
        self.inner, self.session, self.name = source, session, name

    @property
    def info(self):
        return self.inner.info

    @property
    def duration_s(self) -> float:
        return self.session.protocol.duration_s

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def open(self):
        self.inner.open()

    def close(self):
        self.inner.close()

    def __iter__(self):
        for chunk in self.inner:
            yield chunk
            if self.session.done(chunk.stop):
                return


def _open_source(args, protocol, say):
    """``(source, name, realtime, source metadata)`` for ``--source``."""
    from biofeedback.session.runner import scenario_for
    from biofeedback.sources.simulator import SimulatorSource

    spec = (args.source or "auto").strip()
    if spec == "auto":
        try:
            from biofeedback.acquisition.discovery import auto_port

            found = auto_port(None if args.device_protocol == "auto" else [args.device_protocol])
            spec = found.port
            args.device_protocol = found.protocol
        except (BiofeedbackError, ImportError) as exc:
            say(f"no sensor found ({str(exc).split(';')[0] or type(exc).__name__}): simulating the session")
            spec = "sim"
    realtime = 0 < args.speed < math.inf
    if spec == "sim":
        n_channels = 1 if args.channels is None else _int_option("--channels", args.channels)
        fs = args.fs or 1000.0
        scenario = scenario_for(protocol, fs, n_channels=n_channels, spasms=args.spasms, spasm_snr_db=args.snr,
                                seed=args.seed, calibration_s=args.calibration_s + 1.0, strict=False)
        placed = sum(1 for e in scenario.events if e.kind == "spasm")
        if placed < args.spasms:
            say(f"only {placed} of {args.spasms} spasms fit in the relax phases")
        source = SimulatorSource(scenario, fs, seed=args.seed, chunk_s=0.02 if realtime else 0.1, speed=args.speed)
        truth = [{"kind": e.kind, "channels": None if e.channels is None else list(e.channels),
                  "onset_s": e.onset_s, "offset_s": e.offset_s, "amplitude_uv": scenario.amplitude_of(e),
                  "cued": e.cued} for e in scenario.events]
        meta = {"kind": "simulator", "description": f"simulated {protocol.name} session", "seed": args.seed,
                "snr_db": args.snr, "rest_rms_uv": scenario.rest_rms_uv, "noise_rms_uv": scenario.noise_rms_uv,
                "truth": truth}
        return source, "simulator", realtime, meta
    if Path(spec).is_file():
        from biofeedback.live.sources import replay_source

        opened = replay_source(spec, speed=args.speed, fs=args.fs, channels=args.channels)
        return opened.source, opened.name, realtime, {"kind": "file", "description": str(Path(spec).resolve())}
    from biofeedback.live.sources import device_source

    channels = None if args.channels is None else _int_option("--channels", args.channels)
    opened = device_source(spec, args.device_protocol, args.fs, channels)
    return opened.source, opened.name, True, {"kind": "serial", "description": spec,
                                              "protocol": args.device_protocol}


def _int_option(name, text) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ParameterError(name, "a number of channels", text) from None
    if value < 1:
        raise ParameterError(name, "at least 1", text)
    return value


def _worker_takes_cue_provider() -> bool:
    try:
        from biofeedback.live.worker import LiveWorker
    except ImportError:  # pragma: no cover
        return False
    return "cue_provider" in inspect.signature(LiveWorker.__init__).parameters


def run(args) -> int:
    if args.list_protocols:
        print(list_protocols_text())
        return 0
    if not args.protocol:
        raise ParameterError("--protocol", "a protocol name or file (see --list-protocols)", None)
    from biofeedback.session.engine import ProtocolSession, TerminalDisplay, run_headless
    from biofeedback.session.protocol import load_protocol
    from biofeedback.session.store import new_session_folder, sessions_root

    _check_args(args)

    def say(text):
        print(text, file=sys.stderr)

    protocol = load_protocol(args.protocol).scaled(args.duration_scale)
    if args.duration_scale != 1:
        say(f"phase durations scaled by {args.duration_scale:g}: the protocol runs {protocol.duration_s:.1f} s")
    settings = settings_from_args(args)
    folder = Path(args.out) if args.out else new_session_folder(sessions_root(), args.user, protocol.name)
    _check_folder(folder)
    source, name, realtime, source_meta = _open_source(args, protocol, say)
    baseline = mvc = None
    if args.profile:
        from biofeedback.live.profile import load_profile, processing_key

        profile = load_profile(args.profile)
        info = getattr(source, "info", None)  # a device's is known once it is opened
        why = "" if profile is None or info is None else \
            profile.mismatch(info.ch_names, info.units, processing_key(settings))
        if profile is None:
            say(f"no profile '{args.profile}': calibrating on the protocol's first rest")
        elif why:
            say(f"profile '{args.profile}' not used: {why}; calibrating on the protocol's first rest")
        else:
            baseline, mvc = profile.baseline(), profile.mvc_array()
    meta = {"user": args.user, "source": source_meta, "settings": settings.as_dict()}
    display = TerminalDisplay(sys.stdout, status_lines=not args.quiet)
    session = ProtocolSession(protocol, folder, meta=meta, on_note=display.note)
    bound = ProtocolBoundSource(source, session, name)

    headless = args.headless or not _window_possible(say)
    if not headless:
        return _run_window(bound, session, settings, args, realtime, name, baseline, mvc)
    print(f"session '{protocol.name}' ({protocol.duration_s / 60:.1f} min, {len(protocol.phases)} phases) "
          f"from {name}; recording in {folder}", flush=True)
    outcome = run_headless(bound, session, settings, calibration_s=args.calibration_s, baseline=baseline,
                           mvc=mvc, display=display)
    _summary(outcome)
    return outcome.exit_code


def _window_possible(say) -> bool:
    try:
        from biofeedback.ui.app import NO_DISPLAY_MESSAGE, display_available, qt_available
    except ImportError:
        return False
    missing = qt_available()
    if missing:
        say(f"{missing}; showing the session in the terminal")
        return False
    if not display_available():
        say(NO_DISPLAY_MESSAGE)
        return False
    if not _worker_takes_cue_provider():
        say("the live window cannot show protocol cues in this version; showing the session in the terminal")
        return False
    return True


def _run_window(source, session, settings, args, realtime, name, baseline, mvc) -> int:  # pragma: no cover - GUI
    from biofeedback.live.worker import LiveWorker
    from biofeedback.ui.app import run_window

    worker = LiveWorker(source, settings, mode="relax", baseline=baseline, mvc=mvc,
                        calibration_s=args.calibration_s, recorder=session, cue_provider=session,
                        block_when_full=not realtime, source_name=name)
    code = run_window(worker, title=f"biofeedback session: {session.protocol.name}")
    if session.writer is not None:
        print(f"session saved in {session.folder}")
        print(f"see the report: biofeedback report {session.folder}")
    return code


def _summary(outcome) -> None:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(outcome.event_counts.items())) or "none"
    print(f"session {outcome.status}: {outcome.duration_s:.1f} s, {outcome.phases} phases; events: {counts}")
    if outcome.message:
        print(f"biofeedback session: {outcome.message}", file=sys.stderr)
    print(f"saved in {outcome.folder}")
    print(f"see the report: biofeedback report {outcome.folder}")
