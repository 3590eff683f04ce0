"""Preallocated ring buffers whose newest samples are always one contiguous view.

A plotting loop wants "the last N samples, oldest first" as one array it can
hand to the drawing code. An ordinary ring buffer stores them in two pieces
that must be concatenated (a copy of the whole window, every frame). Here
every sample is written twice, at ``i`` and ``i + capacity``, in a buffer of
twice the capacity; the last ``count`` samples are then always the slice
``[start, start + count)`` for some ``start``, a view with no copy. Writing
costs two small slice assignments per block, which is cheap next to the
per-frame copy it saves.
"""

from __future__ import annotations

import numpy as np

from biofeedback.errors import ParameterError


class MirrorRing:
    """Fixed-size ring of ``n_rows`` parallel series with contiguous views.

    Parameters
    ----------
    n_rows : int
        Number of parallel series (channels), all written together.
    capacity : int
        Number of most recent samples kept per row.
    dtype : numpy dtype
        Element type (default float64).

    Examples
    --------
    >>> ring = MirrorRing(1, 4)
    >>> ring.write(np.array([[1., 2., 3.]]))
    >>> ring.write(np.array([[4., 5.]]))
    >>> ring.view()[0].tolist()
    [2.0, 3.0, 4.0, 5.0]
    """

    def __init__(self, n_rows: int, capacity: int, dtype=np.float64):
        if n_rows < 1:
            raise ParameterError("ring rows", "at least 1", n_rows)
        if capacity < 1:
            raise ParameterError("ring capacity", "at least 1 sample", capacity)
        self.capacity = int(capacity)
        self._buf = np.zeros((int(n_rows), 2 * self.capacity), dtype=dtype)
        self._head = 0   # next write position in [0, capacity)
        self._count = 0  # valid samples, at most capacity

    @property
    def n_rows(self) -> int:
        """Number of parallel series."""
        return self._buf.shape[0]

    @property
    def count(self) -> int:
        """Number of valid samples (at most :attr:`capacity`)."""
        return self._count

    def clear(self) -> None:
        """Forget the contents (no memory is freed or touched)."""
        self._head = 0
        self._count = 0

    def write(self, block) -> None:
        """Append samples ``(n_rows, m)``; only the last ``capacity`` are kept."""
        block = np.asarray(block)
        if block.ndim == 1:
            block = block[np.newaxis, :]
        m = block.shape[1]
        if m == 0:
            return
        cap = self.capacity
        if m >= cap:
            block = block[:, m - cap:]
            self._buf[:, :cap] = block
            self._buf[:, cap:] = block
            self._head = 0
            self._count = cap
            return
        head = self._head
        first = min(m, cap - head)  # samples written before wrapping
        self._buf[:, head:head + first] = block[:, :first]
        self._buf[:, head + cap:head + cap + first] = block[:, :first]
        rest = m - first
        if rest:
            self._buf[:, :rest] = block[:, first:]
            self._buf[:, cap:cap + rest] = block[:, first:]
        self._head = (head + m) % cap
        self._count = min(cap, self._count + m)

    def drop_last(self, k: int) -> None:
        """Forget the newest ``k`` samples (to replace a provisional value)."""
        k = min(int(k), self._count)
        self._head = (self._head - k) % self.capacity
        self._count -= k

    def view(self) -> np.ndarray:
        """The valid samples, oldest first, as a view ``(n_rows, count)``.

        The view is only valid until the next :meth:`write`; do not keep it.
        """
        start = (self._head - self._count) % self.capacity
        return self._buf[:, start:start + self._count]

    def last(self) -> np.ndarray:
        """The newest sample of each row, shape ``(n_rows,)`` (NaN when empty)."""
        if self._count == 0:
            return np.full(self._buf.shape[0], np.nan)
        return self._buf[:, (self._head - 1) % self.capacity]
