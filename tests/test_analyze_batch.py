"""``biofeedback analyze`` on folders, globs and mixed formats: tables, errors, report, jobs."""

from __future__ import annotations

import csv
import json
import struct
import sys

import numpy as np
import pytest

from biofeedback.analysis.runner import SpectrumMonitor, discover
from biofeedback.cli import main
from biofeedback.core.types import Recording, StreamInfo, split_into_chunks
from biofeedback.dsp.settings import PipelineSettings
from biofeedback.io.csv_io import write_recording


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def bursts(fs=1000.0, seconds=30.0, n_ch=2, seed=0):
    """Rest noise with a 2 s burst every 8 s (from 4 s), 50 Hz hum."""
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    x = rng.normal(0, 5.0, (n_ch, n))
    on = ((t - 4.0) % 8.0 < 2.0) & (t > 4.0)
    x += on * rng.normal(0, 60.0, (n_ch, n)) + 3.0 * np.sin(2 * np.pi * 50 * t)
    return x


def make_good_files(folder):
    """A CSV, a WAV and (if edfio is there) an EDF with the same kind of signal."""
    folder.mkdir(parents=True, exist_ok=True)
    x = bursts()
    info = StreamInfo(fs=1000.0, ch_names=("a", "b"), units="uV")
    write_recording(folder / "one.csv", Recording(x, info))
    pcm = np.clip(bursts(seed=1)[0] * 10, -32768, 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 1000, 2000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "two.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    try:
        import edfio
    except ImportError:
        return
    sig = edfio.EdfSignal(bursts(seed=2)[0], 1000.0, label="EMG", physical_dimension="uV")
    edfio.Edf([sig]).write(folder / "sub" / "three.edf")


def make_bad_files(folder):
    """One file of each kind the issue lists as bad input; returns name -> expected words of the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.csv").write_bytes(b"")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (folder / "header_only.csv").write_text("time,ch1,ch2\n")
    (folder / "mixed.csv").write_text("# fs: 100\n" + "1,2;3\n4;5,6\n" * 50)
    (folder / "orphan.hea").write_text("orphan 1 1000 5000\norphan.dat 16 200/mV 16 0 0 0 0 EMG\n")
    expected = {"empty.csv": "empty", "binary.csv": "binary", "header_only.csv": "no data rows",
                "mixed.csv": "expected", "orphan.hea": "missing"}
    try:
        import edfio
    except ImportError:
        return expected
    edfio.Edf([edfio.EdfSignal(np.zeros(2000), 1000.0, label="EMG")]).write(folder / "lying.edf")
    raw = bytearray((folder / "lying.edf").read_bytes())
    raw[236:244] = b"99      "
    (folder / "lying.edf").write_bytes(bytes(raw))
    expected["lying.edf"] = "header says 99 data records"
    return expected


def run(*args, capsys=None):
    status = main([str(a) for a in args])
    out = capsys.readouterr() if capsys is not None else None
    return status, out


def test_bad_inputs_are_error_rows_and_the_rest_completes(tmp_path, capsys):
    make_good_files(tmp_path / "data")
    expected = make_bad_files(tmp_path / "data" / "bad")
    (tmp_path / "nothing_here").mkdir()
    (tmp_path / "nothing_here" / "notes.md").write_text("no recordings")
    status, out = run("analyze", tmp_path / "data", tmp_path / "nothing_here", "--out", tmp_path / "res",
                      capsys=capsys)
    assert status == 2
    errors = {row["file"]: row["error"] for row in read_table(tmp_path / "res" / "errors.csv")}
    for name, words in expected.items():
        key = str(tmp_path / "data" / "bad" / name)
        assert key in errors, (name, errors)
        assert words.lower() in errors[key].lower(), (name, errors[key])
    assert "no recordings" in errors[str(tmp_path / "nothing_here")]
    summary = read_table(tmp_path / "res" / "summary.csv")
    analysed = {row["file"] for row in summary}
    assert str(tmp_path / "data" / "one.csv") in analysed
    assert str(tmp_path / "data" / "sub" / "two.wav") in analysed
    events = read_table(tmp_path / "res" / "events.csv")
    assert {e["file"] for e in events} >= {str(tmp_path / "data" / "one.csv")}
    assert (tmp_path / "res" / "report.html").stat().st_size > 1000
    # every failure is one line on stderr naming the file
    lines = [ln for ln in out.err.splitlines() if "error:" in ln]
    assert len(lines) == len(errors)
    assert "Traceback" not in out.err


def test_tables_and_summary_columns(tmp_path, capsys):
    make_good_files(tmp_path / "data")
    status, out = run("analyze", tmp_path / "data" / "one.csv", "--out", tmp_path / "res", "--no-report",
                      capsys=capsys)
    assert status == 0
    assert not (tmp_path / "res" / "report.html").exists()
    assert read_table(tmp_path / "res" / "errors.csv") == []
    summary = read_table(tmp_path / "res" / "summary.csv")
    assert [r["channel"] for r in summary] == ["a", "b"]
    for row in summary:
        for col in ("duration_s", "fs_hz", "units", "resting_rms", "n_contraction", "mean_burst_s",
                    "longest_burst_s", "median_freq_hz", "quality_flags", "format", "status"):
            assert col in row
        assert row["format"] == "csv" and row["units"] == "uV"
        assert int(row["n_contraction"]) == 4  # bursts at 4, 12, 20 and 28 s (the last ends with the file)
        assert 1.5 < float(row["mean_burst_s"]) < 2.6
        assert 150 < float(row["median_freq_hz"]) < 320  # white noise in 20-450 Hz: about the middle
    events = read_table(tmp_path / "res" / "events.csv")
    assert list(events[0])[:7] == ["file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak"]


def test_report_needs_no_matplotlib(tmp_path, capsys, monkeypatch):
    """report.html is written on a base install: its plots are SVG text, not matplotlib figures."""
    make_good_files(tmp_path / "data")
    for name in [m for m in list(sys.modules) if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    status, out = run("analyze", tmp_path / "data" / "one.csv", "--out", tmp_path / "res", capsys=capsys)
    assert status == 0, out.err
    page = (tmp_path / "res" / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg ") == 1 and "no plot" not in page
    assert "matplotlib" not in out.err


def test_median_frequency_of_known_spectra():
    fs = 2000.0
    rng = np.random.default_rng(3)
    n = int(fs * 20)
    t = np.arange(n) / fs
    tone = np.sin(2 * np.pi * 120.0 * t) + 1e-3 * rng.normal(size=n)
    noise = rng.normal(size=n)
    x = np.vstack([tone, noise, noise + 50 * np.sin(2 * np.pi * 50 * t)])  # the last: strong mains
    info = StreamInfo.default_names(3, fs)
    results = []
    for size in (4096, 777):
        mon = SpectrumMonitor(info, PipelineSettings())
        for chunk in mon.observe(split_into_chunks(x, info, size)):
            pass
        results.append(mon.median_frequency(50.0))
    mdf = results[0]
    assert mdf[0] == pytest.approx(120.0, abs=1.0)
    assert mdf[1] == pytest.approx((20 + 450) / 2, abs=8.0)
    assert mdf[2] == pytest.approx(mdf[1], abs=8.0)  # the notched mains line does not pull it down
    np.testing.assert_allclose(results[0], results[1])  # chunking does not matter


def test_jobs_give_identical_tables_and_json(tmp_path, capsys):
    make_good_files(tmp_path / "data")
    outs = []
    for jobs in (1, 2):
        out_dir = tmp_path / f"res{jobs}"
        status, out = run("analyze", tmp_path / "data", "--jobs", jobs, "--json", "--no-report", "--out", out_dir,
                          capsys=capsys)
        assert status == 0
        report = json.loads(out.out)
        assert report["status"] == 0 and report["failed"] == 0 and report["analysed"] == report["files"] >= 2
        assert out.err == ""
        outs.append(out_dir)
    for name in ("events.csv", "summary.csv", "errors.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_globs_recursion_and_skips(tmp_path):
    make_good_files(tmp_path / "data")
    (tmp_path / "data" / "one.events.csv").write_text("file,channel,kind,onset_s,offset_s\n")
    (tmp_path / "data" / "README.md").write_text("notes")
    files, problems = discover([str(tmp_path / "data")])
    names = sorted(p.split("/")[-1] for p in files)
    assert "one.events.csv" not in names and "README.md" not in names
    assert {"one.csv", "two.wav"} <= set(names)
    files, problems = discover([str(tmp_path / "data" / "**" / "*.wav"), str(tmp_path / "data" / "*.none")])
    assert [p.split("/")[-1] for p in files] == ["two.wav"]
    assert problems == [(str(tmp_path / "data" / "*.none"), "no recordings match this pattern")]
    files, _ = discover([str(tmp_path / "data" / "one.csv"), str(tmp_path / "data")])
    assert len([f for f in files if f.endswith("one.csv")]) == 1  # no duplicates


def test_progress_bar_draws_on_a_terminal(capsys):
    from biofeedback.commands.analyze import _Progress

    bar = _Progress(4, enabled=True)
    bar.step("a.csv")
    bar.say("a line")
    bar.step("b.csv")
    bar.clear()
    err = capsys.readouterr().err
    assert "1/4 files" in err and "2/4 files" in err and "\r" in err
    quiet = _Progress(4, enabled=False)
    quiet.step("x")
    assert capsys.readouterr().err == ""


@pytest.mark.shared_data
def test_analyze_shared_folders_of_every_format(shared_data, tmp_path, capsys):
    folders = ["backyardbrains_rEMG/pulse_1.wav", "bitalino_edf_oficina", "emggo/ECG Contaminated.mat",
               "physionet_emgdb/emg_healthy.hea", "openbci_ganglion_myoware/OpenBCI-RAW-S02_S1REST.txt",
               "biosignalsnotebooks/emg_bursts.h5", "biosppy/emg_1.txt", "biosignalsnotebooks/emg_1000_hz_16_bits.txt"]
    paths = [shared_data / f for f in folders if (shared_data / f).exists()]
    status, out = run("analyze", *paths, "--jobs", 2, "--quiet", "--out", tmp_path, capsys=capsys)
    assert status == 0, out.err
    summary = read_table(tmp_path / "summary.csv")
    formats = {row["format"] for row in summary}
    assert formats >= {"wav", "edf", "mat", "wfdb", "openbci", "hdf5", "csv", "opensignals"}
    bursts_row = [r for r in summary if r["file"].endswith("emg_bursts.h5")][0]
    assert int(bursts_row["n_contraction"]) == 9  # the 9 cyclic contractions
    emggo = [r for r in summary if r["file"].endswith("ECG Contaminated.mat")]
    assert len(emggo) == 8 and float(emggo[0]["fs_hz"]) == 2048
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg ") == len({r["file"] for r in summary})


def test_first_pass_hands_memory_back_without_touching_the_chunks(monkeypatch):
    from biofeedback.analysis import runner
    from biofeedback.core.types import Chunk, StreamInfo

    calls = []
    monkeypatch.setattr(runner, "_release_memory", lambda: calls.append(1))
    info = StreamInfo.default_names(2, 100.0)
    chunks = [Chunk(np.full((2, 50), float(i)), 50 * i, info) for i in range(10)]
    trimming = runner._Trimming(iter(chunks), every_bytes=3 * 2 * 50 * 8)
    out = list(trimming)
    assert [c is d for c, d in zip(out, chunks)] == [True] * 10
    assert len(calls) == 4  # after chunks 3, 6 and 9, and at the end
    assert trimming.large and trimming.total == 10 * 2 * 50 * 8

    # A file of fewer bytes than that is never trimmed (the next file reuses its temporaries).
    calls.clear()
    trimming = runner._Trimming(iter(chunks[:2]), every_bytes=3 * 2 * 50 * 8)
    assert [c is d for c, d in zip(trimming, chunks)] == [True] * 2
    assert calls == [] and not trimming.large


def test_files_of_few_channels_are_analysed_in_longer_chunks():
    from biofeedback.analysis.runner import CHUNK_SAMPLES, CHUNK_VALUES, chunk_samples_for

    assert chunk_samples_for(8) == chunk_samples_for(64) == CHUNK_SAMPLES
    assert chunk_samples_for(1) == CHUNK_VALUES == 8 * CHUNK_SAMPLES
    assert chunk_samples_for(2) == CHUNK_VALUES // 2
    assert chunk_samples_for(3) * 3 <= CHUNK_VALUES


def test_regrouped_chunks_join_data_cues_and_layers_where_samples_follow_on():
    from biofeedback.analysis import runner
    from biofeedback.core.types import Chunk, StreamInfo

    info = StreamInfo.default_names(2, 100.0)

    def chunk(start, n):
        data = np.arange(start, start + n, dtype=float) * np.array([[1.0], [-1.0]])
        labels = np.array([f"c{i}" for i in range(start, start + n)])
        return Chunk(data, start, info, layers={"cues": labels.reshape(1, -1)})

    # 30 + 30 + 30 | 30 + 10, then a gap (starts at 200), then 40 on its own.
    parts = [chunk(0, 30), chunk(30, 30), chunk(60, 30), chunk(90, 30), chunk(120, 10), chunk(200, 40)]
    out = list(runner._regroup(iter(parts), 70))
    assert [(c.first_sample, c.n_samples) for c in out] == [(0, 90), (90, 40), (200, 40)]
    assert out[2] is parts[5]  # already long enough on its own: passed unchanged
    for c in out:
        expected = np.arange(c.first_sample, c.stop, dtype=float)
        np.testing.assert_array_equal(c.data, np.vstack([expected, -expected]))
        assert c.layers["cues"].reshape(-1).tolist() == [f"c{i}" for i in range(c.first_sample, c.stop)]


def test_analysis_does_not_depend_on_how_files_of_few_channels_are_chunked(tmp_path):
    """The chunks chosen by channel count (one long chunk here) and the readers' own give the same tables.

    The same events; the envelope's values (peaks, resting level,
    thresholds) may differ in the last digits (relative 1e-11), since the
    moving RMS sums a block of a chunk at a time.
    """
    from dataclasses import replace

    from biofeedback.analysis.runner import JobSpec, analyze_one

    path = tmp_path / "one.csv"
    write_recording(path, Recording(data=bursts(seconds=40.0, n_ch=1), info=StreamInfo.default_names(1, 1000.0)))
    job = JobSpec(settings=PipelineSettings(), plot=False)
    assert job.chunk_samples is None
    by_count = analyze_one(0, str(path), job)
    fixed = analyze_one(0, str(path), replace(job, chunk_samples=4096))
    assert by_count.ok and fixed.ok
    assert by_count.event_rows
    for got, want in [(by_count.event_rows, fixed.event_rows), (by_count.summary_rows, fixed.summary_rows)]:
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.keys() == b.keys()
            assert {k: a[k] == pytest.approx(b[k], rel=1e-9) if isinstance(b[k], float) else a[k] == b[k]
                    for k in a} == dict.fromkeys(a, True)


def _glibc():
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return True


def test_allocator_tuning_respects_the_users_settings_and_other_platforms(monkeypatch):
    import ctypes

    from biofeedback.analysis import runner

    for name in runner.ALLOCATOR_ENV + ("GLIBC_TUNABLES",):
        monkeypatch.delenv(name, raising=False)
    if _glibc():
        assert runner.tune_allocator() is True
    # The user's own allocator settings win.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "100000")
    assert runner.tune_allocator() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert runner.tune_allocator() is False
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=2048")  # not the allocator's
    assert runner.tune_allocator() is _glibc()
    monkeypatch.delenv("GLIBC_TUNABLES")

    # Not glibc (macOS, Windows, musl): nothing to tune, no error.
    def no_glibc(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert runner.tune_allocator() is False


def test_analyze_tunes_the_allocator_of_its_process_and_its_workers(tmp_path, monkeypatch, capsys):
    import functools
    from concurrent import futures

    from biofeedback.analysis import runner

    calls = []
    # A picklable stand-in (worker processes may be spawned); the workers append to their own copy.
    tune = functools.partial(calls.append, "main")
    monkeypatch.setattr(runner, "tune_allocator", tune)
    initializers = []
    real_pool = futures.ProcessPoolExecutor

    def pool(*args, **kwargs):
        initializers.append(kwargs.get("initializer"))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(futures, "ProcessPoolExecutor", pool)
    make_good_files(tmp_path / "data")
    status, _ = run("analyze", tmp_path / "data", "--jobs", 2, "--quiet", "--no-report", "--out", tmp_path / "res",
                    capsys=capsys)
    assert status == 0
    assert calls == ["main"]  # once, in this process
    assert initializers == [tune]  # and in each worker process as it starts
