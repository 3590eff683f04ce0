"""Upside Down Labs "Chords" packets (BioAmp boards and Chords Arduino firmware).

Packet (``4 + 2 * N`` bytes for N channels)::

    offset  size  field
    0       2     sync: 0xC7 0x7C
    2       1     counter (8 bits, +1 per packet, wraps)
    3       2*N   N channels x u16, high byte first (ADC codes)
    3+2N    1     end byte 0x01

Commands (one line each): ``WHORU`` (the board answers its name, e.g.
``UNO-R4``), ``START``, ``STOP``. The board name gives the rate, channel
count and ADC resolution through :data:`BOARDS`. When the board is unknown,
the channel count is inferred from the spacing of the frames.
"""

from __future__ import annotations

import numpy as np

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

SYNC = b"\xc7\x7c"
END_BYTE = 0x01
MAX_CHANNELS = 16

#: Board name (answer to WHORU) -> (sampling rate Hz, channels, ADC bits).
BOARDS = {
    "UNO-R3": (250.0, 6, 10),
    "UNO-CLONE": (250.0, 6, 10),
    "GENUINO-UNO": (250.0, 6, 10),
    "NANO-CLONE": (250.0, 8, 10),
    "NANO-CLASSIC": (250.0, 8, 10),
    "MEGA-2560-R3": (250.0, 16, 10),
    "MEGA-2560-CLONE": (250.0, 16, 10),
    "UNO-R4": (500.0, 6, 14),
    "RPI-PICO-RP2040": (500.0, 3, 12),
    "NPG-LITE": (500.0, 3, 12),
    "STM32F4-BLACK-PILL": (500.0, 8, 12),
    "STM32G4-CORE-BOARD": (500.0, 16, 12),
    "GIGA-R1": (500.0, 6, 16),
}


def packet_length(n_channels: int) -> int:
    return 4 + 2 * n_channels


def encode_packet(counter: int, values) -> bytes:
    """One Chords packet from N ADC codes."""
    values = np.asarray(values, dtype=np.int64)
    return SYNC + bytes([counter % 256]) + values.astype(">u2").tobytes() + bytes([END_BYTE])


class ChordsParser(FramedParser):
    """Incremental parser of Chords packets.

    Parameters
    ----------
    n_channels : int, optional
        Channels per packet (from the board table); inferred when ``None``.
    resolution_bits : int, optional
        ADC resolution; when known, values above it invalidate a packet.
    """

    protocol = "chords"
    sync = SYNC
    counter_modulus = 256
    max_frame_length = packet_length(MAX_CHANNELS)

    def __init__(self, n_channels: int | None = None, resolution_bits: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._channels = int(n_channels) if n_channels else None
        self.n_channels = self._channels
        self._max_high = ((1 << resolution_bits) - 1) >> 8 if resolution_bits and resolution_bits > 8 else 0xFF

    def _geometry_at(self, arr, pos):
        n = arr.shape[0]
        if self._channels is not None:
            return self._channels
        if self._geometry is not None:
            return self._geometry
        # Unknown board: the channel count for which two packets in a row
        # have their sync and end bytes in place and counters a small step
        # apart (one end byte followed by a sync is too likely by chance).
        for channels in range(1, MAX_CHANNELS + 1):
            length = packet_length(channels)
            if pos + 2 * length > n:
                return NEED_MORE
            second = pos + length
            if (
                arr[second - 1] == END_BYTE and arr[second] == SYNC[0] and arr[second + 1] == SYNC[1]
                and arr[second + length - 1] == END_BYTE
                and 1 <= (int(arr[second + 2]) - int(arr[pos + 2])) % 256 <= self.max_lock_step
            ):
                return channels
        return None

    def _frame_length(self, geometry):
        return packet_length(geometry)

    def _channels_of(self, geometry):
        return geometry

    def _rows_valid(self, rows, geometry):
        ok = (rows[:, 0] == SYNC[0]) & (rows[:, 1] == SYNC[1]) & (rows[:, -1] == END_BYTE)
        if self._max_high < 0xFF:
            ok &= np.all(rows[:, 3:-1:2] <= self._max_high, axis=1)
        return ok

    def _rows_counter(self, rows, geometry):
        return rows[:, 2].astype(np.int64)

    def _decode(self, rows, geometry):
        values = np.ascontiguousarray(rows[:, 3:3 + 2 * geometry]).view(">u2")
        return values.T.astype(np.float64)


class ChordsProtocol(Protocol):
    name = "chords"
    start_command = b"START\n"
    stop_command = b"STOP\n"
    title = "Upside Down Labs Chords packets (BioAmp EXG boards)"
    default_baud = 230400
    probe_bauds = (230400, 115200)
    nominal_fs = None
    rate_candidates = (250.0, 500.0)

    def default_config(self, n_channels=None, fs=None, board=None, gain=None):
        if board:
            key = board.upper()
            if key not in BOARDS:
                from biofeedback.errors import ParameterError

                raise ParameterError("board", "one of " + ", ".join(BOARDS), board)
            rate, channels, bits = BOARDS[key]
            return DeviceConfig(
                self.name, n_channels or channels, fs or rate, "user" if fs else "board table", bits, board=key
            )
        return DeviceConfig(self.name, n_channels, fs, "user" if fs else "measure")

    def make_parser(self, config):
        parser = ChordsParser(config.n_channels, config.resolution_bits)
        parser.fs_hint = config.fs or 250.0
        return parser

    def identify(self, port, timeout=1.0):
        send_line(port, "STOP")
        quiet_and_flush(port, 0.1)
        send_line(port, "WHORU")
        name = read_lines(port, timeout, lambda line: line.upper() in BOARDS)
        if name is None:
            return None
        return self.default_config(board=name).but(description=name)

    def make_device(self, fs, n_channels, rng, **options):
        board = options.get("board") or ("UNO-R4" if fs >= 500 else "UNO-R3")
        return ChordsDevice(board.upper(), n_channels)


class ChordsDevice(EmulatedDevice):
    """Emulated Chords firmware for a board of :data:`BOARDS`."""

    counter_modulus = 256

    def __init__(self, board="UNO-R3", n_channels=None):
        super().__init__()
        self.board = board
        self.fs, channels, self.bits = BOARDS[board]
        self.n_channels = channels
        self.connected_channels = min(channels, n_channels or channels)

    def command(self, text):
        verb = text.upper()
        if verb == "WHORU":
            return f"{self.board}\n".encode()
        if verb == "START":
            self.start_stream()
        elif verb == "STOP":
            self.streaming = False
        return b""

    def to_device_units(self, microvolts):
        codes = np.full((self.n_channels, microvolts.shape[1]), 1 << (self.bits - 1), dtype=np.int64)
        used = min(self.connected_channels, microvolts.shape[0])
        codes[:used] = adc_from_microvolts(microvolts[:used], self.bits, counts_per_uv=0.4 * 2 ** (self.bits - 10))
        return codes

    def encode(self, values, first_stream_index):
        values = np.asarray(values, dtype=np.int64)
        k = values.shape[1]
        length = packet_length(self.n_channels)
        rows = np.zeros((k, length), dtype=np.uint8)
        rows[:, 0], rows[:, 1] = SYNC[0], SYNC[1]
        rows[:, 2] = (first_stream_index + np.arange(k)) % 256
        rows[:, 3:-1] = np.ascontiguousarray(values.T).astype(">u2").view(np.uint8).reshape(k, -1)
        rows[:, -1] = END_BYTE
        return [row.tobytes() for row in rows]
