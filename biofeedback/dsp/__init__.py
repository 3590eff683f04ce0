"""Causal, stateful processing stages and the pipeline that chains them."""

from biofeedback.dsp.base import Pipeline, Stage
from biofeedback.dsp.envelope import LinearEnvelope, RMSEnvelope
from biofeedback.dsp.filters import BandPass, FilterCascade, HighPass, MainsNotch, Rectify, SOSFilter
from biofeedback.dsp.mains import detect_mains

# The settings module builds pipelines that include the detector, and the
# detector is itself a Stage from this package: importing it lazily keeps
# ``biofeedback.detect`` -> ``biofeedback.dsp`` free of an import cycle.
_SETTINGS_NAMES = ("PRESETS", "PipelineSettings", "build_pipeline", "process_array", "resolve_mains")


def __getattr__(name):
    if name in _SETTINGS_NAMES:
        from biofeedback.dsp import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'biofeedback.dsp' has no attribute {name!r}")


__all__ = [
    "Stage", "Pipeline", "SOSFilter", "FilterCascade", "HighPass", "BandPass", "MainsNotch", "Rectify",
    "RMSEnvelope", "LinearEnvelope", "detect_mains", *_SETTINGS_NAMES,
]
