"""CRC-16/CCITT-FALSE, the check of the firmware_bridge frames.

Parameters of the CRC (the "CCITT-FALSE" variant of the catalogue of
parametrised CRC algorithms): polynomial 0x1021, initial value 0xFFFF, no
reflection of input or output, no final XOR. The check value (CRC of the
nine ASCII bytes ``123456789``) is 0x29B1.

Two implementations give the same numbers: :func:`crc16_ccitt` for one byte
string, and :func:`crc16_ccitt_rows`, which computes the CRC of many frames
of the same length at once (one NumPy operation per byte column, so the cost
per frame falls as more frames are checked together).
"""

from __future__ import annotations

import numpy as np

POLYNOMIAL = 0x1021
INITIAL = 0xFFFF
CHECK_VALUE = 0x29B1  # CRC of b"123456789"


def _make_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLYNOMIAL) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table[byte] = crc
    return table


#: Table of the CRC of each byte value, shape (256,), dtype uint16.
TABLE = _make_table()
_TABLE_LIST = [int(v) for v in TABLE]


def crc16_ccitt(data: bytes, crc: int = INITIAL) -> int:
    """CRC-16/CCITT-FALSE of a byte string.

    Parameters
    ----------
    data : bytes-like
        The bytes to check.
    crc : int
        Start value (0xFFFF; pass a previous result to continue a CRC).

    Returns
    -------
    int
        The 16-bit CRC.
    """
    table = _TABLE_LIST
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def crc16_ccitt_rows(rows: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT-FALSE of each row of a byte matrix.

    Parameters
    ----------
    rows : ndarray of uint8, shape (n_frames, n_bytes)
        One frame (the bytes covered by the CRC) per row.

    Returns
    -------
    ndarray of uint16, shape (n_frames,)
        The CRC of each row.
    """
    rows = np.asarray(rows, dtype=np.uint8)
    crc = np.full(rows.shape[0], INITIAL, dtype=np.uint16)
    for column in range(rows.shape[1]):
        # One table step for every frame at once; the byte loop is short
        # (a frame is tens of bytes), the frame axis is long.
        index = (crc >> 8).astype(np.uint8) ^ rows[:, column]
        crc = (crc << 8) ^ TABLE[index]
    return crc
