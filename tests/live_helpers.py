"""Helpers shared by the live-worker tests."""

from __future__ import annotations

import queue
import time

from biofeedback.live.worker import StreamEnded


def drain(worker, timeout=30.0):
    """All messages of ``worker`` until the stream ends (fails after ``timeout`` s)."""
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = worker.output.get(timeout=0.5)
        except queue.Empty:
            continue
        messages.append(message)
        if isinstance(message, StreamEnded):
            return messages
    raise AssertionError("the worker did not end")
