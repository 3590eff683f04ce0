"""A store for the envelope between the two passes of a batch analysis.

Batch detection needs the whole envelope before it starts (the baseline
comes from the quietest windows of the whole recording). An hour of 8
channels at 2 kHz is 460 MB of float64 envelope; keeping it in memory would
make memory grow with the recording. :class:`ChunkStore` keeps chunks in
memory up to a budget and spills the rest to an anonymous temporary file,
read back chunk by chunk with ordinary reads (not a memory map, whose pages
would count in the process's resident memory). Values are stored as float64,
so the second pass sees exactly what the first pass computed.
"""

from __future__ import annotations

import bisect
import tempfile

import numpy as np

from biofeedback.core.types import Chunk, StreamInfo

#: Bytes of chunks kept in memory before spilling to disk. 4 MiB holds the
#: whole envelope of short files (30 s of 8 channels at 2 kHz, 17 minutes
#: of one channel at 500 Hz); past that, writing and reading back the
#: rest costs a few tens of milliseconds per minute of 8 channels at 2 kHz (the
#: page cache absorbs it), against the analysis's seconds. At 64 MiB the
#: store was the largest allocation of a batch run (peak resident memory of
#: ``analyze --jobs 1`` on two one-hour 8-channel 2 kHz files: 390 MB).
DEFAULT_MEMORY_BUDGET = 4 * 1024 * 1024


class ChunkStore:
    """Append-only store of consecutive chunks ``(n_channels, n)`` with cue codes.

    Parameters
    ----------
    info : StreamInfo
        Metadata given to the chunks read back.
    memory_budget : int
        Bytes held in memory before the store spills to a temporary file.
    """

    def __init__(self, info: StreamInfo, memory_budget: int = DEFAULT_MEMORY_BUDGET):
        self.info = info
        self.memory_budget = int(memory_budget)
        self._memory: list[Chunk] = []
        self._memory_bytes = 0
        self._file = None
        self._index: list[tuple[int, int, int, bool]] = []  # (first_sample, n, offset, has_cues)
        self._firsts: list[int] = []  # first sample of each spilled chunk, to find a span's chunks
        self.n_samples = 0

    @property
    def spilled(self) -> bool:
        """True once part of the data lives in the temporary file."""
        return self._file is not None

    def append(self, data, first_sample: int, cues=None) -> None:
        """Add the next chunk's data ``(n_channels, n)`` and optional integer cue codes ``(n,)``."""
        data = np.ascontiguousarray(data, dtype=np.float64)
        if cues is not None:
            cues = np.ascontiguousarray(cues, dtype=np.int64)
        self.n_samples = first_sample + data.shape[1]
        if self._file is None and self._memory_bytes + data.nbytes <= self.memory_budget:
            self._memory.append(Chunk(data, first_sample, self.info, cues=cues))
            self._memory_bytes += data.nbytes
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="biofeedback-envelope-")
        offset = self._file.seek(0, 2)
        self._file.write(data.tobytes())
        if cues is not None:
            self._file.write(cues.tobytes())
        self._index.append((first_sample, data.shape[1], offset, cues is not None))
        self._firsts.append(first_sample)

    def __iter__(self):
        """Yield the stored chunks in order."""
        yield from self._memory
        for entry in self._index:
            yield self._read(entry)

    def _read(self, entry) -> Chunk:
        """One spilled chunk, read back from the temporary file."""
        first, n, offset, has_cues = entry
        n_ch = self.info.n_channels
        self._file.seek(offset)
        data = np.frombuffer(self._file.read(8 * n_ch * n), dtype=np.float64).reshape(n_ch, n)
        cues = np.frombuffer(self._file.read(8 * n), dtype=np.int64) if has_cues else None
        return Chunk(data, first, self.info, cues=cues)

    def span(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of every channel, shape (n_channels, stop - start).

        Only the chunks that overlap the span are read (the spilled ones are
        found by their first sample), so many short spans of a long
        recording cost what they hold, not a pass over the whole file.
        """
        parts = []
        overlapping = [c for c in self._memory if c.first_sample < stop and c.stop > start]
        k = max(0, bisect.bisect_right(self._firsts, start) - 1)
        for entry in self._index[k:]:
            if entry[0] >= stop:
                break
            if entry[0] + entry[1] > start:
                overlapping.append(self._read(entry))
        for chunk in overlapping:
            lo = max(start, chunk.first_sample) - chunk.first_sample
            hi = min(stop, chunk.stop) - chunk.first_sample
            parts.append(chunk.data[:, lo:hi])
        if not parts:
            return np.zeros((self.info.n_channels, 0))
        return np.concatenate(parts, axis=1)

    def close(self) -> None:
        """Delete the temporary file (also done when the store is garbage-collected)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._index = []
            self._firsts = []
        self._memory = []
