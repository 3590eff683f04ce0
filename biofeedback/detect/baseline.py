"""Robust resting baseline of an envelope: median and MAD.

The baseline of a channel is the median of its envelope at rest, and its
spread ``sigma`` is the median absolute deviation scaled by 1.4826 (equal to
the standard deviation for Gaussian data, but not pulled up by the odd
twitch inside the rest period). Thresholds are then ``level + k * sigma``.

Two ways to obtain it:

* :func:`baseline_from_rest` from a marked rest period (live calibration, or
  ``--rest START:END`` in batch);
* :class:`QuietWindowBaseline` in batch when no rest is marked: the envelope
  is cut into windows and the quietest ones are taken as rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biofeedback.dsp.stats import median
from biofeedback.errors import ParameterError, check_sampling_rate

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD of a Gaussian times this = its std


@dataclass(frozen=True)
class Baseline:
    """Resting level and spread of the envelope, per channel.

    Attributes
    ----------
    level : ndarray, shape (n_channels,)
        Median envelope at rest, in the stream's units.
    sigma : ndarray, shape (n_channels,)
        Robust spread (1.4826 * MAD) of the envelope at rest.
    method : str
        How it was obtained (for reports).
    mvc : ndarray, shape (n_channels,), optional
        Envelope of a maximum voluntary contraction per channel (NaN where
        not measured), for thresholds in %MVC; None without an MVC.
    drift : ndarray, shape (n_channels,), optional
        How much the resting level itself wanders from one window of about
        a second to the next: the robust spread (1.4826 * MAD) of the
        window levels, as a fraction of ``level``. Known when the rest was
        long enough to measure it (the quietest windows of a recording);
        None otherwise. A rest of stationary noise gives a few percent (the
        estimation noise of a one-second RMS); real rests, with their small
        postural adjustments, 10-40 %.
    """

    level: np.ndarray
    sigma: np.ndarray
    method: str = ""
    mvc: np.ndarray | None = None
    drift: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "level", np.atleast_1d(np.asarray(self.level, dtype=float)))
        object.__setattr__(self, "sigma", np.atleast_1d(np.asarray(self.sigma, dtype=float)))
        if self.level.shape != self.sigma.shape:
            raise ParameterError("baseline", "level and sigma of the same shape", (self.level.shape, self.sigma.shape))
        if self.mvc is not None:
            mvc = np.atleast_1d(np.asarray(self.mvc, dtype=float))
            if mvc.shape != self.level.shape:
                raise ParameterError("baseline MVC", f"one value per channel ({self.level.shape[0]})", mvc.shape)
            object.__setattr__(self, "mvc", mvc)
        if self.drift is not None:
            drift = np.atleast_1d(np.asarray(self.drift, dtype=float))
            if drift.shape != self.level.shape:
                raise ParameterError("baseline drift", f"one value per channel ({self.level.shape[0]})", drift.shape)
            object.__setattr__(self, "drift", drift)

    def with_mvc(self, mvc) -> "Baseline":
        """Return a copy with an MVC per channel (None removes it)."""
        return Baseline(self.level, self.sigma, self.method, mvc, self.drift)

    @property
    def n_channels(self) -> int:
        return self.level.shape[0]


def robust_level_and_sigma(values, axis=-1):
    """Median and 1.4826 * MAD along ``axis``.

    Parameters
    ----------
    values : ndarray
    axis : int

    Returns
    -------
    level, sigma : ndarray
    """
    values = np.asarray(values, dtype=float)
    level = np.median(values, axis=axis)
    mad = np.median(np.abs(values - np.expand_dims(level, axis)), axis=axis)
    return level, MAD_TO_SIGMA * mad


def baseline_from_rest(envelope, method: str = "rest period") -> Baseline:
    """Baseline from the envelope of a rest period.

    Parameters
    ----------
    envelope : ndarray, shape (n_channels, n_samples)
        Envelope samples recorded while the user rests.
    method : str
        Description kept in the result.

    Returns
    -------
    Baseline
    """
    env = np.atleast_2d(np.asarray(envelope, dtype=float))
    if env.shape[1] == 0:
        raise ParameterError("rest period", "at least one envelope sample", "none")
    level, sigma = robust_level_and_sigma(env, axis=1)
    return Baseline(level, sigma, method)


class QuietWindowBaseline:
    """Streaming estimate of the baseline from the quietest windows.

    Feed envelope chunks with :meth:`update`; :meth:`result` then cuts the
    stream into windows of ``window_s`` seconds, ranks them per channel by
    their median envelope, and computes median and MAD over the samples of
    the quietest ``fraction`` of windows.

    The default fraction is one half: the baseline is meant to be the
    *typical* rest, small postural adjustments included. The quietest fifth
    of a recording would exclude them, understate the spread, and turn them
    into false contractions (seen on real forearm recordings). This assumes
    that at least half of a recording is rest, as in protocols that
    alternate work and rest; mark the rest with ``--rest`` otherwise.

    Only a decimated copy of the envelope is kept (about ``keep_hz`` values
    per second), which is plenty for a moving-RMS envelope that is smooth
    over 100 ms, and keeps an hour of 8 channels to ~20 MB. Decimation picks
    samples by absolute index, so the result does not depend on chunking.

    Parameters
    ----------
    fs : float
        Sampling rate of the envelope in Hz.
    window_s : float
        Window length in seconds (default 1 s).
    fraction : float
        Fraction of windows taken as rest (default 0.5).
    min_windows : int
        At least this many windows are used (default 3).
    keep_hz : float
        Rate of the kept decimated envelope in Hz (default 100).
    skip_s : float
        Seconds at the start of the stream left out (default 0.5 s): the
        filters settle and a moving window ramps up from zero there, which
        would look like the quietest window of all.
    """

    def __init__(self, fs, window_s=1.0, fraction=0.5, min_windows=3, keep_hz=100.0, skip_s=0.5):
        self.fs = check_sampling_rate(fs, "fs")
        for name, value in (("window_s", window_s), ("keep_hz", keep_hz)):
            if not value > 0:
                raise ParameterError(f"quiet-window {name}", "a positive number", value)
        if not skip_s >= 0:
            raise ParameterError("quiet-window skip_s", "a duration >= 0 s", skip_s)
        if not 0 < fraction <= 1:
            raise ParameterError("quiet-window fraction", "a number in (0, 1]", fraction)
        self.skip = int(round(skip_s * self.fs))
        self.step = max(1, int(round(self.fs / keep_hz)))
        self.window_s = float(window_s)
        self.fraction = float(fraction)
        self.min_windows = int(min_windows)
        self._parts: list[np.ndarray] = []
        self._n_seen = 0

    def update(self, envelope, first_sample: int) -> None:
        """Add envelope samples ``(n_channels, n)`` starting at ``first_sample``."""
        env = np.asarray(envelope)
        if first_sample < self.skip:
            cut = min(env.shape[1], self.skip - first_sample)
            env = env[:, cut:]
            first_sample += cut
        offset = (-first_sample) % self.step
        if offset < env.shape[1]:
            self._parts.append(np.array(env[:, offset::self.step], dtype=float))
        self._n_seen = max(self._n_seen, first_sample + env.shape[1])

    def result(self, exclude=None) -> Baseline:
        """The baseline over what was fed so far.

        Parameters
        ----------
        exclude : sequence of sequences of (int, int), optional
            Per channel, ``(start, stop)`` sample spans to leave out (signal
            problems found by the quality check: a flat electrode-off span
            would otherwise be the "quietest" window of all). Windows that
            touch a span are not ranked.
        """
        if not self._parts:
            raise ParameterError("baseline", "some envelope samples", "none")
        kept = np.concatenate(self._parts, axis=1)
        per_window = max(1, int(round(self.window_s * self.fs / self.step)))
        n_windows = kept.shape[1] // per_window
        if n_windows < 1:
            return baseline_from_rest(kept, "whole recording (shorter than one window)")
        windows = kept[:, : n_windows * per_window].reshape(kept.shape[0], n_windows, per_window)
        medians = median(windows, axis=2)  # (n_ch, n_windows); np.median to the bit, from one sort
        usable = np.ones(medians.shape, dtype=bool)
        if exclude is not None:
            # Window k holds kept samples k*per_window ... of absolute index
            # skip + offset + j*step; its span in samples is [w0, w1).
            first_index = self.skip + ((-self.skip) % self.step)
            w0 = first_index + np.arange(n_windows) * per_window * self.step
            w1 = w0 + per_window * self.step
            for ch, spans in enumerate(exclude):
                for a, b in spans:
                    usable[ch] &= ~((w0 < b) & (w1 > a))
        level = np.empty(kept.shape[0])
        sigma = np.empty(kept.shape[0])
        drift = np.full(kept.shape[0], np.nan)
        takes = []
        for ch in range(kept.shape[0]):
            candidates = np.flatnonzero(usable[ch])
            if candidates.size == 0:  # every window flagged: fall back to all
                candidates = np.arange(n_windows)
            n_take = min(candidates.size, max(self.min_windows, int(np.ceil(self.fraction * candidates.size))))
            order = candidates[np.argsort(medians[ch, candidates], kind="stable")[:n_take]]
            level[ch], sigma[ch] = robust_level_and_sigma(windows[ch, order].ravel())
            if n_take >= self.min_windows and level[ch] > 0:
                # The wander of the resting level between windows (their
                # medians), relative to the level.
                drift[ch] = robust_level_and_sigma(medians[ch, order])[1] / level[ch]
            takes.append((n_take, candidates.size))
        n_take, n_usable = takes[0]
        what = f"quietest {n_take} of {n_usable} windows of {self.window_s:g} s"
        if n_usable < n_windows and all(t == takes[0] for t in takes):
            what += f" ({n_windows - n_usable} flagged windows left out)"
        elif any(t != takes[0] for t in takes):
            what = f"quietest half of the unflagged windows of {self.window_s:g} s"
        return Baseline(level, sigma, what, drift=drift)
