"""Automatic detection of mains interference (50 Hz or 60 Hz).

The choice between a 50 Hz and a 60 Hz notch is made from the data: for each
family, the strongest of its lines (fundamental and harmonics below Nyquist)
is measured as the power in a narrow band around the line against the median
power of the neighbouring bands. Harmonics count because some amplifiers
remove the fundamental but leave 120/240 Hz lines (seen in real recordings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from biofeedback.dsp.filters import mains_harmonics
from biofeedback.errors import check_sampling_rate


@dataclass(frozen=True)
class MainsEstimate:
    """Result of :func:`detect_mains`.

    Attributes
    ----------
    mains_hz : float or None
        50.0, 60.0, or None when neither family stands out.
    prominence_db : dict
        Strongest line prominence (dB above neighbouring spectrum) per family.
    """

    mains_hz: float | None
    prominence_db: dict

    def describe(self) -> str:
        """One line for logs and reports."""
        parts = ", ".join(f"{f:g} Hz family {db:+.1f} dB" for f, db in self.prominence_db.items())
        chosen = "none" if self.mains_hz is None else f"{self.mains_hz:g} Hz"
        return f"mains: {chosen} ({parts})"


def _line_prominence_db(freqs, psd, f0, half_width=1.0, guard=3.0, side=10.0):
    """Prominence in dB of the line at ``f0`` Hz on each channel of ``psd`` (shape (n_channels, n_freqs)).

    The line's peak power against the median power of the neighbouring
    bands, one float per channel (``-inf`` where the spectrum cannot tell).
    The bands depend on ``f0`` only, so they are found once for all
    channels (per channel and line they were most of the time of a
    multichannel probe); the per-channel numbers are the scalar ones.
    """
    line = (freqs >= f0 - half_width) & (freqs <= f0 + half_width)
    neigh = ((freqs >= f0 - side) & (freqs <= f0 - guard)) | ((freqs >= f0 + guard) & (freqs <= f0 + side))
    if not line.any() or neigh.sum() < 2:
        return [-np.inf] * psd.shape[0]
    peaks = psd[:, line].max(axis=1)
    floors = np.median(psd[:, neigh], axis=1)
    out = []
    for peak, floor in zip(peaks, floors):
        if floor <= 0:
            out.append(np.inf if peak > 0 else -np.inf)
        else:
            out.append(10.0 * np.log10(peak / floor))
    return out


def detect_mains(data, fs: float, threshold_db: float = 6.0) -> MainsEstimate:
    """Decide whether a signal carries 50 Hz or 60 Hz mains interference.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        A few seconds of raw signal (2 s or more gives 0.5 Hz resolution).
    fs : float
        Sampling rate in Hz.
    threshold_db : float
        A family is detected when its strongest line stands this many dB
        above the neighbouring spectrum on the channel where it is strongest.

    Returns
    -------
    MainsEstimate
    """
    fs = check_sampling_rate(fs, "fs")
    x = np.atleast_2d(np.asarray(data, dtype=float))
    n = x.shape[1]
    result = {}
    if n < int(fs):  # under one second the lines cannot be resolved
        return MainsEstimate(None, {50.0: float("nan"), 60.0: float("nan")})
    nperseg = int(min(n, 2 ** int(np.ceil(np.log2(2 * fs)))))  # ~0.5 Hz bins
    freqs, psd = signal.welch(x - x.mean(axis=1, keepdims=True), fs=fs, nperseg=nperseg, axis=-1)
    for family in (50.0, 60.0):
        best = -np.inf
        for f0 in mains_harmonics(family, fs, max_fraction_of_nyquist=0.9):
            # Skip lines shared by both families (300 Hz = 6*50 = 5*60).
            if (f0 % 50.0 == 0) and (f0 % 60.0 == 0):
                continue
            for db in _line_prominence_db(freqs, psd, f0):
                best = max(best, db)
        result[family] = float(best)
    winner = max(result, key=result.get)
    if not result[winner] >= threshold_db:
        return MainsEstimate(None, result)
    return MainsEstimate(winner, result)
