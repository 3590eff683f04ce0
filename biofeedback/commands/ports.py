"""``biofeedback ports``: list serial ports and, with --probe, identify devices."""

from __future__ import annotations

DESCRIPTION = """\
List the serial ports with their USB vendor:product ids. With --probe, open
each USB port, listen for known frames, then try the handshakes (ID,
WHORU, v) and say which device answers. Probing writes to the ports: do not
probe ports used by other equipment.

examples:
  biofeedback ports
  biofeedback ports --probe
  biofeedback ports --probe --port /tmp/emg-tty
"""


def register(sub, formatter_class):
    p = sub.add_parser("ports", help="list serial ports; identify EMG devices with --probe",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--probe", action="store_true", help="open the ports and identify the devices")
    p.add_argument("--port", action="append", default=[], metavar="P",
                   help="also probe this port or URL (repeatable; implies --probe)")
    p.add_argument("--all", action="store_true", help="probe ports without a USB id too (e.g. /dev/ttyS*)")
    p.add_argument("--protocol", action="append", default=None, metavar="NAME",
                   help="only try this protocol (repeatable): bridge, ascii, chords, p2, cyton")
    p.add_argument("--baud", type=int, default=None, help="only this baud rate")
    p.set_defaults(func=run)


def run(args) -> int:
    from biofeedback.acquisition.discovery import list_ports, probe_port
    from biofeedback.acquisition.protocols import get_protocol
    from biofeedback.errors import BiofeedbackError

    protocols = [get_protocol(name).name for name in args.protocol] if args.protocol else None
    ports = list_ports()
    if not ports:
        print("no serial ports found")
    for port in ports:
        usb = port.usb_id or "-"
        hint = f"  ({port.hint})" if port.hint else ""
        print(f"{port.device:24s} {usb:10s} {port.description}{hint}")
    if not (args.probe or args.port):
        return 0
    targets = [p.device for p in ports if args.all or p.vid is not None] + list(args.port)
    if not targets:
        print("nothing to probe (no USB serial port; use --all or --port)")
        return 0
    print()
    for device in targets:
        try:
            found = probe_port(device, protocols, args.baud)
        except BiofeedbackError as exc:
            print(f"{device}: {exc}")
            continue
        if found is None:
            print(f"{device}: no known device recognised")
        else:
            print(f"{device}: {found.protocol} at {found.baud} baud (by {found.how}: {found.detail})")
    return 0
