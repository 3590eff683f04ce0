"""Offline refinement: activations with no relaxation between them are merged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_recording
from biofeedback.analysis.store import ChunkStore
from biofeedback.core.types import Event, StreamInfo, split_into_chunks
from biofeedback.detect.classify import ACTIVATION_KINDS
from biofeedback.detect.refine import RefineSettings, longest_run, merge_unrelaxed
from biofeedback.errors import ParameterError
from biofeedback.io.csv_io import read_csv

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "myo_wrist_flexion_200hz.txt"
FS = 100.0


def _naive_longest_run(mask):
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_longest_run_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(rng.integers(0, 60)) < rng.random()
    assert longest_run(mask) == _naive_longest_run(mask)


def test_longest_run_edges():
    assert longest_run([]) == 0
    assert longest_run([False, False]) == 0
    assert longest_run([True] * 5) == 5
    assert longest_run([True, False, True, True]) == 2


def _envelope(profile_s, n_s=20.0, n_channels=1):
    """Envelope of ``n_channels`` at FS: 1.0 (rest) except ``(start, stop, level)`` stretches."""
    env = np.ones((n_channels, int(n_s * FS)))
    for start, stop, level in profile_s:
        env[:, int(start * FS):int(stop * FS)] = level
    return env


def _merge(events, env, chunk=37, **kwargs):
    info = StreamInfo.default_names(env.shape[0], FS)
    options = dict(kinds=ACTIVATION_KINDS, min_relax_s=0.5, max_gap_s=2.0, require_support=False)
    options.update(kwargs)
    # The envelope as batch analysis keeps it: chunks in a store, most of them spilled to disk.
    store = ChunkStore(info, memory_budget=8 * env.shape[0] * 3 * chunk)
    for c in split_into_chunks(env, info, chunk):
        store.append(c.data, c.first_sample)
    return merge_unrelaxed(events, store.span, np.full(env.shape[0], 1.2), info.ch_names, FS, **options)


def test_a_pause_without_relaxation_is_merged():
    # Held at 5x rest, a 0.8 s dip to 1.6x (above the 1.2x resting band), held again.
    env = _envelope([(2, 5, 5.0), (5, 5.8, 1.6), (5.8, 8, 5.0)])
    events = [Event("contraction", "ch1", 2.0, 5.0, 5.0), Event("contraction", "ch1", 5.8, 8.0, 5.0)]
    out, merged = _merge(events, env)
    assert [(e.onset_s, e.offset_s) for e in out] == [(2.0, 8.0)]
    assert merged == {"ch1": 1}
    assert out[0].extra["parts"] == 2


def test_a_pause_with_relaxation_keeps_both():
    # The same pause, but 0.6 s of it back at rest: a relaxation, two contractions.
    env = _envelope([(2, 5, 5.0), (5, 5.2, 1.6), (5.8, 8, 5.0)])
    events = [Event("contraction", "ch1", 2.0, 5.0, 5.0), Event("contraction", "ch1", 5.8, 8.0, 5.0)]
    out, merged = _merge(events, env)
    assert len(out) == 2 and merged == {"ch1": 0}


def test_scattered_rest_samples_are_not_a_relaxation():
    # 0.8 s pause that touches the band every other sample: never 0.5 s in a row.
    env = _envelope([(2, 5, 5.0), (5.8, 8, 5.0)])
    env[0, 500:580] = np.where(np.arange(80) % 2, 1.0, 1.6)
    events = [Event("spasm", "ch1", 2.0, 5.0, 5.0), Event("spasm", "ch1", 5.8, 8.0, 5.0)]
    out, _ = _merge(events, env)
    assert len(out) == 1 and out[0].kind == "spasm"


def test_a_long_pause_is_never_merged():
    env = _envelope([(2, 5, 5.0), (5, 7.5, 1.6), (7.5, 10, 5.0)])
    events = [Event("contraction", "ch1", 2.0, 5.0, 5.0), Event("contraction", "ch1", 7.5, 10.0, 5.0)]
    out, _ = _merge(events, env)
    assert len(out) == 2


def test_channels_and_other_kinds_are_kept_apart():
    env = _envelope([(2, 5, 5.0), (5, 5.8, 1.6), (5.8, 8, 5.0)], n_channels=2)
    events = [Event("contraction", "ch1", 2.0, 5.0, 5.0), Event("contraction", "ch2", 5.8, 8.0, 5.0),
              Event("saturation", "ch1", 5.8, 6.0)]
    out, merged = _merge(events, env)
    assert sorted((e.kind, e.channel, e.onset_s) for e in out) == [
        ("contraction", "ch1", 2.0), ("contraction", "ch2", 5.8), ("saturation", "ch1", 5.8)]
    assert merged == {"ch1": 0, "ch2": 0}


def test_support_from_another_channel_is_required_by_default():
    env = _envelope([(2, 5, 5.0), (5, 5.8, 1.6), (5.8, 8, 5.0)], n_channels=2)
    split = [Event("contraction", "ch1", 2.0, 5.0, 5.0), Event("contraction", "ch1", 5.8, 8.0, 5.0)]
    # Alone, the dip stays a pause (it could be spasms on a raised tone) ...
    out, _ = _merge(split, env, require_support=True)
    assert len(out) == 2
    # ... and with ch2 held across it, the hold went on.
    held = split + [Event("contraction", "ch2", 1.9, 8.1, 5.0)]
    out, merged = _merge(held, env, require_support=True)
    assert sorted((e.channel, e.onset_s, e.offset_s) for e in out) == [("ch1", 2.0, 8.0), ("ch2", 1.9, 8.1)]
    assert merged == {"ch1": 1, "ch2": 0}
    # ch2 active over part of the pause only: no support.
    partial = split + [Event("contraction", "ch2", 1.9, 5.5, 5.0), Event("contraction", "ch2", 5.6, 8.1, 5.0)]
    out, _ = _merge(partial, env, require_support=True)
    assert len([e for e in out if e.channel == "ch1"]) == 2


def test_a_lead_in_burst_starts_the_contraction_it_runs_into():
    env = _envelope([(2, 2.2, 4.0), (2.2, 2.8, 1.6), (2.8, 6, 5.0)], n_channels=1)
    events = [Event("contraction", "ch1", 2.0, 2.2, 4.0), Event("contraction", "ch1", 2.8, 6.0, 5.0)]
    out, merged = _merge(events, env, require_support=True, lead_max_s=0.25)
    assert [(e.onset_s, e.offset_s) for e in out] == [(2.0, 6.0)]
    # Longer than a twitch, or followed by a shorter one: no.
    longer = [Event("contraction", "ch1", 1.9, 2.2, 4.0), Event("contraction", "ch1", 2.8, 6.0, 5.0)]
    assert len(_merge(longer, env, require_support=True, lead_max_s=0.25)[0]) == 2
    shorter = [Event("contraction", "ch1", 2.0, 2.2, 4.0), Event("contraction", "ch1", 2.8, 2.9, 5.0)]
    assert len(_merge(shorter, env, require_support=True, lead_max_s=0.25)[0]) == 2


def test_relabel_names_the_merged_event_and_peak_is_the_largest():
    env = _envelope([(2, 5, 5.0), (5, 5.8, 1.6), (5.8, 8, 5.0)])
    events = [Event("contraction", "ch1", 2.0, 5.0, 4.0), Event("twitch", "ch1", 5.8, 8.0, 7.0)]
    seen = []

    def relabel(onset_s, offset_s):
        seen.append((onset_s, offset_s))
        return "failure_to_relax", {"cue": "contract"}

    out, _ = _merge(events, env, relabel=relabel)
    assert seen == [(2.0, 8.0)]
    assert out[0].kind == "failure_to_relax" and out[0].peak == 7.0 and out[0].extra["cue"] == "contract"
    # Without relabel the longer part gives the kind.
    out, _ = _merge(events, env)
    assert out[0].kind == "contraction"


@pytest.mark.parametrize("chunk", [1, 13, 100, 5000])
def test_chunking_does_not_matter(chunk):
    env = _envelope([(2, 5, 5.0), (5, 5.8, 1.6), (5.8, 8, 5.0), (8, 8.7, 1.0), (8.7, 9.5, 4.0)])
    events = [Event("contraction", "ch1", 2.0, 5.0), Event("contraction", "ch1", 5.8, 8.0),
              Event("contraction", "ch1", 8.7, 9.5)]
    out, _ = _merge(events, env, chunk=chunk)
    assert [(e.onset_s, e.offset_s) for e in out] == [(2.0, 8.0), (8.7, 9.5)]


def test_settings_are_checked():
    with pytest.raises(ParameterError, match="min_relax_s"):
        RefineSettings(min_relax_s=0)
    with pytest.raises(ParameterError, match="max_gap_s"):
        RefineSettings(max_gap_s=-1)


def test_split_holds_of_the_myo_recording_are_merged():
    """Myo wrist flexion (bundled, MIT): ch7's hold wavers below the thresholds twice.

    Live (no refinement) it is cut into 8 events; six flexions were cued, and
    between the parts the envelope never rests; the refinement gives one
    event per flexion, and the other channels keep their six.
    """
    rec = read_csv(SAMPLE, fs=200, channels="!8")
    causal = analyze_recording(rec, refine=None)
    refined = analyze_recording(rec)

    def onsets(result, name):
        return [e.onset_s for e in result.events if e.channel == name and e.kind in ACTIVATION_KINDS]

    assert len(onsets(causal, "ch7")) == 8
    assert len(onsets(refined, "ch7")) == 6
    assert refined.merged["ch7"] == 2
    cues = np.arange(5.0, 60.0, 10.0)
    for name in ("ch1", "ch4", "ch5", "ch7", "ch8"):
        found = np.asarray(onsets(refined, name))
        if name == "ch5":
            # A 0.1 s burst 0.4 s before the third cue, no rest after it
            # before the flexion: the flexion's onset.
            assert np.any(np.abs(found - 24.58) < 0.02)
            assert not np.any(np.abs(found - 25.34) < 0.02)
            assert np.count_nonzero(np.abs(np.asarray(onsets(causal, name)) - 25.0) < 0.5) == 2
        assert found.size == 6, name
        assert np.all(np.abs(found - cues) < 1.0), name


def test_no_refine_on_the_command_line_gives_the_live_events(tmp_path):
    from biofeedback.cli import main

    def ch7_contractions(out, *extra):
        main(["analyze", str(SAMPLE), "--fs", "200", "--channels", "!8", "--out", str(out), "--quiet",
              "--no-report", *extra])
        return [ln for ln in (out / "events.csv").read_text().splitlines() if ",ch7,contraction," in ln]

    assert len(ch7_contractions(tmp_path / "refined")) == 6
    assert len(ch7_contractions(tmp_path / "causal", "--no-refine")) == 8
