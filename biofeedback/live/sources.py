"""Turn ``--source`` into a source: the simulator, a device, or a recording.

Nothing here reads a file or opens a port: sources do that in ``open()``,
which the worker calls on its own thread, so the window appears at once and
a slow disk or device never freezes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biofeedback.core.types import Event, Recording
from biofeedback.errors import BiofeedbackError, ParameterError
from biofeedback.live.replay import ReplaySource, recording_with_gap_events

#: Gaps longer than this (in total) are not filled with NaN when loading a
#: recording: the replay would spend that long showing nothing.
MAX_FILLED_GAP_S = 600.0


@dataclass
class OpenedSource:
    """A source and how to describe it to the user."""

    source: object
    name: str
    realtime: bool  # paced by a device or the clock (drop display blocks rather than wait)
    notice: str = ""


def simulator_source(n_channels: int = 1, fs: float = 1000.0, session_s: float = 120.0, speed: float = 1.0,
                     seed: int = 0, chunk_s: float = 0.01) -> OpenedSource:
    """The built-in scripted session (rest, cued contractions, spasms, a cramp)."""
    from biofeedback.sources.simulator import SimulatorSource, default_session

    if session_s < 30:
        raise ParameterError("--session", "at least 30 seconds (the scripted session needs them)", session_s)
    source = SimulatorSource(default_session(session_s, n_channels), fs, seed=seed, chunk_s=chunk_s, speed=speed)
    source.has_cues = True
    return OpenedSource(source, "simulator", realtime=0 < speed < math.inf)


def load_recording(path, fs=None, channels=None, cue_column=None) -> Recording:
    """Read a recording for replay, with its gaps put back where they were.

    A recording made by ``biofeedback record`` or ``live --record`` keeps a
    ``sample`` index column, and samples a device lost leave a jump there
    and a ``gap`` row in ``FILE.events.csv``. The CSV reader returns the
    received samples back to back; here the gaps from the events file are
    re-inserted as NaN, so the replay's clock matches the session's and the
    window shows the gap (and says so) instead of silently shifting time.
    """
    from biofeedback.io.csv_io import read_csv, read_events

    path = Path(path)
    recording = read_csv(path, fs=fs, channels=channels, cue_column=cue_column)
    events_file = path.with_name(path.stem + ".events.csv")
    events = []
    if events_file.is_file():
        try:
            events = [e for e in read_events(events_file) if e.kind in ("gap", "marker")]
        except BiofeedbackError:
            events = []  # an unreadable sidecar must not stop the replay of the samples
    gaps = sorted((e for e in events if e.kind == "gap"), key=lambda e: e.onset_s)
    fs_ = recording.info.fs
    lost = [int(e.extra.get("n_samples") or round(e.duration_s * fs_)) for e in gaps]
    if gaps and 0 < sum(lost) <= MAX_FILLED_GAP_S * fs_:
        recording = _insert_gaps(recording, gaps, lost)
    elif recording.info.extra.get("index_jumps"):
        # Jumps in the index but no events file: the positions are unknown.
        n = recording.info.extra["index_jumps"]
        recording = Recording(recording.data, recording.info, recording.cues,
                              (Event("gap", ",".join(recording.info.ch_names), 0.0, 0.0, math.nan,
                                     {"n_samples": 0, "note": f"{n} gap(s) of unknown position"}),))
    markers = tuple(e for e in events if e.kind == "marker")
    recording = recording_with_gap_events(recording)
    if markers:
        recording = Recording(recording.data, recording.info, recording.cues, tuple(recording.events) + markers)
    return recording


def _insert_gaps(recording: Recording, gaps, lost) -> Recording:
    fs = recording.info.fs
    n_rows = recording.n_samples
    total = n_rows + sum(lost)
    data = np.full((recording.info.n_channels, total), np.nan)
    cues = None
    if recording.cues is not None:
        cues = np.full(total, "", dtype=recording.cues.dtype)
    row = out = 0
    for gap, n in zip(gaps, lost):
        start = int(round(gap.onset_s * fs))  # stream index where the gap begins
        take = max(0, min(n_rows - row, start - out))
        data[:, out:out + take] = recording.data[:, row:row + take]
        if cues is not None:
            cues[out:out + take] = recording.cues[row:row + take]
        row, out = row + take, out + take + n
    data[:, out:out + n_rows - row] = recording.data[:, row:]
    if cues is not None:
        cues[out:out + n_rows - row] = recording.cues[row:]
    end = out + n_rows - row
    return Recording(data[:, :end], recording.info, None if cues is None else cues[:end], recording.events)


def replay_source(path, *, speed: float = 1.0, fs=None, channels=None, cue_column=None, start_s: float = 0.0,
                  pause_at_s=None, chunk_s: float = 0.02) -> OpenedSource:
    """A recording (or a session folder) replayed in real time (or ``speed`` times faster).

    A session folder (one holding ``session.json``) replays with its cues.
    """
    path = Path(path)
    if path.is_dir() and (path / "session.json").is_file():
        from biofeedback.session.store import load_session

        source = ReplaySource(loader=lambda: load_session(path).recording, speed=speed, chunk_s=chunk_s,
                              start_s=start_s, pause_at_s=pause_at_s, name=path.name)
        return OpenedSource(source, path.name, realtime=0 < speed < math.inf)
    if not path.is_file():
        raise ParameterError("FILE", "an existing recording or session folder", str(path))
    source = ReplaySource(loader=lambda: load_recording(path, fs, channels, cue_column), speed=speed,
                          chunk_s=chunk_s, start_s=start_s, pause_at_s=pause_at_s, name=path.name)
    return OpenedSource(source, path.name, realtime=0 < speed < math.inf)


def device_source(port: str, protocol: str = "auto", fs=None, n_channels=None) -> OpenedSource:
    """A serial device (or a ``sim://`` emulated one)."""
    from biofeedback.acquisition.serial_source import SerialSource

    return OpenedSource(SerialSource(port, protocol, fs=fs, n_channels=n_channels), port, realtime=True)


def resolve_source(spec: str, *, protocol: str = "auto", channels=None, fs=None, session_s: float = 120.0,
                   speed: float = 1.0, seed: int = 0, say=print) -> OpenedSource:
    """``--source`` → an :class:`OpenedSource`.

    ``sim``: the simulator. ``auto``: the one recognised device, else the
    simulator (saying why). An existing file: a replay. Anything else: a
    serial port or pyserial URL.
    """
    spec = (spec or "auto").strip()
    n_sim = _channel_count(channels)
    if spec == "sim":
        return simulator_source(n_sim, fs or 1000.0, session_s, speed, seed)
    if spec == "auto":
        try:
            from biofeedback.acquisition.discovery import auto_port

            found = auto_port(None if protocol == "auto" else [protocol])
        except (BiofeedbackError, ImportError) as exc:
            say(f"no sensor found ({_first_clause(exc)}): using the built-in simulator")
            return simulator_source(n_sim, fs or 1000.0, session_s, speed, seed)
        return device_source(found.port, found.protocol, fs, _device_channels(channels))
    if Path(spec).is_file():
        return replay_source(spec, speed=speed, fs=fs, channels=channels)
    return device_source(spec, protocol, fs, _device_channels(channels))


def _channel_count(channels) -> int:
    if channels is None:
        return 1
    try:
        count = int(channels)
    except (TypeError, ValueError):
        raise ParameterError("--channels", "a number of channels for the simulator (e.g. 4)", channels) from None
    if count < 1:
        raise ParameterError("--channels", "at least 1", channels)
    return count


def _device_channels(channels):
    if channels is None:
        return None
    try:
        return int(channels)
    except (TypeError, ValueError):
        raise ParameterError("--channels", "a number of channels for a device", channels) from None


def _first_clause(exc) -> str:
    text = str(exc)
    return text.split(";")[0] if text else type(exc).__name__
