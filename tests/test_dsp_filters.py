"""Filter, envelope and mains-detection stages checked against scipy.signal.

The references are the same coefficients run in one call of
``scipy.signal.sosfilt`` with the steady-state initial conditions the stages
document (``sosfilt_zi * x[0]``): our stages are causal, so zero-phase
``filtfilt`` is not a valid reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from biofeedback.core.types import Chunk, StreamInfo, split_into_chunks
from biofeedback.dsp import (
    PRESETS, BandPass, HighPass, LinearEnvelope, MainsNotch, PipelineSettings, Rectify, RMSEnvelope,
    build_pipeline, detect_mains, resolve_mains,
)
from biofeedback.errors import BiofeedbackError, ParameterError

FS_GRID = (200.0, 500.0, 1000.0, 4000.0)


# -- helpers -------------------------------------------------------------------
def run_chunked(stage, data, fs, sizes, names=None):
    """Feed ``data`` (n_ch, n) to ``stage`` in chunks cycling through ``sizes``."""
    data = np.atleast_2d(data)
    info = StreamInfo(fs=fs, ch_names=names or tuple(f"c{i}" for i in range(data.shape[0])))
    out, start, k = [], 0, 0
    while start < data.shape[1]:
        size = sizes[k % len(sizes)]
        out.append(stage.process(Chunk(data[:, start:start + size], start, info)).data)
        start += size
        k += 1
    return np.concatenate(out, axis=1)


def steady_state_sosfilt(sos, x):
    """One-call scipy reference with the stages' documented initial state."""
    zi = signal.sosfilt_zi(sos)[:, None, :] * x[:, 0][None, :, None]
    y, _ = signal.sosfilt(sos, x, axis=-1, zi=zi)
    return y


def db(h):
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-300))


def sliding_rms(x, w):
    """Trailing-window RMS with zeros before the start (direct convolution)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    kernel = np.ones(w)
    return np.vstack([np.sqrt(np.convolve(row ** 2, kernel)[: row.size] / w) for row in x])


# -- SOS filters against scipy -------------------------------------------------
STAGE_FACTORIES = {
    "bandpass-default": lambda: BandPass(),
    "bandpass-hobby": lambda: BandPass(10.0, None, 2),
    "highpass": lambda: HighPass(20.0, 2),
    "notch50": lambda: MainsNotch(50.0),
    "notch60": lambda: MainsNotch(60.0, quality=20.0),
}


@pytest.mark.parametrize("fs", FS_GRID)
@pytest.mark.parametrize("kind", sorted(STAGE_FACTORIES))
def test_sos_stage_matches_scipy_sosfilt(kind, fs):
    rng = np.random.default_rng(int(fs))
    n = int(3 * fs)
    # Three channels with very different DC offsets (an OpenBCI-like one too).
    x = rng.standard_normal((3, n)) * 20.0 + np.array([[0.0], [-250.0], [31000.0]])
    stage = STAGE_FACTORIES[kind]()
    ref = steady_state_sosfilt(stage.design(fs), x)
    got = run_chunked(stage, x, fs, [1, 7, 64, 333, 2, 1000])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # The stage used exactly the coefficients it reports.
    np.testing.assert_array_equal(stage.sos, stage.design(fs))


def test_steady_state_start_hides_a_large_dc_offset():
    fs = 1000.0
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((1, int(2 * fs))) * 10.0
    stage = BandPass()
    y = run_chunked(stage, noise + 30000.0, fs, [20])
    # Starting from rest (zero state) the 30 000 µV step would ring through
    # the band-pass for ~100 ms at thousands of µV.
    zero_start = signal.sosfilt(stage.sos, noise[0] + 30000.0)
    assert np.abs(zero_start[:100]).max() > 1000.0
    assert np.abs(y[0, :100]).max() < 10 * noise.std()
    # After the start both agree with filtering the offset-free noise.
    np.testing.assert_allclose(y[0, 500:], signal.sosfilt(stage.sos, noise[0])[500:], atol=0.05 * noise.std())


def test_reset_starts_a_new_stream():
    fs = 500.0
    x = np.random.default_rng(2).standard_normal((2, 1500)) + 100.0
    stage = BandPass()
    first = run_chunked(stage, x, fs, [50])
    stage.reset()
    second = run_chunked(stage, x, fs, [50])
    np.testing.assert_array_equal(first, second)


def test_stage_refuses_a_different_stream_without_reset():
    stage = BandPass()
    stage.process(Chunk(np.zeros((1, 10)), 0, StreamInfo.default_names(1, 1000.0)))
    with pytest.raises(ParameterError, match="reset"):
        stage.process(Chunk(np.zeros((1, 10)), 10, StreamInfo.default_names(1, 500.0)))
    with pytest.raises(ParameterError, match="channels"):
        stage.process(Chunk(np.zeros((2, 10)), 10, StreamInfo.default_names(2, 1000.0)))


def test_rectify_is_absolute_value():
    x = np.array([[-3.0, 0.0, 2.5, -1e-9]])
    np.testing.assert_array_equal(run_chunked(Rectify(), x, 100.0, [1, 3]), np.abs(x))


# -- notch -----------------------------------------------------------------------
@pytest.mark.parametrize("fs", (250.0, 500.0, 1000.0, 2000.0))
@pytest.mark.parametrize("mains", (50.0, 60.0))
def test_notch_removes_steady_mains_and_harmonics(mains, fs):
    notch = MainsNotch(mains)
    freqs = notch.frequencies(fs)
    expected = [k * mains for k in range(1, 40) if k * mains < 0.98 * fs / 2]
    assert freqs == pytest.approx(expected)
    # Response at each notched line.
    assert db(notch.frequency_response(fs, freqs)).max() <= -30.0
    # Steady-state sinusoids, one per channel, measured after the transient
    # (time constant of a Q=30 notch at 50 Hz is ~0.2 s; skip 3 s).
    t = np.arange(int(5 * fs)) / fs
    x = np.vstack([np.sin(2 * np.pi * f * t + 0.3 * i) for i, f in enumerate(freqs)])
    y = run_chunked(notch, x, fs, [int(fs // 50)])
    tail = slice(int(3 * fs), None)
    atten = db(np.sqrt(np.mean(y[:, tail] ** 2, axis=1)) / np.sqrt(np.mean(x[:, tail] ** 2, axis=1)))
    assert atten.max() <= -30.0, dict(zip(freqs, atten.round(1)))


@pytest.mark.parametrize("fs", (500.0, 1000.0, 2000.0))
@pytest.mark.parametrize("mains", (50.0, 60.0))
def test_notch_leaves_the_emg_band_between_lines(mains, fs):
    notch = MainsNotch(mains)
    lines = np.array(notch.frequencies(fs))
    mids = lines[:-1] + mains / 2
    mids = mids[mids < 300.0]  # the bulk of surface-EMG power
    loss = db(notch.frequency_response(fs, mids))
    assert loss.min() > -0.5, dict(zip(mids, loss.round(2)))


def test_notch_without_harmonics_only_notches_the_fundamental():
    fs = 1000.0
    notch = MainsNotch(50.0, harmonics=False)
    assert notch.frequencies(fs) == [50.0]
    assert db(notch.frequency_response(fs, [50.0]))[0] <= -30.0
    assert db(notch.frequency_response(fs, [100.0, 150.0])).min() > -0.2


# -- band-pass design ------------------------------------------------------------
@pytest.mark.parametrize("fs", FS_GRID)
def test_default_band_edges(fs):
    low, high = BandPass().edges(fs)
    assert low == 20.0
    assert high == pytest.approx(min(450.0, 0.45 * fs))
    # The pipeline builds the same band from the default settings.
    pipe = build_pipeline(PipelineSettings(), StreamInfo.default_names(1, fs), detect=False)
    assert pipe.find(BandPass).edges(fs) == (low, high)


@pytest.mark.parametrize("preset", ("trunk", "pelvic"))
def test_trunk_and_pelvic_presets_use_30_hz(preset):
    settings = PipelineSettings(preset=preset)
    assert settings.band() == (30.0, None, 4)
    fs = 1000.0
    bp = build_pipeline(settings, StreamInfo.default_names(1, fs), detect=False).find(BandPass)
    assert bp.edges(fs) == (30.0, 450.0)
    assert db(bp.frequency_response(fs, [30.0]))[0] == pytest.approx(-3.01, abs=0.3)
    # An explicit edge overrides the preset.
    assert PipelineSettings(preset=preset, low_hz=25).band()[0] == 25.0


@pytest.mark.parametrize("fs", FS_GRID)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_bandpass_response_flat_in_band_and_3db_at_edges(preset, fs):
    low, _, order = PRESETS[preset]
    if order < 4 and fs > 500:
        pytest.skip("the order-2 hobby preset is meant for 200-500 Hz boards")
    bp = BandPass(low, None, order)
    lo, hi = bp.edges(fs)
    edges_db = db(bp.frequency_response(fs, [lo, hi]))
    np.testing.assert_allclose(edges_db, -3.0, atol=0.3)
    centre = np.linspace(2 * lo, hi / 1.3, 400)
    centre_db = db(bp.frequency_response(fs, centre))
    assert centre_db.min() > -0.5 and centre_db.max() < 0.5
    # Well outside the band: DC and Nyquist strongly attenuated.
    assert db(bp.frequency_response(fs, [lo / 10.0]))[0] < -30.0


# -- RMS envelope -----------------------------------------------------------------
@pytest.mark.parametrize(
    "fs,window_s,sizes",
    [
        (1000.0, 0.1, [1, 7, 64]),
        (1000.0, 0.0333, [250]),
        (250.0, 0.1, [3, 1000]),
        (2000.0, 0.05, [5000]),
        (500.0, 0.002, [1, 1, 2]),  # one-sample window: |x|
    ],
)
def test_rms_envelope_equals_direct_sliding_window(fs, window_s, sizes):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, int(3 * fs))) * np.array([[5.0], [300.0]])
    x[:, : x.shape[1] // 3] *= 0.1  # quiet start, loud rest
    stage = RMSEnvelope(window_s)
    got = run_chunked(stage, x, fs, sizes)
    w = stage.window
    assert w == max(1, int(round(window_s * fs)))
    ref = sliding_rms(x, w)
    # Window sums are differences of (block-restarted) cumulative sums, so a
    # tiny window after loud samples carries an absolute error ~ eps * total.
    energy = np.sum(x ** 2, axis=1, keepdims=True)
    assert np.all(np.abs(got ** 2 - ref ** 2) <= 1e-9 * ref ** 2 + 1e-14 * energy)
    big = ref > 1e-3 * ref.max(axis=1, keepdims=True)
    np.testing.assert_allclose(got[big], ref[big], rtol=1e-9)
    # The zero-padded start ramps up: the first output is |x0| / sqrt(W).
    np.testing.assert_allclose(got[:, 0], np.abs(x[:, 0]) / np.sqrt(w), rtol=1e-12)


def test_rms_envelope_stays_accurate_over_an_hour_with_a_huge_burst():
    """Window sums must not be differences of hour-long running totals."""
    fs, window_s = 1000.0, 0.1
    n = int(3600 * fs)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(n)  # 1 µV rest
    x[int(60 * fs):int(70 * fs)] *= 1e5  # 10 s saturating burst, 10^5 times rest
    ref = sliding_rms(x, int(window_s * fs))[0]
    late = slice(int(1800 * fs), None)  # the second half hour, all rest
    # Live-sized chunks and one huge array (several internal blocks).
    for sizes in ([1000], [n]):
        got = run_chunked(RMSEnvelope(window_s), x[None], fs, sizes)[0]
        # One running sum over the hour would be off by ~1e-3 (relative) here.
        np.testing.assert_allclose(got[late], ref[late], rtol=1e-9)
        # Everywhere, errors are tiny relative to the burst.
        assert np.abs(got - ref).max() < 1e-6 * ref.max()
        assert np.all(got >= 0) and np.all(np.isfinite(got))


# -- linear envelope ----------------------------------------------------------------
@pytest.mark.parametrize("fs,cutoff,order", [(1000.0, 6.0, 2), (250.0, 3.0, 2), (2000.0, 10.0, 4)])
def test_linear_envelope_matches_scipy(fs, cutoff, order):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, int(4 * fs))) * 50.0
    x[:, int(fs):int(2 * fs)] *= 4
    stage = LinearEnvelope(cutoff, order)
    got = run_chunked(stage, x, fs, [1, 13, 400])
    sos = signal.butter(order, cutoff, btype="lowpass", output="sos", fs=fs)
    ref = signal.sosfilt(sos, np.abs(x), axis=-1)  # zero initial state, as documented
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # It tracks the mean rectified amplitude: E|N(0, s)| = s * sqrt(2/pi).
    mid = got[:, int(1.6 * fs):int(2 * fs)]
    np.testing.assert_allclose(mid.mean(axis=1), 200.0 * np.sqrt(2 / np.pi), rtol=0.1)


# -- mains detection ------------------------------------------------------------------
def _noise_with_lines(fs, lines, seconds=10.0, amp=5.0, seed=0, n_channels=1):
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    x = rng.standard_normal((n_channels, n)) * 10.0 + 1000.0
    for f in lines:
        x[0] += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return x


@pytest.mark.parametrize("fs", (500.0, 1000.0, 2000.0))
@pytest.mark.parametrize(
    "lines,expected",
    [
        ((50.0,), 50.0),
        ((50.0, 150.0, 250.0), 50.0),
        ((60.0,), 60.0),
        ((60.0, 180.0), 60.0),
        ((120.0, 240.0), 60.0),  # amplifier removed the fundamental, harmonics remain
        ((100.0,), 50.0),
        ((), None),
    ],
)
def test_detect_mains(lines, expected, fs):
    for seed in range(3):
        x = _noise_with_lines(fs, lines, seed=seed, n_channels=2)
        est = detect_mains(x, fs)
        assert est.mains_hz == expected, est.describe()
        if expected is not None:
            other = 60.0 if expected == 50.0 else 50.0
            assert est.prominence_db[expected] > est.prominence_db[other] + 6.0


def test_detect_mains_with_emg_bursts_and_short_input():
    fs = 1000.0
    x = _noise_with_lines(fs, (), seconds=10.0)
    x[0, 3000:5000] *= 4  # a contraction in the probe is no mains line
    assert detect_mains(x, fs).mains_hz is None
    x = _noise_with_lines(fs, (60.0,), seconds=10.0)
    assert detect_mains(x[:, :500], fs).mains_hz is None  # under 1 s: cannot resolve lines
    assert "60 Hz" in detect_mains(x, fs).describe()


def test_resolve_mains():
    fs = 1000.0
    probe = _noise_with_lines(fs, (60.0,))
    assert resolve_mains(PipelineSettings(mains="off"), probe, fs) is None
    assert resolve_mains(PipelineSettings(mains="50"), probe, fs) == 50.0
    assert resolve_mains(PipelineSettings(mains="auto"), probe, fs) == 60.0
    assert resolve_mains(PipelineSettings(mains="auto")) is None


# -- bad parameters ----------------------------------------------------------------------
def _raises_naming(fragment, func, *args, **kwargs):
    with pytest.raises(ParameterError) as err:
        func(*args, **kwargs)
    assert fragment.lower() in str(err.value).lower(), str(err.value)
    assert isinstance(err.value, BiofeedbackError) and isinstance(err.value, ValueError)
    return err.value


def test_band_edges_outside_nyquist_are_rejected():
    _raises_naming("high edge", BandPass(20.0, 600.0).design, 1000.0)
    _raises_naming("low edge", BandPass(0.0).design, 1000.0)
    # The default 20 Hz edge does not fit a 40 Hz stream (Nyquist 20 Hz).
    _raises_naming("low edge", BandPass().design, 40.0)
    _raises_naming("band-pass edges", BandPass(100.0, 80.0).design, 1000.0)
    _raises_naming("high-pass cut-off", HighPass(600.0).design, 1000.0)
    # build_pipeline fails at once, naming the edge, not on the first chunk.
    _raises_naming("high edge", build_pipeline, PipelineSettings(high_hz=600.0),
                   StreamInfo.default_names(1, 1000.0))
    _raises_naming("cut-off", LinearEnvelope(600.0).design, 1000.0)


@pytest.mark.parametrize("fs", (0, -250.0, float("nan"), float("inf"), "fast"))
def test_nonpositive_sampling_rate_is_rejected(fs):
    err = _raises_naming("sampling rate", StreamInfo, fs=fs, ch_names=("a",))
    assert err.name == "sampling rate (fs)"


@pytest.mark.parametrize("fs", (0.0, -500.0))
def test_detect_mains_rejects_nonpositive_sampling_rate(fs):
    _raises_naming("fs", detect_mains, np.zeros((1, 2000)), fs)


@pytest.mark.parametrize("window_s", (0.0, -0.1))
def test_nonpositive_rms_window_is_rejected(window_s):
    _raises_naming("rms window", RMSEnvelope, window_s)
    _raises_naming("rms window", build_pipeline, PipelineSettings(rms_window_s=window_s),
                   StreamInfo.default_names(1, 1000.0))


def test_build_pipeline_rejects_bad_linear_cutoff_at_once():
    settings = PipelineSettings(envelope="linear", linear_cutoff_hz=200.0)
    _raises_naming("cut-off", build_pipeline, settings, StreamInfo.default_names(1, 250.0))


def test_other_bad_settings_are_named():
    _raises_naming("mains frequency", MainsNotch, 55.0)
    _raises_naming("quality", MainsNotch, 50.0, 0.0)
    _raises_naming("mains notch", MainsNotch(50.0).design, 100.0)
    _raises_naming("preset", PipelineSettings, preset="legs")
    _raises_naming("mains", PipelineSettings, mains="55")
    _raises_naming("envelope", PipelineSettings, envelope="peak")
    _raises_naming("chunk_size", lambda: list(split_into_chunks(np.zeros((1, 5)), StreamInfo.default_names(1, 10), 0)))


def test_notch_design_cached_equals_direct_design_and_is_private():
    # The notch coefficients are kept per (frequencies, Q, fs); they must be
    # exactly those of designing each harmonic, and a caller writing to its
    # copy must not change the next design.
    for fs, mains in ((1000.0, 50.0), (2000.0, 60.0)):
        notch = MainsNotch(mains)
        direct = np.vstack([signal.tf2sos(*signal.iirnotch(f0, 30.0, fs=fs)) for f0 in notch.frequencies(fs)])
        first = notch.design(fs)
        assert np.array_equal(first, direct)
        first[:] = 0.0  # writable, and only the caller's copy
        assert np.array_equal(MainsNotch(mains).design(fs), direct)


def test_butterworth_designs_cached_equal_direct_designs_and_are_private():
    # Band-pass, high-pass and linear-envelope designs are kept per (order,
    # edges, type, fs) like the notch: the same coefficients as designing
    # them, and writing to one caller's copy changes no later design.
    for fs in (250.0, 1000.0, 2000.0):
        cases = [
            (BandPass(), signal.butter(4, [20.0, min(450.0, 0.45 * fs)], btype="bandpass", output="sos", fs=fs)),
            (BandPass(10.0, None, 2), signal.butter(2, [10.0, min(450.0, 0.45 * fs)], btype="bandpass",
                                                    output="sos", fs=fs)),
            (HighPass(20.0, 2), signal.butter(2, 20.0, btype="highpass", output="sos", fs=fs)),
            (LinearEnvelope(6.0, 2), signal.butter(2, 6.0, btype="lowpass", output="sos", fs=fs)),
        ]
        for stage, direct in cases:
            first = stage.design(fs)
            assert np.array_equal(first, direct)
            first[:] = 0.0
            assert np.array_equal(stage.design(fs), direct)


def test_steady_state_zi_cached_equals_scipy_and_is_private():
    # Filter start states are kept per design: exactly scipy's sosfilt_zi,
    # a different design gets its own, and a caller writing to its copy
    # changes no later answer.
    from biofeedback.dsp.filters import steady_state_zi

    designs = [BandPass().design(1000.0), MainsNotch(50.0).design(1000.0),
               signal.butter(2, 20.0, btype="highpass", output="sos", fs=2000.0)]
    for sos in designs * 2:
        first = steady_state_zi(sos)
        assert first.shape == (sos.shape[0], 2)
        assert np.array_equal(first, signal.sosfilt_zi(sos))
        first[:] = 0.0
        assert np.array_equal(steady_state_zi(sos), signal.sosfilt_zi(sos))


@pytest.mark.parametrize("sizes", ([1000], [1, 7, 64], [29, 30, 31], [50000]))
def test_window_sums_of_squares_equal_the_concatenated_running_sum(sizes):
    # The shared buffer (square, then cumulative sum in place) must give the
    # numbers of the plain formulation it replaced, chunk for chunk.
    from biofeedback.dsp.envelope import window_sums_of_squares

    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 20000)) * np.array([[3.0], [400.0]])
    w = 30
    tail_new = tail_old = np.zeros((2, w))
    start, k = 0, 0
    while start < x.shape[1]:
        part = x[:, start:start + sizes[k % len(sizes)]]
        sums, tail_new = window_sums_of_squares(part, tail_new)
        ext = np.concatenate([tail_old, part ** 2], axis=1)
        csum = np.cumsum(ext, axis=1)
        assert np.array_equal(sums, csum[:, w:] - csum[:, :-w])
        tail_old = ext[:, -w:]
        assert np.array_equal(tail_new, tail_old)
        start, k = start + part.shape[1], k + 1


def _prominence_per_channel(freqs, psd, f0, half_width=1.0, guard=3.0, side=10.0):
    """The per-channel line prominence detect_mains computed before the bands were shared by channels."""
    line = (freqs >= f0 - half_width) & (freqs <= f0 + half_width)
    neigh = ((freqs >= f0 - side) & (freqs <= f0 - guard)) | ((freqs >= f0 + guard) & (freqs <= f0 + side))
    if not line.any() or neigh.sum() < 2:
        return -np.inf
    peak = psd[line].max()
    floor = np.median(psd[neigh])
    if floor <= 0:
        return np.inf if peak > 0 else -np.inf
    return 10.0 * np.log10(peak / floor)


@pytest.mark.parametrize("fs", (500.0, 1000.0, 2000.0))
def test_line_prominence_of_all_channels_equals_the_per_channel_values(fs):
    from biofeedback.dsp.mains import _line_prominence_db, _prominences_db

    x = _noise_with_lines(fs, (50.0, 150.0), seed=2, n_channels=4)
    x[2] = 0.0  # a flat channel: zero spectrum, -inf
    freqs, psd = signal.welch(x - x.mean(axis=1, keepdims=True), fs=fs, nperseg=int(2 ** np.ceil(np.log2(2 * fs))))
    lines = (50.0, 60.0, 150.0, 180.0, 0.45 * fs, 0.499 * fs, 0.6 * fs, 1.0, 3.0)
    for f0 in lines:
        got = _line_prominence_db(freqs, psd, f0)
        assert got == [_prominence_per_channel(freqs, psd[ch], f0) for ch in range(x.shape[0])]
    # All lines in one call (as detect_mains asks): neighbours' medians grouped by count, same numbers.
    got = _prominences_db(freqs, psd, lines)
    assert got == [[_prominence_per_channel(freqs, psd[ch], f0) for ch in range(x.shape[0])] for f0 in lines]
    # Off-grid lines, near the edges of the spectrum, with fewer neighbours on one side.
    lines = tuple(np.linspace(0.0, fs / 2, 37) + 0.3)
    got = _prominences_db(freqs, psd, lines)
    assert got == [[_prominence_per_channel(freqs, psd[ch], f0) for ch in range(x.shape[0])] for f0 in lines]


@pytest.mark.parametrize("shape,axis", [((3, 40, 250), 2), ((2, 17, 125), 2), ((8, 100), 0), ((5, 100), 0),
                                        ((7, 3), 1), ((1, 1), 1), ((2, 30, 40), 1), ((4, 500), 1)])
def test_fast_median_equals_numpy_median(shape, axis):
    from biofeedback.dsp.stats import median

    rng = np.random.default_rng(sum(shape))
    for a in (rng.standard_normal(shape), np.round(rng.random(shape) * 4) ** 2):  # ties too
        got = median(a, axis=axis)
        assert got.shape == np.median(a, axis=axis).shape
        assert np.array_equal(got, np.median(a, axis=axis))
    a = rng.standard_normal(shape)
    a.flat[0] = np.nan  # NumPy's NaN result, wherever the NaN sorts
    np.testing.assert_array_equal(median(a, axis=axis), np.median(a, axis=axis))
    empty = np.zeros(shape[:axis] + (0,) + shape[axis + 1:])
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(median(empty, axis=axis), np.median(empty, axis=axis))


def test_lower_quartile_of_8_equals_numpy_percentile():
    from biofeedback.dsp.stats import lower_quartile_of_8

    rng = np.random.default_rng(8)
    for windows in (rng.standard_normal((3, 50, 8)), np.round(rng.random((2, 40, 8)) * 3) ** 2, rng.random(8)):
        assert np.array_equal(lower_quartile_of_8(windows), np.percentile(windows, 25, axis=-1))
    windows = rng.standard_normal((2, 5, 8))
    windows[1, 2, 4] = np.nan  # NumPy's NaN result for that window
    np.testing.assert_array_equal(lower_quartile_of_8(windows), np.percentile(windows, 25, axis=-1))


@pytest.mark.parametrize("n", range(1, 10))
def test_lower_quartile_of_a_few_values_equals_numpy_percentile(n):
    # The heartbeat detector's first noise floors take the quartile of 1-7 block medians.
    from biofeedback.dsp.stats import lower_quartile

    rng = np.random.default_rng(n)
    for values in (rng.standard_normal((3, 40, n)), np.round(rng.random((2, 30, n)) * 3) ** 2,
                   rng.lognormal(size=(8, n)) * 1e-9, rng.random(n)):
        got = lower_quartile(values)
        assert got.shape == values.shape[:-1]
        assert np.array_equal(got, np.percentile(values, 25, axis=-1))
    values = rng.standard_normal((4, n))
    values[2, n // 2] = np.nan
    np.testing.assert_array_equal(lower_quartile(values), np.percentile(values, 25, axis=-1))


def test_sliding_windows_equal_numpy_sliding_window_view():
    from biofeedback.dsp.stats import sliding_windows

    x = np.arange(60.0).reshape(3, 20)
    for view in (x, x[:, 3:17], x[1], x[::2, 1:]):
        for size in (1, 5, view.shape[-1]):
            got = sliding_windows(view, size)
            assert np.array_equal(got, np.lib.stride_tricks.sliding_window_view(view, size, axis=-1))
            assert not got.flags.writeable


# -- Decimator (heartbeat and movement bands at about 250 Hz) -----------------------------------------------
@pytest.mark.parametrize("fs, factor", [(200.0, 1), (250.0, 1), (499.0, 1), (500.0, 2), (1000.0, 4),
                                        (2048.0, 8), (44100.0, 176)])
def test_decimator_factor_keeps_at_least_the_minimum_rate(fs, factor):
    from biofeedback.dsp.filters import Decimator

    dec = Decimator(fs)
    assert dec.factor == factor
    assert 250.0 <= dec.fs_out < 500.0 or (factor == 1 and dec.fs_out == fs)


def test_decimator_passes_low_rates_through_untouched():
    from biofeedback.dsp.filters import Decimator

    x = np.random.default_rng(0).normal(size=(2, 300))
    low, first = Decimator(250.0).process(x, 1234)
    assert low is x and first == 1234


@pytest.mark.parametrize("sizes", ([10000], [1, 2, 3, 5, 7, 11, 13, 9958], [3999, 1, 6000], [4, 4, 9992]))
def test_decimator_output_does_not_depend_on_chunking(sizes):
    from biofeedback.dsp.filters import Decimator

    x = np.random.default_rng(1).normal(size=(3, 10000)) + 50.0  # an offset: the steady-state start
    whole, _ = Decimator(1000.0).process(x, 0)
    dec = Decimator(1000.0)
    parts, start = [], 0
    for n in sizes:
        low, first = dec.process(x[:, start:start + n], start)
        assert first == -(-start // 4)  # the first index >= start that is a multiple of 4, in output samples
        parts.append(low)
        start += n
    assert np.array_equal(np.concatenate(parts, axis=1), whole)
    assert whole.shape == (3, 2500)
    assert np.abs(whole[:, :5] - 50.0).max() < 1.0  # no start-up step from the offset


def test_decimator_keeps_the_slow_band_and_rejects_what_would_fold_onto_it():
    from biofeedback.dsp.filters import Decimator

    fs = 2000.0
    t = np.arange(int(4 * fs)) / fs
    dec = Decimator(fs)
    x = np.vstack([np.sin(2 * np.pi * 15.0 * t), np.sin(2 * np.pi * (dec.fs_out - 15.0) * t)])
    low, _ = dec.process(x, 0)
    settled = low[:, int(1 * dec.fs_out):]
    assert np.sqrt(2 * np.mean(settled[0] ** 2)) == pytest.approx(1.0, abs=0.01)  # 15 Hz kept
    # 235 Hz would fold onto 15 Hz at 250 Hz: at least 50 dB down.
    assert np.sqrt(2 * np.mean(settled[1] ** 2)) < 10 ** (-50 / 20)


def test_decimator_rejects_a_cutoff_that_would_alias():
    from biofeedback.dsp.filters import Decimator

    with pytest.raises(ParameterError, match="decimator cutoff"):
        Decimator(1000.0, cutoff_hz=120.0)
