"""Calibration profiles: a user's resting baseline (and MVC) saved for next time.

A profile is a small JSON file, ``PROFILES_DIR/NAME.json``, where
``PROFILES_DIR`` is ``$BIOFEEDBACK_HOME/profiles`` when that variable is set
(tests, portable installs), else ``$XDG_DATA_HOME/biofeedback/profiles``,
else ``~/.local/share/biofeedback/profiles``.

A baseline only means something for the processing that produced it (the
band-pass edges and the envelope change the envelope's level), for the same
units and for the same channels, so those are stored and checked on load.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biofeedback.detect.baseline import Baseline
from biofeedback.errors import InputFileError

FORMAT_VERSION = 1
# One folder and one naming rule for every saved calibration, live or batch.
from biofeedback.detect.calibration import profile_path  # noqa: E402


def processing_key(settings) -> dict:
    """The parts of the pipeline settings a baseline depends on."""
    low, high, order = settings.band()
    return {"band_hz": [low, high], "order": order, "envelope": settings.envelope,
            "rms_window_s": settings.rms_window_s if settings.envelope == "rms" else None,
            "linear_cutoff_hz": settings.linear_cutoff_hz if settings.envelope == "linear" else None}


@dataclass
class Profile:
    """A saved calibration.

    Attributes
    ----------
    name : str
    channels : list of str
        Channel names, in the order of ``level``/``sigma``/``mvc``.
    units : str
        Units of the envelope values.
    level, sigma : list of float
        Resting baseline per channel.
    mvc : list of float or None
        Peak envelope of a maximum contraction per channel (NaN where not
        measured), or None.
    processing : dict
        :func:`processing_key` of the settings used.
    fs : float
        Sampling rate at calibration (informative).
    created : str
        ISO time of the calibration.
    method : str
        How the baseline was obtained.
    """

    name: str
    channels: list
    units: str
    level: list
    sigma: list
    processing: dict
    mvc: list | None = None
    fs: float = 0.0
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    method: str = ""

    def baseline(self) -> Baseline:
        """The stored baseline."""
        return Baseline(np.array(self.level), np.array(self.sigma), self.method or f"profile {self.name}")

    def mvc_array(self) -> np.ndarray | None:
        """MVC per channel (NaN where not measured), or None."""
        if self.mvc is None:
            return None
        return np.array([math.nan if v is None else v for v in self.mvc], dtype=float)

    def mismatch(self, channels, units, processing) -> str:
        """Why this profile does not fit a stream ("" when it fits)."""
        if list(channels) != list(self.channels):
            return f"it is for channels {', '.join(self.channels)}, not {', '.join(channels)}"
        if units != self.units:
            return f"it is in {self.units}, the stream in {units}"
        if processing != self.processing:
            return "it was made with other filter or envelope settings"
        return ""

    def to_json(self) -> str:
        def clean(values):
            return None if values is None else [None if not math.isfinite(v) else float(v) for v in values]

        data = {"format": FORMAT_VERSION, "name": self.name, "created": self.created, "method": self.method,
                "fs": self.fs, "units": self.units, "channels": list(self.channels),
                "level": clean(self.level), "sigma": clean(self.sigma), "mvc": clean(self.mvc),
                "processing": self.processing}
        return json.dumps(data, indent=2)


def save_profile(profile: Profile) -> Path:
    """Write a profile atomically (a half-written file never replaces a good one)."""
    path = profile_path(profile.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(profile.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_profile(name: str) -> Profile | None:
    """Read the profile ``name``; None when it does not exist.

    Raises
    ------
    InputFileError
        When the file exists but is not a valid profile.
    """
    path = profile_path(name)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        channels = [str(c) for c in data["channels"]]
        level = [float(v) for v in data["level"]]
        sigma = [float(v) for v in data["sigma"]]
        mvc = data.get("mvc")
        if mvc is not None:
            mvc = [math.nan if v is None else float(v) for v in mvc]
        if not (len(level) == len(sigma) == len(channels)) or (mvc is not None and len(mvc) != len(channels)):
            raise ValueError("one level, sigma (and mvc) per channel")
        return Profile(name=str(data.get("name", name)), channels=channels, units=str(data["units"]),
                       level=level, sigma=sigma, mvc=mvc, processing=dict(data["processing"]),
                       fs=float(data.get("fs", 0.0)), created=str(data.get("created", "")),
                       method=str(data.get("method", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a valid calibration profile ({exc}); delete it or calibrate again") from None
