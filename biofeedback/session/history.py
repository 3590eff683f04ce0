"""Session history: one row per recorded session and trends across weeks.

Sessions live in ``<sessions root>/<user>/<YYYYmmdd-HHMMSS>-<protocol>/``
(see ``docs/session_format.md``). For each one the trend metrics of
:func:`biofeedback.session.metrics.session_summary` are computed once and
cached in the session folder as ``summary.json``, next to a fingerprint of
the session's files (sizes and modification times) and the toolkit's
version: a session that changes (a repair, a session still recording) or a
new version of the metrics is summarised again, any other is read back.

Trend metrics (first channel):

* resting tone (µV): mean envelope of the baseline phases, activity left out;
* spasms per relax minute: spasms during relax cues per minute of relax cues;
* time to relax (s): mean over the session's spasms, from the spasm's peak
  to back at rest;
* endurance mean (µV): mean envelope of the endurance hold.

Sessions whose status is ``interrupted`` or ``repaired`` (or ``recording``:
never closed) are listed and plotted with a mark, since they cover only
part of their protocol.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from biofeedback import __version__
from biofeedback.errors import BiofeedbackError

SUMMARY_FILE = "summary.json"
#: Bumped whenever the summary's content or definitions change (forces recomputation).
SUMMARY_VERSION = 1
#: Statuses marked in tables and plots: the session does not cover its whole protocol.
MARKED_STATUSES = ("interrupted", "repaired", "recording")
#: Files whose size and modification time make the fingerprint.
FINGERPRINT_FILES = ("session.json", "samples.csv", "events.csv", "phases.csv")

#: The trend metrics: (key, title, unit label) in plot order.
TRENDS = (
    ("resting_tone_uv", "Resting tone", "{u}"),
    ("spasms_per_relax_min", "Spasms per relax minute", "per min"),
    ("mean_time_to_relax_s", "Time to relax after a spasm", "s"),
    ("endurance_mean_uv", "Endurance mean", "{u}"),
)
#: Columns of the history table (CSV and text).
COLUMNS = ("date", "user", "protocol", "status", "duration_min", "resting_tone_uv", "spasms_per_relax_min",
           "mean_time_to_relax_s", "endurance_mean_uv", "spasm_count", "median_freq_slope_hz_per_s", "session")


@dataclass
class SessionSummary:
    """One session in the history.

    Attributes
    ----------
    folder : Path
    user, protocol, status : str
    started : datetime or None
        When it started (timezone-aware when the session says so).
    metrics : dict
        The trend metrics (see :func:`~biofeedback.session.metrics.session_summary`).
    units : str
    cached : bool
        True when read from ``summary.json``.
    error : str
        Why it could not be summarised ("" when it could).
    """

    folder: Path
    user: str
    protocol: str
    status: str
    started: datetime | None
    metrics: dict = field(default_factory=dict)
    units: str = "uV"
    cached: bool = False
    error: str = ""

    @property
    def marked(self) -> bool:
        """True when the session does not cover its whole protocol."""
        return self.status in MARKED_STATUSES

    def row(self) -> dict:
        """A row of the history table."""
        m = self.metrics

        def num(key, digits):
            v = m.get(key)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return ""
            return round(float(v), digits)

        return {
            "date": self.started.strftime("%Y-%m-%d %H:%M") if self.started else "",
            "user": self.user,
            "protocol": self.protocol,
            "status": self.status + (" *" if self.marked else ""),
            "duration_min": round(float(m["duration_s"]) / 60.0, 2) if num("duration_s", 6) != "" else "",
            "resting_tone_uv": num("resting_tone_uv", 3),
            "spasms_per_relax_min": num("spasms_per_relax_min", 3),
            "mean_time_to_relax_s": num("mean_time_to_relax_s", 3),
            "endurance_mean_uv": num("endurance_mean_uv", 2),
            "spasm_count": m.get("spasm_count", ""),
            "median_freq_slope_hz_per_s": num("median_freq_slope_hz_per_s", 4),
            "session": self.folder.name + (f" (not summarised: {self.error})" if self.error else ""),
        }


# ----------------------------------------------------------------------------
# Finding sessions


def sessions_root() -> Path:
    """The sessions root (``$BIOFEEDBACK_HOME/sessions`` or the XDG data folder)."""
    try:
        from biofeedback.session.store import sessions_root as root
    except ImportError:  # pragma: no cover - store is part of the package
        home = os.environ.get("BIOFEEDBACK_HOME")
        if home:
            return Path(home) / "sessions"
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(data) / "biofeedback" / "sessions"
    return root()


def list_users(root=None) -> list[str]:
    """Users with at least one session folder under ``root``."""
    root = Path(root) if root is not None else sessions_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*/session.json")))


def find_sessions(root=None, user: str | None = None) -> list[Path]:
    """Session folders (holding a ``session.json``) of one user or of all, oldest first by folder name."""
    root = Path(root) if root is not None else sessions_root()
    users = [user] if user else list_users(root)
    found = []
    for u in users:
        base = root / u
        if base.is_dir():
            found.extend(p.parent for p in base.glob("*/session.json"))
    return sorted(found, key=lambda p: (p.name, p.parent.name))


# ----------------------------------------------------------------------------
# Summaries with a cache


def fingerprint(folder) -> dict:
    """Sizes and modification times of a session's files, with the summary version."""
    folder = Path(folder)
    files = {}
    for name in FINGERPRINT_FILES:
        p = folder / name
        try:
            st = p.stat()
        except OSError:
            files[name] = None
            continue
        files[name] = [st.st_size, st.st_mtime_ns]
    return {"summary_version": SUMMARY_VERSION, "software": __version__, "files": files}


def _parse_time(text) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _time_from_name(name: str) -> datetime | None:
    try:
        return datetime.strptime(name[:15], "%Y%m%d-%H%M%S")
    except ValueError:
        return None


def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _protocol_name(meta: dict, folder: Path) -> str:
    proto = meta.get("protocol")
    if isinstance(proto, dict) and proto.get("name"):
        return str(proto["name"])
    if isinstance(proto, str) and proto:
        return proto
    parts = folder.name.split("-", 2)
    return parts[2] if len(parts) == 3 else ""


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def summarize_session(folder, *, use_cache: bool = True, write_cache: bool = True) -> SessionSummary:
    """The history entry of one session folder (from ``summary.json`` when still valid).

    A session that cannot be read or analysed gives an entry with
    ``error`` set instead of raising, so one broken folder does not hide
    the others.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    user = str(meta.get("user") or folder.parent.name)
    started = _parse_time(meta.get("started_at")) or _time_from_name(folder.name)
    entry = SessionSummary(folder, user, _protocol_name(meta, folder), str(meta.get("status", "unknown")), started,
                           units=str(meta.get("units", "uV")))
    print_ = fingerprint(folder)
    cache = folder / SUMMARY_FILE
    if use_cache and cache.is_file():
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("fingerprint") == print_ and isinstance(data.get("metrics"), dict):
            entry.metrics = {k: (math.nan if v is None else v) for k, v in data["metrics"].items()}
            entry.cached = True
            return entry
    try:
        from biofeedback.session.metrics import session_summary
        from biofeedback.session.report import analyze_loaded
        from biofeedback.session.store import load_session

        session = load_session(folder)
        analysis, _ = analyze_loaded(session)
        entry.metrics = session_summary(analysis)
        entry.status = str(session.meta.get("status", entry.status))
    except BiofeedbackError as exc:
        entry.error = str(exc)
        return entry
    except (ValueError, KeyError, IndexError) as exc:
        entry.error = f"cannot analyse it ({exc})"
        return entry
    if write_cache:
        _write_cache(cache, {"fingerprint": print_, "computed_at": datetime.now(timezone.utc).isoformat(
            timespec="seconds"), "metrics": {k: _clean(v) for k, v in entry.metrics.items()}})
    return entry


def _write_cache(path: Path, data: dict) -> None:
    """Write ``summary.json`` atomically, owner-only; a read-only folder just goes without a cache."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def collect_history(root=None, user: str | None = None, *, use_cache: bool = True) -> list[SessionSummary]:
    """Summaries of every session of ``user`` (all users when None), oldest first."""
    entries = [summarize_session(f, use_cache=use_cache) for f in find_sessions(root, user)]
    far_past = datetime(1900, 1, 1)
    return sorted(entries, key=lambda e: (_naive(e.started) or far_past, e.folder.name))


def _naive(when: datetime | None) -> datetime | None:
    """A comparable time: aware times converted to UTC and made naive."""
    if when is None:
        return None
    if when.tzinfo is not None:
        return when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


# ----------------------------------------------------------------------------
# Tables


def history_rows(entries) -> list[dict]:
    return [e.row() for e in entries]


def format_table(entries) -> str:
    """The history as an aligned text table (marked statuses get ``*`` and a footnote)."""
    head = ("date", "user", "protocol", "status", "min", "rest µV", "spasms/min", "relax s", "endur. µV", "session")
    keys = ("date", "user", "protocol", "status", "duration_min", "resting_tone_uv", "spasms_per_relax_min",
            "mean_time_to_relax_s", "endurance_mean_uv", "session")
    rows = [[str(r[k]) if r[k] != "" else "–" for k in keys] for r in history_rows(entries)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    numeric = {4, 5, 6, 7, 8}

    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if any(e.marked for e in entries):
        out.append("* interrupted, repaired or never closed: covers only part of its protocol")
    return "\n".join(s.rstrip() for s in out)


def write_csv(path, entries) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in history_rows(entries):
            w.writerow(r)
    return path


# ----------------------------------------------------------------------------
# Trends


def week_start(when: datetime) -> datetime:
    """Monday 00:00 of the ISO week of ``when`` (same timezone)."""
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def weekly_means(entries, key: str) -> list[tuple[datetime, float, int]]:
    """``(Monday of the week, mean, number of sessions)`` of a metric, per ISO week with a value."""
    groups: dict = {}
    for e in entries:
        v = e.metrics.get(key)
        if e.started is None or v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            continue
        groups.setdefault(week_start(_naive(e.started)), []).append(float(v))
    return [(w, sum(vs) / len(vs), len(vs)) for w, vs in sorted(groups.items())]


def trends_figure(entries):
    """Four panels (see :data:`TRENDS`) of the metrics against the session date.

    Per panel and user: one point per session (``gid="sessions-<user>"``,
    x = session dates as matplotlib date numbers), hollow for marked
    sessions (``gid="marked-<user>"``), and each ISO week's mean as a
    horizontal segment from Monday to Monday (``gid="weekly-<user>"``,
    three x values per week: start, end, NaN).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib import dates as mdates

    from biofeedback.session.report import BLUE, BLUISH_GREEN, ORANGE, REDDISH_PURPLE, VERMILLION, \
        require_matplotlib, unit_label

    Figure = require_matplotlib()
    colours = [BLUE, VERMILLION, BLUISH_GREEN, ORANGE, REDDISH_PURPLE]
    dated = [e for e in entries if e.started is not None and not e.error]
    users = sorted({e.user for e in dated})
    u = unit_label(dated[0].units) if dated else "µV"
    fig = Figure(figsize=(10, 6.4), dpi=100, layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    for ax, (key, title, unit) in zip(axes, TRENDS):
        top = 0.0
        for k, user in enumerate(users):
            colour = colours[k % len(colours)]
            mine = [e for e in dated if e.user == user]
            pts = [(mdates.date2num(_naive(e.started)), float(e.metrics[key]), e.marked) for e in mine
                   if isinstance(e.metrics.get(key), (int, float)) and math.isfinite(float(e.metrics[key]))]
            full = [(t, v) for t, v, m in pts if not m]
            part = [(t, v) for t, v, m in pts if m]
            label = user if len(users) > 1 else "session"
            ax.plot([t for t, _ in full], [v for _, v in full], linestyle="none", marker="o", markersize=5,
                    color=colour, gid=f"sessions-{user}", label=label)
            if part:
                ax.plot([t for t, _ in part], [v for _, v in part], linestyle="none", marker="o", markersize=6,
                        markerfacecolor="white", markeredgecolor=colour, markeredgewidth=1.3, gid=f"marked-{user}",
                        label="interrupted/repaired")
            xs, ys = [], []
            for monday, mean, _ in weekly_means(mine, key):
                a = mdates.date2num(monday)
                xs += [a, a + 7.0, math.nan]
                ys += [mean, mean, math.nan]
            if xs:
                ax.plot(xs, ys, color=colour, linewidth=2.2, alpha=0.45, solid_capstyle="butt",
                        gid=f"weekly-{user}", label="week's mean" if len(users) == 1 else None)
            top = max([top] + [v for _, v, _ in pts])
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel(unit.replace("{u}", u), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)
        ax.grid(True, alpha=0.3)
        ax.xaxis_date()
    axes[0].legend(fontsize=7.5, loc="lower left")
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    for ax in axes[2:]:
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b\n%Y"))
    if not dated:
        axes[0].text(0.5, 0.5, "no session", transform=axes[0].transAxes, ha="center")
    return fig


def write_history(entries, out_dir) -> dict:
    """Write ``history.csv``, ``trends.png`` and ``history.html`` into ``out_dir``; returns their paths."""
    import base64
    import html

    from biofeedback.session.report import figure_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_csv(out / "history.csv", entries)}
    fig = trends_figure(entries)
    png = figure_png(fig, dpi=110)
    (out / "trends.png").write_bytes(png)
    paths["png"] = out / "trends.png"
    rows = history_rows(entries)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>" for r in rows)
    note = ('<p class="note">* interrupted, repaired or never closed: the session covers only part of its '
            "protocol (hollow points in the plots).</p>") if any(e.marked for e in entries) else ""
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Session history</title>
<style>
body {{ font-family: "Segoe UI", "Helvetica Neue", Arial, sans-serif; max-width: 1100px; margin: 0 auto;
       padding: 24px; color: #1a1a1a; font-size: 14px; }}
table {{ border-collapse: collapse; font-size: 12.5px; }}
th, td {{ border: 1px solid #d0d0d0; padding: 3px 7px; white-space: nowrap; }}
th {{ background: #f1f4f7; }}
img {{ max-width: 100%; }}
.note {{ color: #5a5a5a; font-size: 12px; }}
@media print {{ @page {{ size: A4 landscape; margin: 12mm; }} body {{ padding: 0; }} }}
</style></head><body>
<h1>Session history</h1>
<p>{len(entries)} session{'s' if len(entries) != 1 else ''}; generated by biofeedback {__version__}.</p>
<img alt="trends" src="data:image/png;base64,{base64.b64encode(png).decode('ascii')}">
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}
</body></html>"""
    (out / "history.html").write_text(page, encoding="utf-8")
    paths["html"] = out / "history.html"
    return paths
