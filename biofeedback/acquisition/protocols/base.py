"""What every protocol module provides: parser, handshake, emulated device.

A :class:`Protocol` knows the facts of one wire format (baud rate, nominal
rate, units), makes its parser, talks to a real device (identify, start,
stop) and makes an :class:`EmulatedDevice` that speaks it, so the emulator
and the tests exercise the same code a real board does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class DeviceConfig:
    """What is known about a device before samples flow.

    Parameters
    ----------
    protocol : str
        Protocol name.
    n_channels : int or None
        Channels per sample (``None``: learn it from the frames).
    fs : float or None
        Nominal sampling rate in Hz (``None``: measure it from arrival).
    fs_origin : str
        Where ``fs`` comes from: ``"device"`` (the device reported it),
        ``"board table"``, ``"protocol"`` (the protocol's nominal rate),
        ``"user"`` (given on the command line) or ``"measure"``.
    resolution_bits : int or None
        ADC resolution.
    board : str
        Board name reported by the device or looked up.
    description : str
        Identification text the device sent.
    gain : float or None
        Programmable gain of the amplifier (OpenBCI), for the µV scale.
    extra : dict
        Further facts (samples per frame, reference voltage…).
    """

    protocol: str
    n_channels: int | None = None
    fs: float | None = None
    fs_origin: str = "measure"
    resolution_bits: int | None = None
    board: str = ""
    description: str = ""
    gain: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def but(self, **changes) -> "DeviceConfig":
        """Copy with some fields changed."""
        return replace(self, **changes)


class Protocol:
    """Facts and behaviour of one protocol (subclass per protocol)."""

    #: Short name used on the command line.
    name = ""
    #: One-line description.
    title = ""
    #: Baud rate used unless told otherwise.
    default_baud = 115200
    #: Baud rates tried when probing an unknown port.
    probe_bauds: tuple = (115200,)
    #: Nominal sampling rate in Hz (``None``: none is defined).
    nominal_fs: float | None = None
    #: Rates a measured rate is snapped to when within :attr:`snap_tolerance`.
    rate_candidates: tuple = ()
    #: Relative tolerance for snapping a measured rate.
    snap_tolerance = 0.01
    #: Units of the parsed samples.
    units = "counts"
    #: True if the device streams without being told to start.
    free_running = False
    #: True if frames carry a counter (gaps are exact).
    has_counter = True

    def default_config(self, n_channels=None, fs=None, board=None, gain=None) -> DeviceConfig:
        """Configuration from the protocol's facts and the user's options."""
        origin = "user" if fs else ("protocol" if self.nominal_fs else "measure")
        return DeviceConfig(self.name, n_channels, fs or self.nominal_fs, origin, board=board or "", gain=gain)

    def make_parser(self, config: DeviceConfig):
        """A new parser for this protocol and configuration."""
        raise NotImplementedError

    def identify(self, port, timeout: float = 1.0) -> DeviceConfig | None:
        """Ask the device who it is (active handshake).

        Returns ``None`` when the protocol has no handshake or the device
        does not answer. Never raises for a silent or foreign device.
        """
        return None

    def configure(self, port, config: DeviceConfig, fs=None, n_channels=None) -> DeviceConfig:
        """Ask the device for a rate or channel count (when it can change them)."""
        return config

    #: Bytes that make the device stream, and stop (None: free-running).
    start_command: bytes | None = None
    stop_command: bytes | None = None

    def start(self, port) -> None:
        """Tell the device to stream (no-op for free-running devices).

        Input received before the command (banners, answers to the
        handshake) is dropped first, so parsing starts on stream bytes.
        """
        if self.start_command is not None:
            quiet_and_flush(port, 0.0)
            _write_command(port, self.start_command)

    def stop(self, port) -> None:
        """Tell the device to stop streaming."""
        if self.stop_command is not None:
            _write_command(port, self.stop_command)

    def make_device(self, fs: float, n_channels: int, rng: np.random.Generator, **options):
        """An :class:`EmulatedDevice` speaking this protocol."""
        raise NotImplementedError


class EmulatedDevice:
    """The device side of a protocol, for the emulator and the tests.

    Attributes
    ----------
    fs : float
        Sampling rate in Hz.
    n_channels : int
        Channels sent.
    samples_per_frame : int
        Samples per channel in one frame.
    streaming : bool
        True while the device sends frames.
    counter_modulus : int
        Range of the frame counter (0 for none).
    """

    fs = 250.0
    n_channels = 1
    samples_per_frame = 1
    counter_modulus = 256
    free_running = False

    def __init__(self):
        self.streaming = self.free_running
        #: Device-clock index at which the current stream started.
        self.stream_origin = 0
        #: Set by the emulator: device-clock index "now".
        self.clock_index = 0
        self._line = b""

    def power_on(self) -> bytes:
        """Bytes sent when the device (re)appears (a banner, or nothing)."""
        self.streaming = self.free_running
        self._line = b""
        return b""

    def handle_input(self, data: bytes) -> bytes:
        """Bytes received from the host; returns the reply bytes."""
        replies = []
        self._line += data
        while b"\n" in self._line:
            line, self._line = self._line.split(b"\n", 1)
            reply = self.command(line.strip().decode("ascii", "replace"))
            if reply:
                replies.append(reply)
        if len(self._line) > 256:
            self._line = b""
        return b"".join(replies)

    def command(self, text: str) -> bytes:
        """Answer one text command (line protocols)."""
        return b""

    def start_stream(self) -> None:
        self.streaming = True
        self.stream_origin = self.clock_index

    def stream_index(self, clock_index: int) -> int:
        """Index of a device-clock sample within the current stream."""
        return clock_index if self.free_running else clock_index - self.stream_origin

    def to_device_units(self, microvolts: np.ndarray) -> np.ndarray:
        """Convert a signal in µV to what the device sends (ADC codes…)."""
        raise NotImplementedError

    def encode(self, values: np.ndarray, first_stream_index: int) -> list:
        """Frames for ``values`` (device units, shape (n_channels, n)).

        ``n`` is a multiple of :attr:`samples_per_frame`; returns one bytes
        object per frame, so the emulator can drop or corrupt whole frames.
        """
        raise NotImplementedError


def adc_from_microvolts(microvolts, bits: int, counts_per_uv: float) -> np.ndarray:
    """Map µV to unsigned ADC codes around mid-scale, clipped to the range.

    Parameters
    ----------
    microvolts : ndarray
        Signal in µV.
    bits : int
        ADC resolution.
    counts_per_uv : float
        Gain of the emulated analog front end, in codes per µV at the
        electrodes.
    """
    full = (1 << bits) - 1
    mid = 1 << (bits - 1)
    return np.clip(np.rint(mid + np.asarray(microvolts) * counts_per_uv), 0, full).astype(np.int64)


def read_lines(port, timeout: float, accept, max_bytes: int = 4096):
    """Read text lines from ``port`` until ``accept(line)`` is true or time runs out.

    Binary frames in between are ignored (they do not decode as the line
    sought). Returns the accepted line (str) or ``None``.
    """
    deadline = time.monotonic() + timeout
    buffer = b""
    seen = 0
    while time.monotonic() < deadline and seen < max_bytes:
        chunk = port.read(max(1, getattr(port, "in_waiting", 0) or 1))
        if not chunk:
            continue
        seen += len(chunk)
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.strip().decode("ascii", "replace")
            if text and accept(text):
                return text
        buffer = buffer[-512:]
    return None


def _write_command(port, data: bytes) -> None:
    port.write(data)
    try:
        port.flush()
    except Exception:  # noqa: BLE001 - some URL handlers have no flush
        pass


def send_line(port, text: str) -> None:
    """Write one newline-terminated command."""
    _write_command(port, text.encode("ascii") + b"\n")


def quiet_and_flush(port, settle_s: float = 0.05) -> None:
    """Wait a little and drop whatever the device sent so far."""
    time.sleep(settle_s)
    try:
        port.reset_input_buffer()
    except Exception:  # noqa: BLE001
        pass
