"""Classification of detected activations, and elevated resting tone.

The detector finds *activations* (the envelope clearly above rest); this
module says what each one was, from its duration and from the cue track
(what the person was asked to do at the time: ``rest``/``contract`` from a
protocol live, or a file's cue/marker column in batch):

===================  =========================================================
kind                 rule (defaults in :class:`ClassifierSettings`)
===================  =========================================================
``contraction``      starts during a contract cue (or up to ``cue_lead_s``
                     before one) and ends within ``relax_grace_s`` after the
                     relax cue; without any cue track, every activation
``failure_to_relax`` starts as a cued contraction but is still active more than
                     ``relax_grace_s`` after the relax cue began
``twitch``           uncued, shorter than ``twitch_max_s``
``spasm``            uncued, phasic: ``twitch_max_s`` up to ``cramp_min_s``
``cramp``            uncued, sustained: ``cramp_min_s`` or longer
``elevated_tone``    not an activation: the resting level (2 s running
                     median of the envelope) above ``tone_factor`` times the
                     baseline level for ``tone_min_s`` or longer, outside
                     sustained activations (and, with cues, during rest
                     cues only)
===================  =========================================================

Without a cue track an activation cannot be told voluntary or not, so it
stays a ``contraction``; its ``shape`` (``twitch``/``phasic``/
``sustained``, by the same duration limits) is still given.

One implementation serves live and batch: :class:`EventClassifier` is
handed to the :class:`~biofeedback.detect.threshold.ThresholdDetector`,
which calls it with each chunk (for the cues and the envelope) and each
completed activation. It only looks at samples up to the current one, and
decides on sample indices, so the events do not depend on chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from biofeedback.core.types import Event
from biofeedback.dsp.stats import median
from biofeedback.errors import ParameterError

REST, CONTRACT, UNKNOWN = 0, 1, -1

#: Kinds produced by the classifier, activations first.
ACTIVATION_KINDS = ("contraction", "failure_to_relax", "spasm", "cramp", "twitch")
KINDS = ACTIVATION_KINDS + ("elevated_tone",)


@dataclass(frozen=True)
class CueMap:
    """How the labels of a cue track map to rest and contract.

    Parameters
    ----------
    rest : tuple of str
        Labels meaning "rest" (case-insensitive). Numbers equal to 0 are
        rest too (datasets label rest 0 and the tasks 1, 2, ...).
    contract : tuple of str or None
        Labels meaning "contract". None: every other non-empty label.
    """

    rest: tuple = ("rest", "relax", "relaxed", "off", "0", "none", "baseline")
    contract: tuple | None = None

    def code_of(self, label) -> int:
        """REST, CONTRACT or UNKNOWN (empty or missing label) for one label."""
        if label is None:
            return UNKNOWN
        if isinstance(label, float) and math.isnan(label):
            return UNKNOWN
        text = str(label).strip().lower()
        if text in ("", "nan"):
            return UNKNOWN
        if text in self.rest:
            return REST
        try:
            if float(text) == 0.0:
                return REST
        except ValueError:
            pass
        if self.contract is None or text in self.contract:
            return CONTRACT
        return UNKNOWN

    def codes(self, labels) -> np.ndarray:
        """Codes (int8) for an array of labels, one per sample."""
        labels = np.asarray(labels)
        if labels.size == 0:
            return np.zeros(0, dtype=np.int8)
        if labels.dtype.kind in "iub":
            return np.where(labels == 0, REST, CONTRACT).astype(np.int8)
        if labels.dtype.kind == "f":
            return np.where(np.isnan(labels), UNKNOWN, np.where(labels == 0, REST, CONTRACT)).astype(np.int8)
        uniques, inverse = np.unique(labels.astype(str), return_inverse=True)
        table = np.array([self.code_of(u) for u in uniques], dtype=np.int8)
        return table[inverse.reshape(-1)]


def chunk_cues(chunk):
    """The cue labels of a chunk (``chunk.cues``, or a reader's ``layers["cues"]``), or None."""
    if chunk.cues is not None:
        return chunk.cues
    layer = chunk.layers.get("cues") if chunk.layers else None
    if layer is not None:
        return np.asarray(layer).reshape(-1)
    return None


class CueTrack:
    """Run-length record of the cue codes seen so far (sample indices)."""

    def __init__(self):
        self.starts: list[int] = []
        self.codes: list[int] = []
        self.end = 0
        self.seen = False  # any REST or CONTRACT code so far

    def append(self, codes, first_sample: int) -> None:
        codes = np.asarray(codes, dtype=np.int8)
        if codes.size == 0:
            return
        if first_sample > self.end:  # a gap: unknown cues in between
            self._add(self.end, UNKNOWN)
        change = np.flatnonzero(np.diff(codes)) + 1
        for i in np.concatenate(([0], change)):
            self._add(first_sample + int(i), int(codes[i]))
        self.end = first_sample + codes.size
        self.seen = self.seen or bool(np.any(codes != UNKNOWN))

    def _add(self, start, code):
        if self.codes and self.codes[-1] == code:
            return
        if self.starts and self.starts[-1] == start:
            self.codes[-1] = code
        else:
            self.starts.append(start)
            self.codes.append(code)

    def at(self, index: int) -> int:
        """Code at a sample index (UNKNOWN outside what was seen)."""
        if not self.starts or index < self.starts[0] or index >= self.end:
            return UNKNOWN
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.codes[k]

    def segments(self, start: int, stop: int):
        """``(start, stop, code)`` runs covering samples ``start .. stop - 1``."""
        out = []
        if stop <= start:
            return out
        bounds = self.starts + [self.end]
        pos = start
        if not self.starts or pos < self.starts[0]:
            head = min(stop, self.starts[0]) if self.starts else stop
            out.append((pos, head, UNKNOWN))
            pos = head
        k = max(0, int(np.searchsorted(self.starts, pos, side="right")) - 1)
        while pos < stop and k < len(self.starts):
            seg_end = min(stop, bounds[k + 1])
            if seg_end > pos:
                out.append((pos, seg_end, self.codes[k]))
                pos = seg_end
            k += 1
        if pos < stop:
            out.append((pos, stop, UNKNOWN))
        return out

    def codes_between(self, start: int, stop: int) -> np.ndarray:
        """Code per sample for ``start .. stop - 1``."""
        out = np.full(max(0, stop - start), UNKNOWN, dtype=np.int8)
        for a, b, code in self.segments(start, stop):
            out[a - start:b - start] = code
        return out


@dataclass(frozen=True)
class ClassifierSettings:
    """Limits of the classification, with where they come from.

    Attributes
    ----------
    twitch_max_s : float
        0.25 s. A twitch is a single volley of motor-unit discharges lasting
        tens of milliseconds; through the 100 ms moving RMS it shows as a
        burst of 0.1-0.2 s. A deliberate on-off flick of a muscle takes
        longer than 0.25 s (reaction, rise and release), so shorter uncued
        bursts are twitches.
    cramp_min_s : float
        3 s. Muscle cramps are sustained involuntary contractions lasting
        seconds to minutes (Miller & Layzer 2005, Muscle Nerve 32:431-442);
        uncued bursts shorter than this are phasic spasms.
    relax_grace_s : float
        1 s. After a relax cue the envelope needs a reaction time (0.05-0.55
        s measured on the labelled Myo recording; simple reaction times are
        0.2-0.5 s) plus its own window to fall; activity still present 1 s
        after the cue is a failure to relax.
    cue_lead_s : float
        0.3 s. An onset up to this long before a contract cue still counts
        as cued: onsets are back-tracked by up to 0.3 s (the detector's
        ``max_backtrack_s``) and people anticipate a countdown.
    tone_factor : float
        1.5. The resting envelope counts as elevated above 1.5 times the
        baseline level: a resting moving-RMS envelope wanders by 5-25 % of
        its level (the spread the detector's ``sigma`` measures), so 1.5x is
        at least two such spreads above normal.
    tone_min_s : float
        5 s. Longer than any phasic spasm (< 3 s) and than one breath
        (about 4 s), so a sigh or a brief bracing does not count.
    tone_window_s : float
        2 s. The resting level is the running median of the envelope over
        this window (the median of 0.25 s block medians): bursts shorter than
        half of it do not move it, so a spasm inside a stretch of raised tone
        does not break the stretch, and a brief spasm alone is not tone.
        Sustained activations (``cramp_min_s`` or longer) are reported as
        such and their time (plus one window) is not counted as tone.
    """

    twitch_max_s: float = 0.25
    cramp_min_s: float = 3.0
    relax_grace_s: float = 1.0
    cue_lead_s: float = 0.3
    tone_factor: float = 1.5
    tone_min_s: float = 5.0
    tone_window_s: float = 2.0

    def __post_init__(self):
        for name in ("twitch_max_s", "cramp_min_s", "tone_min_s", "tone_window_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, "a positive duration in seconds", getattr(self, name))
        for name in ("relax_grace_s", "cue_lead_s"):
            if not getattr(self, name) >= 0:
                raise ParameterError(name, "a duration >= 0 s", getattr(self, name))
        if not self.twitch_max_s < self.cramp_min_s:
            raise ParameterError("twitch_max_s", f"below cramp_min_s = {self.cramp_min_s:g} s", self.twitch_max_s)
        if not self.tone_factor > 1:
            raise ParameterError("tone_factor", "a factor above 1 (times the resting level)", self.tone_factor)

    def shape(self, duration_s: float) -> str:
        """``twitch``, ``phasic`` or ``sustained`` by duration."""
        if duration_s < self.twitch_max_s:
            return "twitch"
        if duration_s < self.cramp_min_s:
            return "phasic"
        return "sustained"


def classify_activation(onset: int, offset: int, fs: float, cues: CueTrack | None,
                        settings: ClassifierSettings) -> tuple[str, dict]:
    """Kind and extra fields of one activation (raw sample indices).

    Parameters
    ----------
    onset, offset : int
        First and one-past-last sample of the activation, in the raw
        signal's indices.
    fs : float
        Sampling rate in Hz.
    cues : CueTrack or None
        Cues seen so far (must cover ``onset .. offset``).
    settings : ClassifierSettings

    Returns
    -------
    kind : str
    extra : dict
        ``cue`` (at the onset: ``contract``, ``rest`` or empty), ``shape``
        and, for a cued activation that outlasts its cue, ``relax_delay_s``
        (seconds from the relax cue to the end of the activity).
    """
    duration = (offset - onset) / fs
    shape = settings.shape(duration)
    if cues is None or not cues.seen:
        return "contraction", {"cue": "", "shape": shape}
    lead = int(round(settings.cue_lead_s * fs))
    segs = cues.segments(onset, max(offset, onset + lead + 1))
    cue_on = cues.at(onset)
    contract_start = None
    for a, b, code in segs:
        if code == CONTRACT and a <= onset + lead:
            contract_start = a
            break
        if a > onset + lead:
            break
    if contract_start is None:
        if cue_on == UNKNOWN:
            return "contraction", {"cue": "", "shape": shape}
        kind = "twitch" if shape == "twitch" else "spasm" if shape == "phasic" else "cramp"
        return kind, {"cue": "rest", "shape": shape}
    # Cued: find where that contract cue ends (the relax cue begins).
    relax_start = None
    for a, b, code in cues.segments(contract_start, offset):
        if a >= contract_start and code != CONTRACT:
            relax_start = a
            break
    extra = {"cue": "contract", "shape": shape}
    if relax_start is not None:
        delay = (offset - relax_start) / fs
        extra["relax_delay_s"] = round(delay, 4)
        if delay > settings.relax_grace_s:
            return "failure_to_relax", extra
    return "contraction", extra


class _ToneState:
    __slots__ = ("medians", "run_start", "run_peak", "candidates", "activations", "last_end")

    def __init__(self):
        self.last_end = 0
        self.medians: list[float] = []  # medians of the last blocks
        self.run_start = None
        self.run_peak = 0.0
        self.candidates: list[tuple[int, int, float]] = []
        self.activations: list[tuple[int, int]] = []


class EventClassifier:
    """Relabels a detector's activations and reports elevated resting tone.

    Parameters
    ----------
    settings : ClassifierSettings
    cue_map : CueMap
        Mapping of the chunks' cue labels to rest/contract.
    coded_cues : bool
        The chunks' cues are already codes (``REST``, ``CONTRACT``,
        ``UNKNOWN``), as batch analysis stores them.
    tone_without_cues : bool
        Report elevated tone when the stream has no cue track. Only
        meaningful when the baseline is the person's calibrated rest (live
        use, ``--rest``, a profile): against a baseline estimated from the
        same recording's quieter half, a sustained gesture on a muscle that
        only helps would read as "tone". With cues, tone is looked for
        during rest cues only, whatever this says.
    tone : bool
        Track the resting tone at all. Batch analysis knows before its
        detection pass whether the file has cues; without cues and without
        ``tone_without_cues`` no block can count, and the running medians
        (a quarter of this classifier's time) are skipped. A live stream,
        whose cues may start at any time, keeps the default.

    Notes
    -----
    Give it to :class:`~biofeedback.detect.threshold.ThresholdDetector`
    (``classifier=``); the detector calls :meth:`process` for every chunk
    and :meth:`flush` at the end. Cues are read from ``chunk.cues`` or a
    reader's ``chunk.layers["cues"]``. Envelope indices are the raw
    signal's plus the detector's ``delay``.
    """

    def __init__(self, settings: ClassifierSettings | None = None, cue_map: CueMap | None = None, *,
                 coded_cues: bool = False, tone_without_cues: bool = True, tone: bool = True):
        self.settings = settings or ClassifierSettings()
        self.cue_map = cue_map or CueMap()
        self.coded_cues = bool(coded_cues)  # cues arrive as REST/CONTRACT/UNKNOWN codes already
        self.tone_without_cues = bool(tone_without_cues)
        self.tone = bool(tone)
        self.reset()

    def reset(self) -> None:
        self.cues = CueTrack()
        self._tone: list[_ToneState] = []
        self._fs = None

    # -- called by the detector -------------------------------------------------
    def process(self, detector, chunk, spans, events) -> list[Event]:
        """Relabel ``events`` (with their index ``spans``) and add tone events."""
        fs = chunk.info.fs
        if self._fs is None:
            self._fs = fs
            self._block = max(1, int(round(0.25 * fs)))
            self._n_blocks = max(1, int(round(self.settings.tone_window_s / 0.25)))
            self._window = self._block * self._n_blocks
            self._tone_min = int(round(self.settings.tone_min_s * fs))
            self._tone = [_ToneState() for _ in range(chunk.info.n_channels)]
            self._parts: list[np.ndarray] = []
            self._allowed_parts: list[np.ndarray] = []
            self._fill = 0
        labels = chunk_cues(chunk)
        if labels is not None:
            codes = np.asarray(labels, dtype=np.int8) if self.coded_cues else self.cue_map.codes(labels)
            self.cues.append(codes, chunk.first_sample)
        out = self._relabel(detector, spans, events)
        if self.tone:
            self._note_activations(spans)
            self._track_tone(detector, chunk)
            out.extend(self._finish_tone(detector, final=False))
        return out

    def _note_activations(self, spans) -> None:
        """Keep the sustained activations: their time is not resting tone.

        Phasic ones (shorter than ``cramp_min_s``) do not interrupt a stretch
        of raised tone: the running median hardly feels them, and frequent
        spasms on a raised level are part of what the tone describes.
        """
        sustained = int(round(self.settings.cramp_min_s * self._fs))
        for ch, onset, offset, _ in spans:
            if offset - onset >= sustained:
                self._tone[ch].activations.append((onset, offset))

    def flush(self, detector, spans, events, stop) -> list[Event]:
        """Relabel the activations closed at the end and close the tone runs."""
        if self._fs is None:
            return list(events)
        out = self._relabel(detector, spans, events)
        if not self.tone:
            return out
        self._note_activations(spans)
        for ch, st in enumerate(self._tone):
            if st.run_start is not None:
                st.candidates.append((st.run_start, stop, st.run_peak))
                st.run_start = None
        out.extend(self._finish_tone(detector, final=True))
        return out

    # -- activations --------------------------------------------------------------
    def _relabel(self, detector, spans, events) -> list[Event]:
        out = []
        delay = detector.delay
        for (ch, onset, offset, _), event in zip(spans, events):
            kind, extra = classify_activation(max(0, onset - delay), max(0, offset - delay), self._fs,
                                              self.cues, self.settings)
            out.append(Event(kind, event.channel, event.onset_s, event.offset_s, event.peak, extra))
        return out

    # -- elevated tone --------------------------------------------------------------
    def _track_tone(self, detector, chunk) -> None:
        """Running median of 0.25 s block medians, for all blocks ending in the chunk at once.

        Parameters
        ----------
        detector : ThresholdDetector
            Gives the baseline, the disabled channels, the settle time and
            the envelope delay.
        chunk : Chunk
            Envelope ``(n_channels, n)``; blocks lie on absolute indices, so
            where chunks end does not matter.

        Notes
        -----
        Block by block, one ``np.median`` per block and one per channel and
        block made most of this classifier's time. Here the complete blocks
        are reshaped to ``(n_channels, k, block)`` and reduced in one call,
        and the running median of the last ``tone_window_s`` of block
        medians is one call over a sliding-window view, both with
        :func:`~biofeedback.dsp.stats.median` (``np.median`` to the bit from
        one sort): the same numbers (``tests/test_classify.py`` compares with
        the block-by-block walk).
        Only the run bookkeeping is walked block by block, and only on the
        channels where the level is high or a run is open.
        """
        env = np.asarray(chunk.data, dtype=float)
        first = chunk.first_sample
        n_ch, n = env.shape
        delay = detector.delay
        if self.cues.seen:
            allowed = self.cues.codes_between(first - delay, first - delay + n) != CONTRACT
        else:
            allowed = np.full(n, self.tone_without_cues)
        size, fill = self._block, self._fill
        if fill + n < size:
            self._parts.append(env)
            self._allowed_parts.append(allowed)
            self._fill += n
            return
        held = np.concatenate(self._parts + [env], axis=1) if fill else env
        held_ok = np.concatenate(self._allowed_parts + [allowed]) if fill else allowed
        k = held.shape[1] // size
        cut = k * size
        rest = held[:, cut:]
        self._parts = [rest.copy()] if rest.shape[1] else []  # a copy: a view would hold the whole chunk
        self._allowed_parts = [held_ok[cut:].copy()] if rest.shape[1] else []
        self._fill = rest.shape[1]

        starts = first - fill + size * np.arange(k)  # stream index of each block's first sample
        # Nothing is tracked in the detector's settling time.
        settle = int(round(detector.settings.settle_s * self._fs))
        keep = starts >= settle
        if not keep.any():
            return
        medians = median(held[:, :cut].reshape(n_ch, k, size), axis=2)[:, keep]
        block_ok = held_ok[:cut].reshape(k, size).all(axis=1)[keep]
        starts = starts[keep]
        k = starts.size
        # Every channel has seen the same blocks, so their histories have one length.
        old = np.array([st.medians for st in self._tone], dtype=float).reshape(n_ch, -1)
        history = np.concatenate([old, medians], axis=1)
        h = old.shape[1]
        for ch, st in enumerate(self._tone):
            st.medians = history[ch, -self._n_blocks:].tolist()
        levels = np.zeros((n_ch, k))
        high = np.zeros((n_ch, k), dtype=bool)  # without a baseline (live calibration) runs can only close
        if detector.baseline is not None and block_ok.any():
            # (Where no block of the chunk may count, e.g. all inside contract
            # cues, nothing is high whatever the level: the running median is skipped.)
            # Block m of the chunk is ready once n_blocks medians end with it.
            ready = h + np.arange(k) + 1 >= self._n_blocks
            if ready.any():
                windows = np.lib.stride_tricks.sliding_window_view(history, self._n_blocks, axis=1)
                levels[:, ready] = median(windows[:, -int(ready.sum()):], axis=2)
            threshold = self.settings.tone_factor * np.asarray(detector.baseline.level, dtype=float)[:, None]
            high = ready & block_ok & (levels > threshold)
        for ch, st in enumerate(self._tone):
            if ch in detector.disabled:
                high[ch] = False
            if st.run_start is None and not high[ch].any():
                continue  # no run open or opening in this chunk
            for m in range(k):
                start = int(starts[m])
                if high[ch, m]:
                    level = float(levels[ch, m])
                    if st.run_start is None:
                        # The running median describes the whole window: the
                        # raised level began when the window did (but not
                        # before the previous stretch ended).
                        earliest = st.candidates[-1][1] if st.candidates else st.last_end
                        st.run_start, st.run_peak = max(settle, start + size - self._window, earliest), level
                    st.run_peak = max(st.run_peak, level)
                elif st.run_start is not None:
                    st.candidates.append((st.run_start, start, st.run_peak))
                    st.last_end = start
                    st.run_start = None

    def _finish_tone(self, detector, final: bool) -> list[Event]:
        out = []
        fs = self._fs
        after = self._window  # the running median stays high up to a window after an activation
        for ch, st in enumerate(self._tone):
            while st.candidates:
                a, b, peak = st.candidates[0]
                pending = None if final else detector.pending_onset(ch)
                if pending is not None and pending < b:
                    break  # an activation inside may still be growing
                st.candidates.pop(0)
                covered = [(on, off + after) for on, off in st.activations if on < b and off + after > a]
                for lo, hi in _uncovered(a, b, covered):
                    if hi - lo >= self._tone_min:
                        level = detector.baseline.level[ch]
                        onset = max(0, lo - detector.delay) / fs
                        offset = max(0, hi - detector.delay) / fs
                        out.append(Event("elevated_tone", detector.info.ch_names[ch], onset, offset, peak,
                                         {"ratio": round(peak / level, 3) if level > 0 else math.inf,
                                          "cue": "rest" if self.cues.seen else ""}))
            # Forget activations that can no longer touch a future candidate.
            horizon = st.run_start if st.run_start is not None else None
            if st.candidates:
                horizon = st.candidates[0][0]
            if horizon is None:
                horizon = detector._next_sample or 0
            st.activations = [(on, off) for on, off in st.activations if off + after > horizon]
        return out


def _uncovered(a, b, covered):
    """Pieces of [a, b) not inside any of the ``covered`` spans."""
    pieces = []
    pos = a
    for lo, hi in sorted(covered):
        if lo > pos:
            pieces.append((pos, min(lo, b)))
        pos = max(pos, hi)
        if pos >= b:
            break
    if pos < b:
        pieces.append((pos, b))
    return [(lo, hi) for lo, hi in pieces if hi > lo]


def classify_events(events, cues, fs: float, settings: ClassifierSettings | None = None,
                    cue_map: CueMap | None = None) -> list[Event]:
    """Relabel finished activations against a whole cue track (batch helper).

    Uses the same rules as :class:`EventClassifier` (without the tone,
    which needs the envelope).

    Parameters
    ----------
    events : sequence of Event
        Activations (times in seconds of the raw signal).
    cues : array of labels, shape (n_samples,), or None
    fs : float
    settings : ClassifierSettings, optional
    cue_map : CueMap, optional
    """
    settings = settings or ClassifierSettings()
    track = None
    if cues is not None:
        track = CueTrack()
        track.append((cue_map or CueMap()).codes(cues), 0)
    out = []
    for e in events:
        kind, extra = classify_activation(int(round(e.onset_s * fs)), int(round(e.offset_s * fs)), fs, track,
                                          settings)
        out.append(Event(kind, e.channel, e.onset_s, e.offset_s, e.peak, {**dict(e.extra), **extra}))
    return out
