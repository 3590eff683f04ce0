"""Throughput of the byte parsers: parsed samples per second, per protocol.

Run: ``python benchmarks/bench_parsers.py [--seconds-of-data 400] [--repeat 3]``

A stream of emulated device frames (the same bytes a device sends) is fed
to a fresh parser in blocks of 4 KiB (a large serial read) and of 64 KiB (a
backlog after a stall). Reported: sample instants per second (one instant =
one value per channel) and channel values per second, best of ``--repeat``
runs, on one core. Every device rate is below 1e4 instants per second.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from biofeedback.acquisition.protocols import get_protocol
from biofeedback.acquisition.testing import offline_stream

CASES = [
    # protocol, rate Hz, channels with signal
    ("bridge", 500.0, 6),
    ("ascii", 500.0, 2),
    ("chords", 500.0, 6),
    ("p2", 256.0, 6),
    ("cyton", 250.0, 8),
]


def bench(protocol, fs, channels, seconds_of_data, block, repeat):
    frames, truth, _, _ = offline_stream(protocol, int(fs * seconds_of_data), seed=0, n_channels=channels, fs=fs)
    stream = b"".join(frames)
    blocks = [stream[i:i + block] for i in range(0, len(stream), block)]
    best = float("inf")
    samples = 0
    for _ in range(repeat):
        proto = get_protocol(protocol)
        parser = proto.make_parser(proto.default_config())
        start = time.perf_counter()
        samples = 0
        for piece in blocks:
            samples += parser.feed(piece).n_samples
        best = min(best, time.perf_counter() - start)
    assert samples >= truth.shape[1] - 2, (protocol, samples, truth.shape)
    return samples, truth.shape[0], len(stream), best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-of-data", type=float, default=400.0, help="length of each test stream (device time)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'protocol':8s} {'block':>7s} {'instants':>9s} {'MB':>6s} {'instants/s':>12s} {'values/s':>12s}")
    for protocol, fs, channels in CASES:
        for block in (4096, 65536):
            n, n_channels, n_bytes, seconds = bench(protocol, fs, channels, args.seconds_of_data, block, args.repeat)
            print(f"{protocol:8s} {block:7d} {n:9d} {n_bytes / 1e6:6.2f} {n / seconds:12.3g} {n * n_channels / seconds:12.3g}")


if __name__ == "__main__":
    main()
