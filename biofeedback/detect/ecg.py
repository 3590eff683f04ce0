"""Heartbeat (ECG) contamination: beat detection and suppression.

At trunk and pelvic-floor sites the heart's electrical activity reaches the
EMG electrodes. Each QRS complex is a sharp spike of 80-120 ms whose energy
lies mostly below 30 Hz but which leaks into the EMG band; in a moving-RMS
envelope every heartbeat then looks like a short contraction, 40-200 times
a minute. A 30 Hz high-pass (the ``trunk``/``pelvic`` presets) removes much
of it (Drake & Callaghan 2006, J Electromyogr Kinesiol 16:175-187, compared
the usual removal methods); what is left is removed here by **template
subtraction**: the beats are found on a 5-30 Hz band where the QRS stands
out, the EMG-band waveform of the recent beats is averaged (a median, so
that a beat falling inside a muscle burst does not spoil it), and that
template is subtracted from the EMG-band signal at each new beat.

Both parts are causal and decide on sample indices only, so any chunking of
a stream gives the same output.

* :class:`BeatDetector` finds QRS complexes in raw samples, one channel at a
  time: a run of the smoothed 5-30 Hz energy above an adaptive threshold,
  no wider than a QRS complex, at least a refractory period after the
  previous beat. Its fiducial point is the run's energy maximum. It reports
  each beat when the run ends (a few tens of milliseconds after the peak).
* :class:`ECGSuppressor` is the EMG band-pass stage with the subtraction
  built in. After subtracting, it also scales the beat's span down to the
  RMS of the 100 ms before it when the span is still stronger (a gate for
  what an imperfect template leaves; inside a muscle burst the span is as
  strong as its surroundings and is left alone). To work on samples that
  precede the moment a beat is recognised, it delays its output by
  :attr:`ECGSuppressor.delay_s` (0.26 s); the detector then dates events
  back by the same delay, so reported times stay those of the raw signal.
  Batch analysis primes it with the first seconds
  (:meth:`ECGSuppressor.prime`) so that the first beats are removed too.
* :func:`regular_runs` finds the stretches where beats come at a regular
  heart rhythm; the quality check reports them as ``ecg`` spans.

A template is only subtracted where the new beat has the template's shape
(correlation on the 5-30 Hz band of at least ``min_similarity``): QRS
complexes of one person repeat almost identically, muscle activity does
not, so an EMG burst that happens to cross the beat threshold is left
alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.dsp.base import Stage
from biofeedback.dsp.envelope import window_sums_of_squares
from biofeedback.dsp.filters import Decimator, FilterCascade, butter_sos, steady_state_zi
from biofeedback.dsp.stats import lower_quartile, lower_quartile_of_8, median, sliding_windows, small_median
from biofeedback.errors import ParameterError

OUT, IN, SKIP = 0, 1, 2


@dataclass(frozen=True)
class ECGSettings:
    """Parameters of beat detection and template subtraction.

    Defaults and where they come from:

    * ``band_hz = (5, 30)``: the QRS complex has most of its energy between
      5 and 30 Hz (the band classic QRS detectors such as Pan & Tompkins
      1985 use), below most surface-EMG power.
    * ``max_qrs_s = 0.16``: a normal QRS lasts 80-120 ms; with the 30 ms
      smoothing, a run of energy wider than 160 ms is not a heartbeat (a
      muscle burst or a movement).
    * ``refractory_s = 0.3``: no second beat within 300 ms, i.e. at most 200
      beats per minute (the range the quality check looks for is 40-200
      bpm); it also keeps the T wave from counting as a beat.
    * ``peak_fraction = 0.3``: the threshold sits at 30 % of the median
      energy peak of the recent beats (Pan-Tompkins-style adaptive
      threshold), ``noise_factor = 8`` times the background energy at least,
      so that background EMG alone does not make beats. The background is
      the lower quartile of the medians of the last eight 0.25 s blocks (2
      s): it follows a sustained contraction after 1.5 s but falls back
      0.5 s after a burst ends. (Their median stayed raised for up to 1 s
      after each burst, and on the emgGO tibialis recording the first
      heartbeat after 12 of the 56 contractions went undetected and
      unsubtracted, each then counted as a contraction.) Inside a burst
      the lower threshold does no harm: EMG energy stays above it longer
      than a QRS complex, and such runs are not beats.
    * ``pre_s = 0.1``, ``post_s = 0.05``: the template covers 100 ms before
      and 50 ms after the fiducial point, which (through the causal band-pass
      and smoothing) lies 40-50 ms after the R peak, so the template holds
      the whole QRS complex (R +- 50 ms).
    * ``history = 8`` beats make the median template (5 s at 100 bpm: it
      follows slow changes of the QRS amplitude with breathing).
    * ``min_similarity = 0.6``: correlation with the template needed to
      subtract.
    * ``max_shift_s = 0.04``: the template is aligned with each beat within
      +-40 ms before the comparison and the subtraction. The fiducial point
      is the energy maximum, and the R and S lobes of a QRS make two maxima
      some 40 ms apart whose order of height changes from beat to beat: on
      the emgGO tibialis recording (250 Hz) about one beat in ten matched
      its template only 36-40 ms away from its fiducial point, and was left
      unsubtracted by a +-4 ms search.
    """

    band_hz: tuple = (5.0, 30.0)
    smooth_s: float = 0.03
    max_qrs_s: float = 0.16
    refractory_s: float = 0.3
    peak_fraction: float = 0.3
    noise_factor: float = 8.0
    learn_s: float = 2.0
    pre_s: float = 0.1
    post_s: float = 0.05
    history: int = 8
    min_beats: int = 2
    min_similarity: float = 0.6
    max_shift_s: float = 0.04
    ref_s: float = 0.1

    def __post_init__(self):
        low, high = self.band_hz
        if not 0 < low < high:
            raise ParameterError("ECG band (Hz)", "0 < low < high", self.band_hz)
        for name in ("smooth_s", "max_qrs_s", "refractory_s", "learn_s", "pre_s", "post_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"ECG {name}", "a positive duration in seconds", getattr(self, name))
        if not 0 < self.peak_fraction < 1:
            raise ParameterError("ECG peak_fraction", "a number between 0 and 1", self.peak_fraction)
        if self.history < 1 or self.min_beats < 1:
            raise ParameterError("ECG history", "at least one beat", (self.history, self.min_beats))

    @property
    def delay_s(self) -> float:
        """Output delay of :class:`ECGSuppressor` in seconds (0.26 s by default).

        A beat is handled once its energy run has ended and ``post_s +
        max_shift_s`` have passed after its fiducial point, and its span,
        with ``max_shift_s`` of reach on both sides for the alignment, must
        not have been released yet. The run ends when the smoothed energy
        falls back below the threshold, which the smoothing delays after the
        QRS by up to its own length (``smooth_s``): hence ``pre_s + post_s
        + smooth_s + 2 max_shift_s``. (Without the smoothing term, beats
        whose run outlasted ``post_s`` by a sample or two were released
        unsubtracted: 6 of ~700 beats of the emgGO tibialis recording.)
        A beat whose run ends later still is left alone. This is the price
        of suppression in live display lag; it is only paid where a heart is
        expected (``trunk``/``pelvic`` presets, ``--ecg on``).
        """
        return self.pre_s + self.post_s + self.smooth_s + 2 * self.max_shift_s


def _band_sos(settings: ECGSettings, fs: float) -> np.ndarray:
    """Second-order sections (shape (2, 6)) of the ECG band-pass (``band_hz``, capped at 0.45 fs)."""
    low, high = settings.band_hz
    high = min(high, 0.45 * fs)
    if not low < high:
        raise ParameterError("ECG band (Hz)", f"a band below {0.45 * fs:g} Hz for fs = {fs:g} Hz", settings.band_hz)
    return butter_sos(2, (low, high), "bandpass", fs)


class _BeatState:
    __slots__ = ("mode", "run_start", "best", "best_val", "last_beat", "peaks", "learn_max", "level")

    def __init__(self):
        self.level = 0.0  # median energy of the recent beats
        self.mode = OUT
        self.run_start = 0
        self.best = 0
        self.best_val = -np.inf
        self.last_beat = -(1 << 60)
        self.peaks: list[float] = []  # energy of the recent accepted beats
        self.learn_max = 0.0


class BeatDetector:
    """Streaming QRS detector (see module docstring), one state per channel.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    n_channels : int
    settings : ECGSettings

    Notes
    -----
    :meth:`update` takes raw samples and returns the fiducial sample index of
    each beat confirmed in them. The 5-30 Hz band (``band``) and smoothed
    energy (``energy``) of the last chunk are kept for the suppressor.
    """

    def __init__(self, fs: float, n_channels: int, settings: ECGSettings | None = None):
        self.settings = s = settings or ECGSettings()
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.sos = _band_sos(s, self.fs)
        self._zi = None
        self.smooth = max(1, int(round(s.smooth_s * fs)))
        self._tail = np.zeros((n_channels, self.smooth))
        self.max_run = max(1, int(round(s.max_qrs_s * fs)))
        self.refractory = max(1, int(round(s.refractory_s * fs)))
        self.learn = max(1, int(round(s.learn_s * fs)))
        self.block = max(1, int(round(0.25 * fs)))
        # First window of a threshold search (_AboveThreshold): half a second,
        # where the next beat often lies; a shorter one often meant a second
        # window, and evaluating a sample costs far less than a NumPy call.
        self._search_width = max(256, int(round(0.5 * fs)))
        self._block_parts: list[np.ndarray] = []
        self._block_fill = 0
        self._block_medians: list[np.ndarray] = []
        self.noise = np.zeros(n_channels)
        self._states = [_BeatState() for _ in range(n_channels)]
        self.beats: list[list[int]] = [[] for _ in range(n_channels)]  # every beat seen
        # Whether each beat has the shape of the recent ones (a QRS complex
        # repeats; chance crossings of muscle activity do not).
        self.similar: list[list[bool]] = [[] for _ in range(n_channels)]
        self.shape_len = max(2, int(round(s.pre_s * fs)))
        self._hist = np.zeros((n_channels, self.shape_len + self.max_run + 1))
        self._shapes: list[list[np.ndarray]] = [[] for _ in range(n_channels)]
        # The median of _shapes, once needed, ready for comparisons (_SegmentComparer.prepare).
        self._templates: list[_Templates | None] = [None] * n_channels
        self._misses = [0] * n_channels
        # How _check_shapes batches the comparisons (its speed only, not its
        # results): how many of the last compared beats were similar in a
        # row, and the batch length for each guess (index: whether similar
        # beats are expected).
        self._similar_streak = [0] * n_channels
        self._batch = [[2, 2] for _ in range(n_channels)]
        self.band = np.zeros((n_channels, 0))
        self.energy = np.zeros((n_channels, 0))

    @property
    def learned(self) -> bool:
        """True once the learning period is over (a threshold exists)."""
        return bool(self._block_medians) and any(st.learn_max > 0 for st in self._states)

    def adopt(self, other: "BeatDetector") -> None:
        """Start from the thresholds another detector learned (no learning period)."""
        for mine, theirs in zip(self._states, other._states):
            mine.peaks = list(theirs.peaks)
            mine.level = theirs.level
            mine.learn_max = theirs.learn_max
        self._block_medians = [m.copy() for m in other._block_medians]
        self.noise = other.noise.copy()
        self.learn = 0

    # -- signal ------------------------------------------------------------------
    def _filter(self, raw):
        if self._zi is None:
            base = steady_state_zi(self.sos)
            self._zi = base[:, None, :] * raw[:, 0][None, :, None]
        band, self._zi = signal.sosfilt(self.sos, raw, axis=-1, zi=self._zi)
        energy, self._tail = window_sums_of_squares(band, self._tail)
        energy /= self.smooth
        np.maximum(energy, 0.0, out=energy)
        return band, energy

    def _update_noise(self, energy, first_sample: int):
        """Median energy per 0.25 s block and the noise floor it sets, for one chunk at once.

        Parameters
        ----------
        energy : ndarray, shape (n_channels, n)
            Smoothed 5-30 Hz energy of the chunk (squared units of the input).
        first_sample : int
            Stream index of ``energy[:, 0]``.

        Returns
        -------
        ndarray, shape (n_channels, n)
            The background level in force at each sample: the lower quartile
            of the medians of the last 8 blocks completed *before* the piece
            of block that holds the sample (blocks on absolute indices).

        Notes
        -----
        Beat by beat this used to be one ``np.median`` per block and one
        ``np.percentile`` per completed block; here all blocks that end in the
        chunk are reduced in one call each (a block median is the same
        arithmetic whichever axis it runs over, so the values are identical
        to the per-block ones, which ``tests/test_ecg.py`` checks), with
        :func:`~biofeedback.dsp.stats.median` (``np.median`` to the bit).
        """
        n_ch, n = energy.shape
        block = self.block
        fill = self._block_fill
        # Blocks completed in this chunk: the first one joins the part left
        # from the last chunk (reduced on its own, so that the chunk is not
        # copied behind that part), the others lie in the chunk.
        head = block - fill if fill else 0  # samples of the chunk that complete the held part
        k = (fill + n) // block
        levels = [self.noise[:, None]]  # floor after 0, 1, ..., k completions (columns)
        ends = np.empty(0, dtype=np.int64)  # chunk-local index one past each completed block
        if k:
            inner = k - 1 if fill else k  # blocks wholly inside the chunk
            medians = median(energy[:, head:head + inner * block].reshape(n_ch, inner, block), axis=2)
            if fill:
                first_block = np.concatenate(self._block_parts + [energy[:, :head]], axis=1)
                medians = np.concatenate([median(first_block, axis=1)[:, None], medians], axis=1)
            ends = (block - fill) + block * np.arange(k)
            history = np.concatenate([np.array(self._block_medians).reshape(-1, n_ch).T, medians], axis=1)
            h = history.shape[1] - k  # medians held before this chunk (at most 8)
            # The first blocks of a stream have fewer than 8 medians before them.
            for m in range(min(k, max(0, 7 - h))):
                levels.append(lower_quartile(history[:, :h + m + 1])[:, None])
            full = k - (len(levels) - 1)
            if full:
                # Window j of the view holds medians j..j+7; completion m ends window h + m - 7.
                windows = sliding_windows(history, 8)[:, -full:]
                levels.append(lower_quartile_of_8(windows))
            self.noise = levels[-1][:, -1].copy()
            self._block_medians = list(history[:, -8:].T.copy())
            rest = energy[:, head + inner * block:].copy()  # not a view: it would hold the whole chunk
            self._block_parts = [rest] if rest.shape[1] else []
            self._block_fill = rest.shape[1]
        else:
            self._block_parts = self._block_parts + [energy]
            self._block_fill = fill + n
        # The floor used for a sample is the one in force when its piece of
        # block (chunk split at absolute block boundaries) was walked: that
        # of the blocks completed before the piece's start.
        starts = np.concatenate(([0], np.arange((-first_sample) % block or block, n, block)))
        which = np.searchsorted(ends, starts, side="right")
        per_piece = np.concatenate(levels, axis=1)[:, which]  # (n_channels, n_pieces)
        lengths = np.diff(np.append(starts, n))
        return np.repeat(per_piece, lengths, axis=1)

    # -- detection -----------------------------------------------------------------
    def update(self, raw, first_sample: int) -> list[list[int]]:
        """Feed raw samples ``(n_channels, n)``; return new beats per channel."""
        raw = np.asarray(raw, dtype=float)
        new = [[] for _ in range(self.n_channels)]
        if raw.shape[1] == 0:
            self.band = np.zeros((self.n_channels, 0))
            self.energy = np.zeros((self.n_channels, 0))
            return new
        band, energy = self._filter(raw)
        self.band, self.energy = band, energy
        n = energy.shape[1]
        # Learning: the first learn_s seconds set the initial peak level
        # (the filter settles in the first 0.25 s, which are left out).
        settle = self.block
        lo, hi = max(first_sample, settle), min(first_sample + n, self.learn)
        if hi > lo:
            part = energy[:, lo - first_sample:hi - first_sample].max(axis=1)
            for ch in range(self.n_channels):
                self._states[ch].learn_max = max(self._states[ch].learn_max, float(part[ch]))
        # The threshold's noise term changes only at block boundaries (fixed
        # absolute indices), so the result does not depend on where chunks
        # end; it is computed for the whole chunk at once.
        floor = self.settings.noise_factor * self._update_noise(energy, first_sample)
        begin = max(0, self.learn - first_sample)
        if begin < n:
            for ch in range(self.n_channels):
                self._run(ch, energy[ch], first_sample, begin, floor[ch], new[ch])
        held = self._hist.shape[1]
        for ch in range(self.n_channels):
            if new[ch]:
                if new[ch][0] + 1 - self.shape_len >= first_sample:
                    x, x_start = band[ch], first_sample  # every segment lies in the chunk
                else:  # the first segment starts before it: the held history in front
                    x, x_start = np.concatenate([self._hist[ch], band[ch]]), first_sample - held
                self.similar[ch].extend(self._check_shapes(ch, x, x_start, new[ch]))
            self.beats[ch].extend(new[ch])
        if n >= held:
            self._hist = band[:, n - held:].copy()
        else:
            self._hist = np.concatenate([self._hist[:, n:], band], axis=1)
        return new

    def _check_shapes(self, ch, ext, ext_start, beats) -> list[bool]:
        """Whether each new beat of channel ``ch`` has the shape of the recent ones.

        Parameters
        ----------
        ch : int
        ext : ndarray, shape (m,)
            5-30 Hz band of the channel: this chunk, with the held history
            in front when the first beat's segment starts before the chunk.
        ext_start : int
            Stream index of ``ext[0]``.
        beats : list of int
            The chunk's beats (stream indices), increasing.

        Returns
        -------
        list of bool, one per beat

        Notes
        -----
        Beat by beat, each is correlated with the median of the recent
        QRS-like shapes, and a similar beat joins them (which changes the
        template for the next). One beat at a time, that is some twenty
        NumPy calls per beat on arrays of a few thousand values: mostly call
        overhead. So the beats are compared in batches, on a guess of how the
        template evolves over the batch:

        * that the next beats differ from it (crossings of muscle activity,
          or a heartbeat among them): the template stays, all are compared
          with it;
        * after two similar beats in a row, with the history full, that the
          next ones are similar too (a run of heartbeats): each joins the
          shapes, so beat ``r`` of the batch meets the median of the window
          of ``history`` shapes that ends just before it
          (:func:`_run_templates`, all of the batch's templates in one sort).

        The walk through the batch stops after the first beat that breaks the
        guess (its own comparison was right: its template depends on the
        beats before it only), and the next batch starts after it. Each batch
        is twice as long as the part of the last one of the same guess that
        was used. The results are those of comparing one beat at a time
        (``tests/test_ecg.py`` checks them against a beat-by-beat reference);
        only the number of NumPy calls depends on the guesses.
        """
        n_beats = len(beats)
        size = self.shape_len
        history = self.settings.history
        los = np.asarray(beats, dtype=np.int64) + (1 - size - ext_start)  # start of each beat's segment in ext
        shift = min(max(1, int(round(0.01 * self.fs))), (size - 2) // 4)
        comparer = _SegmentComparer(ext, los, size, shift)
        out: list[bool] = []
        i = 0
        while i < n_beats:
            lo = int(los[i])
            shapes = self._shapes[ch]
            if lo < 0 or len(shapes) < 3:
                # No start kept: nothing to compare, nothing learned. Fewer
                # than three shapes: learned without comparison.
                if lo >= 0:
                    self._learn_shape(ch, ext[lo:lo + size], False)
                out.append(False)
                i += 1
                continue
            run = self._similar_streak[ch] >= 2 and len(shapes) == history
            k = min(n_beats - i, self._batch[ch][run], comparer.group_end(i) - i)
            if run:
                segs = ext[los[i:i + k - 1, None] + np.arange(size)]  # the run's shapes but the last
                templates = comparer.prepare(_run_templates(np.array(shapes), segs))
            else:
                templates = self._templates[ch]
                if templates is None:
                    templates = self._templates[ch] = comparer.prepare(median(np.array(shapes), axis=0))
            scores = comparer.best_correlations(i, k, templates)
            for r in range(k):
                lo = int(los[i + r])
                similar = bool(scores[r] >= 0.7)
                out.append(similar)
                self._similar_streak[ch] = self._similar_streak[ch] + 1 if similar else 0
                changed = self._learn_shape(ch, ext[lo:lo + size], similar)
                if similar != run or (changed and not similar):
                    break  # the guess broke here (or the shapes restarted): later templates are not known
            if run and not changed:
                self._templates[ch] = templates.row(r)  # a dissimilar beat left row r in force
            self._batch[ch][run] = 2 * (r + 1)
            i += r + 1
        return out

    def _learn_shape(self, ch, seg, similar: bool) -> bool:
        """Add a compared beat's segment to the template's shapes; True when the template changed.

        The template learns from QRS-like beats only (a beat inside a
        contraction would blur it); after a history's worth of beats that all
        differ, the shape has changed (electrode moved): start again.
        """
        shapes = self._shapes[ch]
        if similar or len(shapes) < 3:
            self._misses[ch] = 0
            shapes.append(seg.copy())
            del shapes[:-self.settings.history]
            self._templates[ch] = None
            return True
        self._misses[ch] += 1
        if self._misses[ch] >= self.settings.history:
            shapes[:] = [seg.copy()]
            self._misses[ch] = 0
            self._templates[ch] = None
            return True
        return False

    def _level(self, ch) -> float:
        """The threshold's beat term: ``peak_fraction`` of the recent beats' level."""
        st = self._states[ch]
        return self.settings.peak_fraction * (st.level if st.peaks else st.learn_max)

    def _run(self, ch, e, first, pos, floor, out):
        """Walk the energy ``e`` (shape (n,)) of channel ``ch`` from ``pos``; append beats to ``out``.

        ``floor`` (shape (n,)) is ``noise_factor`` times the background
        energy in force at each sample; the threshold at a sample is the
        larger of it and :meth:`_level`. A run above threshold may start in
        one chunk and end in the next (the state is kept per channel).
        """
        st = self._states[ch]
        n = e.shape[0]
        above = _AboveThreshold(e, floor, self._level(ch), self._search_width)
        while pos < n:
            if st.mode == OUT:
                ready = max(pos, st.last_beat + self.refractory - first)
                if ready >= n:
                    return
                i = above.find(ready, n, True)
                if i < 0:
                    return
                st.mode, st.run_start, st.best, st.best_val = IN, first + i, first + i, float(e[i])
                pos = i
            elif st.mode == IN:
                end_local = st.run_start + self.max_run + 1 - first
                limit = min(n, end_local)
                drop = above.find(pos, limit, False)
                stop = drop if drop >= 0 else limit
                if stop > pos:
                    k = pos + int(e[pos:stop].argmax())
                    if e[k] > st.best_val:
                        st.best_val, st.best = float(e[k]), first + k
                if drop >= 0:
                    # The run ended: a beat if it was no wider than a QRS.
                    out.append(st.best)
                    st.last_beat = st.best
                    st.peaks = (st.peaks + [st.best_val])[-self.settings.history:]
                    st.level = small_median(st.peaks)
                    st.mode = OUT
                    pos = stop
                    above.set_level(self._level(ch))
                elif limit >= end_local:
                    st.mode = SKIP  # too wide for a QRS complex
                    pos = limit
                else:
                    return
            else:  # SKIP: wait for the wide run to end
                i = above.find(pos, n, False)
                if i < 0:
                    return
                st.mode = OUT
                pos = i


class _AboveThreshold:
    """Where a channel's energy lies above its threshold, found window by window.

    Parameters
    ----------
    e, floor : ndarray, shape (n,)
        Energy and ``noise_factor`` times the background at each sample.
    level : float
        The threshold's beat term; the threshold at sample ``i`` is
        ``max(level, floor[i])``.
    width : int
        Length of the first window a search evaluates.

    Notes
    -----
    A search evaluates the comparison on a window from where it starts and
    widens the window fourfold each time it finds nothing, so finding the
    next crossing costs about the distance to it rather than the rest of the
    chunk (with one threshold array per beat over the whole remaining chunk,
    the work grew with beats x chunk length). The last window's comparison
    is kept until the level changes (at each beat): the end of a run above
    the threshold, and the next crossing after a run too wide for a QRS,
    are then mostly found in it, without evaluating the threshold again.
    The floor, which does not change with the level, is applied once for
    the chunk: the energy where it is not above the floor is replaced by
    -inf, so that a window's comparison is one ``>`` with the level.
    """

    def __init__(self, e, floor, level: float, width: int):
        self.e, self.floor, self.level, self.width = e, floor, level, width
        # e > max(level, floor) is exactly gated > level, NaNs included (nothing is above a NaN, and a NaN
        # is above nothing).
        self.gated = np.where(e > floor, e, -np.inf)
        self.start = self.stop = 0  # the window whose comparison `above` holds
        self.above = None

    def set_level(self, level: float) -> None:
        self.level = level
        self.start = self.stop = 0

    def find(self, pos: int, limit: int, above: bool) -> int:
        """First index ``i`` in ``[pos, limit)`` where ``e[i] > max(level, floor[i])`` (``above``) or
        ``e[i] <= max(level, floor[i])`` (not ``above``); -1 when there is none."""
        width = self.width
        while pos < limit:
            if not self.start <= pos < self.stop:
                self.start, self.stop = pos, min(self.e.shape[0], pos + width)
                self.above = self.gated[pos:self.stop] > self.level
                width *= 4
            end = min(limit, self.stop)
            window = self.above[pos - self.start:end - self.start]
            k = int(window.argmax() if above else window.argmin())  # the first True (False), if any
            if window[k] == above:
                i = pos + k
                if above:
                    return i
                value, floor, level = float(self.e[i]), float(self.floor[i]), self.level
                if level == level and floor == floor and (value <= level or value <= floor):
                    return i  # at or below max(level, floor), no NaN: the usual case
                # A NaN is neither above nor at or below the threshold: the
                # rest of this window the long way.
                theta = np.maximum(self.level, self.floor[i:end])
                drops = (self.e[i:end] <= theta).nonzero()[0]
                if drops.size:
                    return i + int(drops[0])
            pos = end
        return -1


def regular_runs(beats, fs: float, min_beats: int = 5, bpm=(40.0, 200.0), tolerance: float = 0.25,
                 similar=None):
    """Stretches of beats at a regular heart rhythm.

    Parameters
    ----------
    beats : sequence of int
        Beat sample indices, increasing.
    fs : float
        Sampling rate in Hz.
    min_beats : int
        A run needs at least this many beats.
    bpm : (float, float)
        Heart-rate range in beats per minute.
    tolerance : float
        Each interval within this fraction of the run's median interval.
    similar : sequence of bool, optional
        Per beat, whether it has the shape of the previous beats
        (:attr:`BeatDetector.similar`); only such beats are used.

    Returns
    -------
    list of (int, int, float)
        ``(first beat, last beat, beats per minute)`` per run.
    """
    beats = np.asarray(beats, dtype=float)
    if similar is not None:
        beats = beats[np.asarray(similar, dtype=bool)]
    if beats.size < min_beats:
        return []
    rr = np.diff(beats) / fs
    lo, hi = 60.0 / bpm[1], 60.0 / bpm[0]
    runs = []
    i = 0
    while i < rr.size:
        # Grow a run while each interval is near the run's typical interval,
        # or near twice it (one beat missed, e.g. hidden in a muscle burst).
        j = i
        base = None
        while j < rr.size:
            if base is None:
                if not lo <= rr[j] <= hi:
                    break
                base = rr[j]
            k = max(1.0, round(rr[j] / base))
            if k > 2 or abs(rr[j] - k * base) > tolerance * base:
                break
            singles = rr[i:j + 1][np.abs(rr[i:j + 1] - base) <= tolerance * base]
            base = float(np.median(singles[-8:])) if singles.size else base
            j += 1
        n_beats = j - i + 1
        if n_beats >= min_beats and base is not None and lo <= base <= hi:
            runs.append((int(beats[i]), int(beats[j]), 60.0 / base))
            i = j
        else:
            i += 1
    return runs


#: Heartbeats are looked for (:func:`probe_beats`, the quality check) on a
#: copy of the signal decimated to at least this rate (:class:`Decimator`):
#: the QRS band ends at 30 Hz, and the detector works as well at 250 Hz (the
#: emgGO recordings' rate) as at 2 kHz, for an eighth of the work there.
#: The suppressor, which subtracts in the EMG band, runs at the full rate.
DETECTION_RATE_HZ = 250.0


def beat_decimator(fs: float) -> Decimator:
    """The :class:`~biofeedback.dsp.filters.Decimator` that feeds heartbeat detection at ``fs`` Hz."""
    return Decimator(fs, min_rate_hz=DETECTION_RATE_HZ)


def probe_beats(raw, fs: float, settings: ECGSettings | None = None) -> BeatDetector:
    """:class:`BeatDetector` run over the first seconds of a recording, in one call from sample 0.

    Batch analysis needs this run twice: :func:`heartbeat_found` decides
    from its beats whether heartbeat suppression is needed, and the quality
    check's monitor starts from the thresholds it learned
    (:meth:`BeatDetector.adopt`). Doing it once saves a pass of the
    detector per file.

    Parameters
    ----------
    raw : ndarray, shape (n_channels, n)
        Raw samples, typically the 10 s probe.
    fs : float
        Sampling rate in Hz.
    settings : ECGSettings, optional

    Returns
    -------
    BeatDetector
        Run on ``raw`` decimated by :func:`beat_decimator`: its ``fs`` is
        the decimated rate and its beat indices count decimated samples
        (index ``i`` is raw sample ``i * fs_raw / detector.fs``).
    """
    raw = np.atleast_2d(np.asarray(raw, dtype=float))
    decimator = beat_decimator(fs)
    low, _ = decimator.process(raw, 0)
    detector = BeatDetector(decimator.fs_out, raw.shape[0], settings)
    detector.update(low, 0)
    return detector


def heartbeat_found(raw, fs: float, settings: ECGSettings | None = None, min_beats: int = 5, *,
                    beats: BeatDetector | None = None):
    """Whether the first seconds of a recording show a regular heart rhythm.

    Runs :class:`BeatDetector` over ``raw`` (shape (n_channels, n), a few
    seconds: 10 s holds 6-30 beats) and looks for a run of ``min_beats``
    similar beats at 40-200 bpm on any channel (:func:`regular_runs`).

    Parameters
    ----------
    raw : ndarray, shape (n_channels, n)
    fs : float
    settings : ECGSettings, optional
    min_beats : int
    beats : BeatDetector, optional
        The result of :func:`probe_beats` over ``raw`` with ``settings``,
        when the caller has it already; ``raw`` is then not read again. The
        decision rests on the beats and their shape flags only, which do not
        depend on how the samples were chunked (the detector decides on
        sample indices), so one call over the probe decides as the 1 s steps
        this used to take.

    Returns
    -------
    found : bool
    bpm : list of float
        Heart rate per channel (NaN where none was found).
    """
    detector = beats if beats is not None else probe_beats(raw, fs, settings)
    bpm = []
    for beat_list, similar in zip(detector.beats, detector.similar):
        runs = regular_runs(beat_list, detector.fs, min_beats=min_beats, similar=similar)
        bpm.append(float(np.median([r[2] for r in runs])) if runs else float("nan"))
    return bool(np.any(np.isfinite(bpm))), bpm


class ECGSuppressor(Stage):
    """EMG band-pass with heartbeat template subtraction, delayed output.

    Parameters
    ----------
    cascade : FilterCascade
        The EMG band-pass (and notch) the pipeline would run otherwise.
    settings : ECGSettings

    Notes
    -----
    Input: raw samples. Output: the band-passed signal with the heartbeats
    subtracted, delayed by :attr:`delay` samples (the first ``delay``
    outputs are zeros). :attr:`filters` exposes the cascade's filters so
    :meth:`Pipeline.find` still finds the band-pass and the notch.
    """

    name = "filtered"

    def __init__(self, cascade: FilterCascade, settings: ECGSettings | None = None):
        super().__init__()
        self.cascade = cascade
        self.settings = settings or ECGSettings()
        self.delay = 0
        self.n_subtracted: np.ndarray | None = None
        self._primer: ECGSuppressor | None = None

    def prime(self, raw, info: StreamInfo) -> None:
        """Learn the beat threshold and templates from the first seconds.

        Batch analysis has the whole recording, so it need not wait for
        ``learn_s`` and a few beats before suppressing: it runs a throw-away
        suppressor over the first seconds (``raw``, shape (n_channels, n))
        and starts the real pass with what it learned, so beats are removed
        from the very first one. Live use may prime with its mains probe.
        Call before the first chunk; the result depends only on ``raw``.
        """
        raw = np.asarray(raw, dtype=float)
        primer = ECGSuppressor(FilterCascade(self.cascade.filters), self.settings)
        primer.process(Chunk(raw, 0, info))
        self._primer = primer

    @property
    def filters(self):
        return self.cascade.filters

    @property
    def delay_s(self) -> float:
        """Output delay in seconds (exact: ``delay / fs`` once configured)."""
        if self._info is not None:
            return self.delay / self._info.fs
        return self.settings.delay_s

    @staticmethod
    def delay_samples(settings: ECGSettings, fs: float) -> int:
        """Delay in samples for sampling rate ``fs``."""
        return int(round(settings.delay_s * fs))

    def _configure(self, info: StreamInfo) -> None:
        s = self.settings
        fs = info.fs
        self.cascade.reset()
        self.detector = BeatDetector(fs, info.n_channels, s)
        self.pre = max(1, int(round(s.pre_s * fs)))
        self.post = max(1, int(round(s.post_s * fs)))
        self.delay = self.delay_samples(s, fs)
        self.shift = max(0, int(round(s.max_shift_s * fs)))
        n = info.n_channels
        # Buffer of band-passed samples not yet released, and of the 5-30 Hz band.
        self._buf = np.zeros((n, self.delay))
        self._band = np.zeros((n, self.delay))
        self._buf_start = -self.delay  # stream index of _buf[:, 0]
        self.ref = max(1, int(round(s.ref_s * fs)))
        self._released = np.zeros((n, self.ref))  # last released samples
        self._pending: list[list[int]] = [[] for _ in range(n)]
        self._segments = [[] for _ in range(n)]  # EMG-band segments of recent beats
        self._band_segments = [[] for _ in range(n)]
        self.n_subtracted = np.zeros(n, dtype=int)
        self.n_late = np.zeros(n, dtype=int)
        self._window = signal.windows.tukey(self.pre + self.post, alpha=0.25)
        primer = self._primer
        if primer is not None and primer.info is not None and primer.info.n_channels == n \
                and primer.info.fs == fs and primer.detector.learned:
            self.detector.adopt(primer.detector)
            self._segments = [list(seg) for seg in primer._segments]
            self._band_segments = [list(seg) for seg in primer._band_segments]

    def _process(self, chunk: Chunk) -> Chunk:
        raw = np.asarray(chunk.data, dtype=float)
        n = raw.shape[1]
        if n == 0:
            return chunk.replace(data=np.zeros_like(raw), events=())
        emg = self.cascade.process(chunk).data
        new = self.detector.update(raw, chunk.first_sample)
        self._buf = np.concatenate([self._buf, emg], axis=1)
        self._band = np.concatenate([self._band, self.detector.band], axis=1)
        newest = chunk.stop  # one past the last sample held
        for ch in range(raw.shape[0]):
            self._pending[ch].extend(new[ch])
            keep = []
            for beat in self._pending[ch]:
                if beat + self.post + self.shift <= newest:
                    self._handle_beat(ch, beat)
                else:
                    keep.append(beat)
            self._pending[ch] = keep
        # Release the samples older than the delay.
        out = self._buf[:, :n]
        self._released = np.concatenate([self._released, out], axis=1)[:, -self.ref:]
        self._buf = self._buf[:, n:]
        self._band = self._band[:, n:]
        self._buf_start += n
        return chunk.replace(data=np.array(out), events=())

    def _handle_beat(self, ch, beat):
        lo = beat - self.pre - self._buf_start
        hi = beat + self.post - self._buf_start
        if lo - self.shift < 0:
            self.n_late[ch] += 1
            # Part of the span was already released (a run that ended late,
            # or the very start of the stream): the beat cannot be handled.
            return
        templates = self._segments[ch]
        if len(templates) >= self.settings.min_beats:
            t_emg = median(np.array(templates), axis=0)
            t_band = median(np.array(self._band_segments[ch]), axis=0)
            reach = self._band[ch, lo - self.shift:hi + self.shift]
            similarity, lag = _aligned_correlation(reach, t_band)
            lag -= self.shift
            if similarity >= self.settings.min_similarity:
                # The span moves to where the beat matches the template.
                lo, hi = lo + lag, hi + lag
                seg = self._buf[ch, lo:hi].copy()
                band = self._band[ch, lo:hi].copy()
                shaped = t_emg * self._window
                denom = float(np.dot(shaped, shaped))
                gain = 1.0 if denom <= 0 else float(np.clip(np.dot(seg, shaped) / denom, 0.5, 1.5))
                self._buf[ch, lo:hi] -= gain * shaped
                self.n_subtracted[ch] += 1
                self._match_level(ch, lo, hi)
            elif similarity < 0.3:
                return  # not a heartbeat: keep it out of the template
            else:
                seg = self._buf[ch, lo:hi].copy()
                band = self._band[ch, lo:hi].copy()
        else:
            seg = self._buf[ch, lo:hi].copy()
            band = self._band[ch, lo:hi].copy()
        templates.append(seg)
        self._band_segments[ch].append(band)
        del templates[:-self.settings.history]
        del self._band_segments[ch][:-self.settings.history]

    def _match_level(self, ch, lo, hi):
        """Scale the beat span down to the RMS of the samples just before it.

        What the subtraction leaves (the template is an estimate) would still
        lift a resting envelope at every beat; inside a muscle burst the span
        is as strong as its neighbourhood and stays as it is.
        """
        before = np.concatenate([self._released[ch], self._buf[ch, :lo]])[-self.ref:]
        span = self._buf[ch, lo:hi]
        ref = float(np.sqrt(np.mean(before ** 2)))
        level = float(np.sqrt(np.mean(span ** 2)))
        if level > ref > 0:
            self._buf[ch, lo:hi] = span * (ref / level)

    def reset(self) -> None:
        super().reset()
        self.cascade.reset()

    def __repr__(self):
        return f"ECGSuppressor({self.cascade!r}, delay {self.settings.delay_s * 1000:.0f} ms)"


def _best_correlation(seg, template, shift: int) -> tuple[float, int]:
    """Highest correlation of ``seg`` with ``template`` shifted by up to ``shift`` samples, and that shift.

    The template's middle (``shift`` samples trimmed at each end) is
    compared with every window of the segment it can slide over, in one
    vectorised step; a positive shift means the segment lags the template.
    """
    if shift <= 0 or len(seg) <= 2 * shift + 1:
        return _correlation(seg, template), 0
    core = template[shift:len(template) - shift]
    windows = np.lib.stride_tricks.sliding_window_view(seg, core.size)  # 2 * shift + 1 windows
    core = core - core.mean()
    centred = windows - windows.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(centred ** 2, axis=1) * np.dot(core, core))
    corr = np.where(den > 0, centred @ core / np.where(den > 0, den, 1.0), 0.0)
    k = int(np.argmax(corr))
    return float(corr[k]), k - shift


def _window_correlations(windows, core) -> np.ndarray:
    """Pearson correlation of each window (last axis) with ``core``, already centred (0 where flat).

    Called once or twice per heartbeat with a handful of segments, this is
    mostly per-call overhead: the window means and sums of squares go
    straight to ``np.add.reduce``, the operations ``mean`` and ``sum`` run
    (a mean is the sum divided by the count), without their wrappers.
    """
    centred = windows - np.add.reduce(windows, axis=-1, keepdims=True) / windows.shape[-1]
    den = np.sqrt(np.add.reduce(centred * centred, axis=-1) * np.dot(core, core))
    positive = den > 0
    return np.where(positive, centred @ core / np.where(positive, den, 1.0), 0.0)


@dataclass(frozen=True)
class _Templates:
    """Templates ready to be compared with segments (:meth:`_SegmentComparer.prepare`).

    ``values``: shape (m,) or (k, m); ``core``: their middles (``shift``
    samples trimmed at each end), centred; ``core_squares``: the sum of
    squares of each core, a float or shape (k, 1).
    """

    values: np.ndarray
    core: np.ndarray
    core_squares: object

    def row(self, r: int) -> "_Templates":
        """Template ``r`` of a stack, on its own."""
        return _Templates(self.values[r].copy(), self.core[r].copy(), float(self.core_squares[r, 0]))


class _SegmentComparer:
    """:func:`_best_correlation` of the beats' segments of one signal with templates, many segments per call.

    Parameters
    ----------
    x : ndarray, shape (n,)
        The signal.
    starts : ndarray of int, shape (n_segments,)
        Index in ``x`` of each segment's first sample, increasing; segment
        ``j`` is ``x[starts[j]:starts[j] + size]``. Negative starts mark
        segments that are never compared.
    size : int
        Segment length ``m``.
    shift : int
        Largest shift in samples.

    Notes
    -----
    The beat shape check compares one or a few segments at a time with a
    template that changes as it goes, so the cost is mostly NumPy call
    overhead. What does not depend on the template is computed once per
    segment, for groups of consecutive segments at a time: the windows of
    the template core's length (``m' = m - 2 shift``) at every shift,
    centred, and their sums of squares; a template's centred core and its
    sum of squares once per template (:meth:`prepare`). A comparison is then
    a matrix-vector product and a few element-wise operations. These are
    the operations of :func:`_window_correlations` on one segment's
    windows, over one more axis; per-segment cores go through ``matmul``
    with stacked vectors, which runs the same BLAS dot and matrix-vector
    products as one segment's ``np.dot`` and ``@``. ``tests/test_ecg.py``
    checks the values against :func:`_best_correlation` to the bit.
    """

    #: Most values of centred windows held at once (2 MB): about 150
    #: segments at 1 kHz, 40 at 2 kHz.
    GROUP_VALUES = 1 << 18

    def __init__(self, x, starts, size: int, shift: int):
        self.x, self.starts, self.size, self.shift = x, starts, size, shift
        if shift > 0:
            self.windows = sliding_windows(x, size - 2 * shift)  # (n - m' + 1, m'), a view
            self.offsets = np.arange(2 * shift + 1)
            self.group = max(1, self.GROUP_VALUES // (self.offsets.size * self.windows.shape[1]))
        else:
            self.group = max(1, len(starts))
        self._first = -1  # first segment of the group held

    def group_end(self, j: int) -> int:
        """One past the last segment of the group that holds segment ``j``: a call stays within a group."""
        return min(len(self.starts), (j // self.group + 1) * self.group)

    def prepare(self, templates) -> _Templates:
        """``templates`` (shape (m,) or (k, m), C-contiguous) ready for :meth:`best_correlations`."""
        m = templates.shape[-1]
        core = templates[..., self.shift:m - self.shift]
        core = core - np.add.reduce(core, axis=-1, keepdims=True) / core.shape[-1]
        if core.ndim == 1:
            return _Templates(templates, core, np.dot(core, core))
        return _Templates(templates, core, np.matmul(core[:, None, :], core[:, :, None])[:, 0])

    def best_correlations(self, j: int, k: int, templates: _Templates) -> np.ndarray:
        """Highest correlation of segments ``j .. j + k - 1`` with their template(s) over the shifts.

        Parameters
        ----------
        j, k : int
            First segment and number of segments (all in one group, none
            with a negative start).
        templates : _Templates
            One template for all segments, or ``k``, one per segment.

        Returns
        -------
        ndarray, shape (k,)
        """
        if self.shift <= 0:  # too short to shift: the plain correlation
            rows = np.broadcast_to(templates.values, (k, self.size))
            return np.array([_correlation(self.x[lo:lo + self.size], t)
                             for lo, t in zip(self.starts[j:j + k], rows)])
        first = j - j % self.group
        if first != self._first:
            # Segments with a negative start are never compared: any window stands in.
            starts = np.maximum(self.starts[first:first + self.group], 0)
            centred = self.windows[starts[:, None] + self.offsets]  # (group, 2 shift + 1, m'): a copy
            centred -= np.add.reduce(centred, axis=-1, keepdims=True) / centred.shape[-1]
            self._centred, self._squares = centred, np.add.reduce(centred * centred, axis=-1)
            self._first = first
        centred = self._centred[j - first:j - first + k]
        core = templates.core
        if core.ndim == 1:
            products = centred @ core
        else:
            products = np.matmul(centred, core[:, :, None])[:, :, 0]
        den = np.sqrt(self._squares[j - first:j - first + k] * templates.core_squares)
        # Where den is 0 (a flat window or template) the correlation is 0.
        corr = np.divide(products, den, out=np.zeros_like(products), where=den > 0)
        return corr.max(axis=1)


def _run_templates(shapes, segs) -> np.ndarray:
    """Templates met by a run of similar beats: each joins the shapes after its comparison.

    Parameters
    ----------
    shapes : ndarray, shape (history, m)
        The shapes before the run (a full history).
    segs : ndarray, shape (k - 1, m)
        The segments of the run's beats but the last.

    Returns
    -------
    ndarray, shape (k, m), C-contiguous
        Row ``r``: the median of the last ``history`` rows of ``shapes`` then
        ``segs[:r]``, i.e. ``median(shapes)`` for the first beat: the
        template :class:`BeatDetector` uses for beat ``r`` if beats ``0 ..
        r - 1`` were all similar. The values of :func:`median` of each window
        (a median does not depend on the order of the shapes).
    """
    stacked = np.concatenate([shapes, segs])
    history, m = shapes.shape
    k = segs.shape[0] + 1
    # windows[r, j] holds sample j of rows r .. r + history - 1 of the stacked
    # shapes, copied so that each lies in contiguous memory: NumPy sorts such
    # short rows faster than strided ones.
    step, item = stacked.strides
    windows = np.lib.stride_tricks.as_strided(stacked, (k, m, history), (step, item, step), writeable=False)
    return median(np.ascontiguousarray(windows), axis=-1)


def _aligned_correlation(reach, template) -> tuple[float, int]:
    """Highest correlation of ``template`` with a window of ``reach`` of its length, and that window's start."""
    m = len(template)
    if len(reach) < m:
        return 0.0, 0
    windows = sliding_windows(reach, m)
    corr = _window_correlations(windows, template - template.mean())
    k = int(np.argmax(corr))
    return float(corr[k]), k


def _correlation(a, b) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 0 else 0.0
