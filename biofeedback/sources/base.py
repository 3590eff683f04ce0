"""The interface every source of samples implements.

A source is a context manager: ``with source:`` opens it (a port, a file, a
simulation) and closes it on leaving. Iterating over an open source yields
:class:`~biofeedback.core.types.Chunk` objects in order. A chunk's
``first_sample`` tells where it belongs in the stream, so a gap (samples a
device lost) is visible as a jump, and the source also attaches an event of
kind ``"gap"`` (``extra={"n_samples": n}``) to the chunk that follows it.

Sources never filter: processing belongs to the pipeline, so that live,
replayed and batch data go through the same stages.
"""

from __future__ import annotations

import time
from typing import Iterator

from biofeedback.core.types import Chunk, StreamInfo


class Source:
    """Base class of all sources (simulator, file replay, serial devices…).

    Subclasses set :attr:`info` (at construction or in :meth:`open`) and
    implement :meth:`_chunks`.
    """

    info: StreamInfo

    def open(self) -> None:
        """Acquire resources (port, file). Called by ``__enter__``."""

    def close(self) -> None:
        """Release resources. Safe to call more than once."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks()

    def _chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError


class Pacer:
    """Sleeps so that samples are released at their real-time rate.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    speed : float
        1.0 for real time, 2.0 for twice as fast; ``0`` or ``inf`` releases
        as fast as possible.
    clock : callable
        Monotonic clock in seconds (replaceable in tests).
    sleep : callable
        Sleep function (replaceable in tests).
    """

    def __init__(self, fs: float, speed: float = 1.0, clock=time.monotonic, sleep=time.sleep):
        self.fs = float(fs)
        self.speed = float(speed)
        self._clock = clock
        self._sleep = sleep
        self._t0 = None
        self._origin = 0

    @property
    def enabled(self) -> bool:
        return 0 < self.speed < float("inf")

    def restart(self, sample_index: int) -> None:
        """Start pacing anew from ``sample_index`` (after a pause or a seek)."""
        self._t0 = None
        self._origin = sample_index

    def wait_until(self, sample_index: int) -> None:
        """Block until ``sample_index`` is due (no-op when pacing is off)."""
        if not self.enabled:
            return
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
            self._origin = sample_index
            return
        due = self._t0 + (sample_index - self._origin) / (self.fs * self.speed)
        if due > now:
            self._sleep(due - now)
