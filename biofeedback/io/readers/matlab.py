"""MATLAB ``.mat`` recordings (version 4/5/7 with SciPy, 7.3 with ``h5py``).

MAT files have no standard layout, so the signals are looked for:

* ``variable="NAME"`` names a numeric matrix, or a struct holding one
  (``"EMG"`` or ``"EMG.channelData"``);
* otherwise, among top-level matrices and the fields of top-level structs,
  the matrix with the most samples wins; fields named ``data``,
  ``channelData``, ``emg``, ``signal(s)``, ``samples``, ``raw``, ``values``
  win over other names when two are equally large.

The rate is a scalar named ``fs``, ``Fs``, ``srate``, ``fsamp``,
``sampling_rate``, ``samplingRate``, ``SampleRate``, ``sample_rate``,
``samplerate`` or ``sf`` in the same struct (or at top level); else the
caller's ``fs``. Channel names come from a field ``labels``/
``channelNames``/``channel_names``/``names`` of the right length, units
from ``units``/``unit``. The longer axis is time. The whole file is read
into memory (SciPy cannot read MAT files in parts).
"""

from __future__ import annotations

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError, ParameterError, check_sampling_rate
from biofeedback.io.readers._base import ReaderOptions, block_chunks, normalise_unit, require, select

_FS_NAMES = ("fs", "srate", "fsamp", "sampling_rate", "samplingrate", "samplerate", "sample_rate",
             "sampling_frequency", "sf", "freq")
_DATA_NAMES = ("data", "channeldata", "emg", "signal", "signals", "samples", "raw", "values", "x")
_LABEL_NAMES = ("labels", "channelnames", "channel_names", "names", "label", "chanlabels")
_UNIT_NAMES = ("units", "unit")


def _fields(obj) -> dict:
    """Fields of a MATLAB struct as a dict (SciPy mat_struct, dict from h5py, numpy record)."""
    if isinstance(obj, dict):
        return obj
    names = getattr(obj, "_fieldnames", None)
    if names is not None:
        return {n: getattr(obj, n) for n in names}
    if isinstance(obj, np.ndarray) and obj.dtype.names:
        return {n: obj[n].squeeze() if obj.size == 1 else obj[n] for n in obj.dtype.names}
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.size == 1:
        return _fields(obj.item())
    return {}


def _numeric(value) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.dtype.kind in "iufb" and value.ndim in (1, 2) and value.size > 1:
        return value
    return None


def _scalar(value) -> float | None:
    try:
        arr = np.asarray(value)
        if arr.dtype.kind in "iuf" and arr.size == 1:
            return float(arr.reshape(-1)[0])
    except (TypeError, ValueError):
        pass
    return None


def _strings(value) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    try:
        arr = np.asarray(value, dtype=object).reshape(-1)
    except (TypeError, ValueError):
        return None
    out = []
    for v in arr:
        if isinstance(v, (str, np.str_)):
            out.append(str(v).strip())
        elif isinstance(v, np.ndarray) and v.dtype.kind == "U" and v.size == 1:
            out.append(str(v.item()).strip())
        else:
            return None
    return out


def _load(path):
    spath = str(path)
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB 7.3"):
        h5py = require("h5py", "MATLAB 7.3 files")
        out = {}
        with h5py.File(path, "r") as f:
            def convert(node):
                if isinstance(node, h5py.Dataset):
                    arr = node[()]
                    if node.attrs.get("MATLAB_class", b"") == b"char":
                        return "".join(chr(c) for c in np.asarray(arr).reshape(-1))
                    return np.asarray(arr).T if isinstance(arr, np.ndarray) and arr.ndim == 2 else arr
                return {k: convert(node[k]) for k in node if not k.startswith("#")}
            for key in f:
                if not key.startswith("#"):
                    out[key] = convert(f[key])
        return out
    sio = require("scipy.io", "MATLAB files", package="scipy")
    try:
        return sio.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError on damaged files
        raise InputFileError(spath, f"MATLAB file cannot be read ({type(exc).__name__}: {exc})") from None


def _candidates(top: dict):
    """(path, matrix, owning struct fields) for every numeric matrix at top level or one struct down."""
    for name, value in top.items():
        if name.startswith("__"):
            continue
        arr = _numeric(value)
        if arr is not None:
            yield name, arr, top
            continue
        fields = _fields(value)
        for fname, fvalue in fields.items():
            arr = _numeric(fvalue)
            if arr is not None:
                yield f"{name}.{fname}", arr, fields


def _lookup(fields: dict, names) -> object:
    for key, value in fields.items():
        if key.lower() in names:
            return value
    return None


def iter_mat(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    top = _load(path)
    found = list(_candidates(top))
    if opts.variable:
        wanted = str(opts.variable)
        match = [c for c in found if c[0] == wanted or c[0].split(".")[0] == wanted]
        if not match:
            listed = ", ".join(c[0] for c in found) or "none"
            raise ParameterError("MATLAB variable", f"a numeric matrix or a struct holding one (found: {listed})",
                                 wanted)
        found = match
    if not found:
        names = ", ".join(k for k in top if not k.startswith("__")) or "none"
        raise InputFileError(spath, f"MATLAB file holds no numeric matrix (variables: {names}); name one with "
                                    "--mat-variable")
    found.sort(key=lambda c: (-c[1].size, c[0].split(".")[-1].lower() not in _DATA_NAMES, c[0]))
    vpath, arr, owner = found[0]
    data = np.asarray(arr, dtype=np.float64)
    data = data.reshape(1, -1) if data.ndim == 1 else (data.T if data.shape[0] > data.shape[1] else data)
    fs_value = _scalar(_lookup(owner, _FS_NAMES))
    if fs_value is None:
        fs_value = _scalar(_lookup(top, _FS_NAMES))
    extra = {"format": "mat", "variable": vpath}
    if fs_value is None or not fs_value > 0:
        if opts.fs is None:
            raise InputFileError(spath, f"MATLAB file has no sampling rate beside {vpath!r} (no field fs, srate, "
                                        "sampling_rate...); pass --fs HZ")
        fs = check_sampling_rate(opts.fs, "fs")
        extra["fs_source"] = "argument"
    else:
        fs = fs_value
        extra["fs_source"] = "file"
        if opts.fs is not None and abs(float(opts.fs) - fs) > 1e-9 * fs:
            extra["fs_argument_ignored"] = float(opts.fs)
    labels = _strings(_lookup(owner, _LABEL_NAMES))
    n_ch = data.shape[0]
    names = labels if labels and len(labels) == n_ch and len(set(labels)) == n_ch else [
        f"ch{i + 1}" for i in range(n_ch)]
    unit_text = _strings(_lookup(owner, _UNIT_NAMES))
    units = normalise_unit(unit_text[0]) if unit_text and len(set(unit_text)) == 1 else "a.u."
    picked = select(names, opts.channels)
    data = np.ascontiguousarray(data[picked])
    info = StreamInfo(fs=fs, ch_names=tuple(names[i] for i in picked), units=units, source=spath, extra=extra)
    return info, block_chunks(info, data.shape[1], lambda a, b: data[:, a:b], chunk_samples)
