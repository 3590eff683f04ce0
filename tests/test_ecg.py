"""Heartbeat suppression, on the real ECG-contaminated recording and on simulated ECG.

The real file (emgGO ``ECG Contaminated.mat``: 2048 Hz, 8 channels, heartbeats
at about 104 bpm, about ten muscle bursts) has no labels; its SOURCE.md lists
the bursts at about 1.3, 4.0, 5.6, 7.3, 9.3, 11.1, 12.8, 14.7, 16.7 and 18.4 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import io as sio

from biofeedback.analysis.batch import analyze_recording
from biofeedback.core.types import Chunk, Recording, StreamInfo
from biofeedback.detect import Baseline
from biofeedback.detect.classify import ACTIVATION_KINDS
from biofeedback.detect.ecg import BeatDetector, ECGSettings, ECGSuppressor, regular_runs
from biofeedback.dsp import PipelineSettings, build_pipeline, process_array
from biofeedback.errors import ParameterError
from biofeedback.sources.simulator import relax_with_spasms, simulate

BURSTS = (1.3, 4.0, 5.6, 7.3, 9.3, 11.1, 12.8, 14.7, 16.7, 18.4)
# A detection belongs to a burst when its onset lies in [t - 0.3, t + 0.8]:
# the listed times are rough (read off the envelope), and onsets sit where
# the envelope clearly rises.
EARLY, LATE = 0.3, 0.8
ECG_CHANNELS = ("ch4", "ch5", "ch6", "ch7")


@pytest.fixture(scope="module")
def ecg_file(shared_data):
    path = shared_data / "emggo" / "ECG Contaminated.mat"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    mat = sio.loadmat(path, squeeze_me=True, struct_as_record=False)
    data = np.asarray(mat["EMG"].channelData, dtype=float).T
    info = StreamInfo.default_names(data.shape[0], float(mat["EMG"].fs), units="mV", source=str(path))
    return Recording(data, info)


def activations(result, channel):
    return sorted((e for e in result.events if e.channel == channel and e.kind in ACTIVATION_KINDS),
                  key=lambda e: e.onset_s)


def burst_of(event):
    """Index of the listed burst the event starts in, or None."""
    for k, t in enumerate(BURSTS):
        if t - EARLY <= event.onset_s <= t + LATE:
            return k
    return None


@pytest.mark.parametrize("preset", ["pelvic", "trunk"])
def test_real_ecg_file_bursts_found_without_heartbeat_detections(ecg_file, preset):
    result = analyze_recording(ecg_file, PipelineSettings(preset=preset))
    assert result.heartbeats_removed is not None
    for name in ecg_file.info.ch_names:
        found = activations(result, name)
        # Nothing outside the muscle bursts: no detection is a heartbeat.
        stray = [(round(e.onset_s, 2), round(e.duration_s, 2)) for e in found if burst_of(e) is None]
        assert not stray, (name, stray)
        assert all(e.duration_s < 1.5 for e in found), name  # bursts are not merged by beats
    for name in ECG_CHANNELS:
        found = activations(result, name)
        # Each burst exactly once.
        assert sorted(burst_of(e) for e in found) == list(range(len(BURSTS))), (
            name, [(round(e.onset_s, 2), round(e.offset_s, 2)) for e in found])
        ch = ecg_file.info.ch_names.index(name)
        assert result.heartbeats_removed[ch] >= 28  # of about 34 beats
    # The quality check reports the contamination and its rate.
    for name in ECG_CHANNELS:
        spans = [e for e in result.events if e.channel == name and e.kind == "ecg"]
        assert spans and sum(e.duration_s for e in spans) > 15.0
        assert 95.0 <= spans[0].extra["bpm"] <= 115.0


def test_real_ecg_file_without_suppression_shows_the_heartbeats(ecg_file):
    """The same file through the default 20 Hz band and no suppression: the
    heartbeats keep the envelope up and merge bursts into long detections or
    start detections of their own (what the suppression is for)."""
    result = analyze_recording(ecg_file, PipelineSettings(ecg="off"))
    assert result.heartbeats_removed is None
    spoiled = 0
    for name in ECG_CHANNELS:
        found = activations(result, name)
        spoiled += sum(1 for e in found if burst_of(e) is None or e.duration_s > 3.0)
    assert spoiled >= len(ECG_CHANNELS)


def test_beat_detector_finds_the_heart_rate_of_the_real_file(ecg_file):
    info = ecg_file.info
    detector = BeatDetector(info.fs, info.n_channels)
    size = int(0.05 * info.fs)
    for start in range(0, ecg_file.n_samples, size):
        detector.update(ecg_file.data[:, start:start + size], start)
    ch = info.ch_names.index("ch5")
    beats = np.array(detector.beats[ch]) / info.fs
    # After the 2 s learning period, one beat every ~0.58 s.
    assert 28 <= beats.size <= 33
    assert np.median(np.diff(beats)) == pytest.approx(60 / 104, rel=0.06)
    runs = regular_runs(detector.beats[ch], info.fs, similar=detector.similar[ch])
    assert runs and 95 <= runs[0][2] <= 115


# -- simulated ECG ------------------------------------------------------------------------------
def spasm_scenario(bpm, ecg_uv):
    return relax_with_spasms(60.0, n_spasms=6, spasm_durations_s=(0.3, 0.5, 1.0, 1.5), ecg_bpm=bpm, ecg_uv=ecg_uv)


def matched(result, truth, tol=0.15):
    found = activations(result, "ch1")
    hits = sum(1 for t in truth if any(abs(e.onset_s - t.onset_s) <= tol for e in found))
    extra = [round(e.onset_s, 2) for e in found if not any(abs(e.onset_s - t.onset_s) <= tol for t in truth)]
    return hits, extra


@pytest.mark.parametrize("fs", [250.0, 1000.0, 2000.0])
@pytest.mark.parametrize("bpm, ecg_uv", [(70.0, 50.0), (110.0, 100.0)])
def test_simulated_heartbeats_are_suppressed_and_spasms_kept(fs, bpm, ecg_uv):
    rec = simulate(spasm_scenario(bpm, ecg_uv), fs, seed=3)
    truth = [e for e in rec.events if e.kind == "spasm"]
    result = analyze_recording(rec, PipelineSettings(ecg="on"))
    hits, extra = matched(result, truth)
    assert (hits, extra) == (len(truth), [])
    beats_expected = bpm * 60.0 / 60.0
    assert result.heartbeats_removed[0] >= 0.85 * beats_expected


@pytest.mark.parametrize("bpm, ecg_uv", [(70.0, 50.0), (110.0, 100.0)])
def test_simulated_heartbeats_spoil_detection_without_suppression(bpm, ecg_uv):
    """The contrast: the default 20 Hz band alone lets these beats through
    (detected as twitches, or keeping the envelope up for good)."""
    rec = simulate(spasm_scenario(bpm, ecg_uv), 1000.0, seed=3)
    truth = [e for e in rec.events if e.kind == "spasm"]
    hits, extra = matched(analyze_recording(rec, PipelineSettings(ecg="off")), truth)
    assert hits < len(truth) or extra


def test_suppression_changes_nothing_without_a_heart_and_keeps_raw_times():
    """No ECG: the suppressor subtracts nothing, and its output delay is
    dated back exactly, so the events equal those without it."""
    rec = simulate(relax_with_spasms(40.0, n_spasms=4), 1000.0, seed=5)
    on = analyze_recording(rec, PipelineSettings(ecg="on"))
    off = analyze_recording(rec, PipelineSettings(ecg="off"))
    assert on.delay_samples == round(ECGSettings().delay_s * 1000.0) and off.delay_samples == 0
    assert on.heartbeats_removed[0] == 0
    key = [(e.kind, e.onset_s, e.offset_s) for e in activations(on, "ch1")]
    other = [(e.kind, e.onset_s, e.offset_s) for e in activations(off, "ch1")]
    assert key and [k[0] for k in key] == [k[0] for k in other]
    # Equal up to one sample: the moving RMS of the delayed signal is summed
    # from other positions, so a threshold crossing may move by a rounding.
    assert np.allclose([k[1:] for k in key], [k[1:] for k in other], rtol=0, atol=1.0 / 1000.0 + 1e-9)


@pytest.mark.parametrize("sizes", [(1,), (7, 64, 3), (333,)])
def test_suppressor_output_and_events_do_not_depend_on_chunking(sizes):
    fs = 500.0
    rec = simulate(relax_with_spasms(16.0, n_spasms=2, lead_rest_s=4.0, tail_rest_s=2.0,
                                     ecg_bpm=90.0, ecg_uv=60.0), fs, seed=2)
    info = rec.info
    settings = PipelineSettings(ecg="on", mains="off")
    baseline = Baseline([3.0], [0.3])

    def run(chunk_sizes):
        pipe = build_pipeline(settings, info, baseline=baseline, ecg_prime=rec.data[:, :int(4 * fs)])
        env, events, start, k = [], [], 0, 0
        while start < rec.n_samples:
            size = chunk_sizes[k % len(chunk_sizes)]
            out = pipe.process(Chunk(rec.data[:, start:start + size], start, info))
            env.append(out.data)
            events.extend(out.events)
            start += size
            k += 1
        events.extend(pipe.stages[-1].flush())
        return np.concatenate(env, axis=1), sorted((e.kind, e.onset_s, e.offset_s) for e in events)

    ref_env, ref_events = run((rec.n_samples,))
    env, events = run(sizes)
    np.testing.assert_allclose(env, ref_env, rtol=1e-9, atol=1e-9 * np.abs(ref_env).max())
    assert events == ref_events and len(ref_events) == 2


def test_pipeline_with_suppression_keeps_the_filters_findable():
    from biofeedback.dsp import BandPass

    info = StreamInfo.default_names(1, 1000.0)
    pipe = build_pipeline(PipelineSettings(preset="pelvic"), info, detect=False)
    assert isinstance(pipe.stages[0], ECGSuppressor) and pipe.stages[0].name == "filtered"
    assert pipe.find(BandPass).low_hz == 30.0
    env, filt, _ = process_array(pipe, np.zeros((1, 2000)), info)
    assert env.shape == filt.shape == (1, 2000)
    assert not PipelineSettings().ecg_enabled() and PipelineSettings(preset="trunk").ecg_enabled()
    with pytest.raises(ParameterError, match="ecg"):
        PipelineSettings(ecg="maybe")


def test_auto_turns_suppression_on_when_the_first_seconds_show_a_heartbeat(ecg_file):
    """``ecg="auto"`` with the default preset: the probe finds the rhythm."""
    result = analyze_recording(ecg_file, PipelineSettings())
    assert result.heartbeats_removed is not None and "heart rhythm was found" in result.ecg_note
    for name in ECG_CHANNELS:
        assert sorted(burst_of(e) for e in activations(result, name)) == list(range(len(BURSTS)))
    clean = analyze_recording(simulate(relax_with_spasms(30.0, n_spasms=2), 1000.0, seed=1))
    assert clean.heartbeats_removed is None and clean.ecg_note == "heartbeat suppression: off"
    beating = analyze_recording(simulate(spasm_scenario(70.0, 50.0), 1000.0, seed=3))
    assert beating.heartbeats_removed is not None


# -- vectorised beat detection against the block-by-block walk -------------------------------------------------
class _BlockByBlockDetector(BeatDetector):
    """Reference: the noise floor updated one 0.25 s block at a time (one median and one percentile per
    block), the energy walked block piece by block piece with a scalar threshold, and every beat's shape
    compared on its own."""

    def update(self, raw, first_sample):
        raw = np.asarray(raw, dtype=float)
        new = [[] for _ in range(self.n_channels)]
        band, energy = self._filter(raw)
        self.band, self.energy = band, energy
        n = energy.shape[1]
        lo, hi = max(first_sample, self.block), min(first_sample + n, self.learn)
        if hi > lo:
            part = energy[:, lo - first_sample:hi - first_sample].max(axis=1)
            for ch in range(self.n_channels):
                self._states[ch].learn_max = max(self._states[ch].learn_max, float(part[ch]))
        pos = 0
        while pos < n:
            stop = min(n, pos + self.block - ((first_sample + pos) % self.block))
            begin = max(pos, self.learn - first_sample)
            if begin < stop:
                for ch in range(self.n_channels):
                    st = self._states[ch]
                    level = st.level if st.peaks else st.learn_max
                    theta = max(self.settings.peak_fraction * level, self.settings.noise_factor * float(self.noise[ch]))
                    self._walk(ch, energy[ch, :stop], first_sample, begin, theta, new[ch])
            self._block_noise(energy[:, pos:stop])
            pos = stop
        ext = np.concatenate([self._hist, band], axis=1)
        ext_start = first_sample - self._hist.shape[1]
        for ch in range(self.n_channels):
            for beat in new[ch]:
                self.similar[ch].append(self._one_shape(ch, ext[ch], ext_start, beat))
            self.beats[ch].extend(new[ch])
        self._hist = ext[:, -self._hist.shape[1]:]
        return new

    def _block_noise(self, energy):
        pos = 0
        while pos < energy.shape[1]:
            take = min(energy.shape[1] - pos, self.block - self._block_fill)
            self._block_parts.append(energy[:, pos:pos + take])
            self._block_fill += take
            pos += take
            if self._block_fill == self.block:
                self._block_medians = (self._block_medians + [np.median(np.concatenate(self._block_parts, axis=1),
                                                                         axis=1)])[-8:]
                self.noise = np.percentile(np.array(self._block_medians), 25, axis=0)
                self._block_parts, self._block_fill = [], 0

    def _walk(self, ch, e, first, pos, theta, out):
        from biofeedback.detect.ecg import IN, OUT, SKIP

        st = self._states[ch]
        n = e.shape[0]
        while pos < n:
            if st.mode == OUT:
                ready = max(pos, st.last_beat + self.refractory - first)
                hits = np.flatnonzero(e[ready:] > theta) if ready < n else []
                if len(hits) == 0:
                    return
                i = ready + hits[0]
                st.mode, st.run_start, st.best, st.best_val = IN, first + i, first + i, float(e[i])
                pos = i
            elif st.mode == IN:
                end_local = st.run_start + self.max_run + 1 - first
                limit = min(n, end_local)
                drops = np.flatnonzero(e[pos:limit] <= theta)
                stop = pos + drops[0] if drops.size else limit
                if stop > pos and e[pos + int(np.argmax(e[pos:stop]))] > st.best_val:
                    k = int(np.argmax(e[pos:stop]))
                    st.best_val, st.best = float(e[pos + k]), first + pos + k
                if drops.size:
                    out.append(st.best)
                    st.last_beat = st.best
                    st.peaks = (st.peaks + [st.best_val])[-self.settings.history:]
                    st.level = float(np.median(st.peaks))
                    st.mode, pos = OUT, stop
                    level = st.level
                    theta = max(self.settings.peak_fraction * level, self.settings.noise_factor * float(self.noise[ch]))
                elif limit >= end_local:
                    st.mode, pos = SKIP, limit
                else:
                    return
            else:
                drops = np.flatnonzero(e[pos:] <= theta)
                if drops.size == 0:
                    return
                st.mode, pos = OUT, pos + drops[0]

    def _one_shape(self, ch, ext, ext_start, beat):
        from biofeedback.detect.ecg import _best_correlation

        lo = beat + 1 - self.shape_len - ext_start
        if lo < 0:
            return False
        seg = ext[lo:lo + self.shape_len]
        shapes = self._shapes[ch]
        similar = False
        if len(shapes) >= 3:
            shift = min(max(1, int(round(0.01 * self.fs))), (len(seg) - 2) // 4)
            similar = _best_correlation(seg, np.median(np.array(shapes), axis=0), shift)[0] >= 0.7
        self._learn_shape(ch, seg, similar)
        return similar


def _beats_of(cls, raw, fs, sizes, prime=None, settings=None):
    detector = cls(fs, raw.shape[0], settings)
    if prime is not None:
        primer = cls(fs, raw.shape[0], settings)
        primer.update(prime, 0)
        detector.adopt(primer)
    start, k = 0, 0
    while start < raw.shape[1]:
        detector.update(raw[:, start:start + sizes[k % len(sizes)]], start)
        start, k = start + sizes[k % len(sizes)], k + 1
    return detector


@pytest.mark.parametrize("fs", [250.0, 2000.0])
@pytest.mark.parametrize("sizes", [(1000,), (7, 640, 1, 2500), (16384,)])
def test_vectorised_beat_detection_equals_the_block_by_block_walk(fs, sizes):
    """Beats, shape flags and noise floor to the bit, on heartbeats with spasms (two channels: one with
    the heart, one with the spasms at another scale), with and without priming. The same chunks for
    both: the smoothed energy's running sum restarts per chunk, so its last bits depend on the chunking
    (the beats do not: compared across chunkings below)."""
    rec = simulate(relax_with_spasms(40.0, n_spasms=5, spasm_durations_s=(0.3, 1.0, 2.0), ecg_bpm=85.0,
                                     ecg_uv=60.0), fs, seed=7)
    raw = np.vstack([rec.data, 3.0 * rec.data[:, ::-1]])
    for prime in (None, raw[:, :int(10 * fs)]):
        ref = _beats_of(_BlockByBlockDetector, raw, fs, sizes, prime)
        new = _beats_of(BeatDetector, raw, fs, sizes, prime)
        assert sum(map(len, ref.beats)) > 40 and any(any(s) for s in ref.similar)
        assert new.beats == ref.beats and new.similar == ref.similar
        np.testing.assert_array_equal(new.noise, ref.noise)
        np.testing.assert_array_equal(np.array(new._block_medians), np.array(ref._block_medians))
        one_chunk = _beats_of(BeatDetector, raw, fs, (raw.shape[1],), prime)
        assert one_chunk.beats == new.beats and one_chunk.similar == new.similar


def test_batched_correlations_equal_one_at_a_time():
    """One template for all segments or one per segment, gathered from the windows of one signal: the
    values of _best_correlation segment by segment, to the bit (also a template's row on its own)."""
    from biofeedback.detect.ecg import _best_correlation, _SegmentComparer
    from biofeedback.dsp.stats import small_median

    rng = np.random.default_rng(3)
    template = np.sin(np.linspace(0, 6, 100)) + 0.1 * rng.normal(size=100)
    segs = template[None, :] * rng.uniform(0.5, 2, size=(30, 1)) + rng.normal(size=(30, 100)) * \
        np.linspace(0.01, 3, 30)[:, None]
    segs[3] = 0.0  # flat: correlation 0
    # The segments laid end to end in one signal, with gaps of other values between them.
    gap = 7
    signal = np.concatenate([np.concatenate([rng.normal(size=gap), seg]) for seg in segs])
    starts = gap + (100 + gap) * np.arange(30)
    templates = template[None, :] + 0.3 * rng.normal(size=(30, 100))
    templates[5] = 1.0  # flat template: correlation 0
    for shift in (0, 1, 10, 49):
        for group in (1, 4, 30):  # segments prepared in groups of this many
            comparer = _SegmentComparer(signal, starts, 100, shift)
            comparer.group = group

            def scores(j, k, templates):
                assert comparer.group_end(j) >= j + k  # a call stays within a group
                return comparer.best_correlations(j, k, comparer.prepare(templates))

            expected = [_best_correlation(seg, template, shift)[0] for seg in segs]
            got = np.concatenate([scores(j, min(30, j + group) - j, template) for j in range(0, 30, group)])
            np.testing.assert_array_equal(got, expected)
            expected = [_best_correlation(seg, t, shift)[0] for seg, t in zip(segs, templates)]
            got = np.concatenate([scores(j, min(30, j + group) - j, templates[j:j + group]) for j in range(0, 30, group)])
            np.testing.assert_array_equal(got, expected)
            # A few segments in the middle of a group, alone or together; one template of a stack on its own.
            for j, k in ((29, 1), (4, 1), (12, 3), (5, 1)):
                if comparer.group_end(j) >= j + k:
                    np.testing.assert_array_equal(scores(j, k, templates[j:j + k]), expected[j:j + k])
                    prepared = comparer.prepare(templates[j - 1:j + k])
                    single = [_best_correlation(seg, templates[j], shift)[0] for seg in segs[j:j + k]]
                    np.testing.assert_array_equal(comparer.best_correlations(j, k, prepared.row(1)), single)
    for n in range(1, 10):
        values = list(rng.normal(size=n))
        assert small_median(values) == float(np.median(values))


def test_run_templates_are_the_medians_of_the_sliding_history():
    from biofeedback.detect.ecg import _run_templates

    rng = np.random.default_rng(4)
    for history, k, m in ((8, 1, 100), (8, 2, 100), (8, 17, 200), (3, 5, 25), (1, 4, 30)):
        shapes = rng.normal(size=(history, m))
        segs = rng.normal(size=(k - 1, m))
        got = _run_templates(shapes, segs)
        assert got.shape == (k, m) and got.flags.c_contiguous
        stacked = list(shapes) + list(segs)
        for r in range(k):
            np.testing.assert_array_equal(got[r], np.median(np.array(stacked[r:r + history]), axis=0))


# -- one probe run shared by the heartbeat decision and the quality check ---------------------------------------
def _heartbeat_found_in_steps(raw, fs, min_beats=5):
    """``heartbeat_found`` as it was: its own detector, fed the probe in 1 s steps (decimated step by step)."""
    from biofeedback.detect.ecg import beat_decimator

    decimator = beat_decimator(fs)
    detector = BeatDetector(decimator.fs_out, raw.shape[0])
    step = max(1, int(round(fs)))
    for start in range(0, raw.shape[1], step):
        detector.update(*decimator.process(raw[:, start:start + step], start))
    bpm = []
    for beats, similar in zip(detector.beats, detector.similar):
        runs = regular_runs(beats, decimator.fs_out, min_beats=min_beats, similar=similar)
        bpm.append(float(np.median([r[2] for r in runs])) if runs else float("nan"))
    return detector, bool(np.any(np.isfinite(bpm))), bpm


def _probes(ecg_file):
    yield ecg_file.data[:, :int(10 * ecg_file.info.fs)], ecg_file.info.fs
    for scenario, fs, seed in ((spasm_scenario(70.0, 50.0), 1000.0, 3), (spasm_scenario(110.0, 30.0), 250.0, 5),
                               (relax_with_spasms(30.0, n_spasms=2), 1000.0, 1)):
        rec = simulate(scenario, fs, seed=seed)
        yield rec.data[:, :int(10 * fs)], fs


def test_probe_run_decides_the_heartbeat_as_the_stepped_run(ecg_file):
    """One detector call over the probe finds the beats and shapes of the 1 s steps heartbeat_found took,
    hence the same decision and rates, with and without the shared run passed in."""
    from biofeedback.detect.ecg import heartbeat_found, probe_beats

    decisions = set()
    for raw, fs in _probes(ecg_file):
        ref, found, bpm = _heartbeat_found_in_steps(raw, fs)
        shared = probe_beats(raw, fs)
        assert shared.beats == ref.beats and shared.similar == ref.similar
        for got in (heartbeat_found(raw, fs), heartbeat_found(raw, fs, beats=shared)):
            assert got[0] == found
            np.testing.assert_array_equal(got[1], bpm)
        decisions.add(found)
    assert decisions == {True, False}


def test_quality_primer_shared_with_the_heartbeat_decision_gives_the_same_report(ecg_file):
    from biofeedback.detect.ecg import probe_beats
    from biofeedback.detect.quality import QualityMonitor

    rec = Recording(ecg_file.data[:, :int(20 * ecg_file.info.fs)], ecg_file.info)
    prime = rec.data[:, :int(10 * rec.info.fs)]
    reports = []
    for kwargs in ({"prime": prime}, {"prime": prime, "prime_beats": probe_beats(prime, rec.info.fs)}):
        monitor = QualityMonitor(rec.info, **kwargs)
        for chunk in rec.chunks(4096):
            monitor.update(chunk.data, chunk.first_sample)
        reports.append(monitor.finish())
    assert reports[0].spans == reports[1].spans and any(reports[0].spans["ecg"])
    np.testing.assert_array_equal(reports[0].ecg_bpm, reports[1].ecg_bpm)
    for flag, mask in reports[0].flags.items():
        np.testing.assert_array_equal(reports[1].flags[flag], mask)


@pytest.mark.parametrize("scenario, fs, seed", [(spasm_scenario(70.0, 50.0), 1000.0, 3),
                                                (relax_with_spasms(30.0, n_spasms=2), 1000.0, 1)])
def test_analysis_runs_the_probe_detector_once_with_the_results_of_two_runs(monkeypatch, scenario, fs, seed):
    import biofeedback.analysis.batch as batch

    rec = simulate(scenario, fs, seed=seed)
    calls = []
    shared_run = batch.probe_beats
    monkeypatch.setattr(batch, "probe_beats", lambda *a, **k: calls.append(1) or shared_run(*a, **k))
    shared = analyze_recording(rec, PipelineSettings())
    assert len(calls) == 1
    # Nothing shared: the heartbeat decision and the quality primer each run their own detector.
    monkeypatch.setattr(batch, "probe_beats", lambda *a, **k: None)
    separate = analyze_recording(rec, PipelineSettings())
    assert shared.ecg_note == separate.ecg_note
    assert repr(shared.events) == repr(separate.events)  # exact floats, and quality spans' NaN peaks
    assert shared.quality.spans == separate.quality.spans


def test_aligned_correlation_equals_the_numpy_formulation():
    """The windows view and the add.reduce means and sums are np.mean's and np.sum's arithmetic."""
    from biofeedback.detect.ecg import _aligned_correlation

    rng = np.random.default_rng(8)
    template = np.sin(np.linspace(0, 5, 150)) + 0.1 * rng.normal(size=150)
    for scale in (0.0, 0.3, 3.0):
        reach = np.concatenate([rng.normal(size=20), scale * template, rng.normal(size=25)]) + rng.normal(size=195)
        windows = np.lib.stride_tricks.sliding_window_view(reach, template.size)
        core = template - template.mean()
        centred = windows - windows.mean(axis=1, keepdims=True)
        den = np.sqrt(np.sum(centred ** 2, axis=1) * np.dot(core, core))
        corr = np.where(den > 0, centred @ core / np.where(den > 0, den, 1.0), 0.0)
        assert _aligned_correlation(reach, template) == (float(corr.max()), int(np.argmax(corr)))
    assert _aligned_correlation(np.zeros(200), template) == (0.0, 0)


def test_threshold_search_finds_the_first_sample_above_or_not():
    """_AboveThreshold.find against the definition, sample by sample, with NaNs (neither above nor at or
    below the threshold), for searches that start inside and outside the window held, and several widths."""
    from biofeedback.detect.ecg import _AboveThreshold

    rng = np.random.default_rng(9)
    n = 3000
    e = np.convolve(rng.random(n), np.ones(20) / 20, mode="same")
    floor = np.repeat(rng.uniform(0.3, 0.6, size=n // 100), 100)
    e[[50, 51, 400, 1700]] = np.nan
    floor[900:1000] = np.nan

    def expected(pos, limit, level, above):
        theta = np.maximum(level, floor)
        hits = np.flatnonzero(e > theta if above else e <= theta)
        j = np.searchsorted(hits, pos)
        return int(hits[j]) if j < hits.size and hits[j] < limit else -1

    for width in (1, 7, 256, 5000):
        for level in (0.4, 0.5, 0.55, float("nan")):
            search = _AboveThreshold(e, floor, 0.0, width)
            search.set_level(level)
            pos = 0
            for _ in range(400):  # a walk like _run's: alternately the next crossing and the next drop
                for above in (True, False):
                    limit = min(n, pos + int(rng.integers(1, 600))) if rng.random() < 0.5 else n
                    got = search.find(pos, limit, above)
                    assert got == expected(pos, limit, level, above), (width, level, pos, limit, above)
                    pos = got if got >= 0 else limit
                    if pos >= n:
                        pos = int(rng.integers(0, n))


@pytest.mark.parametrize("group_values", [1, 20000])
def test_shape_check_in_small_groups_equals_the_beat_by_beat_walk(monkeypatch, group_values):
    """The shape check's segments prepared a few at a time (a group per segment, or a few per group at
    2 kHz): the same flags as one beat at a time, on heartbeats with spasms, in one chunk and in many."""
    from biofeedback.detect.ecg import _SegmentComparer

    monkeypatch.setattr(_SegmentComparer, "GROUP_VALUES", group_values)
    fs = 2000.0
    rec = simulate(relax_with_spasms(40.0, n_spasms=5, spasm_durations_s=(0.3, 1.0, 2.0), ecg_bpm=95.0,
                                     ecg_uv=60.0), fs, seed=11)
    raw = np.vstack([rec.data, 3.0 * rec.data[:, ::-1]])
    for sizes in ((raw.shape[1],), (3000, 16384)):
        ref = _beats_of(_BlockByBlockDetector, raw, fs, sizes)
        new = _beats_of(BeatDetector, raw, fs, sizes)
        assert sum(map(sum, ref.similar)) > 20
        assert new.beats == ref.beats and new.similar == ref.similar


@pytest.mark.parametrize("history", [1, 3, 5])
def test_shape_check_with_other_histories_equals_the_beat_by_beat_walk(history):
    """Shorter template histories (runs of similar beats reach a full history sooner; with one shape, a
    dissimilar beat restarts the template at once)."""
    fs = 1000.0
    rec = simulate(relax_with_spasms(40.0, n_spasms=5, spasm_durations_s=(0.3, 1.0, 2.0), ecg_bpm=75.0,
                                     ecg_uv=40.0), fs, seed=5)
    raw = np.vstack([rec.data, 3.0 * rec.data[:, ::-1]])
    settings = ECGSettings(history=history, min_beats=1)
    for sizes in ((raw.shape[1],), (700, 5000)):
        ref = _beats_of(_BlockByBlockDetector, raw, fs, sizes, settings=settings)
        new = _beats_of(BeatDetector, raw, fs, sizes, settings=settings)
        assert sum(map(len, ref.beats)) > 40
        assert new.beats == ref.beats and new.similar == ref.similar


def test_quality_primer_run_at_another_rate_is_refused():
    from biofeedback.detect.ecg import probe_beats
    from biofeedback.detect.quality import QualityMonitor
    from biofeedback.errors import ParameterError

    rec = simulate(spasm_scenario(70.0, 50.0), 1000.0, seed=3)
    prime = rec.data[:, :10000]
    full_rate = BeatDetector(1000.0, rec.info.n_channels)
    full_rate.update(prime, 0)
    with pytest.raises(ParameterError, match="prime_beats.*250 Hz"):
        QualityMonitor(rec.info, prime=prime, prime_beats=full_rate)
    QualityMonitor(rec.info, prime=prime, prime_beats=probe_beats(prime, 1000.0))  # the decimated run fits
