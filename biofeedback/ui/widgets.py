"""Widgets of the live window: feedback panel, level gauge, channel plot."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from biofeedback.live.ring import MirrorRing
from biofeedback.ui import palette

#: Event markers older than the window are removed; at most this many stay.
MAX_MARKERS = 64


def font(points: int, bold: bool = False) -> QtGui.QFont:
    f = QtGui.QFont()
    f.setPointSize(points)
    f.setBold(bold)
    return f


class LevelGauge(QtWidgets.QWidget):
    """Horizontal bar: the level, the target zone and the two thresholds.

    Painted by hand (a handful of rectangles) so an update costs almost
    nothing; values are fractions of the gauge's scale (0..1).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(44)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self.fraction = 0.0
        self.zone = (0.0, 0.0)
        self.marks = ()
        self.colour = QtGui.QColor(palette.BLUE)

    def set_values(self, fraction, low, high, marks, colour) -> None:
        new = (round(fraction, 3), round(low, 3), round(high, 3), tuple(round(m, 3) for m in marks), colour)
        if new == (round(self.fraction, 3), round(self.zone[0], 3), round(self.zone[1], 3),
                   tuple(round(m, 3) for m in self.marks), self.colour.name()):
            return  # nothing visible changed: no repaint
        self.fraction, self.zone, self.marks = fraction, (low, high), marks
        self.colour = QtGui.QColor(colour)
        self.update()

    def paintEvent(self, _event):  # noqa: N802 - Qt name
        p = QtGui.QPainter(self)
        r = self.rect().adjusted(1, 1, -1, -1)
        w, h = r.width(), r.height()
        p.fillRect(r, QtGui.QColor("#F2F2F2"))
        low, high = self.zone
        if high > low:
            zone = QtGui.QColor(palette.TARGET_ZONE)
            zone.setAlpha(90)
            p.fillRect(QtCore.QRectF(r.left() + low * w, r.top(), (high - low) * w, h), zone)
        bar_h = h * 0.56
        p.fillRect(QtCore.QRectF(r.left(), r.top() + (h - bar_h) / 2, self.fraction * w, bar_h), self.colour)
        pen = QtGui.QPen(QtGui.QColor(palette.BLACK))
        pen.setWidth(3)
        p.setPen(pen)
        for m in self.marks:
            x = r.left() + m * w
            p.drawLine(QtCore.QPointF(x, r.top()), QtCore.QPointF(x, r.bottom()))
        p.setPen(QtGui.QPen(QtGui.QColor("#666666")))
        p.drawRect(r)
        p.end()


class FeedbackPanel(QtWidgets.QFrame):
    """Big state word, a gauge, the level and its percentage for one channel."""

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        self.name = QtWidgets.QLabel(name)
        self.name.setFont(font(palette.TEXT_PT, bold=True))
        self.word = QtWidgets.QLabel("WAITING")
        self.word.setFont(font(palette.STATE_PT, bold=True))
        self.word.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.word.setMinimumHeight(84)
        self.word.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self.subtitle = QtWidgets.QLabel("")
        self.subtitle.setFont(font(palette.TEXT_PT + 2))
        self.subtitle.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.gauge = LevelGauge()
        row = QtWidgets.QHBoxLayout()
        self.level = QtWidgets.QLabel("—")
        self.level.setFont(font(palette.LEVEL_PT, bold=True))
        self.percent = QtWidgets.QLabel("")
        self.percent.setFont(font(palette.TEXT_PT + 4))
        self.percent.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.level)
        row.addWidget(self.percent, 1)
        for w in (self.name, self.word, self.subtitle, self.gauge):
            layout.addWidget(w)
        layout.addLayout(row)
        self._shown = None
        self.set_state("WAITING", "waiting for data")

    def set_state(self, word: str, subtitle: str) -> None:
        if (word, subtitle) == self._shown:
            return  # labels re-layout on every setText: skip when unchanged
        self._shown = (word, subtitle)
        background, text = palette.STATE_COLOURS.get(word, (palette.LIGHT_GREY, palette.BLACK))
        self.word.setText(word)
        self.word.setStyleSheet(f"background-color: {background}; color: {text}; border-radius: 6px;")
        self.subtitle.setText(subtitle)
        self._fit_word()

    def _fit_word(self) -> None:
        """Largest font up to STATE_PT at which the word fits the panel's width."""
        word = self.word.text()
        available = max(100, self.word.width() - 20)
        size = palette.STATE_PT
        metrics = QtGui.QFontMetrics(font(size, bold=True))
        needed = metrics.horizontalAdvance(word)
        if needed > available:
            size = max(14, int(size * available / needed))
        if self.word.font().pointSize() != size:
            self.word.setFont(font(size, bold=True))

    def resizeEvent(self, event):  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._fit_word()

    def set_level(self, level_text: str, percent_text: str) -> None:
        if self.level.text() != level_text:
            self.level.setText(level_text)
        if self.percent.text() != percent_text:
            self.percent.setText(percent_text)


class TimedGraphicsLayout(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that reports when it has painted (for latency)."""

    painted = QtCore.pyqtSignal(float)

    def __init__(self, clock, parent=None):
        super().__init__(parent)
        self._clock = clock

    def paintEvent(self, event):  # noqa: N802 - Qt name
        super().paintEvent(event)
        self.painted.emit(self._clock())


def _span_rect(x0: float, x1: float, brush) -> QtWidgets.QGraphicsRectItem:
    """A rectangle over the whole height of a lane, from x0 to x1 (seconds)."""
    item = QtWidgets.QGraphicsRectItem(QtCore.QRectF(x0, -_FAR, max(x1 - x0, 0.0), 2 * _FAR))
    item.setBrush(brush)
    item.setPen(pg.mkPen(None))
    return item


# Items that span "the whole height" or "the whole width" use this extent
# in data units instead of following the view range, so scrolling moves
# nothing but the view. Far enough for any signal in µV or counts.
_FAR = 1e7

#: Share of the lane height below zero (the filtered trace's negative half;
#: the envelope, never negative, gets the rest).
BELOW_ZERO = 0.6
LANE_MARGIN = 0.04


class _TraceCurve(pg.PlotCurveItem):
    """A curve whose bounds are never computed from its data.

    pyqtgraph finds a curve's bounding box with a NaN-aware min and max over
    all its points each time the data change, which every curve does at
    every frame. The lane clips its children anyway and the view never
    auto-ranges, so a fixed, generous box does the same job for free.
    """

    _BOX = QtCore.QRectF(-1e9, -1e9, 2e9, 2e9)

    def boundingRect(self):  # noqa: N802 - Qt name
        return self._BOX

    def dataBounds(self, ax, frac=1.0, orthoRange=None):  # noqa: N802 - pyqtgraph name
        return None, None


class _Lane(pg.GraphicsObject):
    """Parent of one channel's items: maps its units into its lane and clips to it."""

    def __init__(self):
        super().__init__()
        self.setFlag(self.GraphicsItemFlag.ItemClipsChildrenToShape)
        self._rect = QtCore.QRectF(-_FAR, -BELOW_ZERO, 2 * _FAR, 1 + BELOW_ZERO)

    def set_range(self, top: float) -> None:
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF(-_FAR, -BELOW_ZERO * top, 2 * _FAR, (1 + BELOW_ZERO) * top)

    def boundingRect(self):  # noqa: N802 - Qt name
        return self._rect

    def shape(self):
        path = QtGui.QPainterPath()
        path.addRect(self._rect)
        return path

    def paint(self, *args):
        pass


class ChannelPlot:
    """One channel's lane in the shared plot: filtered signal, envelope, band, thresholds, events.

    All channels share one plot (one view, one time axis): each channel's
    items hang under a lane item whose transform maps the channel's units
    into its horizontal strip and which clips them to it. A rescale changes
    that one transform, never the data.

    The window keeps the reduced traces in preallocated
    :class:`~biofeedback.live.ring.MirrorRing` buffers and each frame hands
    contiguous views to ``setData`` once per curve.

    Drawing cost matters at 60 frames per second on a small machine, so
    the items are the cheapest that do the job: bare ``PlotCurveItem``
    curves (no per-frame clipping or downsampling: the worker already
    reduced the data to display resolution, keeping each bin's minimum and
    maximum so no spike is lost), plain rectangles for the resting band and
    the event spans, solid threshold lines, and a 2-pixel envelope (dashed
    or wider strokes cost several milliseconds per frame in Qt's raster
    engine).

    Parameters
    ----------
    plot : pg.PlotItem
        The shared plot.
    index, n_lanes : int
        Position of this lane (0 at the top) and number of lanes.
    """

    def __init__(self, plot: pg.PlotItem, name: str, units: str, index: int, n_lanes: int):
        self.plot = plot
        self.name = name
        self.units = units
        self.base = float(n_lanes - 1 - index)  # lane spans [base, base + 1] in view units
        self.lane = _Lane()
        plot.addItem(self.lane, ignoreBounds=True)
        self.band = QtWidgets.QGraphicsRectItem(QtCore.QRectF(-_FAR, 0, 2 * _FAR, 0))
        self.band.setBrush(pg.mkBrush(*palette.REST_BAND))
        self.band.setPen(pg.mkPen(None))
        self.band.setZValue(-20)
        # Min/max pairs as separate vertical strokes (drawLines), cheaper
        # than one path through all of them.
        self.filtered_curve = _TraceCurve(pen=pg.mkPen(palette.FILTERED_PEN, width=1), skipFiniteCheck=True,
                                          connect="pairs")
        self.filtered_curve.setSegmentedLineMode("on")
        self.envelope_curve = _TraceCurve(pen=pg.mkPen(palette.ENVELOPE_PEN, width=2), skipFiniteCheck=True)
        self.envelope_curve.setZValue(10)
        self.relax_line = pg.PlotCurveItem(pen=pg.mkPen(palette.BLUE, width=2))
        self.contract_line = pg.PlotCurveItem(pen=pg.mkPen(palette.VERMILLION, width=2))
        for line in (self.relax_line, self.contract_line):
            line.setZValue(5)
            line.setVisible(False)
        for item in (self.band, self.filtered_curve, self.envelope_curve, self.relax_line, self.contract_line):
            item.setParentItem(self.lane)
        self.markers: list = []
        self.live = None  # growing mark of a burst in progress
        self.top = 0.0
        self.floor = 0.0
        self._peaks = MirrorRing(1, 2048)      # per-block envelope maxima, for the scale
        self._peak_times = MirrorRing(1, 2048)
        self.set_scale(1.0)

    def set_scale(self, top: float) -> None:
        """Show ``-0.6 top .. top`` of the channel's units in its lane."""
        if top == self.top:
            return
        self.top = top
        inner = 1.0 - 2 * LANE_MARGIN
        k = inner / ((1 + BELOW_ZERO) * top)
        transform = QtGui.QTransform()
        transform.translate(0.0, self.base + LANE_MARGIN + BELOW_ZERO * top * k)
        transform.scale(1.0, k)
        self.lane.setTransform(transform)
        self.lane.set_range(top)
        for marker in self.markers:
            _, item, text, onset = marker
            if text is not None:
                text.setPos(item.rect().right() if marker is self.live else onset, top)

    def to_view(self, value: float) -> float:
        """View coordinate of a value in the channel's units."""
        inner = 1.0 - 2 * LANE_MARGIN
        return self.base + LANE_MARGIN + (value + BELOW_ZERO * self.top) * inner / ((1 + BELOW_ZERO) * self.top)

    def set_thresholds(self, level, sigma, on, off) -> None:
        low, high = max(0.0, level - 2 * sigma), level + 2 * sigma
        self.band.setRect(QtCore.QRectF(-_FAR, low, 2 * _FAR, high - low))
        far = np.array([-_FAR, _FAR])
        self.relax_line.setData(far, np.array([off, off]))
        self.contract_line.setData(far, np.array([on, on]))
        self.relax_line.setVisible(True)
        self.contract_line.setVisible(True)
        self.floor = 3.0 * on

    def add_peak(self, t: float, peak: float) -> None:
        self._peaks.write(np.array([[peak]]))
        self._peak_times.write(np.array([[t]]))

    def scale_top(self, t_start: float) -> float:
        """Top of the y scale: 1.3 × the highest envelope in view, at least 3 × the contract threshold.

        The scale follows the envelope, not the raw filtered signal, whose
        peaks are 3-4 times higher: the envelope against its thresholds is
        what the user reads, and the filtered trace is a backdrop that may
        be cut at the edges. The floor keeps the thresholds and the resting
        band clearly visible while the muscle rests.
        """
        times = self._peak_times.view()[0]
        peaks = self._peaks.view()[0]
        first = int(np.searchsorted(times, t_start))
        top = float(peaks[first:].max()) * 1.3 if first < peaks.size else 0.0
        return max(top, self.floor, 1e-6)

    def add_marker(self, onset: float, offset: float, kind: str, label: str) -> None:
        """Mark an event: a tinted span with a label, or a line for an instant."""
        colour = pg.mkColor(palette.EVENT_COLOURS.get(kind, palette.GREY))
        if offset - onset > 0:
            fill = pg.mkColor(colour)
            fill.setAlpha(60)
            item = _span_rect(onset, offset, pg.mkBrush(fill))
        else:
            item = QtWidgets.QGraphicsLineItem(onset, -_FAR, onset, _FAR)
            pen = pg.mkPen(colour, width=2)
            pen.setCosmetic(True)
            item.setPen(pen)
        item.setZValue(-10)
        item.setParentItem(self.lane)
        text = None
        if label:
            text = pg.TextItem(label, color=pg.mkColor(palette.LABEL_COLOURS.get(kind, palette.EVENT_COLOURS.get(
                kind, palette.GREY))), anchor=(0, 0))
            text.setFont(font(palette.SMALL_PT, bold=True))
            text.setParentItem(self.lane)
            text.setPos(onset, self.top)
        self.markers.append((offset, item, text, onset))
        while len(self.markers) > MAX_MARKERS:
            self._remove(self.markers.pop(0))

    def start_live_span(self, t: float, kind: str, label: str) -> None:
        """Mark a burst the moment it is recognised; it grows until the event is reported."""
        self.end_live_span()
        self.add_marker(t, t + 1e-3, kind, label)
        self.live = self.markers[-1]
        text = self.live[2]
        if text is not None:
            # At the live edge a left-anchored label would run off the
            # plot: keep it right-aligned on the growing edge instead.
            text.setAnchor((1, 0))
            text.setPos(t, self.top)

    def extend_live_span(self, t: float) -> None:
        if self.live is not None:
            rect = self.live[1].rect()
            rect.setRight(max(rect.left(), t))
            self.live[1].setRect(rect)
            if self.live[2] is not None:
                self.live[2].setPos(t, self.top)

    def end_live_span(self) -> None:
        """Remove the growing mark (the detector's event replaces it)."""
        if self.live is not None:
            if self.live in self.markers:
                self.markers.remove(self.live)
                self._remove(self.live)
            self.live = None

    def drop_markers_before(self, t: float) -> None:
        while self.markers and self.markers[0][0] < t:
            self._remove(self.markers.pop(0))

    def _remove(self, marker) -> None:
        _, item, text, _ = marker
        scene = item.scene()
        for thing in (item, text):
            if thing is not None:
                thing.setParentItem(None)
                if scene is not None:
                    scene.removeItem(thing)

    def clear(self) -> None:
        """Forget the scale history and markers (after a seek)."""
        self._peaks.clear()
        self._peak_times.clear()
        while self.markers:
            self._remove(self.markers.pop())
        self.live = None


def setup_lanes_plot(plot: pg.PlotItem, n_lanes: int, window_s: float) -> None:
    """Prepare the shared plot: fixed lanes, one time axis, no mouse interaction.

    The time axis reads "seconds ago" (0 at the newest sample) and does not
    follow the scrolling view: its ticks never change, so it is drawn once
    and cached instead of being laid out again at every frame (on a scrolling
    axis that layout alone costs about 2 ms per frame).
    """
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.enableAutoRange(x=False, y=False)
    plot.setYRange(0, n_lanes, padding=0)
    bottom = plot.getAxis("bottom")
    bottom.unlinkFromView()
    bottom.setRange(-window_s, 0.0)
    plot.setLabel("bottom", "seconds ago")
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTickFont(font(palette.SMALL_PT))
        plot.getAxis(axis).label.setFont(font(palette.SMALL_PT))
    for axis in ("left", "bottom", "top", "right"):
        # Hidden or not, a linked axis with an automatic SI prefix renders
        # its label again at every scroll step.
        plot.getAxis(axis).enableAutoSIPrefix(False)
    for axis in ("top", "right"):
        plot.getAxis(axis).unlinkFromView()
    plot.getAxis("left").setWidth(96)
    if n_lanes > 1:
        # Thin separators between the lanes, one item for all of them.
        ys = np.repeat(np.arange(1, n_lanes, dtype=float), 2)
        xs = np.tile([-_FAR, _FAR], n_lanes - 1)
        plot.addItem(pg.PlotCurveItem(xs, ys, connect="pairs", pen=pg.mkPen("#BBBBBB", width=1)), ignoreBounds=True)


def lane_ticks(lanes) -> list:
    """Left-axis ticks: the channel name at each lane's middle, its scale at the top and 0."""
    major, minor = [], []
    for lane in lanes:
        major.append((lane.to_view(0.35 * lane.top), lane.name))
        minor.append((lane.to_view(0.0), "0"))
        value = nice_below(0.85 * lane.top)
        text = f"{value:.0f}" if value >= 10 else f"{value:.2g}"
        minor.append((lane.to_view(value), f"{text} {lane.units}"))
    return [major, minor]


def nice_below(value: float) -> float:
    """Largest 1, 2 or 5 times a power of ten not above ``value``."""
    if not value > 0:
        return 0.0
    power = 10.0 ** np.floor(np.log10(value))
    for step in (5.0, 2.0, 1.0):
        if step * power <= value:
            return step * power
    return power
