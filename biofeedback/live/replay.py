"""Replay of a recording as a live stream, with pause, seek and speed.

:class:`ReplaySource` is a :class:`~biofeedback.sources.base.Source` over a
whole :class:`~biofeedback.core.types.Recording` (read from a file in
:meth:`ReplaySource.open`, so on the worker thread, never the GUI's). It
releases chunks at their real-time pace times ``speed`` and can be paused,
resumed and moved to another time from any thread while it streams.

After a seek the next chunk's ``first_sample`` jumps; :attr:`seek_count`
tells consumers that this jump is a seek (restart the filters, clear the
display), not samples lost by a device.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import numpy as np

from biofeedback.core.types import Chunk, Event, Recording
from biofeedback.errors import ParameterError
from biofeedback.sources.base import Pacer, Source


class ReplaySource(Source):
    """Stream a recording in chunks, paced, pausable and seekable.

    Parameters
    ----------
    recording : Recording, optional
        The samples. Give either this or ``loader``.
    loader : callable, optional
        Returns the :class:`Recording`; called in :meth:`open` (on the
        thread that iterates, so file reading stays off the GUI thread).
    speed : float
        1.0 real time, 4.0 four times faster, 0 as fast as possible.
    chunk_s : float
        Length of the chunks in seconds.
    start_s : float
        Where to start, in seconds.
    pause_at_s : float, optional
        Pause by itself once this time is reached (scripted captures).
    name : str
        Shown as the source in the status line.
    clock, sleep : callable
        Replaceable in tests.
    """

    def __init__(self, recording: Recording | None = None, *, loader: Callable[[], Recording] | None = None,
                 speed: float = 1.0, chunk_s: float = 0.02, start_s: float = 0.0,
                 pause_at_s: float | None = None, name: str = "", clock=time.monotonic, sleep=None):
        if (recording is None) == (loader is None):
            raise ParameterError("replay source", "a recording or a loader", "both or neither")
        if not speed >= 0:
            raise ParameterError("--speed", "a number >= 0 (0: as fast as possible)", speed)
        if not chunk_s > 0:
            raise ParameterError("chunk length", "a positive duration in seconds", chunk_s)
        self.recording = recording
        self._loader = loader
        self.speed = float(speed)
        self.chunk_s = float(chunk_s)
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._running = threading.Event()  # set while not paused
        self._running.set()
        self._closed = threading.Event()
        self._seek_to: int | None = None
        self._start_s = float(start_s)
        self._pause_at: int | None = None
        self._pause_at_s = pause_at_s
        self.position = 0  # index of the next sample to release
        self.seek_count = 0
        if recording is not None:
            self._attach(recording)

    # -- Source interface ----------------------------------------------------
    def open(self) -> None:
        self._closed.clear()
        if self.recording is None:
            self._attach(self._loader())

    def close(self) -> None:
        self._closed.set()
        self._running.set()  # wake a paused iterator so it can see the close

    def _attach(self, recording: Recording) -> None:
        self.recording = recording
        self.info = recording.info
        fs = recording.info.fs
        self.chunk_size = max(1, int(round(self.chunk_s * fs)))
        self.position = self._clamp(int(round(self._start_s * fs)))
        if self._pause_at_s is not None:
            self._pause_at = self._clamp(int(round(self._pause_at_s * fs)))
        # Gap events of the recording, by the sample they end at, so each is
        # attached to the first chunk after it (see sources.base).
        self._gaps = sorted((e for e in recording.events if e.kind == "gap"), key=lambda e: e.offset_s)

    # -- control (any thread) ------------------------------------------------
    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds (0 before it is loaded)."""
        return 0.0 if self.recording is None else self.recording.duration_s

    @property
    def position_s(self) -> float:
        """Time of the next sample to be released, in seconds."""
        return 0.0 if self.recording is None else self.position / self.recording.info.fs

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        """Stop releasing chunks until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._running.set()

    def toggle_pause(self) -> bool:
        """Pause or resume; returns True when now paused."""
        if self.paused:
            self.resume()
        else:
            self.pause()
        return self.paused

    def seek(self, time_s: float) -> None:
        """Continue from ``time_s`` seconds (clamped to the recording)."""
        if self.recording is None:
            self._start_s = max(0.0, float(time_s))
            return
        with self._lock:
            self._seek_to = self._clamp(int(round(float(time_s) * self.recording.info.fs)))

    def seek_by(self, delta_s: float) -> None:
        """Move ``delta_s`` seconds forwards (or backwards when negative)."""
        with self._lock:
            base = self._seek_to if self._seek_to is not None else self.position
        fs = self.recording.info.fs if self.recording is not None else 1.0
        self.seek(base / fs + delta_s)

    def pause_at(self, time_s: float | None) -> None:
        """Pause by itself when ``time_s`` is reached (None: never)."""
        self._pause_at_s = time_s
        if self.recording is not None:
            self._pause_at = None if time_s is None else self._clamp(int(round(time_s * self.recording.info.fs)))

    def cues_between(self, start: int, stop: int):
        """Cue values of samples ``start .. stop - 1`` (None without a cue track)."""
        cues = None if self.recording is None else self.recording.cues
        if cues is None:
            return None
        return cues[max(0, start):max(0, stop)]

    @property
    def has_cues(self) -> bool:
        return self.recording is not None and self.recording.cues is not None

    def _clamp(self, index: int) -> int:
        return int(min(max(index, 0), self.recording.n_samples))

    # -- streaming -----------------------------------------------------------
    def _chunks(self) -> Iterator[Chunk]:
        rec = self.recording
        pacer = Pacer(rec.info.fs, self.speed, clock=self._clock,
                      **({} if self._sleep is None else {"sleep": self._sleep}))
        pacer.restart(self.position)
        while not self._closed.is_set():
            with self._lock:
                if self._seek_to is not None:
                    self.position, self._seek_to = self._seek_to, None
                    self.seek_count += 1
                    pacer.restart(self.position)
            if not self._running.is_set():
                # Wait in short steps so a seek or close while paused is seen.
                self._running.wait(0.05)
                if self._running.is_set():
                    pacer.restart(self.position)
                continue
            if self.position >= rec.n_samples:
                return
            start = self.position
            stop = min(rec.n_samples, start + self.chunk_size)
            if self._pause_at is not None and start < self._pause_at < stop:
                stop = self._pause_at  # stop exactly where asked
            pacer.wait_until(stop)
            fs = rec.info.fs
            gaps = tuple(e for e in self._gaps if start / fs < e.offset_s <= stop / fs)
            self.position = stop
            if self._pause_at is not None and start < self._pause_at <= stop:
                # Paused as this chunk is handed over, so whoever reads it
                # already sees the source paused at the asked time.
                self._pause_at = None
                self.pause()
            yield Chunk(np.array(rec.data[:, start:stop]), start, rec.info, events=gaps)


def recording_with_gap_events(recording: Recording) -> Recording:
    """Add ``gap`` events for runs of NaN samples (lost samples in a file).

    Files mark lost samples as empty cells (NaN). The replay shows them as
    a gap and the pipeline gets zeros there (NaN would poison its filters).
    """
    data = recording.data
    missing = np.isnan(data).all(axis=0)
    if not missing.any():
        return recording
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    fs = recording.info.fs
    name = ",".join(recording.info.ch_names)
    gaps = tuple(Event("gap", name, a / fs, b / fs, float("nan"), {"n_samples": int(b - a)})
                 for a, b in zip(starts, stops))
    return Recording(recording.data, recording.info, recording.cues, tuple(recording.events) + gaps)
