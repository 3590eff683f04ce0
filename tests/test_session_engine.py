"""The session loop: a source that disconnects mid-protocol, a user stop, a full disk."""

from __future__ import annotations

import errno
import math
import os
import threading

import numpy as np
import pytest

from biofeedback.core.types import Chunk, Event
from biofeedback.errors import BiofeedbackError
from biofeedback.session import store
from biofeedback.session.engine import ProtocolSession, run_headless
from biofeedback.session.protocol import parse_protocol
from biofeedback.session.runner import expand, scenario_for
from biofeedback.session.store import load_session, repair_session
from biofeedback.sources.base import Source
from biofeedback.sources.simulator import SimulatorSource

FS = 200.0
PROTOCOL = parse_protocol("""
[[phase]]
role = "baseline"
duration_s = 12
[[block]]
repeat = 3
  [[block.phase]]
  role = "work"
  duration_s = 3
  target = { pct_mvc = 40 }
  [[block.phase]]
  role = "rest"
  duration_s = 5
[[phase]]
role = "baseline"
duration_s = 5
""", "short.toml", "short")


class FlakySource(Source):
    """A simulator that unplugs at ``at_s``: an empty chunk with a ``disconnect`` event, then either
    an error (``give_up``) or, ``away_s`` later, chunks again with ``reconnect`` and ``gap`` events."""

    def __init__(self, extra_s=30.0, at_s=20.0, away_s=4.0, give_up=False):
        from dataclasses import replace

        scenario = replace(scenario_for(PROTOCOL, FS), duration_s=PROTOCOL.duration_s + extra_s)
        self.inner = SimulatorSource(scenario, FS, chunk_s=0.1, speed=0)
        self.info = self.inner.info
        self.at, self.away, self.give_up = int(at_s * FS), int(away_s * FS), give_up

    def _chunks(self):
        state = "before"
        for chunk in self.inner:
            if state == "before" and chunk.first_sample >= self.at:
                t = chunk.first_sample / FS
                yield Chunk(np.zeros((1, 0)), chunk.first_sample, self.info,
                            events=(Event("disconnect", "", t, t, math.nan, {"detail": "unplugged"}),))
                if self.give_up:
                    raise BiofeedbackError("/dev/ttyUSB9 was disconnected and did not come back within 30 s")
                state = "away"
            if state == "away":
                if chunk.first_sample < self.at + self.away:
                    continue
                t = chunk.first_sample / FS
                chunk = chunk.replace(events=(
                    Event("reconnect", "", t, t, math.nan),
                    Event("gap", "", self.at / FS, t, math.nan, {"n_samples": chunk.first_sample - self.at})))
                state = "after"
            yield chunk


def run(tmp_path, source, writer_options=None, **kwargs):
    notes = []
    session = ProtocolSession(PROTOCOL, tmp_path / "s", on_note=notes.append, writer_options=writer_options)
    outcome = run_headless(source, session, calibration_s=5.0, **kwargs)
    return outcome, notes


def test_disconnect_pauses_the_protocol_and_it_resumes(tmp_path):
    outcome, notes = run(tmp_path, FlakySource())
    assert outcome.status == "complete" and outcome.exit_code == 0
    data = load_session(outcome.folder)
    assert data.status == "complete" and data.warnings == []
    at, away = int(20 * FS), int(4 * FS)
    plan = expand(PROTOCOL, FS).phases
    assert len(data.phases) == len(plan)
    for got, planned in zip(data.phases, plan):
        shift = away if planned.start >= at else 0
        end_shift = away if planned.stop > at else 0
        assert (got.extra["start_sample"], got.extra["end_sample"]) == (planned.start + shift, planned.stop + end_shift)
        assert got.extra["paused_s"] == (4.0 if planned.start < at < planned.stop else 0.0)
    assert any("disconnected at 20.0 s" in n and "paused" in n for n in notes)
    assert any("after 4.0 s" in n and "goes on" in n for n in notes)
    assert data.meta["notes"] == notes
    assert data.meta["pauses"] == [{"start_sample": at, "stop_sample": at + away, "at_sample": at,
                                    "reason": "source disconnected"}]
    kinds = [e.kind for e in data.events]
    assert {"disconnect", "reconnect", "gap"} <= set(kinds)
    assert not data.present[at:at + away].any() and data.present[at + away:].all()
    # The recorded cues follow the shifted schedule.
    cues = data.recording.cues
    for got in data.phases:
        a, b = got.extra["start_sample"], got.extra["end_sample"]
        inside = data.present[a:b]
        assert set(cues[a:b][inside]) == {got.cue}
    assert data.recording.n_samples == plan[-1].stop + away


def test_source_that_never_comes_back_ends_cleanly(tmp_path):
    outcome, notes = run(tmp_path, FlakySource(at_s=18.0, give_up=True))
    assert outcome.status == "interrupted" and outcome.exit_code == 1
    assert "did not come back" in outcome.message
    data = load_session(outcome.folder)
    assert data.status == "interrupted" and data.warnings == []
    assert any("paused" in n for n in data.meta["notes"])
    assert any("source failed" in n and "did not come back" in n for n in data.meta["notes"])
    last = data.phases[-1]
    assert last.name == "rest 1/3" and last.extra["completed"] is False and last.end_s == pytest.approx(18.0)
    assert all(p.extra["completed"] for p in data.phases[:-1])
    assert repair_session(outcome.folder)[1] == []  # closed properly: nothing to repair


def test_stop_before_the_end(tmp_path):
    stop = threading.Event()
    source = SimulatorSource(scenario_for(PROTOCOL, FS), FS, chunk_s=0.1, speed=0)

    class StopAt(Source):
        info = source.info

        def _chunks(self):
            for chunk in source:
                if chunk.first_sample >= 14 * FS:
                    stop.set()
                yield chunk

    outcome, _ = run(tmp_path, StopAt(), stop_event=stop)
    assert outcome.status == "stopped" and outcome.exit_code == 0
    data = load_session(outcome.folder)
    assert data.status == "stopped" and "stopped by the user" in data.meta["notes"][-1]
    assert data.phases[-1].extra["completed"] is False and data.phases[-1].name == "work 1/3"


def test_source_shorter_than_the_protocol(tmp_path):
    source = SimulatorSource(scenario_for(PROTOCOL, FS), FS, chunk_s=0.1, speed=0)

    class Short(Source):
        info = source.info

        def _chunks(self):
            for chunk in source:
                if chunk.first_sample >= 30 * FS:
                    return
                yield chunk

    outcome, _ = run(tmp_path, Short())
    assert outcome.status == "interrupted"
    data = load_session(outcome.folder)
    assert "before the protocol's end" in data.meta["notes"][-1]
    assert data.phases[-1].end_s == 30.0 and not data.phases[-1].extra["completed"]


def test_disk_full_during_a_session(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = os.write

    def fill_up(fd, data):
        calls["n"] += 1
        if calls["n"] > 8:  # 3 headers, then a few flushes of rows
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(store, "_os_write", fill_up)
    source = SimulatorSource(scenario_for(PROTOCOL, FS), FS, chunk_s=0.1, speed=0)
    outcome, _ = run(tmp_path, source, writer_options={"flush_interval_s": 0.01})
    assert outcome.exit_code == 1 and outcome.status == "interrupted"
    assert "the disk is full" in outcome.message and "repair" in outcome.message
    monkeypatch.undo()
    data = load_session(outcome.folder)
    assert data.recording.n_samples > 0 and data.present.all()
    assert data.status == "interrupted"
    assert any("storage error" in n for n in data.meta["notes"])


def test_cue_provider_interface(tmp_path):
    session = ProtocolSession(PROTOCOL, tmp_path / "s")
    assert session.status(0).name == "waiting" and list(session.cues_for(0, 3)) == ["relax"] * 3
    session.open(SimulatorSource(scenario_for(PROTOCOL, FS), FS).info)
    st = session.status(int(12.5 * FS))
    assert (st.name, st.cue, st.remaining_s) == ("work 1/3", "contract", 2.5)
    assert list(session.cues_for(int(12 * FS) - 1, 2)) == ["relax", "contract"]
    session.close()
    assert load_session(tmp_path / "s").status == "stopped"


def test_live_worker_drives_a_session(tmp_path):
    """The live window's worker with the session as recorder and cue provider (no display needed)."""
    import inspect
    import queue
    import time
    from dataclasses import replace

    from biofeedback.commands.session import ProtocolBoundSource
    from biofeedback.live.worker import LiveBlock, LiveWorker, StreamEnded

    if "cue_provider" not in inspect.signature(LiveWorker.__init__).parameters:
        pytest.skip("this live worker takes no cue provider")
    scenario = scenario_for(PROTOCOL, FS, spasms=2, spasm_snr_db=10.0, seed=2)
    scenario = replace(scenario, duration_s=PROTOCOL.duration_s + 10)  # the protocol's end stops the source
    session = ProtocolSession(PROTOCOL, tmp_path / "s")
    source = ProtocolBoundSource(SimulatorSource(scenario, FS, chunk_s=0.05, speed=0), session, "simulator")
    worker = LiveWorker(source, mode="relax", calibration_s=5.0, recorder=session, cue_provider=session,
                        block_when_full=True, source_name="simulator").start()
    names, ended = set(), None
    deadline = time.monotonic() + 60
    while ended is None and time.monotonic() < deadline:
        try:
            message = worker.output.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(message, LiveBlock) and getattr(message, "phase", None) is not None:
            names.add(message.phase.name)
        if isinstance(message, StreamEnded):
            ended = message
    worker.stop()
    assert ended is not None and not ended.error
    assert {"baseline", "work 1/3", "rest 3/3"} <= names
    data = load_session(tmp_path / "s")
    assert data.status == "complete" and data.warnings == []
    plan = expand(PROTOCOL, FS).phases
    assert [(p.extra["start_sample"], p.extra["end_sample"]) for p in data.phases] == \
        [(p.start, p.stop) for p in plan]
    assert data.recording.n_samples == plan[-1].stop
    spasms = [e for e in data.events if e.kind == "spasm"]
    assert len(spasms) == 2 and all(plan[e.extra["phase"]].spec.cue == "relax" for e in spasms)
    assert sum(e.kind == "contraction" for e in data.events) == 3
