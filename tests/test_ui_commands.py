"""``biofeedback live --duration S --screenshot FILE.png`` renders the window off-screen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import pytest  # noqa: E402

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from biofeedback.cli import main  # noqa: E402


def test_scripted_capture_saves_the_window(tmp_path, monkeypatch, qapp, capsys):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    shot = tmp_path / "window.png"
    status = main(["live", "--source", "sim", "--speed", "4", "--session", "30", "--duration", "2.5",
                   "--screenshot", str(shot), "--debug"])
    assert status == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved the window to {shot}" in capsys.readouterr().out
