"""A simulated Glazer session run end to end headless, then ``biofeedback report`` on it.

The simulator is driven by the very protocol the session runs
(:func:`biofeedback.session.runner.scenario_for`), with spasms injected in
the rest phases at 6 dB; the session is recorded by the headless engine
into a session folder, read back with ``load_session`` and reported. The
report's numbers are checked against the simulator's truth.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
from scipy import signal

pytest.importorskip("matplotlib")

from biofeedback.cli import main  # noqa: E402
from biofeedback.dsp.filters import BandPass, FilterCascade, MainsNotch  # noqa: E402
from biofeedback.dsp.settings import PipelineSettings  # noqa: E402
from biofeedback.session.engine import ProtocolSession, run_headless  # noqa: E402
from biofeedback.session.metrics import SPASM_KINDS  # noqa: E402
from biofeedback.session.protocol import load_protocol  # noqa: E402
from biofeedback.session.report import analyze_loaded  # noqa: E402
from biofeedback.session.runner import expand, scenario_for  # noqa: E402
from biofeedback.session.store import load_session  # noqa: E402
from biofeedback.sources.simulator import SimulatorSource, emg_shaping_sos  # noqa: E402

FS = 1000.0
REST, NOISE = 3.0, 1.0
N_SPASMS = 7


def band_truth(settings, fs, mains_hz, rest=REST, noise=NOISE):
    """The simulated resting RMS inside the processing band (band-pass and notch power response)."""
    low, high, order = settings.band()
    filters = [BandPass(low, high, order)] + ([MainsNotch(mains_hz, settings.notch_quality)] if mains_hz else [])
    _, h = signal.sosfreqz(FilterCascade(filters).design(fs), worN=1 << 15, fs=fs)
    _, he = signal.sosfreqz(emg_shaping_sos(fs), worN=1 << 15, fs=fs)
    g_emg = np.mean(np.abs(he * h) ** 2) / np.mean(np.abs(he) ** 2)
    return math.sqrt(rest ** 2 * g_emg + noise ** 2 * np.mean(np.abs(h) ** 2))


@pytest.fixture(scope="module")
def glazer_session(tmp_path_factory):
    root = tmp_path_factory.mktemp("home") / "sessions"
    folder = root / "anna" / "20261121-180000-glazer"
    protocol = load_protocol("glazer")
    scenario = scenario_for(protocol, FS, spasms=N_SPASMS, spasm_snr_db=6.0, seed=2,
                            rest_rms_uv=REST, noise_rms_uv=NOISE)
    source = SimulatorSource(scenario, FS, seed=1, chunk_s=0.5, speed=0)
    session = ProtocolSession(protocol, folder, meta={
        "user": "anna", "started_at": "2026-11-21T18:00:00+00:00",
        "source": {"kind": "simulator", "description": "Glazer scenario, 7 spasms at 6 dB"}})
    outcome = run_headless(source, session, PipelineSettings(preset="pelvic"))
    assert outcome.status == "complete"
    return {"folder": folder, "protocol": protocol, "scenario": scenario, "root": root}


def test_simulated_glazer_session_report_matches_truth(glazer_session, capsys):
    folder = glazer_session["folder"]
    assert main(["report", str(folder)]) == 0  # the PDF is checked in test_session_report.py
    out = capsys.readouterr().out
    assert "wrote" in out and "7 spasm(s)" in out
    html = (folder / "report.html").read_text(encoding="utf-8")

    session = load_session(folder)
    analysis, _ = analyze_loaded(session)
    # Phase boundaries: exactly the protocol's schedule.
    schedule = expand(glazer_session["protocol"], FS)
    assert [(p.name, p.start_s, p.end_s) for p in analysis.phases] == \
        [(ph.spec.name, ph.start / FS, ph.stop / FS) for ph in schedule.phases]
    for p in analysis.phases:
        assert f"<td>{p.start_s:.1f}</td><td>{p.end_s:.1f}</td>" in html
    # Spasms at 6 dB: the exact count, each in the phase it was injected in.
    truth = [e for e in glazer_session["scenario"].events if e.kind == "spasm"]
    found = [e for e in analysis.events if e.kind in SPASM_KINDS]
    assert len(found) == len(truth) == N_SPASMS
    assert analysis.summary["spasm_count"] == N_SPASMS
    for m in analysis.metrics:
        if m.phase.cue == "relax":
            injected = sum(1 for e in truth if m.phase.start_s <= e.onset_s < m.phase.end_s)
            assert m.values["spasm_count"] == injected, m.phase.name
    # Resting level: within 10 % of the simulated resting RMS inside the processing band.
    settings = analysis.signals.settings
    expected = band_truth(settings, FS, session.meta.get("mains_hz"))
    pre = next(m for m in analysis.metrics if m.phase.name == "pre-baseline")
    assert pre.values["rest_mean_uv"] == pytest.approx(expected, rel=0.10)
    assert pre.values["tone_uv"] == pytest.approx(expected, rel=0.10)
    shown = re.search(r'data-metric="rest_mean_uv">([^<]*)<', html).group(1)
    assert float(shown) == pytest.approx(pre.values["rest_mean_uv"], abs=0.006)
    assert "complete" in html and "anna" in html and "Glazer scenario" in html


@pytest.mark.parametrize("make", ["missing", "empty", "bad-json"])
def test_report_bad_input_is_one_line_exit_2(tmp_path, capsys, make):
    folder = tmp_path / "s"
    if make != "missing":
        folder.mkdir()
    if make == "bad-json":
        (folder / "session.json").write_text("{not json", encoding="utf-8")
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("biofeedback report: error:")


def test_truncated_session_is_reported_for_what_is_there(glazer_session, tmp_path, capsys):
    folder = tmp_path / "crashed"
    shutil.copytree(glazer_session["folder"], folder)
    for name in ("report.html", "summary.json"):
        (folder / name).unlink(missing_ok=True)
    # A crash at ~155 s: samples.csv cut in the middle of a line, phases.csv without the later
    # phases, session.json still saying "recording".
    samples = (folder / "samples.csv").read_bytes()
    cut_at = samples.index(b"\n155000,") + 12
    (folder / "samples.csv").write_bytes(samples[:cut_at])
    lines = (folder / "phases.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if float(line.split(",")[5]) <= 155.0]
    (folder / "phases.csv").write_text("".join(kept), encoding="utf-8")
    meta = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    meta.update(status="recording", ended_at=None)
    (folder / "session.json").write_text(json.dumps(meta), encoding="utf-8")

    out = tmp_path / "r" / "crashed.html"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "incomplete last line" in captured.err and "not closed" in captured.err
    html = out.read_text(encoding="utf-8")
    assert "did not end cleanly" in html and "incomplete last line" in html
    assert "155.0 s at 1000 Hz" in html
    assert 'class="metrics role-tonic"' in html and 'class="metrics role-endurance"' not in html
    assert "belong to no finished phase" in html  # the phase running at the crash


def test_session_with_no_samples_is_an_error(glazer_session, tmp_path, capsys):
    folder = tmp_path / "empty"
    shutil.copytree(glazer_session["folder"], folder)
    head = (folder / "samples.csv").read_bytes().split(b"\nsample,")[0]
    (folder / "samples.csv").write_bytes(head + b"\nsample,ch1,cue\n")
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "nothing to report" in err and err.count("\n") == 1


def test_unwritable_output_is_one_line(glazer_session, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    assert main(["report", str(glazer_session["folder"]), "--out", str(blocker / "report.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report" in err
