"""EDF, EDF+ and BDF recordings.

The header (labels, units, ranges, rates, EDF+ annotation signals) is parsed
and validated by ``edfio``. The data records are then read here, a block of
records at a time with ordinary file reads, so an hour-long file streams in
bounded memory (``edfio`` memory-maps EDF data, whose touched pages count as
resident memory, and loads BDF files whole).

Digital values become physical ones with the header's ranges:
``(digital - digital_min) * (physical_max - physical_min) / (digital_max -
digital_min) + physical_min``. Default channels: the signals with the
highest sampling rate (EDF lets each signal have its own); selected signals
must share one rate. Channels in different voltage units are all given in µV.

The header must agree with the file's size (``number of data records`` x
record size); a file that is shorter or longer than its header says is
rejected, as the spec asks (``-1``, "still recording", takes the count from
the size).
"""

from __future__ import annotations

import warnings

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError
from biofeedback.io.readers._base import (
    LazyFile, ReaderOptions, block_chunks, common_units, fs_argument_note, normalise_unit, require, select,
)

_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


def _field(raw: bytes, start: int, length: int) -> str:
    return raw[start:start + length].decode("ascii", errors="replace").strip()


def _header(path, bdf: bool):
    spath = str(path)
    what = "BDF" if bdf else "EDF"
    with open(path, "rb") as fh:
        fixed = fh.read(256)
        if len(fixed) < 256:
            raise InputFileError(spath, f"{what} header is truncated ({len(fixed)} of 256 bytes)")
        try:
            header_len = int(_field(fixed, 184, 8))
            n_records = int(_field(fixed, 236, 8))
            record_s = float(_field(fixed, 244, 8))
            ns = int(_field(fixed, 252, 4))
        except ValueError:
            raise InputFileError(spath, f"{what} header has a non-numeric length, record count, record "
                                        "duration or signal count field") from None
        if ns < 1 or header_len != 256 * (ns + 1):
            raise InputFileError(spath, f"{what} header says {ns} signals and {header_len} header bytes "
                                        f"(expected {256 * (max(ns, 0) + 1)})")
        header = fixed + fh.read(header_len - 256)
        if len(header) < header_len:
            raise InputFileError(spath, f"{what} header is truncated ({len(header)} of {header_len} bytes)")
        fh.seek(0, 2)
        size = fh.tell()
    return header, header_len, n_records, record_s, ns, size


def _per_signal(header: bytes, ns: int, offset: int, width: int) -> list[str]:
    base = 256 + offset * ns
    return [_field(header, base + i * width, width) for i in range(ns)]


def iter_edf(path, chunk_samples: int, opts: ReaderOptions, bdf: bool = False):
    spath = str(path)
    what = "BDF" if bdf else "EDF"
    edfio = require("edfio", f"{what} files")
    header, header_len, n_records, record_s, ns, size = _header(path, bdf)
    labels = _per_signal(header, ns, 0, 16)
    # field widths: label 16, transducer 80, dimension 8, pmin 8, pmax 8, dmin 8, dmax 8, prefilter 80,
    # samples per record 8
    try:
        spr = [int(v) for v in _per_signal(header, ns, 16 + 80 + 8 * 5 + 80, 8)]
    except ValueError:
        raise InputFileError(spath, f"{what} header has a non-numeric samples-per-record field") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = edfio.read_bdf if bdf else edfio.read_edf
            parsed = reader(memoryview(header), lazy_load_data=True) if not bdf else reader(memoryview(header))
    except Exception as exc:  # edfio raises ValueError and friends on malformed headers
        raise InputFileError(spath, f"{what} header cannot be parsed ({type(exc).__name__}: {exc})") from None
    width = 3 if bdf else 2
    record_bytes = sum(spr) * width
    if record_bytes <= 0:
        raise InputFileError(spath, f"{what} data records hold no samples")
    data_bytes = size - header_len
    if n_records == -1:
        n_records = data_bytes // record_bytes
    expected = n_records * record_bytes
    if n_records < 0 or expected != data_bytes:
        raise InputFileError(
            spath,
            f"{what} header says {n_records} data records ({expected} bytes) but the file holds {data_bytes} "
            f"bytes after the header ({data_bytes // record_bytes} complete records"
            f"{' and a partial one' if data_bytes % record_bytes else ''}); the file is truncated or its header "
            "is wrong",
        )
    if n_records == 0:
        raise InputFileError(spath, f"{what} file has no data records")
    signal_idx = [i for i, lab in enumerate(labels) if lab not in _ANNOTATION_LABELS]
    signals = list(parsed.signals)
    if len(signals) != len(signal_idx):
        raise InputFileError(spath, f"{what} header lists {len(signal_idx)} signals but edfio parsed "
                                    f"{len(signals)}")
    if not signals:
        raise InputFileError(spath, f"{what} file holds annotations only, no signal")
    names = []
    for s in signals:
        name, k = s.label or f"ch{len(names) + 1}", 2
        base = name
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    rates = [float(s.sampling_frequency) for s in signals]
    top = max(rates)
    picked = select(names, opts.channels, default=[i for i, r in enumerate(rates) if r == top])
    chosen_rates = sorted({rates[i] for i in picked})
    if len(chosen_rates) > 1:
        listing = ", ".join(f"{names[i]} {rates[i]:g} Hz" for i in picked)
        raise InputFileError(spath, f"the selected signals have different sampling rates ({listing}); select "
                                    "signals of one rate with --channels")
    fs = chosen_rates[0]
    units, unit_scale = common_units([s.physical_dimension for s in (signals[i] for i in picked)], "signals", spath)
    extra = {"format": "bdf" if bdf else "edf", "edf_type": _field(header, 192, 44) or what,
             "data_records": n_records, "record_duration_s": record_s,
             "unused_channels": tuple(names[i] for i in range(len(names)) if i not in picked),
             "physical_dimensions": tuple(normalise_unit(signals[i].physical_dimension) for i in picked)}
    if "EDF+D" in extra["edf_type"] or "BDF+D" in extra["edf_type"]:
        extra["note"] = "EDF+D (discontinuous): records are read back to back, gaps between them are not kept"
    fs_argument_note(extra, opts.fs, fs)
    info = StreamInfo(fs=fs, ch_names=tuple(names[i] for i in picked), units=units, source=spath, extra=extra)

    starts = np.concatenate(([0], np.cumsum(spr)))  # sample offset of each signal inside a record
    cols = [signal_idx[i] for i in picked]
    per_rec = spr[cols[0]]
    gains, offsets = [], []
    for j, i in enumerate(picked):
        s = signals[i]
        dmin, dmax, pmin, pmax = (float(v) for v in (s.digital_min, s.digital_max, s.physical_min, s.physical_max))
        if dmax == dmin:
            raise InputFileError(spath, f"{what} signal {names[i]!r} has digital minimum = maximum ({dmin:g})")
        g = (pmax - pmin) / (dmax - dmin)
        gains.append(g * unit_scale[j])
        offsets.append((pmin - dmin * g) * unit_scale[j])
    gains = np.array(gains)[:, None]
    offsets = np.array(offsets)[:, None]
    n_total = n_records * per_rec
    lazy = LazyFile(path)

    def read(start, stop):
        r0, r1 = start // per_rec, -(-stop // per_rec)
        fh = lazy.get()
        fh.seek(header_len + r0 * record_bytes)
        raw = fh.read((r1 - r0) * record_bytes)
        n_rec = len(raw) // record_bytes
        if bdf:
            b = np.frombuffer(raw[:n_rec * record_bytes], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            digital = np.where(v >= 1 << 23, v - (1 << 24), v).reshape(n_rec, -1)
        else:
            digital = np.frombuffer(raw[:n_rec * record_bytes], dtype="<i2").reshape(n_rec, -1)
        out = np.empty((len(cols), n_rec * per_rec))
        for j, c in enumerate(cols):
            out[j] = digital[:, starts[c]:starts[c] + per_rec].reshape(-1)
        out *= gains
        out += offsets
        lo = start - r0 * per_rec
        return out[:, lo:lo + (stop - start)]

    return info, block_chunks(info, n_total, read, chunk_samples, close=lazy.close)
