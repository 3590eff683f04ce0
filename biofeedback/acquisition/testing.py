"""Helpers for tests and benchmarks: offline device streams and alignment.

Not used by the acquisition itself; kept in the package so the tests, the
benchmark and users' own checks build streams the same way.
"""

from __future__ import annotations

import numpy as np

from biofeedback.acquisition.emulator import DeviceCore


def offline_stream(protocol: str, n_samples: int, seed: int = 0, n_channels: int = 2, fs=None):
    """Frames an emulated device would send for ``n_samples`` samples.

    Parameters
    ----------
    protocol : str
        Protocol name.
    n_samples : int
        Samples wanted (rounded down to whole frames).
    seed : int
        Signal seed.
    n_channels : int
        Channels carrying signal.
    fs : float, optional
        Sampling rate in Hz.

    Returns
    -------
    frames : list of bytes
        One entry per frame (one line for ASCII), stream index 0 first.
    truth : ndarray of float64, shape (n_channels_parsed, n)
        What a parser must output, in its units (µV for OpenBCI).
    samples_per_frame : int
    core : DeviceCore
    """
    core = DeviceCore(protocol, fs=fs, n_channels=n_channels, seed=seed)
    device = core.device
    per_frame = device.samples_per_frame
    n = n_samples - n_samples % per_frame
    codes = core.truth(0, n)
    frames = device.encode(codes, 0)
    truth = codes.astype(np.float64)
    scale = getattr(device, "scale_uv", None)
    if scale is not None:
        truth = truth * scale
    return frames, truth, per_frame, core


def align_offset(truth: np.ndarray, values: np.ndarray, n_check: int = 32) -> int | None:
    """Offset ``k`` such that ``values[:, :n] == truth[:, k:k + n]`` for the first rows.

    Parameters
    ----------
    truth : ndarray, shape (n_channels, n_truth)
    values : ndarray, shape (n_channels, n_values)
    n_check : int
        Rows compared (more rows, fewer coincidences in quiet signals).

    Returns
    -------
    int or None
        The first matching offset, or ``None``.
    """
    n = min(n_check, values.shape[1])
    if n == 0 or truth.shape[1] < n:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(truth, n, axis=1)  # (C, n_truth-n+1, n)
    match = np.all(np.isclose(windows, values[:, None, :n], rtol=0, atol=1e-6), axis=(0, 2))
    hits = np.flatnonzero(match)
    return int(hits[0]) if hits.size else None


def index_offset(truth: np.ndarray, index: np.ndarray, values: np.ndarray, n: int = 16) -> int | None:
    """Offset from recorded sample indices to the device's own indices.

    Found on the first gap-free run of ``n`` recorded rows, so recordings
    with gaps align too: ``values[:, i] == truth[:, offset + index[i]]``.
    """
    breaks = np.flatnonzero(np.diff(index) != 1)
    for start in np.concatenate(([0], breaks + 1)):
        if index.shape[0] - start >= n and np.all(np.diff(index[start:start + n]) == 1):
            found = align_offset(truth, values[:, start:start + n], n)
            if found is not None:
                return found - int(index[start])
    return None


def device_truth(core: DeviceCore) -> np.ndarray:
    """Everything the device has sampled so far, in the parser's units."""
    truth = core.truth(0, core.clock_index + 1).astype(np.float64)
    scale = getattr(core.device, "scale_uv", None)
    return truth * scale if scale else truth


def read_recording(path):
    """Read a file written by :class:`~biofeedback.acquisition.recorder.RecordingWriter`.

    Returns
    -------
    comments : dict
        ``# key: value`` header lines.
    columns : list of str
    index : ndarray of int64, shape (n,)
    values : ndarray of float64, shape (n_channels, n)
    """
    comments, rows, columns = {}, [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                comments[key.strip()] = value.strip()
            elif line.startswith("sample"):
                columns = line.strip().split(",")
            elif line.strip():
                rows.append([float(v) for v in line.split(",")])
    table = np.asarray(rows, dtype=np.float64).reshape(-1, max(1, len(columns)))
    return comments, columns, table[:, 0].astype(np.int64), table[:, 1:].T


def read_events(path) -> list:
    """Rows of an events CSV as dictionaries."""
    import csv

    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
