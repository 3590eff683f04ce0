"""The session report: one self-contained HTML page (and an optional PDF).

:func:`build_report` takes a loaded session (anything with ``path``,
``meta``, ``recording``, ``events`` and ``phases``, as
:func:`biofeedback.session.store.load_session` returns), computes its
metrics with :mod:`biofeedback.session.metrics` and writes a page a person
can read and print: a header (who, when, protocol, device, software,
status and notes), a table per kind of phase with the clinical metrics, the
whole session as a plot (filtered signal, envelope, cue shading, phase
boundaries, detected events), per-phase plots (flicks and holds overlaid,
the endurance hold's median-frequency trend, the spasms overlaid) and the
definition of every number shown.

The figures are built as :class:`matplotlib.figure.Figure` objects by
functions that return them (so tests can check what they contain), and
only then rendered to PNG (embedded as base64) or to PDF pages with
:class:`~matplotlib.backends.backend_pdf.PdfPages`. matplotlib is imported
lazily through its object-oriented interface only (no ``pyplot``, no global
backend switch), and its absence is reported in one line naming the
``report`` extra.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biofeedback import __version__
from biofeedback.errors import BiofeedbackError
from biofeedback.session.metrics import (
    DEFINITIONS, HOLD_S, REST_BAND_SD, ROLE_METRICS, SessionAnalysis, analyze_session, settings_from_dict,
)

# Okabe-Ito colours, as in the live window.
BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
REDDISH_PURPLE = "#CC79A7"
GREY = "#999999"
DARK_GREY = "#555555"

#: Marker colour and shape per event kind.
EVENT_STYLE = {
    "contraction": (ORANGE, "^"),
    "failure_to_relax": (REDDISH_PURPLE, "D"),
    "spasm": (VERMILLION, "v"),
    "cramp": (VERMILLION, "s"),
    "twitch": (GREY, "."),
    "elevated_tone": (SKY_BLUE, "_"),
}
#: Fill of the phase strip per role.
ROLE_COLOUR = {
    "baseline": "#D9ECF7", "rest": "#EEEEEE", "relax": "#D9ECF7", "release": "#E4F3EE",
    "flick": "#F9E0B3", "tonic": "#F6CF8A", "endurance": "#F2B65C", "work": "#F6CF8A",
}
#: Order and title of the role tables.
ROLE_TITLES = (
    ("baseline", "Resting baselines"),
    ("flick", "Quick contractions (flicks)"),
    ("tonic", "Held contractions (tonic)"),
    ("endurance", "Endurance hold"),
    ("work", "Work contractions"),
    ("release", "Quick release"),
    ("relax", "Relaxation phases"),
    ("rest", "Rests between contractions"),
)
#: Column headings of the metrics (units added from the stream).
LABELS = {
    "duration_s": "Duration (s)", "rest_mean_uv": "Rest mean ({u})", "rest_sd_uv": "Rest SD ({u})",
    "rest_cv_pct": "Rest CV (%)", "tone_uv": "Tone ({u})", "peak_uv": "Peak ({u})", "mean_uv": "Mean ({u})",
    "sd_uv": "SD ({u})", "cv_pct": "CV (%)", "latency_s": "Latency (s)", "rise_time_s": "Rise (s)",
    "recovery_time_s": "Recovery (s)", "median_freq_start_hz": "MDF start (Hz)",
    "median_freq_end_hz": "MDF end (Hz)", "median_freq_slope_hz_per_s": "MDF slope (Hz/s)",
    "amplitude_decline_pct": "Amplitude decline (%)", "spasm_count": "Spasms", "twitch_count": "Twitches",
    "spasms_per_min": "Spasms / min", "spasm_total_s": "Spasm time (s)", "mean_spasm_s": "Mean spasm (s)",
    "longest_spasm_s": "Longest spasm (s)", "mean_time_to_relax_s": "Time to relax, mean (s)",
    "max_time_to_relax_s": "Time to relax, max (s)", "failure_to_relax": "Failures to relax",
    "relaxation_time_s": "Relaxation time (s)", "in_target_pct": "In target (%)",
}
#: Metrics that are counts (summed, not averaged, in a table's last row).
COUNTS = ("spasm_count", "twitch_count", "failure_to_relax")
#: Roles whose repetitions get a mean row.
AVERAGED = ("flick", "tonic", "rest", "work", "release", "relax")


def require_matplotlib():
    """Import matplotlib's object-oriented pieces, or raise a one-line error naming the extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise BiofeedbackError("the report needs matplotlib: pip install 'biofeedback[report]'") from None
    return Figure


def unit_label(units: str) -> str:
    """``µV`` for ``uV``, else the units as given."""
    return "µV" if str(units).lower() in ("uv", "µv") else str(units or "a.u.")


# ----------------------------------------------------------------------------
# Figures


def _minmax(t, x, buckets: int):
    """Per-bucket (time, min, max) of a long trace, for drawing it at screen resolution."""
    n = x.size
    if n <= 2 * buckets:
        return t, x, x
    edges = np.linspace(0, n, buckets + 1).astype(int)
    lo = np.minimum.reduceat(x, edges[:-1])
    hi = np.maximum.reduceat(x, edges[:-1])
    return t[edges[:-1]], lo, hi


def session_figure(analysis: SessionAnalysis, channel: int = 0, *, buckets: int = 2500):
    """The whole session on one channel: phases, filtered signal, envelope, cues and events.

    Three axes sharing time (s):

    * ``axes[0]`` (phase strip): one rectangle per phase (``gid="phase"``)
      coloured by role, with short labels where they fit;
    * ``axes[1]``: the filtered signal, drawn as its per-bucket min/max band;
    * ``axes[2]``: the envelope (``gid="envelope"``, per-bucket maximum so
      short spasms keep their height), the rest band edge
      (``gid="rest-band"``), one shaded span per contract-cued phase
      (``gid="cue"``), a vertical line at every phase boundary
      (``gid="phase-boundary"``) and one marker line per event kind
      (``gid="events-<kind>"``, x = event onsets, y = event peaks).

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    sig = analysis.signals
    fs = sig.fs
    name = sig.info.ch_names[channel]
    u = unit_label(sig.info.units)
    t = np.arange(sig.n_samples) / fs
    fig = Figure(figsize=(11, 5.2), dpi=100, layout="constrained")
    gs = fig.add_gridspec(3, 1, height_ratios=(0.35, 1.0, 2.2))
    strip = fig.add_subplot(gs[0])
    ax_sig = fig.add_subplot(gs[1], sharex=strip)
    ax = fig.add_subplot(gs[2], sharex=strip)
    duration = max(sig.duration_s, max((p.end_s for p in analysis.phases), default=0.0))

    strip.set_ylim(0, 1)
    strip.set_yticks([])
    for side in ("top", "right", "left"):
        strip.spines[side].set_visible(False)
    strip.tick_params(labelbottom=False)
    min_label = duration / 45.0
    for p in analysis.phases:
        rect = strip.axvspan(p.start_s, p.end_s, ymin=0.05, ymax=0.95, facecolor=ROLE_COLOUR.get(p.role, "#EEEEEE"),
                             edgecolor="white", linewidth=0.8)
        rect.set_gid("phase")
        if p.duration_s >= min_label:
            label = _short_phase_label(p, p.duration_s / duration * 160)
            strip.text((p.start_s + p.end_s) / 2, 0.5, label, ha="center", va="center", fontsize=7.5, clip_on=True)
    strip.set_title(f"Session on {name}: envelope, cues (shaded: contract) and detected events", fontsize=10,
                    loc="left")

    ts, lo, hi = _minmax(t, sig.filtered[channel], buckets)
    ax_sig.fill_between(ts, lo, hi, color="#B8B8B8", linewidth=0, gid="filtered")
    ax_sig.set_ylabel(f"filtered ({u})", fontsize=8)
    ax_sig.tick_params(labelbottom=False, labelsize=8)
    if hi.size:
        lim = float(np.percentile(np.maximum(np.abs(lo), np.abs(hi)), 99.5)) * 1.15 or 1.0
        ax_sig.set_ylim(-lim, lim)

    te, _, env_hi = _minmax(t, sig.envelope[channel], buckets)
    for p in analysis.phases:
        if p.cue == "contract":
            span = ax.axvspan(p.start_s, p.end_s, facecolor=ORANGE, alpha=0.18, linewidth=0)
            span.set_gid("cue")
    valid = sig.valid
    if valid is not None:
        edges = np.diff(np.concatenate(([0], (~valid).astype(np.int8), [0])))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            gap = ax.axvspan(a / fs, b / fs, facecolor=GREY, alpha=0.35, hatch="//", linewidth=0)
            gap.set_gid("gap")
    for x in _boundaries(analysis.phases):
        ax.axvline(x, color=DARK_GREY, linewidth=0.5, linestyle=":", gid="phase-boundary")
    ax.plot(te, env_hi, color="black", linewidth=0.8, gid="envelope", label="envelope (RMS)")
    edge = float(analysis.reference.band_edge[channel])
    ax.axhline(edge, color=BLUE, linewidth=0.8, linestyle="--", gid="rest-band",
               label=f"rest band edge ({edge:.1f} {u})")
    mine = [e for e in analysis.events if e.channel == name and e.kind in EVENT_STYLE]
    top = float(np.max(env_hi)) if env_hi.size else 1.0
    for kind in EVENT_STYLE:
        evs = [e for e in mine if e.kind == kind]
        if not evs:
            continue
        colour, marker = EVENT_STYLE[kind]
        ys = [e.peak if math.isfinite(e.peak) else edge for e in evs]
        ax.plot([e.onset_s for e in evs], ys, linestyle="none", marker=marker, markersize=6 if kind != "twitch" else 4,
                color=colour, markeredgecolor="black", markeredgewidth=0.4, gid=f"events-{kind}",
                label=f"{kind.replace('_', ' ')} ({len(evs)})")
        top = max(top, max(ys))
    ax.set_xlim(0, duration)
    ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.set_ylabel(f"envelope ({u})", fontsize=9)
    ax.tick_params(labelsize=8)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=len(handles), frameon=False)
    return fig


def _short_phase_label(phase, room_chars: float) -> str:
    rep = phase.extra.get("repetition") if phase.extra else None
    names = [phase.name, phase.role if not rep else f"{phase.role} {rep}", phase.role[:1].upper()]
    for label in names:
        if len(label) <= room_chars:
            return label
    return ""


def _boundaries(phases) -> list[float]:
    xs = sorted({round(p.start_s, 9) for p in phases} | {round(p.end_s, 9) for p in phases})
    return xs


def overlay_figure(analysis: SessionAnalysis, role: str, channel: int = 0, *, before_s: float = 1.0,
                   after_s: float = 4.0):
    """Every contraction of a role (``flick``, ``tonic``, ``work``) overlaid, aligned on its cue.

    One line per phase (``gid="rep-<index>"``, x from ``-before_s`` to the
    phase's length plus ``after_s``), a dot at each rise's 90 % point and at
    each return to rest, and the rest band edge.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the session has no phase of that role.
    """
    Figure = require_matplotlib()
    sig = analysis.signals
    name = sig.info.ch_names[channel]
    u = unit_label(sig.info.units)
    ms = [m for m in analysis.for_channel(name) if m.phase.role == role]
    if not ms:
        return None
    fig = Figure(figsize=(7.5, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colours = [BLUE, VERMILLION, BLUISH_GREEN, ORANGE, REDDISH_PURPLE, SKY_BLUE, "black", GREY]
    fs = sig.fs
    for k, m in enumerate(ms):
        p = m.phase
        a = max(0, sig.index(p.start_s - before_s))
        b = min(sig.n_samples, sig.index(p.end_s + after_s))
        x = np.arange(a, b) / fs - p.start_s
        y = sig.envelope[channel, a:b]
        step = max(1, (b - a) // 1500)
        colour = colours[k % len(colours)]
        ax.plot(x[::step], y[::step], color=colour, linewidth=1.0, gid=f"rep-{p.index}",
                label=p.name)
        back = m.series.get("back_at_rest_s", math.nan)
        if back is not None and math.isfinite(back):
            ax.plot([back - p.start_s], [float(sig.envelope[channel, min(sig.n_samples - 1, sig.index(back))])],
                    marker="o", markersize=4, color=colour, markeredgecolor="black", markeredgewidth=0.4,
                    linestyle="none")
    length = max(m.phase.duration_s for m in ms)
    ax.axvspan(0, length, facecolor=ORANGE, alpha=0.12, linewidth=0)
    ax.axhline(float(analysis.reference.band_edge[channel]), color=BLUE, linestyle="--", linewidth=0.8)
    ax.set_xlim(-before_s, length + after_s)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time from the contract cue (s)", fontsize=9)
    ax.set_ylabel(f"envelope ({u})", fontsize=9)
    ax.tick_params(labelsize=8)
    title = {"flick": "Flicks", "tonic": "Tonic holds", "work": "Work contractions"}.get(role, role)
    ax.set_title(f"{title} overlaid (dots: back at rest; dashed: rest band edge)", fontsize=10, loc="left")
    ax.legend(fontsize=7.5, ncols=2 if len(ms) > 10 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    return fig


def endurance_figure(analysis: SessionAnalysis, channel: int = 0):
    """The endurance hold: envelope with the first/last windows, and the median-frequency trend.

    ``axes[0]``: the envelope (``gid="envelope"``) with the first and last
    comparison windows shaded (``gid="decline-window"``). ``axes[1]``: one
    point per 1 s window (``gid="mdf"``) and the least-squares line
    (``gid="mdf-fit"``).

    Returns
    -------
    matplotlib.figure.Figure or None
        None without an endurance phase.
    """
    Figure = require_matplotlib()
    sig = analysis.signals
    name = sig.info.ch_names[channel]
    u = unit_label(sig.info.units)
    ms = [m for m in analysis.for_channel(name) if m.phase.role == "endurance"]
    if not ms:
        return None
    m = ms[0]
    p = m.phase
    fs = sig.fs
    fig = Figure(figsize=(7.5, 4.2), dpi=100, layout="constrained")
    ax, ax_f = fig.subplots(2, 1, sharex=True)
    a, b = sig.index(p.start_s), sig.index(p.end_s)
    x = np.arange(a, b) / fs - p.start_s
    step = max(1, (b - a) // 2000)
    ax.plot(x[::step], sig.envelope[channel, a:b][::step], color="black", linewidth=0.8, gid="envelope")
    length = p.duration_s
    part = 10.0 if length >= 30 else length / 3
    for lo in (0.0, length - part):
        ax.axvspan(lo, lo + part, facecolor=SKY_BLUE, alpha=0.25, linewidth=0, gid="decline-window")
    ax.set_ylabel(f"envelope ({u})", fontsize=9)
    ax.set_ylim(bottom=0)
    decline = m.values.get("amplitude_decline_pct", math.nan)
    ax.set_title(f"Endurance hold ({length:.0f} s): amplitude decline {_fmt('amplitude_decline_pct', decline)} %"
                 " (shaded: first and last windows)", fontsize=10, loc="left")
    times, mdf = m.series.get("mdf_times_s", np.array([])), m.series.get("mdf_hz", np.array([]))
    ax_f.plot(times, mdf, linestyle="none", marker="o", markersize=3.5, color=BLUE, gid="mdf",
              label="median frequency, 1 s windows")
    slope = m.values.get("median_freq_slope_hz_per_s", math.nan)
    ok = np.isfinite(mdf) if len(mdf) else np.array([], bool)
    if ok.sum() >= 3 and math.isfinite(slope):
        coef = np.polyfit(times[ok], mdf[ok], 1)
        ax_f.plot(times[ok][[0, -1]], np.polyval(coef, times[ok][[0, -1]]), color=VERMILLION, linewidth=1.5,
                  gid="mdf-fit", label=f"trend {slope:+.3f} Hz/s")
        ax_f.legend(fontsize=7.5, loc="best")
    ax_f.set_ylabel("median freq. (Hz)", fontsize=9)
    ax_f.set_xlabel("time from the start of the hold (s)", fontsize=9)
    for axis in (ax, ax_f):
        axis.tick_params(labelsize=8)
    return fig


def spasm_figure(analysis: SessionAnalysis, channel: int = 0, *, before_s: float = 1.0, after_s: float = 4.0):
    """Every spasm of the relax-cued phases overlaid, aligned on its onset.

    One line per spasm (``gid="spasm-<k>"``) and a dot where it was back at
    rest (its time to relax ends there).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when there was no spasm.
    """
    Figure = require_matplotlib()
    sig = analysis.signals
    name = sig.info.ch_names[channel]
    u = unit_label(sig.info.units)
    items = [(m.phase, it) for m in analysis.for_channel(name) if m.phase.cue == "relax" for it in m.items]
    if not items:
        return None
    fs = sig.fs
    fig = Figure(figsize=(7.5, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for k, (phase, it) in enumerate(items):
        a = max(0, sig.index(it["onset_s"] - before_s))
        b = min(sig.n_samples, sig.index(it["onset_s"] + after_s))
        x = np.arange(a, b) / fs - it["onset_s"]
        step = max(1, (b - a) // 1000)
        line, = ax.plot(x[::step], sig.envelope[channel, a:b][::step], linewidth=0.9, gid=f"spasm-{k}",
                        color=VERMILLION if k % 2 == 0 else REDDISH_PURPLE, alpha=0.8)
        ttr = it["time_to_relax_s"]
        if math.isfinite(ttr):
            t_back = it["peak_time_s"] + ttr
            ax.plot([t_back - it["onset_s"]], [float(sig.envelope[channel, min(sig.n_samples - 1, sig.index(t_back))])],
                    marker="o", markersize=3.5, color=line.get_color(), markeredgecolor="black",
                    markeredgewidth=0.4, linestyle="none")
    ax.axhline(float(analysis.reference.band_edge[channel]), color=BLUE, linestyle="--", linewidth=0.8)
    ax.set_xlim(-before_s, after_s)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time from the spasm's onset (s)", fontsize=9)
    ax.set_ylabel(f"envelope ({u})", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(f"{len(items)} spasm{'s' if len(items) != 1 else ''} overlaid (dots: back at rest)",
                 fontsize=10, loc="left")
    return fig


def report_figures(analysis: SessionAnalysis, channel: int = 0) -> dict:
    """All figures of one channel by name (``session``, ``flick``, ``tonic``, ``work``, ``endurance``, ``spasms``).

    Figures that do not apply (no phase of that role) are left out.
    """
    out = {"session": session_figure(analysis, channel)}
    for role in ("flick", "tonic", "work"):
        fig = overlay_figure(analysis, role, channel)
        if fig is not None:
            out[role] = fig
    fig = endurance_figure(analysis, channel)
    if fig is not None:
        out["endurance"] = fig
    fig = spasm_figure(analysis, channel)
    if fig is not None:
        out["spasms"] = fig
    return out


def figure_png(fig, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ----------------------------------------------------------------------------
# Numbers as text


def _fmt(name: str, value) -> str:
    """A metric value as text: counts whole, µV/Hz one decimal (two below 10), times two decimals."""
    if value is None:
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if not math.isfinite(x):
        return "–"
    if name in COUNTS:
        return str(int(round(x)))
    if name.endswith("_hz_per_s"):
        return f"{x:+.3f}"
    if name.endswith("_s"):
        return f"{x:.2f}"
    if name.endswith("_pct"):
        return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"
    if name.endswith("per_min"):
        return f"{x:.2f}"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _label(name: str, u: str) -> str:
    return LABELS.get(name, name).replace("{u}", u)


# ----------------------------------------------------------------------------
# HTML

CSS = """
:root { --ink: #1a1a1a; --muted: #5a5a5a; --line: #d0d0d0; --head: #f1f4f7; --warn: #fff4d6; --warn-line: #e6b000;
        --ok: #e3f2ea; --bad: #fbe3d6; }
* { box-sizing: border-box; }
body { font-family: "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: var(--ink); margin: 0 auto;
       max-width: 1100px; padding: 24px 28px 48px; line-height: 1.4; font-size: 14px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 3px; border-bottom: 2px solid var(--line);
     break-after: avoid; page-break-after: avoid; }
h3 { font-size: 15px; margin: 18px 0 6px; break-after: avoid; page-break-after: avoid; }
.sub { color: var(--muted); margin: 0 0 14px; }
.meta { display: grid; grid-template-columns: repeat(3, 1fr); gap: 4px 22px; margin: 10px 0 6px;
        padding: 10px 14px; background: var(--head); border-radius: 6px; }
.meta div { font-size: 13px; }
.meta b { color: var(--muted); font-weight: 600; display: inline-block; min-width: 92px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; }
.status.complete { background: var(--ok); }
.status.other { background: var(--bad); }
.notes { background: var(--warn); border-left: 4px solid var(--warn-line); padding: 8px 12px; margin: 12px 0;
         border-radius: 4px; }
.notes ul { margin: 4px 0 0 18px; padding: 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; break-inside: avoid;
        page-break-inside: avoid; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: var(--head); font-weight: 600; white-space: normal; max-width: 7.5em; vertical-align: bottom; }
td.name, th.name { text-align: left; }
tr.mean td { font-weight: 600; background: #fafafa; }
tr.incomplete td { color: var(--muted); font-style: italic; }
.key { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 10px 0; }
.key > div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.key .v { font-size: 20px; font-weight: 600; }
.key .l { color: var(--muted); font-size: 12px; }
figure { margin: 8px 0 14px; break-inside: avoid; page-break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: 12px; }
dl.defs { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 12.5px; }
dl.defs dt { font-weight: 600; }
dl.defs dd { margin: 0; color: #333; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { max-width: none; padding: 0; font-size: 11px; }
  .meta, .key > div, th, tr.mean td, .notes { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { margin-top: 16px; }
  th, td { padding: 2px 5px; }
  figure img { border: none; }
  .defs-section { break-before: page; page-break-before: always; }
}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _fmt_time(text) -> str:
    """ISO time as ``2026-11-21 18:00`` in its own offset (unparsable text as is)."""
    if not text:
        return "–"
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return when.strftime("%Y-%m-%d %H:%M") + (f" (UTC{when.strftime('%z')[:3]}:{when.strftime('%z')[3:]})"
                                              if when.tzinfo else "")


def _settings_text(analysis: SessionAnalysis) -> str:
    s = analysis.signals.settings
    low, high, order = s.band()
    high = min(450.0, 0.45 * analysis.signals.fs) if high is None else high
    mains = f"{analysis.signals.mains_hz:g} Hz notch" if analysis.signals.mains_hz else "no notch"
    env = f"RMS {s.rms_window_s * 1000:g} ms" if s.envelope == "rms" else f"linear {s.linear_cutoff_hz:g} Hz"
    ecg = ", heartbeat suppression" if s.ecg_enabled() else ""
    return f"{s.preset} preset, band-pass {low:g}-{high:g} Hz (order {order}), {mains}, envelope {env}{ecg}"


def _source_text(meta: dict) -> str:
    src = meta.get("source") or {}
    if isinstance(src, dict):
        parts = [src.get("kind", ""), src.get("description", "")]
        if src.get("protocol"):
            parts.append(f"({src['protocol']})")
        return " ".join(p for p in parts if p) or "–"
    return str(src)


def _protocol_text(meta: dict) -> tuple[str, str]:
    proto = meta.get("protocol") or {}
    if isinstance(proto, dict):
        return str(proto.get("name", "–")), str(proto.get("description", ""))
    return str(proto), ""


def render_html(analysis: SessionAnalysis, meta: dict, *, images: dict, notes=(), session_path: str = "") -> str:
    """The report page.

    Parameters
    ----------
    analysis : SessionAnalysis
    meta : dict
        The session's ``session.json``.
    images : dict
        Per channel name, a dict of figure name to PNG bytes (see
        :func:`report_figures`).
    notes : sequence of str
        Notes to show in the warning box besides the session's own.
    session_path : str
        Shown in the footer.
    """
    sig = analysis.signals
    u = unit_label(sig.info.units)
    proto_name, proto_desc = _protocol_text(meta)
    status = str(meta.get("status", "unknown"))
    all_notes = [str(n) for n in (meta.get("notes") or [])] + [str(n) for n in notes] + list(analysis.notes)
    if u != "µV":
        all_notes.append(f"the recording is in {sig.info.units}, not µV: amplitudes are in those units")
    started = meta.get("started_at")
    title = f"Session report: {proto_name}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)} — {_e(_fmt_time(started))}</title>", f"<style>{CSS}</style></head><body>"]
    out.append(f"<h1>{_e(title)}</h1>")
    out.append(f'<p class="sub">{_e(proto_desc)}</p>' if proto_desc else "")
    status_class = "complete" if status == "complete" else "other"
    meta_items = [
        ("User", meta.get("user", "–")),
        ("Date", _fmt_time(started)),
        ("Ended", _fmt_time(meta.get("ended_at"))),
        ("Protocol", proto_name),
        ("Device", _source_text(meta)),
        ("Recording", f"{sig.duration_s:.1f} s at {sig.fs:g} Hz, {len(sig.info.ch_names)} channel"
                      f"{'s' if len(sig.info.ch_names) != 1 else ''} ({', '.join(sig.info.ch_names)})"),
        ("Software", meta.get("software") or f"biofeedback {__version__}"),
        ("Report by", f"biofeedback {__version__}"),
    ]
    out.append('<div class="meta">')
    for label, value in meta_items:
        out.append(f"<div><b>{_e(label)}</b> {_e(value)}</div>")
    out.append(f'<div><b>Status</b> <span class="status {status_class}">{_e(status)}</span></div>')
    out.append("</div>")
    events_from = "as detected live" if analysis.events_source == "session" else "detected again from the samples"
    out.append(f'<p class="sub">Processing: {_e(_settings_text(analysis))}. Rest reference: '
               f"{_e(analysis.reference.source)}. Events: {events_from}.</p>")
    if all_notes or status not in ("complete",):
        out.append('<div class="notes"><b>Notes</b><ul>')
        if status not in ("complete",):
            out.append(f"<li>{_e(_status_sentence(status))}</li>")
        for n in all_notes:
            out.append(f"<li>{_e(n)}</li>")
        out.append("</ul></div>")

    for ch, name in enumerate(sig.info.ch_names):
        ms = analysis.for_channel(name)
        prefix = f" — {name}" if len(sig.info.ch_names) > 1 else ""
        out.append(f"<h2>Key results{_e(prefix)}</h2>")
        out.append(_key_results(analysis, name, u))
        imgs = images.get(name, {})
        if "session" in imgs:
            out.append(_figure(imgs["session"], "The whole session. Top: phases by role. Middle: the filtered "
                               "signal. Bottom: the envelope, with contract cues shaded, phase boundaries dotted, "
                               "the rest band edge dashed and each detected event marked at its onset and peak.",
                               f"session plot {name}"))
        for role, heading in ROLE_TITLES:
            rows = [m for m in ms if m.phase.role == role]
            if not rows:
                continue
            out.append(f"<h3>{_e(heading)}{_e(prefix)}</h3>")
            out.append(_role_table(rows, role, u))
            fig_key = {"flick": "flick", "tonic": "tonic", "work": "work", "endurance": "endurance"}.get(role)
            if fig_key and fig_key in imgs:
                caption = {
                    "flick": "Each flick's envelope from its cue; dots mark where it was back at rest.",
                    "tonic": "Each held contraction's envelope from its cue; dots mark where it was back at rest.",
                    "work": "Each work contraction's envelope from its cue.",
                    "endurance": "Top: the envelope during the hold. Bottom: the median frequency of each 1 s "
                                 "window and its trend; a falling median frequency is the sign of muscle fatigue.",
                }[fig_key]
                out.append(_figure(imgs[fig_key], caption, f"{fig_key} plot {name}"))
        spasm_rows = [(m.phase, it) for m in ms if m.phase.cue == "relax" for it in m.items]
        out.append(f"<h3>Spasms{_e(prefix)}</h3>")
        if spasm_rows:
            out.append(_spasm_table(spasm_rows, u))
            if "spasms" in imgs:
                out.append(_figure(imgs["spasms"], "Each spasm's envelope from its onset; dots mark where it was "
                                   "back at rest (end of its time to relax).", f"spasm plot {name}"))
        else:
            out.append("<p>No spasm was detected in the relax phases.</p>")

    out.append('<section class="defs-section"><h2>How the numbers are computed</h2>')
    out.append(_definitions(analysis, u))
    out.append("</section>")
    generated = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    out.append(f"<footer>Generated {generated} by biofeedback {__version__}"
               f"{' from ' + _e(session_path) if session_path else ''}. Not a diagnosis: the numbers describe "
               "this recording and are meant to be read with a clinician.</footer>")
    out.append("</body></html>")
    return "\n".join(x for x in out if x)


def _status_sentence(status: str) -> str:
    return {
        "recording": "The session did not end cleanly (status 'recording': the program stopped while it was "
                     "writing); the report covers what was saved.",
        "interrupted": "The session was interrupted before the protocol ended; the report covers the phases run.",
        "repaired": "The session was repaired after a crash; the report covers what could be recovered.",
        "stopped": "The session was stopped by the user before the protocol ended.",
    }.get(status, f"Session status: {status}.")


def _figure(png: bytes, caption: str, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _role_table(rows, role: str, u: str) -> str:
    names = list(ROLE_METRICS.get(role, ()))
    shown = names if role == "baseline" else [n for n in names if n != "duration_s"]
    # A column nothing could be measured for (e.g. relaxation time without a contraction before) is left out.
    shown = [n for n in shown if any(_finite(m.values.get(n)) for m in rows)]
    head = ['<th class="name">Phase</th>', "<th>Start (s)</th>", "<th>End (s)</th>"]
    head += [f"<th>{_e(_label(n, u))}</th>" for n in shown]
    out = [f'<table class="metrics role-{_e(role)}"><thead><tr>{"".join(head)}</tr></thead><tbody>']
    for m in rows:
        cls = "" if m.phase.extra.get("completed", True) else ' class="incomplete"'
        title = f' title="{_e("; ".join(m.notes))}"' if m.notes else ""
        cells = [f'<td class="name"{title}>{_e(m.phase.name)}{" *" if m.notes else ""}</td>',
                 f"<td>{m.phase.start_s:.1f}</td>", f"<td>{m.phase.end_s:.1f}</td>"]
        cells += [f'<td data-metric="{_e(n)}">{_fmt(n, m.values.get(n))}</td>' for n in shown]
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    if role in AVERAGED and len(rows) > 1:
        counts = [n for n in shown if n in COUNTS]
        label = "mean" + (" (counts: total)" if counts else "")
        cells = [f'<td class="name">{label}</td>', "<td></td>", "<td></td>"]
        for n in shown:
            vals = [float(m.values.get(n)) for m in rows
                    if m.values.get(n) is not None and math.isfinite(float(m.values.get(n)))]
            value = (float(np.sum(vals)) if n in COUNTS else float(np.mean(vals))) if vals else None
            cells.append(f"<td>{_fmt(n, value)}</td>")
        out.append(f'<tr class="mean">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    notes = [(m.phase.name, n) for m in rows for n in m.notes]
    if notes:
        out.append('<p class="sub">' + "<br>".join(f"* {_e(p)}: {_e(n)}" for p, n in notes) + "</p>")
    return "".join(out)


def _spasm_table(rows, u: str) -> str:
    out = ['<table class="spasms"><thead><tr><th class="name">Phase</th><th>Kind</th><th>Onset (s)</th>'
           f"<th>Duration (s)</th><th>Peak ({_e(u)})</th><th>Time to relax (s)</th></tr></thead><tbody>"]
    for phase, it in rows:
        out.append(f'<tr><td class="name">{_e(phase.name)}</td><td>{_e(it["kind"])}</td>'
                   f'<td>{it["onset_s"]:.2f}</td><td>{_fmt("duration_s", it["duration_s"])}</td>'
                   f'<td>{_fmt("peak_uv", it["peak_uv"])}</td>'
                   f'<td>{_fmt("time_to_relax_s", it["time_to_relax_s"])}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _key_results(analysis: SessionAnalysis, channel: str, u: str) -> str:
    s = analysis.summary if analysis.summary.get("channel") == channel else None
    if s is None:
        from biofeedback.session.metrics import session_summary

        s = session_summary(analysis, channel)
    items = [
        (_fmt("rest_mean_uv", s["resting_tone_uv"]), f"resting tone ({u})"),
        (_fmt("resting_cv_pct", s["resting_cv_pct"]), "resting variability, CV (%)"),
        (f'{s["spasm_count"]}', f"spasms in {s['relax_min']:.1f} min of relax cues"),
        (_fmt("spasms_per_min", s["spasms_per_relax_min"]), "spasms per relax minute"),
        (_fmt("time_to_relax_s", s["mean_time_to_relax_s"]), "mean time to relax after a spasm (s)"),
        (_fmt("peak_uv", s["flick_peak_uv"]), f"mean flick peak ({u})"),
        (_fmt("mean_uv", s["tonic_mean_uv"]), f"mean tonic hold ({u})"),
        (_fmt("mean_uv", s["endurance_mean_uv"]), f"endurance mean ({u})"),
    ]
    items = [(v, label) for v, label in items if v != "–" or "spasm" in label or "tone" in label]
    return '<div class="key">' + "".join(f'<div><div class="v">{_e(v)}</div><div class="l">{_e(label)}</div></div>'
                                         for v, label in items) + "</div>"


def _definitions(analysis: SessionAnalysis, u: str) -> str:
    used = []
    for m in analysis.metrics:
        for n in ROLE_METRICS.get(m.phase.role, ()):
            if n not in used:
                used.append(n)
    out = ["<p>Amplitudes are in the recording's units "
           f"({_e(u)}) and come from the same processing as the live display: the envelope is the moving RMS "
           "of the band-passed (and notched) signal. The first half second of the recording, where the filters "
           "settle, is left out. <b>Rest band</b>: up to the rest mean plus "
           f"{REST_BAND_SD:g} standard deviations of the resting envelope ({_e(analysis.reference.source)}); "
           f"<b>back at rest</b>: the first moment from which the envelope stays in that band for {HOLD_S:g} s. "
           "Conventions follow the Glazer protocol (Glazer et al. 1999, J Reprod Med 44:779-782); the median "
           "frequency as a fatigue index follows De Luca (1984) and Merletti et al. (1990).</p>",
           '<dl class="defs">']
    for n in used:
        out.append(f"<dt>{_e(_label(n, u))}</dt><dd>{_e(DEFINITIONS.get(n, ''))}</dd>")
    out.append("<dt>Time to relax (spasm)</dt><dd>from the spasm's envelope peak to back at rest</dd>")
    out.append("</dl>")
    return "".join(out)


# ----------------------------------------------------------------------------
# PDF


def write_pdf(path, analysis: SessionAnalysis, meta: dict, figures: dict, notes=()) -> Path:
    """A printable PDF: a first page with the header and key numbers, then one page per figure.

    Uses matplotlib's :class:`~matplotlib.backends.backend_pdf.PdfPages`
    (no extra dependency). ``figures`` maps channel names to
    :func:`report_figures` results.
    """
    Figure = require_matplotlib()
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    sig = analysis.signals
    u = unit_label(sig.info.units)
    proto_name, proto_desc = _protocol_text(meta)
    with PdfPages(path) as pdf:
        page = Figure(figsize=(8.27, 11.69))
        y = 0.95
        page.text(0.06, y, f"Session report: {proto_name}", fontsize=16, weight="bold")
        y -= 0.03
        lines = [proto_desc,
                 f"User: {meta.get('user', '–')}    Date: {_fmt_time(meta.get('started_at'))}    "
                 f"Status: {meta.get('status', 'unknown')}",
                 f"Device: {_source_text(meta)}    Software: {meta.get('software', '')}",
                 f"Recording: {sig.duration_s:.1f} s at {sig.fs:g} Hz, channels {', '.join(sig.info.ch_names)}",
                 f"Processing: {_settings_text(analysis)}"]
        lines += [f"Note: {n}" for n in list(meta.get("notes") or []) + list(notes) + list(analysis.notes)]
        for line in lines:
            if line:
                page.text(0.06, y, line, fontsize=8.5, wrap=True)
                y -= 0.022
        y -= 0.01
        for name in sig.info.ch_names:
            for role, heading in ROLE_TITLES:
                rows = [m for m in analysis.for_channel(name) if m.phase.role == role]
                if not rows or y < 0.12:
                    continue
                names = [n for n in ROLE_METRICS[role] if n != "duration_s"]
                page.text(0.06, y, f"{heading} ({name})", fontsize=10, weight="bold")
                y -= 0.008
                height = 0.017 * (len(rows) + 1)
                ax = page.add_axes((0.06, y - height, 0.88, height))
                ax.axis("off")
                cells = [[m.phase.name] + [_fmt(n, m.values.get(n)) for n in names] for m in rows]
                table = ax.table(cellText=cells, colLabels=["phase"] + [_label(n, u) for n in names],
                                 loc="upper left", cellLoc="right", bbox=(0, 0, 1, 1))
                table.auto_set_font_size(False)
                table.set_fontsize(6.5)
                y -= height + 0.03
        pdf.savefig(page)
        for name in sig.info.ch_names:
            for fig in figures.get(name, {}).values():
                pdf.savefig(fig)
    return path


# ----------------------------------------------------------------------------
# Entry point


def analyze_loaded(session) -> tuple[SessionAnalysis, list[str]]:
    """Analyse a loaded session (``meta``, ``recording``, ``events``, ``phases``); returns the analysis and notes."""
    meta = dict(getattr(session, "meta", {}) or {})
    notes = [str(n) for n in (getattr(session, "notes", None) or getattr(session, "warnings", None) or [])]
    recording = session.recording
    fs = recording.info.fs
    if recording.n_samples < int(fs):
        where = getattr(session, "path", "the session")
        raise BiofeedbackError(f"{where}: only {recording.n_samples / fs:.2f} s of samples were saved; "
                               "there is nothing to report")
    settings = settings_from_dict(meta.get("settings"))
    mains = meta.get("mains_hz", "auto")
    events = getattr(session, "events", None)
    if any(str(w).startswith("events.csv is missing") for w in notes):
        events = None  # detect them again from the samples
    phases = list(getattr(session, "phases", None) or [])
    if not phases:
        notes.append("the session has no finished phase: the report shows the recording as a whole")
    if phases:
        last_end = max(p.end_s for p in phases)
        if recording.duration_s > last_end + 1.0:
            notes.append(f"the samples after {last_end:.1f} s belong to no finished phase (the phase running "
                         f"when the recording stopped); `biofeedback repair` closes that phase")
    analysis = analyze_session(recording, phases, events, settings, mains_hz=mains,
                               calibration=meta.get("calibration"), present=getattr(session, "present", None))
    gaps = [e for e in recording.events if e.kind == "gap"]
    if gaps:
        lost = sum(e.duration_s for e in gaps)
        notes.append(f"{len(gaps)} gap(s) in the samples ({lost:.1f} s in all, e.g. a disconnect): "
                     "left out of the metrics and shaded grey in the session plot")
    return analysis, notes


def build_report(session, out_html=None, *, pdf=None, dpi: int = 110) -> tuple[Path, Path | None, SessionAnalysis]:
    """Write the HTML report of a session (and a PDF when ``pdf`` is a path).

    Parameters
    ----------
    session : object
        With ``path``, ``meta``, ``recording``, ``events`` and ``phases``
        (see :func:`biofeedback.session.store.load_session`).
    out_html : path, optional
        Default ``<session folder>/report.html``.
    pdf : path, optional
    dpi : int
        Resolution of the embedded plots.

    Returns
    -------
    (html path, pdf path or None, SessionAnalysis)
    """
    require_matplotlib()
    analysis, notes = analyze_loaded(session)
    folder = Path(getattr(session, "path", ".") or ".")
    out_html = Path(out_html) if out_html is not None else folder / "report.html"
    try:  # fail before the plots are drawn, not after
        out_html.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BiofeedbackError(f"cannot write the report to {out_html}: {exc.strerror or exc} "
                               "(give --out somewhere writable)") from None
    figures, images = {}, {}
    for ch, name in enumerate(analysis.signals.info.ch_names):
        figures[name] = report_figures(analysis, ch)
        images[name] = {key: figure_png(fig, dpi) for key, fig in figures[name].items()}
    page = render_html(analysis, dict(getattr(session, "meta", {}) or {}), images=images, notes=notes,
                       session_path=str(folder))
    pdf_path = None
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_html.with_name(out_html.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out_html)
        if pdf:
            pdf_path = write_pdf(pdf, analysis, dict(getattr(session, "meta", {}) or {}), figures, notes)
    except OSError as exc:
        where = exc.filename or out_html
        raise BiofeedbackError(f"cannot write the report to {where}: {exc.strerror or exc} "
                               "(give --out somewhere writable)") from None
    return out_html, pdf_path, analysis
