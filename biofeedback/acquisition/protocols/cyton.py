"""OpenBCI Cyton binary packets (8 channels, 250 Hz, 115200 baud).

Packet (33 bytes)::

    offset  size  field
    0       1     header 0xA0
    1       1     sample number (8 bits, +1 per packet, wraps)
    2       24    8 channels x signed 24-bit, most significant byte first
    26      6     auxiliary data (accelerometer, or other, per the footer)
    32      1     footer 0xC0..0xC6 (its low nibble says what the aux bytes hold)

Counts become µV with ``4.5 V / gain / (2**23 - 1) * 1e6`` (ADS1299
reference 4.5 V, default programmable gain 24). Commands are single
characters: ``v`` soft reset (the board answers with text ending ``$$$``),
``b`` start streaming, ``s`` stop.
"""

from __future__ import annotations

import time

import numpy as np

from biofeedback.acquisition.framing import FramedParser
from biofeedback.acquisition.protocols.base import DeviceConfig, EmulatedDevice, Protocol, quiet_and_flush

HEADER = 0xA0
PACKET_LENGTH = 33
N_CHANNELS = 8
DEFAULT_GAIN = 24.0
REFERENCE_V = 4.5
FS = 250.0


def microvolts_per_count(gain: float = DEFAULT_GAIN) -> float:
    """Scale of one ADS1299 count in µV for a channel gain."""
    return REFERENCE_V / float(gain) / (2**23 - 1) * 1e6


def encode_packet(sample_number: int, counts, aux: bytes = b"\x00" * 6, footer: int = 0xC0) -> bytes:
    """One Cyton packet from 8 signed 24-bit counts."""
    counts = np.asarray(counts, dtype=np.int64) & 0xFFFFFF
    payload = bytearray()
    for value in counts:
        payload += int(value).to_bytes(3, "big")
    return bytes([HEADER, sample_number % 256]) + bytes(payload) + bytes(aux[:6]).ljust(6, b"\0") + bytes([footer])


class CytonParser(FramedParser):
    """Incremental parser of Cyton packets; samples in µV.

    Parameters
    ----------
    gain : float
        Programmable gain of the channels (24 by default on the board).
    """

    protocol = "cyton"
    units = "uV"
    sync = bytes([HEADER])
    counter_modulus = 256
    max_frame_length = PACKET_LENGTH

    def __init__(self, gain: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.gain = float(gain or DEFAULT_GAIN)
        self.scale_uv = microvolts_per_count(self.gain)
        self.n_channels = N_CHANNELS

    def _candidates(self, arr, start):
        # One header byte is weak: require a footer 33 bytes later as well.
        n = arr.shape[0] - (PACKET_LENGTH - 1)
        if n <= start:
            # Too few bytes to see a footer: any header byte is a candidate.
            return np.flatnonzero(arr[start:] == HEADER) + start
        footer = arr[start + PACKET_LENGTH - 1:n + PACKET_LENGTH - 1]
        mask = (arr[start:n] == HEADER) & ((footer & 0xF0) == 0xC0) & (footer <= 0xC6)
        tail = np.flatnonzero(arr[n:] == HEADER) + n
        return np.concatenate((np.flatnonzero(mask) + start, tail))

    def _geometry_at(self, arr, pos):
        return "cyton"

    def _frame_length(self, geometry):
        return PACKET_LENGTH

    def _channels_of(self, geometry):
        return N_CHANNELS

    def _rows_valid(self, rows, geometry):
        footer = rows[:, 32]
        return (rows[:, 0] == HEADER) & ((footer & 0xF0) == 0xC0) & (footer <= 0xC6)

    def _rows_counter(self, rows, geometry):
        return rows[:, 1].astype(np.int64)

    def _decode(self, rows, geometry):
        raw = rows[:, 2:26].reshape(rows.shape[0], N_CHANNELS, 3).astype(np.int32)
        counts = (raw[:, :, 0] << 16) | (raw[:, :, 1] << 8) | raw[:, :, 2]
        counts = (counts ^ 0x800000) - 0x800000  # sign-extend 24 -> 32 bits
        return counts.T * self.scale_uv


class CytonProtocol(Protocol):
    name = "cyton"
    start_command = b"b"
    stop_command = b"s"
    title = "OpenBCI Cyton (8 x 24-bit, 250 Hz)"
    default_baud = 115200
    probe_bauds = (115200,)
    nominal_fs = FS
    rate_candidates = (FS,)
    units = "uV"

    def default_config(self, n_channels=None, fs=None, board=None, gain=None):
        return DeviceConfig(
            self.name, N_CHANNELS, fs or FS, "user" if fs else "protocol", 24,
            board=board or "OpenBCI Cyton", gain=float(gain or DEFAULT_GAIN),
        )

    def make_parser(self, config):
        parser = CytonParser(gain=config.gain)
        parser.fs_hint = config.fs or FS
        return parser

    def identify(self, port, timeout=1.0):
        port.write(b"s")
        quiet_and_flush(port, 0.1)
        port.write(b"v")
        start = time.monotonic()
        text = b""
        while b"$$$" not in text and len(text) < 4096:
            # Silence for `timeout`: not a Cyton. Once it talks, give its
            # reset (about a second) time to finish.
            limit = 2.5 if b"OpenBCI" in text else timeout
            if time.monotonic() - start > limit:
                break
            text += port.read(max(1, getattr(port, "in_waiting", 0) or 1))
        decoded = text.decode("ascii", "replace")
        if "OpenBCI" not in decoded:
            return None
        first = decoded.strip().splitlines()[0] if decoded.strip() else "OpenBCI"
        return self.default_config().but(fs_origin="protocol", description=first.strip())

    def make_device(self, fs, n_channels, rng, **options):
        return CytonDevice(fs, options.get("gain") or DEFAULT_GAIN, n_channels)


class CytonDevice(EmulatedDevice):
    """Emulated Cyton board: single-character commands, 33-byte packets."""

    counter_modulus = 256

    def __init__(self, fs=FS, gain=DEFAULT_GAIN, n_channels=N_CHANNELS):
        super().__init__()
        self.fs = float(fs)
        self.n_channels = N_CHANNELS
        self.connected_channels = max(1, min(N_CHANNELS, int(n_channels or N_CHANNELS)))
        self.scale_uv = microvolts_per_count(gain)

    def handle_input(self, data):
        replies = []
        for char in bytes(data):
            if char == ord("v"):
                self.streaming = False
                replies.append(
                    b"OpenBCI V3 8-16 channel (biofeedback emulator)\n"
                    b"On Board ADS1299 Device ID: 0x3E\nFirmware: v3.1.2\n$$$"
                )
            elif char == ord("b"):
                self.start_stream()
            elif char == ord("s"):
                self.streaming = False
        return b"".join(replies)

    def to_device_units(self, microvolts):
        counts = np.rint(np.asarray(microvolts) / self.scale_uv)
        full = np.zeros((N_CHANNELS, counts.shape[1]))
        used = min(self.connected_channels, counts.shape[0])
        full[:used] = counts[:used]
        return np.clip(full, -(2**23), 2**23 - 1).astype(np.int64)

    def encode(self, values, first_stream_index):
        values = np.asarray(values, dtype=np.int64)
        k = values.shape[1]
        rows = np.zeros((k, PACKET_LENGTH), dtype=np.uint8)
        rows[:, 0] = HEADER
        rows[:, 1] = (first_stream_index + np.arange(k)) % 256
        unsigned = (values.T & 0xFFFFFF).astype(np.uint32)  # (k, 8)
        rows[:, 2:26:3] = unsigned >> 16
        rows[:, 3:26:3] = (unsigned >> 8) & 0xFF
        rows[:, 4:26:3] = unsigned & 0xFF
        rows[:, 32] = 0xC0
        return [row.tobytes() for row in rows]
