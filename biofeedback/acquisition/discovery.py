"""Finding the device: list serial ports, probe them, pick one.

Probing a port first *listens* (a free-running device such as the Olimex
shield or an ASCII sketch is recognised by its frames, without being sent
anything), then, for protocols with a handshake, *asks* (``ID`` for
firmware_bridge, ``WHORU`` for Chords, ``v`` for OpenBCI). Probing writes
to the port, so it is only done when asked (``biofeedback ports --probe``,
``--port auto`` or ``--protocol auto``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from biofeedback.acquisition.protocols import PROTOCOLS, DeviceConfig, recognise
from biofeedback.errors import BiofeedbackError

#: (USB vendor id, product id or None) -> what such an id usually is.
KNOWN_USB_IDS = {
    (0x2341, None): "Arduino",
    (0x2A03, None): "Arduino",
    (0x1A86, 0x7523): "CH340 USB-serial (Arduino clones, Maker UNO)",
    (0x1A86, 0x55D4): "CH9102 USB-serial (ESP32 boards)",
    (0x0403, 0x6015): "FTDI FT231X (OpenBCI USB dongle)",
    (0x0403, 0x6001): "FTDI FT232R USB-serial",
    (0x10C4, 0xEA60): "Silicon Labs CP210x (ESP32 boards)",
    (0x2E8A, None): "Raspberry Pi RP2040 board",
    (0x303A, None): "Espressif ESP32-S2/S3/C3",
    (0x239A, None): "Adafruit board",
}


@dataclass
class PortInfo:
    """A serial port the system lists."""

    device: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    manufacturer: str | None = None

    @property
    def usb_id(self) -> str:
        """``"vvvv:pppp"`` in hex, or ``""`` for a port that is not USB."""
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else ""

    @property
    def hint(self) -> str:
        """What the USB id usually is."""
        if self.vid is None:
            return ""
        return KNOWN_USB_IDS.get((self.vid, self.pid)) or KNOWN_USB_IDS.get((self.vid, None), "")


@dataclass
class Found:
    """A device recognised on a port."""

    port: str
    protocol: str
    baud: int
    how: str  # "handshake" or "frames"
    config: DeviceConfig | None = None
    detail: str = ""
    notes: list = field(default_factory=list)


def list_ports() -> list:
    """Serial ports with their USB ids, sorted by device name."""
    from serial.tools import list_ports as lp

    ports = []
    for p in lp.comports():
        ports.append(PortInfo(p.device, p.description or "", p.vid, p.pid, p.serial_number, p.manufacturer))
    return sorted(ports, key=lambda p: p.device)


def _bauds_for(names, baud):
    if baud:
        return [int(baud)]
    bauds = []
    for name in names:
        for b in PROTOCOLS[name].probe_bauds:
            if b not in bauds:
                bauds.append(b)
    return bauds


#: Seconds a probe listens before sending anything.
LISTEN_S = 1.2


def probe_port(device: str, protocols=None, baud: int | None = None, listen_s: float | None = None):
    """Identify the device on one port.

    Parameters
    ----------
    device : str
        Port or URL.
    protocols : list of str, optional
        Protocols to try (default: all).
    baud : int, optional
        Only this baud rate (default: each protocol's usual ones).
    listen_s : float, optional
        Seconds to listen before sending any command (default :data:`LISTEN_S`).

    Returns
    -------
    Found or None

    Raises
    ------
    BiofeedbackError
        When the port cannot be opened at all (missing, permission).
    """
    from biofeedback.acquisition.serial_source import open_port

    names = list(protocols or PROTOCOLS)
    listen_s = LISTEN_S if listen_s is None else listen_s
    for b in _bauds_for(names, baud):
        at_this_baud = [n for n in names if baud or b in PROTOCOLS[n].probe_bauds]
        port = open_port(device, b)
        try:
            captured = b""
            deadline = time.monotonic() + listen_s
            while time.monotonic() < deadline and len(captured) < 8192:
                captured += port.read(max(1, port.in_waiting or 1))
            # Frames recognised at any baud rate are real (at a wrong rate the
            # bytes are garbage), so every protocol is tried on what was heard.
            heard = recognise(captured, names)
            if heard:
                name = heard[0][0]
                return Found(device, name, b, "frames", PROTOCOLS[name].default_config(),
                             f"{heard[0][1]} samples decoded while listening")
            for name in at_this_baud:
                protocol = PROTOCOLS[name]
                if protocol.free_running:
                    continue
                config = protocol.identify(port, timeout=0.5)
                if config is not None:
                    try:
                        protocol.stop(port)
                    except Exception:  # noqa: BLE001
                        pass
                    return Found(device, name, b, "handshake", config, config.description)
        finally:
            port.close()
    return None


def auto_port(protocols=None, baud: int | None = None, candidates=None) -> Found:
    """The single recognised device among the USB serial ports.

    Parameters
    ----------
    protocols : list of str, optional
        Protocols to try (default: all).
    baud : int, optional
        Baud rate to use (default: each protocol's).
    candidates : list of str, optional
        Ports to probe (default: the listed ports that have a USB id).

    Raises
    ------
    BiofeedbackError
        When none or several devices are recognised (the message lists the
        ports seen and the protocols tried).
    """
    listed = list_ports()
    if candidates is None:
        candidates = [p.device for p in listed if p.vid is not None]
    found, problems = [], []
    for device in candidates:
        try:
            hit = probe_port(device, protocols, baud)
        except BiofeedbackError as exc:
            problems.append(str(exc))
            continue
        if hit is not None:
            found.append(hit)
    tried = ", ".join(protocols or PROTOCOLS)
    seen = ", ".join(
        f"{p.device}" + (f" [{p.usb_id} {p.hint or p.description}]" if p.usb_id else "") for p in listed
    ) or "none"
    if len(found) == 1:
        return found[0]
    if not found:
        extra = f"; errors: {' | '.join(problems)}" if problems else ""
        raise BiofeedbackError(
            f"--port auto: no recognised device (ports seen: {seen}; probed: {', '.join(candidates) or 'none'}; "
            f"protocols tried: {tried}){extra}; give --port"
        )
    listing = ", ".join(f"{f.port} ({f.protocol})" for f in found)
    raise BiofeedbackError(f"--port auto: several devices recognised: {listing}; choose one with --port")
