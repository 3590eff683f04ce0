"""``biofeedback analyze`` end to end: seconds per recording-hour, scaling, jobs, peak memory.

Usage::

    python benchmarks/bench_batch.py                 # 1, 10 and 60 min files, jobs 1 and 2
    python benchmarks/bench_batch.py --minutes 1 10  # skip the hour (the 60 min files are ~0.5 GB each)
    python benchmarks/bench_batch.py --quick         # 1 min only

What is measured, on CSV files written with ``write_recording`` (the
signal of ``bench_pipeline.make_emg``: rest noise, 3 s bursts every 10 s,
50 Hz hum, DC offsets), for two layouts, 1 channel at 1 kHz and 8 channels
at 2 kHz:

* ``analyze``: ``python -m biofeedback analyze FILES --out DIR --quiet
  --jobs J`` run as a subprocess, wall clock from start to exit: interpreter
  start, reading, analysis, tables and report.html all included. Each run
  analyses a batch of copies of the file making at least an hour of
  recording, and at least two files (:func:`batch_size`: 60 files of 1 min,
  6 of 10 min, 2 of 60 min), as a folder of recordings is analysed: the
  start-up is paid once per run, and ``--jobs 2`` has files to share. The
  start-up alone (``python -m biofeedback analyze --help``: interpreter,
  numpy, scipy, the package) is printed above the table. Peak memory is
  sampled every 20 ms with psutil: the largest resident set of any one
  process (the main one, or a worker), and of all of them together.
The in-memory rows below run in the benchmark's own process, with glibc's
allocator set as ``analyze`` sets its own (:func:`~biofeedback.analysis.runner.tune_allocator`):
the floor and the peers' in-memory calls as well.

* ``read``: :func:`~biofeedback.io.csv_io.iter_csv` consuming the file
  (MB/s of CSV text).
* ``processing``: the per-file work of ``analyze`` without the reading:
  :func:`~biofeedback.analysis.batch.analyze_stream` (default settings:
  mains auto, quality flags, classification) plus the spectrum monitor,
  on the samples already in memory, in the chunks ``analyze`` analyses (``chunk_samples_for``).
* ``read + processing``: reading the CSV and the processing above, in line,
  and with :func:`~biofeedback.io.prefetch.prefetch` reading ahead in a
  thread (what ``analyze`` does for files of ``PREFETCH_MIN_CHANNELS`` or
  more channels).
* ``floor``: one ``scipy.signal.sosfilt`` with the same band-pass and
  50 Hz notches + moving RMS by cumsum, on the array in memory (the least
  any filter + RMS tool can do): the faster of one pass over the whole
  array and a pass in the chunks ``analyze`` analyses, state carried
  (``bench_pipeline.floor_pass_chunked``; the whole-array pass slows down
  under its file-sized temporaries on long files).
* ``NeuroKit2 emg_process`` and ``BioSPPy emg``, two rows each, running
  the statements of ``bench_pipeline.PEERS`` (``nk.emg_process(x,
  sampling_rate=fs)``; ``emg.emg(signal=x, sampling_rate=fs, show=False)``;
  default arguments otherwise, one call per channel):

  - ``in memory`` (the strict comparison): the call on channel 1 of the
    array in memory, in this process, multiplied by the channel count; the
    peer's import and reading the file are not timed, which favours them.
    At 60 min a peer whose one channel would take more than ``PEER_RUN_S``
    there (NeuroKit2: minutes) is extrapolated linearly from the 10 min time
    unless ``--externals-at-60`` is given; a quicker one (BioSPPy) is
    measured: its cost per recording-hour grows with the file's length
    (2.0 s at 1 min, 5.3 s at 10 min for 1 ch), which a linear guess would miss.
  - ``end to end``: what a user of the peer runs on the same batch of CSV
    files as the ``analyze`` run, ``bench_pipeline.PEER_SCRIPT`` in a
    fresh interpreter (``python -c``): import pandas and the peer, read each
    file with ``pandas.read_csv(path, comment="#")``, call the peer on every
    channel column, writing nothing (``analyze`` writes its tables and
    report). ``fs`` is passed on the command line (a user reads it from the
    comment line). Wall clock from start to exit, peak memory sampled as for
    ``analyze``. The script runs on as many files of the batch as the
    peer's in-memory time says take about ``PEER_RUN_S`` (at least one):
    a quick peer on the whole batch; for a slow one (NeuroKit2 takes
    minutes for an hour of recording) the batch's time is its start-up (the
    script on no file, best of 3) plus the batch's file count times the
    cost of one file (the run less the start-up, over its file count). At
    60 min, unless ``--externals-at-60``, the cost of one file of a peer
    whose in-memory time was extrapolated (see above) is extrapolated
    linearly through its 1 and 10 min costs, or from the 10 min cost alone
    if 1 min was not run; a peer measured in memory there runs on at least
    one 60 min file.

  The speed-up of each row is ``analyze --jobs 1`` (same batch, end to
  end) against that row; the Targets section gives a verdict for both.

Every figure is "seconds per recording-hour": wall seconds divided by the
hours of recording processed (a file of 8 channels counts once, not 8
times). Speed is never asserted in tests; this script prints tables.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_of, print_machine_info, print_table  # noqa: E402
from bench_pipeline import PEERS, floor_pass, floor_pass_chunked, load_peer, make_emg, peer_script  # noqa: E402

from biofeedback.analysis.batch import analyze_stream  # noqa: E402
from biofeedback.analysis.runner import (CHUNK_SAMPLES, PREFETCH_MIN_CHANNELS, SpectrumMonitor,  # noqa: E402
                                         chunk_samples_for, tune_allocator)
from biofeedback.core.types import Recording, StreamInfo, split_into_chunks  # noqa: E402
from biofeedback.dsp.settings import PipelineSettings  # noqa: E402
from biofeedback.io.csv_io import iter_csv, write_recording  # noqa: E402
from biofeedback.io.prefetch import prefetch  # noqa: E402

LAYOUTS = ((1, 1000.0), (8, 2000.0))
TARGET_NK = 50.0
TARGET_BIOSPPY = 5.0
TARGET_FLOOR = 3.0
TARGET_READ_MBS = 50.0
TARGET_RSS_MB = 300.0
#: Seconds a peer's end-to-end script is given: it runs on as many files of the batch as its
#: in-memory time says fit (at least one); the rest of a slow peer's batch is extrapolated.
PEER_RUN_S = 60.0


def run_analyze(files, out_dir, jobs):
    """Run the CLI in a subprocess; return (wall s, peak RSS of one process MB, peak total MB, status)."""
    return run_timed([sys.executable, "-m", "biofeedback", "analyze", *map(str, files), "--out", str(out_dir),
                      "--quiet", "--jobs", str(jobs)], "analyze")


def run_peer(name, files, fs):
    """Run the end-to-end script of peer ``name`` (bench_pipeline.PEER_SCRIPT) on ``files``
    in a fresh interpreter; return what :func:`run_timed` returns."""
    return run_timed([sys.executable, "-c", peer_script(name), repr(float(fs)), *map(str, files)], name)


def run_timed(cmd, label):
    """Run ``cmd``, sampling memory; return (wall s, peak RSS of one process MB, peak total MB, status).

    Wall clock from start to exit. Peak memory is sampled every 20 ms with
    psutil: the largest resident set of any one process (the main one or a
    worker), and of all of them together.
    """
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_one = peak_all = 0
    stop = threading.Event()

    def sample():
        nonlocal peak_one, peak_all
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
                if rss:
                    peak_one = max(peak_one, max(rss))
                    peak_all = max(peak_all, sum(rss))
            except psutil.NoSuchProcess:
                return
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    thread.join()
    if proc.returncode != 0:
        print(f"{label} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, peak_one / 2 ** 20, peak_all / 2 ** 20, proc.returncode


def read_only(path):
    _, chunks = iter_csv(path, chunk_samples=CHUNK_SAMPLES)
    n = 0
    for chunk in chunks:
        n += chunk.n_samples
    return n


def processing(x, info):
    settings = PipelineSettings()
    monitor = SpectrumMonitor(info, settings)
    chunks = split_into_chunks(x, info, chunk_samples_for(info.n_channels))
    result = analyze_stream(info, monitor.observe(chunks), settings)
    monitor.median_frequency(result.mains_hz)
    return result


def read_and_process(path, n_channels, ahead):
    """Read the CSV and analyse it as ``analyze`` does, with or without the read-ahead thread.

    The file is read in the chunks ``analyze`` analyses (longer ones for
    few channels, :func:`~biofeedback.analysis.runner.chunk_samples_for`).
    """
    settings = PipelineSettings()
    info, chunks = iter_csv(path, chunk_samples=chunk_samples_for(n_channels))
    if ahead:
        chunks = prefetch(chunks)
    monitor = SpectrumMonitor(info, settings)
    result = analyze_stream(info, monitor.observe(chunks), settings)
    monitor.median_frequency(result.mains_hz)
    return result


def per_hour(seconds, minutes, n_files=1):
    return seconds / (n_files * minutes / 60.0)


def batch_size(minutes):
    """Files per ``analyze`` run: copies making at least an hour of recording, and at least 2.

    A batch tool is used on folders of recordings, where the interpreter's
    start-up is paid once; a run on one short file would measure mostly the
    start-up (printed on its own line instead). Two files at least, so that
    ``--jobs 2`` has files to share.
    """
    return max(2, math.ceil(60.0 / minutes))


def startup_seconds(cmd, repeat=3):
    """Best wall clock of ``cmd`` (a start-up: interpreter and imports, no work)."""
    return min(run_timed(cmd, "start-up")[0] for _ in range(repeat))


def faster(speedup):
    """``analyze 14x faster`` or, below 1, ``analyze 2.5x slower`` (never "0x faster")."""
    if speedup >= 1:
        return f"analyze {speedup:.2g}x faster" if speedup < 10 else f"analyze {speedup:.0f}x faster"
    return f"analyze {1 / speedup:.2g}x slower"


def extrapolate(measured, minutes):
    """A peer's seconds per file at ``minutes`` from its per-file seconds measured at shorter lengths.

    Linear in the length through the 1 and 10 min costs when both exist, so
    a fixed cost per file is counted once, not scaled with the length; else
    proportional to the 10 min cost, as for the in-memory rows. Returns
    (seconds, note).
    """
    t10 = measured[10.0]
    if 1.0 in measured:
        return t10 + (t10 - measured[1.0]) * (minutes - 10.0) / 9.0, "per file extrapolated from 1 and 10 min"
    return t10 * minutes / 10.0, "per file extrapolated from 10 min"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=None, help="file lengths (default 1 10 60)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values (default 1 2)")
    parser.add_argument("--quick", action="store_true", help="1 min files only")
    parser.add_argument("--externals-at-60", action="store_true",
                        help="also time NeuroKit2/BioSPPy on the 60 min files (slow) instead of extrapolating")
    parser.add_argument("--tmp", default=None, help="folder for the generated files (default: system temp)")
    args = parser.parse_args(argv)
    minutes_list = args.minutes or ([1.0] if args.quick else [1.0, 10.0, 60.0])
    warnings.simplefilter("ignore")

    print("Machine")
    print_machine_info()
    peers = {name: load_peer(name) for name in PEERS}
    print("  " + "; ".join(f"{PEERS[name][0]} : {version if run else 'not available'}"
                           for name, (run, version) in peers.items()))
    work = tempfile.mkdtemp(prefix="bench-batch-", dir=args.tmp)
    free = shutil.disk_usage(work).free / 2 ** 30
    print(f"  scratch folder : {work} ({free:.0f} GiB free)")
    # The in-memory rows run in this process: under the allocator settings analyze gives its own.
    print(f"  allocator      : {'tuned as analyze tunes its process' if tune_allocator() else 'left as it is'}"
          " (runner.tune_allocator; in-memory rows, floor and peers alike)\n")

    # Start-ups, timed before the files exist: what every run pays before its first file.
    startup = {"analyze": startup_seconds([sys.executable, "-m", "biofeedback", "analyze", "--help"])}
    for name, (run, _) in peers.items():
        if run is not None:
            startup[name] = startup_seconds([sys.executable, "-c", peer_script(name), "1000.0"])
    print("Start-up, best of 3 (interpreter and imports, no file): "
          + "; ".join(f"{name} {t:.2f} s" for name, t in startup.items()) + "\n")

    rows, rate_rows, checks = [], [], []
    external_10: dict = {}  # (layout, name): in-memory seconds at 10 min
    peer_e2e: dict = {}  # (layout, name): {minutes: seconds of one file in the end-to-end script}
    try:
        for n_ch, fs in LAYOUTS:
            for minutes in minutes_list:
                layout = f"{n_ch} ch @ {fs / 1000:g} kHz"
                x = make_emg(n_ch, fs, minutes * 60.0, seed=n_ch)
                info = StreamInfo.default_names(n_ch, fs)
                path = os.path.join(work, f"rec_{n_ch}ch_{minutes:g}min.csv")
                t0 = time.perf_counter()
                write_recording(path, Recording(x, info), float_format="%.2f")
                n_files = batch_size(minutes)
                batch = [path]
                for i in range(1, n_files):
                    batch.append(path.replace(".csv", f"_copy{i}.csv"))
                    shutil.copyfile(path, batch[-1])
                mb = os.path.getsize(path) / 1e6
                print(f"{layout}, {minutes:g} min: wrote {n_files} x {mb:.0f} MB in {time.perf_counter() - t0:.0f} s",
                      flush=True)
                # Best of 5: a 1 min file reads in ~10 ms, where a busy machine is felt.
                read_t, _ = best_of(lambda: read_only(path), 1 if minutes >= 60 else 5)
                rate_rows.append([layout, f"{minutes:g}", f"{mb:.1f}", f"{read_t:.2f}", f"{mb / read_t:.0f}"])
                checks.append(("read", layout, minutes, mb / read_t))
                # Repetitions: a 1 min file is processed in 10-30 ms, where one busy moment of this
                # shared machine doubles a single timing; longer files average the noise out themselves.
                reps = 1 if minutes >= 60 else 2 if minutes >= 10 else 7
                # The floor is the faster of one pass over the array and a pass in analyze's chunks.
                floor_t = min(best_of(lambda: floor_pass(x, fs), reps)[0],
                              best_of(lambda: floor_pass_chunked(x, fs, chunk_samples_for(n_ch)), reps)[0])
                proc_t, _ = best_of(lambda: processing(x, info), reps)
                inline_t, _ = best_of(lambda: read_and_process(path, n_ch, False), reps)
                ahead_t, _ = best_of(lambda: read_and_process(path, n_ch, True), reps)
                checks.append(("floor", layout, minutes, proc_t / floor_t))
                results = {}
                for jobs in args.jobs:
                    out_dir = os.path.join(work, f"out_{n_ch}_{minutes:g}_{jobs}")
                    wall, one, total, status = run_analyze(batch, out_dir, jobs)
                    shutil.rmtree(out_dir, ignore_errors=True)
                    results[jobs] = wall
                    rows.append([layout, f"{minutes:g}", f"analyze --jobs {jobs} ({n_files} files)",
                                 f"{per_hour(wall, minutes, n_files):.1f}", f"{one:.0f}", f"{total:.0f}",
                                 "" if status == 0 else f"exit {status}"])
                    checks.append(("rss", layout, minutes, one))
                rows.append([layout, f"{minutes:g}", "read + processing, in line", f"{per_hour(inline_t, minutes):.1f}",
                             "", "", ""])
                rows.append([layout, f"{minutes:g}", "read + processing, read ahead", f"{per_hour(ahead_t, minutes):.1f}",
                             "", "", f"{inline_t / ahead_t:.2f}x the in-line speed"
                             + ("" if n_ch >= PREFETCH_MIN_CHANNELS else " (analyze reads 1 ch in line)")])
                rows.append([layout, f"{minutes:g}", "processing (in memory)", f"{per_hour(proc_t, minutes):.1f}",
                             "", "", f"{proc_t / floor_t:.2f}x floor"])
                rows.append([layout, f"{minutes:g}", "floor sosfilt+RMS", f"{per_hour(floor_t, minutes):.1f}", "",
                             "", ""])
                e2e = per_hour(results.get(1, min(results.values())), minutes, n_files)
                for name, (run, _) in peers.items():
                    if run is None:
                        continue
                    slow = (layout, name) in external_10 and (
                        external_10[(layout, name)] / n_ch * minutes / 10.0 > PEER_RUN_S)
                    if minutes >= 60 and not args.externals_at_60 and slow:
                        # Only a peer whose channel would take minutes here (NeuroKit2): a quick one
                        # is measured, since its cost may grow faster than the length (BioSPPy's does).
                        t = external_10[(layout, name)] * minutes / 10.0
                        note = "extrapolated from 10 min"
                    else:
                        t1, _ = best_of(lambda: run(x[:1], fs), 1)
                        t = t1 * n_ch
                        note = f"ch1 x {n_ch}" if n_ch > 1 else ""
                        if minutes == 10:
                            external_10[(layout, name)] = t
                    speedup = per_hour(t, minutes) / e2e
                    rows.append([layout, f"{minutes:g}", f"{name}, in memory", f"{per_hour(t, minutes):.1f}", "", "",
                                 faster(speedup) + (f"; {note}" if note else "")])
                    checks.append((name, layout, minutes, speedup))

                    # End to end: the peer's script on the batch, every channel: on as many of its
                    # files as its in-memory time says take about PEER_RUN_S (all of a quick
                    # peer's), the rest extrapolated (see the module docstring).
                    measured = peer_e2e.setdefault((layout, name), {})
                    one = total = None
                    run_files = max(1, min(n_files, int(PEER_RUN_S // t)))  # t: in-memory s per file
                    if run_files < n_files and minutes >= 60 and not args.externals_at_60 and slow and 10.0 in measured:
                        per_file, note = extrapolate(measured, minutes)
                        wall = startup[name] + n_files * per_file
                    else:
                        wall, one, total, status = run_peer(name, batch[:run_files], fs)
                        per_file = measured[minutes] = max(0.0, wall - startup[name]) / run_files
                        note = f"{run_files} files, fresh interpreter"
                        if run_files < n_files:
                            wall = startup[name] + n_files * per_file
                            note = f"start-up + {n_files} x a file of a {run_files}-file run"
                        note += "" if status == 0 else f"; exit {status}"
                    speedup = per_hour(wall, minutes, n_files) / e2e
                    rows.append([layout, f"{minutes:g}", f"{name}, end to end ({n_files} files)",
                                 f"{per_hour(wall, minutes, n_files):.1f}", "" if one is None else f"{one:.0f}",
                                 "" if total is None else f"{total:.0f}", f"{faster(speedup)}; {note}"])
                    checks.append((f"{name} end to end", layout, minutes, speedup))
                for file in batch:
                    os.remove(file)
                x = None  # free the array before the next file
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nSeconds per recording-hour (lower is better); RSS = peak resident memory in MB")
    print_table(["layout", "min", "method", "s / rec-hour", "RSS one proc", "RSS all", "note"], rows,
                align="lrlrrrl")
    print(f"\nReading CSV (iter_csv, {CHUNK_SAMPLES}-sample chunks)")
    print_table(["layout", "min", "MB", "seconds", "MB/s"], rate_rows)
    print("\nTargets")

    def verdict(ok):
        return "met" if ok else "NOT met"

    for kind, layout, minutes, value in checks:
        if kind == "read":
            print(f"  read {layout} {minutes:g} min: {value:.0f} MB/s (>= {TARGET_READ_MBS:g}): "
                  f"{verdict(value >= TARGET_READ_MBS)}")
        elif kind == "floor":
            print(f"  processing {layout} {minutes:g} min: {value:.2f}x the floor (<= {TARGET_FLOOR:g}x): "
                  f"{verdict(value <= TARGET_FLOOR)}")
        elif kind == "rss":
            print(f"  peak RSS {layout} {minutes:g} min: {value:.0f} MB per process (< {TARGET_RSS_MB:g}): "
                  f"{verdict(value < TARGET_RSS_MB)}")
        else:
            target = TARGET_NK if kind.startswith("NeuroKit2") else TARGET_BIOSPPY
            if kind.endswith(" end to end"):
                what = f"{kind[:-len(' end to end')]} {layout} {minutes:g} min, both end to end on the same files"
            else:
                what = f"{kind} {layout} {minutes:g} min, strict (peer in memory, its imports and reading not timed)"
            print(f"  {what}: {faster(value)} (target >= {target:g}x faster): {verdict(value >= target)}")


if __name__ == "__main__":
    main()
