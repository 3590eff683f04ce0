"""CRC-16/CCITT-FALSE, the check of the firmware_bridge frames.

Parameters of the CRC (the "CCITT-FALSE" variant of the catalogue of
parametrised CRC algorithms): polynomial 0x1021, initial value 0xFFFF, no
reflection of input or output, no final XOR. The check value (CRC of the
nine ASCII bytes ``123456789``) is 0x29B1.

Two implementations give the same numbers: :func:`crc16_ccitt` for one byte
string, and :func:`crc16_ccitt_rows`, which computes the CRC of many frames
of the same length at once (one NumPy table step per *pair* of byte columns,
so the cost per frame falls as more frames are checked together).
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


def _make_pair_table() -> np.ndarray:
    # The CRC is linear, so two input bytes can be folded into the register
    # first and the register then shifted 16 bits with zero input:
    # crc' = PAIR_TABLE[crc ^ (b0 << 8 | b1)]. Half the steps per frame.
    x = np.arange(1 << 16, dtype=np.uint32)
    for _ in range(2):
        x = ((x << 8) & 0xFFFF) ^ TABLE[x >> 8]
    return x.astype(np.uint16)


#: Table for two bytes at a time, shape (65536,), dtype uint16.
PAIR_TABLE = _make_pair_table()


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
    start = rows.shape[1] % 2
    if start:
        # One single-byte step for an odd length.
        crc = (crc << 8) ^ TABLE[(crc >> 8).astype(np.uint8) ^ rows[:, 0]]
    # The rest two bytes at a time: one table step for every frame at once;
    # the loop over byte pairs is short (a frame is tens of bytes), the
    # frame axis is long.
    words = np.ascontiguousarray(rows[:, start:]).view(">u2").astype(np.uint16)
    for column in range(words.shape[1]):
        crc = PAIR_TABLE[crc ^ words[:, column]]
    return crc
