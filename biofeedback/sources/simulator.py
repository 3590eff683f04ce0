"""Simulated surface EMG with known ground truth.

A :class:`Scenario` scripts a session: the resting level, cued contractions,
uncued spasms, cramps and twitches, and the artefacts of real recordings
(mains hum, ECG, baseline drift, electrode-off, ADC saturation).
:func:`simulate` renders it at any sampling rate into a
:class:`~biofeedback.core.types.Recording` whose ``events`` are the true
events and whose ``cues`` are the cue track; :class:`SimulatorSource`
streams the same samples chunk by chunk, paced in real time or as fast as
possible.

Signal model (all amplitudes in µV)
-----------------------------------
Per channel, sample ``n`` at time ``t = n / fs``::

    x = a(t) * emg(t) + noise + drift + mains + ecg + dc_offset_uv

* ``emg`` is white Gaussian noise shaped by a fixed filter and scaled to
  unit RMS. The shape is the classic surface-EMG power spectrum
  ``P(f) ~ f^2 / ((f^2 + fl^2) (f^2 + fh^2)^2)`` with ``fl = 60 Hz`` and
  ``fh = 120 Hz`` (peak near 65 Hz), discretised by the matched-z
  transform, followed by the recording chain's anti-alias low-pass (4th
  order Butterworth at ``min(450 Hz, 0.4 fs)``, the usual upper edge of
  surface EMG). The scale comes from the filter's analytic noise gain, not
  from the realised samples, so the RMS is right at every rate and length.
* ``a(t) = sqrt(rest_rms_uv**2 + sum_i (A_i w_i(t))**2)``: the resting tone
  plus every active burst, added in power because different motor-unit
  pools fire independently. ``A_i`` is the burst RMS of event ``i`` and
  ``w_i`` its raised-cosine-ramped plateau (0 outside the event).
* ``noise`` is white instrument noise of RMS ``noise_rms_uv``.
* ``drift`` is Gaussian noise low-passed at 0.5 Hz with RMS
  ``baseline_drift_uv`` (slow wander of electrode-skin contact).
* ``mains`` is ``mains_uv * sin(2 pi mains_hz t + phase)`` (``mains_uv`` is
  the peak amplitude) plus optional harmonics; lines at or above Nyquist are
  left out, as the device's anti-alias filter would remove them.
* ``ecg`` is a Q-R-S-T waveform built from Gaussians (R peak
  ``ecg_uv``, energy mostly below 40 Hz) repeated at ``ecg_bpm`` with 3 %
  beat-to-beat jitter of the RR interval; the same on every channel.
* During ``electrode_off`` spans every channel shows a flat line near
  0 µV: only a tenth of the instrument noise remains (the input is
  disconnected, so the DC offset, drift, mains and muscle signals vanish).
* Finally, with ``saturation_uv`` set, samples are clipped to
  ``[-saturation_uv, +saturation_uv]``.

Reproducibility and memory
--------------------------
The signal is generated in fixed internal blocks of one second with the
filter states carried from block to block. The random numbers come from one
``numpy.random.SeedSequence(seed)`` split into independent streams (EMG,
instrument noise, drift, ECG rhythm, mains phase) so that, for example,
switching on the ECG does not change the EMG noise. Because the blocks do
not depend on how the caller slices the stream, :func:`simulate` and
:class:`SimulatorSource` give bit-identical samples for every chunk size,
and a long multi-channel stream needs only one block in memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Iterator

import numpy as np
from scipy import signal

from biofeedback.core.types import Chunk, Event, Recording, StreamInfo
from biofeedback.errors import ParameterError, check_sampling_rate
from biofeedback.sources.base import Pacer, Source

__all__ = [
    "KINDS",
    "ScriptedEvent",
    "Scenario",
    "simulate",
    "SimulatorSource",
    "default_session",
    "contraction_cycles",
    "relax_with_spasms",
    "emg_shaping_sos",
]

#: Kinds of scripted muscle events.
KINDS = ("contraction", "spasm", "cramp", "twitch")

# Default rise/fall time per kind, in seconds: voluntary contractions ramp
# smoothly; spasms and twitches are abrupt; cramps build up and fade slowly.
_DEFAULT_RAMP_S = {"contraction": 0.2, "spasm": 0.03, "cramp": 0.5, "twitch": 0.01}

# Length of the internal generation block. The output never depends on it
# being aligned with anything the caller asks for; it only bounds memory.
_BLOCK_S = 1.0

# Surface-EMG spectral model (Shwedyk et al. 1977 two-pole form).
_EMG_LOW_HZ = 60.0
_EMG_HIGH_HZ = 120.0
# Anti-alias low-pass of the recording chain.
_EMG_TOP_HZ = 450.0
_ANTIALIAS_FRACTION_OF_FS = 0.4
_ANTIALIAS_ORDER = 4

_DRIFT_CUTOFF_HZ = 0.5

# ECG beat: (centre s, Gaussian width s, amplitude relative to R).
_ECG_COMPONENTS = (
    (-0.030, 0.008, -0.12),  # Q
    (0.000, 0.010, 1.00),  # R
    (0.030, 0.010, -0.25),  # S
    (0.250, 0.045, 0.25),  # T
)
_ECG_BEFORE_S = 0.10  # waveform support before the R peak
_ECG_AFTER_S = 0.46  # and after it (T wave + 4.5 widths)
_ECG_RR_JITTER = 0.03  # relative SD of the RR interval
_ECG_RR_LIMIT = 0.2  # RR kept within ±20 % of its mean

# Residual noise of a disconnected input, as a fraction of noise_rms_uv.
_ELECTRODE_OFF_NOISE_FRACTION = 0.1

# Clipped runs separated by at most this many seconds of unclipped samples
# form one saturation event (a clipped noise burst leaves and re-enters the
# rail many times per second; one event per burst is what a user reads).
_SATURATION_MERGE_S = 0.05


# ----------------------------------------------------------------------------
# Validation helpers


def _number(name, value, *, minimum=None, strict=False, maximum=None, allow_none=False):
    """Return ``value`` as a finite float or raise :class:`ParameterError`."""
    if value is None and allow_none:
        return None
    what = "a finite number"
    if minimum is not None:
        what = f"a number {'>' if strict else '>='} {minimum:g}"
    if maximum is not None:
        what += f" and <= {maximum:g}"
    if allow_none:
        what = f"None or {what}"
    if isinstance(value, bool):
        raise ParameterError(name, what, value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(name, what, value) from None
    if not math.isfinite(x):
        raise ParameterError(name, what, value)
    if minimum is not None and (x < minimum or (strict and x == minimum)):
        raise ParameterError(name, what, value)
    if maximum is not None and x > maximum:
        raise ParameterError(name, what, value)
    return x


def _check_n_channels(n_channels) -> int:
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
        raise ParameterError("n_channels", "an integer >= 1", n_channels)
    return int(n_channels)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError("seed", "a non-negative integer", seed)
    return int(seed)


# ----------------------------------------------------------------------------
# Scenario description


@dataclass(frozen=True)
class ScriptedEvent:
    """One scripted muscle event of a :class:`Scenario`.

    Parameters
    ----------
    kind : {"contraction", "spasm", "cramp", "twitch"}
        What happens.
    onset_s : float
        Start in seconds from the first sample (>= 0). The burst starts
        rising here.
    duration_s : float
        Length in seconds (> 0), ramps included: the burst is back to zero
        at ``onset_s + duration_s``.
    amplitude : float or None
        Burst RMS in µV on the plateau (the RMS of the muscle activity the
        event adds; rest tone and instrument noise come on top, in power).
        None uses the scenario's default for the kind.
    ramp_s : float or None
        Rise and fall time in seconds (raised cosine). None gives 0.2 s for
        a contraction, 0.03 s for a spasm, 0.5 s for a cramp and 0.01 s
        for a twitch. Ramps longer than half the duration are shortened to
        half the duration, so the burst always reaches its amplitude.
    channels : tuple of int or None
        0-based indices of the channels that carry the event; None means
        every channel. Default ``(0,)``.
    cued : bool or None
        True for a contraction asked for by a cue. None gives True for a
        contraction and False otherwise; spasms, cramps and twitches cannot
        be cued.
    """

    kind: str
    onset_s: float
    duration_s: float
    amplitude: float | None = None
    ramp_s: float | None = None
    channels: tuple[int, ...] | None = (0,)
    cued: bool | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ParameterError("kind", f"one of {', '.join(KINDS)}", self.kind)
        set_ = object.__setattr__
        set_(self, "onset_s", _number("onset_s", self.onset_s, minimum=0.0))
        set_(self, "duration_s", _number("duration_s", self.duration_s, minimum=0.0, strict=True))
        set_(self, "amplitude", _number("amplitude", self.amplitude, minimum=0.0, allow_none=True))
        ramp = _DEFAULT_RAMP_S[self.kind] if self.ramp_s is None else self.ramp_s
        set_(self, "ramp_s", _number("ramp_s", ramp, minimum=0.0))
        if self.channels is not None:
            try:
                chans = tuple(self.channels)
            except TypeError:
                raise ParameterError("channels", "a tuple of channel indices or None", self.channels) from None
            ok = bool(chans) and all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0 for c in chans
            )
            if not ok:
                raise ParameterError("channels", "a non-empty tuple of 0-based channel indices or None", self.channels)
            set_(self, "channels", tuple(sorted({int(c) for c in chans})))
        cued = self.kind == "contraction" if self.cued is None else self.cued
        if not isinstance(cued, (bool, np.bool_)):
            raise ParameterError("cued", "True, False or None", self.cued)
        if cued and self.kind != "contraction":
            raise ParameterError("cued", f"False for a {self.kind} (only contractions are cued)", self.cued)
        set_(self, "cued", bool(cued))

    @property
    def offset_s(self) -> float:
        """End time in seconds (``onset_s + duration_s``)."""
        return self.onset_s + self.duration_s


@dataclass(frozen=True)
class Scenario:
    """A scripted recording session.

    Parameters
    ----------
    duration_s : float
        Length of the recording in seconds (> 0).
    events : tuple of ScriptedEvent
        Muscle events; each must end by ``duration_s``.
    n_channels : int
        Number of channels (>= 1). Every channel has its own independent
        noise.
    rest_rms_uv : float
        RMS of the resting muscle tone, µV (same spectrum as a burst).
    noise_rms_uv : float
        RMS of the white instrument noise floor, µV.
    contraction_rms_uv, spasm_rms_uv, cramp_rms_uv, twitch_rms_uv : float
        Default burst RMS (µV) of each kind, used by events whose
        ``amplitude`` is None.
    mains_hz : float or None
        Mains frequency (50 or 60 Hz usually); None for no hum.
    mains_uv : float
        Peak amplitude of the mains fundamental in µV (RMS is
        ``mains_uv / sqrt(2)``).
    mains_harmonics : tuple of float
        Peak amplitudes of the 2nd, 3rd… harmonics relative to
        ``mains_uv`` (e.g. ``(0.0, 0.3)`` adds a 3rd harmonic at 30 %).
    ecg_bpm : float or None
        Heart rate in beats per minute (20–250); None for no ECG.
    ecg_uv : float
        R-peak amplitude of the ECG contamination in µV.
    electrode_off : tuple of (float, float)
        ``(start_s, end_s)`` spans during which the electrodes are off:
        every channel is then a flat line near 0 µV (a tenth of the
        instrument noise remains).
    saturation_uv : float or None
        ADC rail in µV; the signal is clipped to ``±saturation_uv``. None
        for an amplifier that never saturates.
    dc_offset_uv : float
        Constant electrode offset added to every channel, µV.
    baseline_drift_uv : float
        RMS in µV of a slow baseline wander (Gaussian, below 0.5 Hz).
    """

    duration_s: float
    events: tuple[ScriptedEvent, ...] = ()
    n_channels: int = 1
    rest_rms_uv: float = 3.0
    noise_rms_uv: float = 1.0
    contraction_rms_uv: float = 60.0
    spasm_rms_uv: float = 40.0
    cramp_rms_uv: float = 50.0
    twitch_rms_uv: float = 25.0
    mains_hz: float | None = None
    mains_uv: float = 20.0
    mains_harmonics: tuple[float, ...] = ()
    ecg_bpm: float | None = None
    ecg_uv: float = 50.0
    electrode_off: tuple[tuple[float, float], ...] = ()
    saturation_uv: float | None = None
    dc_offset_uv: float = 0.0
    baseline_drift_uv: float = 0.0

    def __post_init__(self):
        set_ = object.__setattr__
        duration = _number("duration_s", self.duration_s, minimum=0.0, strict=True)
        set_(self, "duration_s", duration)
        set_(self, "n_channels", _check_n_channels(self.n_channels))
        for name in ("rest_rms_uv", "noise_rms_uv", "contraction_rms_uv", "spasm_rms_uv",
                     "cramp_rms_uv", "twitch_rms_uv", "mains_uv", "ecg_uv", "baseline_drift_uv"):
            set_(self, name, _number(name, getattr(self, name), minimum=0.0))
        set_(self, "dc_offset_uv", _number("dc_offset_uv", self.dc_offset_uv))
        set_(self, "mains_hz", _number("mains_hz", self.mains_hz, minimum=0.0, strict=True, allow_none=True))
        set_(self, "ecg_bpm", _number("ecg_bpm", self.ecg_bpm, minimum=20.0, maximum=250.0, allow_none=True))
        set_(self, "saturation_uv",
             _number("saturation_uv", self.saturation_uv, minimum=0.0, strict=True, allow_none=True))
        try:
            harmonics = tuple(self.mains_harmonics)
        except TypeError:
            raise ParameterError("mains_harmonics", "a tuple of relative amplitudes", self.mains_harmonics) from None
        set_(self, "mains_harmonics", tuple(
            _number(f"mains_harmonics[{i}]", h, minimum=0.0) for i, h in enumerate(harmonics)))

        try:
            events = tuple(self.events)
        except TypeError:
            raise ParameterError("events", "a tuple of ScriptedEvent", self.events) from None
        for i, ev in enumerate(events):
            if not isinstance(ev, ScriptedEvent):
                raise ParameterError(f"events[{i}]", "a ScriptedEvent", ev)
            # A tolerance of a nanosecond lets scripts built by adding
            # floats end exactly at the recording's end.
            if ev.offset_s > duration + 1e-9:
                raise ParameterError(
                    f"events[{i}] end (onset_s + duration_s) of a {ev.kind}",
                    f"at most duration_s = {duration:g} s",
                    ev.offset_s,
                )
            if ev.channels is not None and max(ev.channels) >= self.n_channels:
                raise ParameterError(
                    f"events[{i}].channels",
                    f"channel indices below n_channels = {self.n_channels}",
                    ev.channels,
                )
        set_(self, "events", events)

        spans = []
        try:
            raw_spans = tuple(self.electrode_off)
        except TypeError:
            raise ParameterError("electrode_off", "a tuple of (start_s, end_s) pairs", self.electrode_off) from None
        for i, span in enumerate(raw_spans):
            try:
                start, end = span
            except (TypeError, ValueError):
                raise ParameterError(f"electrode_off[{i}]", "a (start_s, end_s) pair", span) from None
            start = _number(f"electrode_off[{i}] start_s", start, minimum=0.0)
            end = _number(f"electrode_off[{i}] end_s", end, minimum=0.0)
            if not start < end <= duration + 1e-9:
                raise ParameterError(
                    f"electrode_off[{i}]", f"start_s < end_s <= duration_s = {duration:g} s", span)
            spans.append((start, end))
        set_(self, "electrode_off", tuple(spans))

    # -- derived quantities ---------------------------------------------------

    @property
    def rest_total_rms_uv(self) -> float:
        """RMS of the signal at rest in µV: ``sqrt(rest_rms_uv**2 + noise_rms_uv**2)``."""
        return math.hypot(self.rest_rms_uv, self.noise_rms_uv)

    def amplitude_of(self, event: ScriptedEvent) -> float:
        """Burst RMS of ``event`` in µV (its own or the kind's default)."""
        if event.amplitude is not None:
            return event.amplitude
        return float(getattr(self, f"{event.kind}_rms_uv"))

    def with_snr(self, snr_db: float) -> "Scenario":
        """Return a copy whose bursts have a given signal-to-noise ratio.

        The SNR is defined as ``20 * log10(A / R)`` where ``A`` is the burst
        RMS (the RMS of the activity an event adds on its plateau, see
        :class:`ScriptedEvent`) and ``R = sqrt(rest_rms_uv**2 +
        noise_rms_uv**2)`` the RMS of the signal at rest. Since the parts
        are independent, the total RMS on a plateau is ``sqrt(A**2 + R**2)``
        and ``A`` can be measured as ``sqrt(P_plateau - P_rest)`` from the
        mean powers. Mains, ECG and drift are not part of ``R``.

        Every event (of every kind) gets amplitude ``A``, and so do the
        defaults of every kind.

        Parameters
        ----------
        snr_db : float
            Wanted SNR in dB.

        Returns
        -------
        Scenario
        """
        snr = _number("snr_db", snr_db)
        rest = self.rest_total_rms_uv
        if rest <= 0:
            raise ParameterError("rest_rms_uv and noise_rms_uv", "a non-zero resting level to define an SNR", rest)
        amp = rest * 10.0 ** (snr / 20.0)
        events = tuple(replace(ev, amplitude=amp) for ev in self.events)
        return replace(self, events=events, contraction_rms_uv=amp, spasm_rms_uv=amp,
                       cramp_rms_uv=amp, twitch_rms_uv=amp)

    def to_dict(self) -> dict:
        """Plain-data summary (nested dicts, tuples and numbers) for metadata."""
        return asdict(self)


# ----------------------------------------------------------------------------
# Filters


def _impulse_energy_length(sos, tol=1e-14) -> int:
    """Samples after which the impulse response energy has decayed to ``tol``."""
    _, poles, _ = signal.sos2zpk(sos)
    r = float(np.max(np.abs(poles))) if len(poles) else 0.0
    if r <= 0.0:
        return 16
    if r >= 1.0:  # pragma: no cover - designs here are always stable
        raise ValueError("unstable filter")
    return int(math.ceil(math.log(tol) / (2.0 * math.log(r)))) + 16


def _unit_noise_gain(sos: np.ndarray) -> np.ndarray:
    """Scale ``sos`` so that unit-variance white noise in gives unit RMS out.

    The noise gain is the root of the impulse response energy, computed
    until the response has decayed (from the largest pole radius).
    """
    sos = np.array(sos, dtype=float)
    impulse = np.zeros(_impulse_energy_length(sos))
    impulse[0] = 1.0
    gain = math.sqrt(float(np.sum(signal.sosfilt(sos, impulse) ** 2)))
    sos[0, :3] /= gain
    return sos


def emg_shaping_sos(fs: float) -> np.ndarray:
    """Shaping filter of the simulated sEMG at sampling rate ``fs``.

    Two-pole surface-EMG model (zero at DC, pole at 60 Hz, double pole at
    120 Hz, matched-z transform) cascaded with a 4th-order Butterworth
    low-pass at ``min(450, 0.4 * fs)`` Hz, scaled to unit noise gain.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    ndarray, shape (n_sections, 6)
        Second-order sections: white noise of unit variance in, unit-RMS
        sEMG out.
    """
    fs = check_sampling_rate(fs, "fs")
    a = math.exp(-2.0 * math.pi * _EMG_LOW_HZ / fs)
    b = math.exp(-2.0 * math.pi * _EMG_HIGH_HZ / fs)
    z_model, p_model = np.array([1.0]), np.array([a, b, b])
    top = min(_EMG_TOP_HZ, _ANTIALIAS_FRACTION_OF_FS * fs)
    z_aa, p_aa, k_aa = signal.butter(_ANTIALIAS_ORDER, top, btype="low", fs=fs, output="zpk")
    sos = signal.zpk2sos(np.concatenate([z_model, z_aa]), np.concatenate([p_model, p_aa]), k_aa)
    return _unit_noise_gain(sos)


def _drift_sos(fs: float) -> np.ndarray:
    cutoff = min(_DRIFT_CUTOFF_HZ, 0.25 * fs)
    return _unit_noise_gain(signal.butter(2, cutoff, btype="low", fs=fs, output="sos"))


def _warm_state(sos, rng, n_channels) -> np.ndarray:
    """Filter state of a process that has been running for ever.

    Runs the filter over white noise until its memory of the zero initial
    state has decayed, so the first output sample already has the
    stationary variance (no fade-in at the start of a recording).
    """
    zi = np.zeros((sos.shape[0], n_channels, 2))
    warm = rng.standard_normal((n_channels, _impulse_energy_length(sos, 1e-12)))
    _, zi = signal.sosfilt(sos, warm, axis=-1, zi=zi)
    return zi


def _ecg_wave(dt: np.ndarray) -> np.ndarray:
    """ECG beat of unit R peak at times ``dt`` (s) relative to the R peak."""
    out = np.zeros_like(dt)
    for centre, width, amp in _ECG_COMPONENTS:
        out += amp * np.exp(-0.5 * ((dt - centre) / width) ** 2)
    return out


_ECG_PEAK = float(_ecg_wave(np.zeros(1))[0])


def _plateau_weight(t: np.ndarray, onset: float, offset: float, ramp: float) -> np.ndarray:
    """Raised-cosine-ramped plateau in [0, 1] at times ``t`` (s)."""
    if ramp <= 0.0:
        return ((t >= onset) & (t < offset)).astype(float)
    u = np.clip(np.minimum(t - onset, offset - t) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


# ----------------------------------------------------------------------------
# Block generator


class _Synth:
    """Renders a scenario block by block (one pass; create a new one to restart).

    After the last block, :attr:`clip_runs` holds the saturated spans per
    channel as ``[start, stop, n_clipped]`` sample indices.
    """

    def __init__(self, scenario: Scenario, fs: float, seed: int):
        self.sc = scenario
        self.fs = fs
        self.n_channels = scenario.n_channels
        self.n_samples = _n_samples(scenario, fs)
        self.block_size = max(1, int(round(_BLOCK_S * fs)))
        C = self.n_channels

        emg_seq, noise_seq, drift_seq, ecg_seq, mains_seq = np.random.SeedSequence(seed).spawn(5)
        self._emg_rng = np.random.default_rng(emg_seq)
        self._noise_rng = np.random.default_rng(noise_seq)
        self._drift_rng = np.random.default_rng(drift_seq)
        self._ecg_rng = np.random.default_rng(ecg_seq)
        mains_rng = np.random.default_rng(mains_seq)

        self._emg_sos = emg_shaping_sos(fs)
        self._emg_zi = _warm_state(self._emg_sos, self._emg_rng, C)
        if scenario.baseline_drift_uv > 0:
            self._drift_sos = _drift_sos(fs)
            self._drift_zi = _warm_state(self._drift_sos, self._drift_rng, C)

        # Mains lines below Nyquist: (frequency Hz, peak µV, phase rad).
        self._mains = []
        if scenario.mains_hz is not None and scenario.mains_uv > 0:
            rel = (1.0,) + scenario.mains_harmonics
            phases = mains_rng.uniform(0.0, 2.0 * np.pi, size=len(rel))
            for k, (r, ph) in enumerate(zip(rel, phases), start=1):
                f = k * scenario.mains_hz
                if r > 0 and f < fs / 2.0:
                    self._mains.append((f, r * scenario.mains_uv, float(ph)))

        if scenario.ecg_bpm is not None and scenario.ecg_uv > 0:
            self._rr = 60.0 / scenario.ecg_bpm
            # Start mid-cycle: the first R peak is at a random point of the
            # first RR interval, counted from one interval before t = 0.
            self._beats = [float(self._ecg_rng.uniform(-self._rr, 0.0))]
        else:
            self._beats = None

        # Scripted events as arrays: onset, offset, ramp (s), amplitude (µV)
        # and a channel mask, for a vectorised overlap test per block.
        evs = scenario.events
        self._ev_on = np.array([e.onset_s for e in evs], dtype=float)
        self._ev_off = np.array([e.offset_s for e in evs], dtype=float)
        self._ev_ramp = np.array([min(e.ramp_s, e.duration_s / 2.0) for e in evs], dtype=float)
        self._ev_amp = np.array([scenario.amplitude_of(e) for e in evs], dtype=float)
        self._ev_mask = np.zeros((len(evs), C), dtype=bool)
        for i, e in enumerate(evs):
            self._ev_mask[i, list(range(C)) if e.channels is None else list(e.channels)] = True

        self._rail = scenario.saturation_uv
        self._merge_gap = int(round(_SATURATION_MERGE_S * fs))
        self.clip_runs: list[list[list[int]]] = [[] for _ in range(C)]

    # -- public ---------------------------------------------------------------

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_sample, data)`` for consecutive blocks."""
        for start in range(0, self.n_samples, self.block_size):
            stop = min(start + self.block_size, self.n_samples)
            yield start, self._block(start, stop)

    # -- one block ------------------------------------------------------------

    def _block(self, start: int, stop: int) -> np.ndarray:
        sc, fs, C = self.sc, self.fs, self.n_channels
        n = stop - start
        t = np.arange(start, stop) / fs

        white = self._emg_rng.standard_normal((C, n))
        emg, self._emg_zi = signal.sosfilt(self._emg_sos, white, axis=-1, zi=self._emg_zi)
        x = emg * np.sqrt(self._envelope_power(t))

        noise_unit = self._noise_rng.standard_normal((C, n))
        if sc.noise_rms_uv > 0:
            x += sc.noise_rms_uv * noise_unit
        if sc.baseline_drift_uv > 0:
            d = self._drift_rng.standard_normal((C, n))
            drift, self._drift_zi = signal.sosfilt(self._drift_sos, d, axis=-1, zi=self._drift_zi)
            x += sc.baseline_drift_uv * drift
        if self._mains:
            idx = np.arange(start, stop, dtype=float)
            hum = np.zeros(n)
            for f, amp, phase in self._mains:
                # Phase from the cycle fraction keeps full precision over hours.
                hum += amp * np.sin(2.0 * np.pi * np.mod(idx * (f / fs), 1.0) + phase)
            x += hum
        if self._beats is not None:
            x += self._ecg(t, start, stop)
        if sc.dc_offset_uv:
            x += sc.dc_offset_uv

        for on, off in sc.electrode_off:
            mask = (t >= on) & (t < off)
            if mask.any():
                x[:, mask] = (_ELECTRODE_OFF_NOISE_FRACTION * sc.noise_rms_uv) * noise_unit[:, mask]

        if self._rail is not None:
            over = np.abs(x) > self._rail
            if over.any():
                self._record_clips(over, start)
                np.clip(x, -self._rail, self._rail, out=x)
        return x

    def _envelope_power(self, t: np.ndarray) -> np.ndarray:
        """Squared amplitude envelope a(t)**2, shape (n_channels, n)."""
        power = np.full((self.n_channels, t.size), self.sc.rest_rms_uv ** 2)
        active = np.flatnonzero((self._ev_on <= t[-1]) & (self._ev_off > t[0]))
        for i in active:
            w = _plateau_weight(t, self._ev_on[i], self._ev_off[i], self._ev_ramp[i])
            power[self._ev_mask[i]] += (self._ev_amp[i] * w) ** 2
        return power

    def _ecg(self, t: np.ndarray, start: int, stop: int) -> np.ndarray:
        fs = self.fs
        t_end = t[-1]
        beats = self._beats
        # Extend the rhythm until no later beat can reach into this block.
        while beats[-1] - _ECG_BEFORE_S <= t_end:
            jitter = float(np.clip(self._ecg_rng.normal(0.0, _ECG_RR_JITTER), -_ECG_RR_LIMIT, _ECG_RR_LIMIT))
            beats.append(beats[-1] + self._rr * (1.0 + jitter))
        out = np.zeros(t.size)
        for b in beats:
            lo = max(start, int(math.ceil((b - _ECG_BEFORE_S) * fs)))
            hi = min(stop, int(math.floor((b + _ECG_AFTER_S) * fs)) + 1)
            if lo < hi:
                out[lo - start:hi - start] += _ecg_wave(t[lo - start:hi - start] - b)
        # Forget beats that can no longer reach a later block (keep the last
        # one: the rhythm continues from it).
        keep = [b for b in beats[:-1] if b + _ECG_AFTER_S >= t_end]
        self._beats = keep + [beats[-1]]
        return out * (self.sc.ecg_uv / _ECG_PEAK)

    def _record_clips(self, over: np.ndarray, start: int) -> None:
        gap = self._merge_gap
        for ch in np.flatnonzero(over.any(axis=1)):
            edges = np.diff(np.concatenate(([0], over[ch].astype(np.int8), [0])))
            starts = np.flatnonzero(edges == 1) + start
            stops = np.flatnonzero(edges == -1) + start
            lengths = stops - starts
            # Group runs separated by at most `gap` unclipped samples.
            first = np.flatnonzero(np.concatenate(([True], starts[1:] - stops[:-1] > gap)))
            last = np.concatenate((first[1:] - 1, [starts.size - 1]))
            counts = np.add.reduceat(lengths, first)
            runs = self.clip_runs[ch]
            groups = [[int(starts[f]), int(stops[l]), int(c)] for f, l, c in zip(first, last, counts)]
            if runs and groups[0][0] - runs[-1][1] <= gap:
                runs[-1][1] = groups[0][1]
                runs[-1][2] += groups[0][2]
                groups = groups[1:]
            runs.extend(groups)


# ----------------------------------------------------------------------------
# Truth, cues and metadata


def _n_samples(scenario: Scenario, fs: float) -> int:
    n = int(round(scenario.duration_s * fs))
    if n < 1:
        raise ParameterError("duration_s * fs", "at least one sample", scenario.duration_s * fs)
    return n


def _stream_info(scenario: Scenario, fs: float, seed: int) -> StreamInfo:
    extra = {
        "scenario": scenario.to_dict(),
        "seed": seed,
        "emg_model": {
            "low_hz": _EMG_LOW_HZ,
            "high_hz": _EMG_HIGH_HZ,
            "antialias_hz": min(_EMG_TOP_HZ, _ANTIALIAS_FRACTION_OF_FS * fs),
        },
    }
    return StreamInfo.default_names(scenario.n_channels, fs, units="uV", source="simulator", extra=extra)


_KIND_ORDER = {k: i for i, k in enumerate(KINDS + ("electrode_off", "saturation"))}


def _truth(scenario: Scenario, fs: float, clip_runs) -> tuple[Event, ...]:
    """True events sorted by onset (then channel, then kind)."""
    names = [f"ch{i + 1}" for i in range(scenario.n_channels)]
    rows = []
    for ev in scenario.events:
        chans = range(scenario.n_channels) if ev.channels is None else ev.channels
        amp = scenario.amplitude_of(ev)
        for c in chans:
            rows.append((c, Event(ev.kind, names[c], ev.onset_s, ev.offset_s, amp, {"cued": ev.cued})))
    for on, off in scenario.electrode_off:
        for c in range(scenario.n_channels):
            rows.append((c, Event("electrode_off", names[c], on, off, math.nan, {"cued": False})))
    if clip_runs is not None:
        for c, runs in enumerate(clip_runs):
            for a, b, count in runs:
                rows.append((c, Event("saturation", names[c], a / fs, b / fs, float(scenario.saturation_uv),
                                      {"cued": False, "n_clipped": count})))
    rows.sort(key=lambda r: (r[1].onset_s, r[0], _KIND_ORDER[r[1].kind], r[1].offset_s))
    return tuple(e for _, e in rows)


def _cue_windows(scenario: Scenario) -> tuple[tuple[float, float], ...]:
    spans = sorted((e.onset_s, e.offset_s) for e in scenario.events if e.cued)
    return tuple(spans)


def _cue_track(scenario: Scenario, fs: float, start: int, stop: int) -> np.ndarray:
    """Cue per sample for samples ``start .. stop - 1``: "contract" or "rest"."""
    t = np.arange(start, stop) / fs
    on = np.zeros(t.size, dtype=bool)
    for a, b in _cue_windows(scenario):
        on |= (t >= a) & (t < b)
    return np.where(on, "contract", "rest")


# ----------------------------------------------------------------------------
# Public entry points


def simulate(scenario: Scenario, fs: float, seed: int = 0) -> Recording:
    """Render a scenario into a recording with its ground truth.

    Parameters
    ----------
    scenario : Scenario
        What to simulate.
    fs : float
        Sampling rate in Hz (> 0; any rate).
    seed : int
        Seed of the random streams (>= 0). Same seed, same samples.

    Returns
    -------
    Recording
        ``data`` shape (n_channels, round(duration_s * fs)) in µV;
        ``cues`` shape (n_samples,), ``"contract"`` from onset to
        onset + duration of every cued contraction, else ``"rest"``;
        ``events`` the true events (scripted events per channel, with
        ``peak`` = burst RMS in µV and ``extra["cued"]``; ``"electrode_off"``
        spans; ``"saturation"`` spans where samples were actually clipped,
        with ``peak`` = the rail and ``extra["n_clipped"]``), sorted by
        onset. ``info.extra`` holds ``"scenario"`` (see
        :meth:`Scenario.to_dict`) and ``"seed"``.
    """
    if not isinstance(scenario, Scenario):
        raise ParameterError("scenario", "a Scenario", scenario)
    fs = check_sampling_rate(fs, "fs")
    seed = _check_seed(seed)
    synth = _Synth(scenario, fs, seed)
    data = np.empty((scenario.n_channels, synth.n_samples))
    for start, block in synth.blocks():
        data[:, start:start + block.shape[1]] = block
    return Recording(
        data=data,
        info=_stream_info(scenario, fs, seed),
        cues=_cue_track(scenario, fs, 0, synth.n_samples),
        events=_truth(scenario, fs, synth.clip_runs),
    )


class SimulatorSource(Source):
    """Streaming source of a simulated scenario.

    Yields the very samples :func:`simulate` returns, in consecutive
    :class:`~biofeedback.core.types.Chunk` objects, whatever ``chunk_s``.
    Each iteration restarts the stream from its first sample. Memory stays
    bounded (one internal one-second block) however long the scenario.

    Parameters
    ----------
    scenario : Scenario
        What to simulate.
    fs : float
        Sampling rate in Hz (> 0).
    seed : int
        Seed of the random streams (>= 0).
    chunk_s : float
        Chunk length in seconds (> 0); chunks hold ``max(1, round(chunk_s
        * fs))`` samples, the last one possibly fewer.
    speed : float
        1.0 releases chunks in real time, 2.0 twice as fast; 0 or ``inf``
        as fast as possible. A chunk is released when its last sample is
        due.
    clock, sleep : callable
        Monotonic clock (s) and sleep function handed to
        :class:`~biofeedback.sources.base.Pacer` (replace them in tests).
    """

    def __init__(self, scenario: Scenario, fs: float, seed: int = 0, chunk_s: float = 0.02,
                 speed: float = 1.0, *, clock=time.monotonic, sleep=time.sleep):
        if not isinstance(scenario, Scenario):
            raise ParameterError("scenario", "a Scenario", scenario)
        self.scenario = scenario
        self.fs = check_sampling_rate(fs, "fs")
        self.seed = _check_seed(seed)
        self.chunk_s = _number("chunk_s", chunk_s, minimum=0.0, strict=True)
        try:
            speed_f = float(speed)
        except (TypeError, ValueError):
            raise ParameterError("speed", "a number >= 0 (0 or inf: as fast as possible)", speed) from None
        if not speed_f >= 0:  # also rejects NaN
            raise ParameterError("speed", "a number >= 0 (0 or inf: as fast as possible)", speed)
        self.speed = speed_f
        self.chunk_size = max(1, int(round(self.chunk_s * self.fs)))
        self.n_samples = _n_samples(scenario, self.fs)
        self.info = _stream_info(scenario, self.fs, self.seed)
        self._clock = clock
        self._sleep = sleep
        self._clip_runs = None

    @property
    def truth(self) -> tuple[Event, ...]:
        """True events, as in :func:`simulate` (sorted by onset).

        With ``saturation_uv`` set, the clipped spans are only known once
        the signal has been generated: if no iteration has run to the end
        yet, this renders the whole stream once (bounded memory, but it
        costs the generation time).
        """
        if self.scenario.saturation_uv is None:
            return _truth(self.scenario, self.fs, None)
        if self._clip_runs is None:
            synth = _Synth(self.scenario, self.fs, self.seed)
            for _ in synth.blocks():
                pass
            self._clip_runs = synth.clip_runs
        return _truth(self.scenario, self.fs, self._clip_runs)

    @property
    def cues(self) -> np.ndarray:
        """Cue per sample of the whole stream, shape (n_samples,).

        Holds a string per sample; for very long streams prefer
        :meth:`cues_between` or :attr:`cue_windows`.
        """
        return _cue_track(self.scenario, self.fs, 0, self.n_samples)

    @property
    def cue_windows(self) -> tuple[tuple[float, float], ...]:
        """``(onset_s, offset_s)`` of each cued contraction, sorted."""
        return _cue_windows(self.scenario)

    def cues_between(self, start: int, stop: int) -> np.ndarray:
        """Cues of samples ``start .. stop - 1`` (e.g. ``chunk.first_sample, chunk.stop``)."""
        return _cue_track(self.scenario, self.fs, max(0, int(start)), min(int(stop), self.n_samples))

    def _chunks(self) -> Iterator[Chunk]:
        synth = _Synth(self.scenario, self.fs, self.seed)
        blocks = synth.blocks()
        pacer = Pacer(self.fs, self.speed, clock=self._clock, sleep=self._sleep)
        pending = np.empty((self.scenario.n_channels, 0))
        pos = 0  # first unreleased column of `pending`
        first = 0  # stream index of the next chunk
        while first < self.n_samples:
            size = min(self.chunk_size, self.n_samples - first)
            if pending.shape[1] - pos < size:
                parts = [pending[:, pos:]]
                have = parts[0].shape[1]
                while have < size:
                    _, block = next(blocks)
                    parts.append(block)
                    have += block.shape[1]
                pending = np.concatenate(parts, axis=1)
                pos = 0
            data = pending[:, pos:pos + size].copy()
            pos += size
            chunk = Chunk(data, first, self.info, cues=self.cues_between(first, first + data.shape[1]))
            first += size
            pacer.wait_until(first)
            yield chunk
        for _ in blocks:  # pragma: no cover - blocks end with the samples
            pass
        self._clip_runs = synth.clip_runs


# ----------------------------------------------------------------------------
# Standard scenarios


def default_session(duration_s: float = 60.0, n_channels: int = 1, **scenario_kwargs) -> Scenario:
    """A scripted biofeedback session.

    Layout (times for the default 60 s):

    * 0-10 s rest (for calibration);
    * cued contractions of 4, 3, 5, 4… s (cycling 4, 3, 5) each followed by
      6 s of rest: 10-14, 20-23, 29-34, 40-44 s, on every channel;
    * an uncued spasm 2.5 s into every rest phase that ends at least 1 s
      before the cramp, durations cycling 0.3, 0.8, 1.5, 0.5 s: at 16.5
      (0.3 s), 25.5 (0.8 s) and 36.5 s (1.5 s), on channel ``k % n_channels``
      for the k-th spasm;
    * a 6 s cramp on every channel starting 13 s before the end (47-53 s),
      then rest. No contraction ends later than 2 s before the cramp.

    Parameters
    ----------
    duration_s : float
        Session length in seconds (>= 30).
    n_channels : int
        Number of channels.
    **scenario_kwargs
        Further :class:`Scenario` fields (``rest_rms_uv``, ``mains_hz``…).

    Returns
    -------
    Scenario
    """
    duration = _number("duration_s", duration_s, minimum=30.0)
    n_channels = _check_n_channels(n_channels)
    lead, rest, cramp_len = 10.0, 6.0, 6.0
    cramp_start = duration - 13.0
    on_durations = (4.0, 3.0, 5.0)
    spasm_durations = (0.3, 0.8, 1.5, 0.5)
    events = []
    t, i, k = lead, 0, 0
    while t + on_durations[i % 3] <= cramp_start - 2.0:
        d = on_durations[i % 3]
        events.append(ScriptedEvent("contraction", t, d, channels=None, cued=True))
        rest_start, rest_end = t + d, t + d + rest
        if rest_end <= cramp_start - 1.0:
            events.append(ScriptedEvent("spasm", rest_start + 2.5, spasm_durations[k % 4],
                                        channels=(k % n_channels,)))
            k += 1
        t, i = rest_end, i + 1
    events.append(ScriptedEvent("cramp", cramp_start, cramp_len, channels=None))
    return Scenario(duration_s=duration, events=tuple(events), n_channels=n_channels, **scenario_kwargs)


def contraction_cycles(n: int, on_s: float = 5.0, off_s: float = 5.0, lead_rest_s: float = 10.0,
                       tail_rest_s: float | None = None, *, amplitude: float | None = None,
                       ramp_s: float | None = None, channels: tuple[int, ...] | None = None,
                       n_channels: int = 1, **scenario_kwargs) -> Scenario:
    """Rest, then ``n`` cued contractions of ``on_s`` separated by ``off_s`` of rest.

    Contraction ``k`` (0-based) spans ``lead_rest_s + k * (on_s + off_s)``
    to that plus ``on_s``; the recording ends ``tail_rest_s`` (default
    ``off_s``) after the last one.

    Parameters
    ----------
    n : int
        Number of contractions (>= 1).
    on_s, off_s, lead_rest_s, tail_rest_s : float
        Durations in seconds.
    amplitude : float or None
        Burst RMS in µV (None: the scenario's ``contraction_rms_uv``).
    ramp_s : float or None
        Rise/fall time in seconds (None: the contraction default).
    channels : tuple of int or None
        Channels that contract (None: all).
    n_channels : int
        Number of channels.
    **scenario_kwargs
        Further :class:`Scenario` fields.

    Returns
    -------
    Scenario
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError("n", "an integer >= 1 (number of contractions)", n)
    on = _number("on_s", on_s, minimum=0.0, strict=True)
    off = _number("off_s", off_s, minimum=0.0)
    lead = _number("lead_rest_s", lead_rest_s, minimum=0.0)
    tail = off if tail_rest_s is None else _number("tail_rest_s", tail_rest_s, minimum=0.0)
    events = tuple(
        ScriptedEvent("contraction", lead + k * (on + off), on, amplitude=amplitude, ramp_s=ramp_s,
                      channels=channels, cued=True)
        for k in range(int(n))
    )
    duration = lead + n * on + (n - 1) * off + tail
    return Scenario(duration_s=duration, events=events, n_channels=n_channels, **scenario_kwargs)


def relax_with_spasms(duration_s: float = 120.0, n_spasms: int = 8,
                      spasm_durations_s: tuple[float, ...] = (0.2, 0.5, 1.0, 1.5),
                      lead_rest_s: float = 10.0, tail_rest_s: float = 5.0, *,
                      amplitude: float | None = None, n_channels: int = 1,
                      **scenario_kwargs) -> Scenario:
    """A long relaxation phase interrupted by uncued spasms.

    After ``lead_rest_s`` of clean rest, the time up to ``duration_s -
    tail_rest_s`` is split into ``n_spasms`` equal slots; spasm ``k`` lasts
    ``spasm_durations_s[k % len]`` and starts at a fraction (cycling 0.35,
    0.6, 0.2, 0.5) of its slot's free time, so spasms are not periodic. It
    is on channel ``k % n_channels``.

    Parameters
    ----------
    duration_s : float
        Length in seconds.
    n_spasms : int
        Number of spasms (>= 1).
    spasm_durations_s : tuple of float
        Durations in seconds, used in turn.
    lead_rest_s, tail_rest_s : float
        Spasm-free rest at the start and the end, in seconds.
    amplitude : float or None
        Spasm burst RMS in µV (None: the scenario's ``spasm_rms_uv``).
    n_channels : int
        Number of channels.
    **scenario_kwargs
        Further :class:`Scenario` fields.

    Returns
    -------
    Scenario
    """
    duration = _number("duration_s", duration_s, minimum=0.0, strict=True)
    n_channels = _check_n_channels(n_channels)
    if isinstance(n_spasms, bool) or not isinstance(n_spasms, (int, np.integer)) or n_spasms < 1:
        raise ParameterError("n_spasms", "an integer >= 1", n_spasms)
    lengths = tuple(_number(f"spasm_durations_s[{i}]", d, minimum=0.0, strict=True)
                    for i, d in enumerate(spasm_durations_s))
    if not lengths:
        raise ParameterError("spasm_durations_s", "at least one duration", spasm_durations_s)
    lead = _number("lead_rest_s", lead_rest_s, minimum=0.0)
    tail = _number("tail_rest_s", tail_rest_s, minimum=0.0)
    slot = (duration - lead - tail) / n_spasms
    if slot < max(lengths) + 1.0:
        raise ParameterError(
            "duration_s",
            f"room for {n_spasms} spasms of up to {max(lengths):g} s with 1 s of rest each "
            f"after {lead:g} s lead and {tail:g} s tail rest",
            duration,
        )
    fractions = (0.35, 0.6, 0.2, 0.5)
    events = []
    for k in range(int(n_spasms)):
        d = lengths[k % len(lengths)]
        onset = lead + k * slot + fractions[k % 4] * (slot - d)
        events.append(ScriptedEvent("spasm", onset, d, amplitude=amplitude, channels=(k % n_channels,)))
    return Scenario(duration_s=duration, events=tuple(events), n_channels=n_channels, **scenario_kwargs)
