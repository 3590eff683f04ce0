"""The whole pipeline gives the same numbers whatever the chunking.

Live feedback (20 ms chunks), replay and batch analysis (one pass) must agree:
the envelope, the ``filtered`` layer and the detected events of any chunking
of a stream equal those of one pass over it, to floating-point tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import signal

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.detect import Baseline, DetectorSettings, QuietWindowBaseline, ThresholdDetector
from biofeedback.dsp import (  # noqa: I001
    FilterCascade,
    BandPass, LinearEnvelope, MainsNotch, Pipeline, PipelineSettings, RMSEnvelope, build_pipeline, process_array,
)
from biofeedback.errors import ParameterError

CHANNELS = ("left", "right")
DURATION_S = 6.0
CALIBRATION_S = 1.5
# (onset s, offset s) per channel; the last burst on "left" runs to the end
# of the stream, so the final event comes from flush(). Gaps exceed the
# detector's min_rest_s, so no bursts merge.
BURSTS = {
    "left": [(2.4, 3.0), (3.9, 4.3), (5.3, DURATION_S)],
    "right": [(2.7, 3.4), (4.4, 4.65), (5.5, 5.7)],
}


def burst_data(fs, seed, snr_db=20.0, rest_rms=10.0, hum=15.0):
    """Two channels of rest noise with amplitude-modulated noise bursts,
    50 Hz hum and different DC offsets."""
    rng = np.random.default_rng(seed)
    n = int(round(DURATION_S * fs))
    t = np.arange(n) / fs
    data = rng.standard_normal((len(CHANNELS), n)) * rest_rms
    gain = rest_rms * np.sqrt(10 ** (snr_db / 10) - 1)
    for row, name in enumerate(CHANNELS):
        amp = np.zeros(n)
        for on, off in BURSTS[name]:
            i, j = int(round(on * fs)), int(round(off * fs))
            amp[i:j] = 1.0 + 0.3 * np.sin(2 * np.pi * 1.5 * t[i:j])  # wavering force
        data[row] += amp * gain * rng.standard_normal(n)
        data[row] += hum * np.sin(2 * np.pi * 50.0 * t + row) + (-400.0, 2500.0)[row]
    return data


def make_info(fs):
    return StreamInfo(fs=fs, ch_names=CHANNELS)


def one_pass(pipeline, data, info):
    return process_array(pipeline, data, info, chunk_size=data.shape[1])


def chunked(pipeline, data, info, sizes):
    """Run the pipeline over ``data`` in chunks cycling through ``sizes``."""
    env, filt, events = [], [], []
    start, k = 0, 0
    while start < data.shape[1]:
        size = sizes[k % len(sizes)]
        out = pipeline.process(Chunk(data[:, start:start + size], start, info))
        assert out.first_sample == start and out.n_samples == min(size, data.shape[1] - start)
        env.append(out.data)
        filt.append(out.layers["filtered"])
        events.extend(out.events)
        start += size
        k += 1
    detector = pipeline.find(ThresholdDetector)
    if detector is not None:
        events.extend(detector.flush())
    return np.concatenate(env, axis=1), np.concatenate(filt, axis=1), events


def event_key(e):
    return (e.channel, e.kind, e.onset_s, e.offset_s)


def assert_same_output(a, b):
    env_a, filt_a, ev_a = a
    env_b, filt_b, ev_b = b
    assert env_a.shape == env_b.shape and filt_a.shape == filt_b.shape
    np.testing.assert_allclose(filt_a, filt_b, rtol=1e-9, atol=1e-9 * np.abs(filt_b).max())
    np.testing.assert_allclose(env_a, env_b, rtol=1e-9, atol=1e-9 * np.abs(env_b).max())
    # Decisions are made on sample indices: onsets and offsets are identical.
    assert sorted(map(event_key, ev_a)) == sorted(map(event_key, ev_b))
    peaks_a = [e.peak for e in sorted(ev_a, key=event_key)]
    peaks_b = [e.peak for e in sorted(ev_b, key=event_key)]
    np.testing.assert_allclose(peaks_a, peaks_b, rtol=1e-9)


def fixed_baseline(settings, data, info):
    """A resting baseline measured on a detector-free pass (batch use)."""
    env, _, _ = one_pass(build_pipeline(settings, info, mains_hz=50, detect=False), data, info)
    quiet = QuietWindowBaseline(info.fs)
    quiet.update(env, 0)
    return quiet.result()


def full_pipeline(settings, info, baseline):
    return build_pipeline(settings, info, mains_hz=50, baseline=baseline, calibration_s=CALIBRATION_S)


# -- property: any chunking equals one pass ------------------------------------------
chunk_sizes = st.lists(
    st.one_of(st.integers(1, 16), st.integers(17, 400), st.sampled_from([1, 7, 64])),
    min_size=1, max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fs=st.sampled_from([250.0, 500.0, 1000.0]),
    seed=st.integers(0, 2 ** 16),
    sizes=chunk_sizes,
    calibrate=st.booleans(),
    envelope=st.sampled_from(["rms", "rms", "linear"]),
)
def test_any_chunking_gives_the_one_pass_output(fs, seed, sizes, calibrate, envelope):
    info = make_info(fs)
    data = burst_data(fs, seed)
    settings_ = PipelineSettings(mains="50", envelope=envelope)
    baseline = None if calibrate else fixed_baseline(settings_, data, info)
    reference = one_pass(full_pipeline(settings_, info, baseline), data, info)
    assert len(reference[2]) >= 2, "the scenario must produce events"
    assert_same_output(chunked(full_pipeline(settings_, info, baseline), data, info, sizes), reference)


@pytest.mark.parametrize("size", [1, 7, 64])
@pytest.mark.parametrize("calibrate", [False, True], ids=["baseline", "calibration"])
def test_fixed_chunk_sizes_give_the_one_pass_output(size, calibrate):
    fs = 500.0
    info = make_info(fs)
    data = burst_data(fs, seed=11)
    settings_ = PipelineSettings(mains="50")
    baseline = None if calibrate else fixed_baseline(settings_, data, info)
    reference = one_pass(full_pipeline(settings_, info, baseline), data, info)
    # Every burst is found, on the right channel, including the one open at the end.
    for name in CHANNELS:
        found = sorted((e.onset_s, e.offset_s) for e in reference[2] if e.channel == name)
        assert len(found) == len(BURSTS[name]), (name, found)
        for (on, off), (t_on, t_off) in zip(found, BURSTS[name]):
            assert abs(on - t_on) < 0.1 and -0.05 < off - t_off < 0.2
    assert max(e.offset_s for e in reference[2]) == DURATION_S  # closed by flush
    assert_same_output(chunked(full_pipeline(settings_, info, baseline), data, info, [size]), reference)


def test_process_array_default_chunking_and_reset_reproduce_the_one_pass_output():
    fs = 1000.0
    info = make_info(fs)
    data = burst_data(fs, seed=3)
    pipeline = full_pipeline(PipelineSettings(mains="50"), info, None)
    reference = one_pass(pipeline, data, info)
    pipeline.reset()  # a new stream: calibration and filter states start over
    assert_same_output(process_array(pipeline, data, info), reference)
    pipeline.reset()
    assert_same_output(chunked(pipeline, data, info, [20]), reference)


# -- what the pipeline computes -----------------------------------------------------------
def test_pipeline_layers_equal_the_composed_scipy_filters():
    fs = 1000.0
    info = make_info(fs)
    data = burst_data(fs, seed=5)
    pipeline = build_pipeline(PipelineSettings(mains="50"), info, mains_hz=50, detect=False)
    assert [s.name for s in pipeline.stages] == ["filtered", "envelope"]
    env, filt, events = chunked(pipeline, data, info, [20])
    assert events == []
    bp_sos = BandPass().design(fs)
    notch_sos = MainsNotch(50.0).design(fs)
    zi = signal.sosfilt_zi(bp_sos)[:, None, :] * data[:, 0][None, :, None]
    band, _ = signal.sosfilt(bp_sos, data, axis=-1, zi=zi)
    zi = signal.sosfilt_zi(notch_sos)[:, None, :] * band[:, 0][None, :, None]
    ref_filt, _ = signal.sosfilt(notch_sos, band, axis=-1, zi=zi)
    np.testing.assert_allclose(filt, ref_filt, rtol=1e-9, atol=1e-9 * np.abs(ref_filt).max())
    w = int(round(0.1 * fs))
    ref_env = np.vstack([np.sqrt(np.convolve(r ** 2, np.ones(w))[: r.size] / w) for r in ref_filt])
    np.testing.assert_allclose(env, ref_env, rtol=1e-8, atol=1e-9 * ref_env.max())
    # The hum is gone from the filtered layer: no 50 Hz line stands out.
    f, p = signal.welch(filt[:, int(fs):], fs=fs, nperseg=2048)
    near = (f > 45) & (f < 55) & (np.abs(f - 50) > 1.5)
    assert np.all(p[:, np.argmin(np.abs(f - 50))] < 3 * np.median(p[:, near], axis=1))


def test_pipeline_stages_follow_the_settings():
    info = StreamInfo.default_names(1, 1000.0)
    plain = build_pipeline(PipelineSettings(mains="off"), info, mains_hz=None, detect=False)
    assert [type(s) for s in plain.stages] == [FilterCascade, RMSEnvelope]
    assert [type(f) for f in plain.stages[0].filters] == [BandPass]
    assert plain.stages[0].name == "filtered"
    linear = build_pipeline(PipelineSettings(envelope="linear", linear_cutoff_hz=4.0), info, mains_hz=60)
    assert [type(s) for s in linear.stages] == [FilterCascade, LinearEnvelope, ThresholdDetector]
    assert [type(f) for f in linear.stages[0].filters] == [BandPass, MainsNotch]
    assert linear.find(MainsNotch).mains_hz == 60.0 and linear.find(LinearEnvelope).cutoff_hz == 4.0
    # A stream too slow for any mains line gets no notch rather than an error.
    slow = build_pipeline(PipelineSettings(low_hz=5.0), StreamInfo.default_names(1, 100.0), mains_hz=50)
    assert slow.find(MainsNotch) is None
    with pytest.raises(ParameterError, match="keep"):
        Pipeline([RMSEnvelope()], keep=("filtered",))


def test_events_are_reported_in_the_chunk_that_confirms_them():
    """Live feedback learns of an ended contraction min_rest_s after its offset."""
    fs = 500.0
    info = make_info(fs)
    data = burst_data(fs, seed=7)
    settings_ = PipelineSettings(mains="50")
    pipeline = full_pipeline(settings_, info, fixed_baseline(settings_, data, info))
    min_rest = int(round(settings_.detector.min_rest_s * fs))
    size = int(0.02 * fs)
    seen = 0
    for start in range(0, data.shape[1], size):
        out = pipeline.process(Chunk(data[:, start:start + size], start, info))
        for e in out.events:
            confirmed = int(round(e.offset_s * fs)) + min_rest  # first sample after the quiet period
            assert start < confirmed <= out.stop, (e, start, out.stop)
            seen += 1
    assert seen >= 4


def test_calibration_mode_waits_then_detects():
    fs = 500.0
    info = make_info(fs)
    data = burst_data(fs, seed=9)
    pipeline = full_pipeline(PipelineSettings(mains="50"), info, None)
    detector = pipeline.find(ThresholdDetector)
    settle = getattr(detector.settings, "settle_s", 0.0)
    calibration_end = int(round((settle + CALIBRATION_S) * fs))
    env, _, events = chunked(pipeline, data, info, [10])
    assert not detector.calibrating
    assert detector.baseline.n_channels == 2
    # The baseline is the envelope's median over the calibration seconds.
    start = int(round(settle * fs))
    np.testing.assert_allclose(detector.baseline.level, np.median(env[:, start:calibration_end], axis=1), rtol=1e-9)
    assert events and min(e.onset_s for e in events) * fs >= calibration_end - detector.settings.max_backtrack_s * fs


def test_detector_settings_flow_into_the_pipeline():
    info = StreamInfo.default_names(2, 1000.0)
    custom = DetectorSettings(k_on=8.0, k_off=2.0, min_active_s=0.2)
    pipeline = build_pipeline(PipelineSettings(detector=custom), info, baseline=Baseline([1.0, 2.0], [0.1, 0.1]))
    det = pipeline.find(ThresholdDetector)
    assert det.settings == custom
    pipeline.process(Chunk(np.zeros((2, 10)), 0, info))
    np.testing.assert_allclose(det.on_threshold, np.maximum([1.8, 2.8], np.array([1.0, 2.0]) * custom.min_ratio_on))


@pytest.mark.parametrize("sizes", [(1,), (7, 64, 3), (333,)])
def test_cusum_path_does_not_depend_on_chunking(sizes):
    """The optional CUSUM path decides on exact integer sums: same events for any chunking."""
    fs = 500.0
    info = make_info(fs)
    data = burst_data(fs, seed=5, snr_db=4.0)
    settings_ = PipelineSettings(mains="50", detector=DetectorSettings(cusum=True))
    baseline = fixed_baseline(settings_, data, info)
    reference = one_pass(full_pipeline(settings_, info, baseline), data, info)
    assert reference[2]
    assert_same_output(chunked(full_pipeline(settings_, info, baseline), data, info, list(sizes)), reference)
