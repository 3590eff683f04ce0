"""Detection: baseline, calibration, onset/offset, classification, signal quality, heartbeats.

* :mod:`~biofeedback.detect.baseline` - robust resting level and spread;
* :mod:`~biofeedback.detect.calibration` - checked calibration from a rest
  (and an MVC), saved and reused as a profile;
* :mod:`~biofeedback.detect.threshold` - the causal double-threshold
  detector;
* :mod:`~biofeedback.detect.classify` - contraction, spasm, cramp, twitch,
  failure to relax, elevated tone, from durations and the cue track;
* :mod:`~biofeedback.detect.quality` - electrode off, saturation, mains,
  motion and ECG flags per channel and span;
* :mod:`~biofeedback.detect.ecg` - heartbeat detection and suppression.
"""

from biofeedback.detect.baseline import Baseline, QuietWindowBaseline, baseline_from_rest, robust_level_and_sigma
from biofeedback.detect.calibration import (
    Calibration, CalibrationError, calibrate, load_calibration, save_calibration,
)
from biofeedback.detect.classify import ClassifierSettings, CueMap, EventClassifier
from biofeedback.detect.ecg import BeatDetector, ECGSettings, ECGSuppressor
from biofeedback.detect.quality import QualityMonitor, QualitySettings, assess_quality
from biofeedback.detect.threshold import DetectorSettings, ThresholdDetector

__all__ = [
    "Baseline", "QuietWindowBaseline", "baseline_from_rest", "robust_level_and_sigma",
    "DetectorSettings", "ThresholdDetector",
    "Calibration", "CalibrationError", "calibrate", "load_calibration", "save_calibration",
    "ClassifierSettings", "CueMap", "EventClassifier",
    "BeatDetector", "ECGSettings", "ECGSuppressor",
    "QualityMonitor", "QualitySettings", "assess_quality",
]
