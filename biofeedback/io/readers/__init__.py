"""One entry point for every recording format: :func:`read_recording` / :func:`iter_recording`.

The format is told from the file's content (see :mod:`.sniff`), the name
only breaking ties, so a renamed file still loads. Every reader returns data
``(n_channels, n_samples)`` float64 in physical units and a
:class:`~biofeedback.core.types.StreamInfo` (rate, channel names, units,
``source`` = the path, ``extra["format"]`` and what else the file said).

===========  ================================  =========================  ==========
format       detected by                        read with                  streams
===========  ================================  =========================  ==========
csv          any other text                     ``csv_io.iter_csv``        yes
openbci      ``%OpenBCI Raw`` first line        ``csv_io.iter_csv``        yes
opensignals  ``# OpenSignals Text File Format`` ``csv_io.iter_csv``        yes [1]_
wav          ``RIFF....WAVE``                   own RIFF reader            yes
edf / bdf    ``"0       "`` + numeric fields,   ``edfio`` (header), own    yes
             ``0xFF"BIOSEMI"``                  record reads
wfdb         ``.hea`` (or ``.dat`` beside one)  ``wfdb``                   yes
hdf5         HDF5 signature (OpenSignals)       ``h5py``                   yes
mat          ``MATLAB 5.0/7.3 MAT-file``        ``scipy.io`` / ``h5py``    no
xlsx         ZIP with ``xl/workbook.xml``       ``openpyxl``               no
===========  ================================  =========================  ==========

.. [1] except a device that stops before the file does (read whole).

Optional libraries (``edfio``, ``wfdb``, ``h5py``, ``openpyxl``) are imported
only when a file needs them; a missing one gives a one-line install hint
(``pip install 'biofeedback[formats]'``). Options (rate, channels, sheet,
device, MATLAB variable, resampling) are those of :class:`ReaderOptions`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from biofeedback.core.types import Chunk, Recording, StreamInfo
from biofeedback.errors import InputFileError, ParameterError
from biofeedback.io.readers._base import DEFAULT_CHUNK, MissingDependencyError, ReaderOptions
from biofeedback.io.readers.sniff import FORMATS, RECORDING_SUFFIXES, detect_format

__all__ = ["FORMATS", "RECORDING_SUFFIXES", "MissingDependencyError", "ReaderOptions", "detect_format",
           "iter_recording", "read_recording"]


def _dispatch(fmt: str):
    if fmt == "csv":
        from biofeedback.io.readers.text import iter_plain as f
    elif fmt == "openbci":
        from biofeedback.io.readers.text import iter_openbci as f
    elif fmt == "opensignals":
        from biofeedback.io.readers.text import iter_opensignals as f
    elif fmt == "wav":
        from biofeedback.io.readers.wav import iter_wav as f
    elif fmt in ("edf", "bdf"):
        from biofeedback.io.readers.edf import iter_edf

        def f(path, n, opts):
            return iter_edf(path, n, opts, bdf=fmt == "bdf")
    elif fmt == "wfdb":
        from biofeedback.io.readers.wfdb_reader import iter_wfdb as f
    elif fmt == "hdf5":
        from biofeedback.io.readers.hdf5 import iter_hdf5 as f
    elif fmt == "mat":
        from biofeedback.io.readers.matlab import iter_mat as f
    elif fmt == "xlsx":
        from biofeedback.io.readers.excel import iter_xlsx as f
    else:
        raise ParameterError("format", f"one of {', '.join(FORMATS)}", fmt)
    return f


def iter_recording(path, chunk_samples: int = DEFAULT_CHUNK, *, format: str | None = None,
                   options: ReaderOptions | None = None, **kwargs) -> tuple[StreamInfo, Iterator[Chunk]]:
    """Open a recording of any supported format and stream it in chunks.

    Parameters
    ----------
    path : str or Path
    chunk_samples : int
        Samples per chunk (the last may be shorter).
    format : str, optional
        Skip detection (one of :data:`FORMATS`).
    options : ReaderOptions, optional
        Or the same fields as keyword arguments (``fs``, ``channels``,
        ``cue_column``, ``sheet``, ``device``, ``variable``, ``resample``).

    Returns
    -------
    info : StreamInfo
    chunks : iterator of Chunk
        Consecutive chunks of float64 samples in ``info.units``; a cue
        column travels in ``chunk.layers["cues"]``. Problems further in
        the file are raised while iterating.

    Raises
    ------
    InputFileError
        The file cannot be read (the message says why).
    ParameterError
        A bad option (unknown channel, sheet, device...).
    MissingDependencyError
        The format needs an optional package that is not installed.
    """
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, (int, np.integer)) or chunk_samples <= 0:
        raise ParameterError("chunk_samples", "a positive number of samples", chunk_samples)
    if options is None:
        options = ReaderOptions.from_kwargs(**kwargs)
    elif kwargs:
        raise ParameterError("options", "either a ReaderOptions or keyword options, not both", sorted(kwargs))
    fmt = format or detect_format(path)
    info, chunks = _dispatch(fmt)(path, int(chunk_samples), options)
    return info, chunks


def read_recording(path, *, format: str | None = None, options: ReaderOptions | None = None,
                   **kwargs) -> Recording:
    """Read a whole recording into memory (same arguments as :func:`iter_recording`).

    Returns
    -------
    Recording
        ``data`` (n_channels, n_samples) float64 in ``info.units``;
        ``cues`` when a cue column was named.
    """
    info, chunks = iter_recording(path, 1 << 20, format=format, options=options, **kwargs)
    parts, cues = [], []
    for chunk in chunks:
        parts.append(chunk.data)
        layer = chunk.layers.get("cues") if chunk.layers else None
        if layer is not None:
            cues.append(np.asarray(layer).reshape(-1))
    if not parts:
        raise InputFileError(str(path), "has no samples")
    data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    cue_arr = np.concatenate(cues).astype(str) if cues else None
    return Recording(data=data, info=info, cues=cue_arr)
