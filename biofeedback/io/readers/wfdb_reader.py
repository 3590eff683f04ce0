"""WFDB records (PhysioNet): a ``.hea`` header and its signal files, read with ``wfdb``.

The header is parsed by ``wfdb.rdheader``; the data files it names must
exist beside it and, for the common fixed-width formats, be as long as the
header says. Samples are read in blocks with ``wfdb.rdrecord(sampfrom,
sampto)`` in physical units (``(adu - baseline) / gain``); unit spellings
such as ``mv`` are normalised (``mV``), and channels in different voltage
units are all given in µV.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError
from biofeedback.io.readers._base import ReaderOptions, block_chunks, common_units, fs_argument_note, require, select
from biofeedback.io.readers.sniff import wfdb_header_for

# bytes per sample of the fixed-width WFDB formats, for the length check
_BYTES = {"16": 2.0, "61": 2.0, "24": 3.0, "32": 4.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
          "8": 1.0}


def iter_wfdb(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    hea = wfdb_header_for(Path(path))
    if hea is None:
        raise InputFileError(spath, "WFDB data file without its .hea header beside it")
    wfdb = require("wfdb", "WFDB records")
    record = str(hea.with_suffix(""))
    try:
        h = wfdb.rdheader(record)
    except Exception as exc:  # wfdb raises ValueError/HeaderSyntaxError/FileNotFoundError...
        raise InputFileError(str(hea), f"WFDB header cannot be parsed ({type(exc).__name__}: {exc})") from None
    if not h.n_sig:
        raise InputFileError(str(hea), "WFDB header lists no signal")
    if not h.fs or h.fs <= 0:
        raise InputFileError(str(hea), f"WFDB header gives no sampling rate (found {h.fs!r})")
    folder = hea.parent
    files = list(dict.fromkeys(h.file_name))
    for name in files:
        if not (folder / name).is_file():
            raise InputFileError(str(hea), f"WFDB header names the data file {name!r}, which is missing "
                                           f"(looked in {folder})")
    n_total = h.sig_len
    if n_total is None or n_total <= 0:
        raise InputFileError(str(hea), "WFDB header gives no signal length (number of samples)")
    for name in files:
        sigs = [i for i, f in enumerate(h.file_name) if f == name]
        fmt = str(h.fmt[sigs[0]])
        width = _BYTES.get(fmt)
        if width is None:
            continue
        per_frame = sum(int(h.samps_per_frame[i] or 1) for i in sigs)
        offset = int(h.byte_offset[sigs[0]] or 0)
        need = offset + int(np.ceil(n_total * per_frame * width))
        have = os.path.getsize(folder / name)
        if have < need:
            raise InputFileError(str(folder / name),
                                 f"WFDB data file holds {have} bytes but the header asks for {need} "
                                 f"({n_total} samples x {per_frame} signals, format {fmt}); truncated?")
    names = [str(n) if n else f"ch{i + 1}" for i, n in enumerate(h.sig_name or [])]
    picked = select(names, opts.channels)
    units, scale = common_units([(h.units or ["" ] * h.n_sig)[i] for i in picked], "signals", spath)
    extra = {"format": "wfdb", "record": hea.stem, "comments": tuple(h.comments or ())}
    fs_argument_note(extra, opts.fs, h.fs)
    info = StreamInfo(fs=float(h.fs), ch_names=tuple(names[i] for i in picked), units=units, source=spath,
                      extra=extra)
    scale = scale[:, None]

    def read(start, stop):
        try:
            rec = wfdb.rdrecord(record, sampfrom=start, sampto=stop, channels=picked, physical=True)
        except Exception as exc:
            raise InputFileError(spath, f"WFDB samples {start}-{stop} cannot be read ({type(exc).__name__}: "
                                        f"{exc})") from None
        return rec.p_signal.T * scale

    return info, block_chunks(info, n_total, read, chunk_samples)
