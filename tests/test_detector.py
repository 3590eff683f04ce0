"""Contraction detector: synthetic scenarios with known burst times, and the
state machine (min_active_s, gap merging, hysteresis, back-tracking, flush)
on hand-made envelopes where every onset and offset is known to the sample.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.detect import (
    Baseline, DetectorSettings, QuietWindowBaseline, ThresholdDetector, baseline_from_rest, robust_level_and_sigma,
)
from biofeedback.dsp import BandPass, MainsNotch, PipelineSettings, build_pipeline, process_array
from biofeedback.errors import ParameterError


def test_detect_package_imports_on_its_own():
    """``import biofeedback.detect`` in a fresh interpreter must work (CLI
    subcommands and user scripts import it first)."""
    proc = subprocess.run([sys.executable, "-c", "import biofeedback.detect"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1]


# -- synthetic sEMG with known bursts ------------------------------------------------------
REST_RMS = 10.0
SCENARIO_S = 30.0
SCENARIO = [(5.0, 7.0), (10.0, 10.6), (13.0, 16.0), (19.0, 20.0), (23.5, 24.3), (27.0, 28.5)]


def emg(fs, duration_s, bursts, snr_db=10.0, seed=0, ramp_s=0.02, hum=20.0, dc=1500.0):
    """Gaussian rest noise plus amplitude-modulated Gaussian bursts.

    SNR = 20 log10(burst RMS / rest RMS), the burst RMS being that of the
    whole signal on a burst's plateau (rest noise included). Bursts rise and
    fall with ``ramp_s`` raised-cosine ramps inside their (onset, offset).
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    x = rng.standard_normal(n) * REST_RMS
    amp = np.zeros(n)
    r = max(1, int(round(ramp_s * fs)))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, r + 1) / (r + 1))
    for on, off in bursts:
        i, j = int(round(on * fs)), int(round(off * fs))
        amp[i:j] = 1.0
        amp[i:i + r] *= ramp
        amp[j - r:j] *= ramp[::-1]
    gain = REST_RMS * np.sqrt(10 ** (snr_db / 10) - 1)
    x += amp * gain * rng.standard_normal(n)
    t = np.arange(n) / fs
    return (x + hum * np.sin(2 * np.pi * 50.0 * t) + dc)[None, :]


def envelope_of(x, fs):
    info = StreamInfo.default_names(1, fs)
    env, _, _ = process_array(build_pipeline(PipelineSettings(), info, mains_hz=50, detect=False), x, info)
    return env


def detect(x, fs, baseline, calibration_s=5.0):
    info = StreamInfo.default_names(1, fs)
    pipeline = build_pipeline(PipelineSettings(), info, mains_hz=50, baseline=baseline, calibration_s=calibration_s)
    _, _, events = process_array(pipeline, x, info, chunk_size=max(1, int(0.02 * fs)))
    return sorted(events, key=lambda e: e.onset_s)


def check_events(events, bursts, onset_tol=0.1, offset_window=(-0.1, 0.25)):
    """Every burst found once, onset within ``onset_tol``, offset within the
    window (the 100 ms moving RMS lags by up to a window at the offset), and
    no event outside the bursts. Returns a readable list of errors."""
    problems = []
    got = [(e.onset_s, e.offset_s) for e in events]
    if len(got) != len(bursts):
        return [f"{len(got)} events for {len(bursts)} bursts: {[(round(a, 3), round(b, 3)) for a, b in got]}"]
    for (on, off), (t_on, t_off) in zip(got, bursts):
        if abs(on - t_on) > onset_tol:
            problems.append(f"burst {t_on:g}-{t_off:g} s: onset off by {on - t_on:+.3f} s")
        if not offset_window[0] <= off - t_off <= offset_window[1]:
            problems.append(f"burst {t_on:g}-{t_off:g} s: offset off by {off - t_off:+.3f} s")
    return problems


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0, 2000.0])
def test_bursts_at_10_db_are_all_found_batch(fs, seed):
    """Batch use: baseline from the quietest windows of the recording."""
    x = emg(fs, SCENARIO_S, SCENARIO, seed=seed)
    quiet = QuietWindowBaseline(fs)
    quiet.update(envelope_of(x, fs), 0)
    problems = check_events(detect(x, fs, quiet.result()), SCENARIO)
    assert not problems, problems


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0, 2000.0])
def test_bursts_at_10_db_are_all_found_live_calibration(fs):
    """Live use: no baseline given, the first seconds (rest) calibrate."""
    x = emg(fs, SCENARIO_S, SCENARIO, seed=5)
    problems = check_events(detect(x, fs, None, calibration_s=4.0), SCENARIO)
    assert not problems, problems


@pytest.mark.parametrize("fs", [250.0, 1000.0])
def test_no_events_in_rest(fs):
    x = emg(fs, 30.0, [], seed=3)
    quiet = QuietWindowBaseline(fs)
    quiet.update(envelope_of(x, fs), 0)
    assert detect(x, fs, quiet.result()) == []
    assert detect(x, fs, None) == []


@pytest.mark.parametrize("fs", [250.0, 1000.0, 2000.0])
def test_quiet_window_baseline_is_close_to_the_true_rest_level(fs):
    x = emg(fs, SCENARIO_S, SCENARIO, seed=4)
    env = envelope_of(x, fs)
    # The true rest level: the envelope's median away from every burst.
    rest = np.ones(env.shape[1], dtype=bool)
    rest[: int(fs)] = False
    for on, off in SCENARIO:
        rest[int((on - 0.2) * fs):int((off + 0.3) * fs)] = False
    true_level, true_sigma = robust_level_and_sigma(env[0, rest])
    # Same rest RMS from theory: white noise through the filters' noise gain.
    assert true_level == pytest.approx(REST_RMS * np.sqrt(_noise_gain(fs)), rel=0.1)
    baselines = []
    for sizes in (env.shape[1], 37, int(0.02 * fs)):
        quiet = QuietWindowBaseline(fs)
        for start in range(0, env.shape[1], sizes):
            quiet.update(env[:, start:start + sizes], start)
        baselines.append(quiet.result())
    b = baselines[0]
    assert b.level[0] == pytest.approx(true_level, rel=0.1)
    assert 0 < b.sigma[0] < 2 * true_sigma
    for other in baselines[1:]:  # independent of chunking
        np.testing.assert_allclose(other.level, b.level, rtol=1e-12)
        np.testing.assert_allclose(other.sigma, b.sigma, rtol=1e-12)


def _noise_gain(fs):
    """Sum of the squared impulse response of band-pass then 50 Hz notch."""
    from scipy import signal

    sos = np.vstack([BandPass().design(fs), MainsNotch(50.0).design(fs)])
    impulse = np.zeros(int(5 * fs))
    impulse[0] = 1.0
    return float(np.sum(signal.sosfilt(sos, impulse) ** 2))


def test_quiet_window_baseline_finds_rest_in_a_busy_recording():
    fs = 1000.0
    busy = [(s, s + 1.4) for s in np.arange(2.0, 28.0, 2.0)]  # active 70 % of the time
    env = envelope_of(emg(fs, SCENARIO_S, busy, seed=6), fs)
    rest_only = envelope_of(emg(fs, SCENARIO_S, [], seed=6), fs)
    quiet = QuietWindowBaseline(fs)
    quiet.update(env, 0)
    true_level = np.median(rest_only[0, int(fs):])
    assert quiet.result().level[0] == pytest.approx(true_level, rel=0.15)
    # A plain median of the whole recording would be far above the rest level.
    assert np.median(env) > 2 * true_level


def test_gap_merging_on_a_signal():
    fs = 1000.0
    min_rest = DetectorSettings().min_rest_s
    short_gap = 0.4 * min_rest
    long_gap = min_rest + 1.0
    bursts = [(6.0, 7.0), (7.0 + short_gap, 8.0), (8.0 + long_gap, 10.0 + long_gap)]
    x = emg(fs, 14.0, bursts, snr_db=15.0, seed=8)
    events = detect(x, fs, None, calibration_s=4.0)
    problems = check_events(events, [(6.0, 8.0), bursts[2]])
    assert not problems, problems


# -- the state machine on exact envelopes ------------------------------------------------------
FS = 1000.0
# Fixed thresholds: level 1, sigma 0.1 -> on = 2.0 (ratio floor), off = 1.5,
# resting band up to 1.15. EXACT is the double-threshold path alone; the
# CUSUM path is tested on its own below (EXACT_CUSUM).
BASE = Baseline([1.0], [0.1], "test")
EXACT = DetectorSettings(k_on=6.0, k_off=3.0, min_ratio_on=2.0, min_ratio_off=1.5, min_active_s=0.1,
                         min_rest_s=0.3, k_band=1.5, max_backtrack_s=0.3, settle_s=0.0, cusum=False)
# With the CUSUM path: reference max(1.25 * 1, 1 + 2 * 0.1) = 1.25; a rise is
# confirmed by 0.1 s worth of evidence at the on threshold, (2.0 - 1.25) *
# 0.1 = 0.075 level-seconds.
EXACT_CUSUM = DetectorSettings(k_on=6.0, k_off=3.0, min_ratio_on=2.0, min_ratio_off=1.5, min_active_s=0.1,
                               min_rest_s=0.3, k_band=1.5, max_backtrack_s=0.3, settle_s=0.0,
                               cusum=True, cusum_ratio=1.25, k_cusum=2.0)


def envelope(n_s, *segments, rest=1.0):
    """Envelope of ``n_s`` seconds at ``rest`` with (start s, stop s, value) segments."""
    env = np.full(int(round(n_s * FS)), rest)
    for start, stop, value in segments:
        env[int(round(start * FS)):int(round(stop * FS))] = value
    return env


def run_detector(env, settings=EXACT, baseline=BASE, sizes=(1000,), flush=True, **kwargs):
    env = np.atleast_2d(env)
    info = StreamInfo(fs=FS, ch_names=tuple(f"m{i}" for i in range(env.shape[0])))
    det = ThresholdDetector(baseline, settings, **kwargs)
    events, start, k = [], 0, 0
    while start < env.shape[1]:
        size = sizes[k % len(sizes)]
        out = det.process(Chunk(env[:, start:start + size], start, info))
        np.testing.assert_array_equal(out.data, env[:, start:start + size])  # passes the envelope through
        events.extend(out.events)
        start += size
        k += 1
    if flush:
        events.extend(det.flush())
    return [(e.channel, round(e.onset_s * FS), round(e.offset_s * FS)) for e in events], det


@pytest.mark.parametrize("sizes", [(1000,), (1,), (7, 64, 3)])
def test_min_active_drops_short_blips(sizes):
    n_active = int(EXACT.min_active_s * FS)
    env = envelope(3.5, (1.0, 1.0 + (n_active - 1) / FS, 3.0),  # one sample too short
                   (2.0, 2.0 + n_active / FS, 3.0),             # just long enough
                   (3.0, 3.05, 10.0))                           # short, however high
    events, _ = run_detector(env, sizes=sizes)
    assert events == [("m0", 2000, 2000 + n_active)]


@pytest.mark.parametrize("sizes", [(1000,), (1,), (13,)])
def test_gap_shorter_than_min_rest_is_merged(sizes):
    n_rest = int(EXACT.min_rest_s * FS)
    merged = envelope(3.0, (1.0, 1.5, 3.0), (1.5 + (n_rest - 1) / FS, 2.5, 4.0))
    events, det = run_detector(merged, sizes=sizes)
    assert events == [("m0", 1000, 2500)]
    split = envelope(3.0, (1.0, 1.5, 3.0), (1.5 + n_rest / FS, 2.5, 4.0))
    events, _ = run_detector(split, sizes=sizes)
    assert events == [("m0", 1000, 1500), ("m0", 1500 + n_rest, 2500)]


def test_merged_event_keeps_the_highest_peak():
    env = envelope(4.0, (1.0, 1.5, 3.0), (1.6, 2.0, 7.5), (2.0, 2.2, 2.5))
    info = StreamInfo.default_names(1, FS)
    det = ThresholdDetector(BASE, EXACT, kind="spasm")
    out = det.process(Chunk(env[None], 0, info))
    (event,) = out.events
    assert event.kind == "spasm" and event.channel == "ch1"
    assert (event.onset_s, event.offset_s, event.peak) == (1.0, 2.2, 7.5)


def test_hysteresis_between_the_thresholds():
    # Between off and on: never starts a contraction.
    events, _ = run_detector(envelope(4.0, (1.0, 3.0, 1.8)))
    assert events == []
    # Once started above on, it lasts while above off.
    events, _ = run_detector(envelope(4.0, (1.0, 1.05, 3.0), (1.05, 3.0, 1.8)))
    assert events == [("m0", 1000, 3000)]


def test_tail_between_the_thresholds_does_not_prolong_a_contraction():
    """A fall below off ends the contraction at that sample unless the
    envelope clearly re-activates (above on) within min_rest_s: a resting
    tone that settles slowly between the thresholds is not a contraction
    (module docstring)."""
    env = envelope(6.0, (1.0, 2.0, 5.0), (2.0, 2.05, 1.2), (2.05, 4.0, 1.8))
    events, _ = run_detector(env)
    assert events == [("m0", 1000, 2000)]
    # The same dip followed by a clear re-activation above on is merged.
    env = envelope(6.0, (1.0, 2.0, 5.0), (2.0, 2.05, 1.2), (2.05, 4.0, 3.0))
    events, _ = run_detector(env)
    assert events == [("m0", 1000, 4000)]


def test_onset_backtracks_to_where_the_envelope_left_rest():
    k = np.arange(int(6 * FS)) - int(1 * FS)  # samples since t = 1 s
    # Fast rise, 20 per second: leaves the band (1.15) after sample 1007
    # (1.14 -> 1.16), passes on (2.0) at sample 1051.
    fast = np.clip(1.0 + 20.0 * k / FS, 1.0, 3.0)
    fast[int(4 * FS):] = 1.0
    events, _ = run_detector(fast)
    assert events == [("m0", 1008, 4000)]
    # Slow rise, 0.45 per second: leaves the band after sample 1333 but
    # passes on only at sample 3223; back-tracking stops max_backtrack_s earlier.
    slow = np.clip(1.0 + 0.45 * k / FS, 1.0, 3.0)
    events, _ = run_detector(slow)
    assert events == [("m0", 3223 - int(EXACT.max_backtrack_s * FS), 6000)]


@pytest.mark.parametrize("sizes", [(1000,), (1,), (7, 64, 3)])
def test_cusum_finds_a_sustained_weak_contraction_from_where_it_began(sizes):
    """Between off and on for 2 s, never above on: 0.55 levels above the
    reference give the 0.075 level-seconds after 0.14 s; the onset is where
    the CUSUM left zero, the offset where the envelope fell below off."""
    env = envelope(5.0, (1.0, 3.0, 1.8))
    events, det = run_detector(env, settings=EXACT_CUSUM, sizes=sizes)
    assert events == [("m0", 1000, 3000)]
    assert det.reference[0] == pytest.approx(1.25)
    # The double-threshold path alone sees nothing between the thresholds.
    assert run_detector(env, sizes=sizes)[0] == []
    assert DetectorSettings().cusum == "auto"


@pytest.mark.parametrize("sizes", [(1000,), (1,), (7, 64, 3)])
def test_a_weak_contraction_ends_on_evidence_not_at_the_first_dip(sizes):
    """Started by the CUSUM, a burst hovering around the off threshold (1.8
    and 1.4, alternating every 50 ms: below off half the time) is one
    contraction; it ends where the fall CUSUM last left zero."""
    wobble = [(1.0 + 0.1 * k, 1.05 + 0.1 * k, 1.4) for k in range(20)]
    env = envelope(5.0, (1.0, 3.0, 1.8), *wobble)
    events, _ = run_detector(env, settings=EXACT_CUSUM, sizes=sizes)
    # (Ended at the first sample below off, it would be 1000-1050, and the
    # rest of the burst, never back in the resting band, nothing.)
    assert events == [("m0", 1000, 3000)]


def test_cusum_auto_runs_only_where_the_rest_is_steady():
    steady = Baseline(np.ones(3), np.full(3, 0.1), drift=np.array([0.03, 0.2, np.nan]))
    settings = replace(EXACT_CUSUM, cusum="auto")
    assert settings.cusum_channels(steady).tolist() == [True, False, False]
    assert settings.cusum_channels(Baseline(np.ones(2), np.full(2, 0.1))).tolist() == [False, False]
    assert replace(EXACT_CUSUM, cusum=True).cusum_channels(steady).tolist() == [True, True, True]
    # Same weak contraction on three channels: found on the steady one only.
    env = np.vstack([envelope(5.0, (1.0, 3.0, 1.8))] * 3)
    events, _ = run_detector(env, settings=settings, baseline=steady)
    assert events == [("m0", 1000, 3000)]
    with pytest.raises(ParameterError, match="cusum"):
        DetectorSettings(cusum="sometimes")
    with pytest.raises(ParameterError, match="max_drift"):
        DetectorSettings(max_drift=-0.1)


def test_quiet_window_baseline_measures_how_steady_the_rest_is():
    fs = 100.0
    rng = np.random.default_rng(4)
    flat = 1.0 + 0.01 * rng.standard_normal(6000)
    # The same rest whose level wanders by +-20 % from one second to the next.
    wander = flat * np.repeat(1.0 + 0.2 * rng.standard_normal(60), 100)
    est = QuietWindowBaseline(fs, skip_s=0.0)
    est.update(np.vstack([flat, wander]), 0)
    drift = est.result().drift
    assert drift[0] < 0.01
    assert 0.05 < drift[1] < 0.3


@pytest.mark.parametrize("sizes", [(1000,), (1,), (13,)])
def test_cusum_needs_the_evidence_of_min_active_at_the_on_threshold(sizes):
    # 0.25 above the reference needs 0.3 s: 0.29 s is not enough ...
    assert run_detector(envelope(3.0, (1.0, 1.29, 1.5)), settings=EXACT_CUSUM, sizes=sizes)[0] == []
    # ... and a spike counts no more than the on threshold would: 50 ms at 10 x
    # gives 0.0375 level-seconds, half the evidence needed.
    assert run_detector(envelope(3.0, (1.0, 1.05, 10.0)), settings=EXACT_CUSUM, sizes=sizes)[0] == []
    # At the on threshold, a little more than min_active_s is enough (the
    # threshold path needs the envelope strictly above on).
    assert run_detector(envelope(3.0, (1.0, 1.11, 2.0)), settings=EXACT_CUSUM, sizes=sizes)[0] == [("m0", 1000, 1110)]
    assert run_detector(envelope(3.0, (1.0, 1.11, 2.0)), sizes=sizes)[0] == []


@pytest.mark.parametrize("sizes", [(1000,), (1,), (13,)])
def test_cusum_does_not_turn_a_raised_tone_into_contractions(sizes):
    """A level that rises from rest starts one contraction; once it has
    stayed above the resting band for longer than max_backtrack_s, the
    CUSUM starts nothing more (a raised tone, not contraction after
    contraction), while short excursions above on still count."""
    env = envelope(12.0, (1.0, 11.0, 1.8), (5.0, 5.15, 3.0))
    events, _ = run_detector(env, settings=EXACT_CUSUM, sizes=sizes)
    assert events == [("m0", 1000, 11000)]
    # With dips below off (to 1.4, still above the band) the first contraction
    # ends; only the excursion above on starts another.
    dips = [(1.0 + 0.4 * k, 1.2 + 0.4 * k, 1.4) for k in range(25)]
    env = envelope(12.0, (1.0, 11.0, 1.8), *dips, (5.0, 5.15, 3.0))
    onsets = [e[1] for e in run_detector(env, settings=EXACT_CUSUM, sizes=sizes)[0]]
    assert onsets[0] == 1000 and all(abs(t - 5000) <= 300 for t in onsets[1:]) and len(onsets) <= 2


@pytest.mark.parametrize("sizes", [(1000,), (1,), (13,)])
def test_rest_required_grows_with_the_stretch_held(sizes):
    """After 2 s held, a 0.5 s dip (rest required min(0.5 * 2 s, 1 s) = 1 s)
    is merged; after 0.2 s held, the same dip ends the contraction
    (min_rest_s = 0.3 s)."""
    long_hold = envelope(6.0, (1.0, 3.0, 3.0), (3.5, 4.5, 3.0))
    assert run_detector(long_hold, sizes=sizes)[0] == [("m0", 1000, 4500)]
    short = envelope(6.0, (1.0, 1.2, 3.0), (1.7, 2.5, 3.0))
    assert run_detector(short, sizes=sizes)[0] == [("m0", 1000, 1200), ("m0", 1700, 2500)]
    # A pause longer than max_rest_s ends any contraction.
    assert len(run_detector(envelope(12.0, (1.0, 8.0, 3.0), (9.6, 10.5, 3.0)), sizes=sizes)[0]) == 2


def test_decisions_do_not_depend_on_chunk_length_or_the_search_windows():
    """The searches for the next decision scan growing windows (4 Ki samples,
    then doubling): long rests and holds, chunks that cut them anywhere and
    one chunk holding the whole signal give the same events, on both paths."""
    from biofeedback.detect.threshold import _SEARCH

    rest = 3 * _SEARCH / FS  # a rest the searches cross in several windows
    segments, t = [], 1.0
    for k in range(6):
        segments.append((t, t + 0.5 + k, 3.0))  # above on
        t += 0.5 + k + rest
        segments.append((t, t + 1.0 + k, 1.8))  # between off and on: the CUSUM path only
        t += 1.0 + k + rest
    env = envelope(t + 1.0, *segments)
    for settings in (EXACT, EXACT_CUSUM):
        whole = run_detector(env, settings=settings, sizes=(env.size,))[0]
        assert len(whole) == (12 if settings.cusum else 6)
        for sizes in [(1000,), (_SEARCH - 1, _SEARCH + 1), (5 * _SEARCH + 7,), (97, 20000)]:
            assert run_detector(env, settings=settings, sizes=sizes)[0] == whole


def test_flush_closes_what_is_open():
    # Active at the end: closed at the end of the stream (or at stop_sample).
    env = envelope(3.0, (2.0, 3.0, 3.0))
    events, det = run_detector(env, flush=False)
    assert events == []
    assert det.is_active(0)
    flushed = det.flush()
    assert [(round(e.onset_s * FS), round(e.offset_s * FS)) for e in flushed] == [(2000, 3000)]
    assert det.flush() == [] and not det.is_active(0)
    _, det = run_detector(env, flush=False)
    assert det.flush(stop_sample=3500)[0].offset_s == 3.5
    # Ending (below off, min_rest not over): closed at the first quiet sample.
    events, _ = run_detector(envelope(3.0, (2.0, 2.9, 3.0)))
    assert events == [("m0", 2000, 2900)]
    # A candidate that has not lasted min_active_s is not a contraction.
    events, _ = run_detector(envelope(3.0, (2.95, 3.0, 3.0)))
    assert events == []


def test_channels_are_independent():
    env = np.vstack([envelope(4.0, (1.0, 2.0, 3.0)), envelope(4.0, (1.5, 3.0, 6.0))])
    baseline = Baseline([1.0, 2.0], [0.1, 0.1])  # m1: on 4.0, off 3.0
    events, _ = run_detector(env, baseline=baseline, sizes=(9,))
    assert sorted(events) == [("m0", 1000, 2000), ("m1", 1500, 3000)]


def test_nothing_is_detected_while_the_filters_settle():
    settle = DetectorSettings().settle_s
    assert settle > 0
    settings = DetectorSettings(k_on=6.0, k_off=3.0, settle_s=settle)
    env = envelope(4.0, (0.0, settle - 0.1, 3.0), (2.0, 3.0, 3.0))
    events, _ = run_detector(env, settings=settings)
    assert events == [("m0", 2000, 3000)]


# -- calibration mode ----------------------------------------------------------------------------
def test_calibration_uses_the_first_seconds():
    calibration_s = 2.0
    rng = np.random.default_rng(9)
    env = 1.0 + 0.05 * rng.standard_normal(int(8 * FS))
    env[int(5 * FS):int(6 * FS)] = 3.0
    events, det = run_detector(env, baseline=None, calibration_s=calibration_s, sizes=(20,))
    start = round(EXACT.settle_s * FS)
    expected = baseline_from_rest(env[None, start:start + int(calibration_s * FS)])
    np.testing.assert_allclose(det.baseline.level, expected.level, rtol=1e-12)
    np.testing.assert_allclose(det.baseline.sigma, expected.sigma, rtol=1e-12)
    assert events == [("m0", 5000, 6000)]
    # Whatever comes after the calibration does not change the baseline.
    changed = env.copy()
    changed[int(4 * FS):] *= 1.3
    _, det2 = run_detector(changed, baseline=None, calibration_s=calibration_s, sizes=(333,))
    np.testing.assert_array_equal(det2.baseline.level, det.baseline.level)


def test_detector_waits_for_calibration():
    info = StreamInfo.default_names(1, FS)
    det = ThresholdDetector(None, EXACT, calibration_s=1.0)
    out = det.process(Chunk(np.full((1, 500), 1.0), 0, info))
    assert det.calibrating and out.events == () and det.flush() == []
    det.process(Chunk(np.full((1, 600), 1.0), 500, info))
    assert not det.calibrating
    assert det.baseline.level[0] == 1.0


# -- settings -----------------------------------------------------------------------------------------
def test_thresholds_follow_the_settings():
    s = DetectorSettings(k_on=5.0, k_off=2.0, min_ratio_on=1.2, min_ratio_off=1.1)
    on, off = s.thresholds(Baseline([10.0, 10.0], [0.1, 2.0]))
    np.testing.assert_allclose(on, [12.0, 20.0])   # ratio floor, then k * sigma
    np.testing.assert_allclose(off, [11.0, 14.0])


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"k_on": 3.0, "k_off": 4.0}, "k_off"),
        ({"min_ratio_on": 1.2, "min_ratio_off": 1.5}, "min_ratio_off"),
        ({"k_on": -1.0, "k_off": -2.0}, "k_on"),
        ({"min_active_s": -0.1}, "min_active_s"),
        ({"min_rest_s": -1.0}, "min_rest_s"),
        ({"max_backtrack_s": float("nan")}, "max_backtrack_s"),
    ],
)
def test_bad_detector_settings_are_named(kwargs, name):
    with pytest.raises(ParameterError) as err:
        DetectorSettings(**kwargs)
    assert err.value.name == name and name in str(err.value)


def test_baseline_with_the_wrong_channel_count_is_rejected():
    det = ThresholdDetector(None, EXACT)
    det.process(Chunk(np.ones((2, 10)), 0, StreamInfo.default_names(2, FS)))
    with pytest.raises(ParameterError, match="baseline"):
        det.set_baseline(Baseline([1.0], [0.1]))


@pytest.mark.parametrize("kwargs,name", [({"fs": 0.0}, "fs"), ({"fs": -100.0}, "fs"),
                                         ({"fs": 1000.0, "window_s": 0.0}, "window")])
def test_quiet_window_baseline_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ParameterError) as err:
        QuietWindowBaseline(**kwargs)
    assert name in str(err.value)
