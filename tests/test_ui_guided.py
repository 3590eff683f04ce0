"""The window in a guided session, and the cheap drawing items of the traces (off-screen Qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from PyQt6 import QtCore, QtGui, QtWidgets  # noqa: E402

from biofeedback.live.replay import ReplaySource  # noqa: E402
from biofeedback.live.worker import LiveWorker  # noqa: E402
from biofeedback.sources.simulator import Scenario, ScriptedEvent, simulate  # noqa: E402
from biofeedback.ui.widgets import HLines, QtArray, _Polyline  # noqa: E402
from biofeedback.ui.window import LiveWindow  # noqa: E402

FS = 500.0


class Provider:
    """Relax 0-5 s, contract 5-8 s (target 10-30 µV), relax after."""

    def cues_for(self, first_sample, n):
        t = (first_sample + np.arange(n)) / FS
        return np.where((t >= 5.0) & (t < 8.0), "contract", "relax")

    def status(self, sample_index):
        t = sample_index / FS
        if 5.0 <= t < 8.0:
            return SimpleNamespace(name="squeeze 1/3", cue="contract", remaining_s=8.0 - t,
                                   progress=(t - 5.0) / 3.0, target_low=10.0, target_high=30.0, done=False)
        start, end = (0.0, 5.0) if t < 5.0 else (8.0, 12.0)
        return SimpleNamespace(name="rest", cue="relax", remaining_s=max(0.0, end - t),
                               progress=min(1.0, (t - start) / (end - start)), target_low=None, target_high=None,
                               done=t >= 12.0)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    return tmp_path


def pump(window, until, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        window.on_frame()
        time.sleep(0.001)


def test_window_shows_the_cue_countdown_progress_and_target(qtbot, home):
    events = (ScriptedEvent("contraction", 5.2, 2.5, channels=None, cued=False),)
    recording = simulate(Scenario(duration_s=12.0, events=events, n_channels=1), FS)
    source = ReplaySource(recording, speed=0, chunk_s=0.05, pause_at_s=6.5)
    worker = LiveWorker(source, calibration_s=3.0, block_when_full=True, queue_size=2)
    window = LiveWindow(worker, start=False, cue_provider=Provider())
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    assert worker.cue_provider is not None and not window.session_panel.isVisible()
    worker.start()
    pump(window, lambda: source.paused and worker.output.empty() and window.model.position_s >= 6.5)
    window._last_gauge = window._last_text = 0.0
    window.on_frame()
    panel = window.session_panel
    assert panel.isVisible()
    assert panel.cue.text() == "CONTRACT" and panel.phase.text() == "squeeze 1/3"
    assert panel.countdown.text() == "2 s"  # 1.5 s left, rounded up
    assert panel.progress.value() == 500
    gauge = window.panels[0].gauge
    fraction, low, high, _ = window.model.gauge(0)
    assert gauge.zone == (pytest.approx(low), pytest.approx(high)) and high > low > 0
    assert window.panels[0].word.text() == "CONTRACTING"  # asked for: not a spasm
    source.resume()
    pump(window, lambda: window.model.ended is not None)
    window._last_gauge = 0.0
    window.on_frame()
    assert panel.cue.text() == "DONE" and panel.phase.text() == "session complete"
    window.close()
    assert window.stopped_cleanly


def test_without_a_session_the_cue_panel_stays_hidden_and_the_plot_asks_for_its_bin_rate(qtbot, home):
    recording = simulate(Scenario(duration_s=6.0, n_channels=2), FS)
    source = ReplaySource(recording, speed=0, chunk_s=0.05)
    worker = LiveWorker(source, calibration_s=2.0, block_when_full=True, queue_size=2)
    window = LiveWindow(worker, start=False, window_s=4.0, bins_per_px=0.5)
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    worker.start()
    pump(window, lambda: window.model.ended is not None)
    window._last_status = 0.0
    window.on_frame()
    width = window.lanes_plot.getViewBox().width()
    assert worker.display_rate_hz == pytest.approx(0.5 * width / 4.0, rel=0.1)
    assert not window.session_panel.isVisible()
    # Only the window's worth of bins is handed to the curves (plus one at the left edge).
    env_points = window.channel_plots[0].envelope_curve.point_count()
    assert env_points <= 4.0 * worker.display_rate_hz + 4
    assert window.channel_plots[0].filtered_curve.point_count() == 2 * env_points
    window.close()


# -- drawing items ---------------------------------------------------------------------
def render(items, size=(40, 40)):
    scene = QtWidgets.QGraphicsScene(0, 0, *size)
    for item in items:
        scene.addItem(item)
    image = QtGui.QImage(size[0], size[1], QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    scene.render(painter, QtCore.QRectF(0, 0, *size), QtCore.QRectF(0, 0, *size))
    painter.end()
    for item in items:
        scene.removeItem(item)  # the items outlive the scene
    return np.array([[QtGui.QColor(image.pixel(x, y)).name() == "#000000" for x in range(size[0])]
                     for y in range(size[1])])


def test_qt_array_grows_and_exposes_its_memory(qapp):
    points = QtArray(QtCore.QPointF, 2, 4)
    view = points.values(3)
    view[:] = [[1, 2], [3, 4], [5, 6]]
    assert [(p.x(), p.y()) for p in points.drawable()] == [(1, 2), (3, 4), (5, 6)]
    points.values(100)[99] = [7, 8]
    assert points.capacity >= 100 and points.drawable()[99].x() == 7


def test_thick_polyline_draws_two_pixels_and_pairs_draw_strokes(qapp):
    line = _Polyline("#000000", thick=True)
    line.set_data(np.array([5.0, 35.0]), np.array([20.0, 20.0]))
    black = render([line])
    assert black[20, 10:30].all() and black[21, 10:30].all() and not black[22:, :].any()
    strokes = _Polyline("#000000", pairs=True)
    strokes.set_data(np.array([10.0, 10.0, 20.0, 20.0]), np.array([5.0, 30.0, 12.0, 14.0]))
    black = render([strokes])
    assert black[5:30, 10].all() and black[12:14, 20].all() and not black[20, 20] and not black[:, 15].any()
    strokes.clear()
    assert strokes.point_count() == 0 and not render([strokes]).any()


def test_hlines_span_the_view_at_their_values(qapp):
    lines = HLines(["#000000", "#000000"], width=2)
    lines.set_values([10.0, None])
    lines.setTransform(QtGui.QTransform(1.0, 0.0, 0.0, 2.0, 0.0, 0.0))  # y doubled: 10 → 20 px
    black = render([lines])
    rows = sorted(set(np.nonzero(black)[0].tolist()))
    assert rows == [19, 20] and black[19].all()
