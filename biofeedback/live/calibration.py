"""Guided calibration: a timed rest, then an optional maximum contraction.

The rest sets the resting baseline (median and robust spread of the
envelope, as in :func:`~biofeedback.detect.baseline.baseline_from_rest`),
hence the relax/contract thresholds. The optional maximum voluntary
contraction (MVC) gives a reference for "%MVC". Time is counted in samples
fed, not on a wall clock, so a calibration over a replay running faster
than real time takes the same *signal* time.

Phases: ``rest`` → (``prepare`` → ``mvc``, when ``mvc_s > 0``) → ``done``.
The first ``settle_s`` of the rest are not used: people are still settling
after pressing the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biofeedback.detect.baseline import Baseline, baseline_from_rest
from biofeedback.errors import ParameterError

REST, PREPARE, MVC, DONE, FAILED = "rest", "prepare", "mvc", "done", "failed"

#: What the panel asks the user to do in each phase.
PROMPTS = {
    REST: "relax",
    PREPARE: "get ready to squeeze",
    MVC: "squeeze as hard as is comfortable",
    DONE: "done",
    FAILED: "failed",
}


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of a guided calibration.

    Attributes
    ----------
    baseline : Baseline
        Resting level and spread per channel.
    mvc : ndarray or None
        Peak envelope per channel during the maximum contraction.
    rest_s : float
        Length of the rest that was used, in seconds.
    """

    baseline: Baseline
    mvc: np.ndarray | None
    rest_s: float


class GuidedCalibration:
    """Collects envelope samples through the phases of a guided calibration.

    Parameters
    ----------
    fs : float
        Sampling rate of the envelope in Hz.
    n_channels : int
    rest_s : float
        Length of the guided rest in seconds (30-60 s recommended).
    mvc_s : float
        Length of the maximum contraction in seconds (0 skips it).
    prepare_s : float
        Warning before the maximum contraction, in seconds.
    settle_s : float
        Start of the rest that is not used, in seconds.
    keep_hz : float
        The rest envelope is kept at about this rate (it is smooth over the
        RMS window, so 100 values per second lose nothing for a median).
    """

    def __init__(self, fs: float, n_channels: int, rest_s: float = 30.0, mvc_s: float = 0.0,
                 prepare_s: float = 3.0, settle_s: float = 2.0, keep_hz: float = 100.0):
        if not rest_s > settle_s:
            raise ParameterError("calibration rest", f"longer than {settle_s:g} s", rest_s)
        if mvc_s < 0:
            raise ParameterError("MVC duration", "0 (none) or a positive number of seconds", mvc_s)
        self.fs = float(fs)
        self.rest_s, self.mvc_s, self.prepare_s = float(rest_s), float(mvc_s), float(prepare_s)
        self._settle = int(round(settle_s * self.fs))
        self._step = max(1, int(round(self.fs / keep_hz)))
        self._lengths = {REST: int(round(rest_s * self.fs)), PREPARE: int(round(prepare_s * self.fs)),
                         MVC: int(round(mvc_s * self.fs))}
        self.phase = REST
        self._in_phase = 0  # samples fed in the current phase
        self._rest_parts: list[np.ndarray] = []
        self._mvc_peak = np.full(n_channels, -np.inf)
        self.result: CalibrationResult | None = None
        self.error = ""

    @property
    def finished(self) -> bool:
        """True once the calibration is done or has failed."""
        return self.phase in (DONE, FAILED)

    @property
    def remaining_s(self) -> float:
        """Seconds left in the current phase."""
        if self.finished:
            return 0.0
        return max(0.0, (self._lengths[self.phase] - self._in_phase) / self.fs)

    @property
    def prompt(self) -> str:
        """What to tell the user, e.g. ``"relax, 12 s"``."""
        if self.finished:
            return PROMPTS[self.phase]
        return f"{PROMPTS[self.phase]}, {int(np.ceil(self.remaining_s))} s"

    def update(self, envelope) -> None:
        """Feed envelope samples ``(n_channels, m)`` in stream order."""
        env = np.asarray(envelope, dtype=float)
        pos = 0
        while pos < env.shape[1] and not self.finished:
            need = self._lengths[self.phase] - self._in_phase
            part = env[:, pos:pos + need]
            if self.phase == REST:
                # Keep the samples after the settling time, decimated by
                # absolute position so chunking does not change the result.
                skip = max(0, self._settle - self._in_phase)
                offset = skip + (-(self._in_phase + skip)) % self._step
                if offset < part.shape[1]:
                    self._rest_parts.append(np.array(part[:, offset::self._step]))
            elif self.phase == MVC and part.shape[1]:
                self._mvc_peak = np.maximum(self._mvc_peak, np.nanmax(part, axis=1))
            self._in_phase += part.shape[1]
            pos += part.shape[1]
            if self._in_phase >= self._lengths[self.phase]:
                self._next_phase()

    def _next_phase(self) -> None:
        self._in_phase = 0
        if self.phase == REST:
            self.phase = PREPARE if self.mvc_s > 0 else DONE
        elif self.phase == PREPARE:
            self.phase = MVC
        elif self.phase == MVC:
            self.phase = DONE
        if self.phase == DONE:
            self._finish()

    def _finish(self) -> None:
        rest = np.concatenate(self._rest_parts, axis=1) if self._rest_parts else None
        if rest is None or rest.shape[1] == 0:
            self.phase, self.error = FAILED, "no rest samples were received"
            return
        # Samples lost during the rest (NaN) are left out, not averaged in.
        finite = np.isfinite(rest)
        if not finite.any(axis=1).all():
            bad = np.flatnonzero(~finite.any(axis=1)) + 1
            self.phase, self.error = FAILED, f"no signal on channel(s) {', '.join(map(str, bad))}"
            return
        rest = np.where(finite, rest, np.nanmedian(np.where(finite, rest, np.nan), axis=1, keepdims=True))
        baseline = baseline_from_rest(rest, f"guided rest of {self.rest_s:g} s")
        mvc = None
        if self.mvc_s > 0:
            mvc = np.where(np.isfinite(self._mvc_peak), self._mvc_peak, np.nan)
            # An MVC that does not rise clearly above rest is no reference.
            mvc = np.where(mvc > 2 * baseline.level, mvc, np.nan)
        self.result = CalibrationResult(baseline, mvc, self.rest_s)
        self.phase = DONE
