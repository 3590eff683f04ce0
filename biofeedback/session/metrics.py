"""Clinical metrics of a guided session, per phase.

A session is a recording cut into :class:`~biofeedback.session.phases.Phase`
objects (pre-baseline rest, flicks, tonic holds, an endurance hold,
post-baseline rest for the Glazer assessment; relax phases for
down-training). This module turns the raw samples, the phases and the
detected events into numbers a clinician reads, with one pure function per
phase role. Every name carries its unit (``_uv``, ``_s``, ``_pct``,
``_hz``, ``_hz_per_s``); ``_uv`` means "in the stream's units", which are
µV for every device the toolkit converts (raw ADC ``counts`` otherwise, and
the report says so).

Signals
-------
The envelope and the filtered signal are computed with the project's own
pipeline (:func:`~biofeedback.dsp.settings.build_pipeline` with the
settings saved in the session), so the levels equal what the person saw
live. When heartbeat suppression delays the pipeline, both signals are
moved back by that delay so that they line up with the cues and phases
(events keep raw-signal times already). The first ``settle_s`` seconds of
the recording (the detector's settle time, 0.5 s by default), where the
band-pass and the moving window are still settling, are left out of every
metric.

Rest reference
--------------
Rise, recovery and time-to-relax need to know where "rest" is. The rest
reference of a channel is the mean ``m`` and standard deviation ``s`` of
its envelope over the first ``baseline`` phase (the Glazer pre-baseline),
with detected activations (and ``hold_s`` after each) left out; failing a
baseline phase, the session's calibration (median and robust spread of a
rest), and failing that the quietest half of the 1 s windows of the
relax-cued time. The **rest band** is everything up to ``m + 3 s``; the
envelope is **back at rest** at the first sample from which it stays in
the rest band for ``hold_s`` (0.5 s) without interruption, so a single dip
inside a contraction does not count.

Definitions (one per metric)
----------------------------
:data:`DEFINITIONS` holds one line per metric (listed at the end of this
docstring); the report prints them under its tables.

Conventions follow the Glazer protocol (Glazer, Romanzi & Polaneczky 1999,
J Reprod Med 44:779-782; Glazer & Hacad 2012, Biofeedback 40:75-79):
pre-baseline rest, five quick flicks, five 10 s tonic holds, a 60 s
endurance hold and a post-baseline rest, each scored by amplitude
(mean/peak, µV), variability (coefficient of variation) and, for the
contractions, the speed of recruitment and of release. Glazer's
instruments smoothed the signal differently from the toolkit's 100 ms
moving RMS, so absolute CVs are comparable within this toolkit, not with
published norms. The median frequency and its decline during a sustained
contraction is the classic spectral fatigue index (De Luca 1984, Crit Rev
Biomed Eng 11:251-279; Merletti, Knaflitz & De Luca 1990, J Appl Physiol
69:1810-1820).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from biofeedback.core.types import Event, Recording, StreamInfo, split_into_chunks
from biofeedback.detect.baseline import Baseline, QuietWindowBaseline, baseline_from_rest
from biofeedback.detect.classify import ClassifierSettings, EventClassifier
from biofeedback.detect.ecg import ECGSettings
from biofeedback.detect.threshold import DetectorSettings, ThresholdDetector
from biofeedback.dsp.settings import PipelineSettings, build_pipeline, resolve_mains
from biofeedback.errors import ParameterError
from biofeedback.session.phases import Phase

#: Seconds the envelope must stay in the rest band to count as back at rest.
HOLD_S = 0.5
#: The rest band reaches this many standard deviations above the rest mean.
REST_BAND_SD = 3.0
#: Window of the median-frequency series, in seconds (non-overlapping).
MDF_WINDOW_S = 1.0
#: Welch segment inside each window, in seconds (Hann, 50 % overlap).
MDF_SEGMENT_S = 0.25
#: Seconds compared at the start and end of an endurance hold.
DECLINE_WINDOW_S = 10.0
#: The amplitude of a contraction is the peak of the envelope averaged over this long (s).
AMPLITUDE_WINDOW_S = 0.25
#: Recovery is measured from 90 % of the level held in this many seconds before back at rest.
RELEASE_WINDOW_S = 2.0
#: Mains probe of the live worker (seconds of raw signal used to detect 50/60 Hz).
MAINS_PROBE_S = 1.0
#: Involuntary activations counted as spasms (twitches are counted apart).
SPASM_KINDS = ("spasm", "cramp")
#: Activations left out of resting statistics.
ACTIVE_KINDS = ("contraction", "failure_to_relax", "spasm", "cramp", "twitch")

#: One-line definition of every metric, by name (the report prints these).
DEFINITIONS = {
    "duration_s": "length of the phase as run (end minus start)",
    "rest_mean_uv": "mean of the RMS envelope over the phase (Glazer resting mean; everything included)",
    "rest_sd_uv": "standard deviation of the RMS envelope over the phase",
    "rest_cv_pct": "coefficient of variation: 100 x SD / mean of the envelope over the phase",
    "tone_uv": "mean envelope with detected activations (and 0.5 s after each) left out: the resting tone",
    "peak_uv": "highest envelope value in the phase",
    "mean_uv": "mean envelope over the phase",
    "sd_uv": "standard deviation of the envelope over the phase",
    "cv_pct": "coefficient of variation of the envelope over the phase, 100 x SD / mean (variability)",
    "latency_s": "from the contract cue to the start of the rise (the envelope's 10 % point)",
    "rise_time_s": "10 % to 90 % of the contraction's amplitude above the rest mean, on the first rise "
                   "(amplitude: highest 0.25 s average of the envelope during the cue)",
    "recovery_time_s": "from the last 90 % point of the level let go of (highest 0.25 s average in the 2 s "
                       "before) to back at rest (in the rest band, rest mean + 3 SD, for 0.5 s without interruption)",
    "median_freq_start_hz": "median frequency of the first 1 s window of the hold (Welch, filtered signal)",
    "median_freq_end_hz": "median frequency of the last 1 s window of the hold",
    "median_freq_slope_hz_per_s": "least-squares slope of the 1 s median frequencies over the hold "
                                  "(negative: spectral fatigue)",
    "amplitude_decline_pct": "100 x (1 - mean of the last 10 s / mean of the first 10 s) of the hold "
                             "(thirds for holds under 30 s)",
    "spasm_count": "spasm and cramp events (uncued activations of 0.25 s or more) starting in the phase",
    "twitch_count": "uncued activations shorter than 0.25 s starting in the phase (not spasms)",
    "spasms_per_min": "spasm_count per minute of the phase",
    "spasm_total_s": "summed duration of the phase's spasms, s",
    "mean_spasm_s": "mean duration of the phase's spasms (detector onset to offset), s",
    "longest_spasm_s": "longest spasm of the phase, s",
    "mean_time_to_relax_s": "mean over the phase's spasms of the time from the spasm's envelope peak "
                            "to back at rest",
    "max_time_to_relax_s": "longest time-to-relax of the phase's spasms",
    "failure_to_relax": "cued contractions still active more than 1 s after this relax cue began "
                        "(failure_to_relax events ending in the phase)",
    "relaxation_time_s": "from the relax cue (start of the phase, after a contract cue) to back at rest",
    "in_target_pct": "percent of the phase with the envelope inside the phase's target band "
                     "(for a relax target: below the line)",
}

if __doc__:  # the definitions, once, in the module's documentation too
    __doc__ += "\nMetric definitions\n------------------\n" + "\n".join(
        f"* ``{name}``: {text}." for name, text in DEFINITIONS.items()) + "\n"

#: Metrics shown per role, in order (the report's columns).
ROLE_METRICS = {
    "baseline": ("duration_s", "rest_mean_uv", "rest_sd_uv", "rest_cv_pct", "tone_uv", "spasm_count"),
    "flick": ("peak_uv", "mean_uv", "latency_s", "rise_time_s", "recovery_time_s"),
    "tonic": ("mean_uv", "sd_uv", "cv_pct", "peak_uv", "rise_time_s", "recovery_time_s"),
    "endurance": ("mean_uv", "cv_pct", "median_freq_start_hz", "median_freq_end_hz",
                  "median_freq_slope_hz_per_s", "amplitude_decline_pct"),
    "relax": ("duration_s", "mean_uv", "tone_uv", "in_target_pct", "spasm_count", "spasms_per_min", "mean_spasm_s",
              "mean_time_to_relax_s", "max_time_to_relax_s", "failure_to_relax", "relaxation_time_s"),
    "rest": ("mean_uv", "tone_uv", "spasm_count", "mean_time_to_relax_s", "failure_to_relax",
             "relaxation_time_s"),
    "work": ("mean_uv", "cv_pct", "peak_uv", "in_target_pct", "rise_time_s", "recovery_time_s"),
    "release": ("relaxation_time_s", "mean_uv", "tone_uv", "spasm_count", "failure_to_relax"),
}


# ----------------------------------------------------------------------------
# Settings and signals


def settings_from_dict(data: dict | None) -> PipelineSettings:
    """Rebuild :class:`PipelineSettings` from its ``as_dict()`` form (as saved in ``session.json``).

    Keys this version does not know are ignored, so an older toolkit can
    read a newer session's settings; missing keys take their defaults.
    """
    if not data:
        return PipelineSettings()

    def build(cls, values):
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        kept = {}
        for key, value in values.items():
            if key in known:
                kept[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kept)

    top = {k: v for k, v in data.items() if k not in ("detector", "ecg_settings")}
    settings = build(PipelineSettings, top)
    return settings.replace(detector=build(DetectorSettings, data.get("detector")),
                            ecg_settings=build(ECGSettings, data.get("ecg_settings")))


@dataclass
class Signals:
    """Envelope and filtered signal of a session, aligned with its cues.

    Attributes
    ----------
    info : StreamInfo
    envelope, filtered : ndarray, shape (n_channels, n_samples)
        Outputs of the session's pipeline, moved back by ``delay_samples``
        (the last ``delay_samples`` repeat the final value).
    settings : PipelineSettings
    mains_hz : float or None
        The notched mains frequency.
    delay_samples : int
    settle_s : float
        Seconds at the start left out of every metric.
    valid : ndarray of bool, shape (n_samples,), optional
        False where a sample was not recorded (a disconnect: the store holds
        the previous value there) and for ``settle_s`` after each such gap,
        while the filters settle; None when every sample is real.
    """

    info: StreamInfo
    envelope: np.ndarray
    filtered: np.ndarray
    settings: PipelineSettings
    mains_hz: float | None = None
    delay_samples: int = 0
    settle_s: float = 0.5
    valid: np.ndarray | None = None

    @property
    def fs(self) -> float:
        return self.info.fs

    @property
    def n_samples(self) -> int:
        return self.envelope.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.info.fs

    def index(self, t_s: float) -> int:
        """Sample index of time ``t_s`` (clipped to the recording)."""
        return int(min(max(round(t_s * self.info.fs), 0), self.n_samples))


def compute_signals(recording: Recording, settings: PipelineSettings | None = None,
                    mains_hz: float | None | str = "auto", present=None) -> Signals:
    """Run the session's pipeline (no detection) over a recording.

    Parameters
    ----------
    recording : Recording
        Raw samples, ``(n_channels, n_samples)``.
    settings : PipelineSettings, optional
        The session's saved settings (defaults if None).
    mains_hz : float, None or "auto"
        Mains frequency to notch. ``"auto"`` decides it as the live window
        does: from the settings, and for ``mains="auto"`` from the first
        second of raw signal.
    present : ndarray of bool, optional
        False for samples not in the file (see
        :attr:`biofeedback.session.store.SessionData.present`).

    Returns
    -------
    Signals
    """
    settings = settings or PipelineSettings()
    info = recording.info
    data = np.asarray(recording.data, dtype=float)
    if mains_hz == "auto":
        probe = data[:, : max(1, int(round(MAINS_PROBE_S * info.fs)))] if data.shape[1] else None
        mains_hz = resolve_mains(settings, probe, info.fs) if probe is not None else None
    pipeline = build_pipeline(settings, info, mains_hz=mains_hz, detect=False)
    env_parts, filt_parts = [], []
    for chunk in split_into_chunks(data, info, max(1, int(info.fs))):
        out = pipeline.process(chunk)
        env_parts.append(out.data)
        filt_parts.append(out.layers["filtered"])
    empty = np.zeros((info.n_channels, 0))
    envelope = np.concatenate(env_parts, axis=1) if env_parts else empty
    filtered = np.concatenate(filt_parts, axis=1) if filt_parts else empty
    delay = settings.delay_samples(info.fs)
    if delay and envelope.shape[1]:
        envelope = _advance(envelope, delay)
        filtered = _advance(filtered, delay)
    valid = None
    if present is not None:
        present = np.asarray(present, dtype=bool)
        if present.shape == (envelope.shape[1],) and not present.all():
            valid = present.copy()
            settle = int(round(settings.detector.settle_s * info.fs)) + int(round(settings.rms_window_s * info.fs))
            ends = np.flatnonzero(np.diff(present.astype(np.int8)) == 1) + 1  # first sample after each gap
            for e in ends:
                valid[e:e + settle] = False
    return Signals(info, envelope, filtered, settings, mains_hz, delay, settings.detector.settle_s, valid)


def _advance(x: np.ndarray, delay: int) -> np.ndarray:
    """``x`` moved ``delay`` samples earlier, the end padded with its last value."""
    n = x.shape[1]
    if delay >= n:
        return np.repeat(x[:, -1:], n, axis=1)
    return np.concatenate([x[:, delay:], np.repeat(x[:, -1:], delay, axis=1)], axis=1)


# ----------------------------------------------------------------------------
# Rest reference


@dataclass(frozen=True)
class RestReference:
    """Where rest is, per channel (see module docstring).

    Attributes
    ----------
    mean, sd : ndarray, shape (n_channels,)
        Mean and standard deviation of the resting envelope.
    source : str
        Where they come from (for the report).
    """

    mean: np.ndarray
    sd: np.ndarray
    source: str

    @property
    def band_edge(self) -> np.ndarray:
        """Upper edge of the rest band: ``mean + 3 sd``."""
        return self.mean + REST_BAND_SD * self.sd


def activity_mask(n: int, fs: float, events, channel: str, kinds=ACTIVE_KINDS, after_s: float = HOLD_S):
    """Boolean mask of samples inside an activation of ``channel`` (plus ``after_s`` after it)."""
    mask = np.zeros(n, dtype=bool)
    for e in events:
        if e.channel == channel and e.kind in kinds:
            a = max(0, int(math.floor(e.onset_s * fs)))
            b = min(n, int(math.ceil((e.offset_s + after_s) * fs)))
            if b > a:
                mask[a:b] = True
    return mask


def rest_reference(signals: Signals, phases, events=(), calibration: dict | None = None) -> RestReference:
    """Rest mean and SD per channel: first baseline phase, else calibration, else quiet windows."""
    env, fs = signals.envelope, signals.fs
    settle = signals.index(signals.settle_s)
    base = next((p for p in phases if p.role == "baseline"), None)
    if base is not None:
        a, b = max(settle, signals.index(base.start_s)), signals.index(base.end_s)
        if b - a >= int(fs):  # at least a second of rest
            means, sds = [], []
            for ch, name in enumerate(signals.info.ch_names):
                x = env[ch, a:b]
                quiet = ~activity_mask(signals.n_samples, fs, events, name)[a:b]
                if quiet.sum() >= int(fs):
                    x = x[quiet]
                means.append(float(np.mean(x)))
                sds.append(float(np.std(x)))
            return RestReference(np.array(means), np.array(sds), f"{base.name} ({base.start_s:g}-{base.end_s:g} s)")
    if calibration and calibration.get("level") and calibration.get("sigma"):
        level = np.array([math.nan if v is None else float(v) for v in calibration["level"]])
        sigma = np.array([math.nan if v is None else float(v) for v in calibration["sigma"]])
        if level.shape == (signals.info.n_channels,) and np.all(np.isfinite(level)):
            return RestReference(level, np.nan_to_num(sigma), "the session's calibration")
    quiet = QuietWindowBaseline(fs, skip_s=signals.settle_s)
    quiet.update(env, 0)
    b = quiet.result()
    return RestReference(b.level, b.sigma, f"the {b.method}")


# ----------------------------------------------------------------------------
# Detection (when the session has no events of its own)


def detect_events(signals: Signals, cues=None, baseline: Baseline | None = None,
                  classifier: ClassifierSettings | None = None) -> list[Event]:
    """Detect and classify activations on the aligned envelope, as live does.

    Parameters
    ----------
    signals : Signals
    cues : ndarray of str, shape (n_samples,), optional
        Cue per sample (``relax``/``contract``); classifies spasms.
    baseline : Baseline, optional
        Detector baseline (default: from the first 5 s after the settle
        time, like the live detector's calibration).
    classifier : ClassifierSettings, optional

    Returns
    -------
    list of Event
        Sorted by onset.
    """
    info, env = signals.info, signals.envelope
    settle = signals.index(signals.settle_s)
    if baseline is None:
        baseline = baseline_from_rest(env[:, settle:settle + max(1, int(5 * info.fs))], "first 5 s")
    clf = EventClassifier(classifier)
    det = ThresholdDetector(baseline, signals.settings.detector, classifier=clf)
    events: list[Event] = []
    for chunk in split_into_chunks(env, info, max(1, int(info.fs)), cues=cues):
        events.extend(det.process(chunk).events)
    events.extend(det.flush())
    events.sort(key=lambda e: (e.onset_s, e.channel))
    return events


def baseline_for_detection(signals: Signals, phases, calibration: dict | None = None) -> Baseline | None:
    """Detector baseline: median/MAD of the first baseline phase, else the calibration, else None."""
    settle = signals.index(signals.settle_s)
    base = next((p for p in phases if p.role == "baseline"), None)
    if base is not None:
        a, b = max(settle, signals.index(base.start_s)), signals.index(base.end_s)
        if b - a >= int(signals.fs):
            return baseline_from_rest(signals.envelope[:, a:b], base.name)
    if calibration and calibration.get("level") and calibration.get("sigma"):
        try:
            return Baseline(np.array(calibration["level"], float), np.array(calibration["sigma"], float),
                            "the session's calibration")
        except (TypeError, ValueError):
            return None
    return None


# ----------------------------------------------------------------------------
# Building blocks


def back_to_rest(env, start: int, edge: float, stop: int, hold: int) -> int | None:
    """First index ``>= start`` from which ``env`` stays ``<= edge`` for ``hold`` samples.

    A run that reaches ``stop`` (the end of the search) counts even if
    shorter. Returns None when the envelope never gets back before ``stop``.
    """
    if stop <= start:
        return None
    below = np.asarray(env[start:stop]) <= edge
    if not below.any():
        return None
    padded = np.concatenate(([False], below, [False]))
    change = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = change[::2], change[1::2]
    ok = (ends - starts >= hold) | (ends == below.size)
    if not ok.any():
        return None
    return start + int(starts[np.argmax(ok)])


def _nan_stats(x):
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(x))
    sd = float(np.std(x))
    cv = 100.0 * sd / mean if mean > 0 else math.nan
    return mean, sd, cv


def amplitude_stats(env_ch, fs: float, start_s: float, end_s: float, settle_s: float = 0.0, valid=None) -> dict:
    """Mean, SD, CV (percent) and peak of an envelope between two times.

    ``valid`` (boolean, one per sample) leaves out samples that were not
    recorded (a disconnect) and the filters' settling after them.
    """
    a = int(round(max(start_s, settle_s) * fs))
    b = int(round(end_s * fs))
    x = np.asarray(env_ch[a:b], dtype=float)
    if valid is not None:
        x = x[np.asarray(valid[a:b], dtype=bool)]
    mean, sd, cv = _nan_stats(x)
    return {"mean_uv": mean, "sd_uv": sd, "cv_pct": cv, "peak_uv": float(np.max(x)) if x.size else math.nan}


def moving_average(x, width: int) -> np.ndarray:
    """Centred moving average of ``x`` over ``width`` samples (shorter windows at the ends)."""
    x = np.asarray(x, dtype=float)
    width = max(1, int(width))
    if width == 1 or x.size == 0:
        return x.copy()
    c = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(x.size)
    lo = np.clip(idx - width // 2, 0, x.size)
    hi = np.clip(idx - width // 2 + width, 0, x.size)
    return (c[hi] - c[lo]) / (hi - lo)


def contraction_timing(env_ch, fs: float, start_s: float, end_s: float, rest_mean: float, rest_edge: float,
                       search_end_s: float, hold_s: float = HOLD_S) -> dict:
    """Peak, latency, rise and recovery of one cued contraction.

    The contraction's amplitude ``A`` is the highest value of the envelope
    averaged over :data:`AMPLITUDE_WINDOW_S` (0.25 s) during the cue, so a
    single 100 ms fluctuation on a held plateau does not set the 10/90 %
    levels; ``peak_uv`` is the highest raw envelope value. With ``m`` the
    rest mean, the 10 % level is ``m + 0.1 (A - m)`` and the 90 % level
    ``m + 0.9 (A - m)``:

    * ``latency_s``: cue start to the 10 % point;
    * ``rise_time_s``: from the last sample at or under the 10 % level
      before the first 90 % crossing, to that crossing;
    * ``recovery_time_s``: from the last sample at or over 90 % of the
      level let go of (the highest 0.25 s average in the
      :data:`RELEASE_WINDOW_S` before back at rest, so a hold that faded is
      measured from where it ended up) to back at rest (in the rest band
      for ``hold_s`` without interruption), looked for up to
      ``search_end_s``.

    Parameters
    ----------
    env_ch : ndarray, shape (n,)
        Envelope of one channel.
    fs : float
    start_s, end_s : float
        The contract cue.
    rest_mean, rest_edge : float
        Rest mean and upper edge of the rest band.
    search_end_s : float
        How far to look for the return to rest (the next contract cue or
        the end of the recording).
    hold_s : float

    Returns
    -------
    dict
        ``peak_uv``, ``peak_time_s``, ``amplitude_uv``, ``latency_s``,
        ``rise_time_s``, ``recovery_time_s``, ``rise_start_s``,
        ``release_s`` (last 90 % point) and ``back_at_rest_s`` (NaN where
        not found).
    """
    n = len(env_ch)
    env_ch = np.asarray(env_ch, dtype=float)
    a, b = int(round(start_s * fs)), min(n, int(round(end_s * fs)))
    out = dict.fromkeys(("peak_uv", "peak_time_s", "amplitude_uv", "latency_s", "rise_time_s",
                         "recovery_time_s", "rise_start_s", "release_s", "back_at_rest_s"), math.nan)
    if b <= a:
        return out
    seg = env_ch[a:b]
    ip = a + int(np.argmax(seg))
    out["peak_uv"], out["peak_time_s"] = float(env_ch[ip]), ip / fs
    width = max(1, int(round(AMPLITUDE_WINDOW_S * fs)))
    pad = width
    lo_i, hi_i = max(0, a - pad), min(n, b + pad)
    amplitude = float(np.max(moving_average(env_ch[lo_i:hi_i], width)[a - lo_i:b - lo_i]))
    out["amplitude_uv"] = amplitude
    height = amplitude - rest_mean
    if not height > 0:
        return out
    lo, hi = rest_mean + 0.1 * height, rest_mean + 0.9 * height
    over = np.flatnonzero(seg >= hi)
    if not over.size:
        return out
    i90 = a + int(over[0])
    under = np.flatnonzero(env_ch[a:i90] <= lo)
    i10 = a + int(under[-1]) + 1 if under.size else a
    out["latency_s"] = (i10 - a) / fs
    out["rise_time_s"] = (i90 - i10) / fs
    out["rise_start_s"] = i10 / fs
    stop = min(n, int(round(search_end_s * fs)))
    back = back_to_rest(env_ch, i90, rest_edge, stop, max(1, int(round(hold_s * fs))))
    if back is not None:
        # The level let go of: the highest 0.25 s average of the RELEASE_WINDOW_S before back at rest
        # (a hold that faded is measured from where it was, not from its first peak).
        w0 = max(i90, back - int(round(RELEASE_WINDOW_S * fs)))
        lo_i, hi_i = max(0, w0 - pad), min(n, back + pad)
        level = float(np.max(moving_average(env_ch[lo_i:hi_i], width)[w0 - lo_i:back - lo_i])) if back > w0 \
            else amplitude
        hi_rel = rest_mean + 0.9 * max(level - rest_mean, 0.0)
        high = np.flatnonzero(env_ch[i90:back] >= hi_rel)
        last90 = i90 + int(high[-1]) if high.size else i90
        out["recovery_time_s"] = (back - last90) / fs
        out["release_s"] = last90 / fs
        out["back_at_rest_s"] = back / fs
    return out


def median_frequency(x, fs: float, band: tuple[float, float] | None = None,
                     segment_s: float = MDF_SEGMENT_S) -> float:
    """Median frequency (Hz) of ``x``: the frequency splitting its Welch power spectrum in two equal halves.

    The cumulative power is interpolated linearly between frequency bins.
    ``band`` limits the spectrum (the pipeline's band-pass edges).
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=float)
    nper = max(8, min(x.size, int(round(segment_s * fs))))
    if x.size < 8:
        return math.nan
    f, p = welch(x, fs=fs, window="hann", nperseg=nper, noverlap=nper // 2, detrend="constant")
    if band is not None:
        keep = (f >= band[0]) & (f <= band[1])
        f, p = f[keep], p[keep]
    total = np.cumsum(p)
    if f.size < 2 or not total[-1] > 0:
        return math.nan
    return float(np.interp(total[-1] / 2.0, total, f))


def median_frequency_series(filtered_ch, fs: float, start_s: float, end_s: float,
                            window_s: float = MDF_WINDOW_S, band=None, valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Median frequency of consecutive ``window_s`` windows between two times.

    Windows holding samples that ``valid`` marks as not recorded give NaN.

    Returns
    -------
    times : ndarray
        Window centres in seconds from ``start_s``.
    mdf : ndarray
        Median frequency of each window, Hz.
    """
    w = max(8, int(round(window_s * fs)))
    a, b = int(round(start_s * fs)), min(len(filtered_ch), int(round(end_s * fs)))
    times, values = [], []
    for k in range(a, b - w + 1, w):
        times.append((k - a + w / 2) / fs)
        if valid is not None and not np.all(valid[k:k + w]):
            values.append(math.nan)
            continue
        values.append(median_frequency(filtered_ch[k:k + w], fs, band))
    return np.array(times), np.array(values)


def slope(times, values) -> float:
    """Least-squares slope of ``values`` against ``times`` (NaN with fewer than 3 finite points)."""
    t, v = np.asarray(times, float), np.asarray(values, float)
    ok = np.isfinite(t) & np.isfinite(v)
    if ok.sum() < 3:
        return math.nan
    return float(np.polyfit(t[ok], v[ok], 1)[0])


def endurance_metrics(env_ch, filtered_ch, fs: float, start_s: float, end_s: float, band=None, valid=None) -> dict:
    """Mean, CV, median-frequency trend and amplitude decline of a sustained hold.

    Returns a dict with the scalar metrics and ``mdf_times_s`` /
    ``mdf_hz`` (the series, times from the start of the hold).
    """
    stats = amplitude_stats(env_ch, fs, start_s, end_s, valid=valid)
    times, mdf = median_frequency_series(filtered_ch, fs, start_s, end_s, band=band, valid=valid)
    length = end_s - start_s
    part = DECLINE_WINDOW_S if length >= 3 * DECLINE_WINDOW_S else length / 3.0
    first = amplitude_stats(env_ch, fs, start_s, start_s + part, valid=valid)["mean_uv"]
    last = amplitude_stats(env_ch, fs, end_s - part, end_s, valid=valid)["mean_uv"]
    finite = mdf[np.isfinite(mdf)] if mdf.size else mdf
    return {
        "mean_uv": stats["mean_uv"], "sd_uv": stats["sd_uv"], "cv_pct": stats["cv_pct"],
        "peak_uv": stats["peak_uv"],
        "median_freq_start_hz": float(finite[0]) if finite.size else math.nan,
        "median_freq_end_hz": float(finite[-1]) if finite.size else math.nan,
        "median_freq_slope_hz_per_s": slope(times, mdf),
        "amplitude_decline_pct": 100.0 * (1.0 - last / first) if first > 0 else math.nan,
        "mdf_times_s": times, "mdf_hz": mdf,
    }


def spasm_metrics(env_ch, fs: float, phase: Phase, events_ch, rest_edge: float, search_end_s: float,
                  hold_s: float = HOLD_S) -> tuple[dict, list[dict]]:
    """Spasms of one relax-cued phase and the time to relax after each.

    Parameters
    ----------
    env_ch : ndarray
    fs : float
    phase : Phase
    events_ch : list of Event
        Events of this channel (any phase; those starting in the phase count).
    rest_edge : float
    search_end_s : float
        How far to look for the return to rest.
    hold_s : float

    Returns
    -------
    values : dict
        ``spasm_count``, ``twitch_count``, ``spasms_per_min``,
        ``spasm_total_s``, ``mean_spasm_s``, ``longest_spasm_s``,
        ``mean_time_to_relax_s``, ``max_time_to_relax_s``,
        ``failure_to_relax``.
    items : list of dict
        One per spasm: ``kind``, ``onset_s``, ``offset_s``, ``duration_s``,
        ``peak_uv``, ``peak_time_s``, ``time_to_relax_s``.
    """
    n = len(env_ch)
    hold = max(1, int(round(hold_s * fs)))
    stop = min(n, int(round(search_end_s * fs)))
    inside = [e for e in events_ch if phase.start_s <= e.onset_s < phase.end_s]
    spasms = [e for e in inside if e.kind in SPASM_KINDS]
    items = []
    for e in spasms:
        a, b = int(round(e.onset_s * fs)), max(int(round(e.onset_s * fs)) + 1, int(round(e.offset_s * fs)))
        a, b = min(a, n - 1), min(b, n)
        ip = a + int(np.argmax(env_ch[a:b])) if b > a else a
        back = back_to_rest(env_ch, ip, rest_edge, stop, hold)
        items.append({
            "kind": e.kind, "onset_s": e.onset_s, "offset_s": e.offset_s, "duration_s": e.duration_s,
            "peak_uv": float(env_ch[ip]) if n else math.nan, "peak_time_s": ip / fs,
            "time_to_relax_s": (back - ip) / fs if back is not None else math.nan,
        })
    durations = [it["duration_s"] for it in items]
    relax = [it["time_to_relax_s"] for it in items if math.isfinite(it["time_to_relax_s"])]
    minutes = phase.duration_s / 60.0
    failures = [e for e in events_ch if e.kind == "failure_to_relax" and phase.start_s <= e.offset_s < phase.end_s]
    values = {
        "spasm_count": len(spasms),
        "twitch_count": sum(1 for e in inside if e.kind == "twitch"),
        "spasms_per_min": len(spasms) / minutes if minutes > 0 else math.nan,
        "spasm_total_s": float(sum(durations)),
        "mean_spasm_s": float(np.mean(durations)) if durations else math.nan,
        "longest_spasm_s": float(max(durations)) if durations else math.nan,
        "mean_time_to_relax_s": float(np.mean(relax)) if relax else math.nan,
        "max_time_to_relax_s": float(max(relax)) if relax else math.nan,
        "failure_to_relax": len(failures),
    }
    return values, items


# ----------------------------------------------------------------------------
# Per-phase metrics


@dataclass
class PhaseMetrics:
    """The metrics of one phase on one channel.

    Attributes
    ----------
    phase : Phase
    channel : str
    values : dict
        Scalar metrics by name (see :data:`DEFINITIONS`); NaN where not
        measurable.
    items : list of dict
        Per-event details (one per spasm).
    series : dict
        Arrays for plots (``mdf_times_s``/``mdf_hz`` of an endurance hold).
    notes : list of str
        What could not be measured, and why.
    """

    phase: Phase
    channel: str
    values: dict = field(default_factory=dict)
    items: list = field(default_factory=list)
    series: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def shown(self) -> list[tuple[str, object]]:
        """The role's metrics in report order, ``(name, value)``."""
        return [(k, self.values.get(k, math.nan)) for k in ROLE_METRICS.get(self.phase.role, ())]


def _next_contract_start(phases, phase, default):
    later = [p.start_s for p in phases if p.cue == "contract" and p.start_s >= phase.end_s]
    return min(later) if later else default


def _previous_phase(phases, phase):
    earlier = [p for p in phases if p.end_s <= phase.start_s + 1e-9 and p.index < phase.index]
    return max(earlier, key=lambda p: p.end_s) if earlier else None


def phase_metrics(signals: Signals, phases, events, reference: RestReference) -> list[PhaseMetrics]:
    """Metrics of every phase on every channel (see :data:`ROLE_METRICS`)."""
    fs = signals.fs
    end_of_recording = signals.duration_s
    band = _band_of(signals)
    out = []
    for ch, name in enumerate(signals.info.ch_names):
        env = signals.envelope[ch]
        filt = signals.filtered[ch]
        mine = [e for e in events if e.channel == name]
        mean, edge = float(reference.mean[ch]), float(reference.band_edge[ch])
        busy = activity_mask(signals.n_samples, fs, events, name)
        for phase in phases:
            pm = PhaseMetrics(phase, name)
            v = pm.values
            v["duration_s"] = phase.duration_s
            start = max(phase.start_s, signals.settle_s)
            end = min(phase.end_s, end_of_recording)
            if end - start < 1.0 / fs:
                pm.notes.append("no samples in this phase")
                out.append(pm)
                continue
            if end < phase.end_s - 1.0 / fs:
                pm.notes.append(f"the recording ends {phase.end_s - end:.1f} s before this phase did")
            stats = amplitude_stats(env, fs, start, end, valid=signals.valid)
            v.update(stats)
            a, b = signals.index(start), signals.index(end)
            quiet = ~busy[a:b]
            if signals.valid is not None:
                missing = int(np.count_nonzero(~signals.valid[a:b]))
                if missing:
                    pm.notes.append(f"{missing / fs:.1f} s of this phase had no samples (or the filters were "
                                    "settling after a gap) and are left out")
                quiet &= signals.valid[a:b]
            v["tone_uv"] = float(np.mean(env[a:b][quiet])) if quiet.sum() >= int(0.5 * fs) else math.nan
            if phase.target_low is not None or phase.target_high is not None:
                lo = -math.inf if phase.target_low is None else phase.target_low
                hi = math.inf if phase.target_high is None else phase.target_high
                seg = env[a:b]
                inside = (seg >= lo) & (seg <= hi)
                if signals.valid is not None:
                    inside = inside[signals.valid[a:b]]
                v["in_target_pct"] = 100.0 * float(np.mean(inside)) if inside.size else math.nan
            search_end = min(_next_contract_start(phases, phase, end_of_recording), end_of_recording)
            if phase.cue == "contract":
                timing = contraction_timing(env, fs, phase.start_s, end, mean, edge, search_end)
                v.update({k: timing[k] for k in ("peak_uv", "latency_s", "rise_time_s", "recovery_time_s")})
                for key in ("peak_time_s", "amplitude_uv", "rise_start_s", "release_s", "back_at_rest_s"):
                    pm.series[key] = timing[key]
                if not math.isfinite(timing["recovery_time_s"]):
                    pm.notes.append("the envelope did not return to the rest band before the next contraction")
            if phase.role == "endurance":
                endu = endurance_metrics(env, filt, fs, phase.start_s, end, band, valid=signals.valid)
                pm.series["mdf_times_s"] = endu.pop("mdf_times_s")
                pm.series["mdf_hz"] = endu.pop("mdf_hz")
                v.update(endu)
            if phase.role == "baseline":
                v["rest_mean_uv"], v["rest_sd_uv"], v["rest_cv_pct"] = stats["mean_uv"], stats["sd_uv"], stats["cv_pct"]
            if phase.cue == "relax":
                sv, items = spasm_metrics(env, fs, phase, mine, edge, search_end)
                v.update(sv)
                pm.items = items
                prev = _previous_phase(phases, phase)
                if prev is not None and prev.cue == "contract":
                    back = back_to_rest(env, signals.index(phase.start_s), edge, signals.index(search_end),
                                        max(1, int(round(HOLD_S * fs))))
                    v["relaxation_time_s"] = (back - signals.index(phase.start_s)) / fs if back is not None \
                        else math.nan
                    if back is None:
                        pm.notes.append("the envelope did not return to the rest band after the relax cue")
            if phase.role == "release" and phase.cue == "contract":
                back = back_to_rest(env, signals.index(end), edge, signals.index(search_end),
                                    max(1, int(round(HOLD_S * fs))))
                v["relaxation_time_s"] = (back - signals.index(end)) / fs if back is not None else math.nan
            out.append(pm)
    return out


def _band_of(signals: Signals):
    low, high, _ = signals.settings.band()
    if high is None:
        high = min(450.0, 0.45 * signals.fs)
    return (low, min(high, signals.fs / 2))


# ----------------------------------------------------------------------------
# The whole session


@dataclass
class SessionAnalysis:
    """Everything the report and the history need from one session.

    Attributes
    ----------
    signals : Signals
    phases : list of Phase
    events : list of Event
    reference : RestReference
    metrics : list of PhaseMetrics
        One per phase and channel, phases in order, channel by channel.
    summary : dict
        Session-level trend metrics (see :func:`session_summary`).
    notes : list of str
        What the analysis had to work around.
    events_source : str
        ``"session"`` (the events recorded live) or ``"detected"``.
    """

    signals: Signals
    phases: list
    events: list
    reference: RestReference
    metrics: list
    summary: dict
    notes: list = field(default_factory=list)
    events_source: str = "session"

    def for_channel(self, channel: str) -> list[PhaseMetrics]:
        return [m for m in self.metrics if m.channel == channel]


def analyze_session(recording: Recording, phases, events=None, settings: PipelineSettings | None = None, *,
                    mains_hz: float | None | str = "auto", calibration: dict | None = None,
                    present=None) -> SessionAnalysis:
    """Compute the signals, rest reference and per-phase metrics of a session.

    Parameters
    ----------
    recording : Recording
        Raw samples with the cue track.
    phases : list of Phase
    events : list of Event, optional
        The events recorded live; None detects them again with the
        session's settings (baseline: the first baseline phase).
    settings : PipelineSettings, optional
    mains_hz : float, None or "auto"
    calibration : dict, optional
        The session's calibration (``level``/``sigma`` per channel).
    present : ndarray of bool, optional
        False for samples that were not recorded (left out of the metrics).

    Returns
    -------
    SessionAnalysis
    """
    phases = sorted(phases, key=lambda p: (p.start_s, p.index))
    for p in phases:
        if not isinstance(p, Phase):
            raise ParameterError("phases", "a list of Phase", type(p).__name__)
    signals = compute_signals(recording, settings, mains_hz, present)
    notes = []
    source = "session"
    if events is None:
        cues = None if recording.cues is None else np.asarray(recording.cues)
        events = detect_events(signals, cues, baseline_for_detection(signals, phases, calibration))
        source = "detected"
        notes.append("events detected again from the samples (the session has no events file)")
    events = sorted(events, key=lambda e: (e.onset_s, e.channel))
    reference = rest_reference(signals, phases, events, calibration)
    metrics = phase_metrics(signals, phases, events, reference)
    analysis = SessionAnalysis(signals, phases, events, reference, metrics, {}, notes, source)
    analysis.summary = session_summary(analysis)
    return analysis


def session_summary(analysis: SessionAnalysis, channel: str | None = None) -> dict:
    """Trend metrics of a session on one channel (default: the first).

    * ``resting_tone_uv``: mean of ``tone_uv`` over the baseline phases
      (activity left out); without baseline phases, over the relax-cued
      phases.
    * ``resting_cv_pct``: ``rest_cv_pct`` of the first baseline phase (the
      Glazer pre-baseline variability).
    * ``spasms_per_relax_min``: spasms in relax-cued phases per minute of
      relax-cued time.
    * ``mean_time_to_relax_s``: mean time-to-relax over every spasm of the
      session.
    * ``endurance_mean_uv``: mean envelope of the endurance hold(s).
    * ``median_freq_slope_hz_per_s``: of the endurance hold(s).
    * ``flick_peak_uv`` / ``tonic_mean_uv``: means over the flicks / holds.
    """
    channel = channel or analysis.signals.info.ch_names[0]
    ms = analysis.for_channel(channel)

    def mean_of(values):
        values = [float(x) for x in values if x is not None and math.isfinite(float(x))]
        return float(np.mean(values)) if values else math.nan

    base = [m for m in ms if m.phase.role == "baseline"]
    relax = [m for m in ms if m.phase.cue == "relax"]
    tone_from = base or relax
    relax_min = sum(m.phase.duration_s for m in relax) / 60.0
    n_spasms = sum(int(m.values.get("spasm_count", 0) or 0) for m in relax)
    times = [it["time_to_relax_s"] for m in relax for it in m.items]
    return {
        "channel": channel,
        "duration_s": analysis.signals.duration_s,
        "resting_tone_uv": mean_of(m.values.get("tone_uv") for m in tone_from),
        "resting_cv_pct": mean_of([base[0].values.get("rest_cv_pct")]) if base else math.nan,
        "spasm_count": n_spasms,
        "relax_min": relax_min,
        "spasms_per_relax_min": n_spasms / relax_min if relax_min > 0 else math.nan,
        "mean_time_to_relax_s": mean_of(times),
        "endurance_mean_uv": mean_of(m.values.get("mean_uv") for m in ms if m.phase.role == "endurance"),
        "median_freq_slope_hz_per_s": mean_of(m.values.get("median_freq_slope_hz_per_s")
                                             for m in ms if m.phase.role == "endurance"),
        "flick_peak_uv": mean_of(m.values.get("peak_uv") for m in ms if m.phase.role == "flick"),
        "tonic_mean_uv": mean_of(m.values.get("mean_uv") for m in ms if m.phase.role == "tonic"),
    }
