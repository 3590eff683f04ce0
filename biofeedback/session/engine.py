"""Run a guided session: protocol cues, detection, recording and terminal feedback.

:class:`ProtocolSession` joins a :class:`~biofeedback.session.runner.ProtocolRunner`
and a :class:`~biofeedback.session.store.SessionWriter`. It has the
recorder interface of :class:`~biofeedback.live.worker.LiveWorker`
(``open(info)``, ``write(chunk)``, ``write_events(events)``, ``close()``)
and the duck-typed *cue provider* interface (``cues_for(first, n)``,
``status(sample_index)``), so the live worker can drive a session with one
object. It also handles a source that goes away: a ``disconnect`` event (or
a gap of at least ``pause_after_gap_s``) pauses the protocol, which goes on
when samples come back, with a note in ``session.json`` and the pause in
every phase record.

:func:`run_headless` is the session loop without a window: source →
the same :func:`~biofeedback.dsp.settings.build_pipeline` as every command,
with the cue-aware :class:`~biofeedback.detect.classify.EventClassifier`
(contractions during contract cues are voluntary, bursts during relax cues
are spasms) → the session folder, and a status line in the terminal (the
cue, a countdown, the target band, the phase's progress, the level).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biofeedback.core.types import Event, StreamInfo
from biofeedback.errors import BiofeedbackError
from biofeedback.session.runner import CueStatus, ProtocolRunner
from biofeedback.session.store import SessionStorageError, SessionWriter

__all__ = ["ProtocolSession", "SessionOutcome", "TerminalDisplay", "run_headless"]

#: Seconds of raw signal used to detect the mains frequency when ``mains="auto"`` (as live does).
MAINS_PROBE_S = 1.0

#: Event kinds a source attaches to chunks (stream-wide, not muscle events).
SOURCE_EVENT_KINDS = ("gap", "disconnect", "reconnect", "overrun", "marker")


def _fill_missing(data: np.ndarray, last_valid: np.ndarray) -> np.ndarray:
    """NaN samples → the channel's previous valid value (filters must never see NaN)."""
    nan = np.isnan(data)
    if not nan.any():
        if data.shape[1]:
            last_valid[:] = data[:, -1]
        return data
    index = np.where(nan, -1, np.arange(data.shape[1]))
    np.maximum.accumulate(index, axis=1, out=index)
    rows = np.arange(data.shape[0])[:, None]
    filled = np.where(index >= 0, data[rows, np.maximum(index, 0)], last_valid[:, None])
    last_valid[:] = filled[:, -1]
    return filled


class ProtocolSession:
    """Recorder and cue provider of one guided session.

    Parameters
    ----------
    protocol : Protocol
    folder : str or Path
        Session folder to create (when the stream opens).
    meta : dict, optional
        Further ``session.json`` fields (``user``, ``source``, ``settings``…).
    rest_level, mvc : float, optional
        Known references of the feedback channel (from a profile).
    feedback_channel : int
        Channel whose envelope sets the references and the MVC.
    pause_after_gap_s : float
        A gap in the samples at least this long pauses the protocol over
        the gap, like a ``disconnect`` event does.
    writer_options : dict, optional
        Passed to :class:`SessionWriter` (``flush_interval_s``, ``on_flush``).
    on_phase : callable, optional
        ``f(phase)`` for each finished phase (a :class:`Phase`).
    on_note : callable, optional
        ``f(text)`` for each note (pause, resume...).
    """

    def __init__(self, protocol, folder, *, meta: dict | None = None, rest_level: float | None = None,
                 mvc: float | None = None, feedback_channel: int = 0, pause_after_gap_s: float = 1.0,
                 writer_options: dict | None = None, on_phase=None, on_note=None):
        self.protocol = protocol
        self.folder = Path(folder)
        self.meta = dict(meta or {})
        self.feedback_channel = int(feedback_channel)
        self.pause_after_gap_s = float(pause_after_gap_s)
        self.writer_options = dict(writer_options or {})
        self.on_phase = on_phase
        self.on_note = on_note
        self._initial = (rest_level, mvc)
        self.runner: ProtocolRunner | None = None
        self.writer: SessionWriter | None = None
        self.info: StreamInfo | None = None
        self.phases: list = []
        self.event_counts: Counter = Counter()
        self.stop_status: str | None = None
        self.stop_note: str | None = None
        self.storage_error: SessionStorageError | None = None
        self._lock = threading.RLock()
        self._mvc_peak = -math.inf
        self._mvc_phases = set()
        self.last_cues = None

    # -- recorder interface ---------------------------------------------------------
    def open(self, info: StreamInfo) -> None:
        """Create the runner at the stream's rate and the session folder."""
        self.info = info
        rest_level, mvc = self._initial
        self.runner = ProtocolRunner(self.protocol, info.fs, rest_level=rest_level, mvc=mvc)
        self._mvc_phases = {p.index for p in self.runner.schedule.phases if p.spec.mvc}
        meta = dict(self.meta)
        meta["protocol"] = self.protocol.to_dict()
        meta["schedule"] = self.runner.schedule.as_list()
        meta.setdefault("source", {"description": info.source})
        if "start_sample" not in meta:
            meta["start_sample"] = 0
        meta["references"] = self._references()
        self.writer = SessionWriter(self.folder, info, meta, **self.writer_options)

    def write(self, chunk):
        """Record a chunk: pause/resume on disconnects, the samples with their cues, finished phases.

        Returns the chunk's cues (an array of ``"relax"``/``"contract"``).
        """
        with self._lock:
            runner, writer = self.runner, self.writer
            fs = self.info.fs
            expected = writer.next_index
            first, n = chunk.first_sample, chunk.n_samples
            paused_before = runner.paused
            for e in chunk.events:
                if e.kind == "disconnect" and runner.pause(expected, "source disconnected"):
                    self._note(f"source disconnected at {expected / fs:.1f} s"
                               f"{self._in_phase(expected)}; the protocol is paused, the recording goes on")
            cues = None
            if n:
                gap = first - expected
                if gap > 0 and not runner.paused and gap >= self.pause_after_gap_s * fs and expected > 0:
                    if runner.pause(expected, f"no samples for {gap / fs:.1f} s"):
                        self._note(f"no samples from {expected / fs:.1f} s to {first / fs:.1f} s"
                                   f"{self._in_phase(expected)}; the protocol was paused over the gap")
                if runner.paused:
                    waited = runner.resume(first)
                    self._note(f"samples again at {first / fs:.1f} s after {waited:.1f} s; the protocol goes on")
                cues = runner.cues_for(first, n)
                writer.write_samples(first, chunk.data, cues)
            events = list(chunk.events)
            if n and first > expected and not any(e.kind == "gap" for e in events):
                events.append(Event("gap", ",".join(self.info.ch_names), expected / fs, first / fs, math.nan,
                                    {"n_samples": int(first - expected)}))
            for e in events:
                writer.write_event(e, self._phase_index(int(round(e.onset_s * fs))))
                self.event_counts[e.kind] += 1
            if runner.paused != paused_before or (n and runner.pauses and runner.pauses[-1]["stop_sample"] == first):
                writer.update_meta(pauses=runner.pauses)
            if n:
                for phase in runner.pop_finished(chunk.stop):
                    writer.write_phase(phase)
                    self.phases.append(phase)
                    if self.on_phase is not None:
                        self.on_phase(phase)
            self.last_cues = cues
            return cues

    def write_events(self, events) -> None:
        """Record detected events (with the phase they started in)."""
        with self._lock:
            fs = self.info.fs
            for e in events:
                self.writer.write_event(e, self._phase_index(int(round(e.onset_s * fs))))
                self.event_counts[e.kind] += 1

    def ended(self, reason: str, error: bool = False) -> None:
        """Say why the stream ended (the live worker's ``StreamEnded``), before :meth:`close`."""
        if error:
            self.stop_status, self.stop_note = "interrupted", reason

    def set_mains(self, mains_hz) -> None:
        """Record the mains frequency the pipeline notches (None: no notch)."""
        with self._lock:
            if self.writer is not None and self.writer.failed is None:
                self.writer.update_meta(mains_hz=mains_hz)

    def close(self, status: str | None = None, note: str | None = None) -> str:
        """Write the cut phase (if the protocol did not finish) and close the folder; returns the status.

        Never raises for a storage error (a full disk): the error is kept in
        :attr:`storage_error` and the status is ``interrupted``.
        """
        with self._lock:
            if self.writer is None or self.writer.closed:
                return status or self.stop_status or ""
            runner, writer = self.runner, self.writer
            end = writer.next_index
            done = runner.done(end)
            status = status or self.stop_status or ("complete" if done else "stopped")
            note = note or self.stop_note
            if not done:
                where = self._in_phase(end - 1) if end else ""
                if note is None:
                    note = f"the session ended at {end / self.info.fs:.1f} s{where}, before the protocol's end"
                try:
                    cut = runner.cut_phase(end)
                    if cut is not None:
                        writer.write_phase(cut)
                        self.phases.append(cut)
                except SessionStorageError:
                    pass  # close() below says so
                if status == "complete":
                    status = "stopped"
            if runner.paused:
                runner.resume(end)
            if writer.failed is None:
                writer.meta["pauses"] = runner.pauses
                writer.meta["references"] = self._references()
            try:
                writer.close(status, note)
            except SessionStorageError as exc:
                self.storage_error = exc
                status = "interrupted"
            return status

    # -- cue provider interface -------------------------------------------------------
    def cues_for(self, first_sample: int, n: int) -> np.ndarray:
        if self.runner is None:
            return np.full(int(n), "relax")
        return self.runner.cues_for(first_sample, n)

    def status(self, sample_index: int) -> CueStatus:
        if self.runner is None:
            return CueStatus("waiting", "relax", 0.0, 0.0, None, None, False, "waiting for the source")
        return self.runner.status(sample_index)

    def done(self, sample_index: int) -> bool:
        return self.runner is not None and self.runner.done(sample_index)

    # -- references ---------------------------------------------------------------------
    def set_calibration(self, baseline, source: str, mvc=None) -> None:
        """Record the detector's baseline (and MVC) in ``session.json``; set the rest reference."""
        with self._lock:
            level = np.asarray(baseline.level, dtype=float)
            sigma = np.asarray(baseline.sigma, dtype=float)
            mvc_arr = None if mvc is None else np.asarray(mvc, dtype=float)
            data = {"level": level.tolist(), "sigma": sigma.tolist(), "method": str(baseline.method),
                    "source": source, "channels": list(self.info.ch_names),
                    "mvc": None if mvc_arr is None else [None if not math.isfinite(v) else v for v in mvc_arr.tolist()]}
            ch = min(self.feedback_channel, level.size - 1)
            self.runner.set_reference(rest_level=float(level[ch]))
            if mvc_arr is not None and math.isfinite(mvc_arr[ch]) and self.runner.mvc is None:
                self.runner.set_reference(mvc=float(mvc_arr[ch]), source=source)
            self.writer.update_meta(calibration=data, references=self._references())

    def observe_envelope(self, first_sample: int, envelope) -> None:
        """Take the MVC from the feedback channel's envelope during ``mvc = true`` phases."""
        if not self._mvc_phases or self.runner is None:
            return
        runner = self.runner
        if runner.mvc_source and runner.mvc_source != "measured":
            return
        env = np.asarray(envelope)[min(self.feedback_channel, len(envelope) - 1)]
        n = env.shape[0]
        peak = -math.inf
        for planned in runner.schedule.phases:
            if planned.index not in self._mvc_phases:
                continue
            start, stop, _ = runner.actual_span(planned)
            if stop < 0:
                stop = first_sample + n
            a, b = max(start, first_sample), min(stop, first_sample + n)
            if b > a:
                peak = max(peak, float(np.max(env[a - first_sample:b - first_sample])))
        if peak > self._mvc_peak and math.isfinite(peak):
            self._mvc_peak = peak
            runner.set_reference(mvc=peak, source="measured")

    def _references(self) -> dict:
        r = self.runner
        if r is None:
            return {}
        return {"channel": self.info.ch_names[min(self.feedback_channel, self.info.n_channels - 1)],
                "rest_level": r.rest_level, "mvc": r.mvc, "mvc_source": r.mvc_source}

    # -- helpers ---------------------------------------------------------------------------
    def _phase_index(self, index: int):
        planned = self.runner.phase_at(index) if self.runner is not None else None
        return None if planned is None else planned.index

    def _in_phase(self, index: int) -> str:
        planned = self.runner.phase_at(index) if self.runner is not None else None
        return "" if planned is None else f" (phase '{planned.spec.name}')"

    def _note(self, text: str) -> None:
        self.writer.add_note(text)
        if self.on_note is not None:
            self.on_note(text)


# ---------------------------------------------------------------------------
# terminal display


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def _bar(fraction: float, width: int = 10) -> str:
    filled = int(round(min(1.0, max(0.0, fraction)) * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


class TerminalDisplay:
    """Session feedback as text: a line per phase, per event and per note, and a status line.

    On a terminal the status line is redrawn in place about ten times a
    second; otherwise (a pipe, a log) it is printed at most once a second of
    wall time.
    """

    def __init__(self, stream=None, tty: bool | None = None, units: str = "uV", clock=time.monotonic,
                 status_lines: bool = True):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.units = "µV" if units.lower() in ("uv", "µv") else units
        self.clock = clock
        self.status_lines = status_lines
        self._next = 0.0
        self._drawn = False

    def _line(self, text: str) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def phase_started(self, status: CueStatus, position_s: float, duration_s: float | None = None) -> None:
        duration = status.remaining_s if duration_s is None else duration_s
        parts = [f"{_clock(position_s)}  >> {status.name} ({status.index + 1}/{status.n_phases}): "
                 f"{status.cue.upper()} for {duration:.3g} s"]
        if status.target_text:
            band = self._band(status)
            parts.append(f"target {status.target_text}{f' ({band})' if band else ''}")
        if status.prompt:
            parts.append(status.prompt)
        self._line("  -  ".join(parts))

    def _band(self, status: CueStatus) -> str:
        if status.target_high is None:
            return ""
        if not status.target_low:
            return f"below {status.target_high:.1f} {self.units}"
        return f"{status.target_low:.1f}-{status.target_high:.1f} {self.units}"

    def event(self, event: Event) -> None:
        text = f"{_clock(event.onset_s)}  {event.channel}  {event.kind}"
        if event.duration_s > 0:
            text += f"  {event.duration_s:.1f} s"
        cue = (event.extra or {}).get("cue")
        if cue:
            text += f"  (cue {cue})"
        self._line(text)

    def note(self, text: str) -> None:
        self._line(f"note: {text}")

    def update(self, status: CueStatus, level: float | None, position_s: float, force: bool = False) -> None:
        if not self.status_lines:
            return
        now = self.clock()
        if not force and now < self._next:
            return
        self._next = now + (0.1 if self.tty else 1.0)
        if status.done:
            return
        text = (f"{_clock(position_s)}  [{status.index + 1:>2}/{status.n_phases}] {status.name:<16} "
                f"{status.cue.upper():<8} {status.remaining_s:5.1f} s left {_bar(status.progress)}")
        if level is not None and math.isfinite(level):
            text += f"  level {level:7.1f} {self.units}"
        band = self._band(status)
        if band:
            inside = level is not None and (status.target_low or 0.0) <= level <= status.target_high
            text += f"  target {band} {'OK' if inside else '--'}"
        if status.paused:
            text += "  PAUSED (source disconnected)"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


# ---------------------------------------------------------------------------
# the headless loop


@dataclass
class SessionOutcome:
    """How a session ended."""

    folder: Path
    status: str
    exit_code: int
    duration_s: float
    phases: int
    event_counts: dict = field(default_factory=dict)
    message: str = ""


def run_headless(source, session: ProtocolSession, settings=None, *, calibration_s: float = 8.0,
                 baseline=None, mvc=None, display: TerminalDisplay | None = None,
                 stop_event: threading.Event | None = None) -> SessionOutcome:
    """Run ``session`` on ``source`` without a window.

    Parameters
    ----------
    source : Source
        Opened here (``with source``) and read to the protocol's end.
    session : ProtocolSession
    settings : PipelineSettings, optional
    calibration_s : float
        Without ``baseline``, the detector calibrates on this many seconds
        after its settle time (the protocol's first rest).
    baseline : Baseline, optional
        Known resting baseline (from a profile).
    mvc : ndarray, optional
        Known MVC per channel (from a profile).
    display : TerminalDisplay, optional
        Where feedback goes (None: nothing is printed).
    stop_event : threading.Event, optional
        Set it to stop the session early (status ``stopped``).

    Returns
    -------
    SessionOutcome
        ``exit_code`` 0 for a complete or user-stopped session, 1 when the
        source failed or the disk did.
    """
    from biofeedback.detect.classify import EventClassifier
    from biofeedback.detect.threshold import ThresholdDetector
    from biofeedback.dsp.settings import PipelineSettings, build_pipeline, resolve_mains

    settings = settings or PipelineSettings()
    status, note, exit_code, message = None, None, 0, ""
    pipeline = detector = None
    held: list = []
    position = 0
    shown_phase = -2
    calibrated = False
    try:
        with source:
            info = source.info
            session.meta.setdefault("settings", settings.as_dict())
            session.open(info)
            fs = info.fs
            last_valid = np.zeros(info.n_channels)
            fb = min(session.feedback_channel, info.n_channels - 1)
            if baseline is not None:
                session.set_calibration(baseline, "profile", mvc)
                calibrated = True

            def process(chunk, cues):
                nonlocal calibrated
                data = _fill_missing(np.array(chunk.data, dtype=float), last_valid)
                out = pipeline.process(chunk.replace(data=data, cues=cues, events=()))
                if out.events:
                    session.write_events(out.events)
                    if display is not None:
                        for e in out.events:
                            display.event(e)
                if not calibrated and detector.baseline is not None:
                    session.set_calibration(detector.baseline, "the session's first rest", mvc)
                    calibrated = True
                session.observe_envelope(chunk.first_sample, out.data)
                return out.data

            for chunk in source:
                if stop_event is not None and stop_event.is_set():
                    status, note = "stopped", "stopped by the user"
                    break
                cues = session.write(chunk)
                if chunk.n_samples == 0:
                    continue
                position = chunk.stop
                envelope = None
                if pipeline is None:
                    held.append((chunk, cues))
                    if str(settings.mains) == "auto" and sum(c.n_samples for c, _ in held) < MAINS_PROBE_S * fs:
                        continue
                    probe = np.concatenate([_fill_missing(np.array(c.data, dtype=float), last_valid.copy())
                                            for c, _ in held], axis=1)
                    mains_hz = resolve_mains(settings, probe, fs)
                    session.set_mains(mains_hz)
                    pipeline = build_pipeline(settings, info, mains_hz=mains_hz, baseline=baseline,
                                              calibration_s=calibration_s, classifier=EventClassifier())
                    detector = pipeline.find(ThresholdDetector)
                    for c, cu in held:
                        envelope = process(c, cu)
                    held = []
                else:
                    envelope = process(chunk, cues)
                if display is not None:
                    st = session.status(max(0, position - 1))
                    if st.index != shown_phase and not st.paused and not st.done:
                        shown_phase = st.index
                        planned = session.runner.schedule.phases[st.index]
                        display.phase_started(st, session.runner.actual_span(planned)[0] / fs,
                                              planned.n_samples / fs)
                    level = float(envelope[fb, -1]) if envelope is not None and envelope.shape[1] else None
                    display.update(st, level, position / fs)
                if session.done(position):
                    break
            else:
                if not session.done(position):
                    status = "interrupted"
                    note = (f"the source ended at {position / fs:.1f} s, before the protocol's end"
                            if session.runner is not None else "the source ended")
            if pipeline is None and held:
                mains_hz = resolve_mains(settings.replace(mains="off"))
                pipeline = build_pipeline(settings, info, mains_hz=mains_hz, baseline=baseline,
                                          calibration_s=calibration_s, classifier=EventClassifier())
                detector = pipeline.find(ThresholdDetector)
                for c, cu in held:
                    process(c, cu)
            if detector is not None:
                final = detector.flush(position)
                if final:
                    session.write_events(final)
                    if display is not None:
                        for e in final:
                            display.event(e)
    except KeyboardInterrupt:
        status, note = "stopped", "stopped by the user (Ctrl-C)"
    except SessionStorageError as exc:
        if session.writer is None:
            raise  # the folder could not be created: nothing was recorded
        status, note, exit_code, message = "interrupted", None, 1, str(exc)
    except (BiofeedbackError, OSError) as exc:
        if session.writer is None:
            raise  # nothing recorded yet: the command reports the error
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        status, note, exit_code = "interrupted", f"the source failed: {reason}", 1
        message = note
    finally:
        if display is not None:
            display.finish()
    if session.writer is None:
        raise BiofeedbackError("the source ended before the session could start")
    final_status = session.close(status, note)
    if session.storage_error is not None:
        exit_code, message = 1, message or str(session.storage_error)
    if display is not None and note and status != "interrupted":
        display.note(note)
    runner = session.runner
    return SessionOutcome(session.folder, final_status, exit_code, session.writer.samples_on_disk / runner.fs,
                          len(session.phases), dict(session.event_counts), message)
