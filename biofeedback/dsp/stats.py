"""Small statistics that the streaming stages compute very often.

:func:`median` equals :func:`numpy.median` to the bit and costs a fraction
of it on the many short rows the detectors reduce (0.25 s blocks of energy
or envelope, the median shape of the last few heartbeats, running medians
of block medians); :func:`small_median` does the same for a short Python
list, and :func:`lower_quartile_of_8` for ``np.percentile(..., 25)`` of
windows of 8 values.
"""

from __future__ import annotations

import numpy as np

#: Longest rows :func:`median` sorts. Longer ones are left to ``np.median``:
#: on smooth signals such as an energy envelope its partition beat the sort
#: by about 2x on 500-value rows (0.25 s blocks at 2 kHz), while up to 256
#: values the sort was 3-4x faster. Only the speed depends on it.
SORT_MAX = 256


def median(a, axis: int = -1) -> np.ndarray:
    """``np.median(a, axis=axis)`` of a float array, equal to the bit, from one sort.

    Parameters
    ----------
    a : ndarray of float
    axis : int
        Axis to reduce.

    Returns
    -------
    ndarray
        ``a``'s shape without ``axis``.

    Notes
    -----
    ``np.median`` partitions each row around its two middle positions and
    its last one (for its NaN check), which for rows of up to
    :data:`SORT_MAX` values costs three to four times NumPy's sort (rows that
    short are sorted with vectorised sorting networks). Its result is the
    middle value of the sorted row (odd length) or the mean of the two
    middle values, which ``np.mean`` computes as their sum halved: the same
    operations are done here on the sorted rows. Longer rows (0.25 s blocks
    above 1 kHz), rows holding a NaN (sorted last, where ``np.median``
    returns NaN) and empty axes are left to ``np.median``.
    """
    a = np.asarray(a)
    n = a.shape[axis]
    if not 0 < n <= SORT_MAX:
        return np.median(a, axis=axis)
    ordered = np.moveaxis(np.sort(a, axis=axis), axis, -1)
    if np.isnan(ordered[..., -1]).any():
        return np.median(a, axis=axis)
    half = n // 2
    if n % 2:
        return ordered[..., half].copy()  # a copy: a view would hold the whole sorted array
    return (ordered[..., half - 1] + ordered[..., half]) / 2


def sliding_windows(x, size: int) -> np.ndarray:
    """Read-only view of every window of ``size`` consecutive values along the last axis of ``x``.

    Shape ``x.shape[:-1] + (x.shape[-1] - size + 1, size)``: the view of
    ``np.lib.stride_tricks.sliding_window_view(x, size, axis=-1)``, without
    its argument checks, which cost it several times as much as the view
    itself. The heartbeat detector compares each beat with its template over
    such a view, once or twice per beat. ``size`` must lie between 1 and
    ``x.shape[-1]``.
    """
    x = np.asarray(x)
    shape = x.shape[:-1] + (x.shape[-1] - size + 1, size)
    return np.lib.stride_tricks.as_strided(x, shape, x.strides + (x.strides[-1],), writeable=False)


def small_median(values) -> float:
    """Median of a short list of floats, equal to ``float(np.median(values))`` to the bit.

    A heartbeat's level is the median of at most ``history`` (8) peaks; the
    Python sort avoids ``np.median``'s overhead, which at one call per beat
    was a large part of the quality check's time.
    """
    ordered = sorted(values)
    half = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[half])
    return float((ordered[half - 1] + ordered[half]) / 2)


def lower_quartile_of_8(windows) -> np.ndarray:
    """``np.percentile(windows, 25, axis=-1)`` for windows of 8 values, equal to the bit.

    The heartbeat detector's noise floor takes the lower quartile of the last 8 block medians at
    every completed block; ``np.percentile`` spends most of its time on
    generic bookkeeping for such short windows. With linear interpolation
    the quartile of 8 sorted values ``v`` lies at index 1.75, and NumPy
    computes it as ``v[2] - (v[2] - v[1]) * 0.25``: the same operations are
    done here on the sorted windows. A NaN (which sorts last, while
    ``np.percentile`` returns NaN) is left to ``np.percentile``.
    """
    return lower_quartile(windows)


def lower_quartile(values) -> np.ndarray:
    """``np.percentile(values, 25, axis=-1)`` for 1 to 8 values along the last axis, equal to the bit.

    The quartile of ``n`` sorted values ``v`` lies at index ``0.25 (n - 1)``:
    between ``v[i]`` and ``v[i + 1]`` at fraction ``t``. NumPy's linear
    interpolation computes ``v[i] + (v[i+1] - v[i]) * t`` for ``t < 0.5``
    and ``v[i+1] - (v[i+1] - v[i]) * (1 - t)`` otherwise; so does this, on
    the sorted values. A NaN (which sorts last, while ``np.percentile``
    returns NaN) and longer windows are left to ``np.percentile``.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    if not 1 <= n <= 8:
        return np.percentile(values, 25, axis=-1)
    ordered = np.sort(values, axis=-1)
    if np.isnan(ordered[..., -1]).any():
        return np.percentile(values, 25, axis=-1)
    i, t = divmod(0.25 * (n - 1), 1.0)
    i = int(i)
    if t == 0.0:
        return ordered[..., i].copy()
    low, high = ordered[..., i], ordered[..., i + 1]
    if t < 0.5:
        return low + (high - low) * t
    return high - (high - low) * (1.0 - t)
