"""Calibration: resting baseline (and optional MVC), its checks, and its storage.

A calibration is made from the envelope of a **rest period** (median and
robust spread per channel, as in
:func:`~biofeedback.detect.baseline.baseline_from_rest`) and, optionally, of
a **maximum voluntary contraction** (MVC) for thresholds in %MVC. Before it
is used it is checked, because a bad calibration silently ruins everything
after it:

* **too short** (less than :data:`MIN_REST_S`, 10 s): a median and MAD over
  fewer than about a hundred 100 ms envelope windows, and less than two or
  three breaths, is not a resting level. This is an error for the whole
  calibration, saying how long is needed.
* **flat** channel: the resting envelope is below the noise floor any
  connected amplifier shows (:data:`~biofeedback.detect.quality.FLAT_STD_BY_UNIT`)
  or exactly zero: "re-place the electrode".
* **not quiet**: more than 5 % of the rest lies above the detector's
  minimum on threshold (``min_ratio_on`` times the median), or the detector,
  run over the rest with the rest's own baseline, finds a burst in it: "relax
  and recalibrate". The envelope of a truly relaxed muscle wanders by
  15-25 %, nowhere near twice its median.

Issues are per channel: detection stops on a channel with an issue, the
others go on.

A :class:`Calibration` is saved as JSON in the profile folder
(:func:`profiles_dir`: ``$BIOFEEDBACK_HOME/profiles``, else
``$XDG_DATA_HOME/biofeedback/profiles``, else
``~/.local/share/biofeedback/profiles``), with the channels, units and
processing it is valid for, and reused with :func:`load_calibration`. The
file holds the same keys as the live view's profiles (``level``, ``sigma``,
``mvc``, ``channels``, ``units``, ``processing``...) plus the rest length,
noise floor, settings hash and issues, so either side can read the other's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biofeedback.detect.baseline import Baseline, baseline_from_rest
from biofeedback.detect.quality import FLAT_STD_BY_UNIT
from biofeedback.detect.threshold import DetectorSettings, ThresholdDetector
from biofeedback.errors import BiofeedbackError, InputFileError, ParameterError

#: Shortest rest a calibration accepts, in seconds (see module docstring).
MIN_REST_S = 10.0
#: A rest is not quiet when more than this fraction of it is above the
#: detector's minimum on threshold.
MAX_ACTIVE_FRACTION = 0.05
#: The MVC is the highest mean envelope over this window (s): the usual
#: normalisation takes the mean around the peak rather than one sample
#: (e.g. Konrad, The ABC of EMG, 2005, suggests 0.5-1 s).
MVC_WINDOW_S = 0.5
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CalibrationError(BiofeedbackError):
    """The calibration as a whole cannot be used (e.g. the rest is too short)."""


@dataclass(frozen=True)
class CalibrationIssue:
    """A problem found on one channel during calibration.

    Attributes
    ----------
    channel : str
    kind : str
        ``flat``, ``not_quiet`` or ``weak_mvc`` (the last one only disables
        the %MVC threshold).
    message : str
        What was found and what to do.
    """

    channel: str
    kind: str
    message: str

    @property
    def stops_detection(self) -> bool:
        return self.kind in ("flat", "not_quiet")


def processing_key(settings) -> dict:
    """The parts of the pipeline settings a baseline depends on (as the live profiles store them)."""
    low, high, order = settings.band()
    return {"band_hz": [low, high], "order": order, "envelope": settings.envelope,
            "rms_window_s": settings.rms_window_s if settings.envelope == "rms" else None,
            "linear_cutoff_hz": settings.linear_cutoff_hz if settings.envelope == "linear" else None}


def settings_hash(settings) -> str:
    """Short hash of everything that changes the envelope's level (processing key and ECG suppression)."""
    key = dict(processing_key(settings))
    key["ecg"] = bool(settings.ecg_enabled()) if hasattr(settings, "ecg_enabled") else False
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Calibration:
    """A resting baseline (and optional MVC) with what it is valid for.

    Attributes
    ----------
    channels : list of str
    level, sigma : ndarray, shape (n_channels,)
        Median and robust spread of the resting envelope.
    rest_s : float
        Length of the rest used, in seconds.
    noise_floor : ndarray, shape (n_channels,)
        5th percentile of the resting envelope (the recording chain's floor).
    fs : float
        Sampling rate of the calibration recording.
    units : str
    processing : dict
        :func:`processing_key` of the pipeline settings.
    settings_hash : str
        :func:`settings_hash` of the pipeline settings.
    mvc : ndarray or None
        MVC envelope per channel (NaN where unusable).
    created : str
        ISO time.
    method : str
    name : str
    issues : list of CalibrationIssue
    """

    channels: list
    level: np.ndarray
    sigma: np.ndarray
    rest_s: float
    noise_floor: np.ndarray
    fs: float
    units: str
    processing: dict
    settings_hash: str = ""
    mvc: np.ndarray | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    method: str = ""
    name: str = ""
    issues: list = field(default_factory=list)

    def baseline(self) -> Baseline:
        """The baseline (with the MVC when there is one)."""
        return Baseline(np.asarray(self.level, float), np.asarray(self.sigma, float),
                        self.method or f"calibration {self.name}".strip(), self.mvc)

    def channel_issues(self, channel: str) -> list:
        return [i for i in self.issues if i.channel == channel]

    @property
    def usable(self) -> np.ndarray:
        """Per channel: True when no issue stops detection on it."""
        bad = {i.channel for i in self.issues if i.stops_detection}
        return np.array([c not in bad for c in self.channels], dtype=bool)

    def mismatch(self, channels, units, settings) -> str:
        """Why this calibration does not fit a stream ("" when it fits)."""
        if list(channels) != list(self.channels):
            return f"it is for channels {', '.join(self.channels)}, not {', '.join(channels)}"
        if str(units) != str(self.units):
            return f"it is in {self.units}, the recording in {units}"
        if processing_key(settings) != self.processing:
            return "it was made with other filter or envelope settings"
        if self.settings_hash and settings_hash(settings) != self.settings_hash:
            return "it was made with heartbeat suppression set differently (--preset/--ecg)"
        return ""

    # -- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def clean(values):
            if values is None:
                return None
            return [None if not math.isfinite(float(v)) else float(v) for v in values]

        return {"format": FORMAT_VERSION, "name": self.name, "created": self.created, "method": self.method,
                "fs": self.fs, "units": self.units, "channels": list(self.channels),
                "level": clean(self.level), "sigma": clean(self.sigma), "mvc": clean(self.mvc),
                "processing": self.processing, "rest_s": self.rest_s, "noise_floor": clean(self.noise_floor),
                "settings_hash": self.settings_hash,
                "issues": [{"channel": i.channel, "kind": i.kind, "message": i.message} for i in self.issues]}

    @classmethod
    def from_dict(cls, data: dict, name: str = "") -> "Calibration":
        channels = [str(c) for c in data["channels"]]

        def array(key, default=None):
            values = data.get(key, default)
            if values is None:
                return None
            out = np.array([math.nan if v is None else float(v) for v in values])
            if out.shape != (len(channels),):
                raise ValueError(f"{key}: one value per channel")
            return out

        level, sigma = array("level"), array("sigma")
        if level is None or sigma is None:
            raise ValueError("level and sigma are required")
        noise = array("noise_floor")
        return cls(channels=channels, level=level, sigma=sigma, rest_s=float(data.get("rest_s", math.nan)),
                   noise_floor=noise if noise is not None else np.full(len(channels), math.nan),
                   fs=float(data.get("fs", 0.0)), units=str(data["units"]), processing=dict(data["processing"]),
                   settings_hash=str(data.get("settings_hash", "")), mvc=array("mvc"),
                   created=str(data.get("created", "")), method=str(data.get("method", "")),
                   name=str(data.get("name", name)),
                   issues=[CalibrationIssue(str(i["channel"]), str(i["kind"]), str(i["message"]))
                           for i in data.get("issues", [])])


def profiles_dir() -> Path:
    """Folder of the saved calibrations (not created here)."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return Path(home) / "profiles"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "biofeedback" / "profiles"


def profile_path(name: str) -> Path:
    """File of the profile ``name`` (letters, digits, ``_.-``; at most 64)."""
    if not _NAME.match(name or ""):
        raise ParameterError("--profile", "a name of letters, digits, '_', '.' or '-' (at most 64)", name)
    return profiles_dir() / f"{name}.json"


def save_calibration(calibration: Calibration, name: str) -> Path:
    """Save ``calibration`` as profile ``name`` (atomically: a half-written file never replaces a good one)."""
    path = profile_path(name)
    calibration.name = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(calibration.to_dict(), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_calibration(name: str) -> Calibration | None:
    """The calibration saved as ``name``, or None when there is none.

    Raises
    ------
    InputFileError
        The file exists but is not a calibration.
    """
    path = profile_path(name)
    if not path.is_file():
        return None
    try:
        return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")), name)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a valid calibration ({exc}); delete it or calibrate again") from None


def mvc_from_envelope(envelope, fs: float, window_s: float = MVC_WINDOW_S) -> np.ndarray:
    """MVC per channel: the highest mean envelope over ``window_s`` seconds."""
    env = np.atleast_2d(np.asarray(envelope, dtype=float))
    w = max(1, min(env.shape[1], int(round(window_s * fs))))
    if env.shape[1] == 0:
        return np.full(env.shape[0], np.nan)
    csum = np.cumsum(np.concatenate([np.zeros((env.shape[0], 1)), env], axis=1), axis=1)
    means = (csum[:, w:] - csum[:, :-w]) / w
    return means.max(axis=1)


def calibrate(rest_envelope, fs: float, channels, units: str, settings=None, *,
              detector: DetectorSettings | None = None, mvc_envelope=None, min_rest_s: float = MIN_REST_S,
              method: str = "rest period") -> Calibration:
    """Calibrate from the envelope of a rest (and optionally of an MVC), with checks.

    Parameters
    ----------
    rest_envelope : ndarray, shape (n_channels, n)
        Envelope samples of the rest period.
    fs : float
        Sampling rate in Hz.
    channels : sequence of str
    units : str
    settings : PipelineSettings, optional
        The processing used (stored with the calibration).
    detector : DetectorSettings, optional
        Settings used for the not-quiet check (default settings otherwise).
    mvc_envelope : ndarray, shape (n_channels, m), optional
        Envelope of a maximum voluntary contraction.
    min_rest_s : float
        Shortest acceptable rest in seconds.
    method : str

    Returns
    -------
    Calibration
        With ``issues`` for flat or restless channels and weak MVCs.

    Raises
    ------
    CalibrationError
        The rest is shorter than ``min_rest_s``.
    """
    env = np.atleast_2d(np.asarray(rest_envelope, dtype=float))
    channels = list(channels)
    rest_s = env.shape[1] / fs
    if rest_s + 0.5 / fs < min_rest_s:
        raise CalibrationError(
            f"the rest period is {rest_s:.1f} s long; a calibration needs at least {min_rest_s:g} s of rest "
            f"(relax for {min_rest_s:g} s or more and recalibrate, or mark a longer rest)")
    detector = detector or DetectorSettings()
    base = baseline_from_rest(env, method)
    noise = np.percentile(env, 5, axis=1)
    floor = FLAT_STD_BY_UNIT.get(str(units).strip().lower(), 0.0)
    issues = []
    on_floor = detector.min_ratio_on * base.level
    bursts = _bursts_in_rest(env, fs, base, detector, channels)
    for ch, name in enumerate(channels):
        if not base.level[ch] > floor:
            issues.append(CalibrationIssue(name, "flat", (
                f"{name}: the rest is flat (envelope {base.level[ch]:.3g} {units}, below the noise of any connected "
                "amplifier): re-place the electrode, check the cable, and recalibrate")))
            continue
        active = float(np.mean(env[ch] > on_floor[ch]))
        if active > MAX_ACTIVE_FRACTION or bursts[ch]:
            what = []
            if active > MAX_ACTIVE_FRACTION:
                what.append(f"the envelope was above twice its median in {100 * active:.0f}% of it")
            if bursts[ch]:
                what.append("bursts at " + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in bursts[ch][:3])
                            + " into the rest")
            issues.append(CalibrationIssue(name, "not_quiet", (
                f"{name}: the rest was not quiet ({'; '.join(what)}): relax and recalibrate")))
    mvc = None
    if mvc_envelope is not None:
        mvc = mvc_from_envelope(mvc_envelope, fs)
        for ch, name in enumerate(channels):
            if not mvc[ch] > detector.min_ratio_on * base.level[ch]:
                issues.append(CalibrationIssue(name, "weak_mvc", (
                    f"{name}: the maximum contraction ({mvc[ch]:.3g} {units}) is not clearly above rest "
                    f"({base.level[ch]:.3g} {units}); %MVC thresholds are not used on this channel "
                    "(squeeze as hard as is comfortable and recalibrate)")))
                mvc[ch] = np.nan
    processing = processing_key(settings) if settings is not None else {}
    return Calibration(channels=channels, level=base.level, sigma=base.sigma, rest_s=rest_s, noise_floor=noise,
                       fs=float(fs), units=str(units), processing=processing,
                       settings_hash=settings_hash(settings) if settings is not None else "", mvc=mvc,
                       method=method, issues=issues)


def _bursts_in_rest(env, fs, base, detector: DetectorSettings, channels):
    """Bursts the detector finds in the rest, judged against the rest's own baseline."""
    from dataclasses import replace

    from biofeedback.core.types import Chunk, StreamInfo

    info = StreamInfo(fs=fs, ch_names=tuple(channels))
    det = ThresholdDetector(base, replace(detector, settle_s=0.0))
    events = list(det.process(Chunk(env, 0, info)).events) + det.flush()
    out = [[] for _ in channels]
    for e in events:
        out[channels.index(e.channel)].append((e.onset_s, e.offset_s))
    return out
