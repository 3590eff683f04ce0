"""A serial device as a :class:`~biofeedback.sources.base.Source`.

``with SerialSource("/dev/ttyACM0", "bridge") as source:`` opens the port
(through :func:`serial.serial_for_url`, so ``loop://`` and our ``sim://``
URLs work as well as real ports), identifies the device when the protocol
has a handshake, starts the stream, waits for the parser to lock, measures
the rate when nobody states it, and then yields
:class:`~biofeedback.core.types.Chunk` objects in µV or ADC counts.

Gaps (frames the device's counter says were lost) come as events of kind
``"gap"`` with ``extra["n_samples"]`` on the chunk after them. An unplug
yields an empty chunk carrying a ``"disconnect"`` event; when the device
returns the stream goes on (``"reconnect"`` event, and a gap whose size the
fitted clock estimates). Problems a user can fix raise a one-line
:class:`~biofeedback.errors.BiofeedbackError`.
"""

from __future__ import annotations

import errno
import math
import os
import queue
import time

import numpy as np

from biofeedback.acquisition.clock import RateEstimator, decide_rate
from biofeedback.acquisition.protocols import PROTOCOLS, get_protocol, recognise
from biofeedback.acquisition.reader import ReaderThread, Samples, Status, concat_samples, drain
from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.errors import BiofeedbackError
from biofeedback.sources.base import Source

URL_HANDLER_PACKAGE = "biofeedback.acquisition.urlhandler"


def register_url_handler() -> None:
    """Make ``sim://`` URLs known to :func:`serial.serial_for_url`."""
    import serial

    if URL_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLER_PACKAGE)


def available_port_names() -> list:
    """Device names of the serial ports the system lists."""
    try:
        from serial.tools import list_ports

        return sorted(p.device for p in list_ports.comports())
    except Exception:  # noqa: BLE001 - listing is only a hint in a message
        return []


def port_error(url: str, exc: BaseException) -> BiofeedbackError:
    """A one-line error that says what to do about a port that will not open."""
    code = getattr(exc, "errno", None)
    text = " ".join(str(exc).split())
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        seen = ", ".join(available_port_names()) or "none"
        return BiofeedbackError(
            f"no serial port {url!r} (ports seen: {seen}); list them with 'biofeedback ports'"
        )
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text or "Access is denied" in text:
        return BiofeedbackError(
            f"permission denied on {url}: on Linux add yourself to the 'dialout' group "
            "(sudo usermod -aG dialout $USER), then log out and back in"
        )
    if code == errno.EBUSY or "exclusively lock" in text or "busy" in text.lower():
        return BiofeedbackError(
            f"{url} is in use by another program (an Arduino serial monitor or another recorder?); close it first"
        )
    return BiofeedbackError(f"cannot open {url}: {text}")


def open_port(url: str, baud: int, timeout: float = 0.1):
    """Open a port or URL with pyserial; user errors become :class:`BiofeedbackError`.

    Parameters
    ----------
    url : str
        Device path (``/dev/ttyUSB0``, ``COM3``) or pyserial URL
        (``loop://``, ``sim://?protocol=cyton``).
    baud : int
        Baud rate.
    timeout : float
        Read timeout in seconds (short, so reading threads stay responsive).
    """
    import serial

    register_url_handler()
    kwargs = {"baudrate": int(baud), "timeout": timeout, "write_timeout": 2.0}
    if "://" not in url and os.name == "posix":
        kwargs["exclusive"] = True  # two programs reading one port each get half the bytes
    try:
        return serial.serial_for_url(url, **kwargs)
    except serial.SerialException as exc:
        raise port_error(url, exc) from None
    except OSError as exc:
        raise port_error(url, exc) from None
    except ValueError as exc:
        raise BiofeedbackError(f"cannot open {url!r}: {' '.join(str(exc).split())}") from None


class SerialSource(Source):
    """Samples from a serial device.

    Parameters
    ----------
    port : str
        Device path, pyserial URL, or ``"auto"`` (the single recognised
        device, see :func:`biofeedback.acquisition.discovery.auto_port`).
    protocol : str
        ``"bridge"``, ``"ascii"``, ``"chords"``, ``"p2"``, ``"cyton"`` or
        ``"auto"`` (identify by handshake or by the frames).
    baud : int, optional
        Baud rate (default: the protocol's).
    fs : float, optional
        Sampling rate in Hz to state (default: the device's, the board
        table's, or measured from arrival).
    n_channels : int, optional
        Channels (bridge: asks the device; p2: keeps the first N; ascii,
        chords: expected count).
    board : str, optional
        Chords board name when the device does not answer ``WHORU``.
    gain : float, optional
        OpenBCI channel gain (default 24).
    lock_timeout : float
        Seconds to wait for the first valid frames.
    stall_timeout : float
        Seconds without a byte before the device is declared silent.
    reconnect : bool
        Reopen the port after an unplug.
    reconnect_timeout : float
        Seconds to wait for the device to come back.
    warmup_s : float
        Seconds of arrival times used to measure an unknown rate.
    queue_size : int
        Capacity of the reader's queue, in reads.
    """

    def __init__(
        self,
        port: str,
        protocol: str = "auto",
        *,
        baud: int | None = None,
        fs: float | None = None,
        n_channels: int | None = None,
        board: str | None = None,
        gain: float | None = None,
        lock_timeout: float = 5.0,
        stall_timeout: float = 5.0,
        reconnect: bool = True,
        reconnect_timeout: float = 30.0,
        warmup_s: float = 3.0,
        queue_size: int = 1024,
    ):
        self.port_name = port
        self.protocol_name = protocol
        self.baud = baud
        self.user_fs = fs
        self.user_channels = n_channels
        self.board = board
        self.gain = gain
        self.lock_timeout = float(lock_timeout)
        self.stall_timeout = float(stall_timeout)
        self.reconnect = reconnect
        self.reconnect_timeout = float(reconnect_timeout)
        self.warmup_s = float(warmup_s)
        self.queue_size = int(queue_size)
        self.info = None
        self.config = None
        self.protocol = None
        self.parser = None
        self.estimator = None
        self._port = None
        self._reader = None
        self._queue = None
        self._early = []
        self._closed = True
        self._reconnected = False
        self.events_seen = []

    # -- opening ---------------------------------------------------------------------

    def open(self) -> None:
        self._closed = False
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self):
        port_name, protocol_name = self.port_name, (self.protocol_name or "auto").lower()
        identified = None
        if port_name == "auto" or protocol_name == "auto":
            from biofeedback.acquisition.discovery import auto_port, probe_port

            if port_name == "auto":
                found = auto_port(None if protocol_name == "auto" else [protocol_name], baud=self.baud)
            else:
                found = probe_port(port_name, None, baud=self.baud)
                if found is None:
                    raise BiofeedbackError(
                        f"no known device recognised on {port_name} (tried {', '.join(PROTOCOLS)}); "
                        "give --protocol and check the baud rate"
                    )
            port_name, protocol_name, identified, found_baud = found.port, found.protocol, found.config, found.baud
            self.baud = self.baud or found_baud
        self.port_name = port_name
        self.protocol = get_protocol(protocol_name)
        self.baud = int(self.baud or self.protocol.default_baud)
        self._port = open_port(port_name, self.baud)
        self.config = self._handshake(self._port, identified)
        self.parser = self.protocol.make_parser(self.config)
        self.parser.fs_hint = self.config.fs or self.protocol.nominal_fs or 250.0
        self.estimator = RateEstimator()
        self._queue = queue.Queue(maxsize=self.queue_size)
        self._reader = ReaderThread(
            self._port,
            self.parser,
            self._queue,
            reconnect=self._reopen if self.reconnect else None,
            estimator=self.estimator,
            nominal_fs=self.config.fs or self.protocol.nominal_fs,
            stall_timeout=self.stall_timeout,
            frames_timeout=self.lock_timeout,
            reconnect_timeout=self.reconnect_timeout,
        )
        self._reader.start()
        self._wait_for_lock()
        fs, origin = self._decide_rate()
        self.parser.fs_hint = fs
        self._reader.nominal_fs = fs
        n_channels = self.parser.n_channels
        self.info = StreamInfo(
            fs=fs,
            ch_names=tuple(f"ch{i + 1}" for i in range(n_channels)),
            units=self.parser.units,
            source=f"{port_name} ({self.protocol.name})",
            extra={
                "protocol": self.protocol.name,
                "port": port_name,
                "baud": self.baud,
                "board": self.config.board,
                "device": self.config.description,
                "fs_origin": origin,
                "nominal_fs": self.config.fs or self.protocol.nominal_fs,
                "resolution_bits": self.config.resolution_bits,
                "gain": self.config.gain,
            },
        )

    def _handshake(self, port, identified):
        protocol = self.protocol
        config = protocol.default_config(self.user_channels, self.user_fs, self.board, self.gain)
        if not protocol.free_running:
            answer = identified if identified is not None else protocol.identify(port, timeout=1.0)
            if answer is not None:
                config = answer
                if self.gain and protocol.name == "cyton":
                    config = config.but(gain=float(self.gain))
                if protocol.name == "bridge":
                    config = protocol.configure(port, config, fs=self.user_fs, n_channels=self.user_channels)
                elif self.user_fs:
                    config = config.but(fs=float(self.user_fs), fs_origin="user")
            protocol.start(port)
        return config

    def _reopen(self):
        """Reopen after an unplug (called by the reader thread)."""
        port = open_port(self.port_name, self.baud)
        try:
            if not self.protocol.free_running:
                if self.protocol.name == "bridge" and (self.user_fs or self.user_channels):
                    self.protocol.stop(port)
                    self.protocol.configure(port, self.config, fs=self.user_fs, n_channels=self.user_channels)
                self.protocol.start(port)
            else:
                port.reset_input_buffer()
        except Exception:
            port.close()
            raise
        self._port = port
        return port

    def _wait_for_lock(self):
        deadline = time.monotonic() + self.lock_timeout + 2.0
        while time.monotonic() < deadline:
            items = drain(self._queue, 0.1)
            for item in items:
                if isinstance(item, Status) and item.kind in ("stall", "no_frames", "gave_up"):
                    raise self._status_error(item, before_lock=True)
            self._early.extend(items)
            if any(isinstance(i, Samples) and i.result.n_samples for i in self._early):
                return
        raise self._status_error(Status("no_frames", time.monotonic(), 0), before_lock=True)

    def _decide_rate(self):
        config = self.config
        if config.fs and config.fs_origin != "measure":
            return float(config.fs), config.fs_origin
        # No stated rate: measure it from arrival while samples accumulate.
        deadline = time.monotonic() + self.warmup_s + max(self.lock_timeout, 3.0)
        while time.monotonic() < deadline:
            if self.estimator.span_s >= self.warmup_s and self.estimator.fs:
                break
            items = drain(self._queue, 0.1)
            for item in items:
                if isinstance(item, Status) and item.kind in ("stall", "no_frames", "gave_up"):
                    raise self._status_error(item, before_lock=False)
            self._early.extend(items)
        measured = self.estimator.fs
        if measured is None:
            fallback = config.fs or self.protocol.nominal_fs
            if fallback is None:
                raise BiofeedbackError(
                    f"could not measure the sampling rate of {self.port_name} in {self.warmup_s:g} s; give --fs"
                )
            return float(fallback), "protocol (rate not measured)"
        fs, snapped = decide_rate(measured, self.protocol.rate_candidates, self.protocol.snap_tolerance)
        how = f"measured {measured:.2f} Hz from arrival"
        return fs, (how + f", snapped to {fs:g} Hz" if snapped else how)

    # -- errors ------------------------------------------------------------------------

    def _status_error(self, status: Status, before_lock: bool) -> BiofeedbackError:
        where = f"{self.port_name} at {self.baud} baud"
        name = self.protocol.name
        kept = "" if before_lock else "; the samples received so far are kept"
        if status.kind == "stall" or (status.kind == "no_frames" and self.parser.stats.bytes_in == 0):
            hint = (
                "is the device powered and its sketch running, and is this the right port?"
                if before_lock
                else "the device stopped sending (reset, crashed, or unplugged without an error)"
            )
            return BiofeedbackError(f"no data from {where} for {self.stall_timeout:g} s: {hint}{kept}")
        if status.kind == "no_frames":
            seen = (status.recent_bytes if not before_lock and status.recent_bytes else self.parser.stats.first_bytes)
            hexed = seen[:16].hex(" ") if seen else "(none)"
            looks = [n for n, _ in recognise(self.parser.stats.first_bytes) if n != name] if before_lock else []
            advice = (
                f"the bytes look like '{looks[0]}' frames: use --protocol {looks[0]}"
                if looks
                else f"check the baud rate (protocol '{name}' uses {self.protocol.default_baud}) and the protocol"
            )
            return BiofeedbackError(
                f"no valid '{name}' frame in {self.lock_timeout:g} s of bytes from {where} "
                f"(first bytes: {hexed}; protocols tried: {name}); {advice}{kept}"
            )
        if status.kind == "gave_up":
            return BiofeedbackError(f"{self.port_name} was disconnected and {status.detail}{kept}")
        return BiofeedbackError(f"{self.port_name}: {status.kind} ({status.detail}){kept}")

    # -- iteration ------------------------------------------------------------------------

    def _chunks(self):
        if self.info is None:
            raise BiofeedbackError("the serial source is not open (use it in a 'with' block)")
        while not self._closed:
            if self._early:
                items, self._early = self._early, []
            else:
                items = drain(self._queue, 0.25)
            run = []
            for item in items:
                if isinstance(item, Samples):
                    run.append(item)
                    continue
                if run:
                    yield from self._chunks_of(concat_samples(run))
                    run = []
                yield from self._status_chunk(item)
            if run:
                yield from self._chunks_of(concat_samples(run))

    def _event(self, kind, start, stop, **extra) -> Event:
        fs = self.info.fs
        return Event(kind, "", start / fs, stop / fs, math.nan, extra)

    def _chunks_of(self, result):
        gaps_by_stop = {}
        for gap in result.gaps:
            kind = "gap"
            gaps_by_stop.setdefault(gap.stop, []).append(
                self._event(kind, gap.start, gap.stop, n_samples=gap.n_samples, reason=gap.reason)
            )
        first = True
        for start, data in result.segments():
            events = gaps_by_stop.pop(start, [])
            if first and self._reconnected:
                events.append(self._event("reconnect", start, start))
                self._reconnected = False
            first = False
            if data.shape[0] != self.info.n_channels:
                continue  # cannot happen once locked: the geometry is fixed
            chunk = Chunk(data, start, self.info, tuple(events))
            self.events_seen.extend(events)
            yield chunk
        leftover = [e for events in gaps_by_stop.values() for e in events]
        if leftover:  # gaps whose following samples were not in this batch
            self.events_seen.extend(leftover)
            yield Chunk(np.zeros((self.info.n_channels, 0)), self.parser.next_index, self.info, tuple(leftover))

    def _status_chunk(self, status: Status):
        if status.kind in ("stall", "no_frames", "gave_up"):
            raise self._status_error(status, before_lock=False)
        if status.kind == "reconnect":
            self._reconnected = True
            return
        if status.kind == "disconnect":
            event = self._event("disconnect", status.index, status.index, detail=status.detail)
        elif status.kind == "overrun":
            event = self._event("overrun", status.index, status.index + status.n_samples, n_samples=status.n_samples)
        else:
            return
        self.events_seen.append(event)
        yield Chunk(np.zeros((self.info.n_channels, 0)), status.index, self.info, (event,))

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        if self._closed and self._reader is None and self._port is None:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        port = reader.port if reader is not None else self._port
        self._port = None
        if port is not None:
            try:
                if self.protocol is not None and not self.protocol.free_running and port.is_open:
                    self.protocol.stop(port)
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass
            try:
                port.close()
            except Exception:  # noqa: BLE001
                pass

    # -- summary ---------------------------------------------------------------------------

    @property
    def measured_fs(self) -> float | None:
        """Rate fitted to arrival times so far, Hz."""
        return self.estimator.fs if self.estimator is not None else None

    def summary(self) -> dict:
        """Counts for a closing report."""
        stats = self.parser.stats if self.parser is not None else None
        return {
            "samples": stats.samples if stats else 0,
            "gaps": sum(1 for e in self.events_seen if e.kind == "gap"),
            "lost_samples": sum(e.extra.get("n_samples", 0) for e in self.events_seen if e.kind == "gap"),
            "resyncs": stats.resyncs if stats else 0,
            "duplicates": stats.duplicates if stats else 0,
            "bytes_skipped": stats.bytes_skipped if stats else 0,
            "disconnects": sum(1 for e in self.events_seen if e.kind == "disconnect"),
            "overrun_samples": sum(e.extra.get("n_samples", 0) for e in self.events_seen if e.kind == "overrun"),
            "measured_fs": self.measured_fs,
        }
