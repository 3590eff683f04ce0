"""Widgets of the live window: feedback panel, level gauge, channel plot."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets, sip

from biofeedback.ui import palette

#: Event markers older than the window are removed; at most this many stay.
MAX_MARKERS = 64
#: Labels of instant events closer than this (s) to the newest sample are
#: right-aligned, so they do not run off the plot.
RIGHT_ALIGN_S = 1.5


def font(points: int, bold: bool = False) -> QtGui.QFont:
    f = QtGui.QFont()
    f.setPointSize(points)
    f.setBold(bold)
    return f


def fit_font(label: QtWidgets.QLabel, points: int) -> None:
    """Largest bold font up to ``points`` at which the label's text fits its width."""
    available = max(100, label.width() - 20)
    size = points
    needed = QtGui.QFontMetrics(font(size, bold=True)).horizontalAdvance(label.text())
    if needed > available:
        size = max(14, int(size * available / needed))
    if label.font().pointSize() != size:
        label.setFont(font(size, bold=True))


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
        fit_font(self.word, palette.STATE_PT)

    def resizeEvent(self, event):  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._fit_word()

    def set_level(self, level_text: str, percent_text: str) -> None:
        if self.level.text() != level_text:
            self.level.setText(level_text)
        if self.percent.text() != percent_text:
            self.percent.setText(percent_text)


class SessionPanel(QtWidgets.QFrame):
    """A guided session's cue: RELAX or CONTRACT in large words, the seconds left and the phase's progress."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        self.cue = QtWidgets.QLabel("")
        self.cue.setFont(font(palette.CUE_PT, bold=True))
        self.cue.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.cue.setMinimumHeight(64)
        self.cue.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self.countdown = QtWidgets.QLabel("")
        self.countdown.setFont(font(palette.LEVEL_PT, bold=True))
        self.countdown.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.countdown.setMinimumWidth(QtGui.QFontMetrics(self.countdown.font()).horizontalAdvance("888 s") + 8)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.cue, 1)
        top.addWidget(self.countdown)
        self.phase = QtWidgets.QLabel("")
        self.phase.setFont(font(palette.TEXT_PT))
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(12)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.phase)
        bottom.addWidget(self.progress, 1)
        layout.addLayout(top)
        layout.addLayout(bottom)
        self._shown = None

    def show_status(self, word: str, phase: str, countdown: str, progress: float) -> None:
        """Show a cue (``RELAX``, ``CONTRACT`` or ``DONE``), phase name, countdown and progress (0..1)."""
        shown = (word, phase, countdown, int(round(1000 * progress)))
        if shown == self._shown:
            return  # labels re-layout on every setText: skip when unchanged
        if self._shown is None or word != self._shown[0]:
            background, text = palette.CUE_COLOURS.get(word, (palette.LIGHT_GREY, palette.BLACK))
            self.cue.setText(word)
            self.cue.setStyleSheet(f"background-color: {background}; color: {text}; border-radius: 6px;")
            fit_font(self.cue, palette.CUE_PT)
        if self._shown is None or phase != self._shown[1]:
            self.phase.setText(phase)
        if self._shown is None or countdown != self._shown[2]:
            self.countdown.setText(countdown)
        self.progress.setValue(shown[3])
        self._shown = shown

    def resizeEvent(self, event):  # noqa: N802 - Qt name
        super().resizeEvent(event)
        fit_font(self.cue, palette.CUE_PT)


class TimedGraphicsLayout(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that reports when it has painted (for latency) and how long it took."""

    painted = QtCore.pyqtSignal(float, float)

    def __init__(self, clock, parent=None):
        super().__init__(parent)
        self._clock = clock

    def paintEvent(self, event):  # noqa: N802 - Qt name
        t0 = time.perf_counter()
        super().paintEvent(event)
        self.painted.emit(self._clock(), time.perf_counter() - t0)


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


_BOX = QtCore.QRectF(-1e9, -1e9, 2e9, 2e9)


class QtArray:
    """A preallocated Qt array (``QPointF`` or ``QLineF``) with a NumPy view of its memory.

    The traces are copied into it with NumPy slice assignments and handed to
    ``QPainter.drawPolyline`` / ``drawLines`` as they are: no Python object
    per point and no allocation per frame (the memory only grows, when a
    wider window needs more points than ever before).
    """

    def __init__(self, klass, fields: int, capacity: int = 0):
        self._klass, self._fields = klass, fields
        self._array = None
        self.capacity = 0
        self.size = 0
        self.reserve(max(1, capacity))

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        self._array = sip.array(self._klass, int(capacity))
        self.capacity = int(capacity)
        memory = sip.voidptr(self._array, self.capacity * self._fields * 8)
        self._values = np.frombuffer(memory, dtype=np.float64).reshape(self.capacity, self._fields)

    def values(self, n: int) -> np.ndarray:
        """Writable view of the first ``n`` elements, shape ``(n, fields)``; sets the size."""
        self.reserve(n)
        self.size = int(n)
        return self._values[:n]

    def drawable(self):
        """The first :attr:`size` elements, for ``QPainter``."""
        return self._array[:self.size]


class _Polyline(QtWidgets.QGraphicsItem):
    """A trace drawn with one ``drawPolyline`` call: the cheapest line Qt has.

    pyqtgraph's ``PlotCurveItem`` costs tens of microseconds of Python per
    update and per paint (option handling, bounds, path caches) and draws
    wide pens by stroking every segment into a polygon. Here the points sit
    in a preallocated Qt array, the bounding box is fixed (the lane clips
    its children and the view never auto-ranges), and the pen is always a
    1-pixel cosmetic pen, which Qt's raster engine draws on its fast path.
    ``thick`` draws the polyline a second time one device pixel lower: a
    2-pixel line for the price of two thin ones (a real 2-pixel pen costs
    about eight times as much).

    Parameters
    ----------
    colour : str
    thick : bool
    pairs : bool
        The points are ``(x0, y0), (x1, y1)`` pairs drawn as separate
        segments (``drawLines``): the vertical min-max strokes of the
        filtered signal.
    """

    def __init__(self, colour: str, thick: bool = False, pairs: bool = False):
        super().__init__()
        pen = QtGui.QPen(QtGui.QColor(colour))
        pen.setWidth(0)  # cosmetic, one pixel whatever the transform
        pen.setCosmetic(True)
        self.pen = pen
        self.thick = thick
        self.pairs = pairs
        self.buffer = QtArray(QtCore.QLineF if pairs else QtCore.QPointF, 4 if pairs else 2, 1024)
        self._shift = QtGui.QTransform.fromTranslate(0.0, 1.0)

    def set_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Copy the points in (``pairs``: ``x`` and ``y`` of even length, two points a segment)."""
        n = int(x.shape[0])
        if self.pairs:
            n -= n % 2
            points = self.buffer.values(n // 2).reshape(-1, 2)
        else:
            points = self.buffer.values(n)
        points[:, 0] = x[:n]
        points[:, 1] = y[:n]
        self.update()

    def clear(self) -> None:
        self.buffer.size = 0
        self.update()

    def point_count(self) -> int:
        return self.buffer.size * (2 if self.pairs else 1)

    def boundingRect(self):  # noqa: N802 - Qt name
        return _BOX

    def paint(self, p, *_args):
        if self.buffer.size == 0:
            return
        p.setPen(self.pen)
        draw = p.drawLines if self.pairs else p.drawPolyline
        items = self.buffer.drawable()
        draw(items)
        if self.thick:
            p.setTransform(p.transform() * self._shift)  # one device pixel down
            draw(items)


class HLines(QtWidgets.QGraphicsItem):
    """Horizontal lines across the whole view, 1 or 2 device pixels thick.

    Each line is one ``fillRect`` in device coordinates at the height its
    value maps to, which is all a threshold or a lane separator needs; a
    line item spanning "everything" in data units makes Qt clip and stroke a
    segment millions of pixels long at every frame.

    Parameters
    ----------
    colours : sequence of str
        One colour per line.
    width : int
        Thickness in device pixels.
    """

    def __init__(self, colours, width: int = 2):
        super().__init__()
        self.colours = [QtGui.QColor(c) for c in colours]
        self.values = [None] * len(self.colours)
        self.width = int(width)

    def set_values(self, values) -> None:
        self.values = [None if v is None else float(v) for v in values]
        self.update()

    def boundingRect(self):  # noqa: N802 - Qt name
        return _BOX

    def paint(self, p, _option, widget=None):
        transform = p.transform()
        span = float(widget.width()) if widget is not None else 1e4
        p.resetTransform()
        for colour, value in zip(self.colours, self.values):
            if value is None:
                continue
            y = round(transform.map(QtCore.QPointF(0.0, value)).y())
            p.fillRect(QtCore.QRectF(0.0, y - self.width // 2, span, self.width), colour)
        p.setTransform(transform)


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


class _Label(QtWidgets.QGraphicsTextItem):
    """An event label: placed in data coordinates, drawn unscaled, cached as a pixmap.

    Qt keeps it unscaled (``ItemIgnoresTransformations``) and scrolls the
    cached pixmap with its lane, so a label costs a blit per frame and no
    Python at all (pyqtgraph's ``TextItem`` recomputes its transform in
    Python whenever the view moves).
    """

    def __init__(self, text: str, colour: str):
        super().__init__(text)
        self.setDefaultTextColor(QtGui.QColor(colour))
        self.setFont(font(palette.SMALL_PT, bold=True))
        self.setFlag(self.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setCacheMode(self.CacheMode.DeviceCoordinateCache)

    def align_right(self) -> None:
        """Anchor the label by its top-right corner instead of its top-left."""
        self.setTransform(QtGui.QTransform.fromTranslate(-self.boundingRect().width(), 0.0))


class ChannelPlot:
    """One channel's lane in the shared plot: filtered signal, envelope, band, thresholds, events.

    All channels share one plot (one view, one time axis): each channel's
    items hang under a lane item whose transform maps the channel's units
    into its horizontal strip and which clips them to it. A rescale changes
    that one transform, never the data.

    The window keeps the reduced traces in preallocated
    :class:`~biofeedback.live.ring.MirrorRing` buffers and each frame copies
    the part in view into each curve's preallocated Qt array (one update
    per curve per frame).

    Drawing cost matters at 60 frames per second on a small machine, so
    the items are the cheapest that do the job: :class:`_Polyline` traces
    with 1-pixel cosmetic pens (the worker already reduced the data to
    display resolution, keeping each bin's minimum and maximum so no spike
    is lost; the envelope is drawn twice, one pixel apart, to look 2 pixels
    wide), plain rectangles for the resting band and the event spans,
    :class:`HLines` for the thresholds, and event labels cached as pixmaps.

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
        # Min/max pairs as separate vertical strokes (drawLines).
        self.filtered_curve = _Polyline(palette.FILTERED_PEN, pairs=True)
        self.envelope_curve = _Polyline(palette.ENVELOPE_PEN, thick=True)
        self.envelope_curve.setZValue(10)
        self.thresholds = HLines([palette.BLUE, palette.VERMILLION], width=2)  # relax below, contract above
        self.thresholds.setZValue(5)
        self.thresholds.setVisible(False)
        for item in (self.band, self.filtered_curve, self.envelope_curve, self.thresholds):
            item.setParentItem(self.lane)
        self.markers: list = []
        self.live = None  # growing mark of a burst in progress
        self.top = 0.0
        self.t_end = 0.0
        self.floor = 0.0
        self.set_scale(1.0)

    def set_scale(self, top: float) -> None:
        """Show ``-0.6 top .. top`` of the channel's units in its lane."""
        if top == self.top:
            return
        self.top = top
        self._apply_transform()
        self.lane.set_range(top)
        for marker in self.markers:
            _, item, text, onset = marker
            if text is not None:
                text.setPos(item.rect().right() if marker is self.live else onset, top)

    def set_time(self, t_end: float) -> None:
        """Scroll: the lane's time ``t_end`` goes to the right edge (view x = 0).

        The shared view keeps a fixed range (``-window .. 0``, "seconds
        ago"); scrolling changes one transform per lane, which Qt applies
        to everything in the lane, instead of the view range, which sets
        off pyqtgraph's range-change machinery (signals, matrix updates,
        every item told its view changed) at every frame.
        """
        if t_end != self.t_end:
            self.t_end = t_end
            self._apply_transform()

    def _apply_transform(self) -> None:
        inner = 1.0 - 2 * LANE_MARGIN
        k = inner / ((1 + BELOW_ZERO) * self.top)
        # x' = x - t_end; y' = k y + offset of the lane's zero line.
        self.lane.setTransform(QtGui.QTransform(1.0, 0.0, 0.0, k, -self.t_end,
                                                self.base + LANE_MARGIN + BELOW_ZERO * self.top * k))

    def to_view(self, value: float) -> float:
        """View coordinate of a value in the channel's units."""
        inner = 1.0 - 2 * LANE_MARGIN
        return self.base + LANE_MARGIN + (value + BELOW_ZERO * self.top) * inner / ((1 + BELOW_ZERO) * self.top)

    def set_thresholds(self, level, sigma, on, off) -> None:
        low, high = max(0.0, level - 2 * sigma), level + 2 * sigma
        self.band.setRect(QtCore.QRectF(-_FAR, low, 2 * _FAR, high - low))
        self.thresholds.set_values([off, on])
        self.thresholds.setVisible(True)
        self.floor = 3.0 * on

    def set_data(self, x_pairs, filtered_pairs, x_env, envelope) -> None:
        """The traces in view: min/max pairs of the filtered signal and the envelope."""
        self.filtered_curve.set_data(x_pairs, filtered_pairs)
        self.envelope_curve.set_data(x_env, envelope)

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
            text = _Label(label, palette.LABEL_COLOURS.get(kind, palette.EVENT_COLOURS.get(kind, palette.GREY)))
            text.setParentItem(self.lane)
            text.setPos(onset, self.top)
            if offset <= onset and onset > self.t_end - RIGHT_ALIGN_S:
                text.align_right()  # an instant at the live edge: its label to the left of its line
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
            text.align_right()
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
        """Forget the traces and markers (after a seek)."""
        self.filtered_curve.clear()
        self.envelope_curve.clear()
        while self.markers:
            self._remove(self.markers.pop())
        self.live = None


def setup_lanes_plot(plot: pg.PlotItem, n_lanes: int, window_s: float) -> None:
    """Prepare the shared plot: fixed lanes, one time axis, no mouse interaction.

    The view's range never changes: x runs over ``-window_s .. 0``
    ("seconds ago", 0 at the newest sample) and each lane scrolls its own
    content (:meth:`ChannelPlot.set_time`). So the time axis is laid out
    once and drawn from a cache (on a scrolling axis that layout alone costs
    about 2 ms per frame), and no range-change signal runs per frame.
    """
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.enableAutoRange(x=False, y=False)
    plot.setYRange(0, n_lanes, padding=0)
    plot.setXRange(-window_s, 0.0, padding=0)
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
        separators = HLines(["#BBBBBB"] * (n_lanes - 1), width=1)
        separators.set_values(range(1, n_lanes))
        plot.addItem(separators, ignoreBounds=True)
    for axis in ("left", "bottom"):
        # The axes only change on a rescale: drawn from a cached pixmap at
        # the other frames of the scroll.
        plot.getAxis(axis).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)


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
