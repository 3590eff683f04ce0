"""``report.html`` of a batch analysis: an overview table and one small plot per file.

The page is one self-contained file (inline CSS, plots embedded as base64
PNG), so it can be mailed or archived with the tables. Each plot shows, per
channel, the display envelope (band-limited RMS, see
:mod:`biofeedback.analysis.runner`), the on and off thresholds of the
detector, the detected activations shaded by kind and the quality flags as
a grey bar along the top. Plots are drawn with matplotlib's Agg canvas
(no display, no pyplot state, safe in worker threads) where the file was
analysed, so a parallel run draws in parallel.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone

import numpy as np

# Okabe–Ito colours (distinct for the common colour-vision deficiencies).
KIND_COLOURS = {
    "contraction": "#E69F00",
    "failure_to_relax": "#CC79A7",
    "spasm": "#D55E00",
    "cramp": "#0072B2",
    "twitch": "#56B4E9",
    "elevated_tone": "#009E73",
}
FLAG_COLOUR = "#999999"
MAX_PLOT_CHANNELS = 16


def _span_collection(spans, y0, y1, ax, **style):
    """One artist for many vertical bands: a ``PolyCollection`` of rectangles.

    Parameters
    ----------
    spans : ndarray, shape (n, 2)
        Start and end of each band in seconds (x data coordinates).
    y0, y1 : float
        Bottom and top of every band as a fraction of the axes height (the
        ``ymin``/``ymax`` of ``axvspan``), so the bands span the plot
        whatever its y limits.
    ax : matplotlib Axes
    **style
        Face colour, alpha... of the collection.

    Returns
    -------
    matplotlib.collections.PolyCollection

    Notes
    -----
    This draws what one ``axvspan`` per band drew (same rectangles, colour,
    alpha, no edge), but as one artist: on an hour of 8 channels the
    thousands of patches took most of the plot's time and tens of MB.
    """
    from matplotlib.collections import PolyCollection

    x0, x1 = spans[:, 0], spans[:, 1]
    verts = np.empty((len(spans), 4, 2))
    verts[:, :, 0] = np.stack([x0, x0, x1, x1], axis=1)
    verts[:, :, 1] = (y0, y1, y1, y0)
    # x in data coordinates, y in axes coordinates, as axvspan.
    coll = PolyCollection(verts, closed=True, transform=ax.get_xaxis_transform(), linewidths=0,
                          edgecolors="none", **style)
    ax.add_collection(coll, autolim=False)
    return coll


def _draw_figure(t, env, info, events, thresholds, messages, duration=None):
    """The report figure of one file (see :func:`plot_file`); returns the matplotlib ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from biofeedback.detect.quality import FLAGS

    n_ch = min(info.n_channels, MAX_PLOT_CHANNELS)
    fig = Figure(figsize=(9.0, 0.5 + 0.85 * n_ch), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_ch, 1, sharex=True, squeeze=False)[:, 0]
    end = float(t[-1]) if len(t) else 0.0
    kinds_seen = []
    # Per channel, per kind ("quality flag" for all flags, drawn alike), the
    # (onset, offset) of its events in the order they come.
    by_channel: dict = {}
    for e in events:
        by_channel.setdefault(e.channel, {}).setdefault("quality flag" if e.kind in FLAGS else e.kind, []).append(
            (e.onset_s, e.offset_s))
    for ch in range(n_ch):
        ax = axes[ch]
        cname = info.ch_names[ch]
        y = env[ch] if env.shape[1] else np.zeros(0)
        on, off = float(thresholds[0][ch]), float(thresholds[1][ch])
        mine = by_channel.get(cname, {})
        kinds_seen.extend(k for k in mine if k not in kinds_seen)  # legend: in order of first appearance
        # The opaque flag bar last, so it reads as a bar over any shaded activation.
        for kind in sorted(mine, key=lambda k: k == "quality flag"):
            spans = np.asarray(mine[kind], dtype=float)
            end = max(end, float(spans[:, 1].max()))
            if kind == "quality flag":
                # A grey bar along the top; at least 50 ms wide so short spans show.
                spans[:, 1] = np.maximum(spans[:, 1], spans[:, 0] + 0.05)
                _span_collection(spans, 0.9, 1.0, ax, facecolors=FLAG_COLOUR)
            else:
                spans[:, 1] = np.maximum(spans[:, 1], spans[:, 0] + 0.02)
                _span_collection(spans, 0.0, 1.0, ax, facecolors=KIND_COLOURS.get(kind, "#777777"), alpha=0.35)
        if y.size:
            ax.plot(t, y, color="black", lw=0.7)
        top = max(float(np.percentile(y, 99.5)) * 1.15 if y.size else 0.0,
                  on * 1.3 if np.isfinite(on) else 0.0)
        if np.isfinite(on):
            ax.axhline(on, color="#D55E00", lw=0.8, ls="--")
        if np.isfinite(off):
            ax.axhline(off, color="#0072B2", lw=0.8, ls=":")
        ax.set_ylim(0, top if top > 0 else 1.0)
        label = cname if len(cname) <= 14 else cname[:13] + "…"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        if cname in messages:
            ax.text(0.01, 0.5, "not analysed", transform=ax.transAxes, fontsize=8, color="#555555", va="center")
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    axes[-1].set_xlim(0, duration or end or 1.0)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    handles = [Patch(color=KIND_COLOURS.get(k, FLAG_COLOUR), alpha=0.35 if k != "quality flag" else 1.0, label=k)
               for k in kinds_seen]
    title = f"envelope ({info.units}), thresholds: on --, off ··"
    if info.n_channels > n_ch:
        title += f"; first {n_ch} of {info.n_channels} channels"
    axes[0].set_title(title, fontsize=8, loc="left")
    if handles:
        axes[0].legend(handles=handles, fontsize=7, ncol=min(6, len(handles)), loc="lower right",
                       bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.subplots_adjust(left=0.13, right=0.99, top=1 - 0.45 / (0.5 + 0.85 * n_ch), bottom=0.5 / (0.5 + 0.85 * n_ch),
                        hspace=0.25)
    return fig


def plot_file(name, t, env, info, events, thresholds, messages, duration=None) -> bytes:
    """PNG of one file's envelope per channel with thresholds and events.

    Parameters
    ----------
    name : str
        File name (not drawn; kept for callers' symmetry with the tables).
    t : ndarray, shape (m,)
        Times of the display envelope in seconds.
    env : ndarray, shape (n_channels, m)
        Display envelope in the stream's units.
    info : StreamInfo
    events : list of Event
        Activations and quality spans; each channel's events of one kind are
        drawn as one shaded collection (all quality flags as one grey bar).
    thresholds : (ndarray, ndarray)
        On and off thresholds per channel.
    messages : dict of str to str
        Channels not analysed (labelled so on their plot).
    duration : float, optional
        Length of the recording in seconds (the x range).

    Returns
    -------
    bytes
        The PNG image.
    """
    fig = _draw_figure(t, env, info, events, thresholds, messages, duration=duration)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}tr.failed td{background:#fff0ec}
.meta{color:#555;font-size:.85em}.err{color:#b03000}.kpi{display:inline-block;margin-right:2em}
.kpi b{font-size:1.4em;display:block}img{max-width:100%}
"""


def _fmt(v, digits=3) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.{digits}g}"
    return str(v)


def _count_by_kind(outcome) -> dict:
    counts: dict = {}
    for row in outcome.event_rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


def write_report(path, outcomes, problems, meta: dict) -> str:
    """Write report.html; ``meta`` holds the command, settings text and version."""
    from biofeedback.detect.classify import ACTIVATION_KINDS, KINDS
    from biofeedback.detect.quality import FLAGS

    esc = html.escape
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    total_s = sum(o.duration_s for o in ok)
    totals: dict = {}
    for o in ok:
        for k, n in _count_by_kind(o).items():
            totals[k] = totals.get(k, 0) + n
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>biofeedback analysis report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>biofeedback analysis report</h1>",
             f"<p class='meta'>biofeedback {esc(str(meta.get('version', '')))}, "
             f"{esc(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}; "
             f"{esc(str(meta.get('settings', '')))}</p>",
             "<div>",
             f"<span class='kpi'><b>{len(ok)}</b>files analysed</span>",
             f"<span class='kpi'><b>{len(failed) + len(problems)}</b>failed</span>",
             f"<span class='kpi'><b>{total_s / 60:.1f} min</b>of recordings</span>",
             f"<span class='kpi'><b>{sum(totals.get(k, 0) for k in ACTIVATION_KINDS)}</b>activations</span>",
             "</div>"]
    kinds = [k for k in KINDS if totals.get(k)] + sorted(k for k in totals if k not in KINDS and k not in FLAGS)
    flags = [f for f in FLAGS if totals.get(f)]
    parts.append("<h2>Overview</h2><table><tr><th class='l'>file</th><th class='l'>format</th><th>duration (s)</th>"
                 "<th>rate (Hz)</th><th>channels</th><th class='l'>units</th>"
                 + "".join(f"<th>{esc(k)}</th>" for k in kinds)
                 + "<th class='l'>quality flags</th><th class='l'>status</th></tr>")
    for i, o in enumerate(outcomes):
        if not o.ok:
            parts.append(f"<tr class='failed'><td class='l'>{esc(o.file)}</td><td colspan='{5 + len(kinds)}' "
                         f"class='l err'>{esc(o.error)}</td><td class='l'>failed</td></tr>")
            continue
        counts = _count_by_kind(o)
        status = "ok" if not o.messages else f"{len(o.messages)} channel(s) not analysed"
        parts.append(
            f"<tr><td class='l'><a href='#f{i}'>{esc(o.file)}</a></td><td class='l'>{esc(o.format)}</td>"
            f"<td>{o.duration_s:.1f}</td><td>{o.fs:g}</td><td>{len(o.channels)}</td><td class='l'>{esc(o.units)}</td>"
            + "".join(f"<td>{counts.get(k, 0)}</td>" for k in kinds)
            + f"<td class='l'>{esc(', '.join(f for f in flags if counts.get(f)))}</td><td class='l'>{esc(status)}</td>"
            "</tr>")
    parts.append("</table>")
    if problems or failed:
        parts.append("<h2>Files that failed</h2><table><tr><th class='l'>file</th><th class='l'>reason</th></tr>")
        for f, why in problems:
            parts.append(f"<tr><td class='l'>{esc(f)}</td><td class='l err'>{esc(why)}</td></tr>")
        for o in failed:
            parts.append(f"<tr><td class='l'>{esc(o.file)}</td><td class='l err'>{esc(o.error)}</td></tr>")
        parts.append("</table>")
    cols = [("channel", "channel", None), ("resting_rms", "resting level", 4), ("on_threshold", "on threshold", 4),
            ("n_activations", "activations", None), ("mean_burst_s", "mean burst (s)", 3),
            ("longest_burst_s", "longest burst (s)", 3), ("median_freq_hz", "median freq. (Hz)", 4),
            ("quality_flags", "quality flags", None), ("status_reason", "status", None)]
    for i, o in enumerate(outcomes):
        if not o.ok:
            continue
        parts.append(f"<h2 id='f{i}'>{esc(o.file)}</h2>")
        notes = "; ".join(f"{k}: {v}" for k, v in o.notes.items() if k != "plot")
        parts.append(f"<p class='meta'>{esc(o.format)}, {o.duration_s:.1f} s at {o.fs:g} Hz, {len(o.channels)} "
                     f"channel(s) in {esc(o.units)}; {esc(o.mains_note)}; {esc(o.ecg_note)}"
                     + (f"<br>{esc(notes)}" if notes else "") + "</p>")
        parts.append("<table><tr>" + "".join(f"<th class='l'>{esc(h)}</th>" if k in ("channel", "quality_flags",
                                                                                        "status_reason")
                                             else f"<th>{esc(h)}</th>" for k, h, _ in cols) + "</tr>")
        for row in o.summary_rows:
            n_act = sum(int(row.get(f"n_{k}", 0) or 0) for k in ACTIVATION_KINDS)
            cells = []
            for key, _, digits in cols:
                value = n_act if key == "n_activations" else row.get(key, "")
                if key == "status_reason":
                    value = row.get("status_reason") or row.get("status", "")
                text = _fmt(value, digits) if digits else _fmt(value)
                cls = " class='l'" if key in ("channel", "quality_flags", "status_reason") else ""
                cells.append(f"<td{cls}>{esc(text)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        if o.png:
            data = base64.b64encode(o.png).decode("ascii")
            parts.append(f"<img alt='envelope, thresholds and events of {esc(o.file)}' "
                         f"src='data:image/png;base64,{data}'>")
        elif "plot" in o.notes:
            parts.append(f"<p class='meta'>{esc(o.notes['plot'])}</p>")
    parts.append("</body></html>\n")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return str(path)
