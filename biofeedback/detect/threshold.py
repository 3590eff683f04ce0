"""Causal onset/offset detector on an envelope: double threshold, optional CUSUM.

Per channel, a contraction

* **starts** when the envelope rises above the *on* threshold
  ``level + k_on * sigma`` and stays above the *off* threshold
  ``level + k_off * sigma`` for at least ``min_active_s`` (shorter excursions
  are noise and are dropped);
* its **onset** is back-tracked to the last sample where the envelope was
  still inside the resting band ``level + k_band * sigma`` (where it left
  the baseline), at most ``max_backtrack_s`` earlier;
* **ends** at the first sample where the envelope falls below the off
  threshold, unless it clearly re-activates (rises above the *on*
  threshold) within the rest required, in which case the dip is a gap
  inside the same contraction (gap merging). The rest required is
  ``rest_fraction`` of how long the envelope had just been above the off
  threshold without a break, between ``min_rest_s`` and ``max_rest_s``: a
  dip after a hold of several seconds is the hold wavering (weak electrodes
  of the Myo forearm recordings dip below the thresholds for 0.5-1.2 s in
  the middle of a held gesture), while the same dip after a short excursion
  is a rest. The stretch, not the whole event, sets it, so that a raised
  tone with short excursions above the on threshold does not chain them
  into one long contraction. Wandering between the two thresholds after
  the fall does not prolong the contraction: the resting tone of a muscle
  often settles slowly, and that tail is not a contraction.

Optionally (``cusum=True``) a contraction also starts on *sustained*
evidence: a CUSUM (Page 1954) of the envelope above a *reference*
``max(cusum_ratio * level, level + k_cusum * sigma)`` (at most the off
threshold) reaches the evidence that ``min_active_s`` at the on threshold
gives, ``(on - reference) / level * min_active_s`` level-seconds, at least
``min_active_s`` after it last left zero, and the envelope was inside the
resting band at most ``max_backtrack_s`` before the evidence began (a
contraction rises from rest; a level that stays raised is tone). Each
sample adds ``(envelope - reference) / level``, clipped to what a sample at
the on threshold adds (a robust CUSUM: a spike buys no more than the
threshold path's ``min_active_s``). The onset is where the CUSUM last left
zero (Page's change-point estimate). Such a contraction also *ends* on
evidence: a CUSUM of the envelope *below* the reference, with the same
increments and decision level, reaching that level ends it where that
CUSUM last left zero (a two-sided CUSUM). A weak burst hovers around the
off threshold, so ending at the first sample below it would cut it into
pieces. The CUSUM may also re-activate a contraction within the rest
required. This longer integration finds bursts the on threshold cannot
(0-6 dB SNR, where a burst lifts the envelope to only 1.4-2.2 times the
rest), but it assumes a steady rest: on real rests (small movements,
slowly settling tails) it adds false alarms. So by default (``cusum =
"auto"``) it runs only on channels whose baseline shows a steady rest (see
:class:`DetectorSettings`).

Thresholds are relative to the resting baseline (``k * sigma``, with
floors and caps as multiples of the resting level, see
:class:`DetectorSettings`) and, when the baseline carries a maximum
voluntary contraction (MVC), optionally at least a percentage of it (the
CUSUM reference is then the off threshold).

The detector is a :class:`~biofeedback.dsp.base.Stage`: it passes the
envelope through and attaches each completed event to the chunk in which
its end was confirmed. An optional classifier
(:class:`~biofeedback.detect.classify.EventClassifier`) relabels each event
as it is completed (contraction, spasm, cramp...) from the cue track that
travels with the chunks, so live feedback and batch analysis classify with
the same code. When an earlier stage delays the signal (heartbeat
suppression, :mod:`biofeedback.detect.ecg`), ``delay_samples`` dates the
events back to the time of the raw signal. It walks the threshold
*crossings* of each chunk, not its samples (the CUSUM is a cumulative sum
over the chunk), so its cost is a few vectorised operations per chunk plus
a Python step per decision. CUSUM increments are rounded to integer units,
so their sums are exact: decisions depend only on sample indices, and the
events do not depend on how the stream is chunked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biofeedback.core.types import Chunk, Event, StreamInfo
from biofeedback.detect.baseline import Baseline, baseline_from_rest
from biofeedback.dsp.base import Stage
from biofeedback.errors import ParameterError

REST, CANDIDATE, ACTIVE, ENDING = "rest", "candidate", "active", "ending"


@dataclass(frozen=True)
class DetectorSettings:
    """Parameters of :class:`ThresholdDetector`.

    Why these defaults: ``sigma`` is the spread of a *smoothed* envelope,
    5-25 % of the resting level (more for narrow bands, i.e. low sampling
    rates). ``k_on = 8`` with the ``min_ratio_on = 2`` floor puts the on
    threshold at 2-3 times the resting level, below the 3.2-3.3 times a
    burst at 10 dB SNR lifts the envelope to, at every rate from 200 Hz up.
    The baseline is the *typical* rest (see
    :class:`~biofeedback.detect.baseline.QuietWindowBaseline`), so the small
    postural adjustments of a real rest widen ``sigma`` instead of becoming
    contractions. ``min_rest_s = 0.5`` merges the dips of a held,
    fluctuating contraction. ``max_ratio_on = 3`` caps the on threshold at
    three times the resting level whatever ``sigma`` is: the detector is
    designed to find bursts at 10 dB SNR, and a rest that wanders a lot
    (low-level activity between bursts, slowly relaxing tails, a rest
    interrupted by heartbeats) must not make it blind to them.
    ``max_ratio_off = 2.25`` keeps the off:on proportion of the floors
    (1.5:2).

    ``rest_fraction = 0.5``, ``max_rest_s = 1.0``: the rest that ends a
    contraction is half the stretch it had just been held above the off
    threshold, at least ``min_rest_s`` and at most 1 s (twice
    ``min_rest_s``): a longer pause ends any contraction, so that a spasm
    1-1.5 s after a held contraction stays an event of its own. Measured:
    Myo 7.txt fist F1 .80 -> .86 (a split hold merged); no other row moved.

    The CUSUM path (``cusum``) finds contractions too weak for the on
    threshold. ``cusum_ratio = 1.25``: for a change of the
    signal's power by a factor r, the log-likelihood ratio per sample is
    positive where the squared envelope exceeds ``ln r / (1 - 1/r)`` times
    the resting power; for a burst 1.4 times as strong as the rest (3 dB,
    r = 3) that is 1.28 times the resting level in RMS terms, the
    allowance of a CUSUM aimed at 3 dB. ``k_cusum = 2``: where the rest
    itself wanders, the reference rises to two robust standard deviations
    above the level, so that the resting envelope (below it ~98 % of the
    time if Gaussian) drifts the CUSUM down; how much evidence starts a
    contraction is set by the decision level (the evidence of
    ``min_active_s`` at the on threshold), as in any CUSUM, whose allowance
    sits between the two states and whose decision level sets the
    false-alarm rate.

    Why ``cusum = "auto"``: a CUSUM accumulates small excesses over the
    resting level, which is only evidence of a contraction when the rest
    itself is steady. On the simulated grid (stationary rest) it lifts
    onset F1 at 3 dB from .09-.63 to .84-.88 and at 0 dB from 0 to .31-.67
    with no false alarm, but on real recordings, whose rests hold small
    movements and slowly settling tails, it starts on those (forced on,
    ``cusum=True``: Myo 1.txt/7.txt F1 1.0/1.0 -> .86/.53, Myo 0.txt false
    alarms 15 -> 16, emgGO count 57 -> 58). What tells them apart is
    measured on the rest itself: the
    baseline's ``drift``, how much the level of one-second windows of the
    rest wanders (:class:`~biofeedback.detect.baseline.Baseline`).
    Stationary noise gives only the estimation noise of a one-second RMS,
    about ``1 / (2 sqrt(B * 1 s))`` for a bandwidth ``B``: 2-6 % for the
    70-430 Hz bands used here (3.3-4.7 % measured on the simulator at
    250-2000 Hz); real rests 7-40 % (every labelled Myo, UCI and emgGO
    channel). At 200-250 Hz (bands of 70-90 Hz) even a stationary rest can
    show 5-6 %, so there the gate errs on the side of the double threshold.
    ``max_drift = 0.05``: the CUSUM runs on a channel only when its rest
    wanders less than that. The drift is known only for a baseline taken
    from the quietest windows of a recording (batch); a calibration rest of
    a few seconds is too short to measure it, so live detection keeps the
    double threshold alone unless ``cusum=True``.

    These were chosen on these principles and checked on the detection
    benchmark (``benchmarks/bench_detection.py``: simulated grid, labelled
    Myo, UCI and emgGO recordings); other real recordings are kept aside.

    Attributes
    ----------
    k_on : float
        On threshold in robust standard deviations above the resting level.
    k_off : float
        Off threshold in robust standard deviations (``< k_on``: hysteresis).
    min_ratio_on : float
        The on threshold is at least this multiple of the resting level.
        A long RMS window averages so many samples that ``sigma`` becomes a
        tiny fraction of the level; without this floor a harmless 20 %
        wobble of the resting tone would count as a contraction.
    min_ratio_off : float
        Same floor for the off threshold.
    max_ratio_on : float or None
        The on threshold is at most this multiple of the resting level
        (None: no cap).
    max_ratio_off : float or None
        Same cap for the off threshold.
    mvc_on_pct : float or None
        With an MVC in the baseline, the on threshold is at least this
        percentage of the MVC envelope (None: not used).
    mvc_off_pct : float or None
        Same for the off threshold (None: ``min_ratio_off / min_ratio_on``
        of ``mvc_on_pct``).
    min_active_s : float
        Shortest contraction in seconds; shorter excursions are ignored.
    min_rest_s : float
        The shortest rest that ends a contraction: after falling below the
        off threshold the envelope must stay below the on threshold this
        long; shorter dips are merged (gap merging). See ``rest_fraction``.
    k_band : float
        Upper edge of the resting band, in robust standard deviations above
        the level (capped at the off threshold): onsets are back-tracked to
        where the envelope last was inside it.
    max_backtrack_s : float
        Onsets are moved back at most this far.
    settle_s : float
        Nothing is detected in the first ``settle_s`` seconds of a stream:
        the band-pass and the moving window are still settling there (the
        filter starts from the first sample's value, which on a noisy
        signal is a small step).
    cusum : bool or "auto"
        Also start contractions on sustained evidence (the CUSUM path, see
        the module docstring): True on every channel, False never, "auto"
        (default) on channels whose baseline drift is at most ``max_drift``.
    cusum_ratio : float
        The CUSUM reference is at least this multiple of the resting level.
    k_cusum : float
        ... and at least ``level + k_cusum * sigma`` (at most the off
        threshold).
    rest_fraction : float
        The rest that ends a contraction is this fraction of the stretch it
        had just been above the off threshold, between ``min_rest_s`` and
        ``max_rest_s``.
    max_rest_s : float
        Longest rest required to end a contraction.
    max_drift : float
        With ``cusum="auto"``: the largest baseline drift (relative wander of
        the resting level between one-second windows) at which the CUSUM
        path runs.
    """

    k_on: float = 8.0
    k_off: float = 4.0
    min_ratio_on: float = 2.0
    min_ratio_off: float = 1.5
    min_active_s: float = 0.1
    min_rest_s: float = 0.5
    k_band: float = 3.0
    max_backtrack_s: float = 0.3
    settle_s: float = 0.5
    max_ratio_on: float | None = 3.0
    max_ratio_off: float | None = 2.25
    mvc_on_pct: float | None = None
    mvc_off_pct: float | None = None
    cusum: bool | str = "auto"
    cusum_ratio: float = 1.25
    rest_fraction: float = 0.5
    max_rest_s: float = 1.0
    k_cusum: float = 2.0
    max_drift: float = 0.05

    def __post_init__(self):
        for name in ("k_on", "k_off", "min_ratio_on", "min_ratio_off", "k_band"):
            if not getattr(self, name) >= 0:
                raise ParameterError(name, "a non-negative number", getattr(self, name))
        if self.k_off > self.k_on:
            raise ParameterError("k_off", f"at most k_on = {self.k_on}", self.k_off)
        if self.min_ratio_off > self.min_ratio_on:
            raise ParameterError("min_ratio_off", f"at most min_ratio_on = {self.min_ratio_on}", self.min_ratio_off)
        if self.cusum not in (True, False, "auto"):
            raise ParameterError("cusum", "True, False or 'auto'", self.cusum)
        if not self.max_drift >= 0:
            raise ParameterError("max_drift", "a non-negative fraction", self.max_drift)
        if not self.cusum_ratio >= 1.0:
            raise ParameterError("cusum_ratio", "a ratio >= 1", self.cusum_ratio)
        if not self.k_cusum >= 0:
            raise ParameterError("k_cusum", "a non-negative number", self.k_cusum)
        if not self.rest_fraction >= 0:
            raise ParameterError("rest_fraction", "a non-negative fraction", self.rest_fraction)
        if not self.max_rest_s >= self.min_rest_s:
            raise ParameterError("max_rest_s", f"at least min_rest_s = {self.min_rest_s}", self.max_rest_s)
        for name in ("min_active_s", "min_rest_s", "max_backtrack_s", "settle_s"):
            if not getattr(self, name) >= 0:
                raise ParameterError(name, "a non-negative duration in seconds", getattr(self, name))
        if self.max_ratio_on is not None and not self.max_ratio_on >= self.min_ratio_on:
            raise ParameterError("max_ratio_on", f"None or at least min_ratio_on = {self.min_ratio_on}",
                                 self.max_ratio_on)
        if self.max_ratio_off is not None:
            top = self.max_ratio_on if self.max_ratio_on is not None else float("inf")
            if not self.min_ratio_off <= self.max_ratio_off <= top:
                raise ParameterError("max_ratio_off", f"None or between min_ratio_off = {self.min_ratio_off} "
                                     f"and max_ratio_on = {self.max_ratio_on}", self.max_ratio_off)
        for name in ("mvc_on_pct", "mvc_off_pct"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 100:
                raise ParameterError(name, "None or a percentage in (0, 100]", value)
        if self.mvc_off_pct is not None and (self.mvc_on_pct is None or self.mvc_off_pct > self.mvc_on_pct):
            raise ParameterError("mvc_off_pct", f"at most mvc_on_pct = {self.mvc_on_pct}", self.mvc_off_pct)

    def thresholds(self, baseline: Baseline) -> tuple[np.ndarray, np.ndarray]:
        """On and off thresholds per channel, in the envelope's units.

        ``on = clip(level + k_on * sigma, min_ratio_on * level, max_ratio_on
        * level)``, then at least ``mvc_on_pct`` % of the MVC where the
        baseline has one; the same for ``off``.
        """
        level = baseline.level
        on = np.maximum(level + self.k_on * baseline.sigma, level * self.min_ratio_on)
        off = np.maximum(level + self.k_off * baseline.sigma, level * self.min_ratio_off)
        if self.max_ratio_on is not None:
            on = np.minimum(on, level * self.max_ratio_on)
        if self.max_ratio_off is not None:
            off = np.minimum(off, level * self.max_ratio_off)
        if self.mvc_on_pct is not None and baseline.mvc is not None:
            known = np.isfinite(baseline.mvc)
            off_pct = self.mvc_off_pct
            if off_pct is None:
                off_pct = self.mvc_on_pct * self.min_ratio_off / self.min_ratio_on
            on = np.where(known, np.maximum(on, self.mvc_on_pct / 100.0 * np.nan_to_num(baseline.mvc)), on)
            off = np.where(known, np.maximum(off, off_pct / 100.0 * np.nan_to_num(baseline.mvc)), off)
        return on, off

    def reference(self, baseline: Baseline) -> np.ndarray:
        """Reference level of the CUSUM path per channel, in the envelope's units.

        ``min(off, max(cusum_ratio * level, level + k_cusum * sigma))``: the
        envelope must stay above it for long enough to start a contraction
        on evidence, and below it to end one. With an MVC in the baseline it
        is the off threshold.
        """
        level = baseline.level
        _, off = self.thresholds(baseline)
        ref = np.minimum(off, np.maximum(level * self.cusum_ratio, level + self.k_cusum * baseline.sigma))
        if self.mvc_on_pct is not None and baseline.mvc is not None:
            ref = np.where(np.isfinite(baseline.mvc), off, ref)
        return ref

    def cusum_channels(self, baseline: Baseline) -> np.ndarray:
        """Per channel, whether the CUSUM path runs (``cusum`` True, or "auto" with a measured drift)."""
        if self.cusum == "auto":
            return self._drift(baseline) <= self.max_drift
        return np.full(baseline.n_channels, bool(self.cusum))

    @staticmethod
    def _drift(baseline: Baseline) -> np.ndarray:
        if baseline.drift is None:
            return np.full(baseline.n_channels, np.nan)
        return baseline.drift


class _ChannelState:
    __slots__ = ("mode", "start", "onset", "below_start", "last_quiet", "peak", "peak_index", "g_up", "up_zero",
                 "deadline", "stretch", "rested", "zero_rested", "soft", "g_down", "down_zero")
    # last_quiet: index of the last sample seen inside the resting band
    # g_up: the rise CUSUM (integer units, see _QUANTUM); up_zero: index of
    # the last sample where it was zero.

    def __init__(self):
        self.mode = REST
        self.start = 0  # first sample above the on threshold (candidate)
        self.onset = 0
        self.below_start = 0
        self.last_quiet = -1
        self.peak = -np.inf
        self.peak_index = 0
        self.g_up = 0
        self.up_zero = -1
        self.deadline = 0  # ENDING: the contraction ends here unless it re-activates
        self.stretch = 0  # ACTIVE: where the current stretch above the off threshold began
        self.rested = -1  # last sample inside the resting band (last_quiet is also moved by event ends)
        self.zero_rested = -1  # last sample inside the resting band up to up_zero
        # soft: started on CUSUM evidence, so it ends on evidence too (the
        # fall CUSUM g_down, last zero at down_zero), not at the off threshold
        self.soft = False
        self.g_down = 0
        self.down_zero = -1


#: CUSUM increments are rounded to integers of 1 / _QUANTUM level-samples, so
#: that their sums are exact and the decisions do not depend on chunking.
_QUANTUM = float(1 << 20)
#: Increments are clipped to this many resting levels (no overflow on spikes).
_MAX_RATIO = 1.0e4


def _cusum(inc, g0: int):
    """CUSUM ``g[t] = max(0, g[t-1] + inc[t])`` from ``g[-1] = g0`` (integers), vectorised."""
    total = np.cumsum(inc)
    low = np.minimum(np.minimum.accumulate(total), -int(g0))
    return total - low


def _first(mask) -> int:
    """Index of the first True of a boolean array, or len(mask).

    ``argmax`` of a boolean array stops at the first True, so the cost is
    the distance to it, not the length of the array.
    """
    if not mask.shape[0]:
        return 0
    i = int(np.argmax(mask))
    return i if mask[i] else int(mask.shape[0])


#: First window (samples) of the searches for the next decision in a chunk (see _windows).
_SEARCH = 4096


def _windows(pos: int, n: int):
    """Ends of growing windows ``pos .. end`` (``_SEARCH`` samples, then doubling, the last at ``n``).

    A search for the next decision from ``pos`` (the first sample above a
    threshold, the first CUSUM alarm) looks at the first window and widens
    it only while nothing is found. The CUSUMs and the alarm conditions are
    causal, so what a window finds is what the whole rest of the chunk
    would give, and doubling costs at most about twice the distance to the
    decision, instead of the rest of the chunk for every decision: the cost
    per chunk stays linear in its length, whatever that is.
    """
    width = _SEARCH
    while pos + width < n:
        yield pos + width
        width *= 2
    yield n


class ThresholdDetector(Stage):
    """Double-threshold onset/offset detector (see module docstring).

    Parameters
    ----------
    baseline : Baseline, optional
        Resting level and spread per channel. When None, the first
        ``calibration_s`` seconds of the stream are taken as rest and the
        baseline is computed from them (live use).
    settings : DetectorSettings
    calibration_s : float
        Length of the rest period used when ``baseline`` is None.
    kind : str
        Kind given to detected events (default ``"contraction"``).
    delay_samples : int
        The envelope lags the raw signal by this many samples (a delaying
        stage such as :class:`~biofeedback.detect.ecg.ECGSuppressor` before
        it); event times are dated back by that much.
    classifier : EventClassifier, optional
        Relabels each completed event and adds ``elevated_tone`` events (see
        :mod:`biofeedback.detect.classify`).
    """

    name = "detector"

    def __init__(self, baseline: Baseline | None = None, settings: DetectorSettings | None = None,
                 calibration_s: float = 5.0, kind: str = "contraction", *, delay_samples: int = 0,
                 classifier=None):
        super().__init__()
        self.settings = settings or DetectorSettings()
        self.initial_baseline = baseline
        self.calibration_s = float(calibration_s)
        self.kind = kind
        if delay_samples < 0:
            raise ParameterError("detector delay_samples", "a number of samples >= 0", delay_samples)
        self.delay = int(delay_samples)
        self.classifier = classifier
        self.baseline: Baseline | None = None
        self.on_threshold = self.off_threshold = self.reference = None
        self._calib: list[np.ndarray] = []
        self._calib_needed = 0
        self._states: list[_ChannelState] = []
        self.disabled: dict[int, str] = {}

    # -- setup ---------------------------------------------------------------
    def _configure(self, info: StreamInfo) -> None:
        fs = info.fs
        s = self.settings
        self._min_active = max(1, int(round(s.min_active_s * fs)))
        self._min_rest = max(1, int(round(s.min_rest_s * fs)))
        self._max_rest = max(self._min_rest, int(round(s.max_rest_s * fs)))
        self._max_back = int(round(s.max_backtrack_s * fs))
        self._settle = int(round(s.settle_s * fs))
        self._states = [_ChannelState() for _ in range(info.n_channels)]
        self._calib = []
        self.baseline = None
        if self.initial_baseline is not None:
            self.set_baseline(self.initial_baseline)
        else:
            self.baseline = None
            self._calib_needed = max(1, int(round(self.calibration_s * fs)))

    def set_baseline(self, baseline: Baseline) -> None:
        """Use a new baseline from now on (e.g. after a calibration)."""
        if self._info is not None and baseline.n_channels != self._info.n_channels:
            raise ParameterError("baseline", f"{self._info.n_channels} channels", baseline.n_channels)
        self.baseline = baseline
        self.on_threshold, self.off_threshold = self.settings.thresholds(baseline)
        # The resting band never reaches above the off threshold.
        self.band_edge = np.minimum(baseline.level + self.settings.k_band * baseline.sigma, self.off_threshold)
        self.reference = self.settings.reference(baseline)
        self._cusum_on = self.settings.cusum_channels(baseline)
        # CUSUM increments are in resting levels (sigma, or 1, for a zero level).
        self._norm = np.where(baseline.level > 0, baseline.level, np.where(baseline.sigma > 0, baseline.sigma, 1.0))
        if self._info is not None:
            self._decision_levels()

    def _decision_levels(self):
        """CUSUM decision levels per channel, in quantised level-samples (see DetectorSettings)."""
        above = np.maximum(0.0, self.on_threshold - self.reference) / self._norm
        self._h_rise = np.maximum(1, np.rint(above * self._min_active * _QUANTUM)).astype(np.int64)

    @property
    def calibrating(self) -> bool:
        """True while the detector still collects its resting baseline."""
        return self.baseline is None

    def is_active(self, channel: int) -> bool:
        """True while a contraction is confirmed and not yet ended on ``channel``."""
        return bool(self._states) and self._states[channel].mode in (ACTIVE, ENDING)

    def pending_onset(self, channel: int) -> int | None:
        """Envelope sample index where an undecided or open activation began, or None.

        A candidate (above the on threshold, not yet ``min_active_s`` long)
        counts: it may still become a contraction.
        """
        if not self._states:
            return None
        st = self._states[channel]
        if st.mode == CANDIDATE:
            return st.start
        if st.mode in (ACTIVE, ENDING):
            return st.onset
        return None

    def disable_channel(self, channel: int, reason: str) -> None:
        """Stop detecting on ``channel`` (a flat or saturated signal); ``reason`` is kept for reports."""
        self.disabled[int(channel)] = str(reason)
        if self._states:
            self._states[channel].mode = REST

    # -- processing ----------------------------------------------------------
    def _process(self, chunk: Chunk) -> Chunk:
        env = chunk.data
        first = chunk.first_sample
        if first < self._settle:
            skip = min(env.shape[1], self._settle - first)
            env = env[:, skip:]
            first += skip
        if self.baseline is None and env.shape[1]:
            take = min(env.shape[1], self._calib_needed)
            self._calib.append(np.array(env[:, :take], dtype=float))
            self._calib_needed -= take
            env = env[:, take:]
            first += take
            if self._calib_needed == 0:
                rest = np.concatenate(self._calib, axis=1)
                self.set_baseline(baseline_from_rest(
                    rest, f"{self.calibration_s:g} s after the first {self.settings.settle_s:g} s of the stream"))
                self._calib = []
        spans = []
        if self.baseline is not None:
            for ch in range(env.shape[0]):
                if ch not in self.disabled:
                    self._run_channel(ch, env[ch], first, spans)
        events = [self._make_event(*span) for span in spans]
        if self.classifier is not None:
            events = self.classifier.process(self, chunk, spans, events)
        return chunk.replace(events=tuple(events))

    def _run_channel(self, ch, x, first, events):
        st = self._states[ch]
        n = x.shape[0]
        if n == 0:
            return
        on = self.on_threshold[ch]
        above_on = x > on
        above_off = x > self.off_threshold[ch]
        below_off = ~above_off
        quiet = x <= self.band_edge[ch]
        use_cusum = bool(self._cusum_on[ch])
        if use_cusum:
            # Evidence of activity per sample, in resting levels, at most that
            # of a sample at the on threshold (a robust CUSUM: one spike does
            # not make a contraction; strong activity is the threshold path's).
            cap = max(0.0, (on - self.reference[ch]) / self._norm[ch])
            ratio = np.clip((x - self.reference[ch]) / self._norm[ch], -cap, cap)
            rise = np.rint(ratio * _QUANTUM).astype(np.int64)
            h = int(self._h_rise[ch])
        else:
            rise = h = None
        pos = 0
        while pos < n:
            if st.mode == REST:
                for end in _windows(pos, n):
                    hit, alarm, g = self._next_rise(st, above_on, rise, quiet, h, pos, end, first)
                    stop = min(hit, alarm)
                    if stop < end:
                        break
                if use_cusum:
                    self._note_zero(st, g, quiet, pos, stop, first)
                    st.g_up = int(g[stop - pos - 1]) if stop > pos else st.g_up
                self._note_quiet(st, quiet, pos, stop, first)
                if stop >= n:
                    return
                st.peak, st.peak_index = -np.inf, first + stop
                if hit <= alarm:
                    st.mode, st.start = CANDIDATE, first + hit
                    pos = hit
                else:
                    # Enough evidence, accumulated from rest: a contraction
                    # that began where the CUSUM last left zero.
                    st.mode, st.onset = ACTIVE, max(st.up_zero + 1, self._settle)
                    st.stretch = st.onset
                    self._start_soft(st, first + alarm)
                    pos = alarm
            elif st.mode == CANDIDATE:
                deadline = st.start + self._min_active - first  # local index
                drops = np.flatnonzero(below_off[pos:min(n, deadline)])
                stop = pos + drops[0] if drops.size else min(n, deadline)
                self._track_peak(st, x, pos, stop, first)
                if use_cusum and stop > pos:  # the rise CUSUM goes on underneath
                    g = _cusum(rise[pos:stop], st.g_up)
                    self._note_zero(st, g, quiet, pos, stop, first)
                    st.g_up = int(g[-1])
                self._note_quiet(st, quiet, pos, stop, first)
                if drops.size:
                    st.mode = REST
                    pos = stop
                elif deadline <= n:
                    back_limit = st.start - self._max_back
                    st.mode, st.onset = ACTIVE, max(st.last_quiet + 1, back_limit, 0)
                    st.stretch = st.onset
                    st.soft = False
                    pos = deadline
                else:
                    return
            elif st.mode == ACTIVE and st.soft and use_cusum:
                # Ends on evidence: the fall CUSUM of the envelope below the
                # reference reaches the decision level; the contraction ended
                # where it last left zero (Page's estimate, as for the onset).
                for end in _windows(pos, n):
                    g = _cusum(-rise[pos:end], st.g_down)  # the fall's evidence: the rise's, negated
                    stop = pos + _first(g > h)
                    if stop < end:
                        break
                self._track_peak(st, x, pos, stop, first)
                self._note_quiet(st, quiet, pos, stop, first)
                zeros = np.flatnonzero(g[:stop - pos] == 0)
                if zeros.size:
                    st.down_zero = first + pos + int(zeros[-1])
                if stop >= n:
                    st.g_down = int(g[-1])
                    return
                st.mode, st.below_start = ENDING, max(st.onset + 1, st.down_zero + 1)
                st.deadline = st.below_start + self._required_rest(st.below_start - st.stretch)
                st.g_up, st.up_zero, st.zero_rested = 0, first + stop - 1, st.rested
                pos = stop
            elif st.mode == ACTIVE:
                stop = pos + _first(below_off[pos:])
                self._track_peak(st, x, pos, stop, first)
                self._note_quiet(st, quiet, pos, stop, first)
                if stop >= n:
                    return
                st.mode, st.below_start = ENDING, first + stop
                st.deadline = st.below_start + self._required_rest(st.below_start - st.stretch)
                st.g_up, st.up_zero, st.zero_rested = 0, first + stop - 1, st.rested
                pos = stop
            else:  # ENDING
                end = min(n, st.deadline - first)
                hit, alarm, g = self._next_rise(st, above_on, rise, quiet, h, pos, end, first)
                rise_at = min(hit, alarm)
                if use_cusum and end > pos and rise_at >= end and st.deadline - first > n:
                    self._note_zero(st, g, quiet, pos, end, first)
                    st.g_up = int(g[-1])
                self._note_quiet(st, quiet, pos, rise_at, first)
                if rise_at < end:
                    # Re-activated within the rest that would end it: the
                    # dip was a gap inside one contraction.
                    st.mode = ACTIVE
                    st.stretch = first + rise_at
                    if st.soft:
                        self._start_soft(st, first + rise_at)
                    pos = rise_at
                elif st.deadline - first <= n:
                    events.append((ch, st.onset, st.below_start, st.peak))
                    st.mode = REST
                    # Onsets of a next contraction go back no further than here.
                    st.last_quiet = max(st.last_quiet, st.deadline - 1)
                    st.g_up, st.up_zero, st.zero_rested = 0, st.deadline - 1, st.rested
                    pos = end
                else:
                    return

    @staticmethod
    def _start_soft(st, index: int) -> None:
        """Mark a contraction as started on evidence, its fall CUSUM starting at ``index``."""
        st.soft, st.g_down, st.down_zero = True, 0, index - 1

    def _required_rest(self, held: int) -> int:
        """Samples of rest that end a contraction held for ``held`` samples."""
        return int(np.clip(round(self.settings.rest_fraction * held), self._min_rest, self._max_rest))

    @staticmethod
    def _note_quiet(st, quiet, start, stop, first):
        """Remember the last sample inside the resting band among ``start .. stop - 1``."""
        if stop > start:
            inside = np.flatnonzero(quiet[start:stop])
            if inside.size:
                st.last_quiet = first + start + int(inside[-1])
                st.rested = st.last_quiet

    @staticmethod
    def _note_zero(st, g, quiet, start, stop, first):
        """Remember where the rise CUSUM ``g`` (from local ``start``) was last zero before local ``stop``,
        and the last sample inside the resting band up to there."""
        zeros = np.flatnonzero(g[:stop - start] == 0)
        if zeros.size:
            k = int(zeros[-1])
            st.up_zero = first + start + k
            inside = np.flatnonzero(quiet[start:start + k + 1])
            st.zero_rested = first + start + int(inside[-1]) if inside.size else st.rested

    def _next_rise(self, st, above_on, rise, quiet, h, pos: int, end: int, first: int):
        """The next start of activity among local samples ``pos .. end - 1``.

        Parameters
        ----------
        st : _ChannelState
        above_on, quiet : ndarray of bool
            The chunk's samples above the on threshold, inside the resting band.
        rise : ndarray of int or None
            The chunk's rise CUSUM increments (None: no CUSUM path).
        h : int or None
            CUSUM decision level.
        pos, end : int
            Local range searched.
        first : int
            Stream index of the chunk's first sample.

        Returns
        -------
        hit : int
            First local index above the on threshold, else ``end``.
        alarm : int
            First CUSUM alarm (see :meth:`_alarm`) before ``hit``, else ``hit``.
        g : ndarray of int or None
            The rise CUSUM over ``pos .. hit - 1`` (from ``st.g_up``).

        Notes
        -----
        An alarm at or after ``hit`` would change nothing (the threshold
        path starts first), so the CUSUM is not looked at past it: inside a
        burst it is far above its decision level, and checking the alarm
        conditions there was most of the detector's time.
        """
        hit = pos + _first(above_on[pos:end])
        if rise is None:
            return hit, hit, None
        g = _cusum(rise[pos:hit], st.g_up)
        return hit, pos + self._alarm(g, h, st, quiet[pos:hit], first + pos), g

    def _alarm(self, g, h: int, st, quiet, offset: int) -> int:
        """First index where the rise CUSUM ``g`` (sample ``offset`` onwards) starts a contraction, else len(g).

        The CUSUM must be above ``h``, at least ``min_active_s`` after it
        last left zero, and the envelope must have been inside the resting
        band at most ``max_backtrack_s`` before that zero or since: a
        contraction rises from rest, while a level that stays above the
        resting band is a raised tone (reported as ``elevated_tone`` by the
        classifier), not one contraction after another.
        """
        above = g > h
        if not above.any():  # the usual answer at rest, without the bookkeeping below
            return g.shape[0]
        index = np.arange(offset, offset + g.shape[0])
        zeros = np.maximum.accumulate(np.where(g == 0, index, st.up_zero))
        rested = np.maximum.accumulate(np.where(quiet, index, st.rested))
        local = zeros - offset
        at_zero = np.where(local >= 0, rested[np.clip(local, 0, None)], st.zero_rested)
        ok = above & (index - zeros >= self._min_active) & (at_zero >= zeros - self._max_back)
        return _first(ok)

    @staticmethod
    def _track_peak(st, x, start, stop, first):
        if stop > start:
            i = int(np.argmax(x[start:stop]))
            if x[start + i] > st.peak:
                st.peak = float(x[start + i])
                st.peak_index = first + start + i

    def _make_event(self, ch, onset, offset, peak) -> Event:
        fs = self._info.fs
        onset, offset = max(0, onset - self.delay), max(0, offset - self.delay)
        return Event(self.kind, self._info.ch_names[ch], onset / fs, offset / fs, float(peak))

    def flush(self, stop_sample: int | None = None) -> list[Event]:
        """Close contractions still open at the end of the stream.

        Parameters
        ----------
        stop_sample : int, optional
            Index one past the last sample (default: end of the last chunk).

        Returns
        -------
        list of Event
            Contractions that were active or ending at the end; candidates
            that had not lasted ``min_active_s`` are dropped.
        """
        if self._info is None or self.baseline is None:
            return []
        stop = self._next_sample if stop_sample is None else stop_sample
        spans = []
        for ch, st in enumerate(self._states):
            if st.mode == ACTIVE:
                spans.append((ch, st.onset, stop, st.peak))
            elif st.mode == ENDING:
                spans.append((ch, st.onset, st.below_start, st.peak))
            st.mode = REST
        events = [self._make_event(*span) for span in spans]
        if self.classifier is not None:
            events = self.classifier.flush(self, spans, events, stop)
        return events

    def reset(self) -> None:
        super().reset()
        self.baseline = None
        self._states = []
        self._calib = []
        if self.classifier is not None:
            self.classifier.reset()

    def __repr__(self):
        return f"ThresholdDetector({self.settings})"
