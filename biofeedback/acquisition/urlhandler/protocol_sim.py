"""``sim://`` — an emulated device opened like a serial port, without any pty.

``serial.serial_for_url("sim://?protocol=cyton&fs=250&channels=2")`` gives
a port whose reads return the frames an emulated device produces at its
real pace (see :class:`biofeedback.acquisition.emulator.DeviceCore`) and
whose writes are the device's command input.

Query parameters
----------------
protocol : bridge | ascii | chords | p2 | cyton   (default bridge)
fs : sampling rate in Hz            channels : channels with signal
seed : signal and fault seed        board : Chords board name
gain : OpenBCI gain                 corrupt : frame corruption probability
drop : frame drop probability       speed : clock speed factor (default 1)
fail_after : seconds after opening at which reads fail once, like an unplug
             (only the first port opened with this exact URL fails)
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlparse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

_FAILED_ONCE = set()
_FAILED_LOCK = threading.Lock()


class Serial(SerialBase):
    """Serial port interface to an emulated device."""

    def open(self):
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        options = self._parse(self.portstr)
        from biofeedback.acquisition.emulator import DeviceCore

        try:
            self._core = DeviceCore(
                options.get("protocol", "bridge"),
                fs=float(options["fs"]) if "fs" in options else None,
                n_channels=int(options.get("channels", 2)),
                seed=int(options.get("seed", 0)),
                corrupt_rate=float(options.get("corrupt", 0.0)),
                drop_rate=float(options.get("drop", 0.0)),
                board=options.get("board"),
                gain=float(options["gain"]) if "gain" in options else None,
            )
        except Exception as exc:  # noqa: BLE001 - report as a port problem
            raise SerialException(f"cannot open {self.portstr}: {exc}") from None
        self._speed = float(options.get("speed", 1.0))
        self._fail_after = float(options["fail_after"]) if "fail_after" in options else None
        with _FAILED_LOCK:
            if self._fail_after is not None and self.portstr in _FAILED_ONCE:
                self._fail_after = None
        self._buffer = bytearray(self._core.power_on())
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self.is_open = True

    @staticmethod
    def _parse(url):
        parts = urlparse(url)
        if parts.scheme != "sim":
            raise SerialException(f"expected a URL starting with sim://, got {url!r}")
        return {key: values[-1] for key, values in parse_qs(parts.query).items()}

    def from_url(self, url):  # pyserial API
        self._parse(url)
        return url

    def close(self):
        self.is_open = False

    def _reconfigure_port(self):
        pass  # baud rate and framing mean nothing here

    def _check_fail(self):
        if self._fail_after is not None and time.monotonic() - self._t0 >= self._fail_after:
            with _FAILED_LOCK:
                _FAILED_ONCE.add(self.portstr)
            self._fail_after = None
            self.is_open = False
            raise SerialException("read failed: device disconnected (simulated unplug)")

    def _pump(self):
        due = int((time.monotonic() - self._t0) * self._core.fs * self._speed)
        data = self._core.advance(due)
        if data:
            with self._lock:
                self._buffer += data

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        self._pump()
        return len(self._buffer)

    def read(self, size=1):
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            self._check_fail()
            self._pump()
            with self._lock:
                if len(self._buffer) >= size or (deadline is not None and time.monotonic() >= deadline):
                    data = bytes(self._buffer[:size])
                    del self._buffer[:size]
                    return data
            time.sleep(0.002)

    def write(self, data):
        if not self.is_open:
            raise PortNotOpenError()
        reply = self._core.handle_input(bytes(data))
        if reply:
            with self._lock:
                self._buffer += reply
        return len(data)

    def reset_input_buffer(self):
        if not self.is_open:
            raise PortNotOpenError()
        self._pump()
        with self._lock:
            self._buffer.clear()

    def reset_output_buffer(self):
        pass

    def flush(self):
        pass

    @property
    def out_waiting(self):
        return 0

    @property
    def core(self):
        """The emulated device (for tests)."""
        return self._core
