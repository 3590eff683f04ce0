"""Throughput of the full processing pipeline against a bare-scipy floor and
against NeuroKit2 and BioSPPy.

Usage::

    python benchmarks/bench_pipeline.py            # 10 min signals, best of 3
    python benchmarks/bench_pipeline.py --quick    # 1 min signals, best of 1
    python benchmarks/bench_pipeline.py --repeat 5 --minutes 10

What is timed (best of N wall-clock runs with ``time.perf_counter``):

* ``floor``: one ``scipy.signal.sosfilt`` call with the pipeline's filter
  coefficients (band-pass and 50 Hz notches), then a moving RMS from one
  cumulative sum. No detector, no chunking, no state: the least work any
  filter + RMS tool can do with the same filters.
* ``pipeline offline``: ``build_pipeline`` (band-pass, 50 Hz notch with
  harmonics, 100 ms RMS, threshold detector with a fixed baseline) run by
  ``process_array`` in chunks of 65 536 samples, as ``analyze`` reads files,
  keeping envelope and filtered layers.
* ``pipeline streaming``: the same stages fed 20 ms chunks one by one, as
  the live display does. Per-call overhead (about 0.1 ms a scipy call)
  dominates here; it is reported to show the live cost in real-time
  factors, not compared with the 3x target, which is for offline runs.
* ``NeuroKit2``: ``nk.emg_process(x, sampling_rate=fs)`` (1 channel only).
* ``BioSPPy``: ``biosppy.signals.emg.emg(signal=x, sampling_rate=fs, show=False)``
  (1 channel only).

The peer calls are the statements of :data:`PEERS`, which
``bench_batch.py`` also runs in its end-to-end peer scripts.

Third-party libraries are skipped with a printed note when not importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
from scipy import signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_of, print_machine_info, print_table, si  # noqa: E402

from biofeedback.core.types import StreamInfo, split_into_chunks  # noqa: E402
from biofeedback.detect import QuietWindowBaseline, ThresholdDetector  # noqa: E402
from biofeedback.dsp import (  # noqa: E402
    BandPass, FilterCascade, MainsNotch, PipelineSettings, build_pipeline, process_array,
)

SETTINGS = PipelineSettings(mains="50")
TARGET_FLOOR_RATIO = 3.0
OFFLINE_CHUNK = 65536  # samples per chunk, as biofeedback analyze reads files
TARGET_NK_SPEEDUP = 50.0


# -- signal -----------------------------------------------------------------------------------
def make_emg(n_channels: int, fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Rest noise, 3 s bursts every 10 s (~12 dB), 50 Hz hum and a DC offset."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    x = rng.standard_normal((n_channels, n)) * 10.0
    amp = ((t % 10.0) >= 6.0) & ((t % 10.0) < 9.0)
    for ch in range(n_channels):
        shift = int(ch * 0.7 * fs)
        x[ch] += np.roll(amp, shift) * 38.0 * rng.standard_normal(n)
        x[ch] += 15.0 * np.sin(2 * np.pi * 50.0 * t + ch) + 1000.0 * ch
    return x


# -- methods ----------------------------------------------------------------------------------
def floor_pass(x, fs):
    """Bare scipy: one sosfilt with the same filters (band-pass and 50 Hz
    notches, as one cascade), moving RMS by cumsum."""
    sos = FilterCascade([BandPass(*SETTINGS.band()), MainsNotch(50.0)]).design(fs)
    w = int(round(SETTINGS.rms_window_s * fs))
    y = signal.sosfilt(sos, x, axis=-1)
    csum = np.cumsum(y * y, axis=-1)
    padded = np.concatenate([np.zeros((x.shape[0], w)), csum], axis=1)
    sums = padded[:, w:] - padded[:, :-w]
    return np.sqrt(np.maximum(sums, 0.0) / w)


def floor_pass_chunked(x, fs, chunk_samples):
    """The floor on consecutive chunks of ``chunk_samples``: the same sosfilt with its state
    carried, the same moving RMS by cumsum with the last window of squares carried; each
    chunk's envelope is dropped (a streaming tool's least work). On an hour of 8 channels
    the whole-array pass slows down under its file-sized temporaries; this one does not."""
    sos = FilterCascade([BandPass(*SETTINGS.band()), MainsNotch(50.0)]).design(fs)
    w = int(round(SETTINGS.rms_window_s * fs))
    zi = np.zeros((sos.shape[0], x.shape[0], 2))
    held = np.zeros((x.shape[0], w))  # the last w squares
    env = None
    for start in range(0, x.shape[1], chunk_samples):
        y, zi = signal.sosfilt(sos, x[:, start:start + chunk_samples], axis=-1, zi=zi)
        squares = np.concatenate([held, y * y], axis=1)
        csum = np.cumsum(squares, axis=1)
        env = np.sqrt(np.maximum(csum[:, w:] - csum[:, :-w], 0.0) / w)
        held = squares[:, -w:]
    return env


def fixed_baseline(x, info):
    """Baseline for the detector, measured once beforehand (not timed)."""
    pipeline = build_pipeline(SETTINGS, info, mains_hz=50, detect=False)
    env, _, _ = process_array(pipeline, x, info)
    quiet = QuietWindowBaseline(info.fs)
    quiet.update(env, 0)
    return quiet.result()


def pipeline_offline(x, info, baseline):
    pipeline = build_pipeline(SETTINGS, info, mains_hz=50, baseline=baseline)
    _, _, events = process_array(pipeline, x, info, chunk_size=OFFLINE_CHUNK)
    return events


def pipeline_streaming(x, info, baseline, chunk_s=0.02):
    pipeline = build_pipeline(SETTINGS, info, mains_hz=50, baseline=baseline)
    events = []
    last = None
    for chunk in split_into_chunks(x, info, max(1, int(round(chunk_s * info.fs)))):
        out = pipeline.process(chunk)
        last = out.data  # what a display would copy into its ring buffer
        events.extend(out.events)
    events.extend(pipeline.find(ThresholdDetector).flush())
    assert last is not None
    return events


#: The peers, one channel per call: (module, import statement, call on ``x``, a
#: 1-D float64 array, sampled at ``fs`` Hz; default arguments otherwise). The
#: in-memory rows and the end-to-end scripts of bench_batch both run these
#: very statements, so the two time the same computation.
PEERS = {
    "NeuroKit2 emg_process": ("neurokit2", "import neurokit2 as nk", "nk.emg_process(x, sampling_rate=fs)"),
    "BioSPPy emg": ("biosppy", "from biosppy.signals import emg", "emg.emg(signal=x, sampling_rate=fs, show=False)"),
}

#: What a user of a peer runs on a CSV file of ``write_recording``: a fresh
#: interpreter imports the peer and pandas, reads each file with
#: ``pandas.read_csv`` (``#`` lines are the format's comments; the header row
#: names the columns; pandas read these files 2.7x faster than
#: ``numpy.loadtxt``, to the same values) and runs the peer on every channel
#: column (all but ``time_s``). Arguments: fs, then the files.
PEER_SCRIPT = """\
import sys
import pandas as pd
{imports}
fs = float(sys.argv[1])
for path in sys.argv[2:]:
    table = pd.read_csv(path, comment="#")
    for name in table.columns[1:]:
        x = table[name].to_numpy(dtype=float)
        {call}
"""


def peer_script(name: str) -> str:
    """Source of the end-to-end script of peer ``name`` (see :data:`PEER_SCRIPT`)."""
    _, imports, call = PEERS[name]
    return PEER_SCRIPT.format(imports=imports, call=call)


def load_peer(name: str):
    """Return (run, version) for peer ``name``; ``run(x, fs)`` processes channel 1 of ``x``
    ``(n_channels, n)``. run is None and version the reason when the peer does not import."""
    module, imports, call = PEERS[name]
    namespace: dict = {}
    try:
        exec(imports, namespace)
        version = __import__(module).__version__
    except Exception as exc:  # ImportError, or a broken optional dependency
        return None, f"{type(exc).__name__}: {exc}"
    one = eval(f"lambda x, fs: {call}", namespace)
    return (lambda x, fs: one(x[0], fs)), version


def load_neurokit():
    return load_peer("NeuroKit2 emg_process")


def load_biosppy():
    return load_peer("BioSPPy emg")


# -- main -----------------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 min signals, best of 1")
    parser.add_argument("--minutes", type=float, default=None, help="signal length (default 10, or 1 with --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="best of N runs (default 3, or 1 with --quick)")
    args = parser.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (1.0 if args.quick else 10.0)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    seconds = 60.0 * minutes
    warnings.simplefilter("ignore")  # third-party deprecation chatter

    print("Machine")
    print_machine_info()
    nk_run, nk_version = load_neurokit()
    bio_run, bio_version = load_biosppy()
    print(f"  neurokit2 : {nk_version if nk_run else 'not available (' + nk_version + ')'}")
    print(f"  biosppy : {bio_version if bio_run else 'not available (' + bio_version + ')'}")
    print(f"\nSignal: {minutes:g} min, pipeline = {SETTINGS.band()[0]:g} Hz-auto band-pass (order "
          f"{SETTINGS.band()[2]}) + 50 Hz notch and harmonics + {SETTINGS.rms_window_s * 1000:g} ms RMS "
          f"+ threshold detector; best of {repeat}\n")

    rows, results = [], {}
    for n_ch, fs, externals in ((1, 1000.0, True), (8, 2000.0, False)):
        x = make_emg(n_ch, fs, seconds, seed=n_ch)
        info = StreamInfo.default_names(n_ch, fs)
        total = x.size
        baseline = fixed_baseline(x, info)
        config = f"{n_ch} ch @ {fs / 1000:g} kHz"
        timings = {}
        timings["floor (sosfilt + cumsum RMS)"], _ = best_of(lambda: floor_pass(x, fs), repeat)
        timings["pipeline offline (64 Ki chunks)"], ev_off = best_of(lambda: pipeline_offline(x, info, baseline), repeat)
        timings["pipeline streaming (20 ms chunks)"], ev_str = best_of(
            lambda: pipeline_streaming(x, info, baseline), repeat)
        assert [(e.channel, e.onset_s, e.offset_s) for e in sorted(ev_off, key=lambda e: (e.channel, e.onset_s))] == \
               [(e.channel, e.onset_s, e.offset_s) for e in sorted(ev_str, key=lambda e: (e.channel, e.onset_s))]
        notes = {"pipeline offline (64 Ki chunks)": f"{len(ev_off)} events"}
        if externals:
            for name, run in (("NeuroKit2 emg_process", nk_run), ("BioSPPy emg", bio_run)):
                if run is None:
                    print(f"note: {name} skipped (not importable)")
                    continue
                timings[name], _ = best_of(lambda run=run: run(x, fs), repeat)
        floor_t = timings["floor (sosfilt + cumsum RMS)"]
        nk_t = timings.get("NeuroKit2 emg_process")
        for method, t in timings.items():
            rows.append([
                config, method, f"{t:.3f}", si(total / t), f"{seconds / t:,.0f}x",
                f"{t / floor_t:.2f}", "-" if nk_t is None else f"{nk_t / t:.1f}", notes.get(method, ""),
            ])
        results[config] = timings

    print_table(["config", "method", "seconds", "samples/s", "real time", "vs floor", "NeuroKit2/this", "note"],
                rows, align="llrrrrrl")

    print("\nTargets")
    for config, timings in results.items():
        floor_t = timings["floor (sosfilt + cumsum RMS)"]
        for method in ("pipeline offline (64 Ki chunks)",):
            ratio = timings[method] / floor_t
            verdict = "met" if ratio <= TARGET_FLOOR_RATIO else "NOT met"
            print(f"  {config}, {method}: {ratio:.2f}x the floor (target <= {TARGET_FLOOR_RATIO:g}x): {verdict}")
    one = results.get("1 ch @ 1 kHz", {})
    if "NeuroKit2 emg_process" in one:
        speedup = one["NeuroKit2 emg_process"] / one["pipeline offline (64 Ki chunks)"]
        verdict = "met" if speedup >= TARGET_NK_SPEEDUP else "NOT met"
        length = "" if minutes == 10 else f" (measured on {minutes:g} min, target is for 10 min)"
        print(f"  1 ch @ 1 kHz: pipeline offline {speedup:.0f}x faster than NeuroKit2 "
              f"(target >= {TARGET_NK_SPEEDUP:g}x): {verdict}{length}")
    else:
        print("  NeuroKit2 target not checked: neurokit2 not importable")


if __name__ == "__main__":
    main()
