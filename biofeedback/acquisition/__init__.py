"""Acquisition from serial EMG devices: parsers, sources, recorder, emulator.

Layers, from the wire up:

* :mod:`~biofeedback.acquisition.protocols` — one incremental byte parser
  per protocol (pure state, no I/O), plus the device side for emulation;
* :mod:`~biofeedback.acquisition.reader` — a thread that only moves bytes
  into the parser and results into a bounded queue, and reconnects;
* :mod:`~biofeedback.acquisition.serial_source` — :class:`SerialSource`,
  the :class:`~biofeedback.sources.base.Source` the rest of the toolkit uses;
* :mod:`~biofeedback.acquisition.discovery` — listing and probing ports;
* :mod:`~biofeedback.acquisition.recorder` — crash-safe CSV recording;
* :mod:`~biofeedback.acquisition.emulator` — devices on pseudo-terminals
  and the ``sim://`` URL;
* :mod:`~biofeedback.acquisition.lsl` — Lab Streaming Layer (optional).

Importing this package does not import pyserial; opening a port does.
"""

from biofeedback.acquisition.framing import Gap, ParseResult
from biofeedback.acquisition.protocols import PROTOCOLS, get_protocol, recognise

__all__ = ["Gap", "ParseResult", "PROTOCOLS", "get_protocol", "recognise", "SerialSource", "RecordingWriter"]


def __getattr__(name):
    # Lazy: keep ``import biofeedback.acquisition`` light.
    if name == "SerialSource":
        from biofeedback.acquisition.serial_source import SerialSource

        return SerialSource
    if name == "RecordingWriter":
        from biofeedback.acquisition.recorder import RecordingWriter

        return RecordingWriter
    raise AttributeError(name)
