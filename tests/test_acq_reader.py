"""The reading thread and the serial source, with scripted ports (no pty, no timing asserts)."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from biofeedback.acquisition.clock import RateEstimator, decide_rate
from biofeedback.acquisition.protocols.p2 import P2Parser, encode_packet
from biofeedback.acquisition.reader import ReaderThread, Samples, Status
from biofeedback.acquisition.serial_source import SerialSource


class ScriptedPort:
    """A port whose reads return scripted blocks, then fail or go quiet."""

    def __init__(self, blocks, then="fail"):
        self.blocks = list(blocks)
        self.then = then
        self.closed = False
        self.event = threading.Event()

    @property
    def in_waiting(self):
        return len(self.blocks[0]) if self.blocks else 0

    def read(self, size=1):
        if self.blocks:
            return self.blocks.pop(0)
        if self.then == "fail":
            raise OSError(5, "Input/output error")
        self.event.wait(0.02)
        return b""

    def close(self):
        self.closed = True


def packets(first, n):
    return b"".join(encode_packet(first + k, [k % 1024] * 6) for k in range(n))


def collect(q, until, timeout=10.0):
    items = []
    while True:
        item = q.get(timeout=timeout)
        items.append(item)
        if until(item):
            return items


def test_disconnect_reconnect_and_the_gap_placed_by_the_clock():
    first = ScriptedPort([packets(0, 50)], then="fail")
    second = ScriptedPort([packets(0, 20)], then="quiet")
    ports = iter([second])
    q = queue.Queue(100)
    # The first reconnection attempt waits 0.2 s (50 samples at 250 Hz), so the
    # clock always places the new samples after a gap.
    reader = ReaderThread(first, P2Parser(), q, reconnect=lambda: next(ports), nominal_fs=250.0,
                          stall_timeout=1e9, frames_timeout=1e9)
    reader.start()
    try:
        items = collect(q, lambda i: isinstance(i, Samples) and i.result.index[0] > 0)
    finally:
        reader.stop()
    kinds = [i.kind if isinstance(i, Status) else "samples" for i in items]
    assert kinds == ["samples", "disconnect", "reconnect", "samples"]
    before, after = items[0].result, items[-1].result
    assert before.index.tolist() == list(range(50))
    assert first.closed
    gap = after.gaps[0]
    assert gap.reason == "disconnect" and gap.start == 50 and gap.n_samples > 0
    assert after.index[0] == 50 + gap.n_samples
    np.testing.assert_array_equal(np.diff(after.index), 1)


def test_full_queue_is_an_overrun_not_a_blocked_reader():
    blocks = [packets(k * 10, 10) for k in range(30)]
    port = ScriptedPort(blocks, then="quiet")
    q = queue.Queue(maxsize=2)
    reader = ReaderThread(port, P2Parser(), q, max_backlog_samples=50, stall_timeout=1e9, frames_timeout=1e9)
    reader.start()
    try:
        while port.blocks:  # the reader goes on reading though nobody empties the queue
            port.event.wait(0.01)
        reader.stop()
        reader.join()
        items = []
        while reader._backlog or reader._pending_overrun or not q.empty():  # a consumer, at last
            while not q.empty():
                items.append(q.get_nowait())
            reader._flush_backlog()
    finally:
        reader.stop()
    assert reader.overrun_samples > 0
    samples = [i for i in items if isinstance(i, Samples)]
    overruns = [i for i in items if isinstance(i, Status) and i.kind == "overrun"]
    delivered = sum(s.result.n_samples for s in samples)
    assert delivered + reader.overrun_samples == 300
    assert overruns and sum(o.n_samples for o in overruns) == reader.overrun_samples


def test_stall_and_no_frames_are_reported():
    q = queue.Queue(10)
    reader = ReaderThread(ScriptedPort([], then="quiet"), P2Parser(), q, stall_timeout=0.2)
    reader.start()
    try:
        assert collect(q, lambda i: True)[0].kind == "stall"
    finally:
        reader.stop()
    garbage = [bytes(range(256))] * 400
    q = queue.Queue(10)
    reader = ReaderThread(ScriptedPort(garbage, then="quiet"), P2Parser(), q, frames_timeout=0.0, stall_timeout=1e9)
    reader.start()
    try:
        status = collect(q, lambda i: True)[0]
        assert status.kind == "no_frames" and status.recent_bytes
    finally:
        reader.stop()


def test_reconnect_gives_up_after_its_timeout():
    def refuse():
        raise OSError(2, "No such file or directory")

    q = queue.Queue(10)
    reader = ReaderThread(ScriptedPort([], then="fail"), P2Parser(), q, reconnect=refuse, reconnect_timeout=0.3)
    reader.start()
    try:
        items = collect(q, lambda i: i.kind == "gave_up")
    finally:
        reader.stop()
    assert [i.kind for i in items] == ["disconnect", "gave_up"]
    assert "did not come back within 0.3 s" in items[-1].detail


def test_rate_estimator_fits_a_drifting_clock_despite_bursty_arrival():
    rng = np.random.default_rng(0)
    true_fs = 250.0 * (1 + 300e-6)  # a crystal 300 ppm fast
    estimator = RateEstimator()
    index = 0
    for read in range(2000):
        index += int(rng.integers(1, 8))
        delay = float(rng.exponential(0.004))  # USB and scheduler latency, never negative
        estimator.add(index, 10.0 + index / true_fs + delay)
    assert estimator.fs == pytest.approx(true_fs, rel=5e-5)
    assert estimator.index_at(estimator.time_of(1234.0)) == pytest.approx(1234.0)
    assert decide_rate(249.7, (256.0, 250.0)) == (250.0, True)
    assert decide_rate(253.0, (256.0, 250.0)) == (253.0, False)


def test_serial_source_over_sim_url_reconnects_and_marks_it(tmp_path):
    url = f"sim://?protocol=p2&fs=250&seed=1&fail_after=0.6&tag={tmp_path.name}"
    with SerialSource(url, "p2", fs=250, reconnect_timeout=10) as source:
        assert source.info.fs == 250 and source.info.n_channels == 6 and source.info.units == "counts"
        events, last_stop = [], 0
        for chunk in source:
            events.extend(chunk.events)
            assert chunk.first_sample >= last_stop  # never backwards
            last_stop = max(last_stop, chunk.stop)
            if any(e.kind == "reconnect" for e in events) and last_stop > source.info.fs:
                break
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["disconnect", "gap", "reconnect"]
    assert events[1].extra["n_samples"] >= 1 and events[1].extra["reason"] == "disconnect"
    assert source.summary()["disconnects"] == 1


def test_loop_url_carries_frames_through_the_reader():
    from biofeedback.acquisition.serial_source import open_port

    port = open_port("loop://", 57600)
    port.write(packets(0, 40))
    q = queue.Queue(10)
    reader = ReaderThread(port, P2Parser(), q, stall_timeout=1e9, frames_timeout=1e9)
    reader.start()
    try:
        item = collect(q, lambda i: isinstance(i, Samples))[-1]
    finally:
        reader.stop()
        port.close()
    assert item.result.index.tolist() == list(range(item.result.n_samples)) and item.result.n_samples >= 39
