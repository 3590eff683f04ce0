"""A small, vectorised check of the raw signal: is the electrode doing its job?

Three problems make the envelope meaningless, and the feedback panel then
says CHECK ELECTRODE instead of a state:

* **flat** — the raw signal barely moves over the last ``window_s``: an
  electrode that came off, a cable out of its socket, an amplifier input
  shorted. Even a relaxed muscle leaves amplifier noise of about a
  microvolt; a standard deviation far below that is no contact.
* **clipped** — many samples sit exactly on the window's extreme values:
  the amplifier is at its rails (a loose electrode often drifts there).
* **missing** — samples are NaN (a device or file that marks lost values).

This is deliberately small; the detection issue provides full quality
flags later. Cost: the window is updated with every chunk (a copy of its
samples), and judged at most every ``period_s`` (one standard deviation
and two comparisons over ``window_s`` of samples per channel): a contact
that fails is said within a tenth of a second, and small chunks do not
pay for a judgement each.
"""

from __future__ import annotations

import numpy as np

OK, FLAT, CLIPPED, MISSING = "ok", "flat", "clipped", "missing"

#: Raw standard deviation below which a channel counts as flat, per unit.
#: 0.2 uV is well under the noise floor of any sEMG amplifier; for ADC
#: counts, less than half a code means the converter output is constant.
FLAT_STD_BY_UNIT = {"uv": 0.2, "µv": 0.2, "mv": 2e-4, "v": 2e-7, "counts": 0.5}


class ElectrodeCheck:
    """Flat / clipped / missing check over a sliding window of raw samples.

    Parameters
    ----------
    n_channels : int
    fs : float
        Sampling rate in Hz.
    units : str
        Unit of the raw samples (selects the flat threshold).
    window_s : float
        Length of the sliding window in seconds (default 0.5 s).
    flat_std : float, optional
        Override of the flat threshold (standard deviation, in ``units``).
    clip_fraction : float
        A channel is clipped when at least this fraction of the window sits
        exactly on its maximum or minimum value (default 5 %).
    rails : (float, float), optional
        Known converter limits; samples at or beyond them count as clipped.
    period_s : float
        The window is judged again once this much signal came in since the
        last judgement (0: with every chunk).
    """

    def __init__(self, n_channels: int, fs: float, units: str = "uV", window_s: float = 0.5,
                 flat_std: float | None = None, clip_fraction: float = 0.05, rails=None, period_s: float = 0.1):
        self.n = max(2, int(round(window_s * fs)))
        self.period = max(0, int(round(period_s * fs)))
        self._since = 0
        self.flat_std = flat_std if flat_std is not None else FLAT_STD_BY_UNIT.get(units.lower(), 0.0)
        self.clip_fraction = float(clip_fraction)
        self.rails = rails
        self._window = np.zeros((n_channels, self.n))
        self._nan = np.zeros((n_channels, self.n), dtype=bool)
        self._filled = 0
        self.status = [OK] * n_channels

    def update(self, raw) -> list[str]:
        """Add raw samples ``(n_channels, m)`` and return the status per channel."""
        raw = np.asarray(raw, dtype=float)
        m = raw.shape[1]
        if m == 0:
            return self.status
        if m >= self.n:
            self._window[:] = raw[:, -self.n:]
        else:
            # Shift left by m: a copy of at most window_s of samples, on the
            # worker thread, at chunk rate; simpler than a ring and cheap.
            self._window[:, :-m] = self._window[:, m:]
            self._window[:, -m:] = raw
        self._filled = min(self.n, self._filled + m)
        self._since += m
        if self._since < self.period and self._filled < self.n:
            self._since = self.period  # while the window fills, judge every chunk (the start is quick)
        if self._since < self.period:
            return self.status
        self._since = 0
        win = self._window[:, self.n - self._filled:]
        nan = np.isnan(win)
        missing = nan.mean(axis=1) > 0.5
        if nan.any():
            # Judge the samples that are there: replace lost ones by the
            # channel's mean so they neither add spread nor touch the edges.
            # (No nanmean: its all-NaN warning is not thread-safe to silence.)
            present = (~nan).sum(axis=1, keepdims=True)
            mean = np.where(nan, 0.0, win).sum(axis=1, keepdims=True) / np.maximum(present, 1)
            win = np.where(nan, mean, win)
        std = win.std(axis=1)
        clean = win
        # A window that is still filling after the start is not judged flat:
        # a quarter of it must be there.
        judged = self._filled >= self.n // 4
        flat = judged & (std <= self.flat_std)
        hi = clean.max(axis=1, keepdims=True)
        lo = clean.min(axis=1, keepdims=True)
        at_edge = ((clean == hi) | (clean == lo)).mean(axis=1)
        clipped = judged & (hi[:, 0] > lo[:, 0]) & (at_edge >= self.clip_fraction)
        if self.rails is not None:
            low_rail, high_rail = self.rails
            clipped |= (((clean <= low_rail) | (clean >= high_rail)).mean(axis=1) >= self.clip_fraction)
        self.status = [MISSING if mi else FLAT if fl else CLIPPED if cl else OK
                       for mi, fl, cl in zip(missing.tolist(), flat.tolist(), clipped.tolist())]
        return self.status

    @property
    def ok(self) -> np.ndarray:
        """Boolean per channel: True when the signal looks usable."""
        return np.array([s == OK for s in self.status], dtype=bool)

    def reset(self) -> None:
        """Start anew (after a seek)."""
        self._filled = 0
        self._since = 0
        self.status = [OK] * len(self.status)
