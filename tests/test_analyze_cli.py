"""End-to-end tests of ``biofeedback analyze`` and ``simulate`` through the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from biofeedback.cli import main

MYO_SAMPLE = "myo_wrist_flexion_200hz.txt"
# Channels (1-based names) that carry wrist flexion in this session, per the
# dataset's notes (0-based ch0, ch3, ch4, ch6, ch7).
CARRYING = ["ch1", "ch4", "ch5", "ch7", "ch8"]


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_cli(*args, capsys=None):
    status = main([str(a) for a in args])
    out = capsys.readouterr() if capsys else None
    return status, out


def check_myo_result(out_dir, n_rows=11936):
    events = read_table(out_dir / "events.csv")
    summary = read_table(out_dir / "summary.csv")
    assert {row["channel"] for row in summary} == {f"ch{i}" for i in range(1, 9)}
    for row in summary:
        assert float(row["fs_hz"]) == 200.0
        assert float(row["duration_s"]) == pytest.approx(n_rows / 200)
    for ch in CARRYING:
        mine = [e for e in events if e["channel"] == ch]
        onsets = np.array([float(e["onset_s"]) for e in mine])
        # Nothing during the first 5 s, which are rest.
        assert not np.any(onsets < 5.0), (ch, onsets)
        # Each of the six cues (5, 15, ..., 55 s) is matched by one detected
        # onset within the reaction-time tolerance (EMG lags the cue by up to
        # ~0.5 s; 1 s either side).
        for k in range(6):
            cue = 5.0 + 10.0 * k
            assert np.any(np.abs(onsets - cue) <= 1.0), (ch, cue, onsets)
        # A contraction is held ~5 s: the longest event starting near each cue
        # is not a blip.
        for k in range(6):
            near = [float(e["duration_s"]) for e in mine if abs(float(e["onset_s"]) - (5 + 10 * k)) <= 1.0]
            assert max(near) > 1.0, (ch, k, near)
    return events, summary


def test_analyze_myo_sample_finds_the_six_cued_contractions(tmp_path, sample_data, capsys):
    out = tmp_path / "out"
    status, _ = run_cli("analyze", sample_data / MYO_SAMPLE, "--fs", 200, "--channels", "!8", "--out", out,
                        capsys=capsys)
    assert status == 0
    events, _ = check_myo_result(out)
    assert {e["kind"] for e in events} == {"contraction"}
    assert set(events[0]) >= {"file", "channel", "kind", "onset_s", "offset_s", "peak"}


def test_analyze_myo_from_shared_data(tmp_path, shared_data, capsys):
    path = shared_data / "myo_readings" / "12345-1" / "1.txt"
    status, _ = run_cli("analyze", path, "--fs", 200, "--channels", "!8", "--out", tmp_path, capsys=capsys)
    assert status == 0
    check_myo_result(tmp_path)


def test_simulate_then_analyze_recovers_true_contractions(tmp_path, capsys):
    rec = tmp_path / "sim.csv"
    status, _ = run_cli("simulate", "--duration", 40, "--fs", 1000, "--seed", 3, "--out", rec, capsys=capsys)
    assert status == 0
    truth = read_table(tmp_path / "sim.events.csv")
    status, _ = run_cli("analyze", rec, "--out", tmp_path / "res", capsys=capsys)
    assert status == 0
    found = read_table(tmp_path / "res" / "events.csv")
    bursts = [t for t in truth if t["kind"] in ("contraction", "spasm", "cramp", "twitch")]
    assert bursts
    for t in bursts:
        t_on = float(t["onset_s"])
        assert any(abs(float(f["onset_s"]) - t_on) <= 0.1 for f in found), (t, found)
    assert len(found) == len(bursts)


@pytest.mark.parametrize(
    "content, extra_args, expected",
    [
        (None, [], "file not found"),
        ("1,2\n3,4\n", ["--fs", "0"], "--fs"),
        ("1,2\n3,4\n", ["--fs", "-5"], "--fs"),
        ("1,2\n3,4\n", [], "sampling rate"),
        ("1,2\n3,abc\n5,6\n", ["--fs", "100"], "line 2"),
        ("1,2\n3,nan\n5,6\n", ["--fs", "100"], "line 2"),
        ("1,2\n3,inf\n5,6\n", ["--fs", "100"], "line 2"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(tmp_path, capsys, content, extra_args, expected):
    path = tmp_path / "rec.csv"
    if content is not None:
        path.write_text(content)
    status, out = run_cli("analyze", path, "--out", tmp_path / "o", *extra_args, capsys=capsys)
    assert status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert "Traceback" not in out.err
    assert lines[0].startswith("biofeedback")
    assert expected.lower() in lines[0].lower()


def test_band_edge_above_nyquist_is_named(tmp_path, capsys):
    path = tmp_path / "rec.csv"
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(2000, 1)), delimiter=",")
    status, out = run_cli("analyze", path, "--fs", 200, "--high-hz", 150, "--out", tmp_path / "o", capsys=capsys)
    assert status == 2
    assert "high edge" in out.err and "Nyquist" in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_cli_help_and_version_run_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "biofeedback", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("biofeedback ")
    result = subprocess.run([sys.executable, "-m", "biofeedback", "analyze", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "default:" in result.stdout  # defaults are shown
