"""The live feedback window.

Threads: the :class:`~biofeedback.live.worker.LiveWorker` reads the source
and runs the pipeline; this window only runs a timer at the display rate
that drains the worker's bounded queue into one preallocated
:class:`~biofeedback.live.ring.MirrorRing`, then calls ``setData`` once per
curve with contiguous views of it. No filtering, no whole-buffer copy and
no file I/O happen on the GUI thread (the scripted screenshot is encoded
and written on a helper thread).
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from biofeedback.live.model import FeedbackModel, format_clock
from biofeedback.live.ring import MirrorRing
from biofeedback.live.state import CONTRACTING, SPASM
from biofeedback.live.stats import FrameStats
from biofeedback.live.terminal import event_line
from biofeedback.live.worker import LiveBlock, StreamEnded, StreamStarted
from biofeedback.ui import palette
from biofeedback.ui.widgets import (ChannelPlot, FeedbackPanel, TimedGraphicsLayout, font, lane_ticks,
                                   setup_lanes_plot)

pg.setConfigOptions(background="w", foreground="k", antialias=False)

#: Level and percent texts are refreshed at most this often (a number that
#: changes 60 times a second cannot be read anyway).
TEXT_PERIOD_S = 0.1
STATUS_PERIOD_S = 0.25
OVERLAY_PERIOD_S = 0.5
MAX_LIST_EVENTS = 200

KEYS_HELP = "Space pause · C calibrate · M marker · D debug · Q quit"
REPLAY_KEYS_HELP = "Space pause · ←/→ seek 5 s · Home start · C calibrate · M marker · D debug · Q quit"


class LiveWindow(QtWidgets.QMainWindow):
    """Scrolling traces, feedback panels, event list and status line.

    Parameters
    ----------
    worker : LiveWorker
        Started by the window (unless ``start=False``) and stopped and joined
        when the window closes.
    window_s : float
        Seconds of signal shown.
    fps : float
        Display rate.
    feedback_channels : sequence of str, optional
        Channels with a feedback panel (names or 1-based numbers; default
        the first).
    rest_s, mvc_s : float
        Lengths of the guided rest and of the optional maximum contraction
        started with ``C``.
    debug : bool
        Show the frame-rate / latency overlay from the start (``D`` toggles).
    title : str
        Window title.
    clock : callable
        Monotonic clock shared with the worker (latency).
    start : bool
        Start the worker and the display timer now.
    """

    def __init__(self, worker, *, window_s: float = 10.0, fps: float = 60.0, feedback_channels=None,
                 rest_s: float = 30.0, mvc_s: float = 0.0, debug: bool = False, title: str = "biofeedback",
                 clock=time.monotonic, start: bool = True):
        super().__init__()
        self.worker = worker
        self.window_s = float(window_s)
        self.rest_s, self.mvc_s = float(rest_s), float(mvc_s)
        self.clock = clock
        self.model = FeedbackModel(feedback_channels, clock=clock)
        self.stats = FrameStats(fps)
        self.exit_status = 0
        self.stopped_cleanly: bool | None = None
        self.channel_plots: list[ChannelPlot] = []
        self.panels: dict[int, FeedbackPanel] = {}
        self.ring: MirrorRing | None = None
        self._pending_latency: float | None = None
        self._provisional = False  # the rings end with a bin that is still filling
        self._dirty = False
        self._last_text = self._last_status = self._last_overlay = 0.0
        self._last_top: list[float] = []
        self._shown_states: list[str] = []
        self._notice_until = 0.0
        self._slider_dragging = False
        self.setWindowTitle(title)
        self._build_layout()
        self._build_shortcuts()
        self.overlay.setVisible(debug)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(max(1, int(1000 / fps)))
        self.timer.timeout.connect(self.on_frame)
        if start:
            self.worker.start()
            self.timer.start()

    # -- layout ----------------------------------------------------------------
    def _build_layout(self) -> None:
        central = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 6)
        row = QtWidgets.QHBoxLayout()
        self.plots = TimedGraphicsLayout(self.clock)
        self.plots.painted.connect(self._on_painted)
        row.addWidget(self.plots, 3)
        side = QtWidgets.QWidget()
        side.setMinimumWidth(400)
        side.setMaximumWidth(520)
        self.side_layout = QtWidgets.QVBoxLayout(side)
        self.side_layout.setContentsMargins(0, 0, 0, 0)
        self.panel_box = QtWidgets.QVBoxLayout()
        self.side_layout.addLayout(self.panel_box)
        label = QtWidgets.QLabel("Events")
        label.setFont(font(palette.TEXT_PT, bold=True))
        self.side_layout.addWidget(label)
        self.event_list = QtWidgets.QListWidget()
        self.event_list.setFont(font(palette.TEXT_PT))
        self.event_list.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # keys go to the shortcuts
        self.side_layout.addWidget(self.event_list, 1)
        row.addWidget(side, 1)
        outer.addLayout(row, 1)

        self.replay_bar = QtWidgets.QWidget()
        bar = QtWidgets.QHBoxLayout(self.replay_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.play_button = QtWidgets.QPushButton("Pause")
        self.play_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_pause)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.slider.sliderPressed.connect(lambda: setattr(self, "_slider_dragging", True))
        self.slider.sliderReleased.connect(self._slider_released)
        self.position_label = QtWidgets.QLabel("00:00 / 00:00")
        self.position_label.setFont(font(palette.TEXT_PT))
        bar.addWidget(self.play_button)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.position_label)
        self.replay_bar.setVisible(False)
        outer.addWidget(self.replay_bar)

        # The legend lives outside the plot, where it hides no data and is
        # drawn once instead of at every frame.
        self.legend = QtWidgets.QLabel(
            f'<span style="color:{palette.BLACK}">━━</span> envelope &nbsp; '
            f'<span style="color:{palette.FILTERED_PEN}">━━</span> filtered signal &nbsp; '
            f'<span style="color:{palette.BLUE}">━━</span> relax below &nbsp; '
            f'<span style="color:{palette.VERMILLION}">━━</span> contract above &nbsp; '
            f'<span style="background-color:rgba(0,114,178,0.25)">&nbsp;&nbsp;&nbsp;&nbsp;</span> resting band')
        self.legend.setFont(font(palette.SMALL_PT))
        outer.addWidget(self.legend)
        self.notice = QtWidgets.QLabel("")
        self.notice.setFont(font(palette.TEXT_PT, bold=True))
        self.status = QtWidgets.QLabel("starting…")
        self.status.setFont(font(palette.TEXT_PT))
        self.keys = QtWidgets.QLabel(KEYS_HELP)
        self.keys.setFont(font(palette.SMALL_PT))
        self.keys.setStyleSheet("color: #555555;")
        for w in (self.notice, self.status, self.keys):
            outer.addWidget(w)
        self.setCentralWidget(central)

        self.overlay = QtWidgets.QLabel(self.plots)
        self.overlay.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.overlay.setStyleSheet("background-color: rgba(255, 255, 255, 220); color: black; "
                                   "border: 1px solid #666; padding: 4px;")
        self.overlay.move(84, 6)

    def _build_shortcuts(self) -> None:
        Key = QtCore.Qt.Key
        self._keys = {
            Key.Key_Space: self.toggle_pause, Key.Key_C: self.start_calibration, Key.Key_M: self.add_marker,
            Key.Key_D: self.toggle_debug, Key.Key_Q: self.close, Key.Key_Escape: self.close,
            Key.Key_Left: lambda: self.seek_by(-5.0), Key.Key_Right: lambda: self.seek_by(5.0),
            Key.Key_Home: lambda: self.seek_to(0.0),
        }
        # Every child refuses keyboard focus (the plot would scroll on the
        # arrow keys, the list would eat Space), so all keys come here.
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        for child in (self.plots, self.event_list, self.slider, self.play_button):
            child.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt name
        action = self._keys.get(event.key())
        if action is None or event.modifiers() & ~QtCore.Qt.KeyboardModifier.KeypadModifier:
            super().keyPressEvent(event)
            return
        action()

    def _build_stream(self, started: StreamStarted) -> None:
        info = started.info
        self.plots.clear()
        units = self.model.units
        self.lanes_plot = self.plots.addPlot(row=0, col=0)
        setup_lanes_plot(self.lanes_plot, info.n_channels, self.window_s)
        self.channel_plots = [ChannelPlot(self.lanes_plot, name, units, ch, info.n_channels)
                              for ch, name in enumerate(info.ch_names)]
        self._ticks_dirty = True
        # The worker sends display bins (min/max of the filtered signal,
        # mean envelope); keep one window of them plus a second of margin.
        bins = int(np.ceil((self.window_s + 1.0) * self.worker.display_rate_hz)) + 2
        # Row 0 holds the times, then one row per channel: one write per
        # block keeps them aligned. The filtered ring holds min and max of
        # each bin side by side (two points at the same time: a vertical
        # stroke per bin, as peak downsampling draws).
        self.ring = MirrorRing(1 + info.n_channels, 2 * bins)
        self.envelope_ring = MirrorRing(1 + info.n_channels, bins)
        self._last_top = [0.0] * info.n_channels
        for panel in self.panels.values():
            panel.setParent(None)
        self.panels = {}
        for ch in self.model.feedback_index:
            panel = FeedbackPanel(info.ch_names[ch])
            self.panel_box.addWidget(panel)
            self.panels[ch] = panel
        self._shown_states = [""] * info.n_channels
        self.replay_bar.setVisible(started.seekable)
        self.keys.setText(REPLAY_KEYS_HELP if started.seekable else KEYS_HELP)
        if started.duration_s:
            self.slider.setRange(0, int(started.duration_s * 10))
        self.setWindowTitle(f"{self.windowTitle()} — {started.source_name}")

    # -- the frame ---------------------------------------------------------------
    def on_frame(self) -> None:
        """Drain the queue, update the buffers, draw once. Called by the timer."""
        t0 = time.perf_counter()
        self.stats.tick(t0)
        newest = None
        while True:
            try:
                message = self.worker.output.get_nowait()
            except queue.Empty:
                break
            block = self.model.apply(message)
            if isinstance(message, StreamStarted):
                self._build_stream(message)
            elif isinstance(message, StreamEnded):
                self._show_notice(message.reason, error=message.error, seconds=3600)
                self.exit_status = 1 if message.error else 0
            elif block is not None:
                shown = self._take(block)
                if shown is not None:
                    newest = shown
        if hasattr(self.worker.source, "paused"):
            # Blocks still in flight were made before a pause: ask the source.
            self.model.paused = bool(self.worker.source.paused)
        now = self.clock()
        if self._dirty and not self.model.display_paused and self.ring is not None and self.ring.count:
            self._draw()
            self._dirty = False
            if newest is not None:
                self._pending_latency = newest
        self._update_panels(now)
        if now - self._last_status >= STATUS_PERIOD_S:
            self._last_status = now
            self._update_status(now)
        if self.overlay.isVisible() and now - self._last_overlay >= OVERLAY_PERIOD_S:
            self._last_overlay = now
            self._update_overlay()
        self.stats.frame_cost(time.perf_counter() - t0)

    def _take(self, block: LiveBlock):
        """Copy one block's display bins into the rings.

        Returns the block's source time (``t_source``) when it brought
        samples, which will be on screen after this frame, else None.
        """
        if self.ring is None:
            return None
        if block.discontinuity:
            self.ring.clear()
            self.envelope_ring.clear()
            self._provisional = False
            for plot in self.channel_plots:
                plot.clear()
        if block.thresholds is not None:
            th = block.thresholds
            for ch, plot in enumerate(self.channel_plots):
                plot.set_thresholds(th.level[ch], th.sigma[ch], th.on[ch], th.off[ch])
        fs = self.model.started.info.fs
        n = block.envelope.shape[1]
        t_end = (block.first_sample + n) / fs
        traces = block.traces
        m = 0 if traces is None else traces.n_bins
        if m:
            if self._provisional:
                # The bin that was still filling comes again, finished or
                # further filled: replace it.
                self.ring.drop_last(2)
                self.envelope_ring.drop_last(1)
            times = traces.start / fs
            rows = np.empty((self.ring.n_rows, 2 * m))
            rows[0, 0::2] = times
            rows[0, 1::2] = times
            rows[1:, 0::2] = traces.fmin
            rows[1:, 1::2] = traces.fmax
            self.ring.write(rows)
            env_rows = np.empty((self.envelope_ring.n_rows, m))
            env_rows[0] = times
            env_rows[1:] = traces.env
            self.envelope_ring.write(env_rows)
            self._provisional = traces.partial
            self._dirty = True
        if n and block.peaks is not None:
            for ch, plot in enumerate(self.channel_plots):
                plot.add_peak(t_end, float(block.peaks[ch]))
        for ch, state in enumerate(block.states[:len(self.channel_plots)]):
            plot = self.channel_plots[ch]
            if state != self._shown_states[ch] and state in (SPASM, CONTRACTING):
                # The moment a burst is recognised, mark it and let the mark
                # grow; the detector's event (with the back-tracked onset)
                # replaces it when the burst is over.
                kind = "spasm" if state == SPASM else "contraction"
                plot.start_live_span(t_end, kind, "SPASM" if state == SPASM else "contraction")
            elif state in (SPASM, CONTRACTING) and n:
                plot.extend_live_span(t_end)
            self._shown_states[ch] = state
        for event in block.events:
            self._add_event(event)
        for notice in block.notices:
            self._show_notice(notice)
        return block.t_source if m else None

    def _add_event(self, event) -> None:
        names = self.model.ch_names
        targets = [i for i, name in enumerate(names) if name in event.channel.split(",")]
        label = {"spasm": "SPASM", "check electrode": "electrode"}.get(event.kind, event.kind)
        for ch in targets:
            if ch < len(self.channel_plots):
                if event.kind in ("contraction", "spasm"):
                    self.channel_plots[ch].end_live_span()
                self.channel_plots[ch].add_marker(event.onset_s, event.offset_s, event.kind, label)
        item = QtWidgets.QListWidgetItem(event_line(event))
        item.setForeground(QtGui.QBrush(QtGui.QColor(palette.EVENT_COLOURS.get(event.kind, palette.BLACK))
                                        if event.kind != "contraction" else QtGui.QColor("#8a5a00")))
        self.event_list.insertItem(0, item)
        while self.event_list.count() > MAX_LIST_EVENTS:
            self.event_list.takeItem(self.event_list.count() - 1)

    def _draw(self) -> None:
        view = self.ring.view()
        env = self.envelope_ring.view()
        x = view[0]
        t_end = float(x[-1])
        t_start = t_end - self.window_s
        for ch, plot in enumerate(self.channel_plots):
            plot.filtered_curve.setData(x, view[1 + ch])
            plot.envelope_curve.setData(env[0], env[1 + ch])
            top = plot.scale_top(t_start)
            # Rescale only on a clear change: a scale that breathes with
            # every frame makes the trace hard to read.
            if not (0.8 * self._last_top[ch] <= top <= 1.25 * self._last_top[ch]) or \
                    top > self._last_top[ch]:
                self._last_top[ch] = top
                plot.set_scale(top)
                self._ticks_dirty = True
            plot.drop_markers_before(t_start)
        if self._ticks_dirty:
            self._ticks_dirty = False
            self.lanes_plot.getAxis("left").setTicks(lane_ticks(self.channel_plots))
        if self.channel_plots:
            self.lanes_plot.setXRange(t_start, t_end, padding=0)
            # Let the views apply their new ranges now, not at the start of
            # the paint: changes made there schedule a second paint.
            self.plots.scene().prepareForPaint()
        # Ask for the paint of this frame directly: left to the scene's own
        # change tracking, about one frame in six was merged into the next.
        self.plots.viewport().update()

    def _update_panels(self, now: float) -> None:
        refresh_text = now - self._last_text >= TEXT_PERIOD_S
        if refresh_text:
            self._last_text = now
        for ch, panel in self.panels.items():
            state = self.model.state(ch)
            panel.set_state(state, self.model.subtitle(ch))
            if refresh_text:
                panel.set_level(self.model.level_text(ch), self.model.percent_text(ch))
                fraction, low, high, marks = self.model.gauge(ch)
                panel.gauge.set_values(fraction, low, high, marks,
                                       palette.STATE_COLOURS.get(state, (palette.GREY,))[0])

    def _update_status(self, now: float) -> None:
        self.status.setText(self.model.status_text())
        if self.notice.text() and now > self._notice_until:
            self.notice.setText("")
        started = self.model.started
        if started is not None and started.seekable and not self._slider_dragging:
            self.slider.blockSignals(True)
            self.slider.setValue(int(self.model.position_s * 10))
            self.slider.blockSignals(False)
            self.position_label.setText(f"{format_clock(self.model.position_s)} / {format_clock(started.duration_s)}")
            self.play_button.setText("Play" if self.model.paused else "Pause")

    def _update_overlay(self) -> None:
        depth = self.worker.output.qsize()
        self.overlay.setText(f"{self.stats.summary()}\nqueue {depth}  blocks dropped {self.worker.blocks_dropped}  "
                             f"frames dropped {self.stats.dropped}")
        self.overlay.adjustSize()
        self.overlay.raise_()

    def _show_notice(self, text: str, error: bool = False, seconds: float = 10.0) -> None:
        self.notice.setText(text)
        self.notice.setStyleSheet(f"color: {palette.VERMILLION if error else '#333333'};")
        self._notice_until = self.clock() + seconds

    def _on_painted(self, when: float) -> None:
        self.stats.painted(when)
        if self._pending_latency is not None:
            self.stats.latency(when - self._pending_latency)
            self._pending_latency = None

    # -- actions (keys and buttons) --------------------------------------------
    def toggle_pause(self) -> None:
        """Pause/resume a replay; on a live source, freeze/unfreeze the traces."""
        source = self.worker.source
        if hasattr(source, "toggle_pause"):
            paused = source.toggle_pause()
            self.model.paused = paused
        else:
            self.model.display_paused = not self.model.display_paused
            self._dirty = True
        self._update_status(self.clock())

    def seek_by(self, delta_s: float) -> None:
        source = self.worker.source
        if hasattr(source, "seek_by"):
            source.seek_by(delta_s)

    def seek_to(self, time_s: float) -> None:
        source = self.worker.source
        if hasattr(source, "seek"):
            source.seek(time_s)

    def _slider_released(self) -> None:
        self._slider_dragging = False
        self.seek_to(self.slider.value() / 10.0)

    def start_calibration(self) -> None:
        """Start a guided rest (and MVC when configured); pressing again cancels."""
        if self.model.calibration and self.model.thresholds is not None:
            self.worker.cancel_calibration()
            return
        self.worker.calibrate(self.rest_s, self.mvc_s)
        self._show_notice(f"calibration: relax for {self.rest_s:g} s"
                          + (f", then squeeze as hard as is comfortable for {self.mvc_s:g} s" if self.mvc_s else ""))

    def add_marker(self) -> None:
        self.worker.marker("marker")

    def toggle_debug(self) -> None:
        self.overlay.setVisible(not self.overlay.isVisible())
        self._last_overlay = 0.0

    # -- capture and shutdown ----------------------------------------------------
    def save_screenshot(self, path) -> threading.Thread:
        """Grab the window now; encode and write the PNG on a helper thread."""
        image = self.grab().toImage()
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        thread = threading.Thread(target=image.save, args=(str(path),), name="screenshot", daemon=True)
        thread.start()
        return thread

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.timer.stop()
        self.stopped_cleanly = self.worker.stop()
        super().closeEvent(event)
