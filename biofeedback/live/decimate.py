"""Reduce the traces to display resolution on the worker thread.

A 10 s window of 8 channels at 2 kHz is 160 000 samples per curve set, but
a plot 750 pixels wide can show about one value per pixel column. Doing
that reduction in the display loop (as pyqtgraph's own downsampling does)
costs the GUI thread a pass over every sample in view, every frame. Here
each sample is reduced once, when it arrives, on the worker thread, per
bin of ``factor`` samples:

* the filtered signal to its **minimum and maximum**, so no spike is lost
  (a clench shows up even if it lasts one sample);
* the envelope, which is smooth over its window (100 ms), to its **mean**.

Bins are aligned on absolute sample indices (bin ``b`` covers samples
``b*factor .. (b+1)*factor - 1``), so finished bins do not depend on how
the stream is chunked. The bin still filling at the end of a chunk is
returned too, marked *partial*: the display shows it at once (no sample
waits for its bin to fill, so binning adds no latency) and replaces it
when the next chunk brings the rest of the bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Traces:
    """Display bins of one chunk.

    Attributes
    ----------
    start : ndarray of int, shape (m,)
        Stream index of each bin's first sample.
    fmin, fmax : ndarray, shape (n_channels, m)
        Minimum and maximum of the filtered signal per bin.
    env : ndarray, shape (n_channels, m)
        Mean envelope per bin.
    partial : bool
        The last bin is still filling: the next chunk's first bin replaces it.
    """

    start: np.ndarray
    fmin: np.ndarray
    fmax: np.ndarray
    env: np.ndarray
    partial: bool = False

    @property
    def n_bins(self) -> int:
        return int(self.start.shape[0])


class DisplayDecimator:
    """Min/max of the filtered signal and mean envelope per bin of ``factor`` samples.

    Parameters
    ----------
    n_channels : int
    factor : int
        Samples per bin (1 keeps every sample).
    """

    def __init__(self, n_channels: int, factor: int):
        self.factor = max(1, int(factor))
        self.n_channels = int(n_channels)
        self.reset()

    def set_factor(self, factor: int) -> None:
        """Change the bin width from the next bin on.

        The samples of the bin still filling are kept: the next chunk
        re-sends that bin from the same start, shortened (or lengthened)
        to the next boundary of the new grid, so a display that replaces
        the partial bin stays consistent and later bins are aligned on
        multiples of the new factor.
        """
        self.factor = max(1, int(factor))

    def reset(self) -> None:
        """Drop the partial bin (after a seek)."""
        self._pending = np.zeros((2 * self.n_channels, 0))
        self._start = None  # stream index of the first pending sample

    def process(self, first_sample: int, filtered, envelope) -> Traces:
        """Reduce one chunk (see :class:`Traces`)."""
        n_ch, k = self.n_channels, self.factor
        x = np.concatenate([np.asarray(filtered, dtype=float), np.asarray(envelope, dtype=float)], axis=0)
        if self._start is not None and self._start + self._pending.shape[1] == first_sample:
            x = np.concatenate([self._pending, x], axis=1)
            start = self._start
        else:
            start = first_sample  # first chunk, or a jump
        end = start + x.shape[1]
        next_boundary = (start // k + 1) * k
        head = next_boundary - start  # k when start is on a boundary
        starts, mins, maxs, envs = [], [], [], []
        used = 0
        if end >= next_boundary:
            if head != k:
                # After a jump into the middle of a bin: a shortened first
                # bin up to the next boundary keeps all later bins aligned.
                part = x[:, :head]
                starts.append(np.array([start]))
                mins.append(part[:n_ch].min(axis=1, keepdims=True))
                maxs.append(part[:n_ch].max(axis=1, keepdims=True))
                envs.append(part[n_ch:].mean(axis=1, keepdims=True))
                used = head
            m = (x.shape[1] - used) // k
            if m:
                blocks = x[:, used:used + m * k].reshape(2 * n_ch, m, k)
                starts.append(start + used + k * np.arange(m, dtype=np.int64))
                mins.append(blocks[:n_ch].min(axis=2))
                maxs.append(blocks[:n_ch].max(axis=2))
                envs.append(blocks[n_ch:].mean(axis=2))
                used += m * k
        self._pending = x[:, used:]
        self._start = start + used
        partial = self._pending.shape[1] > 0
        if partial:
            rest = self._pending
            starts.append(np.array([self._start]))
            mins.append(rest[:n_ch].min(axis=1, keepdims=True))
            maxs.append(rest[:n_ch].max(axis=1, keepdims=True))
            envs.append(rest[n_ch:].mean(axis=1, keepdims=True))
        if not starts:
            empty = np.zeros((n_ch, 0))
            return Traces(np.zeros(0, dtype=np.int64), empty, empty, empty, False)
        return Traces(np.concatenate(starts).astype(np.int64), np.concatenate(mins, axis=1),
                      np.concatenate(maxs, axis=1), np.concatenate(envs, axis=1), partial)
