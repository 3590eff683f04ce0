"""Tests of the sEMG simulator: statistics, artefacts, truth, streaming."""

from __future__ import annotations

import dataclasses
import functools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from biofeedback.core.types import Recording
from biofeedback.errors import ParameterError
from biofeedback.sources.simulator import (
    Scenario,
    ScriptedEvent,
    SimulatorSource,
    contraction_cycles,
    default_session,
    emg_shaping_sos,
    relax_with_spasms,
    simulate,
)

RATES = [200, 250, 500, 1000, 2000, 4000]


def times(rec: Recording) -> np.ndarray:
    return np.arange(rec.n_samples) / rec.info.fs


def span(rec: Recording, a: float, b: float) -> np.ndarray:
    """Boolean mask of the samples with a <= t < b."""
    t = times(rec)
    return (t >= a) & (t < b)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


# A short scenario that exercises every part of the generator (two channels,
# all kinds, every artefact, clipping) for the chunk-invariance tests.
BUSY = Scenario(
    duration_s=3.0,
    n_channels=2,
    events=(
        ScriptedEvent("contraction", 0.3, 1.2, channels=None),
        ScriptedEvent("spasm", 1.7, 0.3, amplitude=120.0, channels=(1,)),
        ScriptedEvent("twitch", 2.2, 0.05),
        ScriptedEvent("cramp", 2.3, 0.7, channels=(0, 1)),
    ),
    mains_hz=60.0,
    mains_harmonics=(0.0, 0.4),
    ecg_bpm=80.0,
    electrode_off=((2.05, 2.15),),
    saturation_uv=150.0,
    dc_offset_uv=5.0,
    baseline_drift_uv=4.0,
)


@functools.lru_cache(maxsize=None)
def busy_recording(fs: float) -> Recording:
    return simulate(BUSY, fs, seed=7)


def stream(source) -> tuple[np.ndarray, list]:
    chunks = list(source)
    return np.concatenate([c.data for c in chunks], axis=1), chunks


# ---------------------------------------------------------------------------
# Reproducibility and streaming


def test_same_seed_same_samples_different_seed_different():
    sc = contraction_cycles(2, on_s=1.0, off_s=1.0, lead_rest_s=1.0, mains_hz=50, ecg_bpm=70)
    a = simulate(sc, 500, seed=3)
    b = simulate(sc, 500, seed=3)
    c = simulate(sc, 500, seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, c.data)
    assert a.events == b.events == c.events


@settings(max_examples=30, deadline=None)
@given(chunk_s=st.floats(min_value=1e-3, max_value=2.5), fs=st.sampled_from(RATES))
def test_streaming_equals_simulate_for_any_chunk_size(chunk_s, fs):
    rec = busy_recording(fs)
    src = SimulatorSource(BUSY, fs, seed=7, chunk_s=chunk_s, speed=0)
    data, chunks = stream(src)
    np.testing.assert_array_equal(data, rec.data)  # bit-identical
    size = max(1, round(chunk_s * fs))
    assert all(c.n_samples == size for c in chunks[:-1])
    assert [c.first_sample for c in chunks] == list(range(0, rec.n_samples, size))
    assert src.truth == rec.events


def test_source_restarts_on_each_iteration_and_matches_info():
    src = SimulatorSource(BUSY, 1000, seed=7, chunk_s=0.1, speed=0)
    first, _ = stream(src)
    second, chunks = stream(src)
    np.testing.assert_array_equal(first, second)
    rec = busy_recording(1000)
    assert chunks[0].info == rec.info
    np.testing.assert_array_equal(src.cues, rec.cues)
    np.testing.assert_array_equal(src.cues_between(300, 400), rec.cues[300:400])


def test_saturation_truth_of_source_known_before_streaming():
    src = SimulatorSource(BUSY, 500, seed=7, speed=0)
    assert src.truth == busy_recording(500).events  # renders once, internally


def test_long_stream_runs_in_bounded_memory():
    # One hour, 8 channels at 2 kHz would be 460 MB held at once.
    sc = Scenario(3600.0, n_channels=8, events=(ScriptedEvent("contraction", 1.0, 2.0, channels=None),),
                  mains_hz=50, ecg_bpm=60, baseline_drift_uv=2.0)
    tracemalloc.start()
    try:
        for i, chunk in enumerate(SimulatorSource(sc, 2000, chunk_s=0.05, speed=0)):
            if i == 100:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, dt):
        self.sleeps.append(dt)
        self.now += dt


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_paced_source_sleeps_in_real_time_on_an_injected_clock(speed):
    fake = FakeTime()
    sc = Scenario(2.0)
    src = SimulatorSource(sc, 250, chunk_s=0.1, speed=speed, clock=fake.clock, sleep=fake.sleep)
    data, chunks = stream(src)
    np.testing.assert_array_equal(data, simulate(sc, 250).data)
    # The first chunk starts the clock; each later one waits its own length.
    assert len(fake.sleeps) == len(chunks) - 1
    assert sum(fake.sleeps) == pytest.approx((2.0 - 0.1) / speed)


@pytest.mark.parametrize("speed", [0.0, math.inf])
def test_unpaced_source_never_sleeps(speed):
    fake = FakeTime()
    src = SimulatorSource(Scenario(1.0), 250, speed=speed, clock=fake.clock, sleep=fake.sleep)
    stream(src)
    assert fake.sleeps == []


# ---------------------------------------------------------------------------
# Amplitudes and spectrum


@pytest.mark.parametrize("fs", RATES)
def test_plateau_and_rest_rms_as_requested_at_every_rate(fs):
    sc = contraction_cycles(1, on_s=10.0, off_s=0.0, lead_rest_s=8.0, tail_rest_s=0.0,
                            amplitude=60.0, rest_rms_uv=3.0, noise_rms_uv=1.0)
    rec = simulate(sc, fs, seed=1)
    x = rec.data[0]
    plateau = rms(x[span(rec, 8.5, 17.5)])
    rest = rms(x[span(rec, 0.0, 7.8)])
    assert plateau == pytest.approx(math.sqrt(60.0**2 + 3.0**2 + 1.0**2), rel=0.10)
    assert rest == pytest.approx(math.hypot(3.0, 1.0), rel=0.10)


@pytest.mark.parametrize("fs", [200, 1000, 4000])
def test_shaping_filter_has_unit_noise_gain(fs):
    impulse = np.zeros(20 * fs)
    impulse[0] = 1.0
    h = signal.sosfilt(emg_shaping_sos(fs), impulse)
    assert np.sum(h**2) == pytest.approx(1.0, rel=1e-9)


def test_events_only_on_their_channels_and_channels_independent():
    sc = Scenario(6.0, n_channels=3, events=(ScriptedEvent("contraction", 1.0, 4.0, amplitude=50.0, channels=(1,)),))
    rec = simulate(sc, 1000)
    on = span(rec, 1.5, 4.5)
    assert rms(rec.data[1, on]) > 40
    assert rms(rec.data[0, on]) < 5 and rms(rec.data[2, on]) < 5
    corr = np.corrcoef(rec.data[:, ~on])
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.1)
    assert [e.channel for e in rec.events] == ["ch2"]


def test_ramps_rise_smoothly_to_the_plateau():
    sc = Scenario(4.0, events=(ScriptedEvent("contraction", 1.0, 2.0, amplitude=60.0, ramp_s=0.5),),
                  rest_rms_uv=0.0, noise_rms_uv=0.0)
    rec = simulate(sc, 2000)
    x = rec.data[0]
    early, late = rms(x[span(rec, 1.0, 1.15)]), rms(x[span(rec, 1.6, 2.4)])
    assert early < 0.3 * late
    assert np.all(x[span(rec, 0.0, 1.0)] == 0) and np.all(x[span(rec, 3.0, 4.0)] == 0)


def test_emg_spectrum_peaks_between_40_and_200_hz_at_2khz():
    rec = simulate(contraction_cycles(1, on_s=20.0, lead_rest_s=1.0), 2000, seed=2)
    f, p = signal.welch(rec.data[0, span(rec, 1.5, 20.5)], 2000, nperseg=1024)
    assert 40 <= f[np.argmax(p)] <= 200
    # Surface EMG carries little below 10 Hz and above 450 Hz.
    assert p[(f > 10) & (f < 450)].sum() / p.sum() > 0.95


def test_emg_spectrum_stays_below_nyquist_at_250hz():
    rec = simulate(contraction_cycles(1, on_s=20.0, lead_rest_s=1.0), 250, seed=2)
    f, p = signal.welch(rec.data[0, span(rec, 1.5, 20.5)], 250, nperseg=256)
    assert 40 <= f[np.argmax(p)] < 0.8 * 125
    assert p[f > 0.9 * 125].sum() / p.sum() < 0.01


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_line_present_when_asked(mains_hz):
    fs = 1000
    base = Scenario(10.0)
    hum = Scenario(10.0, mains_hz=mains_hz, mains_uv=10.0)
    for sc, expect in ((base, False), (hum, True)):
        rec = simulate(sc, fs, seed=5)
        f, p = signal.welch(rec.data[0], fs, nperseg=2000)
        line = p[np.argmin(np.abs(f - mains_hz))]
        neighbours = np.median(p[(np.abs(f - mains_hz) > 3) & (np.abs(f - mains_hz) < 15)])
        assert bool(line > 100 * neighbours) is expect
    # Peak amplitude: projection on the line's sine and cosine.
    t = times(rec)
    amp = np.hypot(2 * np.mean(rec.data[0] * np.sin(2 * np.pi * mains_hz * t)),
                   2 * np.mean(rec.data[0] * np.cos(2 * np.pi * mains_hz * t)))
    assert amp == pytest.approx(10.0, rel=0.05)


def test_mains_above_nyquist_is_left_out():
    rec = simulate(Scenario(4.0, mains_hz=60, mains_uv=50.0), 100)
    assert rms(rec.data) < 5


@pytest.mark.parametrize("bpm", [50.0, 72.0, 110.0])
def test_ecg_beats_at_requested_rate_with_energy_below_40hz(bpm):
    fs = 500
    rec = simulate(Scenario(40.0, rest_rms_uv=1.0, noise_rms_uv=0.5, ecg_bpm=bpm, ecg_uv=80.0), fs, seed=1)
    x = rec.data[0]
    peaks, _ = signal.find_peaks(x, height=40.0, distance=int(0.3 * fs))
    rr = np.diff(peaks) / fs
    assert 60.0 / rr.mean() == pytest.approx(bpm, rel=0.03)
    assert 0 < rr.std() / rr.mean() < 0.1  # jitter, but a rhythm
    assert np.median(x[peaks]) == pytest.approx(80.0, rel=0.1)
    f, p = signal.welch(x, fs, nperseg=4 * fs)
    assert p[f < 40].sum() / p.sum() > 0.8


def test_dc_offset_and_baseline_drift():
    fs = 200
    rec = simulate(Scenario(120.0, dc_offset_uv=30.0, baseline_drift_uv=10.0), fs, seed=4)
    x = rec.data[0]
    assert np.mean(x) == pytest.approx(30.0, abs=6.0)
    slow = signal.sosfiltfilt(signal.butter(2, 2.0, fs=fs, output="sos"), x - x.mean())
    assert rms(slow) == pytest.approx(10.0, rel=0.4)


# ---------------------------------------------------------------------------
# Artefacts with ground truth


def test_clipping_at_the_rail_gives_saturation_events_where_clipped():
    rail = 100.0
    sc = contraction_cycles(2, on_s=2.0, off_s=2.0, lead_rest_s=1.0, amplitude=80.0, saturation_uv=rail)
    rec = simulate(sc, 1000, seed=2)
    x = rec.data[0]
    assert np.max(np.abs(x)) == rail
    sat = [e for e in rec.events if e.kind == "saturation"]
    assert sat and all(e.peak == rail and e.extra["n_clipped"] >= 1 for e in sat)
    clipped = np.abs(x) == rail
    covered = np.zeros_like(clipped)
    fs = rec.info.fs
    for e in sat:
        a, b = round(e.onset_s * fs), round(e.offset_s * fs)
        assert clipped[a] and clipped[b - 1]  # spans start and end on the rail
        covered[a:b] = True
    assert np.all(covered[clipped])
    assert sum(e.extra["n_clipped"] for e in sat) == clipped.sum()
    # Clipping happens during the contractions only.
    assert all(any(c.onset_s <= e.onset_s < c.offset_s for c in rec.events if c.kind == "contraction")
               for e in sat)
    loose = simulate(dataclasses.replace(sc, saturation_uv=1e6), 1000, seed=2)
    assert not [e for e in loose.events if e.kind == "saturation"]


def test_electrode_off_is_flat_near_zero_with_truth_events():
    sc = Scenario(5.0, n_channels=2, events=(ScriptedEvent("contraction", 1.0, 3.0, channels=None),),
                  electrode_off=((2.0, 3.0),), mains_hz=50, dc_offset_uv=200.0)
    rec = simulate(sc, 1000)
    off = span(rec, 2.0, 3.0)
    assert np.all(np.abs(rec.data[:, off]) < 1.0)
    assert np.std(rec.data[:, off]) < 0.2
    assert rms(rec.data[:, span(rec, 1.5, 2.0)] - 200.0) > 30
    flats = [e for e in rec.events if e.kind == "electrode_off"]
    assert [(e.channel, e.onset_s, e.offset_s) for e in flats] == [("ch1", 2.0, 3.0), ("ch2", 2.0, 3.0)]


# ---------------------------------------------------------------------------
# Truth, cues and SNR


def test_truth_events_and_metadata():
    sc = default_session(n_channels=2)
    rec = simulate(sc, 500, seed=9)
    assert rec.data.shape == (2, 30000)
    assert rec.info.units == "uV" and rec.info.source == "simulator"
    assert rec.info.ch_names == ("ch1", "ch2")
    assert rec.info.extra["seed"] == 9 and rec.info.extra["scenario"]["duration_s"] == 60.0
    onsets = [e.onset_s for e in rec.events]
    assert onsets == sorted(onsets)
    contractions = [e for e in rec.events if e.kind == "contraction"]
    assert {e.channel for e in contractions} == {"ch1", "ch2"}
    assert all(e.extra["cued"] and e.peak == 60.0 for e in contractions)
    spasms = [e for e in rec.events if e.kind == "spasm"]
    assert spasms and all(not e.extra["cued"] and e.peak == 40.0 for e in spasms)


def test_default_session_script():
    sc = default_session()
    script = [(e.kind, e.onset_s, e.duration_s) for e in sc.events]
    assert script[0] == ("contraction", 10.0, 4.0)  # 10 s of rest first
    kinds = [k for k, _, _ in script]
    assert kinds.count("cramp") == 1 and script[-1][0] == "cramp" and script[-1][2] >= 5
    assert 3 <= kinds.count("contraction") and 2 <= kinds.count("spasm")
    assert all(3.0 <= d <= 5.0 for k, _, d in script if k == "contraction")
    assert all(0.2 <= d <= 1.5 for k, _, d in script if k == "spasm")
    cued = [(e.onset_s, e.offset_s) for e in sc.events if e.cued]
    for e in sc.events:
        if e.kind == "spasm":  # during rest, not during a cue
            assert not any(a <= e.onset_s < b or a < e.offset_s <= b for a, b in cued)
    longer = default_session(300.0)
    assert longer.duration_s == 300.0 and len(longer.events) > len(sc.events)


def test_relax_with_spasms_script():
    sc = relax_with_spasms(120.0, n_spasms=6, n_channels=2)
    assert [e.kind for e in sc.events] == ["spasm"] * 6
    assert all(10.0 <= e.onset_s and e.offset_s <= 115.0 for e in sc.events)
    assert {e.channels for e in sc.events} == {(0,), (1,)}
    assert not any(e.cued for e in sc.events)


@pytest.mark.parametrize("fs", [250, 2000])
def test_cues_align_with_cued_contractions(fs):
    sc = Scenario(8.0, events=(ScriptedEvent("contraction", 1.0, 2.5),
                               ScriptedEvent("spasm", 4.0, 0.5),
                               ScriptedEvent("contraction", 5.0, 2.0, cued=False),
                               ScriptedEvent("contraction", 5.5, 2.0)))
    rec = simulate(sc, fs)
    t = times(rec)
    expected = ((t >= 1.0) & (t < 3.5)) | ((t >= 5.5) & (t < 7.5))
    np.testing.assert_array_equal(rec.cues == "contract", expected)
    assert set(np.unique(rec.cues)) == {"contract", "rest"}


@pytest.mark.parametrize("snr_db", [0.0, 6.0, 20.0])
def test_with_snr_gives_the_requested_ratio(snr_db):
    sc = contraction_cycles(4, on_s=4.0, off_s=4.0, lead_rest_s=4.0).with_snr(snr_db)
    expected_amp = math.hypot(3.0, 1.0) * 10 ** (snr_db / 20)
    assert all(e.amplitude == pytest.approx(expected_amp) for e in sc.events)
    rec = simulate(sc, 1000, seed=11)
    x = rec.data[0]
    plateau = np.zeros(rec.n_samples, dtype=bool)
    for e in sc.events:
        plateau |= span(rec, e.onset_s + 0.5, e.offset_s - 0.5)
    rest = ~np.zeros(rec.n_samples, dtype=bool)
    for e in sc.events:
        rest &= ~span(rec, e.onset_s - 0.5, e.offset_s + 0.5)
    p_plateau, p_rest = np.mean(x[plateau] ** 2), np.mean(x[rest] ** 2)
    measured = 10 * np.log10((p_plateau - p_rest) / p_rest)
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_scripted_event_defaults():
    c = ScriptedEvent("contraction", 1.0, 3.0)
    s = ScriptedEvent("spasm", 1.0, 0.3, channels=None)
    assert c.cued and not s.cued and c.channels == (0,)
    assert c.ramp_s > s.ramp_s > 0
    rec = simulate(Scenario(5.0, n_channels=3, events=(s,)), 200)
    assert [e.channel for e in rec.events] == ["ch1", "ch2", "ch3"]


# ---------------------------------------------------------------------------
# Bad parameters

SC = Scenario(10.0)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: simulate(SC, 0), "fs"),
        (lambda: simulate(SC, -250.0), "fs"),
        (lambda: simulate(SC, "fast"), "fs"),
        (lambda: simulate(SC, 1000, seed=-1), "seed"),
        (lambda: ScriptedEvent("yawn", 0.0, 1.0), "kind"),
        (lambda: ScriptedEvent("contraction", 1.0, -2.0), "duration_s"),
        (lambda: ScriptedEvent("contraction", -1.0, 2.0), "onset_s"),
        (lambda: ScriptedEvent("contraction", 1.0, 2.0, ramp_s=-0.1), "ramp_s"),
        (lambda: ScriptedEvent("contraction", 1.0, 2.0, amplitude=-5), "amplitude"),
        (lambda: ScriptedEvent("contraction", 1.0, 2.0, channels=(-1,)), "channels"),
        (lambda: ScriptedEvent("spasm", 1.0, 0.5, cued=True), "cued"),
        (lambda: Scenario(10.0, events=(ScriptedEvent("contraction", 8.0, 5.0),)), "events[0]"),
        (lambda: Scenario(10.0, events=(ScriptedEvent("spasm", 1.0, 0.5, channels=(1,)),)), "events[0].channels"),
        (lambda: Scenario(-3.0), "duration_s"),
        (lambda: Scenario(10.0, n_channels=0), "n_channels"),
        (lambda: Scenario(10.0, rest_rms_uv=-1.0), "rest_rms_uv"),
        (lambda: Scenario(10.0, ecg_bpm=1000), "ecg_bpm"),
        (lambda: Scenario(10.0, saturation_uv=0.0), "saturation_uv"),
        (lambda: Scenario(10.0, electrode_off=((5.0, 3.0),)), "electrode_off[0]"),
        (lambda: Scenario(10.0, electrode_off=((5.0, 30.0),)), "electrode_off[0]"),
        (lambda: SC.with_snr(float("nan")), "snr_db"),
        (lambda: Scenario(10.0, rest_rms_uv=0.0, noise_rms_uv=0.0).with_snr(10), "rest_rms_uv"),
        (lambda: SimulatorSource(SC, 1000, chunk_s=0.0), "chunk_s"),
        (lambda: SimulatorSource(SC, 1000, speed=-1.0), "speed"),
        (lambda: SimulatorSource(SC, 0), "fs"),
        (lambda: default_session(10.0), "duration_s"),
        (lambda: contraction_cycles(0), "n"),
        (lambda: relax_with_spasms(20.0, n_spasms=20), "duration_s"),
    ],
)
def test_bad_parameters_raise_parameter_error_naming_them(make, name):
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.name.startswith(name)
    assert "expected" in str(err.value) and "found" in str(err.value)
