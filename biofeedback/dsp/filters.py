"""Linear filter stages: high-pass, band-pass, mains notch, rectification.

All IIR filters are second-order sections (SOS) run with
:func:`scipy.signal.sosfilt`, carrying the filter state ``zi`` from one
chunk to the next, so a stream filtered chunk by chunk equals the same
stream filtered in one call. The state is initialised to the steady state
for the first sample's value (``sosfilt_zi * x[0]``): a sensor with a large
DC offset (OpenBCI boards show tens of thousands of µV) then starts without
the huge step transient that would otherwise look like a contraction.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

from biofeedback.core.types import Chunk, StreamInfo
from biofeedback.dsp.base import Stage
from biofeedback.errors import ParameterError


class SOSFilter(Stage):
    """Causal IIR filter from second-order sections, with carried state.

    Subclasses implement :meth:`design` returning the SOS array for a
    sampling rate, or pass a fixed ``sos`` designed for a known rate.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6), optional
        Fixed coefficients (then ``fs`` must be given too).
    fs : float, optional
        Sampling rate the fixed coefficients were designed for, in Hz.
    """

    name = "filter"

    def __init__(self, sos=None, fs=None):
        super().__init__()
        self._fixed_sos = None if sos is None else np.asarray(sos, dtype=float)
        self._fixed_fs = fs
        self.sos: np.ndarray | None = None
        self._zi: np.ndarray | None = None

    def design(self, fs: float) -> np.ndarray:
        """Return the SOS coefficients for sampling rate ``fs`` (Hz)."""
        if self._fixed_sos is None:
            raise NotImplementedError
        if self._fixed_fs is not None and float(self._fixed_fs) != fs:
            raise ParameterError("fs", f"{self._fixed_fs} Hz (the filter's design rate)", fs)
        return self._fixed_sos

    def _configure(self, info: StreamInfo) -> None:
        self.sos = self.design(info.fs)
        self._zi = None  # set from the first sample

    def _process(self, chunk: Chunk) -> Chunk:
        x = chunk.data
        if x.shape[1] == 0:
            return chunk.replace(data=np.asarray(x, dtype=float), events=())
        if self._zi is None:
            # Steady state for a constant input equal to the first sample.
            base = steady_state_zi(self.sos)  # (n_sections, 2)
            self._zi = base[:, None, :] * np.asarray(x[:, 0], dtype=float)[None, :, None]
        y, self._zi = signal.sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return chunk.replace(data=y, events=())

    def reset(self) -> None:
        super().reset()
        self._zi = None

    def frequency_response(self, fs: float, freqs) -> np.ndarray:
        """Complex response at ``freqs`` (Hz) for sampling rate ``fs`` (Hz)."""
        _, h = signal.sosfreqz(self.design(fs), worN=np.asarray(freqs, dtype=float), fs=fs)
        return h


def _check_edge(name, value, fs):
    nyquist = fs / 2.0
    if not (0 < value < nyquist):
        raise ParameterError(
            name,
            f"a frequency between 0 and the Nyquist frequency {nyquist:g} Hz (fs = {fs:g} Hz)",
            value,
        )


def butter_sos(order: int, edges, btype: str, fs: float) -> np.ndarray:
    """Butterworth second-order sections (shape (n_sections, 6)) for edges in Hz at ``fs`` Hz.

    A batch analysis designs the same few filters again and again: the
    pipeline's band-pass when it is built and on its first chunk, the
    heartbeat detector's band and the quality check's filters for every
    detector it makes, and all of them for every file. Each design is a
    millisecond or two of scipy; designs are kept per (order, edges, type,
    fs) and each caller gets its own copy (scipy's ``sosfilt`` wants a
    writable array).
    """
    return _butter_sos(int(order), edges if np.isscalar(edges) else tuple(edges), str(btype), float(fs)).copy()


def steady_state_zi(sos) -> np.ndarray:
    """:func:`scipy.signal.sosfilt_zi` of ``sos`` (shape (n_sections, 6)): shape (n_sections, 2).

    The state of each section for a unit step's steady state; times the
    first sample, it starts a filter without a transient. scipy solves a
    small linear system per section (about 0.2 ms a section), and every
    file of a batch starts the same filters from their first sample, so the
    answers are kept per design (the coefficients' bytes); each caller gets
    its own copy.
    """
    sos = np.asarray(sos, dtype=float)
    return _steady_state_zi(sos.tobytes(), sos.shape).copy()


@functools.lru_cache(maxsize=64)
def _steady_state_zi(coefficients: bytes, shape):
    zi = signal.sosfilt_zi(np.frombuffer(coefficients).reshape(shape))
    zi.flags.writeable = False
    return zi


@functools.lru_cache(maxsize=64)
def _butter_sos(order, edges, btype, fs):
    sos = signal.butter(order, edges if np.isscalar(edges) else list(edges), btype=btype, output="sos", fs=fs)
    sos.flags.writeable = False  # the cached design itself is never handed out
    return sos


class HighPass(SOSFilter):
    """Butterworth high-pass (DC and drift removal).

    Parameters
    ----------
    cutoff_hz : float
        -3 dB cut-off in Hz.
    order : int
        Butterworth order (default 2).
    """

    name = "highpass"

    def __init__(self, cutoff_hz: float, order: int = 2):
        super().__init__()
        self.cutoff_hz = float(cutoff_hz)
        self.order = int(order)

    def design(self, fs: float) -> np.ndarray:
        _check_edge("high-pass cut-off (Hz)", self.cutoff_hz, fs)
        return butter_sos(self.order, self.cutoff_hz, "highpass", fs)

    def __repr__(self):
        return f"HighPass({self.cutoff_hz:g} Hz, order {self.order})"


class BandPass(SOSFilter):
    """Butterworth band-pass.

    Parameters
    ----------
    low_hz : float
        Lower -3 dB edge in Hz.
    high_hz : float or None
        Upper -3 dB edge in Hz. ``None`` means ``min(450, 0.45 * fs)``,
        the usual surface-EMG band limited to stay clear of the Nyquist
        frequency of low-rate hobby sensors.
    order : int
        Butterworth order of the prototype (default 4; the band-pass has
        ``2 * order`` poles).
    """

    name = "bandpass"

    def __init__(self, low_hz: float = 20.0, high_hz: float | None = None, order: int = 4):
        super().__init__()
        self.low_hz = float(low_hz)
        self.high_hz = None if high_hz is None else float(high_hz)
        self.order = int(order)

    def edges(self, fs: float) -> tuple[float, float]:
        """Band edges in Hz for sampling rate ``fs``."""
        high = min(450.0, 0.45 * fs) if self.high_hz is None else self.high_hz
        return self.low_hz, high

    def design(self, fs: float) -> np.ndarray:
        low, high = self.edges(fs)
        _check_edge("band-pass low edge (Hz)", low, fs)
        _check_edge("band-pass high edge (Hz)", high, fs)
        if not low < high:
            raise ParameterError(
                "band-pass edges (Hz)",
                f"low < high at fs = {fs:g} Hz",
                f"{low:g}-{high:g}",
            )
        return butter_sos(self.order, (low, high), "bandpass", fs)

    def __repr__(self):
        high = "auto" if self.high_hz is None else f"{self.high_hz:g}"
        return f"BandPass({self.low_hz:g}-{high} Hz, order {self.order})"


def mains_harmonics(mains_hz: float, fs: float, max_fraction_of_nyquist: float = 0.98) -> list[float]:
    """Mains frequency and its harmonics below the Nyquist frequency.

    Parameters
    ----------
    mains_hz : float
        50 or 60 (Hz).
    fs : float
        Sampling rate in Hz.
    max_fraction_of_nyquist : float
        Harmonics above this fraction of Nyquist are left out: a notch at
        the Nyquist frequency itself cannot be designed.

    Returns
    -------
    list of float
        Frequencies in Hz.
    """
    limit = max_fraction_of_nyquist * fs / 2.0
    return [k * mains_hz for k in range(1, int(limit // mains_hz) + 1)]


class MainsNotch(SOSFilter):
    """Notch filters at the mains frequency and its harmonics below Nyquist.

    Parameters
    ----------
    mains_hz : float
        50 or 60 Hz.
    quality : float
        Quality factor of each notch (centre / -3 dB width); 30 gives a
        1.7 Hz wide notch at 50 Hz, narrow enough to leave the EMG band.
    harmonics : bool
        Also remove the harmonics below Nyquist (default True).
    """

    name = "notch"

    def __init__(self, mains_hz: float = 50.0, quality: float = 30.0, harmonics: bool = True):
        super().__init__()
        if mains_hz not in (50, 60, 50.0, 60.0):
            raise ParameterError("mains frequency (Hz)", "50 or 60", mains_hz)
        if not quality > 0:
            raise ParameterError("notch quality factor", "a positive number", quality)
        self.mains_hz = float(mains_hz)
        self.quality = float(quality)
        self.harmonics = bool(harmonics)

    def frequencies(self, fs: float) -> list[float]:
        """Notched frequencies in Hz for sampling rate ``fs``."""
        freqs = mains_harmonics(self.mains_hz, fs)
        return freqs if self.harmonics else freqs[:1]

    def design(self, fs: float) -> np.ndarray:
        freqs = self.frequencies(fs)
        if not freqs:
            raise ParameterError(
                "mains notch",
                f"a sampling rate above {2 * self.mains_hz / 0.98:.0f} Hz to notch {self.mains_hz:g} Hz",
                fs,
            )
        return _notch_sos(tuple(freqs), self.quality, float(fs)).copy()  # a copy: callers may write to it

    def __repr__(self):
        return f"MainsNotch({self.mains_hz:g} Hz{' + harmonics' if self.harmonics else ''}, Q={self.quality:g})"


@functools.lru_cache(maxsize=32)
def _notch_sos(freqs: tuple, quality: float, fs: float) -> np.ndarray:
    """Second-order sections (shape (len(freqs), 6)) of one ``iirnotch`` per frequency in Hz.

    Kept per (frequencies, Q, fs): a batch analysis designs the same notch
    for the pipeline's check and its first chunk, then again for every file,
    and each design (``iirnotch`` + ``tf2sos`` per harmonic) costs several
    milliseconds (nine harmonics of 50 Hz at 1 kHz), a few per cent of a
    10-minute single-channel analysis. The coefficients are the same.
    """
    sections = []
    for f0 in freqs:
        b, a = signal.iirnotch(f0, quality, fs=fs)
        sections.append(signal.tf2sos(b, a))
    sos = np.vstack(sections)
    sos.flags.writeable = False  # the cached design itself is never handed out
    return sos


class Rectify(Stage):
    """Full-wave rectification (absolute value); stateless."""

    name = "rectified"

    def _process(self, chunk: Chunk) -> Chunk:
        return chunk.replace(data=np.abs(chunk.data), events=())


class FilterCascade(SOSFilter):
    """Several SOS filters run as one cascade (one ``sosfilt`` call a chunk).

    The output equals running the filters one after the other; merging them
    halves the per-chunk overhead of small live chunks.

    Parameters
    ----------
    filters : sequence of SOSFilter
        Applied in order.
    """

    name = "filtered"

    def __init__(self, filters):
        super().__init__()
        self.filters = list(filters)

    def design(self, fs: float) -> np.ndarray:
        return np.vstack([f.design(fs) for f in self.filters])

    def __repr__(self):
        return " -> ".join(repr(f) for f in self.filters)


class Decimator:
    """Low-pass and keep one sample in ``factor``, chunk by chunk, on absolute indices.

    For analyses of slow components (heartbeats below 30 Hz, movement below
    10 Hz) that need not run at a 1-10 kHz EMG rate. The kept samples are
    those whose stream index is a multiple of ``factor``, so where chunks
    end does not matter; the low-pass carries its state between chunks and
    starts in the steady state of the first sample, like every filter here.

    Parameters
    ----------
    fs : float
        Input sampling rate in Hz.
    min_rate_hz : float
        The output rate is the highest ``fs / factor`` (integer factor) not
        below this; at ``fs < 2 * min_rate_hz`` the factor is 1 and
        :meth:`process` hands its input back untouched (no filter).
    cutoff_hz : float
        Corner of the anti-alias low-pass (4th-order Butterworth, 2
        sections). At the default 50 Hz and an output of at least 250 Hz,
        what folds onto 0-30 Hz comes from 220 Hz and up, attenuated by at
        least 57 dB; 30 Hz itself loses 0.1 dB. Its delay below 30 Hz is
        8-10 ms (an 8th order would attenuate twice as many dB, for twice
        the delay, which postpones the last beats of a stream past its end).

    Attributes
    ----------
    factor : int
    fs_out : float
        Output sampling rate in Hz.
    """

    def __init__(self, fs: float, min_rate_hz: float = 250.0, cutoff_hz: float = 50.0):
        self.fs = float(fs)
        self.factor = max(1, int(self.fs // float(min_rate_hz)))
        self.fs_out = self.fs / self.factor
        if self.factor > 1 and not 0 < cutoff_hz < 0.4 * self.fs_out:
            raise ParameterError("decimator cutoff (Hz)", f"between 0 and {0.4 * self.fs_out:g} Hz", cutoff_hz)
        self.sos = butter_sos(4, cutoff_hz, "lowpass", self.fs) if self.factor > 1 else None
        self._zi = None

    def process(self, raw, first_sample: int) -> tuple[np.ndarray, int]:
        """Decimate one chunk.

        Parameters
        ----------
        raw : ndarray, shape (n_channels, n)
            Consecutive samples, the first at stream index ``first_sample``.
        first_sample : int

        Returns
        -------
        low : ndarray, shape (n_channels, m)
            The low-passed samples at the stream indices ``i`` of the chunk
            with ``i % factor == 0`` (``m`` may be 0 for a short chunk).
        first_low : int
            Output index of ``low[:, 0]``: ``ceil(first_sample / factor)``.
        """
        d = self.factor
        if d == 1:
            return raw, first_sample
        raw = np.asarray(raw, dtype=float)
        first_low = -(-first_sample // d)
        if raw.shape[1] == 0:
            return raw[:, :0].copy(), first_low
        if self._zi is None:
            self._zi = steady_state_zi(self.sos)[:, None, :] * raw[:, 0][None, :, None]
        y, self._zi = signal.sosfilt(self.sos, raw, axis=-1, zi=self._zi)
        return np.ascontiguousarray(y[:, first_low * d - first_sample::d]), first_low
