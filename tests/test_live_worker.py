"""The acquisition/processing worker, replay source, recording and headless feedback."""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pytest

from live_helpers import drain

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.live.replay import ReplaySource
from biofeedback.live.sources import load_recording
from biofeedback.live.state import CHECK_ELECTRODE, CONTRACTING, RELAXED, SPASM
from biofeedback.live.terminal import run_headless
from biofeedback.live.worker import LiveBlock, LiveWorker, StreamStarted
from biofeedback.sources.base import Source
from biofeedback.sources.simulator import Scenario, ScriptedEvent, SimulatorSource, simulate

FS = 500.0


def short_session(**kw):
    """Rest (calibration), a cued contraction, an uncued spasm, rest: 13 s."""
    events = (ScriptedEvent("contraction", 5.0, 2.5, channels=None, cued=True),
              ScriptedEvent("spasm", 9.0, 1.0, channels=(0,)))
    return Scenario(duration_s=13.0, events=events, n_channels=2, **kw)


def state_runs(blocks, ch=0):
    runs = []
    for block in blocks:
        if not runs or runs[-1] != block.states[ch]:
            runs.append(block.states[ch])
    return runs


def test_worker_states_events_and_clean_end():
    source = SimulatorSource(short_session(), FS, speed=0, chunk_s=0.05)
    source.has_cues = True
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, source_name="simulator").start()
    messages = drain(worker)
    assert worker.stop() and not worker.alive
    assert isinstance(messages[0], StreamStarted) and messages[0].has_cues
    blocks = [m for m in messages if isinstance(m, LiveBlock)]
    runs = [s for s in state_runs(blocks) if s != "CALIBRATING"]
    assert runs == [RELAXED, CONTRACTING, RELAXED, SPASM, RELAXED]
    assert state_runs(blocks, ch=1)[-3:] == [RELAXED, CONTRACTING, RELAXED]  # no spasm on ch2
    events = [e for b in blocks for e in b.events]
    kinds = sorted((e.channel, e.kind) for e in events)
    assert kinds == [("ch1", "contraction"), ("ch1", "spasm"), ("ch2", "contraction")]
    spasm = next(e for e in events if e.kind == "spasm")
    assert 8.8 < spasm.onset_s < 9.3
    assert messages[-1].reason == "simulator ended after 13.0 s" and not messages[-1].error
    assert any(b.thresholds is not None for b in blocks)
    assert sum(b.traces.n_bins for b in blocks if b.traces is not None) >= 13 * 50  # display bins, 50 per s


class FailingSource(Source):
    """Gives two seconds of noise, then the cable is pulled."""

    def __init__(self):
        self.info = StreamInfo.default_names(1, FS, source="test device")

    def _chunks(self):
        rng = np.random.default_rng(0)
        for i in range(20):
            yield Chunk(rng.normal(scale=3.0, size=(1, 50)), i * 50, self.info)
        raise OSError(5, "Input/output error")


class ListRecorder:
    def __init__(self):
        self.samples, self.events, self.closed = 0, [], False

    def open(self, info):
        self.info = info

    def write(self, chunk):
        self.samples += chunk.n_samples

    def write_events(self, events):
        self.events.extend(events)

    def close(self):
        self.closed = True


def test_disconnect_is_said_in_words_and_the_recording_keeps_everything():
    recorder = ListRecorder()
    worker = LiveWorker(FailingSource(), recorder=recorder, calibration_s=1.0, block_when_full=True).start()
    messages = drain(worker)
    ended = messages[-1]
    assert ended.error and "disconnected" in ended.reason and "Input/output error" in ended.reason
    assert recorder.samples == 1000 and recorder.closed
    worker.stop()


class GappySource(Source):
    """A device that loses 100 samples, then whose electrode comes off (flat)."""

    def __init__(self):
        self.info = StreamInfo.default_names(1, FS, source="test device")

    def _chunks(self):
        rng = np.random.default_rng(0)
        first = 0
        for i in range(60):
            data = rng.normal(scale=3.0, size=(1, 50))
            if i >= 40:
                data[:] = 0.0  # electrode off
            yield Chunk(data, first, self.info)
            first += 50 + (100 if i == 10 else 0)


def test_gaps_are_counted_and_a_flat_channel_asks_to_check_the_electrode():
    worker = LiveWorker(GappySource(), calibration_s=1.0, block_when_full=True).start()
    blocks = [m for m in drain(worker) if isinstance(m, LiveBlock)]
    worker.stop()
    assert blocks[-1].samples_lost == 100
    kinds = [e.kind for b in blocks for e in b.events]
    assert "gap" in kinds and "check electrode" in kinds
    assert blocks[-1].states[0] == CHECK_ELECTRODE and blocks[-1].quality[0] == "flat"


def test_full_queue_drops_display_blocks_but_keeps_events():
    source = SimulatorSource(short_session(), FS, speed=0, chunk_s=0.05)
    source.has_cues = True
    worker = LiveWorker(source, calibration_s=3.0, queue_size=4, block_when_full=False).start()
    deadline = time.monotonic() + 20
    while worker.output.qsize() < 4 or worker.samples_received < 13 * FS:  # nobody drains: it fills
        assert time.monotonic() < deadline
        time.sleep(0.01)
    messages = drain(worker)
    worker.stop()
    assert worker.blocks_dropped > 0
    kinds = sorted((e.channel, e.kind) for m in messages if isinstance(m, LiveBlock) for e in m.events)
    assert kinds == [("ch1", "contraction"), ("ch1", "spasm"), ("ch2", "contraction")]


def test_guided_calibration_and_marker_through_the_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    recording = simulate(Scenario(duration_s=12.0, n_channels=1), FS)
    source = ReplaySource(recording, speed=0, chunk_s=0.05)
    worker = LiveWorker(source, calibration_s=1.0, block_when_full=True, profile_name="test", queue_size=4)
    source.pause()
    worker.start()
    worker.calibrate(rest_s=5.0)
    worker.marker("here")
    source.resume()
    blocks = [m for m in drain(worker) if isinstance(m, LiveBlock)]
    worker.stop()
    prompts = [b.calibration for b in blocks if b.calibration]
    assert prompts[0] == "relax, 5 s" and prompts[-1] == "relax, 1 s"
    notices = [n for b in blocks for n in b.notices]
    assert any("saved as profile 'test'" in n for n in notices)
    assert (tmp_path / "profiles" / "test.json").is_file()
    assert any(e.kind == "marker" for b in blocks for e in b.events)


def test_replay_pause_seek_and_pause_at():
    recording = simulate(Scenario(duration_s=10.0, n_channels=1), FS)
    source = ReplaySource(recording, speed=0, chunk_s=0.1, pause_at_s=2.0)
    with source:
        chunks = iter(source)
        firsts = [next(chunks).first_sample for _ in range(20)]
        assert firsts[-1] == 950 and source.paused and source.position_s == pytest.approx(2.0)
        source.seek(5.0)
        source.resume()
        after = next(chunks)
        assert after.first_sample == 2500 and source.seek_count == 1
        source.seek_by(-1.0)  # from 5.1 s
        assert next(chunks).first_sample == 2050 and source.seek_count == 2
        source.pause()
        source.close()  # a paused replay wakes up and ends on close
        assert list(chunks) == []


def test_load_recording_puts_gaps_back(tmp_path):
    from biofeedback.acquisition.recorder import RecordingWriter
    from biofeedback.core.types import Event

    info = StreamInfo.default_names(1, 100.0, source="device")
    path = tmp_path / "rec.csv"
    writer = RecordingWriter(path, info)
    writer.write_chunk(Chunk(np.ones((1, 50)), 0, info))
    gap = Event("gap", "ch1", 0.5, 0.8, math.nan, {"n_samples": 30})
    writer.write_chunk(Chunk(2 * np.ones((1, 50)), 80, info, events=(gap,)))
    writer.close()
    recording = load_recording(path)
    assert recording.n_samples == 130
    assert np.isnan(recording.data[0, 50:80]).all() and recording.data[0, 80] == 2.0
    assert [e.kind for e in recording.events] == ["gap"]


def test_headless_prints_a_line_per_second_and_events_when_not_a_tty():
    source = SimulatorSource(short_session(), FS, speed=0, chunk_s=0.05)
    source.has_cues = True
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, source_name="simulator")
    out = io.StringIO()
    assert run_headless(worker, stream=out, tty=False, feedback_channels=["all"]) == 0
    text = out.getvalue()
    assert "ch1 spasm" not in text  # events are "00:09.0  ch1  spasm  1.0 s"
    assert "  ch1  spasm  " in text and "  ch2  contraction  " in text
    assert "simulator ended after 13.0 s" in text
    assert not worker.alive


def test_headless_tty_redraws_in_place_and_stops_after_duration():
    recording = simulate(Scenario(duration_s=60.0, n_channels=1), FS)
    worker = LiveWorker(ReplaySource(recording, speed=1.0, chunk_s=0.05), calibration_s=1.0)
    out = io.StringIO()
    start = time.monotonic()
    assert run_headless(worker, stream=out, tty=True, duration_s=1.8) == 0  # 1 s: mains probe
    assert time.monotonic() - start < 5
    assert "\r\x1b[2K" in out.getvalue() and "CALIBRATING" in out.getvalue()
    assert not worker.alive
