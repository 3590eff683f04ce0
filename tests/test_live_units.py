"""Qt-free building blocks of the live display: ring, decimation, frame stats, quality, sound."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.live.decimate import DisplayDecimator
from biofeedback.live.quality import CLIPPED, FLAT, MISSING, OK, ElectrodeCheck
from biofeedback.live.ring import MirrorRing
from biofeedback.live.sound import SoundFeedback, ToneSynth, open_sound
from biofeedback.live.stats import FrameStats
from biofeedback.live.worker import Thresholds, fill_missing


# -- MirrorRing ------------------------------------------------------------------
def test_ring_view_is_the_last_samples_in_order_and_a_view():
    ring = MirrorRing(2, 5)
    stream = np.arange(23, dtype=float)
    for start in range(0, 23, 3):
        part = stream[start:start + 3]
        ring.write(np.vstack([part, -part]))
        kept = stream[max(0, start + len(part) - 5):start + len(part)]
        assert ring.view()[0].tolist() == kept.tolist()
        assert ring.view()[1].tolist() == (-kept).tolist()
        assert ring.view().base is not None  # no copy
    assert ring.last().tolist() == [22.0, -22.0]


def test_ring_drop_last_replaces_a_provisional_value():
    ring = MirrorRing(1, 4)
    ring.write(np.array([[1.0, 2.0, 3.0]]))
    ring.drop_last(1)
    ring.write(np.array([[30.0, 4.0, 5.0]]))
    assert ring.view()[0].tolist() == [2.0, 30.0, 4.0, 5.0]


def test_ring_block_longer_than_capacity_and_clear():
    ring = MirrorRing(1, 4)
    ring.write(np.arange(10.0)[None, :])
    assert ring.view()[0].tolist() == [6, 7, 8, 9]
    ring.clear()
    assert ring.count == 0 and ring.view().shape == (1, 0)
    assert np.isnan(ring.last()).all()


# -- DisplayDecimator --------------------------------------------------------------
def finished_bins(parts):
    """Join the finished bins of successive Traces (a partial bin is dropped when it comes again)."""
    starts, fmin, fmax, env = [], [], [], []
    for t in parts:
        n = t.n_bins - (1 if t.partial else 0)
        starts.append(t.start[:n]); fmin.append(t.fmin[:, :n]); fmax.append(t.fmax[:, :n]); env.append(t.env[:, :n])
    return (np.concatenate(starts), np.concatenate(fmin, axis=1), np.concatenate(fmax, axis=1),
            np.concatenate(env, axis=1))


@pytest.mark.parametrize("chunk", [1, 7, 10, 64])
def test_decimation_does_not_depend_on_chunking(chunk):
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 400))
    e = np.abs(rng.normal(size=(2, 400)))
    whole = DisplayDecimator(2, 10).process(0, f, e)
    assert not whole.partial and whole.n_bins == 40
    dec = DisplayDecimator(2, 10)
    parts = [dec.process(s, f[:, s:s + chunk], e[:, s:s + chunk]) for s in range(0, 400, chunk)]
    for joined, expected in zip(finished_bins(parts), (whole.start, whole.fmin, whole.fmax, whole.env)):
        np.testing.assert_allclose(joined, expected)
    assert whole.start.tolist() == list(range(0, 400, 10))
    np.testing.assert_allclose(whole.fmin[:, 3], f[:, 30:40].min(axis=1))
    np.testing.assert_allclose(whole.fmax[:, 3], f[:, 30:40].max(axis=1))
    np.testing.assert_allclose(whole.env[:, 1], e[:, 10:20].mean(axis=1))


def test_the_bin_still_filling_is_shown_at_once():
    dec = DisplayDecimator(1, 10)
    first = dec.process(0, np.arange(15.0)[None], np.ones((1, 15)))
    assert first.partial and first.start.tolist() == [0, 10] and first.fmax[0].tolist() == [9.0, 14.0]
    second = dec.process(15, np.arange(15.0, 20.0)[None], np.ones((1, 5)))
    assert not second.partial and second.start.tolist() == [10] and second.fmax[0].tolist() == [19.0]


def test_after_a_jump_bins_realign_on_the_grid():
    dec = DisplayDecimator(1, 10)
    dec.process(0, np.zeros((1, 20)), np.zeros((1, 20)))
    after = dec.process(37, np.ones((1, 20)), np.ones((1, 20)))  # 17 samples lost
    assert after.start.tolist() == [37, 40, 50] and after.partial


def test_decimation_keeps_a_one_sample_spike():
    f = np.zeros((1, 100))
    f[0, 57] = 9.0
    traces = DisplayDecimator(1, 10).process(0, f, np.zeros((1, 100)))
    assert traces.fmax[0, 5] == 9.0


# -- FrameStats --------------------------------------------------------------------
def test_frame_stats_counts_late_ticks_as_dropped_frames():
    stats = FrameStats(60.0)
    t = 0.0
    for step in [1, 1, 1, 3, 1, 2, 1]:  # in periods
        t += step / 60.0
        stats.tick(t)
        stats.painted(t)
    assert stats.dropped == 2 + 1
    stats.latency(0.010)
    stats.latency(0.030)
    median, p95 = stats.latency_ms()
    assert median == pytest.approx(20.0) and p95 > median
    assert stats.fps() == pytest.approx(6 / (9 / 60.0))  # 7 paints over 9 periods


# -- ElectrodeCheck ----------------------------------------------------------------
def test_electrode_check_flat_clipped_missing_ok():
    fs = 1000
    rng = np.random.default_rng(0)
    check = ElectrodeCheck(4, fs, "uV")
    noise = rng.normal(scale=3.0, size=(4, 600))
    noise[1] = 0.01 * rng.normal(size=600)                  # electrode off: flat
    noise[2] = np.clip(rng.normal(scale=50, size=600), -40, 40)  # at the rails
    noise[3, 100:] = np.nan                                  # samples missing
    assert check.update(noise) == [OK, FLAT, CLIPPED, MISSING]
    assert check.ok.tolist() == [True, False, False, False]
    check.update(rng.normal(scale=3.0, size=(4, 600)))
    assert check.status == [OK] * 4  # back once the signal is back


def test_electrode_check_does_not_judge_a_window_that_is_filling():
    check = ElectrodeCheck(1, 1000, "uV")
    assert check.update(np.zeros((1, 10))) == [OK]


def test_fill_missing_holds_the_last_valid_sample():
    last = np.array([5.0, 1.0])
    data = np.array([[np.nan, 2.0, np.nan, np.nan], [3.0, np.nan, 4.0, np.nan]])
    out = fill_missing(data, last)
    assert out.tolist() == [[5.0, 2.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]
    assert last.tolist() == [2.0, 4.0]


# -- sound -------------------------------------------------------------------------
def _thresholds():
    return Thresholds(np.array([3.0]), np.array([0.5]), np.array([7.0]), np.array([4.5]))


def test_tone_is_silent_at_rest_and_rises_with_the_level():
    feedback = SoundFeedback("tone")
    feedback.update(np.array([3.0]), _thresholds(), ["RELAXED"])
    assert np.abs(feedback.render(4000)).max() < 1e-3
    feedback.update(np.array([15.0]), _thresholds(), ["CONTRACTING"])
    loud = feedback.render(4000)
    assert np.abs(loud[-500:]).max() > 0.1
    low_pitch = feedback.synth.target_freq
    feedback.update(np.array([17.0]), _thresholds(), ["CONTRACTING"])
    assert feedback.synth.target_freq > low_pitch


def test_tone_is_phase_continuous_across_blocks():
    synth = ToneSynth(rate=8000, glide_s=0.001)
    synth.set_level(10.0, 20.0, 1.5)
    a = synth.render(100)
    b = synth.render(100)
    joined = np.concatenate([a, b])
    # No click: the step at the joint is like any other step.
    steps = np.abs(np.diff(joined[50:]))
    assert steps[49] <= steps.max() + 1e-6


def test_chime_on_a_spasm_only():
    feedback = SoundFeedback("chime")
    feedback.update(np.array([15.0]), _thresholds(), ["CONTRACTING"])
    assert np.abs(feedback.render(2000)).max() == 0.0
    feedback.update(np.array([15.0]), _thresholds(), ["SPASM"])
    assert np.abs(feedback.render(2000)).max() > 0.1


def test_open_sound_off_is_none_and_missing_backend_is_said_once(monkeypatch):
    import builtins

    assert open_sound("off") is None
    real_import = builtins.__import__

    def no_sounddevice(name, *args, **kwargs):
        if name == "sounddevice":
            raise ImportError("No module named 'sounddevice'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sounddevice)
    said = []
    assert open_sound("tone", say=said.append) is None
    assert len(said) == 1 and "no audio backend" in said[0]
