"""Frame-rate, dropped-frame and latency bookkeeping for the display loop.

Qt-free so the arithmetic is tested on its own; the window feeds it the
times of its timer ticks, of its paints and of the samples it shows.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameStats:
    """Counts frames, late frames and source-to-screen latency.

    Parameters
    ----------
    target_fps : float
        Rate of the display timer.
    history : int
        Number of recent frames (and latencies) kept for the figures.

    Notes
    -----
    A *dropped* frame is a display deadline that passed without a frame:
    when two timer ticks are ``k`` periods apart (rounded, with a half
    period of tolerance), ``k - 1`` frames were dropped.
    """

    def __init__(self, target_fps: float = 60.0, history: int = 600):
        self.period = 1.0 / float(target_fps)
        self.ticks = 0
        self.paints = 0
        self.dropped = 0
        self._last_tick: float | None = None
        self._paint_times: deque = deque(maxlen=history)
        self._frame_costs: deque = deque(maxlen=history)
        self._paint_costs: deque = deque(maxlen=history)
        self.latencies: deque = deque(maxlen=history * 4)

    def tick(self, now: float) -> None:
        """A display timer tick at ``now`` (seconds)."""
        if self._last_tick is not None:
            late = (now - self._last_tick) / self.period
            if late >= 1.5:
                self.dropped += int(round(late)) - 1
        self._last_tick = now
        self.ticks += 1

    def frame_cost(self, seconds: float) -> None:
        """Time the frame's work took on the display thread."""
        self._frame_costs.append(seconds)

    def painted(self, now: float, seconds: float | None = None) -> None:
        """The plots were painted at ``now`` (the paint took ``seconds``)."""
        self.paints += 1
        self._paint_times.append(now)
        if seconds is not None:
            self._paint_costs.append(seconds)

    def latency(self, seconds: float) -> None:
        """Delay from a sample leaving the source to the frame showing it."""
        self.latencies.append(seconds)

    def fps(self) -> float:
        """Paints per second over the recent history."""
        times = self._paint_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def latency_ms(self) -> tuple[float, float]:
        """Median and 95th percentile of the latency in ms (NaN when none)."""
        if not self.latencies:
            return float("nan"), float("nan")
        values = np.fromiter(self.latencies, dtype=float) * 1000
        return float(np.median(values)), float(np.percentile(values, 95))

    def frame_ms(self) -> float:
        """Mean cost of a frame on the display thread, in ms."""
        if not self._frame_costs:
            return float("nan")
        return 1000 * float(np.mean(np.fromiter(self._frame_costs, dtype=float)))

    def paint_ms(self) -> float:
        """Mean time of a paint of the plots, in ms."""
        if not self._paint_costs:
            return float("nan")
        return 1000 * float(np.mean(np.fromiter(self._paint_costs, dtype=float)))

    def reset(self) -> None:
        """Start counting anew (e.g. after a warm-up)."""
        self.__init__(1.0 / self.period, self._paint_times.maxlen)

    def summary(self) -> str:
        med, p95 = self.latency_ms()
        return (f"{self.fps():5.1f} fps  dropped {self.dropped}  frame {self.frame_ms():4.1f} ms  "
                f"paint {self.paint_ms():4.1f} ms  latency {med:3.0f}/{p95:3.0f} ms (median/p95)")
