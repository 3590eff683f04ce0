"""OpenSignals (PLUX) HDF5 recordings, read with ``h5py``.

Layout: one group per device (named by its MAC address) with attributes
``sampling rate``, ``resolution``, ``channels`` (and, in newer files,
``sensor``/``label``), the samples in ``<device>/raw/channel_<k>`` (N x 1)
and ``<device>/raw/nSeq``; ``support/`` holds display decimations and is
ignored. Default device: the one with the highest rate (``device=`` picks
another). Samples are read in slices. When the file names the sensors,
EMG channels are converted to µV as for OpenSignals text (see
:mod:`biofeedback.io.readers.text`); otherwise the values stay ADC
``counts`` (the file does not say how to convert them).
"""

from __future__ import annotations

import re

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError
from biofeedback.io.readers._base import ReaderOptions, block_chunks, fs_argument_note, require, select
from biofeedback.io.readers.text import pick_device, plux_emg_scale


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _listing(value) -> list:
    if value is None:
        return []
    arr = np.atleast_1d(np.asarray(value))
    return [_text(v) if isinstance(v, (bytes, str, np.str_, np.bytes_)) else v.item() for v in arr]


def iter_hdf5(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    h5py = require("h5py", "HDF5 files")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(spath, f"HDF5 file cannot be opened ({exc})") from None
    try:
        devices = []
        for key in fh:
            group = fh[key]
            if isinstance(group, h5py.Group) and "raw" in group and "sampling rate" in group.attrs:
                devices.append({"mac": key, "sampling rate": float(group.attrs["sampling rate"]),
                                "device name": _text(group.attrs.get("device name", key)),
                                "device": _text(group.attrs.get("device", ""))})
        if not devices:
            raise InputFileError(spath, "HDF5 file is not an OpenSignals recording (no device group with "
                                        "'sampling rate' and raw/ channels)")
        dev = pick_device(devices, opts.device, spath)
        group = fh[dev["mac"]]
        raw = group["raw"]
        found = sorted((int(m.group(1)), k) for k in raw if (m := re.fullmatch(r"channel_(\d+)", k)))
        if not found:
            raise InputFileError(spath, f"OpenSignals device {dev['mac']} has no raw/channel_<k> datasets")
        attrs = group.attrs
        numbers = [k for k, _ in found]
        declared = [int(v) for v in _listing(attrs.get("channels"))]
        bits_list = [int(v) for v in _listing(attrs.get("resolution"))]
        sensors = [str(v) for v in _listing(attrs.get("sensor"))]
        labels = [str(v) for v in _listing(attrs.get("label"))]

        def per_channel(values, k, default):
            if declared and k in declared and len(values) == len(declared):
                return values[declared.index(k)]
            if len(values) == len(found):
                return values[numbers.index(k)]
            return values[0] if len(values) == 1 else default

        names = [per_channel(labels, k, f"CH{k}") if labels else f"CH{k}" for k in numbers]
        kinds = [per_channel(sensors, k, "") for k in numbers] if sensors else [""] * len(numbers)
        bits = [int(per_channel(bits_list, k, 16)) for k in numbers] if bits_list else [16] * len(numbers)
        emg = [i for i, s in enumerate(kinds) if s.upper().startswith("EMG")]
        picked = select(names, opts.channels, default=emg or None)
        datasets = [raw[found[i][1]] for i in picked]
        n_total = min(int(d.shape[0]) for d in datasets)
        if n_total == 0:
            raise InputFileError(spath, f"OpenSignals device {dev['mac']} has no samples")
        extra = {"format": "hdf5", "device_format": "OpenSignals HDF5", "device": dev["mac"],
                 "device_type": dev["device"], "devices": tuple(f"{d['mac']} ({d['sampling rate']:g} Hz)"
                                                                 for d in devices),
                 "resolution_bits": tuple(bits[i] for i in picked)}
        if "nsamples" in attrs and int(attrs["nsamples"]) != n_total:
            extra["nsamples_attribute"] = int(attrs["nsamples"])
        fs = dev["sampling rate"]
        fs_argument_note(extra, opts.fs, fs)
        scale = offset = None
        if picked and all(i in emg for i in picked):
            conv = [plux_emg_scale(dev, bits[i]) for i in picked]
            scale = np.array([c[0] for c in conv])[:, None]
            offset = np.array([c[1] for c in conv])[:, None]
            units = "uV"
            extra["conversion"] = conv[0][2]
        else:
            units = "counts"
            extra["conversion"] = "none: the file does not name the sensors (values are ADC codes)"
        info = StreamInfo(fs=fs, ch_names=tuple(names[i] for i in picked), units=units, source=spath, extra=extra)
    except BaseException:
        fh.close()
        raise

    def read(start, stop):
        out = np.empty((len(datasets), stop - start))
        for j, d in enumerate(datasets):
            block = d[start:stop]
            out[j] = np.asarray(block, dtype=np.float64).reshape(stop - start, -1)[:, 0]
        if scale is not None:
            out = out * scale + offset
        return out

    return info, block_chunks(info, n_total, read, chunk_samples, close=fh.close)
