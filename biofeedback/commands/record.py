"""``biofeedback record``: raw samples from a serial device to CSV, headless."""

from __future__ import annotations

from biofeedback.errors import ParameterError

DESCRIPTION = """\
Record raw samples (ADC counts, or µV for OpenBCI) from a serial EMG device
to CSV, with gaps, disconnects and reconnects in FILE.events.csv. No window:
for headless use (a Raspberry Pi, a long session). The file is append-only
and each block is written through as it arrives; an unplug keeps what was
recorded, and recording resumes when the device comes back (within
--reconnect-timeout). Errors (wrong port, no valid frame, a silent device)
end with one line and status 2, keeping what was recorded.

protocols: bridge (this project's sketch), ascii (numbers per line),
chords (Upside Down Labs), p2 (Olimex EKG-EMG shield), cyton (OpenBCI);
auto identifies the device. Ports: a device path, auto, a pyserial URL such
as sim://?protocol=cyton, or lsl:NAME for a Lab Streaming Layer stream.

examples:
  biofeedback record --port /dev/ttyACM0 --protocol bridge --duration 60 --out rec.csv
  biofeedback record --port auto --duration 600 --out long.csv
"""


def register(sub, formatter_class):
    p = sub.add_parser("record", help="record raw samples from a serial device to CSV (headless)",
                       description=DESCRIPTION, formatter_class=formatter_class)
    p.add_argument("--port", required=True, metavar="P", help="port, URL, 'auto', or lsl:NAME")
    p.add_argument("--protocol", default="auto", help="bridge, ascii, chords, p2, cyton or auto")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds of stream to record (default: until Ctrl-C)")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="output CSV (events in FILE.events.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g = p.add_argument_group("device")
    g.add_argument("--baud", type=int, default=None, help="baud rate (default: the protocol's)")
    g.add_argument("--fs", type=float, default=None, metavar="HZ",
                   help="sampling rate to state (bridge: asks the device); default: device, board table or measured")
    g.add_argument("--channels", type=int, default=None, metavar="N",
                   help="channels (bridge: asks the device; p2: keep the first N)")
    g.add_argument("--board", default=None, help="Chords board name when the device does not say (e.g. UNO-R4)")
    g.add_argument("--gain", type=float, default=None, help="OpenBCI channel gain for the µV scale (default 24)")
    g = p.add_argument_group("robustness")
    g.add_argument("--lock-timeout", type=float, default=5.0, metavar="S",
                   help="give up if no valid frame arrives within S seconds")
    g.add_argument("--stall-timeout", type=float, default=5.0, metavar="S",
                   help="give up if the device sends nothing for S seconds")
    g.add_argument("--reconnect-timeout", type=float, default=30.0, metavar="S",
                   help="after an unplug, wait this long for the device to return")
    g.add_argument("--no-reconnect", action="store_true", help="stop at the first disconnect")
    g.add_argument("--warmup", type=float, default=3.0, metavar="S",
                   help="seconds used to measure the rate when the device does not state it")
    g = p.add_argument_group("lab streaming layer (needs pylsl)")
    g.add_argument("--lsl", action="store_true", help="also publish the samples and a marker stream on LSL")
    g.add_argument("--lsl-name", default="biofeedback-emg", help="LSL stream name")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=run)


def run(args) -> int:
    import signal
    import sys
    import threading

    from biofeedback.acquisition.recorder import RecordingWriter, events_path_for

    if args.duration is not None and not args.duration > 0:
        raise ParameterError("--duration", "a positive number of seconds", args.duration)
    if args.channels is not None and args.channels < 1:
        raise ParameterError("--channels", "at least 1", args.channels)
    for target in (args.out, events_path_for(args.out)):
        from pathlib import Path

        if Path(target).exists() and not args.overwrite:
            from biofeedback.errors import BiofeedbackError

            raise BiofeedbackError(f"{target} exists; choose another --out or pass --overwrite")
    source = _make_source(args)

    def say(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum, frame):
            raise KeyboardInterrupt

        previous_handler = signal.signal(signal.SIGTERM, _terminate)
    writer = None
    publisher = None
    try:
        with source:
            info = source.info
            extra = info.extra or {}
            say(f"recording {info.source}: {info.n_channels} channel(s), {info.fs:g} Hz "
                f"({extra.get('fs_origin', '')}), {info.units} -> {args.out}")
            writer = RecordingWriter(
                args.out, info, overwrite=args.overwrite,
                comments={"protocol": extra.get("protocol"), "device": extra.get("device") or extra.get("board"),
                          "fs_origin": extra.get("fs_origin")},
            )
            if args.lsl:
                from biofeedback.acquisition.lsl import LslPublisher

                publisher = LslPublisher(info, name=args.lsl_name)
            stop_index = None if args.duration is None else int(round(args.duration * info.fs))
            try:
                for chunk in source:
                    writer.write_chunk(chunk, stop_index)
                    if publisher is not None:
                        publisher.push(chunk)
                    for event in chunk.events:
                        n = event.extra.get("n_samples") if event.extra else None
                        say(f"  {event.kind} at {event.onset_s:.3f} s" + (f" ({n} samples)" if n else ""))
                    if stop_index is not None and writer.next_index >= stop_index:
                        break
            except KeyboardInterrupt:
                if stop_index is not None:
                    raise  # interrupted before the requested duration: say so (status 130)
                say("stopped")  # without --duration, Ctrl-C is the normal way to end
            summary = source.summary() if hasattr(source, "summary") else {}
    finally:
        if writer is not None:
            writer.close()
        if publisher is not None:
            publisher.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    measured = summary.get("measured_fs")
    rate = f"stated {info.fs:g} Hz" + (f", measured {measured:.3f} Hz ({(measured / info.fs - 1) * 1e6:+.0f} ppm)"
                                       if measured else "")
    say(f"wrote {writer.samples_written} samples to {args.out} ({rate}); gaps {summary.get('gaps', 0)} "
        f"({summary.get('lost_samples', 0)} samples), resyncs {summary.get('resyncs', 0)}, "
        f"disconnects {summary.get('disconnects', 0)}"
        + (f", overruns {summary['overrun_samples']} samples" if summary.get("overrun_samples") else "")
        + f"; events in {writer.events_path}")
    return 0


def _make_source(args):
    if args.port.startswith("lsl:"):
        from biofeedback.acquisition.lsl import LslSource

        return LslSource(args.port[4:], timeout=args.lock_timeout)
    from biofeedback.acquisition.serial_source import SerialSource

    return SerialSource(
        args.port, args.protocol, baud=args.baud, fs=args.fs, n_channels=args.channels, board=args.board,
        gain=args.gain, lock_timeout=args.lock_timeout, stall_timeout=args.stall_timeout,
        reconnect=not args.no_reconnect, reconnect_timeout=args.reconnect_timeout, warmup_s=args.warmup,
    )
