"""Pieces every reader uses: options, units, channel selection, block streaming."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Callable, Iterator

import numpy as np

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.errors import BiofeedbackError, InputFileError, ParameterError
from biofeedback.io.csv_io import parse_channel_spec

#: Samples per chunk when the caller does not say.
DEFAULT_CHUNK = 65536


class MissingDependencyError(BiofeedbackError):
    """An optional package that a file format needs is not installed."""


@dataclass(frozen=True)
class ReaderOptions:
    """What the user can tell a reader (every field optional).

    Attributes
    ----------
    fs : float, optional
        Sampling rate in Hz for files that do not state one (CSV without a
        time column, spreadsheets, MATLAB files without an ``fs`` field).
        For delimited text it wins over a rate comment, as in
        :func:`~biofeedback.io.csv_io.read_csv`; formats whose header always
        states the rate (EDF, WFDB, WAV, OpenSignals, OpenBCI) keep theirs
        and note ``fs_argument_ignored`` in ``info.extra``.
    channels : str, int or sequence, optional
        Channel selection (names, 0-based positions, ranges, ``!`` to
        exclude), among the channels the format offers.
    cue_column : str or int, optional
        Label/cue column of delimited text.
    sheet : str or int, optional
        Spreadsheet sheet (name or 0-based index). Default: the first sheet
        whose name contains "emg", else the first sheet.
    device : str or int, optional
        OpenSignals device (MAC address, device name or 0-based position).
        Default: the device with the highest sampling rate.
    variable : str, optional
        MATLAB variable holding the signals (``EMG`` or ``EMG.channelData``).
        Default: found from common layouts.
    resample : float, optional
        For delimited text whose time column is irregular: hold each sample
        until the next time stamp on a regular grid at this rate (Hz).
    """

    fs: float | None = None
    channels: object = None
    cue_column: object = None
    sheet: object = None
    device: object = None
    variable: str | None = None
    resample: float | None = None

    @classmethod
    def from_kwargs(cls, **kwargs) -> "ReaderOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ParameterError("reader option", f"one of {', '.join(sorted(known))}", unknown[0])
        return cls(**kwargs)


def require(module: str, what: str, package: str | None = None, extra: str = "formats"):
    """Import an optional module, or raise a one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = package or module
        raise MissingDependencyError(
            f"reading {what} needs the Python package {package!r}: pip install 'biofeedback[{extra}]' "
            f"(or pip install {package})"
        ) from None


_UNIT_ALIASES = {"uv": "uV", "µv": "uV", "μv": "uV", "microvolt": "uV", "microvolts": "uV",
                 "mv": "mV", "millivolt": "mV", "millivolts": "mV", "v": "V", "volt": "V", "volts": "V",
                 "nv": "nV", "counts": "counts", "count": "counts", "adu": "counts", "adc": "counts"}
_TO_UV = {"V": 1e6, "mV": 1e3, "uV": 1.0, "nV": 1e-3}


def normalise_unit(unit) -> str:
    """Spell a unit the toolkit's way (``uV``, ``mV``, ``V``, ``counts``; ``a.u.`` when unknown)."""
    text = str(unit or "").strip()
    if not text:
        return "a.u."
    return _UNIT_ALIASES.get(text.lower(), text)


def common_units(units, what: str, path: str) -> tuple[str, np.ndarray]:
    """One unit for channels that may differ: (unit, scale per channel).

    Voltages in different units are all scaled to µV; anything else must
    agree across channels.
    """
    units = [normalise_unit(u) for u in units]
    if len(set(units)) <= 1:
        return (units[0] if units else "a.u."), np.ones(len(units))
    if all(u in _TO_UV for u in units):
        return "uV", np.array([_TO_UV[u] for u in units])
    raise InputFileError(path, f"the selected {what} have different units ({', '.join(units)}); "
                               "select channels of one kind with --channels")


def select(names, spec, default=None, what="channels") -> list[int]:
    """Positions of the selected names: the user's spec, else ``default`` (all when None)."""
    if spec is None:
        return list(range(len(names))) if default is None else list(default)
    try:
        return parse_channel_spec(spec, names)
    except ParameterError as exc:
        raise ParameterError(what, "names or 0-based positions of this file's channels", str(exc)) from None


def fs_argument_note(extra: dict, fs_arg, fs_file) -> None:
    """Record that a rate given by the user was not used (the file states its own)."""
    if fs_arg is not None and abs(float(fs_arg) - float(fs_file)) > 1e-9 * float(fs_file):
        extra["fs_argument_ignored"] = float(fs_arg)


def block_chunks(info: StreamInfo, n_total: int, read_block: Callable[[int, int], np.ndarray],
                 chunk_samples: int, close: Callable[[], None] | None = None) -> Iterator[Chunk]:
    """Yield chunks of ``chunk_samples`` by calling ``read_block(start, stop)``.

    ``close`` runs when the iterator ends, fails or is discarded.
    """
    try:
        for start in range(0, n_total, chunk_samples):
            stop = min(n_total, start + chunk_samples)
            data = np.ascontiguousarray(read_block(start, stop), dtype=np.float64)
            if data.shape[1] != stop - start:
                raise InputFileError(info.source, f"ended early: {start + data.shape[1]} of {n_total} samples "
                                                  "could be read (truncated file?)")
            check_finite(data, info, start)
            yield Chunk(data, start, info)
    finally:
        if close is not None:
            close()


def check_finite(data: np.ndarray, info: StreamInfo, first: int) -> None:
    """Reject NaN and infinity, naming the channel and sample."""
    if data.size and not np.isfinite(data).all():
        ch, k = np.argwhere(~np.isfinite(data))[0]
        raise InputFileError(info.source, f"sample {first + int(k)} of channel {info.ch_names[ch]!r} is "
                                          f"{data[ch, k]!r}, not a number; remove or fill the gap first")


def retag(info: StreamInfo, chunks) -> Iterator[Chunk]:
    """The same chunks carrying other metadata (names, units)."""
    for chunk in chunks:
        yield chunk.replace(info=info)


class LazyFile:
    """A binary file opened on first use (so an iterator never started holds no handle)."""

    def __init__(self, path):
        self.path = path
        self._fh = None

    def get(self):
        if self._fh is None:
            self._fh = open(self.path, "rb")
        return self._fh

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
