"""What the feedback panel says: RELAXED, CONTRACTING, SPASM or CHECK ELECTRODE.

The detector says *whether* a channel's muscle is active; this module says
*what that activity means* for someone doing down-training, with the rules
of the event classifier (:mod:`biofeedback.detect.classify`), so the word
shown during a burst agrees with the kind of the event reported after it:

* active while a "contract" cue is shown (or starting at most
  ``anticipation_s`` before one, people react to the countdown, not the
  instant) → **CONTRACTING** (asked for; the event is a ``contraction``,
  or a ``failure_to_relax`` when it outlasts its cue);
* active while a "rest"/"relax" cue is shown → **SPASM** (involuntary; the
  event is a ``twitch``, ``spasm`` or ``cramp`` by its duration);
* no cue track, or no cue at that moment: the mode decides, ``relax``
  (down-training, the user's task is to stay relaxed) → **SPASM** and
  ``train`` (free practice of contractions) → **CONTRACTING**;
* a flat, clipped or missing raw signal → **CHECK ELECTRODE**, whatever the
  detector says, because the envelope of a bad contact means nothing;
* no baseline yet, or a guided calibration running → **CALIBRATING**.

The kind of a burst is decided once, when it starts (at the detector's
back-tracked onset, the same sample the classifier judges), and kept until
it ends: a contraction held a moment past the end of its cue stays
CONTRACTING, and a spasm does not turn into a contraction because a cue
happened to start while it lasted. One exception: a contract cue that
starts within ``anticipation_s`` after the onset turns a burst that began
as SPASM into CONTRACTING, since cue starts are only known once reached.
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from biofeedback.core.types import Event
from biofeedback.detect.classify import CONTRACT, REST, UNKNOWN, ClassifierSettings, CueMap
from biofeedback.errors import ParameterError

RELAXED = "RELAXED"
CONTRACTING = "CONTRACTING"
SPASM = "SPASM"
CHECK_ELECTRODE = "CHECK ELECTRODE"
CALIBRATING = "CALIBRATING"
WAITING = "WAITING"  # no data yet, or the source has ended

MODES = ("relax", "train")

#: How cue labels read as rest / contract, shared with the event classifier.
CUE_MAP = CueMap()


def is_contract_cue(value) -> bool:
    """True when a cue value asks the user to contract (same mapping as the classifier)."""
    return CUE_MAP.code_of(value) == CONTRACT


class CueHistory:
    """Change points of a per-sample cue track, for "which cue was shown at sample n".

    Cues are kept as the classifier's codes (``REST``, ``CONTRACT``,
    ``UNKNOWN``). Only changes are stored (a cue track changes a few times
    a minute), so the memory is bounded by ``max_changes`` however long
    the session.

    Parameters
    ----------
    max_changes : int
        Oldest change points beyond this are forgotten.
    cue_map : CueMap
        How labels read as rest and contract.
    """

    def __init__(self, max_changes: int = 4096, cue_map: CueMap = CUE_MAP):
        self.cue_map = cue_map
        self._starts: deque[int] = deque(maxlen=max_changes)
        self._codes: deque[int] = deque(maxlen=max_changes)
        self.present = False  # True once any rest or contract cue was seen

    def update(self, cues, first_sample: int) -> None:
        """Add the cue labels of the samples starting at ``first_sample``."""
        if cues is None or len(cues) == 0:
            return
        self.update_codes(self.cue_map.codes(cues), first_sample)

    def update_codes(self, codes, first_sample: int) -> None:
        """Add cue codes (``REST``, ``CONTRACT``, ``UNKNOWN``) from ``first_sample`` on."""
        if codes is None or len(codes) == 0:
            return
        codes = np.asarray(codes)
        starts = _run_starts(codes)
        values = codes[starts]
        starts = starts + first_sample
        self.present = self.present or bool(np.any(values != UNKNOWN))
        for start, code in zip(starts.tolist(), values.tolist()):
            if self._codes and self._codes[-1] == code and (not self._starts or start > self._starts[-1]):
                continue  # same cue as the run before: not a change
            if self._starts and start <= self._starts[-1]:
                # a seek backwards: history after this point no longer holds
                while self._starts and self._starts[-1] >= start:
                    self._starts.pop()
                    self._codes.pop()
                if self._codes and self._codes[-1] == code:
                    continue
            self._starts.append(start)
            self._codes.append(code)

    def clear(self) -> None:
        """Forget everything (after a seek)."""
        self._starts.clear()
        self._codes.clear()

    def code_at(self, sample: int) -> int:
        """Cue code shown at ``sample`` (``UNKNOWN`` before the first cue)."""
        i = bisect.bisect_right(self._starts, sample) - 1
        return self._codes[i] if i >= 0 else UNKNOWN

    def contract_at(self, sample: int) -> bool:
        """True when a contract cue was shown at ``sample``."""
        return self.code_at(sample) == CONTRACT

    def contract_starts_in(self, start: int, stop: int) -> bool:
        """True when a contract cue began in ``(start, stop]``."""
        i = bisect.bisect_right(self._starts, start)
        while i < len(self._starts) and self._starts[i] <= stop:
            if self._codes[i] == CONTRACT:
                return True
            i += 1
        return False


def _run_starts(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)


class StateLogic:
    """Per-channel feedback state from detector activity, cues and signal checks.

    Parameters
    ----------
    n_channels : int
    fs : float
        Sampling rate in Hz (for ``anticipation_s``).
    mode : {"relax", "train"}
        What a burst means when no cue says: ``relax`` (down-training,
        default) → SPASM, ``train`` → CONTRACTING. Where a cue track says
        rest or contract, the cues decide in both modes.
    anticipation_s : float, optional
        A burst starting at most this long before a contract cue counts as
        the cued contraction; default the classifier's ``cue_lead_s``.
    classifier : ClassifierSettings, optional
        Duration limits used to name uncued events (twitch, spasm, cramp).
    """

    def __init__(self, n_channels: int, fs: float, mode: str = "relax", anticipation_s: float | None = None,
                 classifier: ClassifierSettings | None = None):
        if mode not in MODES:
            raise ParameterError("--mode", " or ".join(MODES), mode)
        self.mode = mode
        self.fs = float(fs)
        self.classifier = classifier or ClassifierSettings()
        lead = self.classifier.cue_lead_s if anticipation_s is None else anticipation_s
        self.anticipation = int(round(lead * self.fs))
        self.cues = CueHistory()
        self._active = np.zeros(n_channels, dtype=bool)
        self._kind = [RELAXED] * n_channels
        self._onset = np.zeros(n_channels, dtype=np.int64)

    def burst_kind(self, onset_sample: int) -> str:
        """CONTRACTING or SPASM for a burst starting at ``onset_sample``."""
        code = self.cues.code_at(onset_sample) if self.cues.present else UNKNOWN
        if code == CONTRACT or (self.cues.present and
                                self.cues.contract_starts_in(onset_sample, onset_sample + self.anticipation)):
            return CONTRACTING
        if code == REST:
            return SPASM
        return SPASM if self.mode == "relax" else CONTRACTING

    def update(self, active, sample: int, *, electrode_ok=None, calibrating: bool = False,
               onsets=None) -> list[str]:
        """States after the samples up to ``sample`` (exclusive) were processed.

        Parameters
        ----------
        active : sequence of bool, shape (n_channels,)
            Detector activity per channel at the end of the chunk.
        sample : int
            Index one past the last processed sample (in the time of the
            cues, i.e. of the raw signal).
        electrode_ok : sequence of bool, optional
            False where the raw signal is flat, clipped or missing.
        calibrating : bool
            No usable baseline yet (or a guided calibration is running).
        onsets : sequence of int or None, optional
            Where each active burst began (the detector's back-tracked
            onset, in the cues' time); default ``sample``.

        Returns
        -------
        list of str
            One state word per channel.
        """
        active = np.asarray(active, dtype=bool)
        states = []
        for ch, now in enumerate(active.tolist()):
            if now and not self._active[ch]:
                onset = sample
                if onsets is not None and onsets[ch] is not None:
                    onset = min(int(onsets[ch]), sample)
                self._onset[ch] = onset
                self._kind[ch] = self.burst_kind(onset)
            elif now and self._kind[ch] == SPASM and self.cues.present:
                # A contract cue that starts just after the burst began: the
                # user anticipated it (cue starts are known only once reached).
                if self.cues.contract_starts_in(self._onset[ch], self._onset[ch] + self.anticipation):
                    self._kind[ch] = CONTRACTING
            self._active[ch] = now
            if electrode_ok is not None and not electrode_ok[ch]:
                states.append(CHECK_ELECTRODE)
            elif calibrating:
                states.append(CALIBRATING)
            elif now:
                states.append(self._kind[ch])
            else:
                states.append(RELAXED)
        return states

    def label_event(self, event: Event, fs: float) -> Event:
        """Name a ``contraction`` the classifier could not judge (no cue) by the mode.

        The classifier (:mod:`biofeedback.detect.classify`) names every
        activation from the cue track; without a cue at its onset an
        activation stays a ``contraction``. In ``relax`` mode such a burst
        is involuntary, as the state word said: it becomes a ``twitch``,
        ``spasm`` or ``cramp`` by the classifier's duration limits. Events
        judged against a cue, and every other kind, pass unchanged.
        """
        if event.kind != "contraction" or event.extra.get("cue"):
            return event
        onset = int(round(event.onset_s * fs))
        if self.burst_kind(onset) != SPASM:
            return event
        shape = self.classifier.shape(event.duration_s)
        kind = {"twitch": "twitch", "phasic": "spasm", "sustained": "cramp"}[shape]
        return Event(kind, event.channel, event.onset_s, event.offset_s, event.peak,
                     {**dict(event.extra), "shape": shape, "detected_as": "contraction"})

    def reset(self) -> None:
        """Forget bursts and cues (after a seek)."""
        self._active[:] = False
        self._kind = [RELAXED] * len(self._kind)
        self.cues.clear()
