"""``biofeedback live`` and ``replay`` from the command line, in the terminal mode."""

from __future__ import annotations

import pytest

from biofeedback.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path / "home"))


def test_live_headless_simulator_records_and_replay_reads_it_back(tmp_path, capsys):
    rec = tmp_path / "session.csv"
    status = main(["live", "--headless", "--source", "sim", "--speed", "0", "--session", "30",
                   "--channels", "2", "--feedback", "all", "--record", str(rec), "--calibration-s", "5"])
    out = capsys.readouterr().out
    assert status == 0
    assert "simulator ended after 30.0 s" in out
    # The 30 s session ends with a 6 s uncued cramp (17-23 s): the classifier
    # names it by its duration, as batch analysis does.
    assert "  ch1  cramp  " in out and "  ch2  contraction  " in out
    assert rec.is_file() and (tmp_path / "session.events.csv").is_file()
    assert sum(1 for line in rec.open() if line[:1].isdigit()) == 30 * 1000  # every sample kept
    status = main(["replay", str(rec), "--headless", "--speed", "0", "--feedback", "all", "--calibration-s", "5"])
    out = capsys.readouterr().out
    assert status == 0 and "session.csv ended after 30.0 s" in out
    # No cue column in the recording: relax mode calls every burst
    # involuntary (twitch, spasm or cramp by its duration).
    assert "  ch1  cramp  " in out and "  ch1  contraction  " not in out


def test_live_without_display_falls_back_to_the_terminal(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    status = main(["live", "--source", "sim", "--speed", "0", "--session", "30", "--no-profile"])
    captured = capsys.readouterr()
    assert status == 0
    assert "no display found" in captured.err
    assert "ended after 30.0 s" in captured.out


@pytest.mark.parametrize("argv, words", [
    (["live", "--source", "sim", "--screenshot", "x.png"], "--screenshot: expected --duration"),
    (["live", "--source", "sim", "--duration", "-1"], "--duration"),
    (["live", "--source", "sim", "--channels", "two", "--headless"], "--channels"),
    (["live", "--source", "sim", "--profile", "../x", "--headless"], "--profile"),
    (["replay", "no-such-file.csv", "--headless"], "FILE: expected an existing recording"),
])
def test_mistakes_are_one_line_errors(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_record_refuses_to_overwrite(tmp_path, capsys):
    rec = tmp_path / "taken.csv"
    rec.write_text("precious")
    assert main(["live", "--headless", "--source", "sim", "--record", str(rec)]) == 2
    assert "exists" in capsys.readouterr().err and rec.read_text() == "precious"
