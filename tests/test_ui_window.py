"""The live window under the off-screen Qt platform, driven by the real worker.

The worker runs on its thread with back-pressure and a tiny queue, and the
test calls the window's frame function itself (instead of waiting for its
timer), so every few blocks reach the panel and nothing depends on timing.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from PyQt6 import QtCore  # noqa: E402

from biofeedback.core.types import Chunk, StreamInfo  # noqa: E402
from biofeedback.live.replay import ReplaySource  # noqa: E402
from biofeedback.live.worker import LiveWorker  # noqa: E402
from biofeedback.sources.base import Source  # noqa: E402
from biofeedback.sources.simulator import Scenario, ScriptedEvent, simulate  # noqa: E402
from biofeedback.ui.window import LiveWindow  # noqa: E402

FS = 500.0


def session(duration=13.0, **kw):
    events = (ScriptedEvent("contraction", 5.0, 2.5, channels=None, cued=True),
              ScriptedEvent("spasm", 9.0, 1.0, channels=(0,)))
    return simulate(Scenario(duration_s=duration, events=events, n_channels=2, **kw), FS)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    return tmp_path


def open_window(qtbot, source, **options):
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, queue_size=2, source_name="test",
                        profile_name=options.pop("profile_name", None))
    window = LiveWindow(worker, start=False, feedback_channels=["all"], **options)
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    worker.start()
    return window


def pump(window, until, timeout=30.0):
    """Run frames until ``until()``; returns ch1's panel word after each frame."""
    words = []
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        window.on_frame()
        if window.panels:
            words.append(window.panels[0].word.text())
        time.sleep(0.001)
    return words


def runs(words):
    out = []
    for w in words:
        if w not in ("WAITING", "CALIBRATING") and (not out or out[-1] != w):
            out.append(w)
    return out


def test_window_shows_states_and_events_of_a_simulated_session(qtbot, home):
    window = open_window(qtbot, ReplaySource(session(), speed=0, chunk_s=0.05))
    words = pump(window, lambda: window.model.ended is not None)
    assert runs(words) == ["RELAXED", "CONTRACTING", "RELAXED", "SPASM", "RELAXED"]
    assert "CALIBRATING" in words  # the first seconds calibrate
    listed = [window.event_list.item(i).text() for i in range(window.event_list.count())]
    assert any("ch1  spasm" in text for text in listed)
    assert sum("contraction" in text for text in listed) == 2
    labels = [text.toPlainText() for _, _, text, _ in window.channel_plots[0].markers if text is not None]
    assert "SPASM" in labels and "contraction" in labels
    assert window.ring.count > 0 and window.envelope_ring.count > 0
    assert window.panels[1].level.text().endswith("µV")
    assert "ended after 13.0 s" in window.notice.text()
    window.close()
    assert window.stopped_cleanly and not window.worker.alive


def test_check_electrode_and_status_in_words(qtbot, home):
    source = ReplaySource(session(electrode_off=((6.0, 8.5),)), speed=0, chunk_s=0.05, pause_at_s=7.5)
    window = open_window(qtbot, source)
    pump(window, lambda: source.paused and window.worker.output.empty() and window.model.position_s >= 7.5)
    window.on_frame()
    window._update_status(0.0)
    assert window.panels[0].word.text() == "CHECK ELECTRODE"
    assert "flat" in window.panels[0].subtitle.text()
    assert "check ch1 flat" in window.status.text()
    listed = [window.event_list.item(i).text() for i in range(window.event_list.count())]
    assert any("check electrode (flat)" in text for text in listed)
    window.close()
    assert window.stopped_cleanly


def test_replay_pause_seek_and_keys(qtbot, home):
    source = ReplaySource(session(duration=30.0), speed=0, chunk_s=0.05)
    window = open_window(qtbot, source)
    window.activateWindow()
    pump(window, lambda: window.model.position_s > 4.0)
    assert window.replay_bar.isVisible()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert source.paused
    for _ in range(20):  # drain what was in flight
        window.on_frame()
        time.sleep(0.005)
    held = window.model.position_s
    time.sleep(0.2)
    for _ in range(5):
        window.on_frame()
    assert window.model.position_s == held and window.model.paused
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Home)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Right)  # 0 + 5 s
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Left)   # back to 0
    window.seek_by(1.0)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert not source.paused
    pump(window, lambda: 1.0 < window.model.position_s < 3.0)
    assert window.ring.view()[0][0] >= 1.0  # the traces restarted at the new time
    window.seek_by(10.0)
    pump(window, lambda: window.model.position_s > 11.0)
    window.close()
    assert window.stopped_cleanly and not window.worker.alive


def test_guided_calibration_from_the_window_saves_a_profile(qtbot, home):
    window = open_window(qtbot, ReplaySource(session(duration=30.0), speed=0, chunk_s=0.05),
                         rest_s=4.0, profile_name="me")
    pump(window, lambda: window.model.thresholds is not None)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_C)
    words = pump(window, lambda: (home / "profiles" / "me.json").is_file())
    assert "CALIBRATING" in words
    subtitles = {window.panels[0].subtitle.text()}
    pump(window, lambda: "saved as profile 'me'" in window.notice.text() or window.model.ended)
    assert "saved as profile 'me'" in window.notice.text(), subtitles
    window.close()


class DisconnectingSource(Source):
    def __init__(self):
        self.info = StreamInfo.default_names(1, FS, source="device")

    def _chunks(self):
        rng = np.random.default_rng(0)
        for i in range(100):
            yield Chunk(rng.normal(scale=3.0, size=(1, 25)), i * 25, self.info)
        raise OSError(19, "No such device")


def test_a_disconnect_is_said_and_the_window_stays_usable(qtbot, home, tmp_path):
    window = open_window(qtbot, DisconnectingSource())
    pump(window, lambda: window.model.ended is not None)
    assert "disconnected" in window.notice.text() and "No such device" in window.notice.text()
    assert window.exit_status == 1
    qtbot.keyClick(window, QtCore.Qt.Key.Key_D)
    assert window.overlay.isVisible()
    window.on_frame()
    window._last_overlay = 0.0
    window.on_frame()
    assert "fps" in window.overlay.text()
    saver = window.save_screenshot(tmp_path / "shot.png")
    saver.join(10)
    assert (tmp_path / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    window.close()
    assert window.stopped_cleanly


def test_closing_while_streaming_in_real_time_stops_the_worker(qtbot, home):
    source = ReplaySource(session(duration=60.0), speed=1.0, chunk_s=0.02)
    worker = LiveWorker(source, calibration_s=3.0, source_name="test")
    window = LiveWindow(worker)  # starts the worker and its own timer
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.blocks_received > 5, timeout=10000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_M)  # a marker while streaming
    qtbot.waitUntil(lambda: any(e.kind == "marker" for e in window.model.events), timeout=10000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Q)
    assert not window.isVisible()
    assert window.stopped_cleanly and not worker.alive
