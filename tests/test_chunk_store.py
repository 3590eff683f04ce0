"""The envelope store between the two batch passes: memory, then disk."""

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_recording
from biofeedback.analysis.store import ChunkStore
from biofeedback.core.types import StreamInfo
from biofeedback.sources.simulator import default_session, simulate


def test_spilled_store_returns_exactly_what_was_stored():
    info = StreamInfo.default_names(3, 100.0)
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 1000))
    cues = rng.integers(-1, 2, size=1000)
    store = ChunkStore(info, memory_budget=3 * 8 * 150)  # two chunks fit, the rest spill
    for start in range(0, 1000, 70):
        store.append(data[:, start:start + 70], start, cues[start:start + 70])
    assert store.spilled
    chunks = list(store)
    assert [c.first_sample for c in chunks] == list(range(0, 1000, 70))
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), data)
    np.testing.assert_array_equal(np.concatenate([c.cues for c in chunks]), cues)
    np.testing.assert_array_equal(store.span(65, 500), data[:, 65:500])
    store.close()


def test_every_span_is_exact_and_reads_only_its_chunks(monkeypatch):
    info = StreamInfo.default_names(2, 100.0)
    data = np.random.default_rng(2).normal(size=(2, 700))
    store = ChunkStore(info, memory_budget=2 * 8 * 150)
    for start in range(0, 700, 70):
        store.append(data[:, start:start + 70], start)
    for start in range(0, 700, 13):
        for stop in (start, start + 1, start + 69, start + 70, start + 141, 700):
            np.testing.assert_array_equal(store.span(start, stop), data[:, start:min(stop, 700)])
    reads = []
    read = ChunkStore._read
    monkeypatch.setattr(ChunkStore, "_read", lambda self, entry: reads.append(entry[0]) or read(self, entry))
    np.testing.assert_array_equal(store.span(500, 575), data[:, 500:575])
    assert reads == [490, 560]  # the two chunks it overlaps, not the file from the start
    store.close()


def test_analysis_is_the_same_when_the_envelope_spills_to_disk(monkeypatch):
    rec = simulate(default_session(40.0), 500.0, seed=2)
    in_memory = analyze_recording(rec)
    monkeypatch.setattr("biofeedback.analysis.store.DEFAULT_MEMORY_BUDGET", 4096)
    monkeypatch.setattr(ChunkStore.__init__, "__defaults__", (4096,))
    on_disk = analyze_recording(rec)
    assert [(e.kind, e.onset_s, e.offset_s, e.peak) for e in on_disk.events] == \
        [(e.kind, e.onset_s, e.offset_s, e.peak) for e in in_memory.events]
    assert len(in_memory.events) > 0


def test_analysis_does_not_depend_on_how_the_file_is_chunked():
    """The mains/heartbeat probe is exactly probe_s seconds whatever the chunk size."""
    from dataclasses import replace

    scenario = replace(default_session(40.0), ecg_bpm=75.0, ecg_uv=30.0, mains_hz=50.0, mains_uv=10.0)
    rec = simulate(scenario, 1000.0, seed=4)
    results = [analyze_recording(rec, chunk_s=s) for s in (0.37, 1.0, 3.3)]
    rows = [[(e.kind, round(e.onset_s, 9), round(e.offset_s, 9)) for e in r.events] for r in results]
    assert rows[0] == rows[1] == rows[2]
    assert results[0].mains_hz == results[1].mains_hz == results[2].mains_hz == 50.0


# -- the envelope kept for the report's plot -----------------------------------------------------
def _block_maxima(data, block):
    """Plain reference: the maximum of each block (the last one may be partial)."""
    return np.stack([data[:, i:i + block].max(axis=1) for i in range(0, data.shape[1], block)], axis=1)


def test_block_peaks_are_the_maxima_of_each_block_whatever_the_chunking():
    from biofeedback.analysis.batch import BlockPeaks

    data = np.random.default_rng(5).normal(size=(3, 1003))
    expected = _block_maxima(data, 25)
    for sizes in ([1003], [1], [7, 64], [24, 25, 26], [250, 3, 1]):
        peaks = BlockPeaks(3, 25)
        start, k = 0, 0
        while start < data.shape[1]:
            size = sizes[k % len(sizes)]
            peaks.update(data[:, start:start + size])
            start, k = start + size, k + 1
        np.testing.assert_array_equal(peaks.values(), expected)
    assert BlockPeaks(2, 25).values().shape == (2, 0)


def test_block_peak_series_keep_the_largest_value_of_each_group_at_its_middle():
    from biofeedback.analysis.batch import BlockPeaks

    fs, block = 100.0, 25
    data = np.random.default_rng(6).normal(size=(2, 1003))  # 41 blocks, the last of 3 samples
    peaks = BlockPeaks(2, block)
    peaks.update(data)
    t, values = peaks.series(10, fs, delay_samples=12)
    group = 5  # ceil(41 / 10) blocks a point
    spans = [(i, min(i + group * block, 1003)) for i in range(0, 1003, group * block)]
    assert values.shape == (2, len(spans)) == (2, 9)
    for j, (a, b) in enumerate(spans):
        np.testing.assert_array_equal(values[:, j], data[:, a:b].max(axis=1))
        assert t[j] == pytest.approx(((a + b) / 2 - 12) / fs)
    t_all, all_values = peaks.series(1000, fs)
    np.testing.assert_array_equal(all_values, _block_maxima(data, block))
    assert len(t_all) == 41 and t_all[-1] == pytest.approx((1000 + 1003) / 2 / fs)


def test_display_envelope_is_the_detectors_envelope_whatever_the_chunking():
    rec = simulate(default_session(40.0), 500.0, seed=2)
    results = [analyze_recording(rec, chunk_s=s) for s in (0.37, 1.0, 40.0)]
    (t, env), *others = [r.display_envelope(points=60) for r in results]
    for t_other, env_other in others:
        np.testing.assert_array_equal(t_other, t)
        # The moving RMS sums chunk by chunk: values agree to rounding, not to the bit.
        np.testing.assert_allclose(env_other, env, rtol=1e-9)
    n_blocks = -(-rec.data.shape[1] // 125)  # of 0.25 s
    group = -(-n_blocks // 60)
    assert env.shape == (rec.info.n_channels, -(-n_blocks // group)) and len(t) == env.shape[1] > 30
    on = results[0].thresholds[0]
    contractions = [e for e in results[0].events if e.kind == "contraction"]
    assert contractions
    for e in contractions:
        # Every contraction crossed the on threshold: the plot shows it doing so.
        ch = rec.info.ch_names.index(e.channel)
        inside = (t >= e.onset_s - 1.0) & (t <= e.offset_s + 1.0)
        assert env[ch, inside].max() >= on[ch]
