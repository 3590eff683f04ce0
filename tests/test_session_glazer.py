"""Must-show: a simulated Glazer session, driven by the protocol, run end to end headless.

The simulator follows the same protocol (contractions exactly during the
contract phases) with spasms injected in the rest phases; the saved session
must give the simulator's truth back: phase boundaries sample-exact, the
spasm count exact at 6 and 10 dB, the resting RMS within 10 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.cli import main
from biofeedback.dsp.settings import build_pipeline, process_array
from biofeedback.session.engine import ProtocolSession, TerminalDisplay, run_headless
from biofeedback.session.protocol import load_protocol
from biofeedback.session.runner import expand, scenario_for
from biofeedback.session.store import load_session
from biofeedback.sources.simulator import SimulatorSource

FS = 1000.0
N_SPASMS = 8
UNCUED = ("spasm", "twitch", "cramp")


def _settings(meta):
    from biofeedback.detect.threshold import DetectorSettings
    from biofeedback.dsp.settings import PipelineSettings

    data = dict(meta["settings"])
    detector = DetectorSettings(**data.pop("detector"))
    data.pop("ecg_settings")
    return PipelineSettings(**data, detector=detector)


@pytest.mark.parametrize("snr_db, seed", [(6.0, 11), (10.0, 12)])
def test_simulated_glazer_session_matches_the_truth(tmp_path, snr_db, seed):
    protocol = load_protocol("glazer")
    scenario = scenario_for(protocol, FS, spasms=N_SPASMS, spasm_snr_db=snr_db, seed=seed)
    source = SimulatorSource(scenario, FS, seed=seed, chunk_s=0.25, speed=0)
    lines = []

    class Lines:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    session = ProtocolSession(protocol, tmp_path / "glazer", meta={"user": "test"})
    outcome = run_headless(source, session, display=TerminalDisplay(Lines(), tty=False, status_lines=False))
    assert outcome.status == "complete" and outcome.exit_code == 0
    text = "".join(lines)
    assert ">> flick 1/5 (2/23): CONTRACT for 2 s" in text and "spasm" in text

    data = load_session(outcome.folder)
    assert data.status == "complete" and data.warnings == []

    # Phase boundaries: exactly the protocol's schedule, sample for sample.
    schedule = expand(protocol, FS)
    assert len(data.phases) == len(schedule.phases)
    for got, planned in zip(data.phases, schedule.phases):
        assert (got.index, got.name, got.role, got.cue) == \
            (planned.index, planned.spec.name, planned.spec.role, planned.spec.cue)
        assert (got.extra["start_sample"], got.extra["end_sample"]) == (planned.start, planned.stop)
        assert (got.start_s, got.end_s) == (planned.start / FS, planned.stop / FS)
        assert got.extra["completed"] and got.extra["paused_s"] == 0
    # The recorded cue track is the protocol's.
    cues = data.recording.cues
    for planned in schedule.phases:
        assert set(cues[planned.start:planned.stop]) == {planned.spec.cue}

    # Spasms: exactly the injected ones, each during a relax phase.
    truth = sorted((e for e in scenario.events if e.kind == "spasm"), key=lambda e: e.onset_s)
    uncued = sorted((e for e in data.events if e.kind in UNCUED), key=lambda e: e.onset_s)
    assert [e.kind for e in uncued] == ["spasm"] * N_SPASMS
    for got, true in zip(uncued, truth):
        assert abs(got.onset_s - true.onset_s) < 0.3 and abs(got.offset_s - true.offset_s) < 0.4
        assert got.extra["cue"] == "rest"
        assert schedule.phases[got.extra["phase"]].spec.cue == "relax"
    # Every cued contraction is one voluntary contraction, nothing else was detected.
    contract = [p for p in schedule.phases if p.spec.cue == "contract"]
    voluntary = sorted((e for e in data.events if e.kind == "contraction"), key=lambda e: e.onset_s)
    assert len(voluntary) == len(contract)
    for got, planned in zip(voluntary, contract):
        assert got.extra["cue"] == "contract" and abs(got.onset_s - planned.start / FS) < 0.3
    assert {e.kind for e in data.events} <= {"spasm", "contraction"}

    # Resting RMS: median envelope over the baseline phases, within 10 % of the simulator's rest RMS.
    truth_rms = scenario.rest_total_rms_uv
    rec = data.recording
    envelope, _, _ = process_array(build_pipeline(_settings(data.meta), rec.info, detect=False), rec.data, rec.info)
    settle = int(0.5 * FS)
    for phase in data.phases:
        if phase.role == "baseline":
            a, b = max(settle, phase.extra["start_sample"]), phase.extra["end_sample"]
            resting = float(np.median(envelope[0, a:b]))
            assert abs(resting / truth_rms - 1) < 0.10, (phase.name, resting, truth_rms)
    # The live calibration (the detector's baseline, saved in the session) agrees.
    level = data.meta["calibration"]["level"][0]
    assert abs(level / truth_rms - 1) < 0.10
    assert data.meta["references"]["rest_level"] == level
    assert data.meta["references"]["mvc"] > 50  # measured on the flicks (MVC 100 µV)


def test_cli_session_headless_then_replay_export_repair(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path / "home"))
    out = tmp_path / "s"
    code = main(["session", "--protocol", "glazer", "--source", "sim", "--headless", "--speed", "0", "--quiet",
                 "--duration-scale", "0.3", "--snr", "10", "--spasms", "2", "--seed", "3", "--fs", "500",
                 "--out", str(out), "--user", "anna"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"saved in {out}" in printed.out and f"biofeedback report {out}" in printed.out
    assert "session complete" in printed.out
    data = load_session(out)
    assert data.status == "complete" and data.meta["user"] == "anna"
    meta = data.meta
    assert meta["source"]["kind"] == "simulator" and len(meta["source"]["truth"]) == 11 + 2
    assert meta["protocol"]["name"] == "glazer" and meta["settings"]["preset"] == "default"
    assert meta["calibration"]["level"] and "mains_hz" in meta and meta["software"].startswith("biofeedback")
    assert sum(e.kind == "spasm" for e in data.events) == 2

    # Replay shows the cues again: the samples file carries them.
    from biofeedback.live.sources import load_recording

    replayed = load_recording(out / "samples.csv")
    assert list(replayed.cues) == list(data.recording.cues)

    assert main(["repair", str(out)]) == 0
    assert "nothing to repair" in capsys.readouterr().out

    pytest.importorskip("edfio")
    import edfio

    edf_path = tmp_path / "s.edf"
    assert main(["export", str(out), "--edf", str(edf_path)]) == 0
    edf = edfio.read_edf(edf_path)
    assert edf.signals[0].sampling_frequency == 500 and len(edf.signals[0].data) >= data.recording.n_samples
    step = (edf.signals[0].physical_range.max - edf.signals[0].physical_range.min) / 65535
    assert np.max(np.abs(edf.signals[0].data[:data.recording.n_samples] - data.recording.data[0])) <= step
    texts = [a.text for a in edf.annotations]
    assert sum(t.startswith("phase ") for t in texts) == 23
    assert sum(t.startswith("spasm") for t in texts) == 2 and "cue contract" in texts
    assert oct(edf_path.stat().st_mode & 0o777) == oct(0o600)
    assert main(["export", str(out), "--edf", str(edf_path)]) == 2  # no silent overwrite
