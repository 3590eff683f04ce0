"""Bad input: every user-fixable problem is one line, exit status 2, nothing recorded lost."""

from __future__ import annotations

import errno
import os
import sys
import threading

import numpy as np
import pytest
import serial

from biofeedback import cli
from biofeedback.acquisition.emulator import DeviceCore, PtyEmulator
from biofeedback.acquisition.serial_source import SerialSource, open_port
from biofeedback.errors import BiofeedbackError

from biofeedback.acquisition.testing import device_truth, index_offset, read_events, read_recording

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")


def run_record(capsys, *args):
    status = cli.main(["record", "--quiet", *args])
    err = capsys.readouterr().err
    return status, err


def assert_one_line(err):
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err


class NoisePty:
    """A pseudo-terminal that sends random bytes (a device at the wrong baud rate)."""

    def __init__(self, silent=False):
        self.master, slave = os.openpty()
        import tty

        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)
        self.silent = silent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        rng = np.random.default_rng(0)
        while not self.stop.wait(0.01):
            if not self.silent:
                try:
                    os.write(self.master, rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
                except OSError:
                    pass
            try:
                os.read(self.master, 1024)  # swallow the host's commands
            except OSError:
                pass

    def __enter__(self):
        os.set_blocking(self.master, False)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)


def test_wrong_port_name(tmp_path, capsys):
    status, err = run_record(capsys, "--port", "/dev/ttyNOPE9", "--protocol", "bridge", "--out",
                             str(tmp_path / "r.csv"))
    assert status == 2
    assert_one_line(err)
    assert "no serial port '/dev/ttyNOPE9'" in err and "biofeedback ports" in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    "code, expected",
    [(errno.EACCES, "sudo usermod -aG dialout $USER"), (errno.EBUSY, "in use by another program")],
)
def test_permission_denied_and_busy_say_how_to_fix(monkeypatch, code, expected):
    def refuse(url, **kwargs):
        raise serial.SerialException(code, f"could not open port {url}: [Errno {code}] {os.strerror(code)}")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    with pytest.raises(BiofeedbackError) as caught:
        open_port("/dev/ttyUSB0", 115200)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    if code == errno.EACCES:
        assert "log out and back in" in str(caught.value)


def test_unknown_url_scheme_is_a_user_error():
    with pytest.raises(BiofeedbackError, match="cannot open"):
        open_port("nosuch://thing", 9600)


def test_wrong_protocol_names_what_was_seen_and_tried(tmp_path, capsys):
    core = DeviceCore("p2", fs=250, seed=1)
    with PtyEmulator(core) as emulator:
        status, err = run_record(capsys, "--port", emulator.port, "--protocol", "cyton", "--lock-timeout", "0.6",
                                 "--out", str(tmp_path / "r.csv"))
    assert status == 2
    assert_one_line(err)
    assert "no valid 'cyton' frame" in err and "protocols tried: cyton" in err
    assert "a5 5a 02" in err and "--protocol p2" in err


def test_wrong_baud_rate_gives_the_bytes_seen(tmp_path, capsys):
    with NoisePty() as noise:
        status, err = run_record(capsys, "--port", noise.port, "--protocol", "p2", "--lock-timeout", "1.0",
                                 "--out", str(tmp_path / "r.csv"))
    assert status == 2
    assert_one_line(err)
    assert "first bytes:" in err and "check the baud rate" in err and "57600" in err


def test_silent_device(tmp_path, capsys):
    with NoisePty(silent=True) as silent:
        status, err = run_record(capsys, "--port", silent.port, "--protocol", "p2", "--lock-timeout", "1.0",
                                 "--stall-timeout", "1.0", "--out", str(tmp_path / "r.csv"))
    assert status == 2
    assert_one_line(err)
    assert "no data from" in err and "right port" in err


def test_device_that_stops_sending_keeps_what_was_recorded(tmp_path, capsys):
    core = DeviceCore("bridge", fs=250, n_channels=2, seed=2)
    out = tmp_path / "r.csv"
    with PtyEmulator(core, duration=1.0) as emulator:  # stops writing after 1 s, port stays open
        status, err = run_record(capsys, "--port", emulator.port, "--protocol", "bridge", "--duration", "30",
                                 "--stall-timeout", "0.6", "--out", str(out))
    assert status == 2
    assert_one_line(err)
    assert "stopped sending" in err and "kept" in err
    _, _, index, values = read_recording(out)
    assert index.shape[0] > 50
    np.testing.assert_array_equal(index, np.arange(index.shape[0]))
    truth = device_truth(core)
    offset = index_offset(truth, index, values)
    np.testing.assert_array_equal(values, truth[:, offset + index])
    assert index.shape[0] >= core.samples_sent - 25  # all but what was in flight


def test_device_that_never_comes_back(tmp_path, capsys):
    core = DeviceCore("cyton", fs=250, n_channels=2, seed=3)
    out = tmp_path / "r.csv"
    with PtyEmulator(core, link=str(tmp_path / "tty"), unplug_at=0.8, unplug_for=60) as emulator:
        status, err = run_record(capsys, "--port", emulator.port, "--protocol", "cyton", "--duration", "30",
                                 "--reconnect-timeout", "1.0", "--out", str(out))
    assert status == 2
    assert_one_line(err)
    assert "disconnected" in err and "did not come back within 1 s" in err
    _, _, index, _ = read_recording(out)
    assert index.shape[0] > 50
    assert [e["kind"] for e in read_events(tmp_path / "r.events.csv")] == ["disconnect"]


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("precious\n")
    status, err = run_record(capsys, "--port", "sim://?protocol=p2", "--protocol", "p2", "--out", str(out))
    assert status == 2 and "--overwrite" in err
    assert out.read_text() == "precious\n"


def test_bad_options_are_user_errors(tmp_path, capsys):
    status, err = run_record(capsys, "--port", "sim://", "--protocol", "morse", "--out", str(tmp_path / "r.csv"))
    assert status == 2 and "protocol: expected one of" in err
    status, err = run_record(capsys, "--port", "sim://", "--duration", "-1", "--out", str(tmp_path / "r.csv"))
    assert status == 2 and "--duration" in err


def test_serial_source_must_be_opened_before_use():
    source = SerialSource("sim://?protocol=p2", "p2")
    with pytest.raises(BiofeedbackError, match="not open"):
        next(iter(source))
