"""End to end over a pseudo-terminal: emulator -> ``biofeedback record`` -> CSV.

Every protocol goes through a real serial path (pty + pyserial), and the
file must hold exactly the samples the emulated device sent (or mark the
ones it did not send as gaps). The unplug test closes the emulator's side in
the middle of a recording.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

from biofeedback import cli
from biofeedback.acquisition.emulator import DeviceCore, PtyEmulator
from biofeedback.acquisition.testing import align_offset, index_offset, read_events, read_recording
from biofeedback.acquisition.testing import device_truth as _device_truth  # noqa: E501

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")


def record(args):
    return cli.main(["record", "--quiet", "--overwrite", *args])


@pytest.mark.parametrize("protocol", ["bridge", "ascii", "chords", "p2", "cyton"])
def test_record_holds_exactly_what_the_emulator_sent(protocol, tmp_path, capsys):
    core = DeviceCore(protocol, fs=250, n_channels=2, seed=4)
    out = tmp_path / "rec.csv"
    with PtyEmulator(core) as emulator:
        status = record(["--port", emulator.port, "--protocol", protocol, "--duration", "0.8",
                         "--out", str(out), "--warmup", "0.6"])
    assert status == 0, capsys.readouterr().err
    comments, header, index, values = read_recording(out)
    assert comments["sampling_rate_hz"] == "250"
    assert header[0] == "sample" and len(header) == values.shape[0] + 1
    np.testing.assert_array_equal(index, np.arange(200))  # 0.8 s at 250 Hz, no gap
    truth = _device_truth(core)
    offset = align_offset(truth, values)
    assert offset is not None
    if not core.device.free_running:
        assert offset == core.device.stream_origin  # sample 0 is the first one after START
    np.testing.assert_allclose(values, truth[:, offset + index], rtol=1e-9, atol=1e-9)
    assert read_events(tmp_path / "rec.events.csv") == []


@pytest.mark.parametrize("protocol", ["bridge", "chords", "p2", "cyton"])
def test_dropped_frames_are_marked_as_gaps(protocol, tmp_path, capsys):
    core = DeviceCore(protocol, fs=250, n_channels=2, seed=5, drop_rate=0.08)
    out = tmp_path / "rec.csv"
    with PtyEmulator(core) as emulator:
        status = record(["--port", emulator.port, "--protocol", protocol, "--duration", "0.8", "--out", str(out),
                         "--fs", "250"])
    assert status == 0, capsys.readouterr().err
    _, _, index, values = read_recording(out)
    truth = _device_truth(core)
    offset = index_offset(truth, index, values)
    assert offset is not None
    np.testing.assert_allclose(values, truth[:, offset + index], rtol=1e-9, atol=1e-9)
    events = read_events(tmp_path / "rec.events.csv")
    gaps = [e for e in events if e["kind"] == "gap"]
    missing = int(index[-1]) + 1 - index.shape[0]
    assert core.frames_dropped > 0 and missing > 0
    assert sum(int(e["n_samples"]) for e in gaps) == missing
    for event in gaps:  # each gap sits exactly where the indices jump
        start = round(float(event["onset_s"]) * 250)
        assert start in set(index + 1) and start + int(event["n_samples"]) in set(index)


def test_corrupted_bridge_frames_are_rejected_by_the_crc(tmp_path, capsys):
    core = DeviceCore("bridge", fs=500, n_channels=3, seed=6, corrupt_rate=0.1)
    out = tmp_path / "rec.csv"
    with PtyEmulator(core) as emulator:
        status = record(["--port", emulator.port, "--protocol", "bridge", "--duration", "0.8", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    _, _, index, values = read_recording(out)
    truth = _device_truth(core)
    offset = index_offset(truth, index, values)
    assert offset == core.device.stream_origin
    np.testing.assert_array_equal(values, truth[:, offset + index])  # not one damaged sample kept
    gaps = [e for e in read_events(tmp_path / "rec.events.csv") if e["kind"] == "gap"]
    assert core.frames_corrupted > 0 and gaps
    assert sum(int(e["n_samples"]) for e in gaps) == int(index[-1]) + 1 - index.shape[0]


def test_unplug_keeps_every_sample_and_recording_resumes(tmp_path, capsys):
    core = DeviceCore("bridge", fs=250, n_channels=2, seed=7)
    link = tmp_path / "emg-tty"
    out = tmp_path / "rec.csv"
    emulator = PtyEmulator(core, link=str(link), unplug_at=1.0, unplug_for=0.6)
    sent_before_unplug = {}

    def watch():
        emulator.unplugged_once.wait(20)
        sent_before_unplug["samples"] = core.samples_sent

    watcher = threading.Thread(target=watch, daemon=True)
    with emulator:
        watcher.start()
        status = record(["--port", str(link), "--protocol", "bridge", "--duration", "3.0", "--out", str(out),
                         "--reconnect-timeout", "20"])
    watcher.join(5)
    assert status == 0, capsys.readouterr().err
    assert emulator.replugged.is_set()
    _, _, index, values = read_recording(out)
    events = read_events(tmp_path / "rec.events.csv")
    kinds = [e["kind"] for e in events]
    assert kinds == ["disconnect", "gap", "reconnect"]
    disconnect_at = round(float(events[0]["onset_s"]) * 250)
    before = index < disconnect_at
    # Nothing received before the unplug is lost: contiguous from 0, equal to the truth,
    # and up to what the device had sent (a few frames may die in the closed pty's buffer).
    truth = _device_truth(core)
    origin = align_offset(truth, values[:, before])
    np.testing.assert_array_equal(index[before], np.arange(disconnect_at))
    np.testing.assert_array_equal(values[:, before], truth[:, origin + index[before]])
    assert disconnect_at >= sent_before_unplug["samples"] - 0.1 * 250
    # After the reconnect the samples are the device's again, placed by the clock.
    after = ~before
    assert after.sum() > 0 and index[-1] == 749
    restart = align_offset(truth, values[:, after])
    assert restart is not None
    np.testing.assert_array_equal(values[:, after], truth[:, restart + index[after] - index[after][0]])
    gap = events[1]
    assert int(gap["n_samples"]) == index[after][0] - disconnect_at
    true_missing = restart - (origin + disconnect_at)
    assert abs(int(gap["n_samples"]) - true_missing) <= 0.1 * 250  # the clock's estimate, within 0.1 s


def test_emulate_command_prints_a_port_that_records(tmp_path):
    import subprocess

    link = tmp_path / "tty"
    process = subprocess.Popen(
        [sys.executable, "-m", "biofeedback", "emulate", "--protocol", "p2", "--duration", "20", "--link", str(link)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.strip() == f"port: {link}"
        out = tmp_path / "rec.csv"
        status = record(["--port", str(link), "--protocol", "p2", "--duration", "0.5", "--out", str(out),
                         "--fs", "250"])
        assert status == 0
        _, _, index, values = read_recording(out)
        assert index.tolist() == list(range(125)) and values.shape == (6, 125)
    finally:
        process.terminate()
        process.wait(10)
    assert not os.path.exists(link) or os.path.islink(link)


def test_emulator_streams_nothing_while_no_host_listens():
    core = DeviceCore("p2", fs=250, seed=1)
    with PtyEmulator(core) as emulator:
        time.sleep(0.3)
        assert emulator.plugged.is_set()
    assert core.samples_sent == 0 and core.clock_index > 0
