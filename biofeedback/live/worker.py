"""Acquisition and processing on a worker thread, results in a bounded queue.

The display thread must never filter, read files or wait for a device, or
the window stutters and the feedback lags. :class:`LiveWorker` therefore
owns everything between the source and the screen: it reads chunks from
the source, runs the same :func:`~biofeedback.dsp.settings.build_pipeline`
as batch analysis, checks the electrodes, decides the feedback state, runs
a guided calibration, writes the recording, saves the profile, and puts one
small :class:`LiveBlock` per chunk into a bounded :class:`queue.Queue`.
The GUI timer (or the terminal renderer) only drains that queue.

Drop policy: a real-time source never waits for the display. When the queue
is full (the display is stalled) the new block's *samples* are dropped and
counted in :attr:`LiveWorker.blocks_dropped`; its events, notices and
threshold changes are carried into the next block that fits, so nothing
the user must read is lost, and the recording (written here, before the
queue) keeps every sample received. Sources that are not real time (a
replay at full speed) use back-pressure instead (``block_when_full``).

Processing cost: every call into the pipeline costs about the same fixed
overhead whatever its length (a dozen NumPy/SciPy calls), so a device or
simulator that hands over 10 ms chunks would spend most of the worker's
time on overhead. Consecutive chunks are therefore processed together once
they span ``min_block_s`` (20 ms by default: a little more than one frame
at 60 frames/s, so the display sees no difference; the oldest samples wait
at most one source chunk longer). A pause, a seek, a jump in the sample
index or the end of the stream processes what is waiting at once.

Classification: the detector gets the same
:class:`~biofeedback.detect.classify.EventClassifier` as batch analysis,
and the chunks carry the cue track as its codes, so live events get the
same kinds as a batch report of the recording (contraction,
failure_to_relax, twitch, spasm, cramp, elevated_tone). The cues come from
a *cue provider* (a guided session, see :class:`LiveWorker`), else from the
source's cue track.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.detect.baseline import Baseline
from biofeedback.detect.classify import ClassifierSettings, EventClassifier
from biofeedback.detect.threshold import ThresholdDetector
from biofeedback.dsp.settings import PipelineSettings, build_pipeline, resolve_ecg, resolve_mains
from biofeedback.errors import BiofeedbackError
from biofeedback.live.calibration import GuidedCalibration
from biofeedback.live.decimate import DisplayDecimator, Traces
from biofeedback.live.quality import OK, ElectrodeCheck
from biofeedback.live.state import CUE_MAP, WAITING, StateLogic

#: Seconds of raw signal used to detect the mains frequency when ``mains="auto"``.
MAINS_PROBE_S = 1.0


@dataclass(frozen=True)
class Thresholds:
    """Resting level, spread, thresholds and MVC per channel (envelope units)."""

    level: np.ndarray
    sigma: np.ndarray
    on: np.ndarray
    off: np.ndarray
    mvc: np.ndarray | None = None
    method: str = ""


@dataclass(frozen=True)
class StreamStarted:
    """First message: what is being shown.

    ``envelope_delay_s`` is how far the envelope lags the muscle (half the
    RMS window, plus heartbeat suppression's delay when it runs);
    ``signal_delay_s`` is the part of it by which the filtered signal and
    the envelope lag the raw samples, cues and events (heartbeat
    suppression), so a display can draw them at raw-signal time. ``guided``
    is True with a cue provider.
    """

    info: StreamInfo
    source_name: str
    has_cues: bool
    mode: str
    seekable: bool
    duration_s: float
    envelope_delay_s: float
    signal_delay_s: float = 0.0
    guided: bool = False


@dataclass(frozen=True)
class PhaseStatus:
    """Where a guided session stands (a snapshot of a cue provider's ``status``).

    Attributes
    ----------
    name : str
        Phase label, e.g. ``"hold 2/5"``.
    cue : str
        ``"relax"`` or ``"contract"``.
    remaining_s : float
        Seconds left in the phase.
    progress : float
        Share of the phase done, 0..1.
    target_low, target_high : float or None
        Target band of the envelope in the stream's units.
    done : bool
        The session is over.
    """

    name: str = ""
    cue: str = ""
    remaining_s: float = 0.0
    progress: float = 0.0
    target_low: float | None = None
    target_high: float | None = None
    done: bool = False

    @classmethod
    def of(cls, status) -> "PhaseStatus | None":
        """Copy any object with these attributes (duck typing); None stays None."""
        if status is None:
            return None

        def number(name, default=None):
            value = getattr(status, name, default)
            if value is None:
                return default
            try:
                value = float(value)
            except (TypeError, ValueError):
                return default
            return value if np.isfinite(value) else default

        return cls(name=str(getattr(status, "name", "") or ""), cue=str(getattr(status, "cue", "") or ""),
                   remaining_s=max(0.0, number("remaining_s", 0.0)),
                   progress=min(1.0, max(0.0, number("progress", 0.0))),
                   target_low=number("target_low"), target_high=number("target_high"),
                   done=bool(getattr(status, "done", False)))


@dataclass(frozen=True)
class LiveBlock:
    """Everything the display needs about one processed chunk.

    Attributes
    ----------
    first_sample : int
        Stream index of the first sample.
    t_source : float
        ``time.monotonic()`` when the chunk left the source (for latency).
    filtered, envelope : ndarray, shape (n_channels, n)
        Band-passed signal and envelope, or empty arrays when the samples
        were dropped for the display.
    states : tuple of str
        Feedback state per channel after this chunk.
    levels : ndarray, shape (n_channels,)
        Newest envelope value per channel.
    quality : tuple of str
        Electrode check per channel (``ok``, ``flat``, ``clipped``, ``missing``).
    events : tuple of Event
        Completed events (detections relabelled as spasms when uncued, gaps,
        markers, electrode problems).
    calibration : str
        Prompt of a running calibration (``"relax, 12 s"``), else "".
    thresholds : Thresholds or None
        New thresholds when they changed with this chunk.
    notices : tuple of str
        Messages for the user ("profile saved…").
    discontinuity : bool
        True after a seek: the display starts its traces anew.
    samples_lost : int
        Total samples the source lost so far.
    position_s : float
        Stream time after this chunk, in seconds.
    paused : bool
        The source is paused (replay).
    peaks : ndarray, shape (n_channels,), optional
        Largest envelope value in the block (for the plot scale, so the
        display never scans its buffers).
    traces : Traces, optional
        Display bins of the block (see :mod:`biofeedback.live.decimate`):
        min/max of the filtered signal and mean envelope per bin, the last
        one possibly partial.
    phase : PhaseStatus, optional
        Guided session status after this block (with a cue provider).
    """

    first_sample: int
    t_source: float
    filtered: np.ndarray
    envelope: np.ndarray
    states: tuple
    levels: np.ndarray
    quality: tuple
    events: tuple = ()
    calibration: str = ""
    thresholds: Thresholds | None = None
    notices: tuple = ()
    discontinuity: bool = False
    samples_lost: int = 0
    position_s: float = 0.0
    paused: bool = False
    peaks: np.ndarray | None = None
    traces: Traces | None = None
    phase: PhaseStatus | None = None


@dataclass(frozen=True)
class StreamEnded:
    """Last message: why the stream stopped, in words."""

    reason: str
    error: bool = False


@dataclass
class _Carry:
    events: list = field(default_factory=list)
    notices: list = field(default_factory=list)
    thresholds: Thresholds | None = None
    discontinuity: bool = False


def _join(chunks: list[Chunk]) -> Chunk:
    """One chunk from consecutive chunks (samples, cues and events)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    cues = None
    if all(c.cues is not None for c in chunks):
        cues = np.concatenate([np.asarray(c.cues) for c in chunks])
    events = tuple(e for c in chunks for e in c.events)
    return Chunk(np.concatenate([c.data for c in chunks], axis=1), first.first_sample, first.info,
                 events=events, cues=cues)


def fill_missing(data: np.ndarray, last_valid: np.ndarray) -> np.ndarray:
    """Replace NaN samples by the channel's previous valid value (vectorised).

    NaN would poison the filter states for good; holding the last value
    gives the filters a flat stretch, which they pass as silence.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n)
    last_valid : ndarray, shape (n_channels,)
        Last valid sample before this chunk (updated in place).
    """
    nan = np.isnan(data)
    if not nan.any():
        if data.shape[1]:
            last_valid[:] = data[:, -1]
        return data
    n = data.shape[1]
    index = np.where(nan, -1, np.arange(n))
    np.maximum.accumulate(index, axis=1, out=index)
    rows = np.arange(data.shape[0])[:, None]
    filled = np.where(index >= 0, data[rows, np.maximum(index, 0)], last_valid[:, None])
    last_valid[:] = filled[:, -1]
    return filled


class LiveWorker:
    """Runs source → pipeline → state on a thread; results in :attr:`output`.

    Parameters
    ----------
    source : Source
        Opened and iterated on the worker thread.
    settings : PipelineSettings
    mode : {"relax", "train"}
        Meaning of an uncued burst when the source has no cue track.
    baseline : Baseline, optional
        Known resting baseline (from a profile); None calibrates on the
        first ``calibration_s`` seconds.
    mvc : ndarray, optional
        Known MVC per channel.
    calibration_s : float
        Initial calibration length when there is no baseline.
    profile_name : str, optional
        Guided calibrations are saved under this name.
    profile_loader : callable, optional
        ``f(info) -> (baseline, mvc, notice)``, called on the worker thread
        once the stream's channels are known (reads the profile file).
    recorder : object, optional
        Has ``open(info)``, ``write(chunk)``, ``write_events(events)`` and
        ``close()``; receives every raw sample and event.
    sound : object, optional
        Has ``update(levels, thresholds, states)``; driven from this thread.
    display_rate_hz : float
        Bins per second of the reduced traces for the display (min/max of
        the filtered signal, mean envelope), computed here so the display
        never scans raw samples; the window asks for a rate matching its
        plot's width (:meth:`set_display_rate`). The bin still filling is
        sent too, so binning adds no delay.
    min_block_s : float
        Consecutive source chunks are processed together until they span
        this long (see the module notes); 0 processes each chunk alone.
    cue_provider : object, optional
        A guided session: ``cues_for(first_sample, n)`` gives the cue
        (``"relax"``/``"contract"``) of each sample and
        ``status(sample_index)`` an object with ``name``, ``cue``,
        ``remaining_s``, ``progress``, ``target_low``, ``target_high`` and
        ``done``. Its cues replace the source's; its status travels with
        every block (:class:`PhaseStatus`). Called on the worker thread.
    classifier : ClassifierSettings, optional
        Limits of the event classification (default: as batch analysis).
    queue_size : int
        Bound of the output queue, in blocks.
    block_when_full : bool
        Wait for room instead of dropping (sources that are not real time).
    source_name : str
        Shown in the status line.
    clock : callable
        Monotonic clock (replaceable in tests).
    """

    def __init__(self, source, settings: PipelineSettings | None = None, *, mode: str = "relax",
                 baseline: Baseline | None = None, mvc=None, calibration_s: float = 8.0,
                 profile_name: str | None = None, profile_loader=None, recorder=None, sound=None,
                 display_rate_hz: float = 50.0, queue_size: int = 128, block_when_full: bool = False,
                 source_name: str = "", min_block_s: float = 0.02, cue_provider=None,
                 classifier: ClassifierSettings | None = None, clock=time.monotonic):
        self.source = source
        self.settings = settings or PipelineSettings()
        self.mode = mode
        self.baseline = baseline
        self.mvc = None if mvc is None else np.asarray(mvc, dtype=float)
        self.calibration_s = float(calibration_s)
        self.profile_name = profile_name
        self.profile_loader = profile_loader
        self.recorder = recorder
        self._recorded_baseline = None
        self.sound = sound
        self.block_when_full = block_when_full
        self.display_rate_hz = float(display_rate_hz)
        self.min_block_s = max(0.0, float(min_block_s))
        self.cue_provider = cue_provider
        self.classifier_settings = classifier or ClassifierSettings()
        self.source_name = source_name
        self.output: queue.Queue = queue.Queue(maxsize=max(2, int(queue_size)))
        self._clock = clock
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.blocks_dropped = 0
        self.samples_received = 0
        self.samples_lost = 0
        self.finished = threading.Event()

    # -- control (any thread) ------------------------------------------------
    def start(self) -> "LiveWorker":
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="biofeedback-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the worker to stop and wait for it; True when it has ended."""
        self._stop.set()
        try:
            self.source.close()  # wakes a paused replay or a blocking read
        except Exception:  # noqa: BLE001 - closing twice must not hide the stop
            pass
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def calibrate(self, rest_s: float = 30.0, mvc_s: float = 0.0) -> None:
        """Start a guided calibration (rest, then optional MVC)."""
        self._commands.put(("calibrate", rest_s, mvc_s))

    def cancel_calibration(self) -> None:
        """Abandon a running guided calibration."""
        self._commands.put(("cancel",))

    def marker(self, label: str = "marker") -> None:
        """Put a marker event at the newest processed sample."""
        self._commands.put(("marker", label))

    def set_display_rate(self, rate_hz: float) -> None:
        """Display bins per second from now on (the window follows its plot's width)."""
        if rate_hz > 0:
            self._commands.put(("display_rate", float(rate_hz)))

    # -- thread body ---------------------------------------------------------
    def _run(self) -> None:
        ended = StreamEnded("stopped")
        try:
            with self.source:
                ended = self._stream()
        except BiofeedbackError as exc:
            ended = StreamEnded(f"the source stopped: {exc}", error=True)
        except OSError as exc:
            ended = StreamEnded(f"the source disconnected: {exc.strerror or exc}", error=True)
        except Exception as exc:  # noqa: BLE001 - the window must say it in words, not die
            ended = StreamEnded(f"the source failed: {type(exc).__name__}: {exc}", error=True)
        finally:
            if self.recorder is not None:
                try:
                    # A session recorder keeps why the stream ended (a failed
                    # source is "interrupted", not "stopped").
                    self._notify_recorder("ended", ended.reason, ended.error)
                    self.recorder.close()
                except OSError as exc:
                    ended = StreamEnded(f"{ended.reason}; the recording could not be closed: {exc}", True)
            if self.sound is not None:
                self.sound.close()
            self._put_control(ended)
            self.finished.set()

    def _stream(self) -> StreamEnded:
        source = self.source
        info: StreamInfo = source.info
        self._info = info
        fs = info.fs
        n_ch = info.n_channels
        self._cues_between = getattr(source, "cues_between", None)
        has_cues = self.cue_provider is not None or \
            bool(getattr(source, "has_cues", self._cues_between is not None))
        if not has_cues:
            self._cues_between = None
        carry = _Carry()
        if self.profile_loader is not None and self.baseline is None:
            baseline, mvc, notice = self.profile_loader(info)
            if baseline is not None:
                self.baseline, self.mvc = baseline, mvc
            if notice:
                carry.notices.append(notice)
        if self.recorder is not None:
            self.recorder.open(info)
        # Heartbeat suppression as batch analysis decides it without a long
        # probe: on for the trunk and pelvic presets (or when asked).
        self._resolved = resolve_ecg(self.settings)
        self._delay = self._resolved.delay_samples(fs)
        self.state = StateLogic(n_ch, fs, self.mode, classifier=self.classifier_settings)
        self.electrodes = ElectrodeCheck(n_ch, fs, info.units)
        self._last_valid = np.zeros(n_ch)
        self.decimator = DisplayDecimator(n_ch, max(1, int(round(fs / self.display_rate_hz))))
        self._guided: GuidedCalibration | None = None
        self._pipeline = None
        self._detector: ThresholdDetector | None = None
        self._shown_baseline = None
        self._thresholds: Thresholds | None = None
        self._mains_hz = None
        self._quality = [OK] * n_ch
        envelope_delay = self.settings.rms_window_s / 2 if self.settings.envelope == "rms" else 0.0
        self._put_control(StreamStarted(
            info, self.source_name or info.source, has_cues, self.mode,
            seekable=hasattr(source, "seek"), duration_s=float(getattr(source, "duration_s", 0.0) or 0.0),
            envelope_delay_s=envelope_delay + self._delay / fs, signal_delay_s=self._delay / fs,
            guided=self.cue_provider is not None))

        # Mains "auto" holds the first second back to detect 50/60 Hz, as
        # batch analysis does, so live and batch filter alike; heartbeat
        # suppression learns the beat from the same second.
        hold_probe = str(self.settings.mains) == "auto" or self._resolved.ecg_enabled()
        probe: list[Chunk] = []
        pending: list[Chunk] = []  # contiguous chunks waiting to be processed together
        pending_since = 0.0        # t_source of the oldest of them
        expected = None
        seek_seen = getattr(source, "seek_count", 0)
        self._last_position = 0.0
        min_block = int(np.ceil(self.min_block_s * fs))

        def flush():
            nonlocal pending
            if pending:
                batch, pending = pending, []
                self._emit(self._process(_join(batch), pending_since, carry), carry)

        for chunk in source:
            t_source = self._clock()
            if self._stop.is_set():
                return StreamEnded("stopped by the user")
            self.samples_received += chunk.n_samples
            seek_now = getattr(source, "seek_count", 0)
            if seek_now != seek_seen:
                flush()  # what came before the jump, with the old filter states
                seek_seen = seek_now
                self._restart_after_seek()
                carry.discontinuity = True
                expected = None
            if expected is not None and chunk.first_sample > expected and \
                    not any(e.kind == "gap" for e in chunk.events):
                lost = chunk.first_sample - expected
                chunk = chunk.replace(events=chunk.events + (Event(
                    "gap", ",".join(info.ch_names), expected / fs, chunk.first_sample / fs, float("nan"),
                    {"n_samples": lost}),))
            for e in chunk.events:
                if e.kind == "gap":
                    self.samples_lost += int(e.extra.get("n_samples", round(e.duration_s * fs)))
            expected = chunk.stop
            if self.recorder is not None:
                self.recorder.write(chunk)
            self._run_commands(carry, chunk.first_sample)
            if self._pipeline is None:
                probe.append(chunk)
                if hold_probe and sum(c.n_samples for c in probe) < MAINS_PROBE_S * fs:
                    continue
                raw = np.concatenate([fill_missing(c.data, self._last_valid.copy()) for c in probe], axis=1)
                self._mains_hz = resolve_mains(self.settings, raw, fs)
                self._notify_recorder("set_mains", self._mains_hz)
                self._build_pipeline(self.baseline, prime=raw)
                for c in probe:
                    self._emit(self._process(c, t_source, carry), carry)
                probe = []
                continue
            if pending and chunk.first_sample != pending[-1].stop:
                flush()  # a jump in the index: never join across it
            if not pending:
                pending_since = t_source
            pending.append(chunk)
            if sum(c.n_samples for c in pending) >= min_block or getattr(source, "paused", False):
                flush()
        flush()
        for c in probe:  # a stream shorter than the mains probe
            if self._pipeline is None:
                self._build_pipeline(self.baseline)
            self._emit(self._process(c, self._clock(), carry), carry)
        last_position = self._last_position
        final = self._detector.flush() if self._detector is not None and self._detector.baseline is not None else []
        if final or carry.events or carry.notices:
            carry.events.extend(self.state.label_event(e, fs) for e in final)
            self._write_events(final)
            self._put_control(LiveBlock(
                first_sample=int(round(last_position * fs)), t_source=self._clock(),
                filtered=np.zeros((n_ch, 0)), envelope=np.zeros((n_ch, 0)),
                states=tuple([WAITING] * n_ch), levels=np.full(n_ch, np.nan), quality=tuple(self._quality),
                events=tuple(carry.events), notices=tuple(carry.notices), samples_lost=self.samples_lost,
                position_s=last_position))
        what = getattr(source, "name", "") or self.source_name or info.source or "the source"
        return StreamEnded(f"{what} ended after {last_position:.1f} s")

    # -- helpers -------------------------------------------------------------
    def _notify_recorder(self, method: str, *args) -> None:
        """Call an optional hook of the recorder (a session recorder has
        them; a plain CSV recorder does not)."""
        hook = getattr(self.recorder, method, None)
        if hook is not None:
            hook(*args)

    def _build_pipeline(self, baseline, prime=None) -> None:
        classifier = EventClassifier(self.classifier_settings, CUE_MAP, coded_cues=True, tone_without_cues=True)
        self._pipeline = build_pipeline(self._resolved, self._info, mains_hz=self._mains_hz, baseline=baseline,
                                        detect=True, calibration_s=self.calibration_s, classifier=classifier,
                                        ecg_prime=prime if self._resolved.ecg_enabled() else None)
        self._detector = self._pipeline.find(ThresholdDetector)
        self._samples_since_build = 0

    def _restart_after_seek(self) -> None:
        # Filters would ring on the jump; the baseline stays valid.
        if self._pipeline is not None:
            self._build_pipeline(self._detector.baseline if self._detector is not None else self.baseline)
        self.state.reset()
        self.electrodes.reset()
        self.decimator.reset()
        self._shown_baseline = None  # resend the thresholds with the next block

    def _run_commands(self, carry: _Carry, sample: int) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            kind = command[0]
            if kind == "calibrate":
                _, rest_s, mvc_s = command
                try:
                    self._guided = GuidedCalibration(self._info.fs, self._info.n_channels, rest_s, mvc_s)
                except BiofeedbackError as exc:
                    carry.notices.append(f"calibration not started: {exc}")
            elif kind == "cancel" and self._guided is not None:
                self._guided = None
                carry.notices.append("calibration cancelled; the previous thresholds stay")
            elif kind == "marker":
                t = sample / self._info.fs
                event = Event("marker", ",".join(self._info.ch_names), t, t, float("nan"), {"label": command[1]})
                carry.events.append(event)
                self._write_events([event])
            elif kind == "display_rate":
                self.display_rate_hz = command[1]
                self.decimator.set_factor(max(1, int(round(self._info.fs / command[1]))))

    def _cue_codes(self, chunk: Chunk):
        """Cue codes of the chunk's samples: the cue provider's, else the source's; None without cues."""
        labels = None
        if self.cue_provider is not None:
            labels = self.cue_provider.cues_for(chunk.first_sample, chunk.n_samples)
        elif chunk.cues is not None:
            labels = chunk.cues
        elif self._cues_between is not None:
            labels = self._cues_between(chunk.first_sample, chunk.stop)
        if labels is None or len(labels) != chunk.n_samples:
            return None
        return CUE_MAP.codes(labels)

    def _process(self, chunk: Chunk, t_source: float, carry: _Carry) -> LiveBlock:
        info = self._info
        fs = info.fs
        raw = chunk.data
        data = fill_missing(np.asarray(raw, dtype=float), self._last_valid)
        codes = self._cue_codes(chunk)
        if codes is not None:
            self.state.cues.update_codes(codes, chunk.first_sample)
        # The cues travel with the chunk to the classifier, as in batch analysis.
        out = self._pipeline.process(chunk.replace(data=data, cues=codes))
        self._samples_since_build += chunk.n_samples
        envelope = out.data
        self._notify_recorder("observe_envelope", chunk.first_sample, envelope)
        quality = self.electrodes.update(raw)
        events = []
        for ch, (before, now) in enumerate(zip(self._quality, quality)):
            if now != OK and before == OK:
                t = chunk.stop / fs
                events.append(Event("check electrode", info.ch_names[ch], t, t, float("nan"), {"problem": now}))
        self._quality = list(quality)
        detector = self._detector
        if detector.baseline is not None and detector.baseline is not self._recorded_baseline:
            # Whatever set it (profile, first seconds of rest, guided
            # calibration), a session keeps the baseline its thresholds use.
            self._recorded_baseline = detector.baseline
            self._notify_recorder("set_calibration", detector.baseline, detector.baseline.method, self.mvc)
        prompt = ""
        if self._guided is not None:
            self._guided.update(envelope)
            prompt = self._guided.prompt
            if self._guided.finished:
                self._finish_guided(carry)
                prompt = ""
        elif detector.calibrating:
            settle = getattr(detector.settings, "settle_s", 0.0)
            left = settle + self.calibration_s - self._samples_since_build / fs
            prompt = f"relax, {max(1, int(np.ceil(left)))} s"
        n_ch = info.n_channels
        active = [detector.is_active(ch) for ch in range(n_ch)]
        # The envelope lags the raw signal (and the cues) by the pipeline's
        # delay: judge the burst at the detector's own onset, in raw time.
        delay = self._delay
        onsets = [None] * n_ch
        for ch in range(n_ch):
            if active[ch]:
                onset = detector.pending_onset(ch)
                onsets[ch] = None if onset is None else onset - delay
        states = self.state.update(active, chunk.stop - delay, electrode_ok=self.electrodes.ok,
                                   calibrating=bool(prompt), onsets=onsets)
        events.extend(self.state.label_event(e, fs) for e in out.events)
        self._write_events([e for e in events if e.kind != "gap"])
        if detector.baseline is not None and detector.baseline is not self._shown_baseline:
            self._shown_baseline = detector.baseline
            self._thresholds = Thresholds(detector.baseline.level, detector.baseline.sigma,
                                          detector.on_threshold, detector.off_threshold, self.mvc,
                                          detector.baseline.method)
            carry.thresholds = self._thresholds
        levels = envelope[:, -1].copy() if envelope.shape[1] else np.full(n_ch, np.nan)
        if self.sound is not None:
            self.sound.update(levels, self._thresholds, states)
        carry.events.extend(events)
        filtered = out.layers["filtered"]
        peaks = envelope.max(axis=1) if envelope.shape[1] else np.zeros(n_ch)
        traces = self.decimator.process(chunk.first_sample, filtered, envelope)
        phase = None
        if self.cue_provider is not None:
            phase = PhaseStatus.of(self.cue_provider.status(chunk.stop))
        self._last_position = chunk.stop / fs
        return LiveBlock(
            first_sample=chunk.first_sample, t_source=t_source, filtered=filtered, peaks=peaks,
            traces=traces,
            envelope=envelope, states=tuple(states), levels=levels, quality=tuple(quality),
            calibration=prompt, samples_lost=self.samples_lost, position_s=chunk.stop / fs,
            paused=bool(getattr(self.source, "paused", False)), phase=phase)

    def _finish_guided(self, carry: _Carry) -> None:
        guided, self._guided = self._guided, None
        if guided.result is None:
            carry.notices.append(f"calibration failed: {guided.error}; the previous thresholds stay")
            return
        result = guided.result
        self._detector.set_baseline(result.baseline)
        if result.mvc is not None:
            self.mvc = result.mvc
        self.baseline = result.baseline
        carry.notices.append("calibration done: thresholds set from your rest")
        if self.profile_name:
            carry.notices.append(self._save_profile(result))

    def _save_profile(self, result) -> str:
        from biofeedback.live.profile import Profile, processing_key, save_profile

        info = self._info
        profile = Profile(
            name=self.profile_name, channels=list(info.ch_names), units=info.units,
            level=result.baseline.level.tolist(), sigma=result.baseline.sigma.tolist(),
            mvc=None if self.mvc is None else self.mvc.tolist(), processing=processing_key(self.settings),
            fs=info.fs, method=result.baseline.method)
        try:
            path = save_profile(profile)
        except OSError as exc:
            return f"the profile could not be saved: {exc}"
        return f"calibration saved as profile '{self.profile_name}' ({path})"

    def _write_events(self, events) -> None:
        if self.recorder is not None and events:
            self.recorder.write_events(events)

    def _emit(self, block: LiveBlock, carry: _Carry) -> None:
        """Queue a block with whatever was carried; drop its samples if full."""
        full = replace(block, events=tuple(carry.events), notices=tuple(carry.notices),
                       thresholds=carry.thresholds, discontinuity=carry.discontinuity)
        try:
            if self.block_when_full:
                while not self._stop.is_set():
                    try:
                        self.output.put(full, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            else:
                self.output.put_nowait(full)
        except queue.Full:
            self.blocks_dropped += 1
            return  # keep the carry for the next block
        carry.events, carry.notices, carry.thresholds, carry.discontinuity = [], [], None, False

    def _put_control(self, message) -> None:
        # Control messages (start, end) must arrive: wait for room, but not
        # forever once a stop was asked and nobody drains any more.
        deadline = self._clock() + 2.0
        while True:
            try:
                self.output.put(message, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set() and self._clock() > deadline:
                    return
