"""Lab Streaming Layer (optional): publish EMG and markers, or read a stream.

Needs the ``pylsl`` package and its ``liblsl`` library (``pip install
'biofeedback[lsl]'``). They are imported only when an object here is made;
when they cannot be loaded the error says so in one line.

* :class:`LslPublisher` — an outlet of samples (the raw chunk data, or one
  of a pipeline's layers such as ``"filtered"``) and an outlet of string
  markers (cues, detected events, gaps and disconnects).
* :class:`LslSource` — a :class:`~biofeedback.sources.base.Source` reading an
  LSL stream, so any LSL device can feed the toolkit.

Time stamps come from sample indices (``t0 + index / fs`` on the LSL clock),
not from the moment of pushing, so the bursts of a serial link do not jitter
them.
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.errors import BiofeedbackError
from biofeedback.sources.base import Source


def load_pylsl():
    """Import pylsl, or raise a one-line :class:`BiofeedbackError` saying why not."""
    try:
        import pylsl
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError/RuntimeError when liblsl is missing
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise BiofeedbackError(
            "Lab Streaming Layer needs the optional package 'pylsl' and its liblsl library "
            f"(pip install 'biofeedback[lsl]'); it could not be loaded: {reason}"
        ) from None
    return pylsl


class LslPublisher:
    """Publish a stream's chunks and markers on LSL.

    Parameters
    ----------
    info : StreamInfo
        Metadata of the stream published (rate, channels, units).
    name : str
        LSL stream name; the marker stream is ``name + "-markers"``.
    stream_type : str
        LSL content type (``"EMG"``).
    layer : str, optional
        Publish ``chunk.layers[layer]`` (e.g. ``"filtered"``) instead of the
        raw ``chunk.data``.
    markers : bool
        Also open the marker outlet.
    """

    def __init__(self, info: StreamInfo, name: str = "biofeedback-emg", stream_type: str = "EMG",
                 layer: str | None = None, markers: bool = True):
        pylsl = load_pylsl()
        self._pylsl = pylsl
        self.info = info
        self.layer = layer
        lsl_info = pylsl.StreamInfo(name, stream_type, info.n_channels, float(info.fs), "float32",
                                    f"biofeedback-{name}")
        channels = lsl_info.desc().append_child("channels")
        for ch_name in info.ch_names:
            channel = channels.append_child("channel")
            channel.append_child_value("label", ch_name)
            channel.append_child_value("unit", info.units)
            channel.append_child_value("type", stream_type)
        self.outlet = pylsl.StreamOutlet(lsl_info)
        self.marker_outlet = None
        if markers:
            marker_info = pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0.0, "string",
                                           f"biofeedback-{name}-markers")
            self.marker_outlet = pylsl.StreamOutlet(marker_info)
        self._t0 = None

    def _time_of(self, index: float) -> float:
        if self._t0 is None:
            self._t0 = self._pylsl.local_clock() - index / self.info.fs
        return self._t0 + index / self.info.fs

    def push(self, chunk: Chunk) -> None:
        """Publish a chunk's samples and its events (as markers)."""
        data = chunk.layers[self.layer] if self.layer else chunk.data
        if chunk.n_samples:
            stamp = self._time_of(chunk.stop - 1)  # LSL back-dates the earlier samples by 1/fs each
            self.outlet.push_chunk(np.ascontiguousarray(np.asarray(data, dtype=np.float32).T), stamp)
        for event in chunk.events:
            self.push_marker(self.describe(event), event.onset_s * self.info.fs)

    @staticmethod
    def describe(event: Event) -> str:
        """Marker text of an event: ``"gap n_samples=12"``, ``"contraction ch1 peak=85.2"``."""
        parts = [event.kind]
        if event.channel:
            parts.append(event.channel)
        if event.peak is not None and not (isinstance(event.peak, float) and math.isnan(event.peak)):
            parts.append(f"peak={event.peak:.6g}")
        if event.extra and "n_samples" in event.extra:
            parts.append(f"n_samples={event.extra['n_samples']}")
        return " ".join(parts)

    def push_marker(self, text: str, sample_index: float | None = None) -> None:
        """Publish a marker (a cue, a detected event) at a sample index (default: now)."""
        if self.marker_outlet is None:
            return
        stamp = self._time_of(sample_index) if sample_index is not None else self._pylsl.local_clock()
        self.marker_outlet.push_sample([text], stamp)

    def close(self) -> None:
        """Close the outlets."""
        self.outlet = None
        self.marker_outlet = None


class LslSource(Source):
    """Samples from an LSL stream.

    Parameters
    ----------
    name : str
        Stream name to resolve (``type=EMG`` to resolve by type instead).
    timeout : float
        Seconds to wait for the stream to be found, and for data.
    """

    def __init__(self, name: str, timeout: float = 5.0):
        self.name = name
        self.timeout = float(timeout)
        self.info = None
        self._inlet = None
        self._t0 = None
        self._next = 0

    def open(self) -> None:
        pylsl = load_pylsl()
        prop, value = ("type", self.name[5:]) if self.name.startswith("type=") else ("name", self.name)
        found = pylsl.resolve_byprop(prop, value, 1, self.timeout)
        if not found:
            seen = ", ".join(sorted({s.name() for s in pylsl.resolve_streams(0.5)})) or "none"
            raise BiofeedbackError(
                f"no LSL stream with {prop} '{value}' found within {self.timeout:g} s (streams seen: {seen})"
            )
        stream = found[0]
        if not stream.nominal_srate() > 0:
            raise BiofeedbackError(f"LSL stream '{stream.name()}' has an irregular rate; a sampled stream is needed")
        self._inlet = pylsl.StreamInlet(stream, max_buflen=60, processing_flags=pylsl.proc_clocksync)
        full = self._inlet.info(self.timeout)
        names, units = [], set()
        channel = full.desc().child("channels").child("channel")
        while not channel.empty():
            names.append(channel.child_value("label"))
            units.add(channel.child_value("unit"))
            channel = channel.next_sibling()
        if len(names) != stream.channel_count() or not all(names):
            names = [f"ch{i + 1}" for i in range(stream.channel_count())]
        unit = units.pop() if len(units) == 1 and "" not in units else "a.u."
        self.info = StreamInfo(stream.nominal_srate(), tuple(names), unit, f"lsl:{stream.name()}",
                               {"protocol": "lsl", "fs_origin": "LSL nominal rate"})

    def close(self) -> None:
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # noqa: BLE001
                pass
            self._inlet = None

    def _chunks(self):
        if self._inlet is None:
            raise BiofeedbackError("the LSL source is not open (use it in a 'with' block)")
        fs = self.info.fs
        silent_for = 0.0
        while self._inlet is not None:
            samples, stamps = self._inlet.pull_chunk(timeout=0.2)
            if not stamps:
                silent_for += 0.2
                if silent_for > self.timeout:
                    raise BiofeedbackError(f"LSL stream '{self.name}' sent nothing for {self.timeout:g} s")
                continue
            silent_for = 0.0
            data = np.asarray(samples, dtype=np.float64).T
            if self._t0 is None:
                self._t0 = stamps[0]
            # Place the chunk by its first time stamp; a jump of more than half
            # a sample beyond the next index is a gap.
            first = max(self._next, int(round((stamps[0] - self._t0) * fs)))
            events = ()
            if first > self._next:
                n = first - self._next
                events = (Event("gap", "", self._next / fs, first / fs, math.nan, {"n_samples": n}),)
            self._next = first + data.shape[1]
            yield Chunk(data, first, self.info, events)
