"""Detection of contractions (and, later, spasms, cramps and signal problems)."""

from biofeedback.detect.baseline import Baseline, QuietWindowBaseline, baseline_from_rest, robust_level_and_sigma
from biofeedback.detect.threshold import DetectorSettings, ThresholdDetector

__all__ = [
    "Baseline", "QuietWindowBaseline", "baseline_from_rest", "robust_level_and_sigma",
    "DetectorSettings", "ThresholdDetector",
]
