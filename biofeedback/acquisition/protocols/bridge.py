"""firmware_bridge: the project's own frames (see ``firmware_bridge/PROTOCOL.md``).

Frame layout (all multi-byte fields little-endian)::

    offset  size    field
    0       2       sync: 0xEB 0x90
    2       1       version: 1
    3       2       counter: index of the frame's first sample since START, mod 65536
    5       1       channel count C (1..8)
    6       1       samples per frame S (1..16)
    7       2*C*S   samples: u16 ADC codes, sample-major (s0c0 s0c1 .. s1c0 ..)
    7+2CS   2       CRC-16/CCITT-FALSE of bytes 2 .. 6+2CS

Text commands (one line each, answered with one line): ``ID``, ``INFO``,
``START``, ``STOP``, ``RATE <hz>``, ``CH <n>``.
"""

from __future__ import annotations

import struct

import numpy as np

from biofeedback.acquisition.crc import crc16_ccitt, crc16_ccitt_rows
from biofeedback.acquisition.framing import NEED_MORE, FramedParser
from biofeedback.acquisition.protocols.base import (
    DeviceConfig,
    EmulatedDevice,
    Protocol,
    adc_from_microvolts,
    quiet_and_flush,
    read_lines,
    send_line,
)

SYNC = b"\xeb\x90"
VERSION = 1
HEADER_LENGTH = 7
CRC_LENGTH = 2
MAX_CHANNELS = 8
MAX_SAMPLES_PER_FRAME = 16
COUNTER_MODULUS = 1 << 16


def frame_length(n_channels: int, samples_per_frame: int) -> int:
    """Bytes in one frame."""
    return HEADER_LENGTH + 2 * n_channels * samples_per_frame + CRC_LENGTH


def encode_frame(counter: int, samples) -> bytes:
    """Build one frame.

    Parameters
    ----------
    counter : int
        Index of the first sample since START (taken mod 65536).
    samples : array_like of int, shape (n_channels, samples_per_frame)
        ADC codes (0..65535).

    Returns
    -------
    bytes
    """
    samples = np.asarray(samples, dtype=np.int64)
    n_channels, per_frame = samples.shape
    if not (1 <= n_channels <= MAX_CHANNELS and 1 <= per_frame <= MAX_SAMPLES_PER_FRAME):
        raise ValueError(f"bridge frame geometry out of range: {n_channels} channels x {per_frame} samples")
    body = struct.pack("<BHBB", VERSION, counter % COUNTER_MODULUS, n_channels, per_frame)
    body += samples.T.astype("<u2").tobytes()  # sample-major
    return SYNC + body + struct.pack("<H", crc16_ccitt(body))


def encode_frames(counter0: int, values: np.ndarray, per_frame: int) -> list:
    """Frames for consecutive samples (vectorised; same bytes as :func:`encode_frame`).

    Parameters
    ----------
    counter0 : int
        Counter of the first sample.
    values : ndarray of int, shape (n_channels, n)
        ``n`` a multiple of ``per_frame``.
    per_frame : int
        Samples per frame.
    """
    n_channels, n = values.shape
    k = n // per_frame
    if k == 0:
        return []
    length = frame_length(n_channels, per_frame)
    rows = np.zeros((k, length), dtype=np.uint8)
    rows[:, 0], rows[:, 1] = SYNC[0], SYNC[1]
    rows[:, 2] = VERSION
    counters = (counter0 + per_frame * np.arange(k)) % COUNTER_MODULUS
    rows[:, 3] = counters & 0xFF
    rows[:, 4] = counters >> 8
    rows[:, 5] = n_channels
    rows[:, 6] = per_frame
    payload = values[:, : k * per_frame].reshape(n_channels, k, per_frame).transpose(1, 2, 0)
    rows[:, HEADER_LENGTH:length - CRC_LENGTH] = (
        np.ascontiguousarray(payload).astype("<u2").view(np.uint8).reshape(k, -1)
    )
    crc = crc16_ccitt_rows(rows[:, 2:length - CRC_LENGTH])
    rows[:, -2] = crc & 0xFF
    rows[:, -1] = crc >> 8
    return [row.tobytes() for row in rows]


class BridgeParser(FramedParser):
    """Incremental parser of firmware_bridge frames.

    Parameters
    ----------
    n_channels : int, optional
        Expected channel count (checked at lock); default: from the frames.
    """

    protocol = "bridge"
    sync = SYNC
    counter_modulus = COUNTER_MODULUS
    max_frame_length = frame_length(MAX_CHANNELS, MAX_SAMPLES_PER_FRAME)

    def __init__(self, n_channels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._expected_channels = n_channels

    def _geometry_at(self, arr, pos):
        if arr.shape[0] < pos + HEADER_LENGTH:
            return NEED_MORE
        if arr[pos + 2] != VERSION:
            return None
        n_channels, per_frame = int(arr[pos + 5]), int(arr[pos + 6])
        if not (1 <= n_channels <= MAX_CHANNELS and 1 <= per_frame <= MAX_SAMPLES_PER_FRAME):
            return None
        if self._expected_channels and n_channels != self._expected_channels:
            return None
        return (n_channels, per_frame)

    def _frame_length(self, geometry):
        return frame_length(*geometry)

    def _samples_per_frame(self, geometry):
        return geometry[1]

    def _channels_of(self, geometry):
        return geometry[0]

    def _rows_valid(self, rows, geometry):
        n_channels, per_frame = geometry
        ok = (
            (rows[:, 0] == SYNC[0]) & (rows[:, 1] == SYNC[1]) & (rows[:, 2] == VERSION)
            & (rows[:, 5] == n_channels) & (rows[:, 6] == per_frame)
        )
        if not ok.any():
            return ok
        stored = rows[:, -2].astype(np.uint16) | (rows[:, -1].astype(np.uint16) << 8)
        return ok & (crc16_ccitt_rows(rows[:, 2:-2]) == stored)

    def _rows_counter(self, rows, geometry):
        return rows[:, 3].astype(np.int64) | (rows[:, 4].astype(np.int64) << 8)

    def _decode(self, rows, geometry):
        n_channels, per_frame = geometry
        k = rows.shape[0]
        payload = np.ascontiguousarray(rows[:, HEADER_LENGTH:HEADER_LENGTH + 2 * n_channels * per_frame])
        values = payload.view("<u2").reshape(k * per_frame, n_channels)
        return values.T.astype(np.float64)


def parse_info_line(text: str) -> dict:
    """Fields of an ``INFO`` reply (``INFO fs=500 ch=2 bits=10 spf=5 vref_mv=5000``)."""
    fields = {}
    for token in text.split()[1:]:
        if "=" in token:
            key, value = token.split("=", 1)
            fields[key.lower()] = value
    return fields


class BridgeProtocol(Protocol):
    name = "bridge"
    start_command = b"START\n"
    stop_command = b"STOP\n"
    title = "firmware_bridge frames (this project's sketch: counter + CRC)"
    default_baud = 115200
    probe_bauds = (115200,)
    nominal_fs = None
    rate_candidates = ()

    def make_parser(self, config: DeviceConfig):
        parser = BridgeParser(n_channels=config.n_channels)
        parser.fs_hint = config.fs
        return parser

    def identify(self, port, timeout=1.0):
        send_line(port, "STOP")
        quiet_and_flush(port, 0.1)
        send_line(port, "ID")
        ident = read_lines(port, timeout, lambda line: line.startswith("BFB "))
        if ident is None:
            return None
        send_line(port, "INFO")
        info_line = read_lines(port, timeout, lambda line: line.startswith("INFO "))
        return self._config_from(ident, info_line)

    def _config_from(self, ident: str, info_line: str | None) -> DeviceConfig:
        parts = ident.split()
        board = parts[2] if len(parts) > 2 else ""
        if info_line is None:
            return DeviceConfig(self.name, None, None, "measure", board=board, description=ident)
        info = parse_info_line(info_line)
        return DeviceConfig(
            self.name,
            int(info["ch"]) if "ch" in info else None,
            float(info["fs"]) if "fs" in info else None,
            "device" if "fs" in info else "measure",
            int(info["bits"]) if "bits" in info else None,
            board=board,
            description=f"{ident}; {info_line}",
            extra={k: v for k, v in info.items() if k not in ("fs", "ch", "bits")},
        )

    def configure(self, port, config, fs=None, n_channels=None):
        changed = False
        for command, value in (("CH", n_channels), ("RATE", fs)):
            if value is None:
                continue
            send_line(port, f"{command} {int(round(float(value)))}")
            reply = read_lines(port, 1.0, lambda line: line.startswith(("OK", "ERR")))
            if reply is None or reply.startswith("ERR"):
                from biofeedback.errors import BiofeedbackError

                raise BiofeedbackError(f"the bridge device refused '{command} {value}': {reply or 'no answer'}")
            changed = True
        if not changed:
            return config
        send_line(port, "INFO")
        info_line = read_lines(port, 1.0, lambda line: line.startswith("INFO "))
        return self._config_from(f"BFB {VERSION} {config.board}", info_line)

    def make_device(self, fs, n_channels, rng, **options):
        return BridgeDevice(fs, n_channels, options.get("bits", 10))


class BridgeDevice(EmulatedDevice):
    """Emulated firmware_bridge sketch (answers the text commands)."""

    counter_modulus = COUNTER_MODULUS

    def __init__(self, fs=500.0, n_channels=2, bits=10, board="emulator"):
        super().__init__()
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.bits = bits
        self.board = board
        self.samples_per_frame = max(1, min(MAX_SAMPLES_PER_FRAME, int(self.fs // 100)))

    def command(self, text):
        words = text.upper().split()
        if not words:
            return b""
        verb = words[0]
        if verb == "ID":
            return f"BFB {VERSION} {self.board}\n".encode()
        if verb == "INFO":
            return (
                f"INFO fs={self.fs:g} ch={self.n_channels} bits={self.bits} "
                f"spf={self.samples_per_frame} vref_mv=5000\n"
            ).encode()
        if verb == "START":
            self.start_stream()
            return b"OK START\n"
        if verb == "STOP":
            self.streaming = False
            return b"OK STOP\n"
        if verb in ("RATE", "CH") and len(words) == 2 and words[1].isdigit():
            if self.streaming:
                return b"ERR busy: STOP first\n"
            value = int(words[1])
            if verb == "CH" and 1 <= value <= 6:
                self.n_channels = value
            elif verb == "RATE" and 100 <= value <= 1000:
                self.fs = float(value)
                self.samples_per_frame = max(1, value // 100)
            else:
                return f"ERR {verb} out of range\n".encode()
            return f"OK {verb} {value}\n".encode()
        return f"ERR unknown command {verb}\n".encode()

    def to_device_units(self, microvolts):
        return adc_from_microvolts(microvolts[: self.n_channels], self.bits, counts_per_uv=0.4)

    def encode(self, values, first_stream_index):
        return encode_frames(first_stream_index, np.asarray(values, dtype=np.int64), self.samples_per_frame)
