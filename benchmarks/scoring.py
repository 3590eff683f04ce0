"""Matching detected onsets to true onsets, and the scores of the detection benchmark.

Everything here works on plain onset times in seconds, so it is shared by
every method of ``bench_detection.py`` and tested on its own
(``tests/test_bench_scoring.py``).

Definitions
-----------
* **Match**: detected onsets are paired one-to-one with true onsets. A pair
  is allowed when ``|detected - reference| <= tolerance`` (each true onset
  may carry its own tolerance). Allowed pairs are taken greedily, closest
  first; a detection or a true onset is used at most once.
* **Precision** ``TP / (TP + FP)``, **recall** ``TP / (TP + FN)`` and
  **F1** ``2 TP / (2 TP + FP + FN)``, where TP are matched pairs, FP
  unmatched detections and FN unmatched true onsets. F1 written this way
  is defined (0) when nothing was detected; all three are NaN when there is
  neither a true onset nor a detection.
* **False alarms per minute of rest**: detections whose onset lies inside
  the rest intervals, divided by the rest duration in minutes.
* **Onset error**: ``detected - reference`` of the matched pairs; the
  median of its absolute value is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


# -- intervals ------------------------------------------------------------------------------------
def normalise_intervals(intervals) -> list[tuple[float, float]]:
    """Sorted, non-overlapping ``(start, end)`` intervals (empty ones dropped)."""
    spans = sorted((float(a), float(b)) for a, b in intervals if float(b) > float(a))
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def total_duration(intervals) -> float:
    """Summed length of the union of the intervals, in seconds."""
    return float(sum(b - a for a, b in normalise_intervals(intervals)))


def subtract_intervals(intervals, remove) -> list[tuple[float, float]]:
    """Parts of ``intervals`` not covered by any interval of ``remove``."""
    out = []
    cuts = normalise_intervals(remove)
    for a, b in normalise_intervals(intervals):
        pieces = [(a, b)]
        for c, d in cuts:
            nxt = []
            for p, q in pieces:
                if d <= p or c >= q:
                    nxt.append((p, q))
                    continue
                if c > p:
                    nxt.append((p, c))
                if d < q:
                    nxt.append((d, q))
            pieces = nxt
        out.extend(pieces)
    return normalise_intervals(out)


def inside_intervals(times, intervals) -> np.ndarray:
    """Boolean mask: which of ``times`` fall inside ``[start, end)`` of some interval."""
    times = np.asarray(times, dtype=float).ravel()
    spans = normalise_intervals(intervals)
    inside = np.zeros(times.size, dtype=bool)
    if times.size == 0 or not spans:
        return inside
    starts = np.array([a for a, _ in spans])
    ends = np.array([b for _, b in spans])
    k = np.searchsorted(starts, times, side="right") - 1
    ok = k >= 0
    inside[ok] = times[ok] < ends[k[ok]]
    return inside


def count_in_intervals(times, intervals) -> int:
    """How many of ``times`` fall inside ``[start, end)`` of some interval."""
    return int(inside_intervals(times, intervals).sum())


def drop_in_intervals(times, intervals) -> np.ndarray:
    """``times`` without those inside ``[start, end)`` of some interval."""
    times = np.asarray(times, dtype=float).ravel()
    return times[~inside_intervals(times, intervals)]


def intervals_from_mask(mask, fs: float, t0: float = 0.0) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` of each run of True samples in a boolean mask."""
    mask = np.asarray(mask, dtype=bool).ravel()
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8)))  # last index before each change
    starts = list(edges[~mask[edges]] + 1)
    ends = list(edges[mask[edges]] + 1)
    if mask[0]:
        starts.insert(0, 0)
    if mask[-1]:
        ends.append(mask.size)
    return [(t0 + a / fs, t0 + b / fs) for a, b in zip(starts, ends)]


def merge_close(intervals, gap_s: float, min_length_s: float = 0.0) -> list[tuple[float, float]]:
    """Join intervals separated by less than ``gap_s``; then drop those shorter than ``min_length_s``."""
    out: list[list[float]] = []
    for a, b in normalise_intervals(intervals):
        if out and a - out[-1][1] < gap_s:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out if b - a >= min_length_s]


# -- pooling channels -----------------------------------------------------------------------------
def pool_channels(onsets_per_channel, window_s: float) -> np.ndarray:
    """One onset list for a multi-channel recording ("a detection on any scored channel").

    Onsets of all channels are sorted. The first opens a group; later
    onsets from *other* channels within ``window_s`` of the group's first
    onset belong to the group (the same contraction seen on another
    electrode) and are dropped. An onset that is later, or that comes from
    a channel already in the group, opens a new group. So a method never
    gains by repeating itself on one channel: each of its own onsets on a
    channel counts.

    Parameters
    ----------
    onsets_per_channel : sequence of array-like
        Onset times in seconds, one sequence per channel.
    window_s : float
        Largest spread of one contraction's onsets across channels.

    Returns
    -------
    ndarray
        Kept onsets (the first of each group), sorted.
    """
    items = sorted((float(t), ch) for ch, ts in enumerate(onsets_per_channel)
                   for t in np.asarray(ts, dtype=float).ravel())
    kept: list[float] = []
    start, members = -math.inf, set()
    for t, ch in items:
        if t - start <= window_s and ch not in members:
            members.add(ch)
            continue
        kept.append(t)
        start, members = t, {ch}
    return np.asarray(kept, dtype=float)


# -- matching -------------------------------------------------------------------------------------
def match_onsets(detected, reference, tolerance):
    """Greedy one-to-one matching of detected onsets to true onsets.

    Parameters
    ----------
    detected : array-like of float
        Detected onset times (s).
    reference : array-like of float
        True (reference) onset times (s).
    tolerance : float or array-like of float
        Largest ``|detected - reference|`` of a match, one value or one
        per true onset.

    Returns
    -------
    list of (int, int, float)
        ``(detected index, reference index, detected - reference)`` per
        match, in increasing order of reference index.
    """
    det = np.asarray(detected, dtype=float).ravel()
    ref = np.asarray(reference, dtype=float).ravel()
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), ref.shape)
    if det.size == 0 or ref.size == 0:
        return []
    if np.any(tol < 0):
        raise ValueError("tolerance must be >= 0")
    order = np.argsort(det, kind="stable")
    sdet = det[order]
    pairs = []
    for j in range(ref.size):
        lo = np.searchsorted(sdet, ref[j] - tol[j], side="left")
        hi = np.searchsorted(sdet, ref[j] + tol[j], side="right")
        for k in range(lo, hi):
            i = int(order[k])
            pairs.append((abs(det[i] - ref[j]), i, j))
    pairs.sort()
    used_d, used_r, out = set(), set(), []
    for _, i, j in pairs:
        if i in used_d or j in used_r:
            continue
        used_d.add(i)
        used_r.add(j)
        out.append((i, j, float(det[i] - ref[j])))
    out.sort(key=lambda m: m[1])
    return out


@dataclass
class Score:
    """Counts behind the reported numbers; add Scores to pool recordings or seeds."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list = field(default_factory=list)
    rest_detections: int = 0
    rest_s: float = 0.0
    n_detected: int = 0

    def __add__(self, other: "Score") -> "Score":
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                     list(self.errors) + list(other.errors),
                     self.rest_detections + other.rest_detections, self.rest_s + other.rest_s,
                     self.n_detected + other.n_detected)

    @property
    def n_true(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else math.nan

    @property
    def fa_per_min(self) -> float:
        return self.rest_detections / (self.rest_s / 60.0) if self.rest_s > 0 else math.nan

    @property
    def median_abs_error(self) -> float:
        return float(np.median(np.abs(self.errors))) if self.errors else math.nan


def score_onsets(detected, reference, tolerance, rest=()) -> Score:
    """Match ``detected`` to ``reference`` and count false alarms in ``rest``.

    Parameters
    ----------
    detected : array-like of float
        Detected onsets (s), already pooled over channels.
    reference : array-like of float
        True onsets (s); may be empty (rest-only recording).
    tolerance : float or array-like
        Matching tolerance (s), one value or one per true onset.
    rest : sequence of (float, float)
        Rest intervals (s) for the false-alarm rate.

    Returns
    -------
    Score
    """
    det = np.asarray(detected, dtype=float).ravel()
    ref = np.asarray(reference, dtype=float).ravel()
    matches = match_onsets(det, ref, tolerance)
    tp = len(matches)
    return Score(tp=tp, fp=int(det.size - tp), fn=int(ref.size - tp), errors=[m[2] for m in matches],
                 rest_detections=count_in_intervals(det, rest), rest_s=total_duration(rest),
                 n_detected=int(det.size))


def near_any(times, marks, before_s: float, after_s: float) -> int:
    """How many of ``times`` lie within ``[mark - before_s, mark + after_s]`` of some mark."""
    times = np.asarray(times, dtype=float).ravel()
    marks = np.sort(np.asarray(marks, dtype=float).ravel())
    if times.size == 0 or marks.size == 0:
        return 0
    return count_in_intervals(times, [(m - before_s, m + after_s) for m in marks])


# -- formatting -----------------------------------------------------------------------------------
def fmt_ratio(x: float) -> str:
    """0.953 -> '.95', 1.0 -> '1.0', NaN -> '-'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x >= 0.995:
        return "1.0"
    return f"{x:.2f}".lstrip("0") if x >= 0 else f"{x:.2f}"


def fmt_rate(x: float) -> str:
    """False alarms per minute: '0.0', '3.4', '120', or '-'."""
    if x is None or math.isnan(x):
        return "-"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_ms(x: float) -> str:
    """Seconds to whole milliseconds, '-' for NaN."""
    if x is None or math.isnan(x):
        return "-"
    return f"{1000.0 * x:.0f}"


def format_cell(score: Score) -> str:
    """Compact cell: ``F1 P/R FA/min err_ms`` (see the printed legend)."""
    return f"{fmt_ratio(score.f1)} {fmt_ratio(score.precision)}/{fmt_ratio(score.recall)} " \
           f"{fmt_rate(score.fa_per_min)} {fmt_ms(score.median_abs_error)}"
