"""Port listing, probing (by handshake or by frames) and --port auto."""

from __future__ import annotations

import sys

import pytest

from biofeedback import cli
from biofeedback.acquisition import discovery
from biofeedback.acquisition.discovery import PortInfo, auto_port, probe_port
from biofeedback.acquisition.emulator import DeviceCore, PtyEmulator
from biofeedback.acquisition.testing import read_recording
from biofeedback.errors import BiofeedbackError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")


@pytest.fixture(autouse=True)
def short_listening(monkeypatch):
    monkeypatch.setattr(discovery, "LISTEN_S", 0.4)


@pytest.mark.parametrize(
    "protocol, how",
    [("bridge", "handshake"), ("chords", "handshake"), ("cyton", "handshake"), ("p2", "frames"), ("ascii", "frames")],
)
def test_probe_identifies_each_device(protocol, how):
    with PtyEmulator(DeviceCore(protocol, fs=250, seed=1)) as emulator:
        found = probe_port(emulator.port)
    assert found is not None and (found.protocol, found.how) == (protocol, how)
    if protocol == "chords":
        assert found.config.board == "UNO-R3" and found.config.fs == 250
    if protocol == "bridge":
        assert found.config.fs == 250 and found.config.n_channels == 2


def fake_ports(monkeypatch, devices):
    ports = [PortInfo(d, "USB serial", 0x2341, 0x0043) for d in devices] + [PortInfo("/dev/ttyS0", "n/a")]
    monkeypatch.setattr(discovery, "list_ports", lambda: ports)


def test_auto_picks_the_single_recognised_device_and_records(monkeypatch, tmp_path, capsys):
    with PtyEmulator(DeviceCore("cyton", seed=2)) as emulator:
        fake_ports(monkeypatch, [emulator.port])
        found = auto_port()
        assert (found.port, found.protocol) == (emulator.port, "cyton")
        out = tmp_path / "r.csv"
        status = cli.main(["record", "--quiet", "--port", "auto", "--duration", "0.4", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    comments, columns, index, _ = read_recording(out)
    assert comments["protocol"] == "cyton" and len(columns) == 9 and index.shape[0] == 100


def test_auto_with_none_or_several_devices_says_what_it_saw(monkeypatch):
    with PtyEmulator(DeviceCore("p2", seed=3)) as a, PtyEmulator(DeviceCore("chords", seed=3)) as b:
        fake_ports(monkeypatch, [a.port, b.port])
        with pytest.raises(BiofeedbackError, match="several devices recognised") as caught:
            auto_port()
        assert f"{a.port} (p2)" in str(caught.value) and f"{b.port} (chords)" in str(caught.value)
    fake_ports(monkeypatch, ["/dev/ttyNOPE0"])
    with pytest.raises(BiofeedbackError) as caught:
        auto_port(protocols=["p2"])
    message = str(caught.value)
    assert "no recognised device" in message and "/dev/ttyNOPE0 [2341:0043 Arduino]" in message
    assert "/dev/ttyS0" in message and "protocols tried: p2" in message


def test_protocol_auto_on_a_given_port(tmp_path, capsys):
    with PtyEmulator(DeviceCore("chords", fs=500, seed=4)) as emulator:
        out = tmp_path / "r.csv"
        status = cli.main(["record", "--quiet", "--port", emulator.port, "--protocol", "auto",
                           "--duration", "0.3", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    comments, _, index, values = read_recording(out)
    assert comments["sampling_rate_hz"] == "500" and comments["protocol"] == "chords"
    assert values.shape == (6, 150)


def test_ports_command_lists_usb_ids_and_probes(monkeypatch, capsys):
    fake_ports(monkeypatch, ["/dev/ttyACM7"])
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "/dev/ttyACM7" in out and "2341:0043" in out and "(Arduino)" in out and "/dev/ttyS0" in out
    monkeypatch.setattr(discovery, "list_ports", lambda: [])
    assert cli.main(["ports", "--port", "sim://?protocol=bridge", "--port", "/dev/ttyNOPE1"]) == 0
    out = capsys.readouterr().out
    assert "sim://?protocol=bridge: bridge at 115200 baud (by handshake" in out
    assert "/dev/ttyNOPE1: no serial port" in out
