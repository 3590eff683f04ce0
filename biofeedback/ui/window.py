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
from biofeedback.detect.classify import ACTIVATION_KINDS
from biofeedback.live.state import CONTRACTING, SPASM
from biofeedback.live.stats import FrameStats
from biofeedback.live.terminal import event_line
from biofeedback.live.worker import LiveBlock, StreamEnded, StreamStarted
from biofeedback.ui import palette
from biofeedback.ui.widgets import (ChannelPlot, FeedbackPanel, SessionPanel, TimedGraphicsLayout, font,
                                   lane_ticks, setup_lanes_plot)

pg.setConfigOptions(background="w", foreground="k", antialias=False)

#: Level and percent texts are refreshed at most this often (a number that
#: changes 60 times a second cannot be read anyway).
TEXT_PERIOD_S = 0.25
#: The gauge and the guided session's countdown follow the level more
#: closely: they are the feedback itself (a few rectangles, cheap to paint).
GAUGE_PERIOD_S = 0.05
STATUS_PERIOD_S = 0.25
OVERLAY_PERIOD_S = 0.5
MAX_LIST_EVENTS = 200
#: Display bins per pixel column of the plot: one min/max stroke per column
#: draws the filtered signal as finely as the screen can show it.
BINS_PER_PX = 0.5
#: Widest plot (in pixels) the rings are sized for.
MAX_PLOT_PX = 4096
#: How far the scrolling view may run ahead of the newest sample (s): a
#: little more than the worker's blocks (20 ms) and their jitter.
MAX_LEAD_S = 0.06
#: Blocks whose envelope peak is kept for the plot scale (> one window of blocks).
PEAK_HISTORY = 4096

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
    bins_per_px : float
        Display bins per pixel column of the plot, asked from the worker
        whenever the plot's width changes clearly (fewer points to draw in
        a narrow window or a long one, full resolution in a wide one).
    cue_provider : object, optional
        A guided session for the worker (see
        :class:`~biofeedback.live.worker.LiveWorker`), given before the
        worker starts. Its current cue is shown in large words with the
        seconds left, the phase's progress and, on the gauges, its target
        band.
    """

    def __init__(self, worker, *, window_s: float = 10.0, fps: float = 60.0, feedback_channels=None,
                 rest_s: float = 30.0, mvc_s: float = 0.0, debug: bool = False, title: str = "biofeedback",
                 clock=time.monotonic, start: bool = True, bins_per_px: float = BINS_PER_PX, cue_provider=None):
        super().__init__()
        self.worker = worker
        if cue_provider is not None:
            worker.cue_provider = cue_provider  # read by the worker thread once it starts
        self.window_s = float(window_s)
        self.bins_per_px = float(bins_per_px)
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
        self._data_clock: float | None = None  # when the newest samples arrived
        self._shown_end: float | None = None   # right edge of the last frame drawn
        self._last_text = self._last_gauge = self._last_status = self._last_overlay = 0.0
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
        # The background is one flat colour: filling it costs less than
        # copying a cached background pixmap at every frame.
        self.plots.setCacheMode(QtWidgets.QGraphicsView.CacheModeFlag.CacheNone)
        self.plots.painted.connect(self._on_painted)
        row.addWidget(self.plots, 3)
        side = QtWidgets.QWidget()
        side.setMinimumWidth(400)
        side.setMaximumWidth(520)
        self.side_layout = QtWidgets.QVBoxLayout(side)
        self.side_layout.setContentsMargins(0, 0, 0, 0)
        self.session_panel = SessionPanel()
        self.session_panel.setVisible(False)  # shown in a guided session
        self.side_layout.addWidget(self.session_panel)
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
        self._signal_delay_s = float(getattr(started, "signal_delay_s", 0.0) or 0.0)
        # The worker sends display bins (min/max of the filtered signal,
        # mean envelope) at a rate that follows the plot's width (see
        # _update_display_rate). Each bin carries its time, so bins of
        # different widths mix; room for the widest screen's bins over one
        # window plus a second of margin. Only the part in view is drawn.
        bins = int(np.ceil((self.window_s + 1.0) * max(self.worker.display_rate_hz,
                                                       self._rate_for_width(MAX_PLOT_PX)))) + 4
        # Row 0 holds the times, then one row per channel: one write per
        # block keeps them aligned. The filtered ring holds min and max of
        # each bin side by side (two points at the same time: a vertical
        # stroke per bin, as peak downsampling draws).
        self.ring = MirrorRing(1 + info.n_channels, 2 * bins)
        self.envelope_ring = MirrorRing(1 + info.n_channels, bins)
        # Largest envelope value of each block, with the block's end time:
        # the plot scale follows it without scanning the traces.
        self.peak_ring = MirrorRing(1 + info.n_channels, PEAK_HISTORY)
        self._peak_column = np.zeros((1 + info.n_channels, 1))
        self._requested_rate = 0.0
        self._last_top = [0.0] * info.n_channels
        for panel in self.panels.values():
            panel.setParent(None)
        self.panels = {}
        for ch in self.model.feedback_index:
            panel = FeedbackPanel(info.ch_names[ch])
            self.panel_box.addWidget(panel)
            self.panels[ch] = panel
        self._shown_states = [""] * info.n_channels
        # Lay the new plot out now and ask for its bin rate at once: the
        # first seconds need not come at the default rate.
        self.plots.ci.layout.activate()
        self.lanes_plot.layout.activate()
        self._update_display_rate()
        self.session_panel.setVisible(bool(getattr(started, "guided", False)))
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
        oldest = None
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
                self._last_text = self._last_gauge = float("-inf")  # show the last values now
            elif block is not None:
                shown = self._take(block)
                if shown is not None and oldest is None:
                    oldest = shown
        if hasattr(self.worker.source, "paused"):
            # Blocks still in flight were made before a pause: ask the source.
            self.model.paused = bool(self.worker.source.paused)
        now = self.clock()
        if self._dirty:
            self._data_clock = now
        if not self.model.display_paused and self.ring is not None and self.ring.count:
            view_end = self._view_end(now)
            if self._dirty or view_end != self._shown_end:
                self._draw(view_end, self._dirty)
                self._dirty = False
                if oldest is not None:
                    # The latency of the oldest samples first shown by this frame.
                    self._pending_latency = oldest
        self._update_panels(now)
        if now - self._last_status >= STATUS_PERIOD_S:
            self._last_status = now
            self._update_status(now)
            self._update_display_rate()
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
            self._shown_end = None
            self.ring.clear()
            self.envelope_ring.clear()
            self.peak_ring.clear()
            self._provisional = False
            for plot in self.channel_plots:
                plot.clear()
        if block.thresholds is not None:
            th = block.thresholds
            for ch, plot in enumerate(self.channel_plots):
                plot.set_thresholds(th.level[ch], th.sigma[ch], th.on[ch], th.off[ch])
        fs = self.model.started.info.fs
        n = block.envelope.shape[1]
        # Traces lag the raw signal by the pipeline's delay (heartbeat
        # suppression); events and cues are in raw-signal time. Drawing
        # the traces at raw time keeps the marks on their bursts.
        shift = self._signal_delay_s
        t_end = (block.first_sample + n) / fs - shift
        traces = block.traces
        m = 0 if traces is None else traces.n_bins
        if m:
            if self._provisional:
                # The bin that was still filling comes again, finished or
                # further filled: replace it.
                self.ring.drop_last(2)
                self.envelope_ring.drop_last(1)
            times = traces.start / fs - shift
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
            self._peak_column[0, 0] = t_end
            self._peak_column[1:, 0] = block.peaks
            self.peak_ring.write(self._peak_column)
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
        label = palette.EVENT_LABELS.get(event.kind, event.kind.replace("_", " "))
        for ch in targets:
            if ch < len(self.channel_plots):
                if event.kind in ACTIVATION_KINDS:
                    self.channel_plots[ch].end_live_span()
                self.channel_plots[ch].add_marker(event.onset_s, event.offset_s, event.kind, label)
        item = QtWidgets.QListWidgetItem(event_line(event))
        item.setForeground(QtGui.QBrush(QtGui.QColor(palette.EVENT_COLOURS.get(event.kind, palette.BLACK))
                                        if event.kind != "contraction" else QtGui.QColor("#8a5a00")))
        self.event_list.insertItem(0, item)
        while self.event_list.count() > MAX_LIST_EVENTS:
            self.event_list.takeItem(self.event_list.count() - 1)

    def _view_end(self, now: float) -> float:
        """Time at the right edge of the plot for a frame drawn at ``now``.

        The view scrolls with the clock, not in steps of the blocks: between
        two blocks it keeps moving at the source's pace (``speed`` times real
        time), so a device that sends a packet every 20, 50 or 100 ms still
        scrolls smoothly at the display rate. It never runs more than
        ``MAX_LEAD_S`` ahead of the newest sample (a stalled source stops the
        scroll instead of drawing an empty edge), never moves backwards, and
        never lags behind the newest sample, so it adds no latency. Paused,
        ended, or as fast as possible (``speed`` 0): the edge is the newest
        sample.
        """
        data_end = float(self.envelope_ring.view()[0, -1])
        pace = getattr(self.worker.source, "speed", 1.0)
        if isinstance(pace, (int, float)) and 0 < pace < float("inf") and not self.model.paused \
                and self.model.ended is None and self._data_clock is not None:
            end = data_end + min((now - self._data_clock) * pace, MAX_LEAD_S)
        else:
            end = data_end
        if self._shown_end is not None and data_end - self.window_s < self._shown_end:
            end = max(end, self._shown_end)
        return end

    def _draw(self, t_end: float, new_data: bool = True) -> None:
        t_start = t_end - self.window_s
        self._shown_end = t_end
        if new_data:
            view = self.ring.view()
            env = self.envelope_ring.view()
            t_env = env[0]
            # From the last bin before the left edge (the lines reach the
            # edge): views of the rings, no copy until each curve's Qt array.
            first = max(0, int(np.searchsorted(t_env, t_start)) - 1)
            x, x_env = view[0, 2 * first:], t_env[first:]
            for ch, plot in enumerate(self.channel_plots):
                plot.set_data(x, view[1 + ch, 2 * first:], x_env, env[1 + ch, first:])
        tops = self._scale_tops(t_start)
        for ch, plot in enumerate(self.channel_plots):
            top = tops[ch]
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
        for plot in self.channel_plots:
            plot.set_time(t_end)
        # Ask for the paint of this frame directly: left to the scene's own
        # change tracking, about one frame in six was merged into the next.
        self.plots.viewport().update()

    def _scale_tops(self, t_start: float) -> np.ndarray:
        """Top of each lane's scale: 1.3 × the highest envelope in view, at least 3 × the contract threshold.

        The scale follows the envelope, not the raw filtered signal, whose
        peaks are 3-4 times higher: the envelope against its thresholds is
        what the user reads, and the filtered trace is a backdrop that may
        be cut at the edges. The floor keeps the thresholds and the resting
        band clearly visible while the muscle rests.
        """
        peaks = self.peak_ring.view()
        first = int(np.searchsorted(peaks[0], t_start))
        n = len(self.channel_plots)
        tops = peaks[1:, first:].max(axis=1) * 1.3 if first < peaks.shape[1] else np.zeros(n)
        floors = np.fromiter((plot.floor for plot in self.channel_plots), dtype=float, count=n)
        return np.maximum(np.maximum(tops, floors), 1e-6)

    def _rate_for_width(self, width_px: float) -> float:
        """Display bins per second that put ``bins_per_px`` bins on each pixel column."""
        return max(1.0, self.bins_per_px * float(width_px) / self.window_s)

    def _update_display_rate(self) -> None:
        """Ask the worker for bins matching the plot's width (on a clear change of width)."""
        if not self.channel_plots:
            return
        width = self.lanes_plot.getViewBox().width()
        if width < 50:
            # Not laid out yet (the stream just started): the viewport less
            # the left axis is close enough; the status refresh corrects it.
            width = self.plots.viewport().width() - self.lanes_plot.getAxis("left").width() - 10
            if width < 50:
                return
        rate = self._rate_for_width(min(width, MAX_PLOT_PX))
        if abs(rate - self._requested_rate) > 0.1 * self._requested_rate:
            self._requested_rate = rate
            self.worker.set_display_rate(rate)

    def _update_panels(self, now: float) -> None:
        refresh_text = now - self._last_text >= TEXT_PERIOD_S
        if refresh_text:
            self._last_text = now
        refresh_gauge = now - self._last_gauge >= GAUGE_PERIOD_S
        if refresh_gauge:
            self._last_gauge = now
        for ch, panel in self.panels.items():
            state = self.model.state(ch)
            panel.set_state(state, self.model.subtitle(ch))
            if refresh_text:
                panel.set_level(self.model.level_text(ch), self.model.percent_text(ch))
            if refresh_gauge:
                fraction, low, high, marks = self.model.gauge(ch)
                panel.gauge.set_values(fraction, low, high, marks,
                                       palette.STATE_COLOURS.get(state, (palette.GREY,))[0])
        if refresh_gauge and self.model.phase is not None:
            self.session_panel.setVisible(True)
            phase = self.model.phase
            self.session_panel.show_status(self.model.cue_word(), self.model.phase_text(),
                                           self.model.countdown_text(), 1.0 if phase.done else phase.progress)

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

    def _on_painted(self, when: float, seconds: float = 0.0) -> None:
        self.stats.painted(when, seconds)
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
