"""OpenEEG P2 packets, as the Olimex SHIELD-EKG-EMG demo sketch sends them.

Packet (17 bytes)::

    offset  size  field
    0       2     sync: 0xA5 0x5A
    2       1     version: 2
    3       1     packet counter (8 bits, +1 per packet, wraps)
    4       12    6 channels x u16, high byte first; 10-bit ADC codes (0..1023)
    16      1     switch states in bits 0..3 (the Olimex sketch sends 0x01)

57600 baud, free-running (no commands). The P2 format's nominal rate is
256 Hz, but the Olimex demo sketch's timer gives 250 Hz: the rate is
measured from arrival and snapped to 250 or 256 Hz (or the measured value
stated when it is neither).
"""

from __future__ import annotations

import numpy as np

from biofeedback.acquisition.framing import NEED_MORE, FramedParser
from biofeedback.acquisition.protocols.base import DeviceConfig, EmulatedDevice, Protocol, adc_from_microvolts

SYNC = b"\xa5\x5a"
VERSION = 2
PACKET_LENGTH = 17
N_CHANNELS = 6
HIGH_BYTE_COLUMNS = np.arange(4, 16, 2)


def encode_packet(counter: int, values, switches: int = 0x01) -> bytes:
    """One P2 packet.

    Parameters
    ----------
    counter : int
        Packet counter (mod 256).
    values : array_like of int, shape (6,)
        10-bit ADC codes.
    switches : int
        Switch byte (bits 0..3).
    """
    values = np.asarray(values, dtype=np.int64)
    body = bytes([SYNC[0], SYNC[1], VERSION, counter % 256])
    body += values.astype(">u2").tobytes()
    return body + bytes([switches & 0x0F])


class P2Parser(FramedParser):
    """Incremental parser of OpenEEG P2 packets.

    Parameters
    ----------
    n_channels : int
        Keep the first ``n_channels`` of the 6 channels in each packet.
    """

    protocol = "p2"
    sync = SYNC
    counter_modulus = 256
    max_frame_length = PACKET_LENGTH

    def __init__(self, n_channels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._keep = int(n_channels or N_CHANNELS)
        if not 1 <= self._keep <= N_CHANNELS:
            from biofeedback.errors import ParameterError

            raise ParameterError("channels", f"1 to {N_CHANNELS} for P2 packets", n_channels)
        self.n_channels = self._keep

    def _geometry_at(self, arr, pos):
        if arr.shape[0] < pos + 3:
            return NEED_MORE
        return "p2" if arr[pos + 2] == VERSION else None

    def _frame_length(self, geometry):
        return PACKET_LENGTH

    def _channels_of(self, geometry):
        return self._keep

    def _rows_valid(self, rows, geometry):
        # 10-bit codes: every high byte is 0..3, a strong check for a format
        # without checksum; the switch byte uses its low nibble only.
        return (
            (rows[:, 0] == SYNC[0]) & (rows[:, 1] == SYNC[1]) & (rows[:, 2] == VERSION)
            & np.all(rows[:, HIGH_BYTE_COLUMNS] <= 3, axis=1) & (rows[:, 16] <= 0x0F)
        )

    def _rows_counter(self, rows, geometry):
        return rows[:, 3].astype(np.int64)

    def _decode(self, rows, geometry):
        values = np.ascontiguousarray(rows[:, 4:16]).view(">u2")
        return values[:, : self._keep].T.astype(np.float64)


class P2Protocol(Protocol):
    name = "p2"
    title = "OpenEEG P2 packets (Olimex SHIELD-EKG-EMG demo sketch)"
    default_baud = 57600
    probe_bauds = (57600,)
    nominal_fs = 256.0
    rate_candidates = (256.0, 250.0)
    free_running = True

    def default_config(self, n_channels=None, fs=None, board=None, gain=None):
        # Two candidate rates exist in the field: measure unless told.
        return DeviceConfig(
            self.name, n_channels or N_CHANNELS, fs, "user" if fs else "measure", 10,
            board=board or "Olimex SHIELD-EKG-EMG",
        )

    def make_parser(self, config):
        parser = P2Parser(n_channels=config.n_channels)
        parser.fs_hint = config.fs or self.nominal_fs
        return parser

    def make_device(self, fs, n_channels, rng, **options):
        return P2Device(fs, n_channels)


class P2Device(EmulatedDevice):
    """Emulated Olimex shield sketch: free-running P2 packets."""

    free_running = True
    counter_modulus = 256

    def __init__(self, fs=250.0, n_channels=2):
        super().__init__()
        self.fs = float(fs)
        self.n_channels = N_CHANNELS
        self.connected_channels = max(1, min(N_CHANNELS, int(n_channels)))

    def to_device_units(self, microvolts):
        codes = np.full((N_CHANNELS, microvolts.shape[1]), 512, dtype=np.int64)
        used = min(self.connected_channels, microvolts.shape[0])
        codes[:used] = adc_from_microvolts(microvolts[:used], 10, counts_per_uv=0.4)
        return codes

    def encode(self, values, first_stream_index):
        values = np.asarray(values, dtype=np.int64)
        k = values.shape[1]
        rows = np.zeros((k, PACKET_LENGTH), dtype=np.uint8)
        rows[:, 0], rows[:, 1], rows[:, 2] = SYNC[0], SYNC[1], VERSION
        rows[:, 3] = (first_stream_index + np.arange(k)) % 256
        rows[:, 4:16] = np.ascontiguousarray(values.T).astype(">u2").view(np.uint8).reshape(k, 12)
        rows[:, 16] = 0x01
        return [row.tobytes() for row in rows]
