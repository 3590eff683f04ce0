"""One settings object and one function that build every command's pipeline.

``biofeedback analyze``, ``live``, ``replay`` and ``record`` all call
:func:`build_pipeline` with a :class:`PipelineSettings`, so live feedback
and batch analysis run the very same stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.detect.baseline import Baseline
from biofeedback.detect.ecg import ECGSettings, ECGSuppressor
from biofeedback.detect.threshold import DetectorSettings, ThresholdDetector
from biofeedback.dsp.base import Pipeline
from biofeedback.dsp.envelope import LinearEnvelope, RMSEnvelope
from biofeedback.dsp.filters import BandPass, FilterCascade, MainsNotch
from biofeedback.dsp.mains import detect_mains
from biofeedback.errors import ParameterError

#: Band-pass presets: (low edge Hz, high edge Hz or None for auto, order).
#: ``default``: 20 Hz removes movement artefact and most ECG energy while
#: keeping the bulk of surface-EMG power (SENIAM / ISEK recommend 10-20 Hz).
#: ``trunk`` / ``pelvic``: 30 Hz, because ECG contamination at trunk and
#: pelvic-floor sites has much of its energy between 20 and 30 Hz.
#: ``hobby``: low-rate boards (200-500 Hz) leave a narrow band; a 10 Hz
#: edge and order 2 keep more EMG and ring less on short transients.
PRESETS = {
    "default": (20.0, None, 4),
    "trunk": (30.0, None, 4),
    "pelvic": (30.0, None, 4),
    "hobby": (10.0, None, 2),
}

#: Presets for sites where the heart's activity reaches the electrodes:
#: heartbeat suppression (:mod:`biofeedback.detect.ecg`) is on by default.
ECG_PRESETS = ("trunk", "pelvic")


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that defines the processing of a stream.

    Attributes
    ----------
    preset : str
        Band-pass preset (see :data:`PRESETS`); ``low_hz``/``high_hz``/
        ``order`` override it when given.
    low_hz, high_hz : float or None
        Band-pass edges in Hz; ``high_hz=None`` means ``min(450, 0.45 fs)``.
    order : int or None
        Butterworth prototype order of the band-pass.
    mains : str
        ``"auto"`` (detect from the first seconds), ``"50"``, ``"60"`` or
        ``"off"``.
    notch_quality : float
        Quality factor of each notch.
    envelope : str
        ``"rms"`` (moving RMS) or ``"linear"`` (rectify + low-pass).
    rms_window_s : float
        RMS window in seconds.
    linear_cutoff_hz : float
        Low-pass cut-off of the linear envelope in Hz.
    detector : DetectorSettings
        Thresholds and durations of the detector.
    ecg : str
        Heartbeat suppression: ``"auto"`` (on for the ``trunk`` and
        ``pelvic`` presets; batch analysis also turns it on when the first
        seconds show a regular heart rhythm, see :func:`resolve_ecg`),
        ``"on"`` or ``"off"``. It delays the filtered signal and the
        envelope by about 0.26 s (events keep raw-signal times).
    ecg_settings : ECGSettings
        Beat detection and template parameters.
    """

    preset: str = "default"
    low_hz: float | None = None
    high_hz: float | None = None
    order: int | None = None
    mains: str = "auto"
    notch_quality: float = 30.0
    envelope: str = "rms"
    rms_window_s: float = 0.1
    linear_cutoff_hz: float = 6.0
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    ecg: str = "auto"
    ecg_settings: ECGSettings = field(default_factory=ECGSettings)

    def __post_init__(self):
        if self.ecg not in ("auto", "on", "off"):
            raise ParameterError("ecg", "auto, on or off", self.ecg)
        if self.preset not in PRESETS:
            raise ParameterError("preset", f"one of {', '.join(PRESETS)}", self.preset)
        if str(self.mains) not in ("auto", "50", "60", "off", "50.0", "60.0"):
            raise ParameterError("mains", "auto, 50, 60 or off", self.mains)
        if self.envelope not in ("rms", "linear"):
            raise ParameterError("envelope", "rms or linear", self.envelope)

    def band(self) -> tuple[float, float | None, int]:
        """Band-pass (low Hz, high Hz or None, order) after applying the preset."""
        low, high, order = PRESETS[self.preset]
        return (
            low if self.low_hz is None else float(self.low_hz),
            high if self.high_hz is None else float(self.high_hz),
            order if self.order is None else int(self.order),
        )

    def ecg_enabled(self) -> bool:
        """True when heartbeat suppression runs."""
        return self.ecg == "on" or (self.ecg == "auto" and self.preset in ECG_PRESETS)

    def delay_samples(self, fs: float) -> int:
        """Samples by which the envelope lags the raw signal (0 without ECG suppression)."""
        return ECGSuppressor.delay_samples(self.ecg_settings, fs) if self.ecg_enabled() else 0

    def replace(self, **changes) -> "PipelineSettings":
        """Return a copy with some fields replaced."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Plain dictionary (for JSON sidecars and reports)."""
        return asdict(self)


def resolve_mains(settings: PipelineSettings, probe=None, fs=None):
    """Mains frequency to notch, in Hz, or None.

    Parameters
    ----------
    settings : PipelineSettings
    probe : ndarray, shape (n_channels, n_samples), optional
        The first seconds of raw signal, used when ``settings.mains`` is
        ``"auto"``. Without it, auto means no notch.
    fs : float, optional
        Sampling rate of ``probe`` in Hz.

    Returns
    -------
    float or None
    """
    mains = str(settings.mains)
    if mains == "off":
        return None
    if mains != "auto":
        return float(mains)
    if probe is None or fs is None:
        return None
    return detect_mains(probe, fs).mains_hz


def resolve_ecg(settings: PipelineSettings, probe=None, fs=None, *, beats=None) -> PipelineSettings:
    """Settings with heartbeat suppression decided (``ecg`` "on" or "off").

    ``"auto"`` is on for the trunk and pelvic presets, and for any site
    whose first seconds (``probe``, raw samples) show a regular QRS rhythm:
    heartbeats also reach limb electrodes near the chest or with a distant
    reference (the emgGO tibialis sample carries one at 79 bpm throughout),
    and every beat would otherwise be a contraction.

    ``beats`` is an optional :class:`~biofeedback.detect.ecg.BeatDetector`
    already run over ``probe`` with ``settings.ecg_settings``
    (:func:`~biofeedback.detect.ecg.probe_beats`); batch analysis shares it
    with the quality check instead of running the detector twice.
    """
    if settings.ecg != "auto":
        return settings
    if settings.ecg_enabled():
        return settings.replace(ecg="on")
    if probe is not None and fs is not None and np.asarray(probe).shape[-1] >= int(4 * fs):
        from biofeedback.detect.ecg import heartbeat_found

        found, _ = heartbeat_found(probe, fs, settings.ecg_settings, beats=beats)
        return settings.replace(ecg="on" if found else "off")
    return settings.replace(ecg="off")


def build_pipeline(settings: PipelineSettings, info: StreamInfo, *, mains_hz=None,
                   baseline: Baseline | None = None, detect: bool = True,
                   calibration_s: float = 5.0, classifier=None, ecg_prime=None) -> Pipeline:
    """Build the processing pipeline for a stream.

    Parameters
    ----------
    settings : PipelineSettings
    info : StreamInfo
        Metadata of the stream (its sampling rate decides the band edges).
    mains_hz : float or None
        Mains frequency to notch (from :func:`resolve_mains`), None for no
        notch.
    baseline : Baseline, optional
        Resting baseline for the detector; None to calibrate on the first
        ``calibration_s`` seconds.
    detect : bool
        Append the detector (default True).
    calibration_s : float
        Rest period used by the detector when ``baseline`` is None.
    classifier : EventClassifier, optional
        Relabels the detector's events (see :mod:`biofeedback.detect.classify`).
    ecg_prime : ndarray, shape (n_channels, n), optional
        First seconds of raw signal to learn the heartbeat from before the
        stream starts (see :meth:`ECGSuppressor.prime`), when heartbeat
        suppression is on.

    Returns
    -------
    Pipeline
        Stages ``filtered`` (band-pass and optional notch, run as one
        cascade; with heartbeat suppression, an
        :class:`~biofeedback.detect.ecg.ECGSuppressor` around that cascade),
        ``envelope`` and optional ``detector``. The output chunk holds the
        envelope, with the filtered signal in ``layers["filtered"]``.
    """
    low, high, order = settings.band()
    filters = [BandPass(low, high, order)]
    if mains_hz is not None:
        notch = MainsNotch(mains_hz, settings.notch_quality)
        if notch.frequencies(info.fs):
            filters.append(notch)
    cascade = FilterCascade(filters)
    cascade.design(info.fs)  # fail now, with the parameter named, not on the first chunk
    stages = [cascade]
    delay = 0
    if settings.ecg_enabled():
        suppressor = ECGSuppressor(cascade, settings.ecg_settings)
        if ecg_prime is not None:
            suppressor.prime(ecg_prime, info)
        stages = [suppressor]
        delay = settings.delay_samples(info.fs)
    if settings.envelope == "rms":
        stages.append(RMSEnvelope(settings.rms_window_s))
    else:
        envelope = LinearEnvelope(settings.linear_cutoff_hz)
        envelope.design(info.fs)  # fail now, naming the cut-off
        stages.append(envelope)
    if detect:
        stages.append(ThresholdDetector(baseline, settings.detector, calibration_s=calibration_s,
                                        delay_samples=delay, classifier=classifier))
    return Pipeline(stages, keep=("filtered",))


def process_array(pipeline: Pipeline, data, info: StreamInfo, chunk_size: int | None = None):
    """Run a pipeline over a whole array, in chunks, and gather the outputs.

    Parameters
    ----------
    pipeline : Pipeline
    data : ndarray, shape (n_channels, n_samples)
    info : StreamInfo
    chunk_size : int, optional
        Samples per chunk (default: one second of samples).

    Returns
    -------
    envelope : ndarray, shape (n_channels, n_samples)
    filtered : ndarray, shape (n_channels, n_samples)
    events : list of Event
        Including contractions still open at the end.
    """
    from biofeedback.core.types import split_into_chunks

    data = np.asarray(data, dtype=float)
    chunk_size = chunk_size or max(1, int(info.fs))
    env_parts, filt_parts, events = [], [], []
    for chunk in split_into_chunks(data, info, chunk_size):
        out = pipeline.process(chunk)
        env_parts.append(out.data)
        filt_parts.append(out.layers["filtered"])
        events.extend(out.events)
    detector = pipeline.find(ThresholdDetector)
    if detector is not None:
        events.extend(detector.flush())
    empty = np.zeros((info.n_channels, 0))
    envelope = np.concatenate(env_parts, axis=1) if env_parts else empty
    filtered = np.concatenate(filt_parts, axis=1) if filt_parts else empty
    return envelope, filtered, events
