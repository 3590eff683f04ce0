"""``biofeedback emulate``: a simulated EMG device on a pseudo-terminal."""

from __future__ import annotations

from biofeedback.errors import ParameterError

DESCRIPTION = """\
Open a pseudo-terminal and stream simulated sEMG on it in a real device
protocol, at the real rate, so 'biofeedback record' (or any serial program)
can be tested end to end without hardware. Prints the port to open.

Faults: --corrupt-rate changes one byte in that fraction of frames,
--drop-rate leaves that fraction of frames out, --unplug-at/--unplug-for
close the port for a while (the device keeps sampling meanwhile). A new
pseudo-terminal gets a new name, so with an unplug (or --link) the emulator
keeps a symbolic link pointing at the current one: open the link.

examples:
  biofeedback emulate --protocol bridge --fs 500 --channels 2
  biofeedback emulate --protocol cyton --unplug-at 10 --unplug-for 3 --link /tmp/emg
"""


def register(sub, formatter_class):
    p = sub.add_parser("emulate", help="stream a simulated device over a pseudo-terminal",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--protocol", required=True, help="bridge, ascii, chords, p2 or cyton")
    p.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate (default: bridge 500, chords by board, others 250)")
    p.add_argument("--channels", type=int, default=2, metavar="N", help="channels carrying signal")
    p.add_argument("--board", default=None, help="Chords board name answered to WHORU (default UNO-R3/UNO-R4)")
    p.add_argument("--gain", type=float, default=None, help="OpenBCI channel gain (default 24)")
    p.add_argument("--corrupt-rate", type=float, default=0.0, metavar="P", help="fraction of frames corrupted")
    p.add_argument("--drop-rate", type=float, default=0.0, metavar="P", help="fraction of frames dropped")
    p.add_argument("--unplug-at", type=float, default=None, metavar="S", help="unplug after S seconds")
    p.add_argument("--unplug-for", type=float, default=3.0, metavar="S", help="stay unplugged S seconds")
    p.add_argument("--link", default=None, metavar="PATH", help="symbolic link kept pointing at the port")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the signal and the faults")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from biofeedback.acquisition.emulator import DeviceCore, PtyEmulator

    for name, value in (("--corrupt-rate", args.corrupt_rate), ("--drop-rate", args.drop_rate)):
        if not 0.0 <= value < 1.0:
            raise ParameterError(name, "a fraction from 0 to below 1", value)
    if args.channels < 1:
        raise ParameterError("--channels", "at least 1", args.channels)
    if args.fs is not None and not args.fs > 0:
        raise ParameterError("--fs", "a positive rate in Hz", args.fs)
    core = DeviceCore(args.protocol, fs=args.fs, n_channels=args.channels, seed=args.seed,
                      corrupt_rate=args.corrupt_rate, drop_rate=args.drop_rate, board=args.board, gain=args.gain)
    emulator = PtyEmulator(core, link=args.link, unplug_at=args.unplug_at, unplug_for=args.unplug_for,
                           duration=args.duration)
    emulator.start()
    try:
        print(f"port: {emulator.port}", flush=True)
        print(f"emulating {core.protocol.name} at {core.fs:g} Hz, {core.device.n_channels} channel(s) in frames "
              f"(pty {emulator.slave_name}); Ctrl-C to stop", file=sys.stderr, flush=True)
        said_unplug = said_back = False
        while not emulator.finished.wait(0.2):
            if emulator.unplugged_once.is_set() and not said_unplug:
                said_unplug = True
                print("unplugged", file=sys.stderr, flush=True)
            if emulator.replugged.is_set() and not said_back:
                said_back = True
                print(f"back on {emulator.slave_name}", file=sys.stderr, flush=True)
        time.sleep(0)
    finally:
        emulator.stop()
        print(f"sent {core.frames_sent} frames ({core.samples_sent} samples), dropped {core.frames_dropped}, "
              f"corrupted {core.frames_corrupted}", file=sys.stderr, flush=True)
    return 0
