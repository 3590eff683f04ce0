"""Command-line options shared by the commands that process signals.

``analyze``, ``live``, ``replay`` and ``session`` take the same pipeline
options, turned into one :class:`~biofeedback.dsp.settings.PipelineSettings`
by :func:`settings_from_args`, so every command builds the same pipeline.
"""

from __future__ import annotations

from biofeedback.detect.threshold import DetectorSettings
from biofeedback.dsp.settings import PRESETS, PipelineSettings
from biofeedback.errors import ParameterError


def add_pipeline_arguments(parser) -> None:
    """Add the band-pass, notch, envelope and detector options to ``parser``."""
    d = DetectorSettings()
    g = parser.add_argument_group("processing")
    g.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="band-pass preset: default 20 Hz-min(450, 0.45 fs); trunk/pelvic 30 Hz (ECG-prone sites); "
                        "hobby 10 Hz, order 2 (low-rate boards)")
    g.add_argument("--low-hz", type=float, default=None, help="band-pass low edge in Hz (overrides the preset)")
    g.add_argument("--high-hz", type=float, default=None, help="band-pass high edge in Hz (default min(450, 0.45 fs))")
    g.add_argument("--mains", choices=["auto", "50", "60", "off"], default="auto",
                   help="mains notch (50/60 Hz and harmonics); auto detects it from the first seconds")
    g.add_argument("--ecg", choices=["auto", "on", "off"], default="auto",
                   help="heartbeat suppression (beat templates subtracted; adds ~0.26 s of display delay): "
                        "auto = on for the trunk and pelvic presets")
    g.add_argument("--envelope", choices=["rms", "linear"], default="rms", help="envelope method")
    g.add_argument("--rms-window", type=float, default=0.1, metavar="S", help="RMS window in seconds")
    g = parser.add_argument_group("detection")
    g.add_argument("--k-on", type=float, default=d.k_on, help="on threshold: resting level + K robust SDs")
    g.add_argument("--k-off", type=float, default=d.k_off, help="off threshold: resting level + K robust SDs")
    g.add_argument("--min-active", type=float, default=d.min_active_s, metavar="S",
                   help="shortest contraction in seconds")
    g.add_argument("--min-rest", type=float, default=d.min_rest_s, metavar="S",
                   help="gaps shorter than this (s) are merged into one contraction")
    g.add_argument("--cusum", nargs="?", choices=["auto", "on", "off"], default="auto", const="on",
                   help="also start (and end) contractions on sustained weak activity, a CUSUM above ~1.25x rest: "
                        "finds bursts too weak for the on threshold (0-6 dB SNR). auto (default) = on for channels "
                        "whose rest is steady (a baseline from the quietest windows whose level wanders < 5%% from "
                        "second to second), off elsewhere; on = always (more false alarms on restless rests); "
                        "--cusum alone = on")
    g.add_argument("--mvc-on", type=float, default=None, metavar="PCT",
                   help="with an MVC, the on threshold is at least PCT %% of it (off: 3/4 of that)")


def settings_from_args(args) -> PipelineSettings:
    """Build the pipeline settings from parsed arguments."""
    mvc_on = getattr(args, "mvc_on", None)
    if mvc_on is not None and not 0 < mvc_on <= 100:
        raise ParameterError("--mvc-on", "a percentage in (0, 100]", mvc_on)
    detector = DetectorSettings(
        k_on=args.k_on, k_off=args.k_off, min_active_s=args.min_active, min_rest_s=args.min_rest,
        mvc_on_pct=mvc_on, cusum={"on": True, "off": False}.get(getattr(args, "cusum", "auto"), "auto"),
    )
    if not args.rms_window > 0:
        raise ParameterError("--rms-window", "a positive duration in seconds", args.rms_window)
    return PipelineSettings(
        preset=args.preset, low_hz=args.low_hz, high_hz=args.high_hz, mains=args.mains,
        envelope=args.envelope, rms_window_s=args.rms_window, detector=detector,
        ecg=getattr(args, "ecg", "auto"),
    )


def parse_time_range(text: str, name: str) -> tuple[float, float]:
    """Parse ``"START:END"`` in seconds (``"0:5"``)."""
    try:
        start_text, end_text = text.split(":")
        start, end = float(start_text), float(end_text)
    except ValueError:
        raise ParameterError(name, "START:END in seconds, e.g. 0:5", text) from None
    if not 0 <= start < end:
        raise ParameterError(name, "0 <= START < END", text)
    return start, end


def parse_value_range(text: str, name: str) -> tuple[float, float]:
    """Parse ``"LOW:HIGH"`` (any numbers, LOW < HIGH), e.g. an ADC range ``-128:127``."""
    try:
        low_text, high_text = text.split(":")
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ParameterError(name, "LOW:HIGH, e.g. -128:127", text) from None
    if not low < high:
        raise ParameterError(name, "LOW < HIGH", text)
    return low, high
