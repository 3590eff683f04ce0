"""Causal, stateful processing stages and the pipeline that chains them."""

from biofeedback.dsp.base import Pipeline, Stage
from biofeedback.dsp.envelope import LinearEnvelope, RMSEnvelope
from biofeedback.dsp.filters import BandPass, HighPass, MainsNotch, Rectify, SOSFilter
from biofeedback.dsp.mains import detect_mains
from biofeedback.dsp.settings import PRESETS, PipelineSettings, build_pipeline, process_array, resolve_mains

__all__ = [
    "Stage", "Pipeline", "SOSFilter", "HighPass", "BandPass", "MainsNotch", "Rectify",
    "RMSEnvelope", "LinearEnvelope", "detect_mains", "PipelineSettings", "PRESETS",
    "build_pipeline", "process_array", "resolve_mains",
]
