"""Reading ahead in a thread gives the same items, errors and file closing as direct iteration."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from biofeedback.analysis.batch import analyze_stream
from biofeedback.errors import InputFileError
from biofeedback.io.csv_io import iter_csv, write_recording
from biofeedback.io.prefetch import prefetch
from biofeedback.sources.simulator import default_session, simulate


def test_items_come_in_order():
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch([], depth=1)) == []


def test_an_error_of_the_source_comes_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise InputFileError("f.csv", "line 3: not a number")

    got = []
    with pytest.raises(InputFileError, match="line 3"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1, 2]


def test_the_reader_stays_at_most_depth_items_ahead():
    produced = []

    def source():
        for k in range(50):
            produced.append(k)
            yield k

    it = prefetch(source(), depth=2)
    assert next(it) == 0
    time.sleep(0.3)  # give the reader time to run ahead as far as it may
    # Consumed 1, queued at most 2, and one more may be waiting to be queued.
    assert len(produced) <= 1 + 2 + 1
    it.close()


def test_stopping_early_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            for k in range(10_000):
                yield k
        finally:
            closed.set()

    it = prefetch(source(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.wait(2.0)


def test_depth_is_checked():
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], depth=0))


def test_analysis_of_a_file_is_the_same_with_prefetch(tmp_path):
    rec = simulate(default_session(40.0), 1000.0, seed=5)
    path = tmp_path / "s.csv"
    write_recording(path, rec)
    info, chunks = iter_csv(path, chunk_samples=4096)
    direct = analyze_stream(info, chunks)
    info, chunks = iter_csv(path, chunk_samples=4096)
    ahead = analyze_stream(info, prefetch(chunks))
    assert direct.events == ahead.events
    np.testing.assert_array_equal(direct.baseline.level, ahead.baseline.level)


def test_a_bad_row_deep_in_a_multichannel_file_is_still_an_error_row(tmp_path, capsys):
    """8 channels: read ahead in a thread (PREFETCH_MIN_CHANNELS); the reader's
    error reaches errors.csv with its line number, the batch goes on."""
    from biofeedback.analysis.runner import PREFETCH_MIN_CHANNELS
    from biofeedback.cli import main
    from biofeedback.core.types import Recording, StreamInfo

    rng = np.random.default_rng(0)
    n_ch = max(8, PREFETCH_MIN_CHANNELS)
    good = Recording(rng.standard_normal((n_ch, 60000)), StreamInfo.default_names(n_ch, 1000.0))
    write_recording(tmp_path / "good.csv", good)
    lines = (tmp_path / "good.csv").read_text().splitlines()
    header = next(k for k, line in enumerate(lines) if not line.startswith("#"))
    bad_line = header + 50001  # well past the first chunks
    lines[bad_line - 1] = lines[bad_line - 1].replace(",", ",oops", 1)
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    status = main(["analyze", str(tmp_path / "good.csv"), str(tmp_path / "bad.csv"), "--out", str(tmp_path / "res"),
                   "--no-report", "--quiet"])
    assert status == 2
    errors = (tmp_path / "res" / "errors.csv").read_text()
    assert "bad.csv" in errors and f"line {bad_line}" in errors and "good.csv" not in errors
    assert "good.csv" in (tmp_path / "res" / "summary.csv").read_text()
    assert "Traceback" not in capsys.readouterr().err
