"""The reading thread: bytes from the port into the parser, results into a queue.

The thread does nothing else (no file writing, no processing), so a slow
consumer never makes the serial driver's buffer overflow. The queue is
bounded: when it is full the thread keeps a backlog of its own, and past a
limit drops the oldest samples and reports an ``"overrun"`` with the count
(the indices keep the loss visible).

On an I/O error (cable pulled, device reset) the thread reports a
``"disconnect"``, closes the port and tries to reopen it with exponential
back-off until ``reconnect_timeout``. When the device is back, the sample
index continues where the clock says the stream should be, the samples
missed are reported as a gap (``reason="disconnect"``), and a
``"reconnect"`` is reported.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from biofeedback.acquisition.framing import Gap, ParseResult


@dataclass
class Samples:
    """Samples parsed from one read."""

    result: ParseResult
    arrival_time: float


@dataclass
class Status:
    """Something happened to the link.

    Parameters
    ----------
    kind : str
        ``"disconnect"``, ``"reconnect"``, ``"overrun"`` (samples dropped
        because the queue was full), ``"stall"`` (no bytes for too long),
        ``"no_frames"`` (bytes but no valid frame for too long) or
        ``"gave_up"`` (the device did not come back).
    time : float
        Monotonic time in seconds.
    index : int
        Sample index where it happened (next sample expected).
    n_samples : int
        Samples concerned (overrun), else 0.
    detail : str
        Human-readable detail (the error, bytes seen…).
    """

    kind: str
    time: float
    index: int
    n_samples: int = 0
    detail: str = ""
    recent_bytes: bytes = field(default=b"", repr=False)


class ReaderThread(threading.Thread):
    """Move bytes from a serial port through a parser into a queue.

    Parameters
    ----------
    port : serial.Serial-like
        The open port (``read``, ``in_waiting``, ``close``); its read
        timeout should be short (~0.1 s) so the thread notices ``stop``.
    parser : StreamParser
        The protocol's parser.
    out_queue : queue.Queue
        Bounded queue of :class:`Samples` and :class:`Status` items.
    reconnect : callable or None
        ``reconnect() -> port``: reopen and restart the device; raises on
        failure. ``None`` disables reconnection.
    estimator : RateEstimator
        Receives arrival observations (used to place samples after a
        reconnect).
    nominal_fs : float or None
        Rate used before the estimator has a fit.
    stall_timeout : float
        Seconds without any byte before a ``"stall"`` is reported.
    frames_timeout : float
        Seconds of bytes without a single sample before ``"no_frames"``.
    reconnect_timeout : float
        Seconds to keep trying to reopen the port.
    max_backlog_samples : int
        Samples held while the queue is full before dropping the oldest.
    """

    def __init__(
        self,
        port,
        parser,
        out_queue: queue.Queue,
        *,
        reconnect=None,
        estimator=None,
        nominal_fs=None,
        stall_timeout: float = 5.0,
        frames_timeout: float = 5.0,
        reconnect_timeout: float = 30.0,
        max_backlog_samples: int = 200_000,
        clock=time.monotonic,
    ):
        super().__init__(name="biofeedback-serial-reader", daemon=True)
        self.port = port
        self.parser = parser
        self.queue = out_queue
        self.reconnect_fn = reconnect
        self.estimator = estimator
        self.nominal_fs = nominal_fs
        self.stall_timeout = stall_timeout
        self.frames_timeout = frames_timeout
        self.reconnect_timeout = reconnect_timeout
        self.max_backlog_samples = max_backlog_samples
        self.clock = clock
        self.stop_event = threading.Event()
        self.recent = deque(maxlen=64)
        self.overrun_samples = 0
        self.disconnects = 0
        self._backlog = deque()
        self._backlog_samples = 0
        self._pending_overrun = None
        self._last_sample_time = None
        self._last_sample_index = None
        self._resume_from = None

    # -- control ---------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it."""
        self.stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    # -- thread body -------------------------------------------------------------

    def run(self):
        last_bytes = last_samples = self.clock()
        reported_stall = reported_frames = False
        while not self.stop_event.is_set():
            try:
                waiting = self.port.in_waiting
                data = self.port.read(waiting if waiting else 1)
            except Exception as exc:  # noqa: BLE001 - any I/O failure means the link is gone
                if self.stop_event.is_set():
                    break
                if not self._handle_disconnect(exc):
                    break
                last_bytes = last_samples = self.clock()
                reported_stall = reported_frames = False
                continue
            now = self.clock()
            self._flush_backlog()
            if not data:
                if not reported_stall and now - last_bytes > self.stall_timeout:
                    reported_stall = True
                    self._put(Status("stall", now, self.parser.next_index, detail=f"{now - last_bytes:.1f} s"))
                continue
            last_bytes = now
            reported_stall = False
            self.recent.extend(data)
            result = self.parser.feed(data, now)
            if result.n_samples:
                last_samples = now
                reported_frames = False
                if self._resume_from is not None:
                    self._place_after_reconnect(result, now)
                self._last_sample_time = now
                self._last_sample_index = int(result.index[-1])
                if self.estimator is not None:
                    self.estimator.add(int(result.index[-1]), now)
                self._put(Samples(result, now))
            elif result.gaps:
                self._put(Samples(result, now))
            elif not reported_frames and now - last_samples > self.frames_timeout:
                reported_frames = True
                self._put(
                    Status("no_frames", now, self.parser.next_index, detail=f"{now - last_samples:.1f} s",
                           recent_bytes=bytes(self.recent))
                )
        self._flush_backlog(final=True)

    # -- disconnects ---------------------------------------------------------------

    def _handle_disconnect(self, exc) -> bool:
        """Report, reopen with back-off; False if the thread should end."""
        lost_at = self.clock()
        self.disconnects += 1
        try:
            self.port.close()
        except Exception:  # noqa: BLE001
            pass
        self._put(Status("disconnect", lost_at, self.parser.next_index, detail=str(exc) or type(exc).__name__))
        if self.reconnect_fn is None:
            self._put(Status("gave_up", lost_at, self.parser.next_index, detail="reconnection disabled"))
            return False
        delay = 0.2
        while not self.stop_event.is_set():
            if self.clock() - lost_at > self.reconnect_timeout:
                self._put(
                    Status("gave_up", self.clock(), self.parser.next_index,
                           detail=f"the device did not come back within {self.reconnect_timeout:g} s")
                )
                return False
            if self.stop_event.wait(delay):
                return False
            try:
                port = self.reconnect_fn()
            except Exception:  # noqa: BLE001 - still unplugged: try again later
                delay = min(delay * 2, 1.0)
                continue
            self.port = port
            self.parser.reset()
            self._resume_from = self.parser.next_index
            self._put(Status("reconnect", self.clock(), self.parser.next_index))
            return True
        return False

    def _place_after_reconnect(self, result: ParseResult, now: float) -> None:
        """Shift the first samples after a reconnect to where the clock puts them."""
        resume = self._resume_from
        self._resume_from = None
        expected_last = None
        if self.estimator is not None:
            expected_last = self.estimator.index_at(now)
        if expected_last is None and self._last_sample_time is not None and self.nominal_fs:
            expected_last = self._last_sample_index + (now - self._last_sample_time) * self.nominal_fs
        if expected_last is None:
            return
        expected_first = int(round(expected_last)) - (int(result.index[-1]) - int(result.index[0]))
        shift = max(0, expected_first - int(result.index[0]))
        if shift:
            result.index += shift
            self.parser._next_index += shift  # noqa: SLF001 - the parser's numbering continues from here
            result.gaps = [Gap(g.start + shift, g.n_samples, g.reason) for g in result.gaps]
            result.gaps.insert(0, Gap(resume, shift, "disconnect"))

    # -- queue -----------------------------------------------------------------------

    def _put(self, item) -> None:
        if self._backlog:
            self._backlog.append(item)
            self._count_backlog(item, +1)
            self._trim_backlog()
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self._backlog.append(item)
            self._count_backlog(item, +1)

    def _count_backlog(self, item, sign) -> None:
        if isinstance(item, Samples):
            self._backlog_samples += sign * item.result.n_samples

    def _trim_backlog(self) -> None:
        while self._backlog_samples > self.max_backlog_samples:
            # Drop the oldest samples; Status items are kept (they are small).
            for position, item in enumerate(self._backlog):
                if isinstance(item, Samples) and item.result.n_samples:
                    del self._backlog[position]
                    self._count_backlog(item, -1)
                    n = item.result.n_samples
                    self.overrun_samples += n
                    first = int(item.result.index[0])
                    if self._pending_overrun is None:
                        self._pending_overrun = [first, n]
                    else:
                        self._pending_overrun[1] += n
                    break
            else:
                break

    def _flush_backlog(self, final: bool = False) -> None:
        if self._pending_overrun is not None:
            first, n = self._pending_overrun
            try:
                self.queue.put_nowait(Status("overrun", self.clock(), first, n_samples=n))
                self._pending_overrun = None
            except queue.Full:
                pass
        attempts = 2 if final else 1
        while self._backlog:
            try:
                if final:
                    self.queue.put(self._backlog[0], timeout=0.25)
                else:
                    self.queue.put_nowait(self._backlog[0])
            except queue.Full:
                attempts -= 1
                if attempts <= 0:
                    return  # nobody is reading any more
                continue
            item = self._backlog.popleft()
            self._count_backlog(item, -1)


def drain(out_queue: queue.Queue, first_timeout: float):
    """Items available now (waiting up to ``first_timeout`` s for the first)."""
    items = []
    try:
        items.append(out_queue.get(timeout=first_timeout))
    except queue.Empty:
        return items
    while True:
        try:
            items.append(out_queue.get_nowait())
        except queue.Empty:
            return items


def concat_samples(items):
    """Join consecutive :class:`Samples` items into one result."""
    from biofeedback.acquisition.framing import concat_results

    results = [item.result for item in items]
    return concat_results(results, results[0].data.shape[0] if results else None)


__all__ = ["ReaderThread", "Samples", "Status", "drain", "concat_samples"]
