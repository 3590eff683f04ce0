"""Device emulator: simulated EMG sent in a real protocol over a pseudo-terminal.

:class:`DeviceCore` is the device: a sample clock that runs from power-on,
the protocol's :class:`~biofeedback.acquisition.protocols.base.EmulatedDevice`
(commands, frames), a deterministic signal (the project's simulator), and
the faults to inject (corrupted bytes, dropped frames).

:class:`PtyEmulator` puts a core behind a pseudo-terminal and writes its
frames at the real pace from a thread, so a program opens the slave side as
it would open ``/dev/ttyACM0``. Design of the unplug:

* the emulator closes the master side: the host's next read fails with an
  I/O error, exactly as when a USB cable is pulled;
* the device keeps its clock running while unplugged (like a board on its
  own power, e.g. the Cyton behind its radio dongle), so the samples of that
  time are lost and the host must place the next ones by its clock;
* when the device "returns", a new pseudo-terminal is opened. Its path
  differs (``/dev/pts/N`` numbers are not reused on demand), so the emulator
  publishes a stable symbolic link (``--link``, or one in a temporary folder
  when an unplug is scheduled) that it re-points atomically; hosts open the
  link, as they would a udev ``/dev/serial/by-id/…`` name.

While no program has the slave open (the pty reports a hang-up), frames are
not written: a device streaming into an unopened USB port loses them too.

The same core serves the ``sim://`` pyserial URL
(:mod:`biofeedback.acquisition.urlhandler.protocol_sim`) without any
pseudo-terminal.
"""

from __future__ import annotations

import os
import select
import tempfile
import threading
import time

import numpy as np

from biofeedback.acquisition.protocols import get_protocol


class SignalBank:
    """A deterministic multichannel EMG signal in µV, addressed by sample index.

    Uses :func:`biofeedback.sources.simulator.simulate` on a session of
    ``loop_s`` seconds, repeated; falls back to a small built-in generator
    (noise bursts) if the simulator cannot be used.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    n_channels : int
        Channels.
    seed : int
        Random seed.
    loop_s : float
        Length of the simulated session that repeats, in seconds.
    """

    _cache: dict = {}

    def __init__(self, fs: float, n_channels: int, seed: int = 0, loop_s: float = 30.0):
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.seed = int(seed)
        key = (self.fs, self.n_channels, self.seed, float(loop_s))
        if key not in SignalBank._cache:  # same parameters, same signal: simulate once per process
            SignalBank._cache[key] = self._simulate(loop_s)
        self.data = SignalBank._cache[key]

    def _simulate(self, loop_s):
        try:
            from biofeedback.sources.simulator import default_session, simulate

            recording = simulate(default_session(loop_s, self.n_channels), self.fs, seed=self.seed)
            data = np.asarray(recording.data, dtype=np.float64)
            if data.shape[0] == self.n_channels and data.shape[1] > 0 and np.all(np.isfinite(data)):
                return data
        except Exception:  # noqa: BLE001 - the built-in signal is good enough for a byte test
            pass
        return self._fallback(loop_s)

    def _fallback(self, loop_s):
        n = int(round(loop_s * self.fs))
        rng = np.random.default_rng(self.seed)
        t = np.arange(n) / self.fs
        data = np.empty((self.n_channels, n))
        for ch in range(self.n_channels):
            envelope = 8.0 + 150.0 * (np.sin(2 * np.pi * t / 6.0 + ch) > 0.3)
            data[ch] = rng.standard_normal(n) * envelope
        return data

    def microvolts(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start`` to ``stop`` (absolute indices), shape (n_channels, stop - start)."""
        n = self.data.shape[1]
        idx = np.arange(start, stop) % n
        return self.data[:, idx]


class DeviceCore:
    """An emulated device: clock, protocol behaviour, signal and faults.

    Parameters
    ----------
    protocol : str
        Protocol name.
    fs : float, optional
        Sampling rate in Hz (default: the protocol's or board's usual one).
    n_channels : int
        Channels carrying signal.
    seed : int
        Seed of the signal and of the faults.
    corrupt_rate : float
        Probability that a frame gets one byte changed (0..1).
    drop_rate : float
        Probability that a frame is not sent at all (0..1).
    board : str, optional
        Chords board name.
    gain : float, optional
        OpenBCI gain.
    """

    def __init__(self, protocol, fs=None, n_channels=2, seed=0, corrupt_rate=0.0, drop_rate=0.0,
                 board=None, gain=None):
        self.protocol = get_protocol(protocol)
        default_fs = {"bridge": 500.0, "ascii": 250.0, "p2": 250.0, "cyton": 250.0}.get(self.protocol.name, 250.0)
        rng = np.random.default_rng(seed)
        self.device = self.protocol.make_device(float(fs or default_fs), int(n_channels), rng, board=board, gain=gain)
        self.fs = self.device.fs
        # Eight channels always, so a channel's signal does not depend on how
        # many are in use (a bridge device can be told "CH 4" at run time).
        self.signal = SignalBank(self.fs, 8, seed)
        self.corrupt_rate = float(corrupt_rate)
        self.drop_rate = float(drop_rate)
        self.faults = np.random.default_rng(seed + 7919)
        self.clock_index = 0  # next device-clock sample to produce
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_corrupted = 0
        self.samples_sent = 0
        self.lock = threading.Lock()

    def truth(self, start: int, stop: int) -> np.ndarray:
        """What the device sends for device-clock samples ``start..stop`` (device units)."""
        return self.device.to_device_units(self.signal.microvolts(start, stop))

    def power_on(self) -> bytes:
        with self.lock:
            return self.device.power_on()

    def handle_input(self, data: bytes) -> bytes:
        with self.lock:
            self.device.clock_index = self.clock_index
            return self.device.handle_input(data)

    def advance(self, due_index: int, deliver: bool = True) -> bytes:
        """Produce the frames of the samples due by device-clock ``due_index``.

        Parameters
        ----------
        due_index : int
            Samples with a smaller index have been sampled by now.
        deliver : bool
            False when nobody listens: the samples pass, unsent.

        Returns
        -------
        bytes
            What goes on the wire (faults applied).
        """
        with self.lock:
            device = self.device
            per_frame = device.samples_per_frame
            due_index -= (due_index - self.clock_index) % per_frame  # whole frames only
            if due_index <= self.clock_index:
                return b""
            start, self.clock_index = self.clock_index, due_index
            device.clock_index = due_index
            if not (deliver and device.streaming):
                return b""
            values = self.truth(start, due_index)
            frames = device.encode(values, device.stream_index(start))
            out = []
            for frame in frames:
                if self.drop_rate and self.faults.random() < self.drop_rate:
                    self.frames_dropped += 1
                    continue
                if self.corrupt_rate and self.faults.random() < self.corrupt_rate:
                    frame = bytearray(frame)
                    position = int(self.faults.integers(len(frame)))
                    frame[position] ^= int(self.faults.integers(1, 256))
                    frame = bytes(frame)
                    self.frames_corrupted += 1
                out.append(frame)
            self.frames_sent += len(out)
            self.samples_sent += len(out) * per_frame
            return b"".join(out)


class PtyEmulator:
    """A :class:`DeviceCore` behind a pseudo-terminal, paced by a thread.

    Parameters
    ----------
    core : DeviceCore
        The device.
    link : str, optional
        Path of a symbolic link kept pointing at the current slave.
    unplug_at : float, optional
        Seconds after :meth:`start` at which the device is unplugged.
    unplug_for : float
        Seconds it stays unplugged.
    duration : float, optional
        Seconds after which the emulator stops by itself.
    tick_s : float
        Pacing interval of the writing thread.
    """

    def __init__(self, core: DeviceCore, link=None, unplug_at=None, unplug_for=2.0, duration=None, tick_s=0.005):
        self.core = core
        self.unplug_at = unplug_at
        self.unplug_for = float(unplug_for)
        self.duration = duration
        self.tick_s = tick_s
        self._own_dir = None
        if link is None and unplug_at is not None:
            self._own_dir = tempfile.mkdtemp(prefix="biofeedback-emulator-")
            link = os.path.join(self._own_dir, "tty")
        self.link = link
        self.slave_name = None
        self._master = None
        self._thread = None
        self._stop = threading.Event()
        self.plugged = threading.Event()
        self.unplugged_once = threading.Event()
        self.replugged = threading.Event()
        self.finished = threading.Event()
        self.t0 = None

    @property
    def port(self) -> str:
        """The path a host should open (the link when there is one)."""
        return self.link or self.slave_name

    # -- pty --------------------------------------------------------------------

    def _plug(self):
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: a byte pipe
        name = os.ttyname(slave)
        os.close(slave)  # the host opens it; a hang-up on the master says nobody has
        os.set_blocking(master, False)
        self._master = master
        self.slave_name = name
        if self.link:
            temporary = f"{self.link}.{os.getpid()}.tmp"
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            os.symlink(name, temporary)
            os.replace(temporary, self.link)  # atomic re-point
        self.plugged.set()
        banner = self.core.power_on()
        self._pending_out = bytearray(banner)

    def _unplug(self):
        self.plugged.clear()
        if self.link:
            try:
                os.unlink(self.link)
            except FileNotFoundError:
                pass
        if self._master is not None:
            os.close(self._master)
            self._master = None

    def _host_attached(self) -> bool:
        poller = select.poll()
        poller.register(self._master, select.POLLIN | select.POLLHUP)
        for _, mask in poller.poll(0):
            if mask & select.POLLHUP:
                return False
        return True

    # -- thread ------------------------------------------------------------------

    def start(self) -> "PtyEmulator":
        """Open the pseudo-terminal and start streaming."""
        self._pending_out = bytearray()
        self._plug()
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="biofeedback-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and remove the pseudo-terminal and link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._master is not None:
            self._unplug()
        if self._own_dir:
            try:
                os.rmdir(self._own_dir)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _run(self):
        core = self.core
        unplug_until = None
        try:
            while not self._stop.wait(self.tick_s):
                now = time.monotonic() - self.t0
                if self.duration is not None and now >= self.duration:
                    break
                due = int(now * core.fs)
                if self._master is None:
                    core.advance(due, deliver=False)  # the clock runs on, nothing is sent
                    if unplug_until is not None and now >= unplug_until:
                        self._plug()
                        self.replugged.set()
                    continue
                if self.unplug_at is not None and not self.unplugged_once.is_set() and now >= self.unplug_at:
                    self.unplugged_once.set()
                    self._unplug()
                    unplug_until = now + self.unplug_for
                    continue
                attached = self._host_attached()
                if attached:
                    self._exchange()
                data = core.advance(due, deliver=attached)
                if attached:
                    self._pending_out += data
                    self._write_pending()
                else:
                    self._pending_out.clear()
        finally:
            self.finished.set()

    def _exchange(self):
        try:
            incoming = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if incoming:
            reply = self.core.handle_input(incoming)
            if reply:
                self._pending_out += reply

    def _write_pending(self):
        if not self._pending_out:
            return
        try:
            written = os.write(self._master, bytes(self._pending_out))
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            written = len(self._pending_out)  # host went away mid-write: the bytes are lost
        del self._pending_out[:written]
        if len(self._pending_out) > 65536:
            # The host is not reading: a device's small buffer overflows; frames are lost.
            self._pending_out.clear()
