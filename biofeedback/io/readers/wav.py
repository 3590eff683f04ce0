"""WAV (RIFF/WAVE) recordings, e.g. Backyard Brains SpikerBox or sound-card EMG.

The RIFF chunks are walked here (no library): PCM 8/16/24/32-bit integers
and 32/64-bit floats, plain or WAVE_FORMAT_EXTENSIBLE. Phone apps often
write a ``data`` chunk size larger than the file holds; the samples that are
there are read and the shortfall is noted in ``info.extra["truncated_bytes"]``.
Integer samples are sound-card codes (``counts``: the amplifier gain is not
in the file); float samples are ``a.u.``.
"""

from __future__ import annotations

import struct

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError
from biofeedback.io.readers._base import LazyFile, ReaderOptions, block_chunks, fs_argument_note, select

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def _scan(path):
    spath = str(path)
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        riff = fh.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise InputFileError(spath, "is not a RIFF/WAVE file")
        fmt = None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            body = pos + 8
            if cid == b"fmt ":
                raw = fh.read(min(csize, 40))
                if len(raw) < 16:
                    raise InputFileError(spath, "WAV 'fmt ' chunk is too short")
                tag, n_ch, rate, _bps, align, bits = struct.unpack("<HHIIHH", raw[:16])
                if tag == _EXTENSIBLE and len(raw) >= 26:
                    tag = struct.unpack("<H", raw[24:26])[0]
                fmt = (tag, n_ch, rate, align, bits)
            elif cid == b"data":
                if fmt is None:
                    raise InputFileError(spath, "WAV 'data' chunk comes before any 'fmt ' chunk")
                available = size - body
                return fmt, body, min(csize, available), max(0, csize - available)
            pos = body + csize + (csize & 1)
    if fmt is None:
        raise InputFileError(spath, "WAV file has no 'fmt ' chunk (truncated header?)")
    raise InputFileError(spath, "WAV file has no 'data' chunk (no samples)")


def iter_wav(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    (tag, n_ch, rate, align, bits), offset, n_bytes, missing = _scan(path)
    if n_ch < 1 or rate <= 0:
        raise InputFileError(spath, f"WAV header gives {n_ch} channels at {rate} Hz")
    width = (bits + 7) // 8
    if tag == _PCM and width in (1, 2, 3, 4):
        units = "counts"
    elif tag == _FLOAT and width in (4, 8):
        units = "a.u."
    else:
        raise InputFileError(spath, f"WAV sample format {tag:#x} with {bits} bits is not supported "
                                    "(PCM 8/16/24/32-bit or float 32/64-bit)")
    frame = width * n_ch
    if align and align != frame:
        raise InputFileError(spath, f"WAV block align {align} does not match {n_ch} channels of {bits} bits")
    n_frames = n_bytes // frame
    if n_frames == 0:
        raise InputFileError(spath, "WAV data chunk holds no complete sample")
    names = [f"ch{i + 1}" for i in range(n_ch)]
    picked = select(names, opts.channels)
    extra = {"format": "wav", "bits": bits, "sample_format": "float" if tag == _FLOAT else "pcm"}
    if missing or n_bytes % frame:
        extra["truncated_bytes"] = int(missing + n_bytes % frame)
    fs_argument_note(extra, opts.fs, rate)
    info = StreamInfo(fs=float(rate), ch_names=tuple(names[i] for i in picked), units=units, source=spath,
                      extra=extra)
    lazy = LazyFile(path)

    def read(start, stop):
        fh = lazy.get()
        fh.seek(offset + start * frame)
        raw = fh.read((stop - start) * frame)
        k = len(raw) // frame
        raw = raw[:k * frame]
        if tag == _FLOAT:
            x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        elif width == 1:
            x = np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0
        elif width == 3:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64)
        else:
            x = np.frombuffer(raw, dtype="<i2" if width == 2 else "<i4").astype(np.float64)
        return x.reshape(k, n_ch).T[picked]

    return info, block_chunks(info, n_frames, read, chunk_samples, close=lazy.close)
