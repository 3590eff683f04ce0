"""``biofeedback history``: sessions over several weeks, cached summaries, trends, marks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime

import pytest

pytest.importorskip("matplotlib")

from biofeedback.cli import main  # noqa: E402
from biofeedback.dsp.settings import PipelineSettings  # noqa: E402
from biofeedback.session import history as H  # noqa: E402
from biofeedback.session.engine import ProtocolSession, run_headless  # noqa: E402
from biofeedback.session.protocol import parse_protocol  # noqa: E402
from biofeedback.session.runner import scenario_for  # noqa: E402
from biofeedback.sources.simulator import SimulatorSource  # noqa: E402

FS = 500.0
PROTOCOL = """
name = "mini"
description = "baseline, relax, endurance, baseline"
[[phase]]
name = "pre-baseline"
role = "baseline"
duration_s = 20
[[phase]]
name = "relax"
role = "relax"
duration_s = 40
[[phase]]
name = "endurance"
role = "endurance"
duration_s = 15
[[phase]]
name = "post-baseline"
role = "baseline"
duration_s = 10
"""
RELAX_MIN = (20 + 40 + 10) / 60.0
#: (start, resting tone µV, spasms, cut the source at this many seconds or None)
PLAN = (
    ("2026-10-05T18:00:00+00:00", 5.0, 4, None),
    ("2026-10-12T18:00:00+00:00", 4.2, 3, None),
    ("2026-10-14T18:00:00+00:00", 4.0, 3, None),   # same week as the previous one
    ("2026-10-19T18:00:00+00:00", 3.6, 2, 68.0),   # interrupted during the endurance hold
    ("2026-10-26T18:00:00+00:00", 3.0, 1, None),
)


def record(root, user, start, rest_uv, spasms, cut_s):
    protocol = parse_protocol(PROTOCOL, "mini.toml")
    scenario = scenario_for(protocol, FS, spasms=spasms, spasm_snr_db=12.0, seed=spasms, rest_rms_uv=rest_uv,
                            noise_rms_uv=0.5, spasm_durations_s=(0.6, 1.0))
    if cut_s is not None:
        kept = tuple(e if e.offset_s <= cut_s else replace(e, duration_s=cut_s - e.onset_s)
                     for e in scenario.events if e.onset_s < cut_s)
        scenario = replace(scenario, duration_s=cut_s, events=kept)
    when = datetime.fromisoformat(start)
    folder = root / user / f"{when:%Y%m%d-%H%M%S}-mini"
    session = ProtocolSession(protocol, folder, meta={"user": user, "started_at": start,
                                                      "source": {"kind": "simulator"}})
    outcome = run_headless(SimulatorSource(scenario, FS, seed=3, chunk_s=1.0, speed=0), session,
                           PipelineSettings(mains="off"))
    return folder, outcome.status


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("home") / "sessions"
    statuses = [record(root, "anna", *plan)[1] for plan in PLAN]
    assert statuses == ["complete", "complete", "complete", "interrupted", "complete"]
    record(root, "bob", "2026-10-07T09:00:00+00:00", 6.0, 2, None)
    return root


def test_history_trends_over_weeks(root):
    entries = H.collect_history(root, "anna")
    assert [e.started.date().isoformat() for e in entries] == [p[0][:10] for p in PLAN]
    assert not any(e.error for e in entries)
    tones = [e.metrics["resting_tone_uv"] for e in entries]
    assert tones == sorted(tones, reverse=True)  # the resting tone falls week by week
    for e, (_, rest_uv, spasms, cut) in zip(entries, PLAN):
        assert e.metrics["spasm_count"] == spasms
        relax_min = RELAX_MIN if cut is None else (20 + 40) / 60.0
        assert e.metrics["spasms_per_relax_min"] == pytest.approx(spasms / relax_min)
        assert 0 < e.metrics["mean_time_to_relax_s"] < 2.0
        assert e.metrics["endurance_mean_uv"] > 10 * rest_uv / 5
    assert [e.marked for e in entries] == [False, False, False, True, False]
    weeks = H.weekly_means(entries, "spasm_count")
    assert [(w.date().isoformat(), v, n) for w, v, n in weeks] == [
        ("2026-10-05", 4.0, 1), ("2026-10-12", 3.0, 2), ("2026-10-19", 2.0, 1), ("2026-10-26", 1.0, 1)]


def test_summaries_are_cached_and_refreshed(root):
    folder = H.find_sessions(root, "anna")[0]
    first = H.summarize_session(folder)
    cache = folder / H.SUMMARY_FILE
    assert cache.is_file() and (cache.stat().st_mode & 0o777) == 0o600
    again = H.summarize_session(folder)
    assert again.cached and again.metrics["spasm_count"] == first.metrics["spasm_count"]
    # A changed session (here: its metadata rewritten) is summarised again.
    meta = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    meta["notes"] = meta.get("notes", []) + ["edited"]
    (folder / "session.json").write_text(json.dumps(meta), encoding="utf-8")
    assert not H.summarize_session(folder).cached
    # A tampered cache with the right fingerprint is what gets read (the cache is trusted, not checked).
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["metrics"]["spasm_count"] = 99
    cache.write_text(json.dumps(data), encoding="utf-8")
    assert H.summarize_session(folder).metrics["spasm_count"] == 99
    assert H.summarize_session(folder, use_cache=False).metrics["spasm_count"] == first.metrics["spasm_count"]


def test_trends_figure_content(root):
    entries = H.collect_history(root, "anna")
    fig = H.trends_figure(entries)
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == [t for _, t, _ in H.TRENDS]
    tone_ax = axes[0]
    lines = {line.get_gid(): line for line in tone_ax.lines}
    full = [e for e in entries if not e.marked]
    from matplotlib import dates as mdates

    xs = [mdates.num2date(x).replace(tzinfo=None) for x in lines["sessions-anna"].get_xdata()]
    assert [x.date() for x in xs] == [e.started.date() for e in full]
    assert list(lines["sessions-anna"].get_ydata()) == pytest.approx([e.metrics["resting_tone_uv"] for e in full])
    marked = lines["marked-anna"]
    assert len(marked.get_xdata()) == 1 and marked.get_markerfacecolor() == "white"
    weekly = lines["weekly-anna"]
    starts = [mdates.num2date(x).date().isoformat() for x in weekly.get_xdata()[::3]]
    assert starts == ["2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26"]  # Mondays
    tones = [e.metrics["resting_tone_uv"] for e in entries]
    assert list(weekly.get_ydata()[3:5]) == pytest.approx([(tones[1] + tones[2]) / 2] * 2)  # two sessions that week
    assert tone_ax.get_ylim()[1] > max(tones)
    # The interrupted session stopped during the endurance hold: its endurance point is still there (partial).
    endurance = {line.get_gid(): line for line in axes[3].lines}
    assert len(endurance["sessions-anna"].get_xdata()) + len(endurance["marked-anna"].get_xdata()) == 5


def test_history_command_lists_and_writes(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(root.parent))
    out = tmp_path / "hist"
    assert main(["history", "--user", "anna", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("2026-")]
    assert len(rows) == 5
    assert "interrupted *" in text and "* interrupted, repaired or never closed" in text
    csv_text = (out / "history.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0].split(",") == list(H.COLUMNS)
    assert len(csv_text.splitlines()) == 6
    png = (out / "trends.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 10000
    html = (out / "history.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and html.count("<tr>") == 6

    assert main(["history", "--no-plots"]) == 0  # every user
    text = capsys.readouterr().out
    assert "bob" in text and "anna" in text


def test_history_bad_input(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(root.parent))
    assert main(["history", "--user", "nobody", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "known: anna, bob" in err
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path / "fresh"))
    assert main(["history"]) == 0
    assert "no sessions recorded yet" in capsys.readouterr().err


def test_broken_session_is_listed_not_fatal(root, tmp_path):
    import shutil

    copy = tmp_path / "sessions"
    shutil.copytree(root / "bob", copy / "bob")
    broken = copy / "bob" / "20261008-090000-mini"
    broken.mkdir()
    (broken / "session.json").write_text(json.dumps({"format": "biofeedback-session", "version": 1, "fs": 500.0,
                                                     "ch_names": ["ch1"], "status": "recording"}), encoding="utf-8")
    entries = H.collect_history(copy, "bob")
    assert len(entries) == 2
    bad = [e for e in entries if e.error]
    assert len(bad) == 1 and "samples.csv" in bad[0].error
    assert "not summarised" in H.format_table(entries)
    assert math.isnan(bad[0].metrics.get("resting_tone_uv", math.nan))
