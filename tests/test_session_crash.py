"""Must-show: a recording process killed with SIGKILL at random moments, many times.

Each child records a simulated Glazer session (the simulator driven by the
protocol) and reports, through a pipe, how many samples each flush handed
to the operating system. It is killed with SIGKILL at a random moment
(seeded; paced and as-fast-as-possible runs). Every session folder left
behind must read back with every sample up to the last reported flush,
contiguous sample indices, the simulator's exact values and the protocol's
cues, no corrupted row, and ``repair`` must close it. The children are
forked from the test process (no start-up cost), so 15 kills stay cheap;
one more test kills the real command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from biofeedback.session.protocol import load_protocol
from biofeedback.session.runner import ProtocolRunner, expand, scenario_for
from biofeedback.session.store import load_session, repair_session
from biofeedback.sources.simulator import SimulatorSource, simulate

FS = 500.0
RUNS = 15
PARALLEL = 3
KINDS = {"contraction", "spasm", "twitch", "cramp", "failure_to_relax", "elevated_tone"}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def _record(folder, seed, speed, fd):
    """Child process body: record a simulated Glazer session, report flushes on ``fd``; never returns."""
    try:
        from biofeedback.session.engine import ProtocolSession, run_headless

        protocol = load_protocol("glazer")
        scenario = scenario_for(protocol, FS, spasms=4, spasm_snr_db=10.0, seed=seed)
        source = SimulatorSource(scenario, FS, seed=seed, chunk_s=0.05, speed=speed)

        def flushed(n):
            os.write(fd, f"F {n}\n".encode())

        session = ProtocolSession(protocol, folder, writer_options={"flush_interval_s": 0.05, "on_flush": flushed})
        run_headless(source, session)
        os.write(fd, b"E\n")
    except BaseException as exc:  # noqa: BLE001 - report, then leave without running pytest's exit code
        os.write(fd, f"X {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(0)


class Child:
    def __init__(self, folder, seed, speed, delay):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_fd)
            _record(folder, seed, speed, write_fd)
        os.close(write_fd)
        self.pid, self.fd, self.delay, self.t0 = pid, read_fd, delay, time.monotonic()
        self.lines: list[str] = []

    def kill(self):
        time.sleep(max(0.0, self.t0 + self.delay - time.monotonic()))
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        chunks = []
        while True:
            part = os.read(self.fd, 65536)
            if not part:
                break
            chunks.append(part)
        os.close(self.fd)
        self.lines = b"".join(chunks).decode().splitlines()
        errors = [line for line in self.lines if line.startswith("X ")]
        assert not errors, errors
        return self

    @property
    def last_flush(self) -> int:
        counts = [int(line.split()[1]) for line in self.lines if line.startswith("F ")]
        return counts[-1] if counts else 0


def _check(folder: Path, flushed: int, truth: np.ndarray, runner: ProtocolRunner, completed: bool):
    if not folder.exists():
        assert flushed == 0, "samples were flushed but no session folder is there"
        return "not started"
    data = load_session(folder)
    n = data.recording.n_samples
    assert n >= flushed, f"{folder}: {n} samples read, {flushed} were flushed"
    assert data.present.all(), "sample indices are not contiguous"
    assert np.allclose(data.recording.data, truth[:, :n], rtol=1e-9, atol=1e-9), "a sample differs"
    assert np.array_equal(data.recording.cues, runner.cues_for(0, n)), "a cue differs"
    for w in data.warnings:
        assert "incomplete last line" in w or "not closed" in w, w
    plan = runner.schedule.phases
    for got in data.phases:
        planned = plan[got.index]
        assert (got.extra["start_sample"], got.extra["end_sample"]) == (planned.start, planned.stop)
    assert [p.index for p in data.phases] == list(range(len(data.phases)))
    assert {e.kind for e in data.events} <= KINDS | {"gap"}
    if completed:
        assert data.status == "complete" and n == runner.schedule.n_samples
    repaired, actions = repair_session(folder)
    assert repaired.warnings == [] and repaired.recording.n_samples == n
    assert np.allclose(repaired.recording.data, truth[:, :n], rtol=1e-9, atol=1e-9)
    if data.status == "recording":
        assert repaired.status == "repaired" and actions
        ended = [p for p in plan if p.stop <= n]
        got = repaired.phases
        assert [p.index for p in got[:len(ended)]] == [p.index for p in ended]
        if n < runner.schedule.n_samples and len(got) > len(ended):
            cut = got[len(ended)]
            assert cut.extra["completed"] is False and cut.extra["end_sample"] == n
    assert repair_session(folder)[1] == []
    return data.status


def test_sigkill_at_random_moments_loses_nothing_flushed(tmp_path):
    protocol = load_protocol("glazer")
    rng = np.random.default_rng(20261121)
    runner = ProtocolRunner(protocol, FS)
    assert expand(protocol, FS).n_samples == 170_000
    plans = []
    for k in range(RUNS):
        seed = int(rng.integers(0, 1000))
        speed = float(rng.choice([0.0, 60.0, 150.0, 400.0]))
        delay = float(rng.uniform(0.02, 1.0))
        plans.append((tmp_path / f"run{k}", seed, speed, delay))
    statuses = []
    for batch in range(0, RUNS, PARALLEL):
        children = [(Child(*plan), plan) for plan in plans[batch:batch + PARALLEL]]
        for child, (folder, seed, speed, delay) in children:
            child.kill()
            scenario = scenario_for(protocol, FS, spasms=4, spasm_snr_db=10.0, seed=seed)
            truth = simulate(scenario, FS, seed=seed).data
            statuses.append(_check(folder, child.last_flush, truth, runner, "E" in child.lines))
    # Most kills must land while recording, not before or after.
    assert statuses.count("recording") >= RUNS // 2, statuses


def test_sigkill_of_the_command(tmp_path):
    """The real command, killed while it records, leaves a readable session that repair closes."""
    out = tmp_path / "cli"
    env = dict(os.environ, BIOFEEDBACK_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "biofeedback", "session", "--protocol", "downtraining", "--source", "sim",
           "--headless", "--quiet", "--speed", "100", "--fs", "250", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert "recording in" in line, line + proc.stderr.read()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out / "samples.csv").is_file():
        time.sleep(0.05)
    time.sleep(0.8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    data = load_session(out)
    assert data.status == "recording" and data.present.all() and data.recording.n_samples > 0
    repaired, actions = repair_session(out)
    assert repaired.status == "repaired" and repaired.warnings == []
    assert repaired.phases and repaired.phases[-1].extra["end_sample"] <= repaired.recording.n_samples
    assert any("ends at" in a for a in actions)
