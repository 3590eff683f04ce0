"""Offline analysis of a recording with the same stages as live feedback.

A recording is streamed through the pipeline chunk by chunk, exactly as a
live stream would be. The only batch-specific step is the baseline: when no
rest period is marked, it is estimated from the quietest windows of the
whole recording, which needs the envelope of every sample before detection
starts. So the analysis runs in two passes:

1. band-pass, notch and envelope over the stream (keeping the envelope and
   feeding the quiet-window estimator);
2. the detector over the kept envelope, with that baseline.

Detection in pass 2 is the very same causal stage as live, so the events of
a batch run equal those of a live run given the same baseline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.detect.baseline import Baseline, QuietWindowBaseline, baseline_from_rest
from biofeedback.detect.threshold import ThresholdDetector
from biofeedback.dsp.mains import detect_mains
from biofeedback.dsp.settings import PipelineSettings, build_pipeline
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
        Detected events, sorted by onset then channel.
    baseline : Baseline
        Resting level and spread of the envelope per channel.
    thresholds : tuple of ndarray
        On and off thresholds per channel.
    mains_hz : float or None
        Notched mains frequency.
    mains_note : str
        How the mains frequency was decided.
    """

    info: StreamInfo
    n_samples: int
    events: list
    baseline: Baseline
    thresholds: tuple
    mains_hz: float | None
    mains_note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.info.fs

    def summary_rows(self, file: str = "") -> list[dict]:
        """One row per channel for ``summary.csv``."""
        rows = []
        kinds = sorted({e.kind for e in self.events} | {"contraction"})
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
            }
            for kind in kinds:
                row[f"n_{kind}"] = sum(1 for e in mine if e.kind == kind)
            row["mean_contraction_s"] = float(np.mean(durations)) if durations else ""
            row["longest_contraction_s"] = float(np.max(durations)) if durations else ""
            rows.append(row)
        return rows


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
                   rest: tuple[float, float] | None = None, probe_s: float = 10.0) -> AnalysisResult:
    """Analyse a stream of chunks (see module docstring).

    Parameters
    ----------
    info : StreamInfo
        Metadata of the stream.
    chunks : iterable of Chunk
        Consecutive chunks ``(n_channels, n)`` of raw samples.
    settings : PipelineSettings, optional
        Processing settings (defaults if None).
    rest : (float, float), optional
        Start and end in seconds of a rest period to take the baseline from;
        None estimates it from the quietest windows.
    probe_s : float
        Seconds read first to detect the mains frequency when
        ``settings.mains == "auto"``.

    Returns
    -------
    AnalysisResult
    """
    settings = settings or PipelineSettings()
    chunks = iter(chunks)
    mains_note = f"mains notch: {settings.mains}"
    if str(settings.mains) == "auto":
        probe = _take_probe(chunks, info.fs, probe_s)
        chunks = itertools.chain(probe, chunks)
        if probe:
            estimate = detect_mains(np.concatenate([c.data for c in probe], axis=1), info.fs)
            mains_hz = estimate.mains_hz
            mains_note = estimate.describe()
        else:
            mains_hz = None
    elif str(settings.mains) == "off":
        mains_hz = None
    else:
        mains_hz = float(settings.mains)

    pipeline = build_pipeline(settings, info, mains_hz=mains_hz, detect=False)
    quiet = QuietWindowBaseline(info.fs, skip_s=settings.detector.settle_s)
    kept: list[Chunk] = []
    n_samples = 0
    for chunk in chunks:
        out = pipeline.process(chunk)
        kept.append(Chunk(out.data, out.first_sample, info))
        n_samples = out.stop
        if rest is None:
            quiet.update(out.data, out.first_sample)
    if n_samples == 0:
        raise ParameterError("recording", "at least one sample", "no samples")

    if rest is None:
        baseline = quiet.result()
    else:
        start, stop = (int(round(t * info.fs)) for t in rest)
        if stop > n_samples:
            raise ParameterError("rest period (s)", f"within the recording (0-{n_samples / info.fs:g} s)",
                                 f"{rest[0]:g}:{rest[1]:g}")
        envelope = np.concatenate([c.data for c in kept], axis=1)
        baseline = baseline_from_rest(envelope[:, start:stop], f"rest period {rest[0]:g}-{rest[1]:g} s")

    detector = ThresholdDetector(baseline, settings.detector)
    events: list[Event] = []
    for chunk in kept:
        events.extend(detector.process(chunk).events)
    events.extend(detector.flush())
    events.sort(key=lambda e: (e.onset_s, info.ch_names.index(e.channel)))
    return AnalysisResult(
        info=info,
        n_samples=n_samples,
        events=events,
        baseline=baseline,
        thresholds=(detector.on_threshold, detector.off_threshold),
        mains_hz=mains_hz,
        mains_note=mains_note,
    )


def analyze_recording(recording, settings: PipelineSettings | None = None, *, rest=None,
                      chunk_s: float = 1.0) -> AnalysisResult:
    """Analyse a :class:`~biofeedback.core.types.Recording` held in memory.

    Parameters
    ----------
    recording : Recording
    settings : PipelineSettings, optional
    rest : (float, float), optional
        Rest period in seconds for the baseline.
    chunk_s : float
        Chunk length in seconds used to stream the array (the result does
        not depend on it).
    """
    size = max(1, int(round(chunk_s * recording.info.fs)))
    return analyze_stream(recording.info, recording.chunks(size), settings, rest=rest)
