"""Delimited-text recordings: plain CSV/TSV, OpenBCI GUI, OpenSignals, PLUX Simple Text.

All of them are streamed by :func:`biofeedback.io.csv_io.iter_csv`; this
module only decides which columns are channels, the rate and the units.

OpenBCI GUI (``%OpenBCI Raw EEG Data`` / ``%OpenBCI Raw EXG Data``)
    The current GUI (v5/v6) writes a header row (``Sample Index, EXG Channel
    0, ...``); the EXG columns are the channels, in µV. Older GUIs (v3/v4)
    write no header row: ``index, EXG..., 3 accelerometer/aux columns[,
    clock time]``; the EXG count is ``%Number of channels`` when given, else
    the numeric columns less the index and the three aux columns. The
    sample index wraps (0-255 Cyton, 0-200 Ganglion); steps other than +1
    that are not a wrap to 0 are counted as ``index_jumps`` (lost packets).
OpenSignals text (``# OpenSignals Text File Format``)
    Line 2 is a JSON header with one entry per device; the devices' columns
    stand side by side (``nSeq, DI, channels...`` each), one row per sample
    of the fastest device. Default device: the one with the highest sampling
    rate (``device=`` picks another, read whole); a slower device has ``NaN``
    in the rows where it took no sample, so its samples are its rows without
    ``NaN``. Default channels: those whose sensor is ``EMG`` (all when
    none is). Raw EMG codes are converted to µV with the PLUX EMG transfer
    function ``(ADC / 2**bits - 1/2) * VCC / gain`` (VCC 3 V and gain 1000 for
    biosignalsplux/bioplux hubs; 3.3 V and 1009 for BITalino), as
    ``info.extra["conversion"]`` records; other sensors stay in counts.
PLUX/BITalino Simple Text Format (``# Simple Text Format``)
    The rate comes from ``# Sampling Rate (Hz):= ...``; values are ADC codes
    (``counts``), named after ``# Labels:=`` when the counts agree.
"""

from __future__ import annotations

import json
import re

import numpy as np

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.errors import InputFileError, ParameterError, check_sampling_rate
from biofeedback.io.csv_io import iter_csv
from biofeedback.io.readers._base import ReaderOptions, block_chunks, fs_argument_note, retag, select

_HEAD_BYTES = 1 << 16


def _head_lines(path, n_bytes=_HEAD_BYTES) -> list[str]:
    with open(path, "rb") as fh:
        raw = fh.read(n_bytes)
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# ---------------------------------------------------------------------------
# plain CSV (and Simple Text Format)
# ---------------------------------------------------------------------------
def iter_plain(path, chunk_samples: int, opts: ReaderOptions):
    if opts.resample is not None:
        return iter_resampled(path, chunk_samples, opts)
    info, chunks = iter_csv(path, chunk_samples=chunk_samples, fs=opts.fs, channels=opts.channels,
                            cue_column=opts.cue_column)
    lines = _head_lines(path, 4096)
    if lines and lines[0].strip().lower().startswith("# simple text format"):
        info = _simple_text_info(info, lines)
    info.extra["format"] = "csv"
    return info, retag(info, chunks)


def _with(info: StreamInfo, **changes) -> StreamInfo:
    from dataclasses import replace

    return replace(info, **changes)


def _simple_text_info(info: StreamInfo, lines) -> StreamInfo:
    extra = info.extra  # the reader updates its counters in place: keep the same mapping
    extra["device_format"] = "PLUX Simple Text Format"
    names = info.ch_names
    for line in lines[:20]:
        body = line.lstrip("#").strip()
        key, sep, value = body.partition(":=")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "resolution":
            extra["resolution_bits"] = value.strip()
        elif key == "labels":
            labels = [v for v in re.split(r"[\s,;]+", value.strip()) if v]
            if len(labels) == len(names) and all(n.startswith("ch") for n in names):
                names = tuple(labels)
    units = "counts" if info.units == "a.u." else info.units
    return _with(info, ch_names=names, units=units)


# ---------------------------------------------------------------------------
# irregular time column -> regular grid (sample and hold)
# ---------------------------------------------------------------------------
_TIME_UNIT_OF = {"s": 1.0, "sec": 1.0, "secs": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3, "millis": 1e-3,
                 "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "micros": 1e-6, "microseconds": 1e-6}
_TIME_WORDS = ("time", "t", "timestamp", "elapsed", "clock", "seconds", "ms", "millis", "milliseconds")


def _time_column(names) -> tuple[str, float | None] | None:
    """(name, seconds per unit or None when the name gives no unit) of a time-like column."""
    for name in names:
        low = name.strip().lower()
        m = re.fullmatch(r"([a-z_ ]+?)[\s_]*(?:[\(\[]\s*([a-zµ]+)\s*[\)\]]|_([a-zµ]+))?", low)
        if not m:
            continue
        base, unit = m.group(1).strip(), m.group(2) or m.group(3)
        if base in ("ms", "millis", "milliseconds"):
            return name, 1e-3
        if base == "seconds":
            return name, 1.0
        if base in _TIME_WORDS:
            return name, _TIME_UNIT_OF.get(unit) if unit else None
    return None


def iter_resampled(path, chunk_samples: int, opts: ReaderOptions):
    """Read a CSV with an irregular time column onto a regular grid at ``opts.resample`` Hz.

    Each output sample ``t0 + k / fs`` takes the value of the last row whose
    time stamp is not later (zero-order hold), so a device stream that was
    sample-and-held onto a jittery clock comes out as it was meant.
    """
    fs = check_sampling_rate(opts.resample, "resample rate")
    probe, probe_chunks = iter_csv(path, chunk_samples=16, fs=fs, time_column=None, cue_column=opts.cue_column)
    del probe_chunks
    columns = list(probe.extra.get("columns", probe.ch_names))
    found = _time_column(probe.ch_names)
    if found is None:
        raise InputFileError(str(path), f"resampling needs a time column (named time, t, time_ms, ...); "
                                        f"columns are {', '.join(columns)}")
    tname, scale = found
    candidates = [n for n in probe.ch_names if n != tname]
    chosen = [candidates[i] for i in select(candidates, opts.channels)]
    if not chosen:
        raise ParameterError("channels", "at least one channel besides the time column", opts.channels)
    info0, chunks = iter_csv(path, chunk_samples=chunk_samples, fs=fs, time_column=None,
                             channels=[tname] + chosen, cue_column=opts.cue_column)
    extra = info0.extra
    extra.update(format="csv", time_column=tname, resampled_hz=fs, fs_source="resampled (sample and hold)")
    info = StreamInfo(fs=fs, ch_names=tuple(chosen), units=info0.units, source=str(path), extra=extra)
    return info, _hold(info, chunks, fs, scale, chunk_samples)


def _hold(info, chunks, fs, scale, chunk_samples):
    """Sample-and-hold the rows of ``chunks`` (time in row 0) onto the grid ``t0 + k / fs``."""
    t0 = None
    k_next = 0  # next grid index to emit
    last_val = None
    last_cue = None
    out_data, out_cues, held = [], [], 0
    first_out = 0
    irregular = 0
    prev_t = None

    def flush(final=False):
        nonlocal out_data, out_cues, held, first_out
        while held >= chunk_samples or (final and held):
            data = np.concatenate(out_data, axis=1)
            cues = np.concatenate(out_cues) if out_cues else None
            n = min(chunk_samples, data.shape[1])
            layers = {"cues": cues[:n].reshape(1, -1)} if cues is not None else {}
            yield Chunk(np.ascontiguousarray(data[:, :n]), first_out, info, layers=layers)
            first_out += n
            out_data = [data[:, n:]] if n < data.shape[1] else []
            out_cues = [cues[n:]] if cues is not None and n < len(cues) else []
            held -= n

    for chunk in chunks:
        t_raw = chunk.data[0]
        if scale is None:  # no unit in the name: decide from the first steps as csv_io does
            steps = np.diff(t_raw[:1000])
            med = float(np.median(steps)) if steps.size else 1.0
            scale = 1.0 if med < 0.5 else (1e-3 if med * 1e-3 < 0.5 else 1e-6)
            info.extra["time_unit"] = {1.0: "s", 1e-3: "ms", 1e-6: "us"}[scale]
        t = t_raw * scale
        vals = chunk.data[1:]
        cue_layer = chunk.layers.get("cues") if chunk.layers else None
        cues = None if cue_layer is None else np.asarray(cue_layer).reshape(-1)
        if t0 is None:
            t0 = float(t[0])
        series = t if prev_t is None else np.concatenate(([prev_t], t))
        back = np.flatnonzero(np.diff(series) < 0)
        if back.size:
            raise InputFileError(info.source, f"time column goes backwards ({series[back[0] + 1]:.9g} s after "
                                              f"{series[back[0]]:.9g} s); cannot resample")
        irregular += int(np.count_nonzero(np.abs(np.diff(series) * fs - 1.0) > 0.5))
        prev_t = float(t[-1])
        # grid points up to the last time stamp seen so far
        k_stop = int(np.floor((t[-1] - t0) * fs + 1e-9)) + 1
        if k_stop > k_next:
            grid = t0 + np.arange(k_next, k_stop) / fs
            idx = np.searchsorted(t, grid + 1e-12, side="right") - 1  # last row at or before each grid time
            before = idx < 0
            idx_c = np.maximum(idx, 0)
            block = vals[:, idx_c]
            if before.any():
                block[:, before] = last_val[:, None]
            out_data.append(block)
            if cues is not None:
                cb = cues[idx_c].astype(object)
                if before.any():
                    cb[before] = last_cue
                out_cues.append(cb)
            held += block.shape[1]
            k_next = k_stop
        last_val = vals[:, -1].copy()
        if cues is not None:
            last_cue = cues[-1]
        yield from flush()
    info.extra["time_irregular_steps"] = irregular
    yield from flush(final=True)


# ---------------------------------------------------------------------------
# OpenBCI GUI
# ---------------------------------------------------------------------------
_KV = re.compile(r"^%\s*([^=]+?)\s*=\s*(.*?)\s*$")


def iter_openbci(path, chunk_samples: int, opts: ReaderOptions):
    lines = _head_lines(path)
    meta = {}
    n_comment = 0
    for line in lines:
        if not line.startswith("%"):
            break
        n_comment += 1
        m = _KV.match(line)
        if m:
            meta[m.group(1).lower()] = m.group(2)
    body = [ln for ln in lines[n_comment:] if ln.strip()]
    if not body:
        raise InputFileError(str(path), "OpenBCI file has a header but no data rows")
    fs_text = meta.get("sample rate", "")
    m = re.match(r"([0-9.]+)", fs_text)
    if not m:
        raise InputFileError(str(path), f"OpenBCI header has no '%Sample Rate = ... Hz' line (found {fs_text!r})")
    fs = float(m.group(1))
    n_declared = None
    if "number of channels" in meta:
        try:
            n_declared = int(meta["number of channels"])
        except ValueError:
            pass
    first = [f.strip() for f in body[0].split(",")]
    has_header = bool(first) and first[0].lower().startswith("sample index")
    extra_meta = {"device_format": "OpenBCI GUI " + ("v5+" if has_header else "v3/v4"),
                  "board": meta.get("board", "")}
    if has_header:
        exg = [n for n in first if n.lower().startswith("exg channel")]
        if not exg:
            raise InputFileError(str(path), "OpenBCI header row has no 'EXG Channel' columns")
        chosen = [exg[i] for i in select(exg, opts.channels)]
        info0, chunks = iter_csv(path, chunk_samples=chunk_samples, fs=fs, channels=chosen, time_column=None)
        extra = info0.extra
        extra.update(extra_meta, format="openbci")
        fs_argument_note(extra, opts.fs, fs)
        info = StreamInfo(fs=fs, ch_names=tuple(chosen), units="uV", source=str(path), extra=extra)
        return info, retag(info, chunks)
    # old format: index, EXG..., 3 aux, [time text]
    numeric = 0
    for f in first:
        try:
            float(f)
            numeric += 1
        except ValueError:
            break
    n_exg = n_declared if n_declared else numeric - 4
    if n_exg < 1 or n_exg + 1 > numeric:
        raise InputFileError(str(path), f"cannot tell the EXG columns of this OpenBCI row ({numeric} numeric "
                                        "fields; expected the sample index, the EXG channels and 3 aux columns)")
    names = [f"EXG Channel {i}" for i in range(n_exg)]
    picked = select(names, opts.channels)
    info0, chunks = iter_csv(path, chunk_samples=chunk_samples, fs=fs, time_column=None,
                             channels=[0] + [1 + i for i in picked])
    extra = info0.extra
    extra.update(extra_meta, format="openbci", index_column="sample index", index_jumps=0)
    fs_argument_note(extra, opts.fs, fs)
    info = StreamInfo(fs=fs, ch_names=tuple(names[i] for i in picked), units="uV", source=str(path), extra=extra)
    return info, _drop_index(info, chunks)


def _drop_index(info, chunks):
    """Remove the leading sample-index row, counting jumps that are neither +1 nor a wrap to 0."""
    last = None
    for chunk in chunks:
        idx = chunk.data[0]
        prev = np.concatenate(([idx[0] - 1 if last is None else last], idx[:-1]))
        jumps = (idx - prev != 1) & (idx != 0)
        info.extra["index_jumps"] += int(np.count_nonzero(jumps))
        last = float(idx[-1])
        yield Chunk(np.ascontiguousarray(chunk.data[1:]), chunk.first_sample, info, layers=chunk.layers)


# ---------------------------------------------------------------------------
# OpenSignals text
# ---------------------------------------------------------------------------
#: PLUX EMG sensor transfer functions: (VCC in V, gain) by device family.
PLUX_EMG = {"bitalino": (3.3, 1009.0), "default": (3.0, 1000.0)}


def opensignals_devices(header: dict, path: str) -> list[dict]:
    """The devices of an OpenSignals JSON header, in column order, with their column offsets."""
    devices = []
    for key, dev in header.items():
        if not isinstance(dev, dict):
            continue
        devices.append({"mac": key, **dev})
    if not devices:
        raise InputFileError(path, "OpenSignals header lists no device")
    devices.sort(key=lambda d: d.get("position", 0))
    offset = 0
    for d in devices:
        d["_offset"] = offset
        offset += len(d.get("column", []))
    return devices


def pick_device(devices: list[dict], wanted, path: str) -> dict:
    if wanted is None:
        return max(devices, key=lambda d: float(d.get("sampling rate", 0)))  # first of the fastest
    text = str(wanted).strip()
    for d in devices:
        if text.lower() in (str(d.get("mac", "")).lower(), str(d.get("device name", "")).lower()):
            return d
    if text.isdigit() and int(text) < len(devices):
        return devices[int(text)]
    listed = ", ".join(f"{i}:{d['mac']} ({d.get('sampling rate')} Hz)" for i, d in enumerate(devices))
    raise ParameterError("device", f"a device of this file ({listed})", wanted)


def plux_emg_scale(device: dict, bits: int) -> tuple[float, float, str]:
    """(scale, offset) so that µV = code * scale + offset, and a description."""
    family = "bitalino" if "bitalino" in str(device.get("device", "")).lower() else "default"
    vcc, gain = PLUX_EMG[family]
    scale = vcc / gain / 2 ** bits * 1e6
    offset = -0.5 * vcc / gain * 1e6
    return scale, offset, f"EMG uV = (ADC / 2**{bits} - 0.5) * {vcc:g} V / {gain:g} * 1e6"


def iter_opensignals(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    lines = _head_lines(path, 1 << 20)
    if len(lines) < 3 or not lines[1].startswith("#"):
        raise InputFileError(spath, "OpenSignals file lacks its JSON header line (line 2)")
    try:
        header = json.loads(lines[1].lstrip("#").strip())
    except json.JSONDecodeError as exc:
        raise InputFileError(spath, f"OpenSignals JSON header cannot be parsed ({exc.msg})", line=2) from None
    if not isinstance(header, dict):
        raise InputFileError(spath, "OpenSignals JSON header is not an object", line=2)
    devices = opensignals_devices(header, spath)
    dev = pick_device(devices, opts.device, spath)
    labels = list(dev.get("label", []))
    columns = list(dev.get("column", []))
    sensors = list(dev.get("sensor", [""] * len(labels)))
    bits = list(dev.get("resolution", [16] * len(labels)))
    if not labels or any(lab not in columns for lab in labels):
        raise InputFileError(spath, f"OpenSignals header of device {dev['mac']} has labels {labels} that are not "
                                    f"among its columns {columns}")
    try:
        fs = float(dev["sampling rate"])
    except (KeyError, TypeError, ValueError):
        raise InputFileError(spath, f"OpenSignals header of device {dev['mac']} has no sampling rate") from None
    emg = [i for i, s in enumerate(sensors) if str(s).upper().startswith("EMG")]
    picked = select(labels, opts.channels, default=emg or None)
    file_cols = [dev["_offset"] + columns.index(labels[i]) for i in picked]
    converted = bool(dev.get("convertedValues", 0))
    all_emg = all(i in emg for i in picked)
    extra = {"format": "opensignals", "device": dev["mac"], "device_type": dev.get("device", ""),
             "devices": tuple(f"{d['mac']} ({d.get('sampling rate')} Hz)" for d in devices),
             "sensors": tuple(str(sensors[i]) if i < len(sensors) else "" for i in picked),
             "resolution_bits": tuple(int(bits[i]) if i < len(bits) else 16 for i in picked)}
    fs_argument_note(extra, opts.fs, fs)
    if converted:
        units, scales, offsets = ("mV" if all_emg else "a.u."), None, None
        extra["conversion"] = "values converted by OpenSignals"
    elif all_emg:
        conv = [plux_emg_scale(dev, int(bits[i]) if i < len(bits) else 16) for i in picked]
        scales = np.array([c[0] for c in conv])[:, None]
        offsets = np.array([c[1] for c in conv])[:, None]
        units = "uV"
        extra["conversion"] = conv[0][2]
    else:
        units, scales, offsets = "counts", None, None
    names = tuple(labels[i] for i in picked)
    fastest = max(float(d.get("sampling rate", 0)) for d in devices)
    if len(devices) > 1 and fs < fastest:
        data = _read_sparse_device(path, file_cols)
        extra["note"] = "device slower than the file's fastest: its samples are the rows without NaN"
        info = StreamInfo(fs=fs, ch_names=names, units=units, source=spath, extra=extra)
        if scales is not None:
            data = data * scales + offsets
        return info, block_chunks(info, data.shape[1], lambda a, b: data[:, a:b], chunk_samples)
    info0, chunks = iter_csv(path, chunk_samples=chunk_samples, fs=fs, channels=file_cols, time_column=None,
                             delimiter="\t")
    info0.extra.update(extra)
    info = StreamInfo(fs=fs, ch_names=names, units=units, source=spath, extra=info0.extra)

    def convert(chunks):
        for chunk in chunks:
            data = chunk.data if scales is None else chunk.data * scales + offsets
            yield Chunk(data, chunk.first_sample, info)

    return info, convert(chunks)


def _read_sparse_device(path, file_cols) -> np.ndarray:
    """Columns of a device slower than the file's fastest: its samples are the rows without NaN."""
    try:
        table = np.loadtxt(path, comments="#", delimiter="\t", usecols=file_cols, ndmin=2)
    except ValueError as exc:
        raise InputFileError(str(path), f"cannot be read as numbers ({str(exc).splitlines()[0]})") from None
    nan = np.isnan(table)
    partial = np.flatnonzero(nan.any(axis=1) & ~nan.all(axis=1))
    if partial.size:
        raise InputFileError(str(path), f"data row {int(partial[0]) + 1} has numbers and NaN in the columns of one "
                                        "device; expected all or none")
    rows = ~nan.any(axis=1)
    if not rows.any():
        raise InputFileError(str(path), "this device has no samples (its columns are all NaN)")
    return np.ascontiguousarray(table[rows].T)
