"""Offline analysis of a recording with the same stages as live feedback.

A recording is streamed through the pipeline chunk by chunk, exactly as a
live stream would be. The only batch-specific step is the baseline: when no
rest period is marked, it is estimated from the quietest windows of the
whole recording, which needs the envelope of every sample before detection
starts. So the analysis runs in two passes:

1. band-pass, notch (and, for trunk/pelvic sites, heartbeat suppression) and
   envelope over the stream, keeping the envelope and the cue track, feeding
   the quiet-window estimator and the signal-quality monitor;
2. the detector, with its classifier, over the kept envelope, with the
   baseline from a saved calibration, from a marked rest period (checked:
   long enough, quiet, not flat) or from the quietest windows that the
   quality check did not flag.

Detection in pass 2 is the very same causal stage as live, so the events of
a batch run equal those of a live run given the same baseline, up to what
batch adds because it has the whole recording: activations with no
relaxation between them are merged (a held contraction that wavered below
the thresholds, :mod:`biofeedback.detect.refine`; ``refine=None`` turns this
off), and the quality spans drop the activations
they make meaningless (electrode off: overlapping; motion: starting within
it, see :func:`_artefact`), and saturation marks them; channels that
are flat or saturated throughout, or whose marked rest was not at rest, are
not analysed, with a message saying why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from biofeedback.analysis.store import ChunkStore
from biofeedback.core.types import Event, StreamInfo
from biofeedback.detect.baseline import Baseline, QuietWindowBaseline
from biofeedback.detect.calibration import MIN_REST_S, Calibration, calibrate, mvc_from_envelope
from biofeedback.detect.classify import (
    ACTIVATION_KINDS, KINDS, ClassifierSettings, CueMap, EventClassifier, chunk_cues, classify_activation,
)
from biofeedback.detect.ecg import ECGSuppressor, probe_beats
from biofeedback.detect.quality import FLAGS, QualityMonitor, QualitySettings, overlaps
from biofeedback.detect.refine import RefineSettings, merge_unrelaxed
from biofeedback.detect.threshold import ThresholdDetector
from biofeedback.dsp.mains import detect_mains
from biofeedback.dsp.settings import PipelineSettings, build_pipeline, resolve_ecg
from biofeedback.errors import ParameterError


@dataclass
class AnalysisResult:
    """What the analysis of one recording found.

    Attributes
    ----------
    info : StreamInfo
    n_samples : int
        Samples per channel analysed.
    events : list of Event
        Detected events, sorted by onset then channel: activations (kinds of
        :data:`~biofeedback.detect.classify.KINDS`) and quality spans (kinds
        of :data:`~biofeedback.detect.quality.FLAGS`).
    baseline : Baseline
        Resting level and spread of the envelope per channel.
    thresholds : tuple of ndarray
        On and off thresholds per channel.
    mains_hz : float or None
        Notched mains frequency.
    mains_note : str
        How the mains frequency was decided.
    ecg_note : str
        Whether heartbeat suppression ran, and why.
    quality : QualityReport or None
    messages : dict of str to str
        Per channel, why it was not analysed (flat, saturated, rest not
        quiet); channels analysed normally are absent.
    dropped : dict of str to int
        Per channel, activations dropped because they overlapped an
        electrode-off or motion span.
    merged : dict of str to int
        Per channel, activations merged into the previous one by the offline
        refinement (no relaxation between them).
    calibration : Calibration or None
        The calibration made from the rest period, or the one loaded.
    has_cues : bool
        Whether a cue track classified the activations.
    delay_samples : int
        Envelope lag behind the raw signal (heartbeat suppression).
    heartbeats_removed : ndarray or None
        Heartbeats subtracted per channel (heartbeat suppression on).
    envelope_peaks : BlockPeaks or None
        The envelope's largest value in each 0.25 s, for plots
        (:meth:`display_envelope`).
    """

    info: StreamInfo
    n_samples: int
    events: list
    baseline: Baseline
    thresholds: tuple
    mains_hz: float | None
    mains_note: str = ""
    extra: dict = field(default_factory=dict)
    ecg_note: str = ""
    quality: object = None
    messages: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    merged: dict = field(default_factory=dict)
    calibration: Calibration | None = None
    has_cues: bool = False
    delay_samples: int = 0
    heartbeats_removed: np.ndarray | None = None
    envelope_peaks: "BlockPeaks | None" = None

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.info.fs

    def display_envelope(self, points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
        """The detector's envelope for a plot: at most ``points`` values per channel, peaks kept.

        Returns
        -------
        t : ndarray, shape (k,)
            Time in seconds on the raw signal's clock (the envelope's delay
            taken off) of the middle of each value's span.
        envelope : ndarray, shape (n_channels, k)
            Largest envelope value (the input's units) in each span: a burst
            shorter than a span still reaches its height on the plot, where
            the thresholds are drawn.
        """
        if self.envelope_peaks is None:
            return np.zeros(0), np.zeros((self.info.n_channels, 0))
        return self.envelope_peaks.series(points, self.info.fs, self.delay_samples)

    def summary_rows(self, file: str = "") -> list[dict]:
        """One row per channel for ``summary.csv``."""
        rows = []
        kinds = list(KINDS) + sorted({e.kind for e in self.events} - set(KINDS) - set(FLAGS))
        for ch, name in enumerate(self.info.ch_names):
            mine = [e for e in self.events if e.channel == name]
            durations = [e.duration_s for e in mine if e.kind == "contraction"]
            row = {
                "file": file,
                "channel": name,
                "duration_s": round(self.duration_s, 6),
                "fs_hz": self.info.fs,
                "units": self.info.units,
                "resting_rms": float(self.baseline.level[ch]),
                "resting_sigma": float(self.baseline.sigma[ch]),
                "on_threshold": float(self.thresholds[0][ch]),
                "off_threshold": float(self.thresholds[1][ch]),
                "mains_hz": "" if self.mains_hz is None else self.mains_hz,
                "baseline_method": self.baseline.method,
                "status": "not analysed" if name in self.messages else "ok",
                "status_reason": self.messages.get(name, ""),
                "cues": "yes" if self.has_cues else "no",
            }
            if self.baseline.mvc is not None:
                row["mvc"] = float(self.baseline.mvc[ch])
            for kind in kinds:
                row[f"n_{kind}"] = sum(1 for e in mine if e.kind == kind)
            row["mean_contraction_s"] = float(np.mean(durations)) if durations else ""
            row["longest_contraction_s"] = float(np.max(durations)) if durations else ""
            row["n_dropped_artefact"] = self.dropped.get(name, 0)
            if self.quality is not None:
                for flag in FLAGS:
                    row[f"{flag}_s"] = round(self.quality.flagged_seconds(flag, ch), 3)
                bpm = self.quality.ecg_bpm[ch]
                row["ecg_bpm"] = round(float(bpm), 1) if np.isfinite(bpm) else ""
            if self.heartbeats_removed is not None:
                row["heartbeats_removed"] = int(self.heartbeats_removed[ch])
            rows.append(row)
        return rows


class BlockPeaks:
    """Largest value per block of ``block`` samples of each channel, fed chunk by chunk.

    Batch analysis keeps this of the envelope for the report's plot (four
    values a second instead of the whole envelope). Blocks lie on absolute
    sample indices from the first chunk, so where chunks end does not
    matter.

    Parameters
    ----------
    n_channels : int
    block : int
        Samples per block (at least 1).
    """

    def __init__(self, n_channels: int, block: int):
        self.n_channels = int(n_channels)
        self.block = max(1, int(block))
        self._done: list[np.ndarray] = []  # (n_channels, k) maxima of completed blocks
        self._open: np.ndarray | None = None  # (n_channels,) maximum of the block being filled
        self._fill = 0  # samples in the block being filled

    def update(self, data) -> None:
        """Add the next samples, shape (n_channels, n), consecutive with the previous ones."""
        n = data.shape[1]
        b = self.block
        start = 0
        if self._fill:
            start = min(b - self._fill, n)
            if start:
                self._open = np.maximum(self._open, data[:, :start].max(axis=1))
                self._fill += start
            if self._fill == b:
                self._done.append(self._open[:, None])
                self._open, self._fill = None, 0
        whole = (n - start) // b
        if whole:
            self._done.append(data[:, start:start + whole * b].reshape(self.n_channels, whole, b).max(axis=2))
        rest = n - start - whole * b
        if rest:
            # The block to be completed by the next chunk (no copy of the chunk is kept).
            self._open = data[:, n - rest:].max(axis=1)
            self._fill = rest

    def values(self) -> np.ndarray:
        """Block maxima so far, shape (n_channels, n_blocks); a last partial block counts as one."""
        parts = self._done + ([self._open[:, None]] if self._fill else [])
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.n_channels, 0))

    def series(self, points: int, fs: float, delay_samples: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """At most ``points`` maxima per channel (blocks grouped, the maximum of each group kept) and
        their times in seconds: the middle of each group's span, less ``delay_samples`` / ``fs``."""
        peaks = self.values()
        n_blocks = peaks.shape[1]
        edges = np.minimum(np.arange(n_blocks + 1) * self.block, self._total())
        group = max(1, -(-n_blocks // max(1, int(points))))
        starts = np.arange(0, n_blocks, group)
        grouped = np.maximum.reduceat(peaks, starts, axis=1) if n_blocks else peaks
        ends = np.append(starts[1:], n_blocks)
        t = (edges[starts] + edges[ends]) / 2.0 / fs - delay_samples / fs
        return t, grouped

    def _total(self) -> int:
        return sum(p.shape[1] for p in self._done) * self.block + self._fill


def _artefact(event, report, ch, fs) -> bool:
    """Whether a quality span makes ``event`` meaningless (it is then dropped).

    An electrode-off span anywhere within the event (widened by one quality
    window, the flags' resolution) does: the signal is gone. A motion span
    does when the event *starts* within it (same widening): the movement
    or electrode pop is what lifted the envelope. A contraction that began
    earlier and is followed by a movement is kept, since contractions move
    limbs: ballistic dorsiflexions on the emgGO tibialis recording end in a
    low-frequency excursion as the foot moves, which dropped one of its 56
    contractions when any overlap counted.
    """
    margin = report.window
    lo = event.onset_s * fs
    hi = event.offset_s * fs
    off = report.spans["electrode_off"][ch]
    if any(lo < b + margin and hi > a - margin for a, b in off):
        return True
    return any(a - margin <= lo < b + margin for a, b in report.spans["motion"][ch])


def _take_probe(chunks, fs, probe_s):
    """Read chunks until ``probe_s`` seconds are buffered (or the stream ends)."""
    buffered = []
    n = 0
    need = int(round(probe_s * fs))
    for chunk in chunks:
        buffered.append(chunk)
        n += chunk.n_samples
        if n >= need:
            break
    return buffered


def analyze_stream(info: StreamInfo, chunks, settings: PipelineSettings | None = None, *,
                   rest: tuple[float, float] | None = None, probe_s: float = 10.0,
                   mvc: tuple[float, float] | None = None, calibration: Calibration | None = None,
                   classify: bool = True, classifier: ClassifierSettings | None = None,
                   cue_map: CueMap | None = None, quality: bool = True,
                   quality_settings: QualitySettings | None = None,
                   min_rest_s: float = MIN_REST_S,
                   refine: RefineSettings | None = RefineSettings()) -> AnalysisResult:
    """Analyse a stream of chunks (see module docstring).

    Parameters
    ----------
    info : StreamInfo
        Metadata of the stream.
    chunks : iterable of Chunk
        Consecutive chunks ``(n_channels, n)`` of raw samples; their cue
        labels (``chunk.cues`` or a reader's ``layers["cues"]``) classify the
        activations.
    settings : PipelineSettings, optional
        Processing settings (defaults if None).
    rest : (float, float), optional
        Start and end in seconds of a rest period to calibrate from (checked,
        see :func:`~biofeedback.detect.calibration.calibrate`); None
        estimates the baseline from the quietest windows.
    probe_s : float
        Seconds read first to detect the mains frequency when
        ``settings.mains == "auto"`` and to learn the heartbeat.
    mvc : (float, float), optional
        Start and end in seconds of a maximum voluntary contraction.
    calibration : Calibration, optional
        A saved calibration to use instead of ``rest`` (must fit the
        stream's channels, units and processing).
    classify : bool
        Classify activations (needs cues for anything but ``contraction``)
        and report elevated tone (without cues only against a calibrated
        rest: ``rest`` or ``calibration``).
    classifier : ClassifierSettings, optional
    cue_map : CueMap, optional
        How cue labels map to rest/contract.
    quality : bool
        Run the signal-quality check (flags, channel status, dropping).
    quality_settings : QualitySettings, optional
    min_rest_s : float
        Shortest rest accepted with ``rest``.
    refine : RefineSettings or None
        Offline refinement after detection: consecutive activations with no
        relaxation between them are merged
        (:func:`~biofeedback.detect.refine.merge_unrelaxed`). None keeps the
        causal detector's events as they are, i.e. exactly those of a live
        run with the same baseline.

    Returns
    -------
    AnalysisResult
    """
    settings = settings or PipelineSettings()
    cue_map = cue_map or CueMap()
    chunks = iter(chunks)
    probe = _take_probe(chunks, info.fs, probe_s)
    chunks = itertools.chain(probe, chunks)
    # Exactly probe_s seconds (or the whole stream), whatever the chunking, so
    # the mains and heartbeat decisions do not depend on how the file is read.
    need = int(round(probe_s * info.fs))
    probe_raw = np.concatenate([c.data for c in probe], axis=1)[:, :need] if probe else None
    mains_note = f"mains notch: {settings.mains}"
    if str(settings.mains) == "auto":
        if probe_raw is not None:
            estimate = detect_mains(probe_raw, info.fs)
            mains_hz = estimate.mains_hz
            mains_note = estimate.describe()
        else:
            mains_hz = None
    elif str(settings.mains) == "off":
        mains_hz = None
    else:
        mains_hz = float(settings.mains)

    requested = settings
    quality_settings = quality_settings or QualitySettings()
    # The heartbeat decision and the quality check's primer run the same
    # beat detector over the same probe: run it once when their settings agree.
    shared_beats = None
    if quality and probe_raw is not None and quality_settings.ecg == settings.ecg_settings:
        shared_beats = probe_beats(probe_raw, info.fs, quality_settings.ecg)
    settings = resolve_ecg(settings, probe_raw, info.fs, beats=shared_beats)
    ecg_note = "heartbeat suppression: " + ("on" if settings.ecg_enabled() else "off")
    if requested.ecg == "auto" and settings.ecg_enabled() and not requested.ecg_enabled():
        ecg_note += " (a regular heart rhythm was found in the first seconds)"
    pipeline = build_pipeline(settings, info, mains_hz=mains_hz, detect=False, ecg_prime=probe_raw)
    delay = settings.delay_samples(info.fs)
    quiet = QuietWindowBaseline(info.fs, skip_s=settings.detector.settle_s)
    monitor = QualityMonitor(info, quality_settings, mains_hz=mains_hz, prime=probe_raw,
                             prime_beats=shared_beats) if quality else None
    kept = ChunkStore(info)  # envelope between the passes, spilled to disk past a budget
    peaks = BlockPeaks(info.n_channels, int(round(0.25 * info.fs)))  # the envelope, 4 values a second, to plot
    n_samples = 0
    has_cues = False
    for chunk in chunks:
        out = pipeline.process(chunk)
        labels = chunk_cues(chunk)
        codes = None
        if labels is not None:
            codes = cue_map.codes(labels)
            has_cues = has_cues or bool(np.any(codes >= 0))
        kept.append(out.data, out.first_sample, cues=codes)
        peaks.update(out.data)
        n_samples = out.stop
        if rest is None and calibration is None:
            quiet.update(out.data, out.first_sample)
        if monitor is not None:
            monitor.update(chunk.data, chunk.first_sample)
    if n_samples == 0:
        raise ParameterError("recording", "at least one sample", "no samples")
    report = monitor.finish() if monitor is not None else None
    messages: dict[str, str] = {}
    if report is not None:
        for name, status in zip(info.ch_names, report.status):
            if not status.ok:
                messages[name] = status.message

    def envelope_span(span, what):
        start, stop = (int(round(t * info.fs)) for t in span)
        if stop > n_samples:
            raise ParameterError(what, f"within the recording (0-{n_samples / info.fs:g} s)",
                                 f"{span[0]:g}:{span[1]:g}")
        return kept.span(min(start + delay, n_samples), min(stop + delay, n_samples))

    made = None
    if calibration is not None:
        problem = calibration.mismatch(info.ch_names, info.units, settings)
        if problem:
            raise ParameterError("calibration profile", "one made for this kind of recording", problem)
        baseline = calibration.baseline()
        issues = calibration.issues
        made = calibration
    elif rest is not None:
        rest_env = envelope_span(rest, "rest period (s)")
        mvc_env = envelope_span(mvc, "MVC period (s)") if mvc is not None else None
        made = calibrate(rest_env, info.fs, info.ch_names, info.units, settings, detector=settings.detector,
                         mvc_envelope=mvc_env, min_rest_s=min_rest_s,
                         method=f"rest period {rest[0]:g}-{rest[1]:g} s")
        baseline = made.baseline()
        issues = made.issues
    else:
        exclude = None
        if report is not None:
            exclude = [[(a + delay, b + delay) for a, b in spans] for spans in report.exclusion_spans()]
        baseline = quiet.result(exclude=exclude)
        issues = []
        if mvc is not None:
            mvc_values = mvc_from_envelope(envelope_span(mvc, "MVC period (s)"), info.fs)
            weak = ~(mvc_values > settings.detector.min_ratio_on * baseline.level)
            baseline = baseline.with_mvc(np.where(weak, np.nan, mvc_values))
    for issue in issues:
        if issue.stops_detection:
            messages.setdefault(issue.channel, issue.message)

    # Without cues, tone is only judged against a calibrated rest (see EventClassifier);
    # without either it is not tracked at all.
    clf = EventClassifier(classifier, cue_map, coded_cues=True, tone_without_cues=made is not None,
                          tone=has_cues or made is not None) if classify else None
    detector = ThresholdDetector(baseline, settings.detector, delay_samples=delay, classifier=clf)
    for name in messages:
        detector.disable_channel(info.ch_names.index(name), messages[name])
    found: list[Event] = []
    for chunk in kept:
        found.extend(detector.process(chunk).events)
    found.extend(detector.flush())
    merged = {name: 0 for name in info.ch_names}
    if refine is not None:
        def relabel(onset_s, offset_s):
            return classify_activation(int(round(onset_s * info.fs)), int(round(offset_s * info.fs)), info.fs,
                                       clf.cues, clf.settings)

        found, merged = merge_unrelaxed(
            found, kept.span, detector.band_edge, info.ch_names, info.fs, kinds=ACTIVATION_KINDS,
            min_relax_s=refine.min_relax_s if refine.min_relax_s is not None else settings.detector.min_rest_s,
            max_gap_s=refine.max_gap_s, require_support=refine.require_support, lead_max_s=refine.lead_max_s,
            delay_samples=delay,
            relabel=relabel if clf is not None else None)
    kept.close()

    events: list[Event] = []
    dropped = {name: 0 for name in info.ch_names}
    fs = info.fs
    for e in found:
        ch = info.ch_names.index(e.channel)
        if report is not None:
            if _artefact(e, report, ch, fs):
                if e.kind in ACTIVATION_KINDS:
                    dropped[e.channel] += 1
                continue  # elevated tone over an artefact is not tone either
            if e.kind in ACTIVATION_KINDS and overlaps(e, report.spans["saturation"][ch], fs):
                e = Event(e.kind, e.channel, e.onset_s, e.offset_s, e.peak, {**dict(e.extra), "quality": "saturation"})
        events.append(e)
    if report is not None:
        events.extend(report.events())
    events.sort(key=lambda e: (e.onset_s, info.ch_names.index(e.channel)))
    suppressor = pipeline.find(ECGSuppressor)
    return AnalysisResult(
        info=info,
        n_samples=n_samples,
        events=events,
        baseline=baseline,
        thresholds=(detector.on_threshold, detector.off_threshold),
        mains_hz=mains_hz,
        mains_note=mains_note,
        ecg_note=ecg_note,
        quality=report,
        messages=messages,
        dropped=dropped,
        merged=merged,
        calibration=made,
        has_cues=has_cues,
        delay_samples=delay,
        heartbeats_removed=None if suppressor is None else suppressor.n_subtracted.copy(),
        envelope_peaks=peaks,
    )


def analyze_recording(recording, settings: PipelineSettings | None = None, *, rest=None,
                      chunk_s: float = 1.0, **kwargs) -> AnalysisResult:
    """Analyse a :class:`~biofeedback.core.types.Recording` held in memory.

    Parameters
    ----------
    recording : Recording
        Its ``cues`` (if any) classify the activations.
    settings : PipelineSettings, optional
    rest : (float, float), optional
        Rest period in seconds for the baseline.
    chunk_s : float
        Chunk length in seconds used to stream the array (the result does
        not depend on it).
    **kwargs
        Further options of :func:`analyze_stream` (``mvc``, ``calibration``,
        ``classify``, ``quality``...).
    """
    size = max(1, int(round(chunk_s * recording.info.fs)))
    return analyze_stream(recording.info, recording.chunks(size), settings, rest=rest, **kwargs)
