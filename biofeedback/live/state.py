"""What the feedback panel says: RELAXED, CONTRACTING, SPASM or CHECK ELECTRODE.

The detector says *whether* a channel's muscle is active; this module says
*what that activity means* for someone doing down-training:

* active while a "contract" cue is shown → **CONTRACTING** (asked for);
* active while no contract cue is shown (a rest cue, or no cue track at all
  in ``relax`` mode, where the user's task is to stay relaxed) →
  **SPASM** (an involuntary clench);
* no cue track in ``train`` mode (free practice of contractions) → every
  burst is **CONTRACTING**;
* a flat, clipped or missing raw signal → **CHECK ELECTRODE**, whatever the
  detector says, because the envelope of a bad contact means nothing;
* no baseline yet, or a guided calibration running → **CALIBRATING**.

The kind of a burst is decided once, when it starts, and kept until it
ends: a contraction held a moment past the end of its cue stays
CONTRACTING, and a spasm does not turn into a contraction because a cue
happened to start while it lasted. One tolerance: a burst that starts
shortly *before* a contract cue (``anticipation_s``) counts as the cued
contraction, since people react to the countdown, not the instant.
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from biofeedback.core.types import Event
from biofeedback.errors import ParameterError

RELAXED = "RELAXED"
CONTRACTING = "CONTRACTING"
SPASM = "SPASM"
CHECK_ELECTRODE = "CHECK ELECTRODE"
CALIBRATING = "CALIBRATING"
WAITING = "WAITING"  # no data yet, or the source has ended

MODES = ("relax", "train")

#: Cue values (compared lower-case) that ask for a contraction.
CONTRACT_CUES = frozenset({"contract", "contraction", "squeeze", "mvc", "hold"})


def is_contract_cue(value) -> bool:
    """True when a cue value asks the user to contract."""
    if value is None:
        return False
    return str(value).strip().lower() in CONTRACT_CUES


class CueHistory:
    """Change points of a per-sample cue track, for "which cue was shown at sample n".

    Only changes are stored (a cue track changes a few times a minute), so
    the memory is bounded by ``max_changes`` however long the session.

    Parameters
    ----------
    max_changes : int
        Oldest change points beyond this are forgotten.
    """

    def __init__(self, max_changes: int = 4096):
        self._starts: deque[int] = deque(maxlen=max_changes)
        self._contract: deque[bool] = deque(maxlen=max_changes)
        self.present = False  # True once any cue sample was seen

    def update(self, cues, first_sample: int) -> None:
        """Add the cue values of the samples starting at ``first_sample``."""
        if cues is None or len(cues) == 0:
            return
        flags = np.fromiter((is_contract_cue(c) for c in _run_values(cues)), dtype=bool)
        starts = _run_starts(cues) + first_sample
        self.present = True
        for start, flag in zip(starts.tolist(), flags.tolist()):
            if self._contract and self._contract[-1] == flag:
                continue  # same meaning as the run before: not a change
            if self._starts and start <= self._starts[-1]:
                # a seek backwards: history after this point no longer holds
                while self._starts and self._starts[-1] >= start:
                    self._starts.pop()
                    self._contract.pop()
                if self._contract and self._contract[-1] == flag:
                    continue
            self._starts.append(start)
            self._contract.append(flag)

    def clear(self) -> None:
        """Forget everything (after a seek)."""
        self._starts.clear()
        self._contract.clear()

    def contract_at(self, sample: int) -> bool:
        """True when a contract cue was shown at ``sample``."""
        i = bisect.bisect_right(self._starts, sample) - 1
        return i >= 0 and self._contract[i]

    def contract_starts_in(self, start: int, stop: int) -> bool:
        """True when a contract cue began in ``(start, stop]``."""
        i = bisect.bisect_right(self._starts, start)
        while i < len(self._starts) and self._starts[i] <= stop:
            if self._contract[i]:
                return True
            i += 1
        return False


def _run_starts(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)


def _run_values(values):
    arr = np.asarray(values)
    return arr[_run_starts(arr)]


class StateLogic:
    """Per-channel feedback state from detector activity, cues and signal checks.

    Parameters
    ----------
    n_channels : int
    fs : float
        Sampling rate in Hz (for ``anticipation_s``).
    mode : {"relax", "train"}
        What an uncued burst means when the source has no cue track:
        ``relax`` (down-training, default) → SPASM, ``train`` → CONTRACTING.
        With a cue track, the cues decide in both modes.
    anticipation_s : float
        A burst starting at most this long before a contract cue counts as
        the cued contraction.
    """

    def __init__(self, n_channels: int, fs: float, mode: str = "relax", anticipation_s: float = 0.5):
        if mode not in MODES:
            raise ParameterError("--mode", " or ".join(MODES), mode)
        self.mode = mode
        self.fs = float(fs)
        self.anticipation = int(round(anticipation_s * self.fs))
        self.cues = CueHistory()
        self._active = np.zeros(n_channels, dtype=bool)
        self._kind = [RELAXED] * n_channels
        self._onset = np.zeros(n_channels, dtype=np.int64)

    def burst_kind(self, onset_sample: int) -> str:
        """CONTRACTING or SPASM for a burst starting at ``onset_sample``."""
        if not self.cues.present:
            return SPASM if self.mode == "relax" else CONTRACTING
        if self.cues.contract_at(onset_sample):
            return CONTRACTING
        if self.cues.contract_starts_in(onset_sample, onset_sample + self.anticipation):
            return CONTRACTING
        return SPASM

    def update(self, active, sample: int, *, electrode_ok=None, calibrating: bool = False) -> list[str]:
        """States after the samples up to ``sample`` (exclusive) were processed.

        Parameters
        ----------
        active : sequence of bool, shape (n_channels,)
            Detector activity per channel at the end of the chunk.
        sample : int
            Index one past the last processed sample.
        electrode_ok : sequence of bool, optional
            False where the raw signal is flat, clipped or missing.
        calibrating : bool
            No usable baseline yet (or a guided calibration is running).

        Returns
        -------
        list of str
            One state word per channel.
        """
        active = np.asarray(active, dtype=bool)
        states = []
        for ch, now in enumerate(active.tolist()):
            if now and not self._active[ch]:
                self._onset[ch] = sample
                self._kind[ch] = self.burst_kind(sample)
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
        """Rename a detector's ``contraction`` event to ``spasm`` when it was uncued."""
        if event.kind != "contraction":
            return event
        onset = int(round(event.onset_s * fs))
        if self.burst_kind(onset) == SPASM:
            return Event("spasm", event.channel, event.onset_s, event.offset_s, event.peak,
                         {**dict(event.extra), "detected_as": "contraction"})
        return event

    def reset(self) -> None:
        """Forget bursts and cues (after a seek)."""
        self._active[:] = False
        self._kind = [RELAXED] * len(self._kind)
        self.cues.clear()
