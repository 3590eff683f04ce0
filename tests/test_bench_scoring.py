"""Scoring functions of the detection benchmark (benchmarks/scoring.py).

Pure arithmetic on onset times: fast, no shared data, no third-party peers.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scoring  # noqa: E402
from scoring import (  # noqa: E402
    Score, count_in_intervals, format_cell, intervals_from_mask, match_onsets, merge_close,
    near_any, normalise_intervals, pool_channels, score_onsets, subtract_intervals, total_duration,
)


# -- matching -------------------------------------------------------------------------------------
def test_match_is_one_to_one_and_closest_first():
    # Two detections near one true onset: only the closer one matches.
    matches = match_onsets([0.9, 1.05], [1.0], 0.2)
    assert matches == [(1, 0, pytest.approx(0.05))]


def test_greedy_prefers_the_globally_closest_pair():
    # Detection 1.45 is within tolerance of both 1.0 and 1.5; it goes to 1.5
    # (error 0.05), leaving 1.0 to the detection at 1.2.
    matches = match_onsets([1.2, 1.45], [1.0, 1.5], 0.5)
    assert [(i, j) for i, j, _ in matches] == [(0, 0), (1, 1)]
    assert [e for _, _, e in matches] == [pytest.approx(0.2), pytest.approx(-0.05)]


def test_tolerance_is_inclusive_and_per_onset():
    assert len(match_onsets([1.25], [1.0], 0.25)) == 1
    assert match_onsets([1.2501], [1.0], 0.25) == []
    # One tolerance per true onset.
    matches = match_onsets([1.3, 5.3], [1.0, 5.0], [0.2, 0.5])
    assert [(i, j) for i, j, _ in matches] == [(1, 1)]


def test_match_unsorted_input_and_empty():
    matches = match_onsets([5.1, 1.1, 3.0], [1.0, 5.0], 0.2)
    assert [(i, j) for i, j, _ in matches] == [(1, 0), (0, 1)]
    assert match_onsets([], [1.0], 0.2) == []
    assert match_onsets([1.0], [], 0.2) == []
    with pytest.raises(ValueError):
        match_onsets([1.0], [1.0], -0.1)


# -- scores ---------------------------------------------------------------------------------------
def test_score_counts_precision_recall_f1():
    s = score_onsets([1.05, 2.0, 5.1, 9.0], [1.0, 5.0, 7.0], 0.2)
    assert (s.tp, s.fp, s.fn) == (2, 2, 1)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert s.median_abs_error == pytest.approx(0.075)
    assert s.n_detected == 4


def test_nothing_detected_gives_zero_f1_and_undefined_precision():
    s = score_onsets([], [1.0, 2.0], 0.2)
    assert s.f1 == 0.0 and s.recall == 0.0 and math.isnan(s.precision)
    assert math.isnan(s.median_abs_error)


def test_rest_only_has_no_f1_but_a_false_alarm_rate():
    s = score_onsets([], [], 0.2, rest=[(0.0, 60.0)])
    assert math.isnan(s.f1) and s.fa_per_min == 0.0
    s = score_onsets([10.0, 20.0, 70.0], [], 0.2, rest=[(0.0, 30.0), (60.0, 90.0)])
    assert s.rest_detections == 3 and s.fa_per_min == pytest.approx(3.0)
    assert s.fp == 3 and s.f1 == 0.0


def test_false_alarms_only_count_onsets_inside_rest():
    # 1.0 and 12.0 start outside rest (before it, in a gap); 5.0 and 19.0 inside.
    s = score_onsets([1.0, 5.0, 12.0, 19.0], [], 0.2, rest=[(2.0, 10.0), (15.0, 20.0)])
    assert s.rest_detections == 2
    assert s.rest_s == pytest.approx(13.0)
    assert s.fa_per_min == pytest.approx(2 / (13.0 / 60.0))
    assert math.isnan(Score().fa_per_min)  # no rest at all


def test_scores_add_up_over_recordings():
    a = score_onsets([1.0], [1.0], 0.1, rest=[(5.0, 35.0)])
    b = score_onsets([2.0, 40.0], [8.0], 0.1, rest=[(30.0, 60.0)])
    total = a + b
    assert (total.tp, total.fp, total.fn) == (1, 2, 1)
    assert total.rest_detections == 1 and total.rest_s == pytest.approx(60.0)
    assert total.fa_per_min == pytest.approx(1.0)
    assert total.n_detected == 3 and total.n_true == 2


# -- intervals ------------------------------------------------------------------------------------
def test_interval_helpers():
    assert normalise_intervals([(3, 4), (0, 2), (1, 2.5), (5, 5)]) == [(0.0, 2.5), (3.0, 4.0)]
    assert total_duration([(0, 2), (1, 3)]) == pytest.approx(3.0)
    assert subtract_intervals([(0, 10)], [(2, 3), (9, 12)]) == [(0.0, 2.0), (3.0, 9.0)]
    assert subtract_intervals([(0, 1)], [(0, 1)]) == []
    # Half-open: the start is inside, the end is not.
    assert count_in_intervals([0.0, 1.0, 2.0, 5.0], [(0, 1), (2, 3)]) == 2
    assert count_in_intervals([], [(0, 1)]) == 0


def test_intervals_from_mask_and_merging():
    fs = 10.0
    mask = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
    spans = intervals_from_mask(mask, fs)
    assert spans == [(0.0, 0.2), (0.4, 0.7), (0.8, 1.0)]
    assert intervals_from_mask(np.zeros(5, bool), fs) == []
    assert intervals_from_mask(np.ones(3, bool), fs) == [(0.0, 0.3)]
    # Gaps shorter than 0.15 s are joined, then stretches shorter than 0.3 s dropped.
    assert merge_close(spans, 0.15) == [(0.0, 0.2), (0.4, 1.0)]
    assert merge_close(spans, 0.15, min_length_s=0.3) == [(0.4, 1.0)]


# -- pooling channels -----------------------------------------------------------------------------
def test_pooling_merges_one_contraction_seen_on_several_channels():
    pooled = pool_channels([[5.0, 15.0], [5.3], [5.6, 15.2]], window_s=0.75)
    assert list(pooled) == [5.0, 15.0]


def test_pooling_keeps_repeats_on_one_channel_and_late_onsets():
    # A second onset on the same channel is a separate detection (a split);
    # an onset later than the window opens a new group.
    pooled = pool_channels([[5.0, 5.2], [6.0]], window_s=0.5)
    assert list(pooled) == [5.0, 5.2, 6.0]
    assert pool_channels([], 1.0).size == 0
    assert list(pool_channels([[2.0, 1.0]], 0.5)) == [1.0, 2.0]


def test_near_any_counts_detections_locked_to_marks():
    beats = [1.0, 2.0, 3.0]
    assert near_any([0.9, 1.2, 1.5, 2.95], beats, 0.15, 0.25) == 3
    assert near_any([0.5], [], 0.1, 0.1) == 0


def test_cell_format():
    s = score_onsets([1.0, 2.0], [1.02, 3.0], 0.1, rest=[(10.0, 70.0)])
    assert format_cell(s) == ".50 .50/.50 0.0 20"
    assert scoring.fmt_ratio(1.0) == "1.0" and scoring.fmt_ratio(float("nan")) == "-"
    assert scoring.fmt_rate(float("nan")) == "-" and scoring.fmt_rate(250.4) == "250"
