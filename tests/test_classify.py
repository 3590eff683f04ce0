"""Classification of activations against simulator truth and cue tracks."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_recording
from biofeedback.cli import main
from biofeedback.core.types import Recording
from biofeedback.detect import Baseline, DetectorSettings
from biofeedback.detect.classify import (
    ACTIVATION_KINDS, CONTRACT, REST, UNKNOWN, ClassifierSettings, CueMap, CueTrack, EventClassifier,
    classify_events,
)
from biofeedback.dsp import PipelineSettings, build_pipeline
from biofeedback.errors import ParameterError
from biofeedback.sources.simulator import Scenario, ScriptedEvent, SimulatorSource, default_session, simulate


def activations(result, channel=None):
    found = [e for e in result.events if e.kind in ACTIVATION_KINDS and channel in (None, e.channel)]
    return sorted(found, key=lambda e: (e.onset_s, e.channel))


def match(events, truth, tol=0.15):
    """For each true event, the detected event on its channel starting within ``tol``."""
    out = []
    for t in truth:
        near = [e for e in events if e.channel == t.channel and abs(e.onset_s - t.onset_s) <= tol]
        out.append(near[0] if len(near) == 1 else None)
    return out


@pytest.mark.parametrize("fs", [250.0, 1000.0, 2000.0])
def test_default_session_kinds_match_the_truth(fs):
    """Cued contractions, uncued spasms and a cramp, on two channels."""
    rec = simulate(default_session(60.0, n_channels=2), fs, seed=4)
    truth = [e for e in rec.events if e.kind in ("contraction", "spasm", "cramp")]
    result = analyze_recording(rec)
    assert result.has_cues
    found = activations(result)
    pairs = match(found, truth)
    problems = [(t.kind, t.channel, t.onset_s, None if f is None else f.kind) for t, f in zip(truth, pairs)
                if f is None or f.kind != t.kind]
    assert not problems, problems
    assert len(found) == len(truth)  # nothing else
    assert not [e for e in result.events if e.kind == "elevated_tone"]
    for f in found:
        assert f.extra["cue"] == ("contract" if f.kind == "contraction" else "rest")


def test_short_uncued_bursts_are_twitches_and_long_ones_cramps():
    events = (
        ScriptedEvent("contraction", 10.0, 3.0),
        ScriptedEvent("twitch", 16.0, 0.05, amplitude=40.0),
        ScriptedEvent("twitch", 19.0, 0.08, amplitude=40.0),
        ScriptedEvent("spasm", 22.0, 1.0),
        ScriptedEvent("cramp", 26.0, 8.0),
    )
    rec = simulate(Scenario(duration_s=40.0, events=events), 1000.0, seed=1)
    found = activations(analyze_recording(rec))
    assert [e.kind for e in found] == ["contraction", "twitch", "twitch", "spasm", "cramp"]
    assert [e.extra["shape"] for e in found] == ["sustained", "twitch", "twitch", "phasic", "sustained"]


def test_activity_outlasting_its_cue_is_a_failure_to_relax():
    """A cued contraction 10-14 s whose activity goes on, uncued, to 16.5 s."""
    events = (
        ScriptedEvent("contraction", 10.0, 4.0),
        ScriptedEvent("contraction", 13.5, 3.0, cued=False),
        ScriptedEvent("contraction", 22.0, 4.0),  # relaxes on time
    )
    rec = simulate(Scenario(duration_s=32.0, events=events), 1000.0, seed=2)
    found = activations(analyze_recording(rec))
    assert [e.kind for e in found] == ["failure_to_relax", "contraction"]
    assert found[0].extra["relax_delay_s"] == pytest.approx(2.5, abs=0.3)
    assert found[1].extra["relax_delay_s"] < ClassifierSettings().relax_grace_s
    # A longer grace accepts it as a contraction.
    lenient = activations(analyze_recording(rec, classifier=ClassifierSettings(relax_grace_s=3.0)))
    assert [e.kind for e in lenient] == ["contraction", "contraction"]


def test_without_a_cue_track_every_activation_is_a_contraction():
    rec = simulate(default_session(40.0), 1000.0, seed=3)
    bare = Recording(rec.data, rec.info)  # cues left out
    result = analyze_recording(bare)
    found = activations(result)
    assert not result.has_cues and found
    assert {e.kind for e in found} == {"contraction"}
    assert {e.extra["shape"] for e in found} == {"phasic", "sustained"}


def tone_recording(cued=True):
    """Rest 3 uV; a cued contraction at 5-8 s; raised tone (about 1.7x the
    resting RMS) from 15 to 35 s."""
    events = (ScriptedEvent("contraction", 5.0, 3.0, cued=cued),
              ScriptedEvent("cramp", 15.0, 20.0, amplitude=4.3, ramp_s=1.0))
    return simulate(Scenario(duration_s=45.0, events=events, rest_rms_uv=3.0), 1000.0, seed=2)


def test_raised_resting_level_is_elevated_tone():
    # The double threshold alone, as live and on real (restless) rests; see
    # the next test for what the CUSUM makes of a steady simulated rest.
    result = analyze_recording(tone_recording(), PipelineSettings(detector=DetectorSettings(cusum=False)))
    tone = [e for e in result.events if e.kind == "elevated_tone"]
    assert len(tone) == 1, [(e.kind, e.onset_s, e.offset_s) for e in result.events]
    (t,) = tone
    overlap = min(t.offset_s, 35.0) - max(t.onset_s, 15.0)
    assert overlap >= 0.6 * 20.0 and t.onset_s >= 14.0 and t.offset_s <= 37.0
    assert 1.5 < t.extra["ratio"] < 2.3
    # Short excursions above the on threshold inside it stay activations of their own.
    assert all(e.kind in ("contraction", "spasm", "twitch") for e in activations(result))


def test_on_a_steady_rest_a_sustained_rise_is_one_activation():
    """The simulated rest is steady (drift < 5 %), so batch analysis runs the
    CUSUM path (``cusum="auto"``): the rise from rest to 1.7x, held 20 s
    during a rest cue, is one evidence-held activation, uncued and
    sustained: a cramp, and its time is not resting tone."""
    result = analyze_recording(tone_recording())
    assert result.baseline.drift[0] < DetectorSettings().max_drift
    found = [e for e in activations(result) if e.onset_s > 12.0]
    assert [e.kind for e in found] == ["cramp"]
    assert 14.5 < found[0].onset_s < 16.5 and 33.5 < found[0].offset_s < 36.0
    assert not [e for e in result.events if e.kind == "elevated_tone"]


def test_tone_without_cues_needs_a_calibrated_rest():
    rec = tone_recording(cued=False)
    bare = Recording(rec.data, rec.info)
    auto = analyze_recording(bare)
    assert not [e for e in auto.events if e.kind == "elevated_tone"]
    calibrated = analyze_recording(bare, rest=(0.0, 4.9), min_rest_s=4.0)
    assert [e.kind for e in calibrated.events].count("elevated_tone") == 1


def test_batch_skips_tone_tracking_where_no_block_can_count_with_the_same_events(monkeypatch):
    """No cues and no calibrated rest: batch analysis does not track tone, and finds what tracking would."""
    import biofeedback.analysis.batch as batch
    from biofeedback.detect.classify import EventClassifier

    rec = tone_recording(cued=False)
    bare = Recording(rec.data, rec.info)
    calls = []
    track = EventClassifier._track_tone
    monkeypatch.setattr(EventClassifier, "_track_tone", lambda self, *a: calls.append(1) or track(self, *a))
    skipped = analyze_recording(bare)
    assert not calls
    calibrated = analyze_recording(bare, rest=(0.0, 4.9), min_rest_s=4.0)
    assert calls  # a calibrated rest: tracked

    class AlwaysTracking(EventClassifier):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "tone": True})

    monkeypatch.setattr(batch, "EventClassifier", AlwaysTracking)
    calls.clear()
    tracked = analyze_recording(bare)
    assert calls and tracked.events == skipped.events
    assert any(e.kind == "elevated_tone" for e in calibrated.events)


@pytest.mark.parametrize("preset", ["default", "pelvic"])
def test_live_classification_does_not_depend_on_chunking(preset):
    """Live: cues arrive with the chunks; with heartbeat suppression the
    envelope lags the cues by the suppressor's delay, which is accounted for."""
    scenario = default_session(45.0, n_channels=2, ecg_bpm=75.0 if preset == "pelvic" else None)
    fs = 500.0
    baseline = Baseline([2.7, 2.7], [0.3, 0.3])

    def run(chunk_s):
        source = SimulatorSource(scenario, fs, seed=6, chunk_s=chunk_s, speed=0)
        pipe = build_pipeline(PipelineSettings(preset=preset, mains="off"), source.info, baseline=baseline,
                              classifier=EventClassifier())
        events = []
        with source:
            for chunk in source:
                events.extend(pipe.process(chunk).events)
        events.extend(pipe.stages[-1].flush())
        return sorted((e.kind, e.channel, e.onset_s, e.offset_s) for e in events)

    reference = run(45.0)
    assert {k for k, *_ in reference} >= {"contraction", "spasm", "cramp"}
    truth = [(e.kind, e.channel, e.onset_s) for e in simulate(scenario, fs, seed=6).events]
    for kind, channel, onset, _ in reference:  # right kinds, at the true (raw-signal) times
        assert any(k == kind and c == channel and abs(t - onset) <= 0.15 for k, c, t in truth), (kind, onset)
    assert run(0.02) == reference
    assert run(0.137) == reference


def test_cue_map_and_track():
    m = CueMap()
    labels = np.array(["rest", "Contract", "0", "1", "7", "", "relax", "0.0"], dtype=object)
    assert m.codes(labels).tolist() == [REST, CONTRACT, REST, CONTRACT, CONTRACT, UNKNOWN, REST, REST]
    assert m.codes(np.array([0, 2, 0])).tolist() == [REST, CONTRACT, REST]
    only = CueMap(rest=("idle",), contract=("squeeze",))
    assert only.codes(np.array(["idle", "squeeze", "other"])).tolist() == [REST, CONTRACT, UNKNOWN]
    track = CueTrack()
    codes = m.codes(np.array(["rest"] * 5 + ["contract"] * 3 + ["rest"] * 2))
    track.append(codes[:6], 0)
    track.append(codes[6:], 6)
    assert track.segments(0, 12) == [(0, 5, REST), (5, 8, CONTRACT), (8, 10, REST), (10, 12, UNKNOWN)]
    assert track.codes_between(4, 9).tolist() == codes[4:9].tolist()


def test_classify_events_batch_helper_uses_the_same_rules():
    rec = simulate(default_session(40.0), 1000.0, seed=3)
    result = analyze_recording(Recording(rec.data, rec.info))
    relabelled = classify_events(activations(result), rec.cues, rec.info.fs)
    with_cues = activations(analyze_recording(rec))
    assert [e.kind for e in relabelled] == [e.kind for e in with_cues]


@pytest.mark.parametrize("kwargs, name", [({"twitch_max_s": 0.0}, "twitch_max_s"),
                                          ({"twitch_max_s": 4.0}, "twitch_max_s"),
                                          ({"tone_factor": 1.0}, "tone_factor"),
                                          ({"relax_grace_s": -1.0}, "relax_grace_s")])
def test_bad_classifier_settings_are_named(kwargs, name):
    with pytest.raises(ParameterError) as err:
        ClassifierSettings(**kwargs)
    assert err.value.name == name


def test_cli_cue_column_with_integer_labels(tmp_path, capsys):
    """A file with a 0/1 label column, as datasets ship them."""
    rec = simulate(default_session(40.0), 1000.0, seed=7)
    labels = (rec.cues == "contract").astype(int)
    path = tmp_path / "labelled.csv"
    np.savetxt(path, np.column_stack([rec.data[0], labels]), delimiter=",", fmt=["%.4f", "%d"])
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--fs", "1000", "--cue-column", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    with open(out / "events.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kinds = [r["kind"] for r in rows]
    truth = [e.kind for e in rec.events if e.kind in ACTIVATION_KINDS]
    assert kinds == truth
    with open(out / "summary.csv", newline="") as handle:
        (summary,) = list(csv.DictReader(handle))
    assert summary["cues"] == "yes" and int(summary["n_spasm"]) == truth.count("spasm")
    assert int(summary["n_cramp"]) == 1


# -- tone tracking: vectorised blocks against the block-by-block walk ---------------------------------
class _BlockByBlockClassifier(EventClassifier):
    """Reference: the tone tracker walked one 0.25 s block at a time, one median per block and channel."""

    def _track_tone(self, detector, chunk):
        env = np.asarray(chunk.data, dtype=float)
        first, n = chunk.first_sample, env.shape[1]
        if self.cues.seen:
            allowed = self.cues.codes_between(first - detector.delay, first - detector.delay + n) != CONTRACT
        else:
            allowed = np.full(n, self.tone_without_cues)
        pos = 0
        while pos < n:
            take = min(n - pos, self._block - self._fill)
            self._parts.append(env[:, pos:pos + take])
            self._allowed_parts.append(allowed[pos:pos + take])
            self._fill += take
            pos += take
            if self._fill == self._block:
                block = np.concatenate(self._parts, axis=1)
                ok = bool(np.concatenate(self._allowed_parts).all())
                self._parts, self._allowed_parts, self._fill = [], [], 0
                self._end_block(detector, first + pos - self._block, block, ok)

    def _end_block(self, detector, start, block, allowed):
        settle = int(round(detector.settings.settle_s * self._fs))
        medians = np.median(block, axis=1)
        for ch, st in enumerate(self._tone):
            if start < settle:
                continue
            st.medians = (st.medians + [float(medians[ch])])[-self._n_blocks:]
            ready = len(st.medians) == self._n_blocks and detector.baseline is not None
            level = float(np.median(st.medians)) if ready else 0.0
            high = ready and allowed and ch not in detector.disabled and \
                level > self.settings.tone_factor * detector.baseline.level[ch]
            if high:
                if st.run_start is None:
                    earliest = st.candidates[-1][1] if st.candidates else st.last_end
                    st.run_start, st.run_peak = max(settle, start + self._block - self._window, earliest), level
                st.run_peak = max(st.run_peak, level)
            elif st.run_start is not None:
                st.candidates.append((st.run_start, start, st.run_peak))
                st.last_end = start
                st.run_start = None


def _tone_events(classifier_cls, rec, baseline, sizes, disabled=(), calibrate_s=0.0):
    from biofeedback.core.types import Chunk
    from biofeedback.detect.threshold import ThresholdDetector
    from biofeedback.dsp import process_array

    pipeline = build_pipeline(PipelineSettings(mains="off"), rec.info, detect=False)
    env, _, _ = process_array(pipeline, rec.data, rec.info)
    clf = classifier_cls(ClassifierSettings(tone_min_s=1.0), tone_without_cues=True)
    # Live: no baseline while calibrating (the first calibrate_s seconds), then one is set.
    detector = ThresholdDetector(None if calibrate_s else baseline, classifier=clf)
    for ch in disabled:
        detector.disable_channel(ch, "off")
    events, start, k = [], 0, 0
    while start < env.shape[1]:
        if calibrate_s and detector.baseline is None and start >= calibrate_s * rec.info.fs:
            detector.set_baseline(baseline)
        size = sizes[k % len(sizes)]
        cues = rec.cues[start:start + size] if rec.cues is not None else None
        events.extend(detector.process(Chunk(env[:, start:start + size], start, rec.info, cues=cues)).events)
        start, k = start + size, k + 1
    events.extend(detector.flush())
    return sorted(((e.kind, e.channel, e.onset_s, e.offset_s, e.peak, dict(e.extra)) for e in events),
                  key=lambda e: (e[2], e[1], e[0]))


@pytest.mark.parametrize("cued", [True, False])
@pytest.mark.parametrize("sizes", [(1000,), (16384,), (7, 250, 1, 333), (249,), (45000,)])
def test_vectorised_tone_tracking_equals_the_block_by_block_walk(cued, sizes):
    """Same elevated-tone events (times, peaks, ratios to the bit), whatever the chunking."""
    rec = tone_recording(cued=cued)
    two = Recording(np.vstack([rec.data, 0.5 * rec.data[:, ::-1]]),
                    type(rec.info).default_names(2, rec.info.fs), cues=rec.cues)
    baseline = Baseline([3.0, 1.5], [0.3, 0.2])
    ref = _tone_events(_BlockByBlockClassifier, two, baseline, (1000,))
    assert [e[0] for e in ref].count("elevated_tone") >= 2
    assert _tone_events(EventClassifier, two, baseline, sizes) == ref
    # A disabled channel has no tone in either.
    ref_off = _tone_events(_BlockByBlockClassifier, two, baseline, (1000,), disabled=(1,))
    assert _tone_events(EventClassifier, two, baseline, sizes, disabled=(1,)) == ref_off


@pytest.mark.parametrize("sizes", [(25,), (1000,), (7, 250, 1, 333)])
def test_vectorised_tone_tracking_while_calibrating_live(sizes):
    """No baseline during the first seconds (live calibration): nothing is high, the same events after."""
    rec = tone_recording(cued=True)
    two = Recording(np.vstack([rec.data, 0.5 * rec.data]), type(rec.info).default_names(2, rec.info.fs),
                    cues=rec.cues)
    baseline = Baseline([3.0, 1.5], [0.3, 0.2])
    ref = _tone_events(_BlockByBlockClassifier, two, baseline, sizes, calibrate_s=16.0)
    assert [e[0] for e in ref].count("elevated_tone") >= 1
    assert _tone_events(EventClassifier, two, baseline, sizes, calibrate_s=16.0) == ref
