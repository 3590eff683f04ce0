"""Calibration: checks of the rest, %MVC thresholds, saving and reusing a profile."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_recording
from biofeedback.cli import main
from biofeedback.core.types import Recording
from biofeedback.detect import DetectorSettings
from biofeedback.detect.calibration import (
    MIN_REST_S, CalibrationError, calibrate, load_calibration, mvc_from_envelope, profile_path, save_calibration,
)
from biofeedback.detect.classify import ACTIVATION_KINDS
from biofeedback.dsp import PipelineSettings, build_pipeline, process_array
from biofeedback.errors import InputFileError, ParameterError
from biofeedback.io.csv_io import write_recording
from biofeedback.sources.simulator import Scenario, ScriptedEvent, contraction_cycles, simulate

FS = 1000.0


@pytest.fixture(autouse=True)
def profile_home(tmp_path, monkeypatch):
    """Profiles go to a temporary BIOFEEDBACK_HOME, never the user's."""
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def envelope(rec, settings=None):
    settings = settings or PipelineSettings(mains="off")
    env, _, _ = process_array(build_pipeline(settings, rec.info, detect=False), rec.data, rec.info)
    return env


def activations(result, channel):
    return [e for e in result.events if e.kind in ACTIVATION_KINDS and e.channel == channel]


def test_a_quiet_rest_gives_the_resting_level():
    rec = simulate(contraction_cycles(2, lead_rest_s=15.0), FS, seed=1)
    env = envelope(rec)
    rest = env[:, int(1 * FS):int(14 * FS)]
    cal = calibrate(rest, FS, rec.info.ch_names, "uV", PipelineSettings(mains="off"))
    assert cal.issues == [] and cal.usable.all()
    assert cal.rest_s == pytest.approx(13.0)
    assert cal.level[0] == pytest.approx(np.median(rest), rel=1e-9)
    assert 0 < cal.noise_floor[0] < cal.level[0]
    assert cal.baseline().mvc is None


def test_a_short_rest_is_refused_saying_how_long_is_needed():
    rest = np.ones((1, int(4 * FS)))
    with pytest.raises(CalibrationError) as err:
        calibrate(rest, FS, ["ch1"], "uV")
    message = str(err.value)
    assert "4.0 s" in message and f"at least {MIN_REST_S:g} s" in message and "recalibrate" in message


def test_a_rest_with_a_contraction_is_not_quiet():
    events = (ScriptedEvent("spasm", 6.0, 1.5, channels=(0,)),)
    rec = simulate(Scenario(duration_s=14.0, events=events, n_channels=2), FS, seed=2)
    env = envelope(rec)[:, int(1 * FS):]
    cal = calibrate(env, FS, rec.info.ch_names, "uV")
    (issue,) = cal.issues
    assert issue.channel == "ch1" and issue.kind == "not_quiet" and issue.stops_detection
    assert "relax and recalibrate" in issue.message and "5.0-" in issue.message  # 6 s into the recording
    assert cal.usable.tolist() == [False, True]


def test_a_flat_channel_is_reported():
    rng = np.random.default_rng(0)
    env = np.vstack([3.0 + 0.3 * rng.standard_normal(int(12 * FS)), np.zeros(int(12 * FS))])
    cal = calibrate(env, FS, ["ch1", "ch2"], "uV")
    (issue,) = cal.issues
    assert issue.channel == "ch2" and issue.kind == "flat" and "re-place the electrode" in issue.message


def test_analysis_with_a_restless_rest_stops_on_that_channel_only():
    events = (ScriptedEvent("spasm", 4.0, 1.0, channels=(0,)),
              ScriptedEvent("contraction", 15.0, 3.0, channels=None))
    rec = simulate(Scenario(duration_s=22.0, events=events, n_channels=2), FS, seed=3)
    result = analyze_recording(rec, rest=(0.0, 12.0))
    assert list(result.messages) == ["ch1"] and "relax and recalibrate" in result.messages["ch1"]
    assert activations(result, "ch1") == []
    assert [round(e.onset_s) for e in activations(result, "ch2")] == [15]


def mvc_recording():
    """Rest, an MVC (100 uV), a strong (60 uV) and a weak (12 uV) contraction."""
    events = (ScriptedEvent("contraction", 12.0, 3.0, amplitude=100.0),
              ScriptedEvent("contraction", 20.0, 3.0, amplitude=60.0),
              ScriptedEvent("contraction", 28.0, 3.0, amplitude=12.0))
    return simulate(Scenario(duration_s=35.0, events=events), FS, seed=4)


def test_mvc_thresholds_raise_the_bar_above_the_rest_rule():
    rec = mvc_recording()
    plain = analyze_recording(rec, rest=(0.0, 11.0))
    assert [round(e.onset_s) for e in activations(plain, "ch1")] == [12, 20, 28]
    settings = PipelineSettings(detector=DetectorSettings(mvc_on_pct=30.0))
    result = analyze_recording(rec, settings, rest=(0.0, 11.0), mvc=(12.0, 15.0))
    mvc = result.baseline.mvc[0]
    assert mvc == pytest.approx(100.0, rel=0.25)  # envelope of a 100 uV RMS burst
    on, off = result.thresholds
    assert on[0] == pytest.approx(0.3 * mvc) and off[0] == pytest.approx(0.3 * 0.75 * mvc)
    # The weak contraction (about 12 % MVC) is below 30 % MVC; the others are not.
    assert [round(e.onset_s) for e in activations(result, "ch1")] == [12, 20]


def test_a_weak_mvc_is_not_used():
    rec = mvc_recording()
    env = envelope(rec)
    cal = calibrate(env[:, 1000:11000], FS, ["ch1"], "uV", mvc_envelope=env[:, 1000:11000])
    assert np.isnan(cal.mvc[0])
    assert [i.kind for i in cal.issues] == ["weak_mvc"] and not cal.issues[0].stops_detection
    assert mvc_from_envelope(np.array([[0.0, 1.0, 3.0, 1.0]]), 2.0, window_s=1.0)[0] == 2.0


def test_a_calibration_is_saved_and_reused(profile_home):
    rec = simulate(contraction_cycles(2, lead_rest_s=12.0), FS, seed=5)
    settings = PipelineSettings(preset="pelvic", mains="off")
    made = analyze_recording(rec, settings, rest=(0.5, 11.5)).calibration
    path = save_calibration(made, "anna")
    assert path == profile_path("anna") and path.parent == profile_home / "profiles"
    data = json.loads(path.read_text())
    # The keys the live view's profiles use are all there.
    assert set(data) >= {"format", "name", "channels", "units", "level", "sigma", "mvc", "processing", "fs",
                         "created", "method", "rest_s", "noise_floor", "settings_hash"}
    loaded = load_calibration("anna")
    np.testing.assert_allclose(loaded.level, made.level)
    np.testing.assert_allclose(loaded.sigma, made.sigma)
    assert loaded.mismatch(rec.info.ch_names, "uV", settings) == ""
    assert "other filter" in loaded.mismatch(rec.info.ch_names, "uV", PipelineSettings())
    assert "heartbeat" in loaded.mismatch(rec.info.ch_names, "uV", settings.replace(ecg="off"))
    assert "channels" in loaded.mismatch(["a"], "uV", settings)
    # Reused, it gives the same detections as the rest it came from.
    again = analyze_recording(rec, settings, calibration=loaded)
    first = analyze_recording(rec, settings, rest=(0.5, 11.5))
    key = lambda r: [(e.kind, e.onset_s, e.offset_s) for e in activations(r, "ch1")]  # noqa: E731
    assert key(again) == key(first) and len(key(first)) == 2
    with pytest.raises(ParameterError, match="calibration profile"):
        analyze_recording(rec, PipelineSettings(), calibration=loaded)
    assert load_calibration("nobody") is None
    profile_path("broken").write_text("{not json")
    with pytest.raises(InputFileError, match="broken"):
        load_calibration("broken")
    with pytest.raises(ParameterError, match="--profile"):
        profile_path("../escape")


def run_cli(*args, capsys):
    status = main([str(a) for a in args])
    return status, capsys.readouterr()


def test_cli_rest_checks_and_profiles(tmp_path, capsys):
    rec = simulate(contraction_cycles(3, lead_rest_s=12.0), FS, seed=6)
    path = tmp_path / "session.csv"
    write_recording(path, Recording(rec.data, rec.info))
    # Too short: one line, status 2, how long is needed.
    status, out = run_cli("analyze", path, "--rest", "1:6", "--out", tmp_path / "a", capsys=capsys)
    assert status == 2
    (line,) = out.err.strip().splitlines()
    assert line.startswith("biofeedback analyze: error:") and "at least 10 s" in line
    # A good rest, saved as a profile.
    status, out = run_cli("analyze", path, "--rest", "0.5:11.5", "--profile", "me", "--out", tmp_path / "b",
                          capsys=capsys)
    assert status == 0 and "saved the calibration" in out.out
    # Reused: the summary says where the baseline came from.
    status, out = run_cli("analyze", path, "--profile", "me", "--out", tmp_path / "c", capsys=capsys)
    assert status == 0
    with open(tmp_path / "c" / "summary.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["baseline_method"] == "rest period 0.5-11.5 s" and row["n_contraction"] == "3"
    # An unknown profile.
    status, out = run_cli("analyze", path, "--profile", "nobody", "--out", tmp_path / "d", capsys=capsys)
    assert status == 2 and "--rest" in out.err
