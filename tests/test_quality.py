"""Signal-quality flags against the simulator's true artefacts."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_recording
from biofeedback.cli import main
from biofeedback.core.types import Recording, StreamInfo
from biofeedback.detect.classify import ACTIVATION_KINDS
from biofeedback.detect.quality import QualitySettings, assess_quality
from biofeedback.io.csv_io import read_csv
from biofeedback.sources.simulator import contraction_cycles, default_session, simulate

WINDOW = QualitySettings().window_s


def spans_of(events, kind, channel="ch1"):
    return [(e.onset_s, e.offset_s) for e in events if e.kind == kind and e.channel == channel]


def activations(result, channel="ch1"):
    return [e for e in result.events if e.kind in ACTIVATION_KINDS and e.channel == channel]


def covered(spans, start, stop):
    """Seconds of [start, stop) inside the spans."""
    return sum(max(0.0, min(b, stop) - max(a, start)) for a, b in spans)


def test_electrode_off_is_flagged_and_its_artefacts_dropped():
    scenario = contraction_cycles(4, on_s=4.0, off_s=6.0, electrode_off=((22.0, 26.0),), dc_offset_uv=300.0)
    rec = simulate(scenario, 1000.0, seed=1)
    result = analyze_recording(rec)
    off = spans_of(result.events, "electrode_off")
    assert len(off) == 1
    assert off[0][0] == pytest.approx(22.0, abs=WINDOW) and off[0][1] == pytest.approx(26.0, abs=WINDOW)
    # Contractions away from it are found; nothing is reported across it.
    onsets = [round(e.onset_s) for e in activations(result)]
    assert onsets == [10, 30, 40]
    assert result.dropped["ch1"] >= 1
    # The flat span is not taken as the quietest "rest".
    clean = analyze_recording(simulate(contraction_cycles(4, on_s=4.0, off_s=6.0, dc_offset_uv=300.0), 1000.0, seed=1))
    assert result.baseline.level[0] == pytest.approx(clean.baseline.level[0], rel=0.1)


def test_saturation_is_flagged_where_the_signal_clips_and_contractions_are_kept():
    rec = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0, saturation_uv=90.0), 1000.0, seed=1)
    truth = [(e.onset_s, e.offset_s) for e in rec.events if e.kind == "saturation"]
    result = analyze_recording(rec)
    flagged = spans_of(result.events, "saturation")
    assert flagged and truth
    for a, b in flagged:  # every flagged span is where clipping happened
        assert covered(truth, a, b) > 0.5 * (b - a)
    for k in range(3):  # each contraction clips heavily and is flagged
        assert covered(flagged, 10.0 + 10 * k, 14.0 + 10 * k) >= 3.0
    found = activations(result)
    assert len(found) == 3
    assert all(e.extra.get("quality") == "saturation" for e in found)


def test_known_adc_range_is_used():
    rec = simulate(contraction_cycles(2, on_s=4.0, off_s=6.0, saturation_uv=90.0), 1000.0, seed=1)
    report = assess_quality(rec.data, rec.info, QualitySettings(rails=(-90.0, 90.0)))
    assert report.rails[0] == (-90.0, 90.0)
    assert covered(report.spans["saturation"][0], 10000, 14000) >= 3000


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_strong_mains_is_flagged_and_weak_mains_is_not(mains_hz):
    strong = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0, mains_hz=mains_hz, mains_uv=40.0), 1000.0, seed=1)
    result = analyze_recording(strong)
    flagged = spans_of(result.events, "mains")
    rest = [(0.0, 10.0), (14.0, 20.0), (24.0, 30.0), (34.0, 40.0)]
    assert sum(covered(flagged, a + 0.5, b - 0.5) for a, b in rest) > 0.9 * sum(b - a - 1.0 for a, b in rest)
    assert len(activations(result)) == 3
    weak = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0, mains_hz=mains_hz, mains_uv=2.0), 1000.0, seed=1)
    assert not spans_of(analyze_recording(weak).events, "mains")


def with_pops(rec, starts, channel=0):
    """A copy of the recording's samples with an electrode pop at each start (s): 5 ms rise, 150 ms decay, 400 uV."""
    data = rec.data.copy()
    t = np.arange(data.shape[1]) / rec.info.fs
    for start in starts:
        after = np.clip(t - start, 0.0, None)
        data[channel] += np.where(t >= start, 400.0 * (1 - np.exp(-after / 0.005)) * np.exp(-after / 0.15), 0.0)
    return data


def test_motion_artefacts_are_flagged_and_what_they_trigger_is_dropped():
    fs = 1000.0
    rec = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0), fs, seed=2)
    bumps = (17.0, 27.3)  # during rests
    data = with_pops(rec, bumps)
    result = analyze_recording(Recording(data, rec.info, cues=rec.cues))
    flagged = spans_of(result.events, "motion")
    assert len(flagged) == len(bumps)
    for (a, b), start in zip(flagged, bumps):
        assert a <= start + 0.3 and b >= start and b - a <= 1.5
    assert [round(e.onset_s) for e in activations(result)] == [10, 20, 30]
    # Without the quality check, the movements pass as activity.
    unchecked = analyze_recording(Recording(data, rec.info, cues=rec.cues), quality=False)
    assert len(activations(unchecked)) > 3


@pytest.mark.parametrize("fs", [250.0, 1000.0, 2000.0])
def test_heartbeat_contamination_is_flagged_with_its_rate(fs):
    # Beats are looked for at about 250 Hz whatever the rate (decimated above 500 Hz).
    coverage = []
    for seed in (3, 4, 5):
        rec = simulate(default_session(40.0, ecg_bpm=72.0, ecg_uv=40.0), fs, seed=seed)
        report = assess_quality(rec.data, rec.info)
        coverage.append(covered(report.spans["ecg"][0], 0, rec.n_samples) / fs)
        assert report.ecg_bpm[0] == pytest.approx(72.0, abs=4.0)
    # Beats hidden in the strong contractions and the cramp may break the
    # span (on one seed in three, 14-16 s lost); most is flagged.
    assert np.mean(coverage) > 0.7 * 40.0 and min(coverage) > 0.5 * 40.0


def test_clean_signals_raise_no_flag(sample_data):
    rec = simulate(default_session(60.0, n_channels=2), 1000.0, seed=1)
    assert assess_quality(rec.data, rec.info).events() == []
    myo = read_csv(sample_data / "myo_wrist_flexion_200hz.txt", fs=200, channels="!8")
    report = assess_quality(myo.data, myo.info)
    assert report.events() == [] and all(s.ok for s in report.status)


@pytest.mark.parametrize("fs", [500.0, 1100.0])  # 1100 Hz: windows of 550 samples, decimation by 4
def test_quality_does_not_depend_on_chunking(fs):
    rec = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0, saturation_uv=90.0, mains_hz=50.0, mains_uv=30.0,
                                      electrode_off=((34.5, 36.5),), ecg_bpm=80.0), fs, seed=4)
    data = with_pops(rec, (17.0,))
    reports = [assess_quality(data, rec.info, chunk_size=size) for size in (rec.n_samples, 37, 500)]
    assert reports[0].spans["ecg"][0] and reports[0].spans["motion"][0]
    for other in reports[1:]:
        assert other.spans == reports[0].spans
        assert other.rails == reports[0].rails


@pytest.mark.parametrize("fs", [1000.0, 1100.0, 2048.0])
def test_movement_band_from_the_decimated_copy_is_the_full_rate_band(fs):
    """The 1-10 Hz RMS per window, computed at about 250 Hz, follows that of the band filtered at the full
    rate, window by window."""
    from scipy import signal

    from biofeedback.detect.quality import QualityMonitor

    rec = simulate(contraction_cycles(2, on_s=3.0, off_s=3.0), fs, seed=2)
    data = with_pops(rec, (4.0, 7.3))
    monitor = QualityMonitor(rec.info)
    for start in range(0, data.shape[1], 1000):
        monitor.update(data[:, start:start + 1000], start)
    got = np.concatenate([part["lf"] for part in monitor._features], axis=1)[0]
    w = monitor.window
    sos = signal.butter(2, (1.0, 10.0), "bandpass", output="sos", fs=fs)
    band, _ = signal.sosfilt(sos, data[0], zi=signal.sosfilt_zi(sos) * data[0, 0])
    k = got.size
    want = np.sqrt(np.mean(band[:k * w].reshape(k, w) ** 2, axis=1))
    assert monitor._low.factor > 1
    # After the filters' first second, within 15 %: the anti-alias filter's 8-10 ms delay moves some of
    # the band across window edges, and it cuts the EMG that leaks through the band-pass's skirts above
    # 50 Hz (the decimated band is 4-6 % lower during contractions). Where the band is the movement
    # (the pops) the two agree within 3 %, and what the motion check decides is the same.
    got, want = got[2:], want[2:]
    np.testing.assert_allclose(got, want, rtol=0.15)
    strong = want > 0.1 * want.max()
    np.testing.assert_allclose(got[strong], want[strong], rtol=0.03)
    assert np.array_equal(got > 4 * np.median(got), want > 4 * np.median(want))


def write_two_channels(path, good, bad):
    with open(path, "w", newline="") as handle:
        handle.write("# sampling_rate_hz: 1000\n# units: uV\nch1,ch2\n")
        np.savetxt(handle, np.column_stack([good, bad]), delimiter=",", fmt="%.4f")


@pytest.mark.parametrize("problem, words", [("flat", ("flat", "re-place the electrode")),
                                            ("saturated", ("saturated", "re-place the electrode"))])
def test_a_flat_or_saturated_channel_is_reported_and_not_analysed(tmp_path, capsys, problem, words):
    rec = simulate(contraction_cycles(3, on_s=4.0, off_s=6.0, n_channels=2), 1000.0, seed=5)
    good = rec.data[0]
    if problem == "flat":
        bad = np.full(rec.n_samples, 512.0)
    else:
        bad = np.clip(rec.data[1] * 50.0, -20.0, 20.0)  # amplifier far past its range
    path = tmp_path / "rec.csv"
    write_two_channels(path, good, bad)
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ch2" in err[0] and all(w in err[0] for w in words), err
    with open(out / "events.csv", newline="") as handle:
        events = list(csv.DictReader(handle))
    assert not [e for e in events if e["channel"] == "ch2" and e["kind"] in ACTIVATION_KINDS]
    assert len([e for e in events if e["channel"] == "ch1" and e["kind"] in ACTIVATION_KINDS]) == 3
    with open(out / "summary.csv", newline="") as handle:
        summary = {row["channel"]: row for row in csv.DictReader(handle)}
    assert summary["ch2"]["status"] == "not analysed" and words[0] in summary["ch2"]["status_reason"]
    assert summary["ch1"]["status"] == "ok"


def test_constant_channels_are_flat_in_any_units():
    info = StreamInfo.default_names(2, 250.0, units="a.u.")
    rng = np.random.default_rng(0)
    data = np.vstack([rng.normal(size=5000), np.zeros(5000)])
    report = assess_quality(data, info)
    assert [s.status for s in report.status] == ["ok", "flat"]


# -- rail features: the second extreme only where it can matter -------------------------------------------------
class _AllWindowsMonitor:
    """Reference for the rail features: the second extreme and its count of every window."""

    @staticmethod
    def features(x):
        out = {}
        for side, sign in (("max", 1), ("min", -1)):
            v = x.max(axis=2) if sign > 0 else x.min(axis=2)
            at = x == v[:, :, None]
            inner = np.where(at, -np.inf, x).max(axis=2) if sign > 0 else np.where(at, np.inf, x).min(axis=2)
            out[side] = (v, at.sum(axis=2), inner, (x == inner[:, :, None]).sum(axis=2))
        return out


def _clipped_signals():
    rng = np.random.default_rng(5)
    fs = 1000.0
    x = 40.0 * rng.standard_normal((4, 23_000))
    x[0] = np.clip(x[0], -60.0, 60.0)  # clipped at both rails
    x[1, 5000:9000] = x[1].max()  # stuck at its maximum for 4 s
    x[2] = np.round(x[2] / 10.0) * 10.0  # coarse codes: many ties at the extremes, no rail
    x[3, 20_000:] = 0.0  # goes flat at the end
    return x, StreamInfo.default_names(4, fs)


@pytest.mark.parametrize("chunk", [1000, 333, 23_000])
def test_rails_found_from_the_running_extreme_equal_those_from_every_window(chunk):
    from biofeedback.detect.quality import QualityMonitor, _rail

    x, info = _clipped_signals()
    report = assess_quality(x, info, chunk_size=chunk)
    monitor = QualityMonitor(info)
    w = monitor.window
    k = x.shape[1] // w
    ref = _AllWindowsMonitor.features(x[:, :k * w].reshape(4, k, w))
    rails = []
    for ch in range(4):
        hi = _rail(*(a[ch] for a in ref["max"]), +1)[0]
        lo = _rail(*(a[ch] for a in ref["min"]), -1)[0]
        rails.append((lo, hi))
    assert report.rails == rails
    assert report.rails[0] == (-60.0, 60.0) and report.rails[1][1] == x[1].max() and report.rails[2] == (None, None)
    assert report.spans["saturation"][0] and report.spans["saturation"][1]
    assert report.spans == assess_quality(x, info, chunk_size=7919).spans


@pytest.mark.parametrize("mains_hz", [50.0, None])
def test_window_std_and_mains_features_equal_the_numpy_formulation(mains_hz):
    """The deviations are computed once for the standard deviation and the mains check: the same numbers
    as ``x.std`` and as centring again for the spectrum."""
    from biofeedback.detect.quality import QualityMonitor
    from biofeedback.dsp.filters import mains_harmonics

    rec = simulate(contraction_cycles(2, on_s=2.0, off_s=3.0, mains_hz=50.0, mains_uv=30.0), 1000.0, seed=5)
    monitor = QualityMonitor(rec.info, mains_hz=mains_hz)
    w = monitor.window
    x = rec.data[:, :(rec.n_samples // w) * w]
    monitor.update(x, 0)  # one chunk of whole windows: one call of _add_windows
    assert len(monitor._features) == 1
    windows = x.reshape(x.shape[0], -1, w)
    feats = monitor._features[0]
    np.testing.assert_array_equal(feats["std"], windows.std(axis=2))
    centred = windows - windows.mean(axis=2, keepdims=True)
    spectrum = np.fft.rfft(centred * np.hanning(w), axis=2)
    power = spectrum.real ** 2 + spectrum.imag ** 2  # |X|^2 without the square root of np.abs
    freqs = np.fft.rfftfreq(w, 1.0 / rec.info.fs)
    band = (freqs >= 20.0) & (freqs <= 450.0)
    ratios = []
    for family in ([mains_hz] if mains_hz else [50.0, 60.0]):
        near = np.zeros(freqs.shape, dtype=bool)
        for f0 in mains_harmonics(family, rec.info.fs, 0.9):
            if 20.0 <= f0 <= 450.0:
                near |= np.abs(freqs - f0) <= 1.0 + rec.info.fs / w / 2
        ratios.append(power[:, :, near & band].sum(axis=2) / np.maximum(power[:, :, band & ~near].sum(axis=2), 1e-300))
    np.testing.assert_array_equal(feats["mains"], np.max(ratios, axis=0))
    assert feats["mains"].max() > 1.0
