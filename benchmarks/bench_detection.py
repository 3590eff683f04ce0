"""Onset detection on labelled real recordings and a simulated grid, against
NeuroKit2 and BioSPPy on the very same signals.

Usage::

    python benchmarks/bench_detection.py            # everything (< 10 min on 2 cores)
    python benchmarks/bench_detection.py --quick    # 2 rates x 2 SNRs, 1 seed
    python benchmarks/bench_detection.py --only myo # rows whose name contains "myo"

Data: ``shared/data/real/`` beside the project (``$BIOFEEDBACK_SHARED_DATA``
names another ``shared`` folder). Rows whose files are missing print
"skipped (not found)". How truth follows from each dataset's labels, and
which channels are scored, is written in ``detection_data.py`` and printed
as a legend.

Methods (each gets the same array: the scored channels of the recording)
----------------------------------------------------------------------
* ``biofeedback``: ``analyze_recording(recording)`` with default settings,
  no rest marked and no cue track (what a user gets from a raw file). Events
  of the detector's activation kinds (contraction, spasm, cramp, twitch,
  failure to relax) count as detections; other kinds (elevated tone, gaps,
  signal-quality flags) are ignored and listed. A cue track only
  classifies activations, it does not move onsets, so there is no second,
  cue-aware column.
* ``nk process``: ``neurokit2.emg_process(x, sampling_rate=fs)`` defaults;
  onsets = rising edges of its ``EMG_Activity`` column.
* ``nk mixture``: ``neurokit2.emg_activation(emg_amplitude=<EMG_Amplitude of
  emg_process>, sampling_rate=fs, method="mixture")``; onsets = rising
  edges of its activity.
* ``biosppy emg``: ``biosppy.signals.emg.emg(signal=x, sampling_rate=fs)``.
* ``bonato`` / ``hodges-bui``: ``biosppy.signals.emg.bonato_onset_detector``
  and ``hodges_bui_onset_detector`` on the signal band-passed with
  ``biosppy.signals.tools.filter_signal`` (Butterworth order 4, 20 Hz to
  min(450 Hz, 0.45 fs), zero phase: the SENIAM band, as our default preset),
  given the first rest of at least 1 s from the truth as index pair.
  Bonato (Bonato et al. 1998; parameters as its usual r0 = 1 of m = 5, 30 ms
  minimum): ``samples_above_fail = r0 = 1``, ``fail_size = m - r0 = 4``,
  ``active_state_duration`` = 30 ms in test-function samples (computed at
  fs/2), and the threshold that gives a 5 % false-alarm probability for 1
  of 5 chi-square(2) test values, -2 ln(1 - 0.95^(1/5)) = 9.17.
  Hodges-Bui: 25 ms moving-average window, threshold 3 standard deviations
  of the rest (the common setting from Hodges & Bui 1996).

BioSPPy's detectors return rising *and* falling threshold crossings in one
sorted array. Only the rising ones are onsets: a crossing is rising when the
method's own test function is above its threshold just after it
(``emg.emg``: the 50 ms smoothed rectified signal and its default threshold
1.2 mean + 2 SD, recomputed with ``biosppy.signals.tools.smoother``; Bonato
and Hodges-Bui: the ``processed`` test function they return).

Multi-channel recordings: every method runs on every scored channel; the
onsets of all channels are pooled into one list ("a detection on any scored
channel"): onsets from other channels within twice the row's onset
tolerance of a group's first onset (the width of one reference onset's
match window: both could match the same true onset, so the scoring could
not tell them apart anyway) are the same contraction seen on another
electrode, while every onset a method repeats on one channel still counts
(``scoring.pool_channels``). The onsets of one Myo gesture spread over up
to 0.95 s across its five electrodes (an anticipatory burst on one, the
slow rise of a weak one), more than the 0.75 s tolerance. Scoring
(``scoring.py``): greedy one-to-one onset matching within the tolerance,
F1/precision/recall, false alarms per minute of rest, median |onset error|.
A crash of a peer prints the error in its cell.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, print_machine_info, print_table  # noqa: E402
import detection_data as dd  # noqa: E402
from scoring import (  # noqa: E402
    Score, drop_in_intervals, fmt_rate, fmt_ratio, format_cell, inside_intervals, near_any, pool_channels,
    score_onsets,
)

from biofeedback.analysis.batch import analyze_recording  # noqa: E402
from biofeedback.core.types import Recording  # noqa: E402

try:  # the detector's own list of muscle-activation kinds, when it has one
    from biofeedback.detect.classify import ACTIVATION_KINDS as MUSCLE_KINDS  # noqa: E402
except ImportError:  # pragma: no cover - older detector
    MUSCLE_KINDS = ("contraction", "failure_to_relax", "spasm", "cramp", "twitch")
RATES = (250.0, 500.0, 1000.0, 2000.0)
SNRS = (0.0, 3.0, 6.0, 10.0, 20.0)
SEEDS = (0, 1)
QUICK_RATES = (250.0, 1000.0)
QUICK_SNRS = (3.0, 10.0)
QUICK_SEEDS = (0,)

# Targets of the issue.
TARGET_F1 = 0.95
TARGET_COUNT_DELTA = 1
TARGET_FA_PER_MIN = 0.5
TARGET_SPASM_F1 = 0.95
TARGET_SPASM_MIN_SNR = 6.0

BONATO_R0, BONATO_M, BONATO_MIN_S, BONATO_PFA = 1, 5, 0.030, 0.05
BONATO_THRESHOLD = -2.0 * math.log(1.0 - (1.0 - BONATO_PFA) ** (1.0 / BONATO_M))
HODGES_WINDOW_S, HODGES_SD = 0.025, 3.0


#: Onsets of different channels pool into one within this many tolerances
#: (the width of a match window, see the module docstring).
POOL_WINDOWS = 2.0


class NotApplicable(Exception):
    """The method cannot run on this case (e.g. no rest segment); shown as n/a."""


# -- methods: each returns one array of onset times (s) per channel ---------------------------------
IGNORED_KINDS: set = set()


def run_biofeedback(case):
    # Samples only: no cue track (the simulator's included), as from a raw file.
    rec = Recording(data=case.recording.data, info=case.recording.info)
    result = analyze_recording(rec)
    per = [[] for _ in rec.info.ch_names]
    index = {name: i for i, name in enumerate(rec.info.ch_names)}
    for ev in result.events:
        if ev.kind in MUSCLE_KINDS:
            per[index[ev.channel]].append(ev.onset_s)
        else:
            IGNORED_KINDS.add(ev.kind)
    return [np.asarray(p) for p in per]


def _rising_edges(active, fs):
    active = np.asarray(active, dtype=float) > 0.5
    idx = np.flatnonzero(active[1:] & ~active[:-1]) + 1
    if active.size and active[0]:
        idx = np.concatenate([[0], idx])
    return idx / fs


_NK_CACHE: dict = {}


def _nk_process(case, ch):
    key = (id(case), ch)
    if key not in _NK_CACHE:
        import neurokit2 as nk

        try:
            _NK_CACHE[key] = nk.emg_process(case.recording.data[ch], sampling_rate=case.recording.info.fs)[0]
        except Exception as exc:
            _NK_CACHE[key] = exc
    out = _NK_CACHE[key]
    if isinstance(out, Exception):
        raise out
    return out


def run_nk_process(case):
    fs = case.recording.info.fs
    return [_rising_edges(_nk_process(case, ch)["EMG_Activity"].to_numpy(), fs)
            for ch in range(case.recording.info.n_channels)]


def run_nk_mixture(case):
    import neurokit2 as nk

    fs = case.recording.info.fs
    out = []
    for ch in range(case.recording.info.n_channels):
        amplitude = _nk_process(case, ch)["EMG_Amplitude"].to_numpy()
        activity, _ = nk.emg_activation(emg_amplitude=amplitude, sampling_rate=fs, method="mixture")
        out.append(_rising_edges(activity["EMG_Activity"].to_numpy(), fs))
    return out


def _rising_only(crossings, test, threshold, shift=0):
    """Keep crossings after which ``test`` (indexed ``crossing - shift``) is >= threshold."""
    crossings = np.asarray(crossings, dtype=int)
    nxt = crossings - shift + 1
    ok = (nxt >= 0) & (nxt < len(test))
    keep = np.zeros(crossings.size, dtype=bool)
    keep[ok] = np.asarray(test)[nxt[ok]] >= threshold
    return crossings[keep]


def run_biosppy_emg(case):
    from biosppy.signals import emg, tools

    fs = case.recording.info.fs
    out = []
    for x in case.recording.data:
        res = emg.emg(signal=x, sampling_rate=fs, show=False)
        envelope, _ = tools.smoother(signal=np.abs(res["filtered"]), kernel="boxzen", size=int(0.05 * fs),
                                     mirror=True)
        threshold = 1.2 * np.mean(envelope) + 2.0 * np.std(envelope, ddof=1)
        out.append(_rising_only(res["onsets"], envelope, threshold) / fs)
    return out


def _peer_input(case):
    from biosppy.signals import tools

    if case.peer_rest is None:
        raise NotApplicable("no rest >= 1 s")
    fs = case.recording.info.fs
    band = [20.0, min(450.0, 0.45 * fs)]
    filtered = [tools.filter_signal(signal=x, ftype="butter", band="bandpass", order=4, frequency=band,
                                    sampling_rate=fs)["signal"] for x in case.recording.data]
    a, b = case.peer_rest
    return fs, filtered, [int(round(a * fs)), int(round(b * fs))]


def run_bonato(case):
    from biosppy.signals import emg

    fs, filtered, rest = _peer_input(case)
    out = []
    for x in filtered:
        onsets, test = emg.bonato_onset_detector(
            signal=x, rest=rest, sampling_rate=fs, threshold=BONATO_THRESHOLD,
            active_state_duration=max(1, int(round(BONATO_MIN_S * fs / 2.0))),
            samples_above_fail=BONATO_R0, fail_size=BONATO_M - BONATO_R0)
        onsets = np.asarray(onsets, dtype=int)
        test = np.asarray(test)
        # Alarm times are reported at even indices 2 * (k // 2); the test value there is test[k // 2].
        keep = test[np.clip(onsets // 2, 0, max(0, test.size - 1))] >= BONATO_THRESHOLD if test.size else []
        out.append(onsets[np.asarray(keep, dtype=bool)] / fs)
    return out


def run_hodges(case):
    from biosppy.signals import emg

    fs, filtered, rest = _peer_input(case)
    size = max(1, int(round(HODGES_WINDOW_S * fs)))
    out = []
    for x in filtered:
        onsets, test = emg.hodges_bui_onset_detector(signal=x, rest=rest, sampling_rate=fs, size=size,
                                                     threshold=HODGES_SD)
        out.append(_rising_only(onsets, test, HODGES_SD, shift=int(size / 2)) / fs)
    return out


METHODS = (
    ("biofeedback", run_biofeedback),
    ("nk process", run_nk_process),
    ("nk mixture", run_nk_mixture),
    ("biosppy emg", run_biosppy_emg),
    ("bonato", run_bonato),
    ("hodges-bui", run_hodges),
)


# -- scoring one row with one method --------------------------------------------------------------
class Result:
    """What one method did on one row: a printable cell and the numbers the targets use."""

    def __init__(self, cell, score=None, spasm=None, count=None, error=None, na=False, hb_locked=None,
                 unscorable=False):
        self.cell, self.score, self.spasm, self.count = cell, score, spasm, count
        self.error, self.na, self.hb_locked = error, na, hb_locked
        self.unscorable = unscorable  # the row's truth gives nothing to score (e.g. no onset after a rest)

    @property
    def ok(self):
        return self.error is None and not self.na


def evaluate(row, func) -> Result:
    score, spasm, count, hb = Score(), Score(), 0, 0
    for case in row.cases:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per_channel = func(case)
        except NotApplicable as exc:
            return Result(f"n/a: {exc}", na=True)
        except Exception as exc:  # a peer's crash goes into its cell
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            return Result("ERR", error=msg)
        onsets = pool_channels(per_channel, POOL_WINDOWS * case.tolerance)
        count += onsets.size
        onsets = drop_in_intervals(onsets, case.unscored)
        score = score + score_onsets(onsets, case.onsets, case.tolerance, case.rest)
        if case.spasms is not None:
            in_relax = onsets[inside_intervals(onsets, case.relax)]
            spasm = spasm + score_onsets(in_relax, case.spasms, case.tolerance)
        if case.heartbeats is not None:
            in_rest = onsets[inside_intervals(onsets, case.rest)]
            hb += near_any(in_rest, case.heartbeats, *dd.ECG_LOCK)
    if row.kind == "labelled" and score.n_true == 0 and score.rest_s == 0:
        # Neither a true onset nor a rest: whatever is detected cannot be scored.
        return Result(f"not scorable ({score.n_detected} det.)", score=score, na=True, unscorable=True)
    if row.kind == "count":
        expected = sum(c.expected_count for c in row.cases)
        return Result(f"n={count} ({count - expected:+d})", count=count)
    if row.kind == "rest":
        return Result(f"FA {fmt_rate(score.fa_per_min)} ({score.rest_detections})", score=score)
    if row.kind == "ecg":
        return Result(f"FA {fmt_rate(score.fa_per_min)} ({score.rest_detections},{hb}R) b{score.tp}/{score.n_true}",
                      score=score, hb_locked=hb)
    if row.kind == "synthetic":
        return Result(f"{format_cell(score)} sp{fmt_ratio(spasm.f1)}", score=score, spasm=spasm)
    return Result(format_cell(score), score=score)


# -- targets --------------------------------------------------------------------------------------
def _primary(row, res):
    """Numbers compared across methods for 'at least as good as every peer' (higher is better)."""
    if row.kind == "labelled":
        return (res.score.f1,)
    if row.kind == "synthetic":
        return (res.score.f1, res.spasm.f1)
    if row.kind == "count":
        return (-abs(res.count - sum(c.expected_count for c in row.cases)),)
    return (-res.score.rest_detections,)  # rest and ecg: fewer false alarms


def _nan_low(x):
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else x


def print_targets(rows, results, names):
    ours = names[0]
    lines = []

    def verdict(ok):
        return "met" if ok else "NOT met"

    labelled = [r for r in rows if r.kind == "labelled" and r.cases]
    unscorable = [r.name for r in labelled if results[r.name][ours].unscorable]
    labelled = [r for r in labelled if r.name not in unscorable]
    bad = [f"{r.name} {fmt_ratio(results[r.name][ours].score.f1)}" for r in labelled
           if not results[r.name][ours].ok or not results[r.name][ours].score.f1 >= TARGET_F1]
    if labelled:
        lines.append(f"onset F1 >= {TARGET_F1} on every labelled real set: {verdict(not bad)}"
                     + (f" (below: {', '.join(bad)})" if bad else "")
                     + (f" [not scorable, no onset after a rest: {', '.join(unscorable)}]" if unscorable else ""))
    else:
        lines.append(f"onset F1 >= {TARGET_F1} on every labelled real set: not checked (no labelled set ran"
                     + (f"; not scorable: {', '.join(unscorable)})" if unscorable else ")"))

    counts = [r for r in rows if r.kind == "count" and r.cases]
    for r in counts:
        res = results[r.name][ours]
        expected = sum(c.expected_count for c in r.cases)
        ok = res.ok and abs(res.count - expected) <= TARGET_COUNT_DELTA
        lines.append(f"{r.name}: {expected} counted within +-{TARGET_COUNT_DELTA}: {verdict(ok)} (n={res.count})")

    with_rest = [r for r in rows if r.kind in ("labelled", "rest") and r.cases
                 and any(c.rest for c in r.cases)]
    bad = []
    for r in with_rest:
        s = results[r.name][ours].score
        if s is None:
            bad.append(f"{r.name} (failed)")
        elif not s.fa_per_min <= TARGET_FA_PER_MIN:
            bad.append(f"{r.name} {fmt_rate(s.fa_per_min)}/min over {s.rest_s / 60:.2f} min")
    syn = [r for r in rows if r.kind == "synthetic"]
    if syn:
        pooled = Score()
        for r in syn:
            if results[r.name][ours].ok:
                pooled = pooled + results[r.name][ours].score
        if not pooled.fa_per_min <= TARGET_FA_PER_MIN:
            bad.append(f"synthetic grid {fmt_rate(pooled.fa_per_min)}/min")
    lines.append(f"<= {TARGET_FA_PER_MIN} false alarms per rest minute (each real row with rest, synthetic "
                 f"pooled): {verdict(not bad)}" + (f" (above: {'; '.join(bad)})" if bad else ""))

    for r in (r for r in rows if r.kind == "ecg" and r.cases):
        res = results[r.name][ours]
        ok = res.ok and res.score.rest_detections == 0
        lines.append(f"ECG file, heartbeats not counted (no detection outside the listed bursts): {verdict(ok)}"
                     + (f" ({res.score.rest_detections} false alarms, {res.hb_locked} on an R peak)"
                        if res.ok else ""))

    hi = [r for r in syn if r.snr_db is not None and r.snr_db >= TARGET_SPASM_MIN_SNR]
    if hi:
        bad = [f"{r.name} {fmt_ratio(results[r.name][ours].spasm.f1) if results[r.name][ours].ok else 'ERR'}"
               for r in hi if not (results[r.name][ours].ok and results[r.name][ours].spasm.f1 >= TARGET_SPASM_F1)]
        lines.append(f"spasm F1 >= {TARGET_SPASM_F1} at >= {TARGET_SPASM_MIN_SNR:g} dB: {verdict(not bad)}"
                     + (f" (below: {', '.join(bad)})" if bad else ""))

    beaten, skipped = [], []
    for r in rows:
        if not r.cases:
            continue
        mine = results[r.name][ours]
        if mine.unscorable:
            continue  # nothing to compare (see the row's truth)
        if not mine.ok:
            beaten.append(f"{r.name}: ours failed")
            continue
        for name in names[1:]:
            peer = results[r.name][name]
            if not peer.ok:
                skipped.append(f"{name}@{r.name}")
                continue
            a = [_nan_low(v) for v in _primary(r, mine)]
            b = [_nan_low(v) for v in _primary(r, peer)]
            if any(y > x + 1e-12 for x, y in zip(a, b)):
                beaten.append(f"{r.name}: {name}")
    lines.append("at least as good as every peer on every row (F1; spasm F1; |count-56|; false alarms): "
                 + verdict(not beaten) + (f" (beaten: {'; '.join(beaten)})" if beaten else ""))
    if skipped:
        lines.append(f"  not compared (peer crashed or n/a): {len(skipped)} cells")
    print("\nTargets (biofeedback defaults)")
    for line in lines:
        print("  " + line)


def print_legend(rows):
    print("Cells: labelled/synthetic rows 'F1 P/R FA/min err_ms' = onset F1, precision/recall, false alarms")
    print("  per minute of rest, median |onset error| in ms (vs the reference onset); synthetic adds 'sp' =")
    print("  spasm F1 (detections in relax phases vs true spasm onsets). Rest rows 'FA rate (count)'.")
    print("  'n=' count (minus the expected one). ECG row 'FA rate (false alarms, of which k within -0.15/")
    print("  +0.25 s of an R peak) b hits/listed bursts'. '-' = undefined (no rest, nothing to score).")
    print("  ERR[k] = the method raised the k-th error listed under the table.")
    print("Truth per row (reference onset, tolerance, scored channels):")
    for r in rows:
        if r.kind != "synthetic":
            print(f"  {r.name:<26} {r.truth}")
    syn = [r for r in rows if r.kind == "synthetic"]
    if syn:
        print(f"  {'synthetic':<26} {syn[0].truth}; 5 contractions + 10 spasms per seed, 90 s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="synthetic subset (250/1000 Hz x 3/10 dB, 1 seed)")
    parser.add_argument("--only", metavar="NAME", default=None, help="rows whose name contains NAME")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    start = time.perf_counter()

    print("Machine")
    info = machine_info()
    for mod in ("neurokit2", "biosppy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:  # pragma: no cover - reported, not fatal
            info[mod] = f"not available ({type(exc).__name__})"
    print_machine_info(info)
    print(f"Data: {dd.real_data_dir()}\n")

    rates, snrs, seeds = (QUICK_RATES, QUICK_SNRS, QUICK_SEEDS) if args.quick else (RATES, SNRS, SEEDS)
    rows = dd.real_rows(args.only) + dd.synthetic_rows(rates, snrs, seeds, args.only)
    names = [n for n, _ in METHODS]
    results = {}
    for row in rows:
        if row.skipped:
            continue
        t0 = time.perf_counter()
        results[row.name] = {name: evaluate(row, func) for name, func in METHODS}
        _NK_CACHE.clear()
        print(f"  ran {row.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    print_legend(rows)
    print()
    table, notes = [], []
    for row in rows:
        if row.skipped:
            table.append([row.name, row.skipped] + [""] * (len(names) - 1))
            continue
        cells = []
        for n in names:
            res = results[row.name][n]
            if res.error is not None:
                if res.error not in notes:
                    notes.append(res.error)
                cells.append(f"ERR[{notes.index(res.error) + 1}]")
            else:
                cells.append(res.cell)
        table.append([row.name] + cells)
    print_table(["recording"] + names, table, align="l" * (len(names) + 1))
    for i, note in enumerate(notes, 1):
        print(f"[{i}] {note}")
    if IGNORED_KINDS:
        print(f"(biofeedback event kinds not counted as detections: {', '.join(sorted(IGNORED_KINDS))})")
    print_targets(rows, results, names)
    print(f"\nTotal time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
