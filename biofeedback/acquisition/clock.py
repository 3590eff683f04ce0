"""Sample clock: the rate a device really runs at, fitted to arrival times.

Samples are timed by their index (``t = index / fs``), never by the host
clock at arrival, because USB and the operating system deliver bytes in
bursts. But a microcontroller's crystal or RC oscillator is off by tens to
thousands of ppm, and some sketches run at another rate than they claim
(the Olimex P2 sketch: 250 Hz, not the P2 format's 256 Hz), so the rate is
fitted to ``(index of the last sample read, time of the read)`` pairs.

A read's time is an *upper* bound of its last sample's time (bytes wait in
buffers, never arrive early), so the fit keeps the lower half of the points
around a first least-squares line.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class RateEstimator:
    """Fit ``time = t0 + index / fs`` to arrival observations.

    Parameters
    ----------
    settle_s : float
        Observations in the first ``settle_s`` seconds are ignored (the
        first reads empty the buffers filled before the port was opened).
    min_interval_s : float
        Keep at most one observation per interval (bounds the memory).
    max_points : int
        Most recent observations kept (with 0.05 s intervals, 4000 points
        are 200 s: drift is tracked over the last minutes).
    """

    def __init__(self, settle_s: float = 0.25, min_interval_s: float = 0.05, max_points: int = 4000):
        self.settle_s = float(settle_s)
        self.min_interval_s = float(min_interval_s)
        self._points = deque(maxlen=int(max_points))
        self._first_time = None
        self._fit = None
        self._dirty = False

    def add(self, last_index: int, arrival_time: float) -> None:
        """Record that sample ``last_index`` had arrived by ``arrival_time`` (s)."""
        if self._first_time is None:
            self._first_time = arrival_time
        if arrival_time - self._first_time < self.settle_s:
            return
        if self._points and arrival_time - self._points[-1][1] < self.min_interval_s:
            return  # decimate: one observation per interval is enough
        self._points.append((int(last_index), float(arrival_time)))
        self._dirty = True

    @property
    def span_s(self) -> float:
        """Time covered by the kept observations, in seconds."""
        if len(self._points) < 2:
            return 0.0
        return self._points[-1][1] - self._points[0][1]

    def _refit(self):
        if not self._dirty:
            return self._fit
        self._dirty = False
        if len(self._points) < 4:
            self._fit = None
            return None
        pts = np.asarray(self._points, dtype=np.float64)
        index, times = pts[:, 0], pts[:, 1]
        if index[-1] - index[0] < 2:
            self._fit = None
            return None
        t_ref, i_ref = times[0], index[0]
        slope, intercept = np.polyfit(index - i_ref, times - t_ref, 1)
        residual = (times - t_ref) - (slope * (index - i_ref) + intercept)
        low = residual <= np.median(residual)
        if np.count_nonzero(low) >= 3 and np.ptp(index[low]) > 0:
            slope, intercept = np.polyfit(index[low] - i_ref, times[low] - t_ref, 1)
        if slope <= 0:
            self._fit = None
            return None
        self._fit = (slope, intercept + t_ref, i_ref)
        return self._fit

    @property
    def fs(self) -> float | None:
        """Fitted rate in Hz (``None`` until there are enough observations)."""
        fit = self._refit()
        return None if fit is None else 1.0 / fit[0]

    def time_of(self, index: float) -> float | None:
        """Fitted arrival-clock time of sample ``index`` (``None`` before a fit)."""
        fit = self._refit()
        if fit is None:
            return None
        slope, t0, i_ref = fit
        return t0 + slope * (index - i_ref)

    def index_at(self, time: float) -> float | None:
        """Fitted sample index at arrival-clock ``time`` (``None`` before a fit)."""
        fit = self._refit()
        if fit is None:
            return None
        slope, t0, i_ref = fit
        return i_ref + (time - t0) / slope


def decide_rate(measured: float, candidates=(), tolerance: float = 0.01):
    """Snap a measured rate to a known one, or keep the measurement.

    Parameters
    ----------
    measured : float
        Rate fitted to arrival times, Hz.
    candidates : sequence of float
        Rates the protocol or board is known to use.
    tolerance : float
        Largest relative difference for snapping.

    Returns
    -------
    fs : float
        The rate to state.
    snapped : bool
        True if ``fs`` is one of ``candidates``.
    """
    if candidates:
        best = min(candidates, key=lambda c: abs(c - measured))
        if abs(best - measured) <= tolerance * best:
            return float(best), True
    return float(round(measured, 2)), False
