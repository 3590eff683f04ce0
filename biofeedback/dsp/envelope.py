"""Amplitude envelopes: moving RMS (running sums) and linear envelope.

Both are causal: the envelope at sample ``n`` depends on samples ``<= n``
only. The moving RMS therefore lags the signal by half its window (50 ms
for the default 100 ms window); detectors account for it when they
back-track onsets.
"""

from __future__ import annotations

import numpy as np

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.dsp.base import Stage
from biofeedback.dsp.filters import SOSFilter, butter_sos
from biofeedback.errors import ParameterError

# Window sums are computed from a cumulative sum restarted every block of
# this many samples. A cumulative sum over a whole hour of samples would
# lose precision by cancellation (a small window sum taken as the difference
# of two huge totals); restarting bounds the totals to one block.
_BLOCK = 1 << 16


def window_sums_of_squares(x, tail):
    """Sums of squares over a trailing window at every sample, from one running sum.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n)
        New samples.
    tail : ndarray, shape (n_channels, w)
        The ``w`` squared samples before ``x`` (zeros at the start of a
        stream); ``w`` is the window length.

    Returns
    -------
    sums : ndarray, shape (n_channels, n)
        ``sum(x[k - w + 1 .. k] ** 2)`` for every sample ``k`` of ``x``, as
        the difference of a cumulative sum that starts at ``tail`` (so it
        can come out a rounding error below zero: callers clip).
    tail : ndarray, shape (n_channels, w)
        The last ``w`` squared samples, for the next call.

    Notes
    -----
    The squares, the cumulative sum and the new tail share one buffer
    (squared into, then summed in place): with a fresh array for each step,
    allocating and first touching those megabyte temporaries cost more
    than the arithmetic. The values are those of ``np.cumsum`` over
    ``np.concatenate([tail, x ** 2], axis=1)``.
    """
    w = tail.shape[1]
    n_ch, n = x.shape
    ext = np.empty((n_ch, w + n))
    ext[:, :w] = tail
    np.square(x, out=ext[:, w:])
    new_tail = ext[:, n:].copy()
    np.cumsum(ext, axis=1, out=ext)
    return np.subtract(ext[:, w:], ext[:, :n]), new_tail


class RMSEnvelope(Stage):
    """Moving root-mean-square over a trailing window.

    ``env[n] = sqrt(mean(x[n-W+1 .. n] ** 2))`` with ``W = round(window_s * fs)``.
    Samples before the start of the stream count as zeros, so the first
    ``W - 1`` outputs ramp up.

    Parameters
    ----------
    window_s : float
        Window length in seconds (default 0.1 s).
    """

    name = "envelope"

    def __init__(self, window_s: float = 0.1):
        super().__init__()
        if not window_s > 0:
            raise ParameterError("RMS window (s)", "a positive duration in seconds", window_s)
        self.window_s = float(window_s)
        self.window: int = 0
        self._tail: np.ndarray | None = None  # last W squared samples

    def _configure(self, info: StreamInfo) -> None:
        self.window = max(1, int(round(self.window_s * info.fs)))
        self._tail = np.zeros((info.n_channels, self.window))

    def _process(self, chunk: Chunk) -> Chunk:
        x = np.asarray(chunk.data, dtype=float)
        n = x.shape[1]
        out = np.empty_like(x)
        w = self.window
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            sums, self._tail = window_sums_of_squares(x[:, start:stop], self._tail)
            np.maximum(sums, 0.0, out=sums)  # rounding can leave -1e-17
            sums /= w
            np.sqrt(sums, out=out[:, start:stop])
        return chunk.replace(data=out, events=())

    def reset(self) -> None:
        super().reset()
        self._tail = None

    @property
    def delay_s(self) -> float:
        """Group delay of the moving window in seconds (half the window)."""
        return self.window_s / 2.0

    def __repr__(self):
        return f"RMSEnvelope({self.window_s * 1000:g} ms)"


class LinearEnvelope(SOSFilter):
    """Linear envelope: full-wave rectification then a Butterworth low-pass.

    Parameters
    ----------
    cutoff_hz : float
        Low-pass cut-off in Hz (default 6 Hz, a common choice for
        biofeedback displays).
    order : int
        Butterworth order (default 2).
    """

    name = "envelope"

    def __init__(self, cutoff_hz: float = 6.0, order: int = 2):
        super().__init__()
        self.cutoff_hz = float(cutoff_hz)
        self.order = int(order)

    def design(self, fs: float) -> np.ndarray:
        if not 0 < self.cutoff_hz < fs / 2:
            raise ParameterError(
                "linear envelope cut-off (Hz)", f"between 0 and {fs / 2:g} Hz (Nyquist)", self.cutoff_hz
            )
        return butter_sos(self.order, self.cutoff_hz, "lowpass", fs)

    def _process(self, chunk: Chunk) -> Chunk:
        if self._zi is None and chunk.n_samples:
            # Start from zero state: the rectified signal has no DC offset
            # to hide, and a zero start keeps the envelope non-negative.
            self._zi = np.zeros((self.sos.shape[0], chunk.info.n_channels, 2))
        return super()._process(chunk.replace(data=np.abs(chunk.data)))

    @property
    def delay_s(self) -> float:
        """Approximate group delay at low frequency in seconds."""
        # A 2nd-order Butterworth low-pass delays slow changes by about
        # sqrt(2) / (2 pi fc).
        return np.sqrt(2) / (2 * np.pi * self.cutoff_hz) * self.order / 2

    def __repr__(self):
        return f"LinearEnvelope({self.cutoff_hz:g} Hz)"
