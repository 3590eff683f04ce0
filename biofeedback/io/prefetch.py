"""Read ahead in a background thread while the caller processes.

Batch analysis alternates between parsing the next block of a file and
filtering the last one. Both spend most of their time in numpy and scipy
loops that release the GIL, so a reader thread that stays a few chunks ahead
lets the two overlap on a machine with more than one core, with the same
chunks in the same order and the same errors at the same place: the caller
sees exactly what iterating the source directly would give.

The queue between the threads is bounded (``depth`` chunks), so memory stays
bounded however fast the reader is, and closing the consumer (or an error
in it) stops the reader at its next chunk (the producer/consumer design of
python-sounddevice's callback queues, applied to files).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_END = object()


class _Failure:
    """An exception raised by the source, carried to the consumer."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(source: Iterable, depth: int = 2) -> Iterator:
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead.

    Parameters
    ----------
    source : iterable
        Any iterable (e.g. the chunks of a reader); it is iterated in the
        background thread only.
    depth : int
        Largest number of items read ahead and not yet consumed (>= 1).

    Yields
    ------
    object
        The items of ``source``, in order. An exception raised by ``source``
        is raised here, after the items that came before it.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        # Wait for room, but give up when the consumer has gone away.
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer, raised there
            put(_Failure(exc))
            return
        finally:
            # A reader left half-way (the consumer stopped) closes its file here.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        put(_END)

    thread = threading.Thread(target=read, name="biofeedback-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
