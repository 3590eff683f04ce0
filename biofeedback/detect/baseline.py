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
    """

    level: np.ndarray
    sigma: np.ndarray
    method: str = ""

    def __post_init__(self):
        object.__setattr__(self, "level", np.atleast_1d(np.asarray(self.level, dtype=float)))
        object.__setattr__(self, "sigma", np.atleast_1d(np.asarray(self.sigma, dtype=float)))
        if self.level.shape != self.sigma.shape:
            raise ParameterError("baseline", "level and sigma of the same shape", (self.level.shape, self.sigma.shape))

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

    def result(self) -> Baseline:
        """The baseline over what was fed so far."""
        if not self._parts:
            raise ParameterError("baseline", "some envelope samples", "none")
        kept = np.concatenate(self._parts, axis=1)
        per_window = max(1, int(round(self.window_s * self.fs / self.step)))
        n_windows = kept.shape[1] // per_window
        if n_windows < 1:
            return baseline_from_rest(kept, "whole recording (shorter than one window)")
        windows = kept[:, : n_windows * per_window].reshape(kept.shape[0], n_windows, per_window)
        medians = np.median(windows, axis=2)  # (n_ch, n_windows)
        n_take = min(n_windows, max(self.min_windows, int(np.ceil(self.fraction * n_windows))))
        order = np.argsort(medians, axis=1)[:, :n_take]
        level = np.empty(kept.shape[0])
        sigma = np.empty(kept.shape[0])
        for ch in range(kept.shape[0]):
            samples = windows[ch, order[ch]].ravel()
            level[ch], sigma[ch] = robust_level_and_sigma(samples)
        return Baseline(level, sigma, f"quietest {n_take} of {n_windows} windows of {self.window_s:g} s")
