"""What the feedback shows, without any drawing: shared by window and terminal.

:class:`FeedbackModel` applies the worker's messages (stream started,
blocks, stream ended) and answers the questions a display asks: which
state word, which level in which units, how many percent of rest or of the
maximum contraction, where the target zone of the gauge is, and what the
status line says. Keeping this out of the Qt code makes it testable
without a display and keeps the window and the terminal in agreement.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from biofeedback.live.quality import OK
from biofeedback.live.state import CALIBRATING, CHECK_ELECTRODE, CONTRACTING, RELAXED, SPASM, WAITING
from biofeedback.live.worker import LiveBlock, PhaseStatus, StreamEnded, StreamStarted, Thresholds

#: Readable unit names.
UNIT_LABELS = {"uv": "µV", "µv": "µV", "mv": "mV", "v": "V", "counts": "counts"}

#: Seconds without a block (and not paused) before the status says so.
NO_DATA_AFTER_S = 1.5

#: What each problem of the electrode check means, in words.
QUALITY_WORDS = {"flat": "flat signal (electrode off?)", "clipped": "clipped at the rails",
                 "missing": "no samples"}


def unit_label(units: str) -> str:
    return UNIT_LABELS.get(units.lower(), units)


def format_clock(seconds: float) -> str:
    """``75.3`` → ``"01:15"``."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class FeedbackModel:
    """State of the feedback display, fed with the worker's messages.

    Parameters
    ----------
    feedback_channels : sequence of str, optional
        Channels that get a feedback panel (default: the first channel).
    max_events : int
        Length of the event list kept.
    clock : callable
        Monotonic clock (replaceable in tests).
    """

    def __init__(self, feedback_channels=None, max_events: int = 200, clock=time.monotonic):
        self.requested = list(feedback_channels) if feedback_channels else None
        self.clock = clock
        self.started: StreamStarted | None = None
        self.ended: StreamEnded | None = None
        self.events: deque = deque(maxlen=max_events)
        self.notices: deque = deque(maxlen=20)
        self.thresholds: Thresholds | None = None
        self.states: list[str] = []
        self.levels = np.zeros(0)
        self.quality: list[str] = []
        self.calibration = ""
        self.samples_lost = 0
        self.position_s = 0.0
        self.paused = False
        self.display_paused = False
        self.blocks_received = 0
        self.last_block_at: float | None = None
        self.feedback_index: list[int] = []
        self.phase: PhaseStatus | None = None  # guided session status (with a cue provider)

    # -- input -----------------------------------------------------------------
    def apply(self, message):
        """Apply one worker message; returns it when it is a :class:`LiveBlock`."""
        if isinstance(message, StreamStarted):
            self.started = message
            self.ended = None
            n = message.info.n_channels
            self.states = [WAITING] * n
            self.levels = np.full(n, np.nan)
            self.quality = [OK] * n
            self.feedback_index = self._resolve_feedback(message.info.ch_names)
            self.phase = None
            return None
        if isinstance(message, StreamEnded):
            self.ended = message
            self.notices.append(message.reason)
            self.states = [WAITING] * len(self.states)
            self.calibration = ""
            return None
        if isinstance(message, LiveBlock):
            self.blocks_received += 1
            self.last_block_at = self.clock()
            if message.thresholds is not None:
                self.thresholds = message.thresholds
            self.states = list(message.states)
            if message.envelope.shape[1]:
                self.levels = message.levels
            self.quality = list(message.quality)
            self.calibration = message.calibration
            self.samples_lost = message.samples_lost
            self.position_s = message.position_s
            self.paused = message.paused
            self.events.extend(message.events)
            self.notices.extend(message.notices)
            if message.phase is not None:
                self.phase = message.phase
            return message
        return None

    def _resolve_feedback(self, names) -> list[int]:
        if not self.requested:
            return [0]
        if [str(r).lower() for r in self.requested] == ["all"]:
            return list(range(len(names)))
        index = []
        for want in self.requested:
            if want in names:
                index.append(names.index(want))
            elif str(want).isdigit() and 1 <= int(want) <= len(names):
                index.append(int(want) - 1)  # 1-based like the channel names ch1…
        return index or [0]

    # -- questions ------------------------------------------------------------
    @property
    def ch_names(self) -> tuple:
        return self.started.info.ch_names if self.started else ()

    @property
    def units(self) -> str:
        return unit_label(self.started.info.units) if self.started else ""

    def state(self, ch: int) -> str:
        return self.states[ch] if ch < len(self.states) else WAITING

    def subtitle(self, ch: int) -> str:
        """Second line under the state word."""
        state = self.state(ch)
        if state == CALIBRATING:
            return self.calibration
        if state == CHECK_ELECTRODE:
            return QUALITY_WORDS.get(self.quality[ch], self.quality[ch])
        if state == WAITING:
            if self.ended is not None:
                return "stream ended"
            return "waiting for data" if self.started is None or self.last_block_at is None else ""
        if state == SPASM:
            return "breathe out, let go"
        if state == CONTRACTING:
            return "contracting"
        if state == RELAXED:
            return "at rest"
        return ""

    def level(self, ch: int) -> float:
        return float(self.levels[ch]) if ch < len(self.levels) else math.nan

    def level_text(self, ch: int) -> str:
        value = self.level(ch)
        if not math.isfinite(value):
            return f"— {self.units}"
        return f"{value:.1f} {self.units}" if value < 1000 else f"{value:.0f} {self.units}"

    def percent_text(self, ch: int) -> str:
        """``"35 %MVC"`` when an MVC is known, else ``"140 % of rest"``."""
        value, th = self.level(ch), self.thresholds
        if th is None or not math.isfinite(value):
            return ""
        if th.mvc is not None and ch < len(th.mvc) and math.isfinite(th.mvc[ch]) and th.mvc[ch] > 0:
            return f"{100 * value / th.mvc[ch]:.0f} %MVC"
        if th.level[ch] > 0:
            return f"{100 * value / th.level[ch]:.0f} % of rest"
        return ""

    def gauge(self, ch: int, mode: str | None = None):
        """``(fraction, zone_low, zone_high, marks)`` for a bar gauge, all in 0..1.

        The scale tops at 2.5 times the contract threshold (or the MVC when
        it is higher, or 1.25 times a guided phase's target when that is
        higher still), so the resting band and the thresholds stay visible
        and a strong contraction fills the bar. The target zone is the
        current phase's target band in a guided session; otherwise the
        resting band (below the relax threshold) in ``relax`` mode and above
        the contract threshold in ``train`` mode. ``marks`` are the relax
        and contract thresholds.
        """
        th = self.thresholds
        value = self.level(ch)
        if th is None:
            return 0.0, 0.0, 0.0, ()
        target = self.target_band()
        top = 2.5 * th.on[ch]
        if th.mvc is not None and ch < len(th.mvc) and math.isfinite(th.mvc[ch]):
            top = max(top, th.mvc[ch])
        if target is not None:
            top = max(top, 1.25 * target[1])
        top = top if top > 0 else 1.0
        fraction = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value / top))
        off, on = th.off[ch] / top, th.on[ch] / top
        mode = mode or (self.started.mode if self.started else "relax")
        if target is not None:
            low, high = min(1.0, target[0] / top), min(1.0, target[1] / top)
        else:
            low, high = (0.0, off) if mode == "relax" else (on, 1.0)
        return fraction, low, high, (off, on)

    # -- guided session ----------------------------------------------------------
    def target_band(self):
        """``(low, high)`` target of the current guided phase in the stream's units, or None."""
        phase = self.phase
        if phase is None or phase.done or phase.target_high is None or not phase.target_high > 0:
            return None
        low = phase.target_low if phase.target_low is not None else 0.0
        return max(0.0, min(low, phase.target_high)), phase.target_high

    def cue_word(self) -> str:
        """``RELAX``, ``CONTRACT`` or ``DONE`` in a guided session, else ""."""
        phase = self.phase
        if phase is None:
            return ""
        if phase.done:
            return "DONE"
        return phase.cue.upper()

    def countdown_text(self) -> str:
        """Whole seconds left in the phase (``"12 s"``), rounded up; "" outside a guided session."""
        phase = self.phase
        if phase is None or phase.done:
            return ""
        return f"{max(0, math.ceil(phase.remaining_s - 1e-9))} s"

    def phase_text(self) -> str:
        """The phase's name, or ``session complete``."""
        phase = self.phase
        if phase is None:
            return ""
        return "session complete" if phase.done else phase.name

    def quality_text(self) -> str:
        bad = [f"{name} {self.quality[i]}" for i, name in enumerate(self.ch_names)
               if i < len(self.quality) and self.quality[i] != OK]
        return "signal OK" if not bad else "check " + ", ".join(bad)

    def stale_s(self) -> float:
        """Seconds since the last block (0 when paused, ended or not started)."""
        if self.last_block_at is None or self.ended is not None or self.paused:
            return 0.0
        return max(0.0, self.clock() - self.last_block_at)

    def status_text(self) -> str:
        """One line: source, rate, samples lost, signal quality, session time."""
        if self.started is None:
            return "starting…"
        info = self.started.info
        parts = [f"source: {self.started.source_name}", f"{info.fs:g} Hz",
                 f"{info.n_channels} ch", f"lost {self.samples_lost} samples", self.quality_text()]
        if self.started.duration_s:
            parts.append(f"{format_clock(self.position_s)} / {format_clock(self.started.duration_s)}")
        else:
            parts.append(format_clock(self.position_s))
        if self.paused or self.display_paused:
            parts.append("PAUSED")
        if self.ended is not None:
            parts.append(self.ended.reason)
        elif self.stale_s() > NO_DATA_AFTER_S:
            parts.append(f"no data from the source for {self.stale_s():.0f} s")
        return "  ·  ".join(parts)
