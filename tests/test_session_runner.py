"""The protocol runner: sample-exact schedule, cue track, status, pauses; the simulator built from a protocol."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.session.protocol import load_protocol, parse_protocol
from biofeedback.session.runner import ProtocolRunner, expand, scenario_for

SMALL = """\
[[phase]]
role = "baseline"
duration_s = 1.0004
target = "below_rest"
[[phase]]
role = "work"
duration_s = 0.5003
target = { pct_mvc = [20, 40] }
[[phase]]
role = "rest"
duration_s = 0.7
"""


def small():
    return parse_protocol(SMALL, "small.toml", "small")


def test_schedule_boundaries_are_rounded_cumulative_seconds():
    for fs in (200.0, 250.0, 1000.0, 1234.5):
        sched = expand(load_protocol("glazer"), fs)
        elapsed = 0.0
        start = 0
        for ph in sched.phases:
            elapsed += ph.spec.duration_s
            assert ph.start == start and ph.stop == round(elapsed * fs)
            start = ph.stop
        assert sched.n_samples == round(340 * fs)
    sched = expand(small(), 1000.0)
    assert [(p.start, p.stop) for p in sched.phases] == [(0, 1000), (1000, 1501), (1501, 2201)]


def test_cues_do_not_depend_on_chunking():
    runner = ProtocolRunner(load_protocol("kegel"), 500.0)
    n = runner.schedule.n_samples + 300
    whole = runner.cues_for(0, n)
    rng = np.random.default_rng(1)
    parts, pos = [], 0
    while pos < n:
        k = int(rng.integers(1, 700))
        parts.append(runner.cues_for(pos, min(k, n - pos)))
        pos += k
    assert np.array_equal(np.concatenate(parts), whole)
    for ph in runner.schedule.phases:
        assert set(whole[ph.start:ph.stop]) == {ph.spec.cue}
    assert set(whole[runner.schedule.n_samples:]) == {"relax"}


def test_status_countdown_progress_and_target_band():
    runner = ProtocolRunner(small(), 1000.0)
    st = runner.status(250)
    assert (st.name, st.cue, st.index, st.n_phases, st.done) == ("baseline", "relax", 0, 3, False)
    assert st.remaining_s == pytest.approx(0.75) and st.progress == pytest.approx(0.25)
    assert st.target_low is None and st.target_high is None  # no rest level yet
    runner.set_reference(rest_level=2.0)
    st = runner.status(250)
    assert (st.target_low, st.target_high) == (0.0, 3.0) and st.target_text == "below 1.5x rest"
    st = runner.status(1000)
    assert st.cue == "contract" and st.target_high is None and st.next_name == "rest"
    runner.set_reference(mvc=50.0)
    st = runner.status(1000)
    assert (st.target_low, st.target_high) == (10.0, 20.0)
    assert runner.status(2201).done and runner.done(2201) and not runner.done(2200)


def test_pause_shifts_later_phases_and_is_recorded():
    runner = ProtocolRunner(small(), 1000.0)
    assert runner.pop_finished(900) == []
    assert runner.pause(1200, "source disconnected")
    assert runner.paused and runner.status(1300).paused and runner.status(1300).name == "paused"
    assert set(runner.cues_for(1200, 500)) == {"relax"}
    assert not runner.done(10_000)
    finished = runner.pop_finished(1300)
    assert [p.index for p in finished] == [0]
    assert runner.resume(1700) == pytest.approx(0.5)
    cues = runner.cues_for(1000, 2000)
    # 200 samples of work before the pause, 301 after it.
    assert (cues[:200] == "contract").all() and (cues[200:700] == "relax").all()
    assert (cues[700:1001] == "contract").all() and (cues[1001:1701] == "relax").all()
    assert runner.end_index() == 2201 + 500
    phases = finished + runner.pop_finished(10_000)
    work = phases[1]
    assert (work.start_s, work.end_s) == (1.0, 2.001) and work.extra["paused_s"] == 0.5
    assert (phases[2].extra["start_sample"], phases[2].extra["end_sample"]) == (2001, 2701)
    assert runner.pauses == [{"start_sample": 1200, "stop_sample": 1700, "at_sample": 1200,
                              "reason": "source disconnected"}]


def test_pause_at_a_boundary_delays_the_next_phase_only():
    runner = ProtocolRunner(small(), 1000.0)
    runner.pause(1000)
    runner.resume(1100)
    phases = runner.pop_finished(10_000)
    assert [(p.extra["start_sample"], p.extra["end_sample"]) for p in phases] == \
        [(0, 1000), (1100, 1601), (1601, 2301)]
    assert [p.extra["paused_s"] for p in phases] == [0.0, 0.0, 0.0]


def test_cut_phase_when_the_session_ends_early():
    runner = ProtocolRunner(small(), 1000.0)
    assert [p.index for p in runner.pop_finished(1200)] == [0]
    cut = runner.cut_phase(1200)
    assert cut.index == 1 and cut.end_s == 1.2 and cut.extra["completed"] is False
    assert runner.cut_phase(1200) is None


def test_scenario_follows_the_protocol():
    protocol = load_protocol("kegel")
    fs = 500.0
    sc = scenario_for(protocol, fs, mvc_uv=120.0, spasms=5, spasm_snr_db=8.0, seed=4)
    sched = expand(protocol, fs)
    contract = [p for p in sched.phases if p.spec.cue == "contract"]
    cons = [e for e in sc.events if e.kind == "contraction"]
    assert len(cons) == len(contract)
    for e, p in zip(cons, contract):
        assert e.cued and e.onset_s == p.start / fs and e.offset_s == pytest.approx(p.stop / fs)
        if p.spec.role == "work":
            assert e.amplitude == pytest.approx(0.4 * 120.0)  # middle of 30-50 %MVC
    spasms = [e for e in sc.events if e.kind == "spasm"]
    assert len(spasms) == 5
    rest = np.hypot(sc.rest_rms_uv, sc.noise_rms_uv)
    for s in spasms:
        assert s.amplitude == pytest.approx(rest * 10 ** 0.4)
        assert s.onset_s >= 10.0
        for p in contract:  # at least the margin from every contraction
            assert s.offset_s <= p.start / fs - 2.0 + 1e-9 or s.onset_s >= p.stop / fs + 2.0 - 1e-9
    assert sc.duration_s == sched.n_samples / fs
    # Same seed, same placement.
    again = scenario_for(protocol, fs, mvc_uv=120.0, spasms=5, spasm_snr_db=8.0, seed=4)
    assert [e.onset_s for e in again.events] == [e.onset_s for e in sc.events]
    with pytest.raises(Exception, match="spasms"):
        scenario_for(small(), fs, spasms=3, calibration_s=0.0)
    lenient = scenario_for(small(), fs, spasms=3, calibration_s=0.0, strict=False)
    assert sum(e.kind == "spasm" for e in lenient.events) < 3
