"""Core data types: stream metadata, chunks of samples and event records.

Arrays are always ``(n_channels, n_samples)``: time is on the last axis.
The sampling rate travels with the data in :class:`StreamInfo`; nothing in
the toolkit assumes a default rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from biofeedback.errors import ParameterError, check_sampling_rate


@dataclass(frozen=True)
class StreamInfo:
    """Metadata of a stream of samples.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz (> 0).
    ch_names : tuple of str
        One name per channel, in row order.
    units : str
        Physical unit of the samples, e.g. ``"uV"``, ``"mV"``, ``"V"`` or
        ``"counts"`` (raw ADC codes).
    source : str
        Where the samples come from (file path, port, ``"simulator"``).
    extra : mapping
        Free-form metadata (device, protocol, resolution…).
    """

    fs: float
    ch_names: tuple[str, ...]
    units: str = "uV"
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "fs", check_sampling_rate(self.fs, "sampling rate (fs)"))
        names = tuple(str(n) for n in self.ch_names)
        if not names:
            raise ParameterError("ch_names", "at least one channel", names)
        object.__setattr__(self, "ch_names", names)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.ch_names)

    def with_channels(self, ch_names) -> "StreamInfo":
        """Return a copy with other channel names (e.g. after selection)."""
        return replace(self, ch_names=tuple(ch_names))

    @classmethod
    def default_names(cls, n_channels: int, fs: float, **kwargs) -> "StreamInfo":
        """Build metadata with channels named ``ch1 … chN``."""
        return cls(fs=fs, ch_names=tuple(f"ch{i + 1}" for i in range(n_channels)), **kwargs)


@dataclass(frozen=True)
class Event:
    """One detected (or true) event on one channel.

    Parameters
    ----------
    kind : str
        ``"contraction"``, ``"spasm"``, ``"cramp"``, ``"gap"``… (see
        :mod:`biofeedback.detect`).
    channel : str
        Channel name.
    onset_s : float
        Start time in seconds from the first sample of the stream.
    offset_s : float
        End time in seconds (>= ``onset_s``).
    peak : float
        Peak envelope amplitude during the event, in the stream's units
        (NaN when it does not apply).
    extra : mapping
        Further fields (e.g. ``n_samples`` lost for a gap, ``cue``).
    """

    kind: str
    channel: str
    onset_s: float
    offset_s: float
    peak: float = math.nan
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.offset_s - self.onset_s

    def as_row(self) -> dict:
        """Flat dictionary for CSV writers (extra fields appended)."""
        row = {
            "channel": self.channel,
            "kind": self.kind,
            "onset_s": self.onset_s,
            "offset_s": self.offset_s,
            "duration_s": self.duration_s,
            "peak": self.peak,
        }
        for key, value in self.extra.items():
            row.setdefault(key, value)
        return row


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive samples of a stream.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Samples, time on the last axis.
    first_sample : int
        Index of ``data[:, 0]`` counted from the stream's first sample. The
        next chunk of a gap-free stream starts at
        ``first_sample + n_samples``; anything else is a gap (see
        :attr:`stop`).
    info : StreamInfo
        Metadata of the stream.
    events : tuple of Event
        Events completed while this chunk was processed (set by detectors).
    layers : mapping of str to ndarray
        Intermediate signals kept by a :class:`~biofeedback.dsp.Pipeline`
        (e.g. ``"filtered"``), each shaped like ``data``.
    cues : ndarray, shape (n_samples,), optional
        The cue in force at each sample (``"rest"``/``"contract"`` from a
        protocol or simulator, or a file's label column), when the stream
        has a cue track. Stages pass it through unchanged.
    """

    data: np.ndarray
    first_sample: int
    info: StreamInfo
    events: tuple = ()
    layers: Mapping[str, np.ndarray] = field(default_factory=dict)
    cues: np.ndarray | None = None

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise ParameterError("chunk data", "a 2-D array (n_channels, n_samples)", f"shape {data.shape}")
        if data.shape[0] != self.info.n_channels:
            raise ParameterError(
                "chunk data",
                f"{self.info.n_channels} rows (one per channel)",
                f"{data.shape[0]} rows",
            )
        object.__setattr__(self, "data", data)
        if self.cues is not None and len(self.cues) != data.shape[1]:
            raise ParameterError("chunk cues", f"{data.shape[1]} values (one per sample)", len(self.cues))

    @property
    def n_samples(self) -> int:
        """Number of samples per channel."""
        return self.data.shape[1]

    @property
    def stop(self) -> int:
        """Index one past the last sample (``first_sample + n_samples``)."""
        return self.first_sample + self.data.shape[1]

    @property
    def fs(self) -> float:
        """Sampling rate in Hz."""
        return self.info.fs

    @property
    def times(self) -> np.ndarray:
        """Time of each sample in seconds, shape (n_samples,)."""
        return (self.first_sample + np.arange(self.n_samples)) / self.info.fs

    def replace(self, **changes) -> "Chunk":
        """Return a copy with some fields replaced."""
        return replace(self, **changes)


def split_into_chunks(data, info: StreamInfo, chunk_size: int, first_sample: int = 0, cues=None):
    """Yield consecutive :class:`Chunk` objects of at most ``chunk_size`` samples.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    info : StreamInfo
    chunk_size : int
        Samples per chunk (> 0).
    first_sample : int
        Index of the first sample.
    cues : ndarray, shape (n_samples,), optional
        Cue track, split alongside the data.
    """
    if chunk_size <= 0:
        raise ParameterError("chunk_size", "a positive number of samples", chunk_size)
    data = np.asarray(data)
    for start in range(0, data.shape[1], chunk_size):
        part = None if cues is None else cues[start:start + chunk_size]
        yield Chunk(data[:, start:start + chunk_size], first_sample + start, info, cues=part)


@dataclass(frozen=True)
class Recording:
    """A whole recording in memory.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Samples, time on the last axis, in ``info.units``.
    info : StreamInfo
        Metadata; ``info.source`` names the file.
    cues : ndarray of str or int, shape (n_samples,), optional
        Per-sample cue or label track (e.g. ``"rest"``/``"contract"``, or a
        dataset's integer labels), when the recording has one.
    events : tuple of Event
        Events stored with the recording (true events of a simulation,
        gaps of an acquisition).
    """

    data: np.ndarray
    info: StreamInfo
    cues: np.ndarray | None = None
    events: tuple = ()

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim != 2 or data.shape[0] != self.info.n_channels:
            raise ParameterError(
                "recording data",
                f"shape ({self.info.n_channels}, n_samples)",
                f"shape {data.shape}",
            )
        object.__setattr__(self, "data", data)
        if self.cues is not None:
            cues = np.asarray(self.cues)
            if cues.shape != (data.shape[1],):
                raise ParameterError("recording cues", f"one value per sample ({data.shape[1]})", f"shape {cues.shape}")
            object.__setattr__(self, "cues", cues)

    @property
    def n_samples(self) -> int:
        return self.data.shape[1]

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.data.shape[1] / self.info.fs

    def chunks(self, chunk_size: int):
        """Yield the data (and cues) as consecutive :class:`Chunk` objects."""
        return split_into_chunks(self.data, self.info, chunk_size, cues=self.cues)
