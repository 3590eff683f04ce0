"""Headless feedback: the state word and a level bar in the terminal.

For SSH sessions and small screens, and whenever no display is available.
On a terminal the line is redrawn in place (``\\r``) about ten times a
second, in colour unless ``NO_COLOR`` is set; when the output is not a
terminal (a pipe, a log file) one line per second is printed instead.
Events are printed on their own lines as they come.
"""

from __future__ import annotations

import os
import queue
import sys
import time

from biofeedback.live.model import FeedbackModel, format_clock
from biofeedback.live.state import CALIBRATING, CHECK_ELECTRODE, CONTRACTING, RELAXED, SPASM
from biofeedback.live.worker import LiveBlock, StreamEnded

# ANSI colours close to the window's palette (blue / yellow / red / grey).
_ANSI = {RELAXED: "\x1b[1;97;44m", CONTRACTING: "\x1b[1;30;43m", SPASM: "\x1b[1;97;41m",
         CHECK_ELECTRODE: "\x1b[1;30;47m", CALIBRATING: "\x1b[1;30;46m"}
_CUE_ANSI = {"RELAX": "\x1b[1;97;44m", "CONTRACT": "\x1b[1;30;43m"}
_RESET = "\x1b[0m"
_CLEAR_LINE = "\x1b[2K"


def level_bar(fraction: float, low: float, high: float, marks=(), width: int = 24) -> str:
    """Text gauge: ``#`` for the level, ``:`` for the target zone, ``|`` at thresholds.

    >>> level_bar(0.5, 0.0, 0.25, (0.25,), width=8)
    '[##|#....]'
    """
    cells = []
    filled = int(round(fraction * width))
    mark_cells = {min(width - 1, int(round(m * width))) for m in marks}
    for i in range(width):
        centre = (i + 0.5) / width
        if i in mark_cells:
            cells.append("|")
        elif i < filled:
            cells.append("#")
        elif low <= centre <= high:
            cells.append(":")
        else:
            cells.append(".")
    return "[" + "".join(cells) + "]"


def cue_text(model: FeedbackModel, colour: bool = False, width: int = 10) -> str:
    """Guided session: ``"RELAX 12 s  hold 2/5 [####......]"``; "" without a session."""
    word = model.cue_word()
    if not word:
        return ""
    if model.phase.done:
        return f"{word}  {model.phase_text()}"
    shown = f"{word:<8}"
    if colour and word in _CUE_ANSI:
        shown = f"{_CUE_ANSI[word]} {word} {_RESET}" + " " * max(0, 6 - len(word))
    filled = int(round(model.phase.progress * width))
    bar = "[" + "=" * filled + "." * (width - filled) + "]"
    return f"{shown} {model.countdown_text():>5}  {model.phase_text()} {bar}"


def feedback_line(model: FeedbackModel, colour: bool = False, width: int = 24) -> str:
    """One line: the guided cue if any, then per feedback channel state word, bar, level and percent."""
    parts = []
    cue = cue_text(model, colour)
    if cue:
        parts.append(cue)
    for ch in model.feedback_index:
        state = model.state(ch)
        word = f"{state:<15}"
        if colour and state in _ANSI:
            word = f"{_ANSI[state]} {state} {_RESET}" + " " * max(0, 13 - len(state))
        fraction, low, high, marks = model.gauge(ch)
        extra = model.subtitle(ch) if state in (CALIBRATING, CHECK_ELECTRODE) else model.percent_text(ch)
        name = model.ch_names[ch] if ch < len(model.ch_names) else f"ch{ch + 1}"
        parts.append(f"{name} {word} {level_bar(fraction, low, high, marks, width)} "
                     f"{model.level_text(ch):>10} {extra}")
    parts.append(format_clock(model.position_s))
    if model.samples_lost:
        parts.append(f"lost {model.samples_lost}")
    return "  ".join(parts)


def event_line(event) -> str:
    """``"00:16.5  ch1  spasm  0.4 s"`` (``failure_to_relax`` reads ``failure to relax``)."""
    minutes, seconds = divmod(event.onset_s, 60)
    text = f"{int(minutes):02d}:{seconds:04.1f}  {event.channel}  {event.kind.replace('_', ' ')}"
    if event.duration_s > 0:
        text += f"  {event.duration_s:.1f} s"
    if "problem" in event.extra:
        text += f" ({event.extra['problem']})"
    if "label" in event.extra:
        text += f" ({event.extra['label']})"
    return text


def run_headless(worker, *, duration_s: float | None = None, stream=None, feedback_channels=None,
                 tty: bool | None = None, clock=time.monotonic, max_idle_s: float | None = None) -> int:
    """Show feedback in the terminal until the stream ends, ``duration_s`` or Ctrl-C.

    Parameters
    ----------
    worker : LiveWorker
        Started here and stopped (joined) before returning.
    duration_s : float, optional
        Stop after this many seconds of wall time.
    stream : file, optional
        Output (default ``sys.stdout``).
    feedback_channels : sequence of str, optional
        Channels shown (default the first).
    tty : bool, optional
        Redraw in place; default: whether ``stream`` is a terminal.
    clock : callable
        Monotonic clock.
    max_idle_s : float, optional
        Stop when no message came for this long (tests).

    Returns
    -------
    int
        Exit status: 0, or 1 when the source failed.
    """
    stream = stream or sys.stdout
    tty = stream.isatty() if tty is None else tty
    colour = tty and not os.environ.get("NO_COLOR")
    model = FeedbackModel(feedback_channels, clock=clock)
    period = 0.1 if tty else 1.0
    start = clock()
    next_draw = start
    last_message = start
    worker.start()
    try:
        while True:
            now = clock()
            if duration_s is not None and now - start >= duration_s:
                break
            try:
                message = worker.output.get(timeout=0.05)
            except queue.Empty:
                if max_idle_s is not None and now - last_message > max_idle_s:
                    break
                message = None
            if message is not None:
                last_message = now
                model.apply(message)
                if isinstance(message, LiveBlock):
                    for event in message.events:
                        _print_above(stream, event_line(event), tty)
                    for notice in message.notices:
                        _print_above(stream, notice, tty)
                    # Drain what else is waiting before drawing: the line
                    # shows the newest state, not one from a second ago.
                    continue_draining = True
                    while continue_draining:
                        try:
                            more = worker.output.get_nowait()
                        except queue.Empty:
                            break
                        model.apply(more)
                        if isinstance(more, LiveBlock):
                            for event in more.events:
                                _print_above(stream, event_line(event), tty)
                            for notice in more.notices:
                                _print_above(stream, notice, tty)
                        elif isinstance(more, StreamEnded):
                            message = more
                            continue_draining = False
                if isinstance(message, StreamEnded):
                    _print_above(stream, message.reason, tty)
                    return 1 if message.error else 0
            if now >= next_draw and model.started is not None and model.blocks_received:
                line = feedback_line(model, colour)
                if tty:
                    stream.write("\r" + _CLEAR_LINE + line)
                else:
                    stream.write(line + "\n")
                stream.flush()
                next_draw = now + period
    except KeyboardInterrupt:
        _print_above(stream, "stopped", tty)
    finally:
        worker.stop()
        if tty:
            stream.write("\n")
            stream.flush()
    return 0


def _print_above(stream, text: str, tty: bool) -> None:
    """Print a line above the redrawn bar (clear the bar's line first)."""
    if tty:
        stream.write("\r" + _CLEAR_LINE)
    stream.write(text + "\n")
    stream.flush()
