"""Benchmark of the live window: frame rate, dropped frames, CPU and latency.

For 1, 4 and 8 channels at 1 and 2 kHz, with a 10 s window, the live
window runs off-screen (``QT_QPA_PLATFORM=offscreen``) on the built-in
simulator paced in real time, each configuration in a fresh process. After
a warm-up, it measures:

* **fps** — paints of the plot area per second (frames actually drawn);
* **dropped** — display deadlines missed (timer ticks that came a period
  or more late), over the measured span;
* **CPU** — CPU time (not wall-clock time, so other programs running on
  the machine do not count) of the whole process (GUI thread + acquisition
  and pipeline worker + simulator), of the GUI thread alone and of the
  worker thread alone (it generates the simulated signal too), as a share
  of one core;
* **latency** — from the moment a chunk leaves the source (its last sample
  is due, in real time) to the paint of the frame that first shows it:
  median and 95th percentile. The worker processes source chunks in groups
  of at least 20 ms, and the latency of a group is counted from its
  *oldest* chunk, so the wait in the group is included. This is the delay
  the display adds; the envelope's own delay (half the RMS window, 50 ms by
  default) and the source's chunk length (10 ms here, as `live` uses: the
  first sample of a chunk waits that long in the source) come on top;
* **frame / paint** — mean time of the frame function (drain the queue,
  update the rings and curves) and of a paint of the plots, in ms.

Usage::

    python benchmarks/bench_display.py            # full table (~2 min)
    python benchmarks/bench_display.py --quick    # 8 ch x 2 kHz only

Needs PyQt6, pyqtgraph and psutil (``pip install psutil``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = [(1, 1000), (4, 1000), (8, 1000), (1, 2000), (4, 2000), (8, 2000)]
#: Chunk length of the simulated source (the simulator's default for `live`).
CHUNK_S = 0.01


def run_one(n_channels: int, fs: float, warmup_s: float, measure_s: float, window_s: float, fps: float) -> dict:
    """Run one configuration in this process and return its figures."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import psutil
    from PyQt6 import QtCore, QtWidgets

    from biofeedback.live.worker import LiveWorker
    from biofeedback.sources.simulator import SimulatorSource, default_session
    from biofeedback.ui.window import LiveWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    session = default_session(max(30.0, warmup_s + measure_s + 10.0), n_channels)
    source = SimulatorSource(session, fs, speed=1.0, chunk_s=CHUNK_S)
    worker = LiveWorker(source, source_name="simulator")
    window = LiveWindow(worker, window_s=window_s, fps=fps)
    window.resize(1280, 800)
    window.show()
    process = psutil.Process()
    marks = {}

    def worker_cpu():
        tid = worker._thread.native_id if worker._thread is not None else None
        return next((t.user_time + t.system_time for t in process.threads() if t.id == tid), float("nan"))

    def start_measure():
        window.stats.reset()
        marks["t0"] = time.perf_counter()
        marks["cpu0"] = sum(process.cpu_times()[:2])
        marks["thread0"] = time.thread_time()  # this is the GUI thread
        marks["worker0"] = worker_cpu()
        marks["drop0"] = worker.blocks_dropped

    def stop_measure():
        wall = time.perf_counter() - marks["t0"]
        marks["wall"] = wall
        marks["cpu"] = (sum(process.cpu_times()[:2]) - marks["cpu0"]) / wall
        marks["gui_cpu"] = (time.thread_time() - marks["thread0"]) / wall
        marks["worker_cpu"] = (worker_cpu() - marks["worker0"]) / wall
        marks["paint_ms"] = window.stats.paint_ms()
        marks["fps"] = window.stats.paints / wall
        marks["dropped"] = window.stats.dropped
        marks["ticks"] = window.stats.ticks
        marks["latency"] = window.stats.latency_ms()
        marks["frame_ms"] = window.stats.frame_ms()
        marks["blocks_dropped"] = worker.blocks_dropped - marks["drop0"]
        window.close()

    QtCore.QTimer.singleShot(int(warmup_s * 1000), start_measure)
    QtCore.QTimer.singleShot(int((warmup_s + measure_s) * 1000), stop_measure)
    app.exec()
    return {
        "channels": n_channels, "fs": fs, "fps": marks["fps"], "dropped": marks["dropped"],
        "ticks": marks["ticks"], "cpu_process": 100 * marks["cpu"], "cpu_gui": 100 * marks["gui_cpu"],
        "cpu_worker": 100 * marks["worker_cpu"], "paint_ms": marks["paint_ms"],
        "latency_median_ms": marks["latency"][0], "latency_p95_ms": marks["latency"][1],
        "frame_ms": marks["frame_ms"], "blocks_dropped": marks["blocks_dropped"],
        "stopped_cleanly": window.stopped_cleanly,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 8 channels at 2 kHz")
    parser.add_argument("--warmup", type=float, default=3.0, metavar="S")
    parser.add_argument("--measure", type=float, default=10.0, metavar="S")
    parser.add_argument("--window", type=float, default=10.0, metavar="S", help="seconds shown")
    parser.add_argument("--fps", type=float, default=60.0, help="display rate")
    parser.add_argument("--one", nargs=2, type=float, metavar=("CHANNELS", "FS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    args = parser.parse_args(argv)
    if args.one:
        result = run_one(int(args.one[0]), args.one[1], args.warmup, args.measure, args.window, args.fps)
        print(json.dumps(result))
        return 0
    configs = [(8, 2000)] if args.quick else CONFIGS
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    header = (f"{'channels':>8} {'fs Hz':>6} {'fps':>6} {'dropped':>8} {'CPU proc %':>10} {'CPU GUI %':>9} "
              f"{'CPU worker %':>12} {'lat med ms':>10} {'lat p95 ms':>10} {'frame ms':>8} {'paint ms':>8}")
    if not args.json:
        print(f"window {args.window:g} s, display timer {args.fps:g} Hz, {args.measure:g} s measured after "
              f"{args.warmup:g} s warm-up, off-screen, {os.cpu_count()} CPU(s)")
        print(header)
    failures = 0
    for n_channels, fs in configs:
        cmd = [sys.executable, __file__, "--one", str(n_channels), str(fs), "--warmup", str(args.warmup),
               "--measure", str(args.measure), "--window", str(args.window), "--fps", str(args.fps)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            failures += 1
            print(f"{n_channels:>8} {fs:>6.0f}  failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(lines[-1])
        if args.json:
            print(lines[-1])
        else:
            print(f"{r['channels']:>8} {r['fs']:>6.0f} {r['fps']:>6.1f} {r['dropped']:>8} {r['cpu_process']:>10.0f} "
                  f"{r['cpu_gui']:>9.0f} {r['cpu_worker']:>12.0f} {r['latency_median_ms']:>10.0f} "
                  f"{r['latency_p95_ms']:>10.0f} {r['frame_ms']:>8.1f} {r['paint_ms']:>8.1f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
