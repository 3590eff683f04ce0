"""ASCII lines, as the common Arduino sketches print them.

One sample per line: 1 to 8 numbers separated by commas, spaces or tabs,
ending with ``\\n`` (``\\r\\n`` works too). Labels in the Arduino Serial
Plotter style (``A0:512,A1:498``) are accepted and dropped. Lines without
any digit (banners, messages) are skipped.

There is no counter: a lost line cannot be seen. A line that has digits but
cannot be read (bytes corrupted, or the wrong number of values) is counted
as one lost sample (a gap of 1, reason ``"malformed"``), which keeps the
sample indices in step with time. The rate is not sent either: it is
measured from the arrival of the lines and stated as such.
"""

from __future__ import annotations

import re

import numpy as np

from biofeedback.acquisition.framing import Gap, ParseResult, StreamParser, empty_result
from biofeedback.acquisition.protocols.base import DeviceConfig, EmulatedDevice, Protocol, adc_from_microvolts

MAX_VALUES = 8
MAX_LINE = 256
_SEPARATORS = re.compile(rb"[,\t ]+")

# Byte classes for the vectorised check of a block of lines.
_NUMERIC = np.zeros(256, dtype=bool)
_NUMERIC[np.frombuffer(b"0123456789+-.eE", dtype=np.uint8)] = True
_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[np.frombuffer(b", \t\r\n", dtype=np.uint8)] = True
_TO_SPACES = bytes.maketrans(b",\t\r", b"   ")


_POWERS = 10.0 ** np.arange(10)


def _integers(arr: np.ndarray, starts: np.ndarray, is_numeric: np.ndarray):
    """Values of tokens that are plain integers (``512``, ``-17``), or ``None``.

    ``analogRead`` values are integers: reading their digits with array
    arithmetic is several times faster than a general number parser.
    """
    if starts.shape[0] == 0:
        return np.zeros(0)
    ends = np.flatnonzero(is_numeric[:-1] & ~is_numeric[1:]) + 1
    if is_numeric[-1]:
        ends = np.concatenate((ends, [arr.shape[0]]))
    if ends.shape[0] != starts.shape[0]:
        return None
    negative = arr[starts] == 45  # "-"
    first_digit = starts + negative
    n_digits = ends - first_digit
    width = int(n_digits.max())
    if width > 9 or n_digits.min() < 1:
        return None
    position = np.arange(width)
    index = ends[:, None] - 1 - position[None, :]  # last digit first
    used = position[None, :] < n_digits[:, None]
    digits = arr[np.where(used, index, 0)].astype(np.int64) - 48
    if np.any(used & ((digits < 0) | (digits > 9))):
        return None  # ".", "e", "+" or a "-" inside a token
    values = np.where(used, digits, 0) @ _POWERS[:width]
    return np.where(negative, -values, values)


def _classify(line: bytes):
    """Return ``("ok", values)``, ``("empty", None)``, ``("text", None)`` or ``("bad", None)``."""
    line = line.strip(b" \t\r")
    if not line:
        return "empty", None
    has_digit = any(48 <= b <= 57 for b in line)
    if not has_digit:
        return "text", None
    tokens = [t for t in _SEPARATORS.split(line) if t]
    values = []
    for token in tokens:
        if b":" in token:  # Serial Plotter label "name:value"
            token = token.rsplit(b":", 1)[1]
            if not token:
                continue
        try:
            values.append(float(token))
        except ValueError:
            return "bad", None
    if not 1 <= len(values) <= MAX_VALUES or not np.all(np.isfinite(values)):
        return "bad", None
    return "ok", values


class AsciiLineParser(StreamParser):
    """Incremental parser of numeric text lines.

    Parameters
    ----------
    n_channels : int, optional
        Expected values per line; default: the count of the first lines.
    lock_lines : int
        Consecutive readable lines with the same count needed to lock.
    """

    protocol = "ascii"

    def __init__(self, n_channels: int | None = None, lock_lines: int = 2):
        super().__init__()
        self._expected = int(n_channels) if n_channels else None
        self.n_channels = self._expected
        self.lock_lines = max(1, int(lock_lines))
        self._pending = b""
        self._at_line_start = False
        self._run = []

    def reset(self, next_index=None):
        self._pending = b""
        self._at_line_start = False
        self._run = []
        self.locked = False
        if next_index is not None:
            self._next_index = int(next_index)

    def feed(self, data, arrival_time=None) -> ParseResult:
        self._count_in(data)
        buf = self._pending + bytes(data) if self._pending else bytes(data)
        cut = buf.rfind(b"\n")
        skipped = 0
        if cut < 0:
            if len(buf) > 4 * MAX_LINE:  # no newline for this long: not a line protocol
                skipped = len(buf) - MAX_LINE
                buf = buf[-MAX_LINE:]
            self._pending = buf
            result = empty_result(self.n_channels)
            result.bytes_skipped = skipped
            return self._count_out(result)
        block, self._pending = buf[:cut + 1], buf[cut + 1:]
        if not self._at_line_start:
            # The stream may have been joined mid-line: drop the first piece.
            first = block.find(b"\n") + 1
            skipped += first
            block = block[first:]
            self._at_line_start = True
        result = self._fast(block) if self.locked else None
        if result is None:
            result = self._slow(block)
        result.bytes_skipped += skipped
        return self._count_out(result)

    def _fast(self, block: bytes):
        """Whole block at once when every line is a clean sample line."""
        if not block:
            return empty_result(self.n_channels)
        arr = np.frombuffer(block, dtype=np.uint8)
        is_numeric = _NUMERIC[arr]
        if not np.all(is_numeric | _SEPARATOR[arr]):
            return None
        # Each line must hold exactly n_channels tokens: with the token starts
        # and the newlines listed, line k owns tokens k*C .. k*C+C-1, which
        # must lie after newline k-1 and before newline k. (Blank lines make
        # the counts differ: the line-by-line path handles them.)
        channels = self.n_channels
        starts = np.flatnonzero(is_numeric[1:] & ~is_numeric[:-1]) + 1
        if is_numeric[0]:
            starts = np.concatenate(([0], starts))
        newlines = np.flatnonzero(arr == 10)
        n_lines_ok = newlines.shape[0]
        if starts.shape[0] != n_lines_ok * channels:
            return None
        if n_lines_ok and (np.any(starts[channels - 1::channels] > newlines)
                           or np.any(starts[channels::channels] < newlines[:-1])):
            return None
        values = _integers(arr, starts, is_numeric)
        if values is None:  # decimals or exponents: let NumPy's reader convert them
            values = np.fromstring(block.translate(_TO_SPACES), dtype=np.float64, sep=" ")  # noqa: NPY201
        if values is None or values.shape[0] != n_lines_ok * channels:
            return None  # a token like "1-2": let the line-by-line path judge it
        index = self._next_index + np.arange(n_lines_ok, dtype=np.int64)
        self._next_index += n_lines_ok
        return ParseResult(values.reshape(n_lines_ok, self.n_channels).T.copy(), index)

    def _slow(self, block: bytes) -> ParseResult:
        rows, index, gaps = [], [], []
        skipped = 0
        lines = block.split(b"\n")[:-1]
        for line in lines:
            kind, values = _classify(line)
            if not self.locked:
                fits = kind == "ok" and (self._expected is None or len(values) == self._expected)
                if fits and (not self._run or len(values) == len(self._run[-1])):
                    self._run.append(values)
                else:
                    skipped += len(line) + 1
                    self._run = [values] if fits else []
                if len(self._run) >= self.lock_lines:
                    self.locked = self.ever_locked = True
                    self.n_channels = len(self._run[0])
                    for run_values in self._run:
                        rows.append(run_values)
                        index.append(self._next_index)
                        self._next_index += 1
                    self._run = []
                continue
            if kind == "ok" and len(values) == self.n_channels:
                rows.append(values)
                index.append(self._next_index)
                self._next_index += 1
            elif kind in ("empty", "text"):
                skipped += len(line) + 1
            else:
                # Digits but unreadable: most likely one sample damaged in transit.
                gaps.append(Gap(self._next_index, 1, "malformed"))
                self._next_index += 1
                skipped += len(line) + 1
        if not rows:
            result = empty_result(self.n_channels)
        else:
            result = ParseResult(np.asarray(rows, dtype=np.float64).T, np.asarray(index, dtype=np.int64))
        result.gaps = gaps
        result.bytes_skipped = skipped
        return result


class AsciiProtocol(Protocol):
    name = "ascii"
    title = "ASCII lines of numbers (common Arduino sketches; no counter, rate measured)"
    default_baud = 115200
    probe_bauds = (115200, 9600)
    nominal_fs = None
    rate_candidates = (100.0, 125.0, 200.0, 250.0, 256.0, 500.0, 1000.0)
    snap_tolerance = 0.005
    free_running = True
    has_counter = False

    def default_config(self, n_channels=None, fs=None, board=None, gain=None):
        return DeviceConfig(self.name, n_channels, fs, "user" if fs else "measure", board=board or "")

    def make_parser(self, config):
        return AsciiLineParser(n_channels=config.n_channels)

    def make_device(self, fs, n_channels, rng, **options):
        return AsciiDevice(fs, n_channels)


class AsciiDevice(EmulatedDevice):
    """Emulated Arduino sketch printing ``analogRead`` values, one line per sample."""

    free_running = True
    counter_modulus = 0

    def __init__(self, fs=500.0, n_channels=1):
        super().__init__()
        self.fs = float(fs)
        self.n_channels = int(n_channels)

    def power_on(self):
        super().power_on()
        return b"EMG sketch ready (biofeedback emulator)\r\n"

    def to_device_units(self, microvolts):
        return adc_from_microvolts(microvolts[: self.n_channels], 10, counts_per_uv=0.4)

    def encode(self, values, first_stream_index):
        values = np.asarray(values, dtype=np.int64)
        return [(",".join(str(int(v)) for v in column) + "\r\n").encode() for column in values.T]
