"""Feedback states, calibration, profiles and the feedback model (no Qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biofeedback.core.types import Event, StreamInfo
from biofeedback.dsp.settings import PipelineSettings
from biofeedback.errors import InputFileError, ParameterError
from biofeedback.live.calibration import DONE, FAILED, MVC, PREPARE, REST, GuidedCalibration
from biofeedback.live.model import FeedbackModel
from biofeedback.live.profile import Profile, load_profile, processing_key, profile_path, save_profile
from biofeedback.live.state import (CALIBRATING, CHECK_ELECTRODE, CONTRACTING, RELAXED, SPASM, CueHistory,
                                    StateLogic)
from biofeedback.live.terminal import level_bar
from biofeedback.live.worker import LiveBlock, StreamEnded, StreamStarted, Thresholds

FS = 100.0


def run_states(logic, timeline, chunk=10):
    """Feed (cue, active) per sample; return the state after each chunk."""
    states = []
    for start in range(0, len(timeline), chunk):
        part = timeline[start:start + chunk]
        logic.cues.update(np.array([c for c, _ in part]), start)
        states.append(logic.update([part[-1][1]], start + len(part))[0])
    return states


def test_cued_burst_is_contracting_and_uncued_burst_is_spasm():
    timeline = ([("rest", False)] * 100 + [("contract", False)] * 30 + [("contract", True)] * 200
                + [("rest", True)] * 40 + [("rest", False)] * 100 + [("rest", True)] * 60 + [("rest", False)] * 50)
    states = run_states(StateLogic(1, FS), timeline)
    compact = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    # Held a moment past the end of its cue, the contraction stays CONTRACTING.
    assert compact == [RELAXED, CONTRACTING, RELAXED, SPASM, RELAXED]


def test_burst_just_before_its_cue_counts_as_the_contraction():
    timeline = [("rest", False)] * 100 + [("rest", True)] * 20 + [("contract", True)] * 100 + [("rest", False)] * 60
    states = run_states(StateLogic(1, FS, anticipation_s=0.5), timeline)
    assert states[-8] == CONTRACTING  # during the cue
    assert SPASM not in states[13:]   # re-decided once the cue started


def test_without_cues_the_mode_decides():
    timeline = [(None, False)] * 50 + [(None, True)] * 50
    relax = StateLogic(1, FS, mode="relax")
    train = StateLogic(1, FS, mode="train")
    assert relax.update([True], 60)[0] == SPASM
    assert train.update([True], 60)[0] == CONTRACTING
    with pytest.raises(ParameterError):
        StateLogic(1, FS, mode="sleep")
    assert len(timeline) == 100


def test_electrode_problem_and_calibration_override_activity():
    logic = StateLogic(2, FS, mode="train")
    assert logic.update([True, True], 10, electrode_ok=[False, True]) == [CHECK_ELECTRODE, CONTRACTING]
    assert logic.update([False, False], 20, calibrating=True) == [CALIBRATING, CALIBRATING]


def test_label_event_renames_uncued_detections():
    logic = StateLogic(1, FS)
    logic.cues.update(np.array(["rest"] * 100 + ["contract"] * 100 + ["rest"] * 100), 0)
    cued = logic.label_event(Event("contraction", "ch1", 1.2, 1.9), FS)
    uncued = logic.label_event(Event("contraction", "ch1", 2.5, 2.8), FS)
    gap = logic.label_event(Event("gap", "ch1", 2.5, 2.8), FS)
    assert (cued.kind, uncued.kind, gap.kind) == ("contraction", "spasm", "gap")


def test_cue_history_after_a_seek_backwards():
    history = CueHistory()
    history.update(np.array(["rest"] * 10 + ["contract"] * 10), 0)
    history.update(np.array(["rest"] * 5), 2)  # replay jumped back to sample 2
    assert not history.contract_at(12)


# -- guided calibration ------------------------------------------------------------
def test_guided_calibration_rest_then_mvc():
    rng = np.random.default_rng(0)
    cal = GuidedCalibration(FS, 2, rest_s=4.0, mvc_s=1.0, prepare_s=1.0, settle_s=1.0)
    assert cal.phase == REST and cal.prompt == "relax, 4 s"
    rest = 3.0 + 0.2 * rng.normal(size=(2, 400))
    rest[:, :100] = 50.0  # the settling second is not used
    for start in range(0, 400, 7):
        cal.update(rest[:, start:start + 7])
    assert cal.phase == PREPARE
    cal.update(np.full((2, 100), 3.0))
    assert cal.phase == MVC
    cal.update(np.full((2, 100), 80.0))
    assert cal.phase == DONE and cal.finished
    np.testing.assert_allclose(cal.result.baseline.level, [3.0, 3.0], atol=0.1)
    np.testing.assert_allclose(cal.result.mvc, [80.0, 80.0])


def test_guided_calibration_fails_in_words_without_signal():
    cal = GuidedCalibration(FS, 2, rest_s=3.0, settle_s=1.0)
    data = np.full((2, 300), 3.0)
    data[1] = np.nan
    cal.update(data)
    assert cal.phase == FAILED and "channel(s) 2" in cal.error
    with pytest.raises(ParameterError):
        GuidedCalibration(FS, 1, rest_s=1.0, settle_s=2.0)


# -- profiles ----------------------------------------------------------------------
def test_profile_round_trip_and_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    settings = PipelineSettings()
    key = processing_key(settings)
    profile = Profile("anna", ["ch1", "ch2"], "uV", [3.0, 4.0], [0.5, 0.6], key, mvc=[80.0, float("nan")], fs=1000)
    path = save_profile(profile)
    assert path == tmp_path / "profiles" / "anna.json"
    loaded = load_profile("anna")
    assert loaded.channels == ["ch1", "ch2"] and loaded.level == [3.0, 4.0]
    assert np.isnan(loaded.mvc_array()[1])
    assert loaded.baseline().level.tolist() == [3.0, 4.0]
    assert loaded.mismatch(("ch1", "ch2"), "uV", key) == ""
    assert "channels" in loaded.mismatch(("ch1",), "uV", key)
    assert "settings" in loaded.mismatch(("ch1", "ch2"), "uV", processing_key(settings.replace(preset="pelvic")))
    assert load_profile("nobody") is None
    (tmp_path / "profiles" / "broken.json").write_text("{not json")
    with pytest.raises(InputFileError, match="broken.json"):
        load_profile("broken")
    with pytest.raises(ParameterError):
        profile_path("../escape")
    assert json.loads(path.read_text())["mvc"][1] is None  # NaN is not valid JSON


# -- model and terminal bar ----------------------------------------------------------
def _block(states, levels, **kw):
    n = len(states)
    return LiveBlock(0, 0.0, np.zeros((n, 1)), np.ones((n, 1)), tuple(states), np.array(levels), ("ok",) * n, **kw)


def test_model_texts_and_gauge():
    info = StreamInfo.default_names(2, 1000.0, units="uV")
    model = FeedbackModel(["all"])
    model.apply(StreamStarted(info, "simulator", True, "relax", False, 60.0, 0.05))
    assert model.feedback_index == [0, 1]
    th = Thresholds(np.array([3.0, 3.0]), np.array([0.5, 0.5]), np.array([8.0, 8.0]), np.array([5.0, 5.0]))
    model.apply(_block([RELAXED, SPASM], [3.3, 12.0], thresholds=th, position_s=12.0))
    assert model.level_text(0) == "3.3 µV" and model.percent_text(0) == "110 % of rest"
    fraction, low, high, marks = model.gauge(0)
    assert fraction == pytest.approx(3.3 / 20) and (low, high) == (0.0, pytest.approx(0.25))
    assert model.subtitle(1) == "breathe out, let go"
    assert "lost 0 samples" in model.status_text() and "00:12 / 01:00" in model.status_text()
    model.apply(_block([RELAXED, RELAXED], [3.0, 3.0], thresholds=Thresholds(th.level, th.sigma, th.on, th.off,
                                                                                np.array([60.0, np.nan]))))
    assert model.percent_text(0) == "5 %MVC" and model.percent_text(1) == "100 % of rest"
    model.apply(StreamEnded("simulator ended after 60.0 s"))
    assert "ended" in model.status_text()


def test_level_bar():
    assert level_bar(0.5, 0.0, 0.25, (0.25,), width=8) == "[##|#....]"
    assert level_bar(0.0, 0.0, 0.5, (), width=4) == "[::..]"
