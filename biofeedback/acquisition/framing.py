"""Incremental byte-stream parsers: the machinery all protocols share.

A parser is pure state: :meth:`StreamParser.feed` takes the bytes that
arrived (any split: one byte, half a frame, a megabyte) and returns the
samples they completed. It does no I/O and keeps no clock of its own; the
caller passes the arrival time of each block when it has one.

Every sample gets an absolute *index*: 0 for the first sample of the stream,
then one more per sample period. Indices come from the device's frame
counter, not from host timers, so a lost frame shows as a jump in the index
and is reported as a :class:`Gap` with its exact sample count, and a frame
received twice is dropped and counted.

Binary protocols derive from :class:`FramedParser`, which handles:

* **lock**: a frame start is only believed after ``lock_frames`` consecutive
  valid frames, one frame length apart, whose counters advance by a small
  step (payloads may contain the sync bytes, so one match proves nothing);
* **fast path**: once locked, whole frames are checked and decoded many at a
  time with NumPy (a ``(n_frames, frame_length)`` view of the bytes);
* **resynchronisation**: the first invalid frame drops the lock and the
  search restarts one byte later; the bytes skipped are counted;
* **counter unwrapping**: counters are small (8 or 16 bits) and wrap; the
  difference modulo the counter range gives the frames lost, and, after a
  silence long enough for the counter to wrap, the arrival clock picks the
  right number of wraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Bytes of the start of a stream kept for error messages and recognition.
FIRST_BYTES_KEPT = 4096


class _NeedMore:
    def __repr__(self):
        return "NEED_MORE"


#: Returned by :meth:`FramedParser._geometry_at` when more bytes are needed.
NEED_MORE = _NeedMore()


@dataclass(frozen=True)
class Gap:
    """Samples the stream lost.

    Parameters
    ----------
    start : int
        Index of the first missing sample.
    n_samples : int
        Number of samples missing (> 0).
    reason : str
        ``"counter"`` (the device's counter jumped), ``"malformed"`` (an
        ASCII line could not be read), ``"disconnect"`` (estimated from the
        clock across an unplug) or ``"overrun"`` (the host queue was full).
    """

    start: int
    n_samples: int
    reason: str = "counter"

    @property
    def stop(self) -> int:
        """Index one past the last missing sample."""
        return self.start + self.n_samples


@dataclass
class ParseResult:
    """Samples completed by one call to :meth:`StreamParser.feed`.

    Parameters
    ----------
    data : ndarray of float64, shape (n_channels, n_samples)
        Samples in the parser's units (ADC counts, or µV for OpenBCI).
    index : ndarray of int64, shape (n_samples,)
        Absolute index of each sample; increasing, with jumps at gaps.
    gaps : list of Gap
        Gaps found in this call, in order.
    bytes_skipped : int
        Bytes that belonged to no valid frame (garbage, partial frames,
        text lines that are not samples).
    resyncs : int
        Times the lock was lost.
    duplicates : int
        Frames dropped because their counter repeated the previous one.
    """

    data: np.ndarray
    index: np.ndarray
    gaps: list = field(default_factory=list)
    bytes_skipped: int = 0
    resyncs: int = 0
    duplicates: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.index.shape[0])

    def segments(self):
        """Yield ``(first_index, data)`` for each run of consecutive indices.

        Yields
        ------
        first_index : int
        data : ndarray, shape (n_channels, n)
        """
        if self.n_samples == 0:
            return
        breaks = np.flatnonzero(np.diff(self.index) != 1) + 1
        starts = np.concatenate(([0], breaks))
        stops = np.concatenate((breaks, [self.n_samples]))
        for start, stop in zip(starts, stops):
            yield int(self.index[start]), self.data[:, start:stop]


def empty_result(n_channels: int | None) -> ParseResult:
    """A result with no samples."""
    return ParseResult(np.zeros((n_channels or 0, 0)), np.zeros(0, dtype=np.int64))


def concat_results(results, n_channels: int | None) -> ParseResult:
    """Join the results of consecutive :meth:`StreamParser.feed` calls."""
    results = [r for r in results if r is not None]
    if not results:
        return empty_result(n_channels)
    with_samples = [r for r in results if r.n_samples]
    if with_samples:
        data = np.concatenate([r.data for r in with_samples], axis=1)
        index = np.concatenate([r.index for r in with_samples])
    else:
        data, index = empty_result(n_channels).data, empty_result(n_channels).index
    return ParseResult(
        data,
        index,
        [g for r in results for g in r.gaps],
        sum(r.bytes_skipped for r in results),
        sum(r.resyncs for r in results),
        sum(r.duplicates for r in results),
    )


@dataclass
class ParserStats:
    """Running totals of a parser (for summaries and error messages)."""

    bytes_in: int = 0
    bytes_skipped: int = 0
    samples: int = 0
    gaps: int = 0
    lost_samples: int = 0
    resyncs: int = 0
    duplicates: int = 0
    first_bytes: bytes = b""

    def first_bytes_hex(self, n: int = 16) -> str:
        """The first bytes seen, as hex pairs (``"a0 01 ff"``)."""
        return self.first_bytes[:n].hex(" ") if self.first_bytes else "(none)"


class StreamParser:
    """Base class of the incremental parsers.

    Attributes
    ----------
    protocol : str
        Protocol name (``"bridge"``, ``"ascii"``, ``"chords"``, ``"p2"``,
        ``"cyton"``).
    n_channels : int or None
        Channels per sample; ``None`` until the parser has locked when the
        stream itself tells it.
    units : str
        Units of the parsed samples.
    locked : bool
        True while the parser trusts its frame alignment.
    fs_hint : float or None
        Sampling rate in Hz used to unwrap counters across long silences
        (set by the caller; nominal or measured).
    """

    protocol = ""
    units = "counts"

    def __init__(self):
        self.n_channels: int | None = None
        self.locked = False
        self.ever_locked = False
        self.fs_hint: float | None = None
        self.stats = ParserStats()
        self._next_index = 0

    @property
    def next_index(self) -> int:
        """Index the next sample will get if nothing is lost."""
        return self._next_index

    def feed(self, data: bytes, arrival_time: float | None = None) -> ParseResult:
        """Parse more bytes.

        Parameters
        ----------
        data : bytes-like
            The bytes that arrived, in order, right after the previous call's.
        arrival_time : float, optional
            Monotonic time in seconds at which they were read.

        Returns
        -------
        ParseResult
        """
        raise NotImplementedError

    def reset(self, next_index: int | None = None) -> None:
        """Start on a new byte stream (after a reconnect).

        Parameters
        ----------
        next_index : int, optional
            Index to give the first sample of the new stream (the caller
            estimates the samples lost while disconnected); default: carry
            on from the last sample.
        """
        raise NotImplementedError

    def _count_in(self, data) -> None:
        self.stats.bytes_in += len(data)
        if len(self.stats.first_bytes) < FIRST_BYTES_KEPT:
            self.stats.first_bytes += bytes(data[: FIRST_BYTES_KEPT - len(self.stats.first_bytes)])

    def _count_out(self, result: ParseResult) -> ParseResult:
        stats = self.stats
        stats.samples += result.n_samples
        stats.bytes_skipped += result.bytes_skipped
        stats.resyncs += result.resyncs
        stats.duplicates += result.duplicates
        stats.gaps += len(result.gaps)
        stats.lost_samples += sum(g.n_samples for g in result.gaps)
        return result


class FramedParser(StreamParser):
    """Parser of binary frames that start with sync bytes and carry a counter.

    Subclasses define the protocol through the hooks below. A *geometry* is
    whatever fixes a frame's length and layout (a channel count, or channels
    and samples per frame); it is found from the first frames and then kept.

    Parameters
    ----------
    lock_frames : int
        Consecutive valid frames needed to lock (>= 2).
    max_lock_step : int
        Largest counter step, in frames, accepted between the frames that
        establish the lock (a few frames may be lost right there).
    """

    #: Bytes every frame starts with.
    sync = b""
    #: Number of distinct counter values (256 for an 8-bit counter).
    counter_modulus = 256
    #: Longest frame of the protocol, in bytes (bounds the search buffer).
    max_frame_length = 64

    def __init__(self, lock_frames: int = 2, max_lock_step: int = 8):
        super().__init__()
        self.lock_frames = max(2, int(lock_frames))
        self.max_lock_step = int(max_lock_step)
        self._geometry = None
        self._pending = b""
        self._last_counter: int | None = None
        self._last_arrival: float | None = None

    # -- hooks --------------------------------------------------------------

    def _geometry_at(self, arr: np.ndarray, pos: int):
        """Geometry of a frame that would start at ``pos``.

        Returns ``None`` when no frame can start there, :data:`NEED_MORE`
        when more bytes are needed to tell.
        """
        raise NotImplementedError

    def _frame_length(self, geometry) -> int:
        raise NotImplementedError

    def _samples_per_frame(self, geometry) -> int:
        return 1

    def _channels_of(self, geometry) -> int:
        raise NotImplementedError

    def _rows_valid(self, rows: np.ndarray, geometry) -> np.ndarray:
        """Boolean mask, shape (n_frames,), of the frames that pass every check."""
        raise NotImplementedError

    def _rows_counter(self, rows: np.ndarray, geometry) -> np.ndarray:
        """Counter of each frame, shape (n_frames,), int64."""
        raise NotImplementedError

    def _decode(self, rows: np.ndarray, geometry) -> np.ndarray:
        """Samples of the frames, shape (n_channels, n_frames * samples_per_frame)."""
        raise NotImplementedError

    def _candidates(self, arr: np.ndarray, start: int) -> np.ndarray:
        """Positions at or after ``start`` where a frame could begin."""
        sync = self.sync
        n = arr.shape[0] - len(sync) + 1
        if n <= start:
            return np.zeros(0, dtype=np.int64)
        mask = arr[start:n] == sync[0]
        for offset in range(1, len(sync)):
            mask &= arr[start + offset:n + offset] == sync[offset]
        return np.flatnonzero(mask) + start

    # -- public ---------------------------------------------------------------

    @property
    def geometry(self):
        """The frame geometry found at the first lock (``None`` before)."""
        return self._geometry

    def reset(self, next_index: int | None = None) -> None:
        self._pending = b""
        self.locked = False
        self._last_counter = None
        self._last_arrival = None
        if next_index is not None:
            self._next_index = int(next_index)

    def feed(self, data, arrival_time: float | None = None) -> ParseResult:
        self._count_in(data)
        buf = self._pending + bytes(data) if self._pending else bytes(data)
        arr = np.frombuffer(buf, dtype=np.uint8)
        n = arr.shape[0]
        pos = 0
        accepted = []
        skipped = 0
        resyncs = 0
        while pos < n:
            if self.locked:
                geometry = self._geometry
                length = self._frame_length(geometry)
                k = (n - pos) // length
                if k == 0:
                    break
                rows = arr[pos:pos + k * length].reshape(k, length)
                ok = self._rows_valid(rows, geometry)
                if ok.all():
                    accepted.append(rows)
                    pos += k * length
                    break
                bad = int(np.argmin(ok))
                if bad:
                    accepted.append(rows[:bad])
                pos += bad * length + 1  # this frame start is wrong: search from the next byte
                skipped += 1
                self.locked = False
                resyncs += 1
            else:
                lock_at, keep_from = self._search(arr, pos)
                if lock_at is None:
                    skipped += keep_from - pos
                    pos = keep_from
                    break
                skipped += lock_at - pos
                pos = lock_at
                self.locked = True
                self.ever_locked = True
        self._pending = buf[pos:]
        result = self._emit(accepted, arrival_time)
        result.bytes_skipped = skipped
        result.resyncs = resyncs
        return self._count_out(result)

    # -- internals ------------------------------------------------------------

    def _search(self, arr: np.ndarray, pos: int):
        """Find where to lock; return ``(lock_at or None, keep_from)``."""
        n = arr.shape[0]
        modulus = self.counter_modulus
        for c in self._candidates(arr, pos):
            c = int(c)
            geometry = self._geometry_at(arr, c)
            if geometry is None:
                continue
            if geometry is NEED_MORE:
                return None, c
            if self._geometry is not None and geometry != self._geometry:
                continue  # the channel layout cannot change within a session
            length = self._frame_length(geometry)
            end = c + self.lock_frames * length
            if end > n:
                return None, c
            rows = arr[c:end].reshape(self.lock_frames, length)
            if not self._rows_valid(rows, geometry).all():
                continue
            step = self._samples_per_frame(geometry)
            counters = self._rows_counter(rows, geometry)
            steps = np.diff(counters) % modulus
            if np.all((steps >= step) & (steps <= self.max_lock_step * step)):
                self._geometry = geometry
                self.n_channels = self._channels_of(geometry)
                return c, c
        # Nothing to lock on: keep only what could still start a frame.
        span = self.lock_frames * self.max_frame_length + 8
        return None, max(pos, n - span)

    def _emit(self, accepted, arrival_time) -> ParseResult:
        if not accepted:
            return empty_result(self.n_channels)
        geometry = self._geometry
        rows = accepted[0] if len(accepted) == 1 else np.concatenate(accepted)
        step = self._samples_per_frame(geometry)
        modulus = self.counter_modulus
        counters = self._rows_counter(rows, geometry).astype(np.int64)
        previous = np.empty_like(counters)
        previous[1:] = counters[:-1]
        previous[0] = counters[0] - step if self._last_counter is None else self._last_counter
        diff = (counters - previous) % modulus
        if self._last_counter is not None:
            diff[0] = self._unwrap_with_clock(int(diff[0]), arrival_time, step, rows.shape[0])
        duplicates = 0
        if np.any(diff < step):
            # Repeated or inconsistent counters: rare, so a plain loop is fine.
            keep = np.ones(diff.shape[0], dtype=bool)
            last = previous[0]
            for i in range(diff.shape[0]):
                d = diff[i] if i == 0 else (counters[i] - last) % modulus
                if d < step:
                    keep[i] = False
                    duplicates += 1
                    continue
                diff[i] = d
                last = counters[i]
            rows, counters, diff = rows[keep], counters[keep], diff[keep]
            if rows.shape[0] == 0:
                result = empty_result(self.n_channels)
                result.duplicates = duplicates
                return result
        starts = self._next_index + np.cumsum(diff) - step
        gaps = []
        lost = np.flatnonzero(diff > step)
        for i in lost:
            n_lost = int(diff[i] - step)
            gaps.append(Gap(int(starts[i]) - n_lost, n_lost, "counter"))
        self._next_index = int(starts[-1]) + step
        self._last_counter = int(counters[-1])
        if arrival_time is not None:
            self._last_arrival = arrival_time
        data = self._decode(rows, geometry)
        if step == 1:
            index = starts
        else:
            index = (starts[:, None] + np.arange(step)).ravel()
        return ParseResult(data, index.astype(np.int64), gaps, duplicates=duplicates)

    def _unwrap_with_clock(self, diff0: int, arrival_time, step: int, n_frames: int) -> int:
        """Add whole counter wraps when the silence was longer than one wrap.

        ``arrival_time`` bounds the *last* frame of the batch, so the frames
        after the first are taken off the elapsed samples.
        """
        if arrival_time is None or self._last_arrival is None or not self.fs_hint:
            return diff0
        expected = (arrival_time - self._last_arrival) * self.fs_hint - (n_frames - 1) * step
        modulus = self.counter_modulus
        if expected <= modulus / 2:
            return diff0
        wraps = max(0, int(round((expected - diff0) / modulus)))
        return diff0 + wraps * modulus
