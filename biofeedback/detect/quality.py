"""Signal-quality flags per channel and time span.

The raw signal (before any filter) is cut into windows of ``window_s``
(0.5 s) and each window of each channel is checked for:

``electrode_off``
    Flat line: the window's raw standard deviation is below an absolute
    floor for the units (:data:`FLAT_STD_BY_UNIT`, well under any sEMG
    amplifier's noise), or its EMG-band (> 20 Hz) RMS is below
    ``flat_ratio`` (10 %) of the channel's usual quiet level (25th
    percentile of its windows). Even a fully relaxed muscle leaves the
    amplifier's noise; ten times less is no contact.
``saturation``
    At least ``clip_fraction`` (5 %) of the window's samples sit at the
    ADC rails. The rails are given (``rails``) or found: a channel's
    extreme value counts as a rail when samples pile up there (at least 3,
    and at least twice as many as at the next value inside): a clipped
    signal stacks up at its limit, an unclipped one thins out towards its
    extremes. Below 5 % clipping the amplitude estimate is barely affected
    (a Gaussian clipped at 2 standard deviations loses a few % of its RMS).
``mains``
    The power within 1 Hz of the mains lines (50 or 60 Hz and harmonics in
    the EMG band) is larger than ``mains_ratio`` (1x) the rest of the EMG
    band's power: the hum is stronger than the muscle signal, so whatever
    the notch leaves (harmonics, amplitude changes) matters.
``motion``
    The 1-10 Hz part of the raw signal has an RMS above ``motion_ratio``
    (3x) the EMG-band RMS of the same window *and* above ``motion_jump``
    (4x) the channel's median 1-10 Hz RMS. Muscle activity raises both
    bands together (its spectrum keeps its shape), a steady ECG or drift
    is in the median; a movement or an electrode pop is a sudden
    low-frequency excursion.
``ecg``
    Heartbeats: QRS-like spikes on the 5-30 Hz band that repeat in shape
    at a regular rhythm of 40-200 beats per minute, for at least 5 beats
    (:class:`~biofeedback.detect.ecg.BeatDetector`,
    :func:`~biofeedback.detect.ecg.regular_runs`); runs less than 10 s
    apart (beats hidden in a contraction) form one span. The flag informs:
    use a ``trunk``/``pelvic`` preset or ``--ecg on`` to suppress the beats.

The two slow bands, 1-10 Hz for ``motion`` and 5-30 Hz for ``ecg``, are
computed on a copy of the signal low-passed at 50 Hz and decimated to about
250 Hz (:class:`~biofeedback.dsp.filters.Decimator`; a 1 kHz file by 4, a
2 kHz file by 8; below 500 Hz nothing is decimated). Their numbers are those
of the full rate within a few percent, 8-10 ms later (the low-pass's delay).

Consecutive flagged windows (gaps up to one window) form one span, reported
as an :class:`~biofeedback.core.types.Event` of that kind. A channel that is
flat for most of the recording (``flat_channel_fraction``) or saturated in
most of its samples (``saturated_channel_fraction``) gets a status that
stops detection on it, with a message saying what to do.

:class:`QualityMonitor` takes the raw stream chunk by chunk (windows are
aligned on absolute sample indices, so chunking does not matter) and keeps
only a few numbers per window; :meth:`QualityMonitor.finish` builds the
:class:`QualityReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from biofeedback.core.types import Event, StreamInfo
from biofeedback.detect.ecg import BeatDetector, ECGSettings, beat_decimator, probe_beats, regular_runs
from biofeedback.dsp.filters import butter_sos, mains_harmonics, steady_state_zi
from biofeedback.errors import ParameterError

#: Kinds of quality events.
FLAGS = ("electrode_off", "saturation", "mains", "motion", "ecg")
#: Flags whose spans make a detected activation meaningless: batch analysis
#: drops activations overlapping an electrode-off span and those starting in
#: a motion span (``biofeedback.analysis.batch``). Saturation is not among
#: them: a strong
#: contraction may clip the amplifier and is still a contraction (the event
#: is kept with ``quality="saturation"``).
DROPPING_FLAGS = ("electrode_off", "motion")

#: Raw standard deviation (in the stream's units) below which a window is
#: flat. 0.2 uV is well under the noise floor of any sEMG amplifier; for ADC
#: counts, less than half a code means the converter output is constant.
#: Unknown units: only a constant signal is flat by this rule.
FLAT_STD_BY_UNIT = {"uv": 0.2, "µv": 0.2, "μv": 0.2, "mv": 2e-4, "v": 2e-7, "counts": 0.5, "adc": 0.5}

OK, FLAT, SATURATED = "ok", "flat", "saturated"


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality flags (see the module docstring for why)."""

    window_s: float = 0.5
    flat_ratio: float = 0.1
    flat_std: float | None = None
    clip_fraction: float = 0.05
    rails: tuple | None = None
    mains_ratio: float = 1.0
    motion_ratio: float = 3.0
    motion_jump: float = 4.0
    ecg_min_beats: int = 5
    flat_channel_fraction: float = 0.8
    saturated_channel_fraction: float = 0.5
    ecg: ECGSettings = field(default_factory=ECGSettings)

    def __post_init__(self):
        if not self.window_s > 0:
            raise ParameterError("quality window_s", "a positive duration in seconds", self.window_s)
        if self.rails is not None:
            lo, hi = self.rails
            if not lo < hi:
                raise ParameterError("ADC range", "LOW < HIGH", self.rails)
        for name in ("clip_fraction", "flat_channel_fraction", "saturated_channel_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ParameterError(name, "a fraction in (0, 1]", getattr(self, name))

    def flat_floor(self, units: str) -> float:
        if self.flat_std is not None:
            return float(self.flat_std)
        return FLAT_STD_BY_UNIT.get(str(units).strip().lower(), 0.0)


@dataclass
class ChannelStatus:
    """Whether a channel can be analysed.

    Attributes
    ----------
    status : str
        ``ok``, ``flat`` or ``saturated``.
    message : str
        What was found and what to do ("" when ok).
    """

    status: str = OK
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class QualityReport:
    """Per-window flags and the spans they form.

    Attributes
    ----------
    info : StreamInfo
    window : int
        Window length in samples.
    n_samples : int
    flags : dict of str to ndarray of bool, shape (n_channels, n_windows)
    spans : dict of str to list of list of (int, int)
        Per flag and channel, ``(start, stop)`` sample spans.
    status : list of ChannelStatus
    rails : list of (float or None, float or None)
        The ADC rails used per channel (given or found).
    ecg_bpm : list of float
        Median heart rate of the ECG spans per channel (NaN without).
    """

    info: StreamInfo
    window: int
    n_samples: int
    flags: dict
    spans: dict
    status: list
    rails: list
    ecg_bpm: list

    def events(self) -> list[Event]:
        """One event per flagged span (kind = flag), sorted by onset."""
        fs = self.info.fs
        out = []
        for flag in FLAGS:
            for ch, spans in enumerate(self.spans[flag]):
                for a, b in spans:
                    extra = {"quality": flag}
                    if flag == "ecg" and np.isfinite(self.ecg_bpm[ch]):
                        extra["bpm"] = round(float(self.ecg_bpm[ch]), 1)
                    out.append(Event(flag, self.info.ch_names[ch], a / fs, b / fs, float("nan"), extra))
        out.sort(key=lambda e: (e.onset_s, self.info.ch_names.index(e.channel)))
        return out

    def flagged_seconds(self, flag: str, ch: int) -> float:
        """Total flagged time of ``flag`` on channel ``ch`` in seconds."""
        return sum(b - a for a, b in self.spans[flag][ch]) / self.info.fs

    def exclusion_spans(self, flags=("electrode_off", "saturation", "motion")):
        """Per channel, the spans of the given flags (for the quiet-window baseline)."""
        out = []
        for ch in range(self.info.n_channels):
            spans = []
            for flag in flags:
                spans.extend(self.spans[flag][ch])
            out.append(sorted(spans))
        return out


class QualityMonitor:
    """Streaming computation of the per-window features (see module docstring).

    Parameters
    ----------
    info : StreamInfo
    settings : QualitySettings
    mains_hz : float or None
        Mains frequency to check; None checks both 50 and 60 Hz.
    prime : ndarray, shape (n_channels, n), optional
        First seconds of raw signal to learn the heartbeat detector's
        threshold from (batch), so beats are found from the start.
    prime_beats : BeatDetector, optional
        The detector already run over ``prime`` with ``settings.ecg``
        (:func:`~biofeedback.detect.ecg.probe_beats`), to learn from instead
        of running it again: batch analysis shares it with the heartbeat
        decision. It must have run at the decimated rate, as
        ``probe_beats`` does (its energy levels depend on the rate).
    """

    def __init__(self, info: StreamInfo, settings: QualitySettings | None = None, mains_hz=None, prime=None,
                 prime_beats: BeatDetector | None = None):
        self.info = info
        self.settings = s = settings or QualitySettings()
        fs = info.fs
        n = info.n_channels
        self.window = max(4, int(round(s.window_s * fs)))
        top = min(0.45 * fs, 450.0)
        self._emg_low = min(20.0, 0.4 * fs)
        self._hf_sos = butter_sos(2, self._emg_low, "highpass", fs)
        # The heartbeat detector and the 1-10 Hz band run on a copy decimated
        # to about 250 Hz (see biofeedback.detect.ecg.DETECTION_RATE_HZ):
        # both lie far below the EMG band, and at 1-2 kHz they were half of
        # the check's time. Low-rate sample j is raw sample j * factor.
        self._low = beat_decimator(fs)
        fs_low = self._low.fs_out
        lf_high = min(10.0, 0.4 * fs_low)
        self._lf_sos = butter_sos(2, (min(1.0, lf_high / 2), lf_high), "bandpass", fs_low)
        self._zi = {}
        # Spectral bins of a window: EMG band and mains lines.
        freqs = np.fft.rfftfreq(self.window, 1.0 / fs)
        self._band = (freqs >= self._emg_low) & (freqs <= top)
        families = [mains_hz] if mains_hz else [50.0, 60.0]
        self._lines = []
        for family in families:
            near = np.zeros(freqs.shape, dtype=bool)
            for f0 in mains_harmonics(family, fs, 0.9):
                if self._emg_low <= f0 <= top:
                    near |= np.abs(freqs - f0) <= 1.0 + fs / self.window / 2
            if near.any():
                # Bins of the lines and of the rest of the EMG band, per family.
                self._lines.append((near & self._band, self._band & ~near))
        self._taper = np.hanning(self.window)
        self._pending = np.zeros((n, 0))
        self._pending_hf = np.zeros((n, 0))
        # Low-rate 1-10 Hz samples not yet reduced to window RMS, the first at low-rate index _lf_first.
        self._pending_lf = np.zeros((n, 0))
        self._lf_first = 0
        self._features: list[dict] = []
        self._report: QualityReport | None = None
        # Per channel, the largest and smallest raw value so far (see _add_windows).
        self._extreme = {"max": np.full(n, -np.inf), "min": np.full(n, np.inf)}
        self.n_samples = 0
        self._windows_done = 0  # raw samples reduced to window features
        self._rail_counts = []
        self.beats = BeatDetector(fs_low, n, s.ecg)
        primer = prime_beats
        if primer is not None and primer.fs != fs_low:
            raise ParameterError("prime_beats", f"a beat detector run at {fs_low:g} Hz (probe_beats)",
                                 f"one run at {primer.fs:g} Hz")
        if primer is None and prime is not None:
            primer = probe_beats(prime, fs, s.ecg)
        if primer is not None and primer.learned:
            self.beats.adopt(primer)

    def _filter(self, name, sos, x):
        zi = self._zi.get(name)
        if zi is None:
            zi = steady_state_zi(sos)[:, None, :] * x[:, 0][None, :, None]
        y, self._zi[name] = signal.sosfilt(sos, x, axis=-1, zi=zi)
        return y

    def update(self, raw, first_sample: int) -> None:
        """Add raw samples ``(n_channels, n)`` (consecutive chunks)."""
        raw = np.asarray(raw, dtype=float)
        if raw.shape[1] == 0:
            return
        low, low_first = self._low.process(raw, first_sample)
        self.beats.update(low, low_first)
        hf = self._filter("hf", self._hf_sos, raw)
        if low.shape[1]:
            lf = self._filter("lf", self._lf_sos, low)
            if self._pending_lf.shape[1]:
                self._pending_lf = np.concatenate([self._pending_lf, lf], axis=1)
            else:
                self._pending_lf, self._lf_first = lf, low_first
        self.n_samples = first_sample + raw.shape[1]
        held = self._pending.shape[1]
        if held:
            self._pending = np.concatenate([self._pending, raw], axis=1)
            self._pending_hf = np.concatenate([self._pending_hf, hf], axis=1)
        else:
            # Nothing held (the first chunk, a file read in one chunk): no copy.
            self._pending, self._pending_hf = raw, hf
        k = self._pending.shape[1] // self.window
        if k:
            cut = k * self.window
            self._add_windows(self._pending[:, :cut], self._pending_hf[:, :cut])
            self._pending = self._pending[:, cut:]
            self._pending_hf = self._pending_hf[:, cut:]
        if not held:
            self._pending = self._pending.copy()  # the caller's samples: a reader may reuse its buffer

    def _low_rms(self, start: int, stop: int, k: int) -> np.ndarray:
        """RMS of the low-rate 1-10 Hz band over ``k`` equal raw windows from ``start`` to ``stop``.

        Window ``i`` holds the low-rate samples ``j`` with ``j * factor`` in
        its raw span; they are dropped from the held band once reduced.
        Returns shape (n_channels, k).
        """
        d = self._low.factor
        edges = -(-(start + (stop - start) // k * np.arange(k + 1)) // d) - self._lf_first
        lf = self._pending_lf
        counts = np.diff(edges)
        if np.all(counts == counts[0]) and counts[0]:
            # Equal windows (every rate whose window is a multiple of the factor): the plain mean.
            c = int(counts[0])
            rms = np.sqrt(np.mean(lf[:, edges[0]:edges[-1]].reshape(lf.shape[0], k, c) ** 2, axis=2))
        else:
            sums = np.add.reduceat(lf[:, edges[0]:edges[-1]] ** 2, edges[:-1] - edges[0], axis=1)
            rms = np.sqrt(sums / np.maximum(counts, 1))
            rms[:, counts == 0] = 0.0
        self._pending_lf = lf[:, edges[-1]:]
        self._lf_first += int(edges[-1])
        return rms

    def _add_windows(self, raw, hf) -> None:
        n_ch = raw.shape[0]
        w = self.window if raw.shape[1] >= self.window else raw.shape[1]
        k = raw.shape[1] // w
        x = raw[:, :k * w].reshape(n_ch, k, w)
        # np.std's own steps (window mean, deviations, their mean square, its
        # root: the same numbers as x.std(axis=2)), spelled out so that the
        # mains check below reuses the deviations instead of computing them again.
        centred = x - np.add.reduce(x, axis=2, keepdims=True) / w
        start = self._windows_done
        self._windows_done += k * w
        feats = {
            "std": np.sqrt(np.add.reduce(centred * centred, axis=2) / w),
            "hf": np.sqrt(np.mean(hf[:, :k * w].reshape(n_ch, k, w) ** 2, axis=2)),
            "lf": self._low_rms(start, start + k * w, k),
            "len": np.full(k, w),
        }
        if self.settings.rails is not None:
            lo, hi = self.settings.rails
            feats["nrail"] = ((x <= lo) | (x >= hi)).sum(axis=2)
        else:
            # What finish() needs to find a rail: per window, the extreme
            # values, how many samples hold them and, for the windows whose
            # extreme is the channel's extreme so far, the next value inside.
            # Only those windows can hold the channel's final extreme (it is
            # at least the running one), and _rail() reads the second value
            # of no other window, so the rest are skipped.
            for side, sign in (("max", 1.0), ("min", -1.0)):
                v = x.max(axis=2) if sign > 0 else x.min(axis=2)
                feats["v" + side], feats["c" + side] = v, (x == v[:, :, None]).sum(axis=2)
                running = self._extreme[side]
                running = np.fmax(running, v.max(axis=1)) if sign > 0 else np.fmin(running, v.min(axis=1))
                self._extreme[side] = running
                top = v == running[:, None]
                v2 = np.full(v.shape, -sign * np.inf)
                c2 = np.zeros(v.shape, dtype=np.int64)
                if top.any():
                    sel = x[top]  # (windows at the running extreme, w)
                    at = sel == v[top][:, None]
                    if sign > 0:
                        inner = np.where(at, -np.inf, sel).max(axis=1)
                    else:
                        inner = np.where(at, np.inf, sel).min(axis=1)
                    v2[top] = inner
                    c2[top] = (sel == inner[:, None]).sum(axis=1)
                feats["v2" + side], feats["c2" + side] = v2, c2
        # Mains: line power against the rest of the EMG band.
        if self._lines and w == self.window:
            spectrum = np.fft.rfft(centred * self._taper, axis=2)
            power = spectrum.real ** 2 + spectrum.imag ** 2
            ratios = []
            for line_bins, rest_bins in self._lines:
                line = power[:, :, line_bins].sum(axis=2)
                rest = power[:, :, rest_bins].sum(axis=2)
                ratios.append(line / np.maximum(rest, 1e-300))
            feats["mains"] = np.max(ratios, axis=0)
        else:
            feats["mains"] = np.zeros((n_ch, k))
        self._features.append(feats)

    def finish(self) -> QualityReport:
        """Build the report from everything fed so far (once; later calls return the same report).

        The per-window features are dropped once the report is built: batch
        analysis keeps the monitor until the end of the file, and for an
        hour of 8 channels they are some 6 MB that nothing reads any more.
        """
        if self._report is not None:
            return self._report
        if self._pending.shape[1] >= max(4, self.window // 4):
            self._add_windows(self._pending, self._pending_hf)
        self._pending = self._pending[:, :0]
        s = self.settings
        info = self.info
        n_ch = info.n_channels
        if not self._features:
            empty = {f: np.zeros((n_ch, 0), dtype=bool) for f in FLAGS}
            return QualityReport(info, self.window, self.n_samples, empty,
                                 {f: [[] for _ in range(n_ch)] for f in FLAGS},
                                 [ChannelStatus() for _ in range(n_ch)], [(None, None)] * n_ch,
                                 [float("nan")] * n_ch)
        f = {key: np.concatenate([part[key] for part in self._features], axis=-1) for key in self._features[0]}
        lengths = f["len"]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        stops = starts + lengths

        # Flat / electrode off.
        floor = s.flat_floor(info.units)
        ref = np.percentile(f["hf"], 25, axis=1, keepdims=True)
        flat = (f["std"] <= floor) | (f["hf"] < s.flat_ratio * ref)

        # Saturation.
        rails = []
        clipped = np.zeros(f["std"].shape)
        for ch in range(n_ch):
            if s.rails is not None:
                clipped[ch] = f["nrail"][ch]
                rails.append(tuple(s.rails))
                continue
            hi, n_hi = _rail(f["vmax"][ch], f["cmax"][ch], f["v2max"][ch], f["c2max"][ch], +1)
            lo, n_lo = _rail(f["vmin"][ch], f["cmin"][ch], f["v2min"][ch], f["c2min"][ch], -1)
            if hi is not None:
                clipped[ch] += n_hi
            if lo is not None:
                clipped[ch] += n_lo
            rails.append((lo, hi))
        saturation = clipped >= s.clip_fraction * lengths
        flat &= ~saturation  # a signal stuck at a rail is reported as saturated

        mains = f["mains"] > s.mains_ratio
        lf_median = np.median(f["lf"], axis=1, keepdims=True)
        motion = (f["lf"] > s.motion_ratio * f["hf"]) & (f["lf"] > s.motion_jump * lf_median) & ~flat

        flags = {"electrode_off": flat, "saturation": saturation, "mains": mains, "motion": motion}
        spans = {name: [_spans(mask[ch], starts, stops) for ch in range(n_ch)] for name, mask in flags.items()}

        # Heartbeats.
        fs = info.fs
        d = self._low.factor  # beats are counted in low-rate samples
        ecg_spans, ecg_bpm = [], []
        ecg_flags = np.zeros(flat.shape, dtype=bool)
        for ch in range(n_ch):
            runs = regular_runs(self.beats.beats[ch], self.beats.fs, min_beats=s.ecg_min_beats,
                                similar=self.beats.similar[ch])
            half = int(round(0.3 * fs))
            # Runs separated by less than 10 s are one span: the heart did not
            # stop, its beats were hidden in a contraction.
            merged = _merge([(max(0, a * d - half), min(self.n_samples, b * d + half)) for a, b, _ in runs],
                            gap=int(round(10.0 * fs)))
            ecg_spans.append(merged)
            ecg_bpm.append(float(np.median([bpm for _, _, bpm in runs])) if runs else float("nan"))
            for a, b in merged:
                ecg_flags[ch] |= (starts < b) & (stops > a)
        flags["ecg"] = ecg_flags
        spans["ecg"] = ecg_spans

        status = []
        total = float(lengths.sum())
        for ch in range(n_ch):
            flat_frac = float(lengths[flat[ch]].sum()) / total
            clip_frac = float(clipped[ch].sum()) / total
            name = info.ch_names[ch]
            if clip_frac >= s.saturated_channel_fraction:
                status.append(ChannelStatus(SATURATED, (
                    f"{name}: {100 * clip_frac:.0f}% of the samples sit at the ADC limits (saturated); check that "
                    "the electrode is attached and the amplifier gain is not too high, re-place the electrode "
                    "and record again. No detection on this channel.")))
            elif flat_frac >= s.flat_channel_fraction:
                status.append(ChannelStatus(FLAT, (
                    f"{name}: flat signal in {100 * flat_frac:.0f}% of the recording (no muscle or amplifier "
                    "noise: electrode off or cable unplugged); re-place the electrode and check the cable. "
                    "No detection on this channel.")))
            else:
                status.append(ChannelStatus())
        self._report = QualityReport(info, self.window, self.n_samples, flags, spans, status, rails, ecg_bpm)
        self._features = []
        return self._report


def _rail(v, c, v2, c2, sign):
    """Extreme value of a channel if it is a rail, and per-window counts there."""
    if v.size == 0:
        return None, None
    g = v.max() if sign > 0 else v.min()
    at = v == g
    count = int(c[at].sum())
    # Next value inside the range, and how many samples hold it.
    inner = np.where(at, v2, v)
    inner = inner[np.isfinite(inner)]
    if inner.size == 0:
        return None, None  # a constant signal: flat, not clipped
    nxt = inner.max() if sign > 0 else inner.min()
    n_next = int(c[v == nxt].sum() + c2[at & (v2 == nxt)].sum())
    if count >= 3 and count >= 2 * n_next:
        return float(g), np.where(at, c, 0)
    return None, None


def _spans(mask, starts, stops, gap_windows: int = 1):
    """Sample spans of runs of True windows, bridging gaps of ``gap_windows``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > gap_windows + 1)
    firsts = np.concatenate(([idx[0]], idx[breaks + 1]))
    lasts = np.concatenate((idx[breaks], [idx[-1]]))
    return [(int(starts[a]), int(stops[b])) for a, b in zip(firsts, lasts)]


def _merge(spans, gap: int):
    out = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] <= gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def assess_quality(data, info: StreamInfo, settings: QualitySettings | None = None, mains_hz=None,
                   chunk_size: int | None = None) -> QualityReport:
    """Quality report of a whole array ``(n_channels, n_samples)`` of raw samples."""
    data = np.asarray(data, dtype=float)
    prime = data[:, : int(round(10 * info.fs))]
    monitor = QualityMonitor(info, settings, mains_hz=mains_hz, prime=prime)
    size = chunk_size or max(1, int(info.fs))
    for start in range(0, data.shape[1], size):
        monitor.update(data[:, start:start + size], start)
    return monitor.finish()


def overlaps(event: Event, spans, fs: float, margin_s: float = 0.0) -> bool:
    """True when ``event`` overlaps one of ``spans`` (sample spans) widened by ``margin_s``."""
    a = event.onset_s * fs
    b = event.offset_s * fs
    m = margin_s * fs
    return any(a < hi + m and b > lo - m for lo, hi in spans)
