"""The protocols the acquisition layer speaks, by name.

=========  ==========================================================
name       device
=========  ==========================================================
bridge     this project's firmware_bridge sketch (counter + CRC)
ascii      Arduino sketches printing numbers, one line per sample
chords     Upside Down Labs Chords firmware (BioAmp EXG boards)
p2         OpenEEG P2 packets (Olimex SHIELD-EKG-EMG demo sketch)
cyton      OpenBCI Cyton
=========  ==========================================================

Facts and sources: ``docs/protocols.md``.
"""

from __future__ import annotations

from biofeedback.acquisition.protocols.ascii_lines import AsciiProtocol
from biofeedback.acquisition.protocols.base import DeviceConfig, EmulatedDevice, Protocol
from biofeedback.acquisition.protocols.bridge import BridgeProtocol
from biofeedback.acquisition.protocols.chords import ChordsProtocol
from biofeedback.acquisition.protocols.cyton import CytonProtocol
from biofeedback.acquisition.protocols.p2 import P2Protocol

#: Protocol name -> protocol, in the order probing tries them.
PROTOCOLS: dict = {p.name: p for p in (BridgeProtocol(), ChordsProtocol(), CytonProtocol(), P2Protocol(), AsciiProtocol())}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a one-line error naming the known ones otherwise."""
    try:
        return PROTOCOLS[name.lower()]
    except KeyError:
        from biofeedback.errors import ParameterError

        raise ParameterError("protocol", "one of " + ", ".join(PROTOCOLS), name) from None


def recognise(data: bytes, names=None) -> list:
    """Protocols whose parser locks on ``data`` (passive recognition).

    Parameters
    ----------
    data : bytes
        Bytes captured from a port.
    names : iterable of str, optional
        Protocols to try (default: all).

    Returns
    -------
    list of (str, int)
        ``(name, samples decoded)`` for each protocol that locked, most
        samples first.
    """
    found = []
    for name in names or PROTOCOLS:
        protocol = PROTOCOLS[name]
        parser = protocol.make_parser(protocol.default_config())
        result = parser.feed(data)
        if parser.ever_locked and result.n_samples >= 2:
            found.append((name, result.n_samples))
    # Binary framing is far more specific than "lines of numbers".
    found.sort(key=lambda item: (item[0] == "ascii", -item[1]))
    return found


__all__ = ["PROTOCOLS", "get_protocol", "recognise", "Protocol", "DeviceConfig", "EmulatedDevice"]
