"""Run a protocol against a stream: the cue track, the countdown, pauses.

:func:`expand` turns a :class:`~biofeedback.session.protocol.Protocol` into
a :class:`Schedule` of phases with sample-exact boundaries at the stream's
sampling rate: phase ``k`` starts at ``round(fs * (d_0 + ... + d_{k-1}))``
(cumulative seconds, rounded once, so rounding errors never add up).

:class:`ProtocolRunner` is the *cue provider* of a session: the live worker
(or the session loop of :mod:`biofeedback.session.engine`) asks it for the
cue of every sample (:meth:`~ProtocolRunner.cues_for`) and for what to show
(:meth:`~ProtocolRunner.status`: phase name, cue, seconds left, progress,
target band). When the source disconnects, :meth:`~ProtocolRunner.pause`
stops the protocol clock; :meth:`~ProtocolRunner.resume` restarts it where
it stopped, so every later phase shifts by the paused time. Finished phases
come out of :meth:`~ProtocolRunner.pop_finished` as
:class:`~biofeedback.session.phases.Phase` records with their actual times.

:func:`scenario_for` builds a simulator
:class:`~biofeedback.sources.simulator.Scenario` from the same protocol:
contractions exactly during the contract phases, with amplitudes from the
targets, and optional spasms injected in the relax phases, so a simulated
session is driven by the protocol it tests.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from biofeedback.errors import ParameterError, check_sampling_rate
from biofeedback.session.phases import Phase
from biofeedback.session.protocol import PhaseSpec, Protocol

__all__ = ["CueStatus", "PlannedPhase", "ProtocolRunner", "Schedule", "expand", "scenario_for"]

#: Cue written for samples outside every phase (before the start, during a
#: pause, after the end): the person is asked to rest.
IDLE_CUE = "relax"


@dataclass(frozen=True)
class PlannedPhase:
    """A phase placed on the protocol's own clock (samples, pauses excluded)."""

    index: int
    spec: PhaseSpec
    start: int
    stop: int

    @property
    def n_samples(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Schedule:
    """The phases of a protocol at a sampling rate."""

    fs: float
    phases: tuple

    @property
    def n_samples(self) -> int:
        return self.phases[-1].stop if self.phases else 0

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def as_list(self) -> list[dict]:
        """Plain data for ``session.json``: planned start/stop samples of each phase."""
        return [{"index": p.index, "name": p.spec.name, "role": p.spec.role, "cue": p.spec.cue,
                 "start_sample": p.start, "stop_sample": p.stop, **_spec_extra(p.spec)} for p in self.phases]


def _spec_extra(spec: PhaseSpec) -> dict:
    out = {}
    if spec.target is not None:
        out["target"] = spec.target.describe()
    if spec.block:
        out.update(block=spec.block, repetition=spec.repetition, repetitions=spec.repetitions)
    return out


def expand(protocol: Protocol, fs: float) -> Schedule:
    """Place the protocol's phases on sample boundaries at ``fs``.

    A phase shorter than one sample still gets one sample.
    """
    fs = check_sampling_rate(fs, "fs")
    out = []
    elapsed = 0.0
    start = 0
    for i, spec in enumerate(protocol.phases):
        elapsed += spec.duration_s
        stop = max(start + 1, int(round(elapsed * fs)))
        out.append(PlannedPhase(i, spec, start, stop))
        start = stop
    return Schedule(fs, tuple(out))


@dataclass(frozen=True)
class CueStatus:
    """What the display shows about the protocol at one sample.

    Attributes
    ----------
    name : str
        Phase label (``"tonic 2/5"``), ``"paused"`` or ``"done"``.
    cue : str
        ``"relax"`` or ``"contract"``.
    remaining_s : float
        Seconds left in the phase.
    progress : float
        Fraction of the phase done, 0 to 1.
    target_low, target_high : float or None
        Target band of the envelope in the stream's units (None when the
        phase has none or its reference, rest or MVC, is not known yet).
    done : bool
        The protocol has ended.
    prompt : str
        Instruction text of the phase.
    index, n_phases : int
        Phase position (0-based) and count.
    paused : bool
        The protocol clock is stopped (source disconnected).
    role : str
    target_text : str
        The target in words (``"below 1.5x rest"``, ``"30-50 %MVC"``).
    next_name : str
        Label of the next phase ("" at the last one).
    session_progress : float
        Fraction of the whole protocol done.
    """

    name: str
    cue: str
    remaining_s: float
    progress: float
    target_low: float | None
    target_high: float | None
    done: bool
    prompt: str = ""
    index: int = 0
    n_phases: int = 0
    paused: bool = False
    role: str = ""
    target_text: str = ""
    next_name: str = ""
    session_progress: float = 0.0


@dataclass
class _Pause:
    at: int  # protocol position (samples) where it stopped
    start: int  # stream index of the first paused sample
    stop: int | None = None  # stream index where the protocol went on
    reason: str = ""


@dataclass
class _Reference:
    rest_level: float | None = None
    mvc: float | None = None
    mvc_source: str = ""
    measured: list = field(default_factory=list)


class ProtocolRunner:
    """The cue provider of a session (see module docstring).

    Parameters
    ----------
    protocol : Protocol
    fs : float
        Sampling rate of the stream.
    rest_level, mvc : float, optional
        Envelope references of the feedback channel for target bands; can be
        set later with :meth:`set_reference`.
    start_sample : int
        Stream index at which the protocol starts.

    Notes
    -----
    Methods may be called from two threads (a worker and a display); a lock
    keeps the pause list consistent.
    """

    def __init__(self, protocol: Protocol, fs: float, *, rest_level: float | None = None,
                 mvc: float | None = None, start_sample: int = 0):
        self.protocol = protocol
        self.schedule = expand(protocol, fs)
        self.fs = self.schedule.fs
        self.start_sample = int(start_sample)
        self._pauses: list[_Pause] = []
        self._lock = threading.RLock()
        self._ref = _Reference(rest_level, mvc, "given" if mvc is not None else "")
        self._next_finished = 0  # index of the next phase to report as finished
        self._starts = np.array([p.start for p in self.schedule.phases], dtype=np.int64)
        self._cue_codes = np.array([p.spec.cue == "contract" for p in self.schedule.phases], dtype=bool)

    # -- references ---------------------------------------------------------------
    def set_reference(self, rest_level: float | None = None, mvc: float | None = None, source: str = "") -> None:
        """Set the resting level and/or the MVC (envelope units) used for target bands."""
        with self._lock:
            if rest_level is not None:
                self._ref.rest_level = float(rest_level)
            if mvc is not None:
                self._ref.mvc = float(mvc)
                self._ref.mvc_source = source or "given"

    @property
    def rest_level(self) -> float | None:
        return self._ref.rest_level

    @property
    def mvc(self) -> float | None:
        return self._ref.mvc

    @property
    def mvc_source(self) -> str:
        return self._ref.mvc_source

    # -- clock: stream index <-> protocol position --------------------------------
    @property
    def paused(self) -> bool:
        return bool(self._pauses) and self._pauses[-1].stop is None

    def _position(self, index: int) -> int:
        """Protocol position (samples run) at stream index ``index``."""
        pos = index - self.start_sample
        for p in self._pauses:
            if index < p.start:
                break
            if p.stop is None or index < p.stop:
                return p.at
            pos -= p.stop - p.start
        return pos

    def _stream_index(self, position: int, *, as_start: bool) -> int:
        """Stream index of protocol position ``position``.

        A position where a pause happened maps to the end of the pause for a
        phase start (the phase begins when the protocol goes on) and to its
        start for a phase end.
        """
        index = self.start_sample + position
        for p in self._pauses:
            if p.at > position or (p.at == position and not as_start):
                break
            if p.stop is None:
                return -1  # not placed yet
            index += p.stop - p.start
        return index

    def pause(self, index: int, reason: str = "") -> bool:
        """Stop the protocol clock at stream index ``index``; False if already paused or done."""
        with self._lock:
            if self.paused or self.done(index):
                return False
            at = max(0, min(self._position(index), self.schedule.n_samples))
            self._pauses.append(_Pause(at, int(index), None, reason))
            return True

    def resume(self, index: int) -> float:
        """Restart the protocol clock at stream index ``index``; returns the seconds paused (0 if not paused)."""
        with self._lock:
            if not self.paused:
                return 0.0
            pause = self._pauses[-1]
            pause.stop = max(int(index), pause.start)
            return (pause.stop - pause.start) / self.fs

    @property
    def pauses(self) -> list[dict]:
        """Pauses so far: stream sample indices and protocol position (for ``session.json``)."""
        return [{"start_sample": p.start, "stop_sample": p.stop, "at_sample": p.at, "reason": p.reason}
                for p in self._pauses]

    def restore_pauses(self, pauses) -> None:
        """Set the pauses from :attr:`pauses` data (used by repair)."""
        self._pauses = [_Pause(int(p["at_sample"]), int(p["start_sample"]),
                               None if p.get("stop_sample") is None else int(p["stop_sample"]),
                               str(p.get("reason", ""))) for p in pauses]

    # -- cue provider ------------------------------------------------------------------
    def cues_for(self, first_sample: int, n: int) -> np.ndarray:
        """Cue (``"relax"``/``"contract"``) of stream samples ``first_sample .. first_sample + n - 1``."""
        n = int(n)
        with self._lock:
            index = first_sample + np.arange(n, dtype=np.int64)
            pos = index - self.start_sample
            valid = pos >= 0
            for p in self._pauses:
                stop = p.stop if p.stop is not None else np.iinfo(np.int64).max
                inside = (index >= p.start) & (index < stop)
                valid &= ~inside
                if p.stop is not None:
                    pos = np.where(index >= p.stop, pos - (p.stop - p.start), pos)
            valid &= pos < self.schedule.n_samples
            k = np.searchsorted(self._starts, np.clip(pos, 0, None), side="right") - 1
            contract = valid & self._cue_codes[np.clip(k, 0, len(self._cue_codes) - 1)]
        return np.where(contract, "contract", IDLE_CUE)

    def phase_at(self, index: int) -> PlannedPhase | None:
        """The planned phase running at stream index ``index`` (None outside, or while paused)."""
        with self._lock:
            pos = self._position(index)
            if pos < 0 or pos >= self.schedule.n_samples:
                return None
            if any(p.start <= index and (p.stop is None or index < p.stop) for p in self._pauses):
                return None
            k = int(np.searchsorted(self._starts, pos, side="right")) - 1
            return self.schedule.phases[k]

    def done(self, index: int) -> bool:
        """True once every phase has run at stream index ``index`` (one past the last sample seen)."""
        with self._lock:
            if self.paused:
                return False
            return self._position(index) >= self.schedule.n_samples

    def end_index(self) -> int | None:
        """Stream index one past the protocol's last sample (None while paused)."""
        with self._lock:
            if self.paused:
                return None
            return self._stream_index(self.schedule.n_samples, as_start=False)

    def status(self, sample_index: int) -> CueStatus:
        """What to show at stream index ``sample_index`` (see :class:`CueStatus`)."""
        with self._lock:
            phases = self.schedule.phases
            total = self.schedule.n_samples
            pos = self._position(sample_index)
            session_progress = min(1.0, max(0.0, pos / total)) if total else 1.0
            if self.paused and sample_index >= self._pauses[-1].start:
                k = min(int(np.searchsorted(self._starts, max(pos, 0), side="right")) - 1, len(phases) - 1)
                ph = phases[max(k, 0)]
                return CueStatus("paused", IDLE_CUE, (ph.stop - pos) / self.fs, (pos - ph.start) / ph.n_samples,
                                 None, None, False, "source disconnected: the protocol waits", ph.index,
                                 len(phases), True, ph.spec.role, "", ph.spec.name, session_progress)
            if pos >= total:
                return CueStatus("done", IDLE_CUE, 0.0, 1.0, None, None, True, "", len(phases), len(phases),
                                 False, "", "", "", 1.0)
            k = int(np.searchsorted(self._starts, max(pos, 0), side="right")) - 1
            ph = phases[max(k, 0)]
            spec = ph.spec
            low = high = None
            if spec.target is not None:
                low, high = spec.target.band(self._ref.rest_level, self._ref.mvc)
            return CueStatus(
                name=spec.name, cue=spec.cue, remaining_s=(ph.stop - max(pos, ph.start)) / self.fs,
                progress=min(1.0, max(0.0, (pos - ph.start) / ph.n_samples)), target_low=low, target_high=high,
                done=False, prompt=spec.prompt, index=ph.index, n_phases=len(phases), paused=False,
                role=spec.role, target_text="" if spec.target is None else spec.target.describe(),
                next_name=phases[ph.index + 1].spec.name if ph.index + 1 < len(phases) else "",
                session_progress=session_progress)

    # -- phases as run ----------------------------------------------------------------
    def actual_span(self, planned: PlannedPhase) -> tuple[int, int, int]:
        """``(start, stop, paused_samples)`` of a phase in stream indices (stop -1 if not placed yet)."""
        with self._lock:
            start = self._stream_index(planned.start, as_start=True)
            stop = self._stream_index(planned.stop, as_start=False)
            paused = sum((p.stop - p.start) for p in self._pauses
                         if p.stop is not None and planned.start < p.at < planned.stop)
            if any(p.stop is None and planned.start < p.at < planned.stop for p in self._pauses):
                stop = -1
            return start, stop, paused

    def phase_record(self, planned: PlannedPhase, stop_index: int | None = None, completed: bool = True) -> Phase:
        """The :class:`Phase` of a planned phase as run (cut at ``stop_index`` when given)."""
        start, stop, paused = self.actual_span(planned)
        if stop_index is not None:
            stop = max(start, min(stop if stop >= 0 else stop_index, stop_index))
        spec = planned.spec
        low = high = None
        if spec.target is not None:
            low, high = spec.target.band(self._ref.rest_level, self._ref.mvc)
        extra = {"start_sample": start, "end_sample": stop, "repetition": spec.repetition,
                 "repetitions": spec.repetitions, "target": "" if spec.target is None else spec.target.describe(),
                 "paused_s": round(paused / self.fs, 6), "completed": bool(completed)}
        return Phase(index=planned.index, name=spec.name, role=spec.role, cue=spec.cue, start_s=start / self.fs,
                     end_s=stop / self.fs, target_low=low, target_high=high, extra=extra)

    def pop_finished(self, index: int) -> list[Phase]:
        """Phases that ended at or before stream index ``index`` and were not returned yet."""
        out = []
        with self._lock:
            while self._next_finished < len(self.schedule.phases):
                planned = self.schedule.phases[self._next_finished]
                _, stop, _ = self.actual_span(planned)
                if stop < 0 or stop > index:
                    break
                out.append(self.phase_record(planned))
                self._next_finished += 1
        return out

    def cut_phase(self, index: int) -> Phase | None:
        """The phase running at ``index`` as a record cut there (for a session that ends early), or None.

        Marks it returned, so :meth:`pop_finished` will not return it again.
        """
        with self._lock:
            if self._next_finished >= len(self.schedule.phases):
                return None
            planned = self.schedule.phases[self._next_finished]
            start, _, _ = self.actual_span(planned)
            if start < 0 or start >= index:
                return None
            self._next_finished += 1
            return self.phase_record(planned, stop_index=index, completed=False)


# ---------------------------------------------------------------------------
# simulation driven by the protocol

#: Contraction strength (fraction of the MVC) of a contract phase without a %MVC target.
ROLE_EFFORT = {"flick": 1.0, "tonic": 0.8, "endurance": 0.6, "work": 0.5, "release": 0.5}


def scenario_for(protocol: Protocol, fs: float, *, n_channels: int = 1, mvc_uv: float = 100.0,
                 rest_rms_uv: float = 3.0, noise_rms_uv: float = 1.0, spasms: int = 0,
                 spasm_snr_db: float | None = None, spasm_durations_s=(0.6, 1.0, 1.5, 0.8),
                 seed: int = 0, calibration_s: float = 10.0, margin_s: float = 2.0,
                 reaction_s: float = 0.0, strict: bool = True, **scenario_kwargs):
    """A simulator scenario that follows the protocol.

    Parameters
    ----------
    protocol : Protocol
    fs : float
        Sampling rate; phase boundaries are placed as :func:`expand` does.
    n_channels : int
        Channels simulated; contractions are on every channel, each spasm on
        one channel (in turn).
    mvc_uv : float
        Burst RMS (µV) of a maximum voluntary contraction. A contract phase
        with a ``pct_mvc`` target contracts at the middle of its band; with a
        ``level`` target at the middle of that band; otherwise at
        :data:`ROLE_EFFORT` times the MVC.
    rest_rms_uv, noise_rms_uv : float
        Resting tone and instrument noise (see
        :class:`~biofeedback.sources.simulator.Scenario`).
    spasms : int
        Number of spasms injected in the relax phases (cue relax), placed
        at random (seeded) at least ``margin_s`` from any contraction and
        from each other, and not before ``calibration_s``.
    spasm_snr_db : float, optional
        Spasm burst RMS as an SNR over the resting RMS
        (``20 log10(A / sqrt(rest**2 + noise**2))``); default: the
        scenario's ``spasm_rms_uv``.
    spasm_durations_s : sequence of float
        Spasm lengths, used in turn.
    seed : int
        Seed of the spasm placement (the signal's own seed is the
        simulator's).
    calibration_s : float
        No spasm before this time (the detector calibrates on the first
        seconds).
    margin_s : float
        Clearance around contract phases and between spasms.
    reaction_s : float
        Contractions start this long after their cue (0: exactly on it).
    strict : bool
        When the relax phases have no room for ``spasms``, raise
        (default); with False, place as many as fit.
    **scenario_kwargs
        Further :class:`~biofeedback.sources.simulator.Scenario` fields.

    Returns
    -------
    Scenario
        Its events are the truth: contractions (cued) and spasms (uncued).
    """
    from biofeedback.sources.simulator import Scenario, ScriptedEvent

    schedule = expand(protocol, fs)
    fs = schedule.fs
    events = []
    for ph in schedule.phases:
        spec = ph.spec
        if spec.cue != "contract":
            continue
        target = spec.target
        if target is not None and target.kind == "pct_mvc":
            amp = (target.low + target.high) / 200.0 * mvc_uv
        elif target is not None and target.kind == "level":
            amp = (target.low + target.high) / 2.0
        else:
            amp = ROLE_EFFORT.get(spec.role, 0.7) * mvc_uv
        onset = ph.start / fs + reaction_s
        duration = ph.n_samples / fs - reaction_s
        if duration <= 0:
            continue
        events.append(ScriptedEvent("contraction", onset, duration, amplitude=amp, channels=None, cued=True))
    rest_total = math.hypot(rest_rms_uv, noise_rms_uv)
    spasm_amp = None if spasm_snr_db is None else rest_total * 10.0 ** (float(spasm_snr_db) / 20.0)
    if spasms:
        events.extend(_place_spasms(schedule, int(spasms), tuple(spasm_durations_s), spasm_amp, n_channels,
                                    seed, calibration_s, margin_s, strict))
    events.sort(key=lambda e: e.onset_s)
    duration_s = schedule.n_samples / fs
    return Scenario(duration_s=duration_s, events=tuple(events), n_channels=n_channels, rest_rms_uv=rest_rms_uv,
                    noise_rms_uv=noise_rms_uv, **scenario_kwargs)


def _place_spasms(schedule: Schedule, n: int, durations, amplitude, n_channels, seed, calibration_s, margin_s,
                  strict=True):
    from biofeedback.sources.simulator import ScriptedEvent

    if n < 0:
        raise ParameterError("spasms", "a number >= 0", n)
    if not durations or min(durations) <= 0:
        raise ParameterError("spasm_durations_s", "positive durations", durations)
    fs = schedule.fs
    # Free intervals: relax phases, shrunk by the margin next to contract phases.
    free = []
    phases = schedule.phases
    for ph in phases:
        if ph.spec.cue != "relax":
            continue
        a, b = ph.start / fs, ph.stop / fs
        if ph.index > 0 and phases[ph.index - 1].spec.cue == "contract":
            a += margin_s
        if ph.index + 1 < len(phases) and phases[ph.index + 1].spec.cue == "contract":
            b -= margin_s
        a = max(a, calibration_s)
        if b > a:
            free.append([a, b])
    rng = np.random.default_rng(seed)
    out = []
    longest = max(durations)
    for k in range(n):
        d = durations[k % len(durations)]
        room = [(a, b) for a, b in free if b - a >= d]
        if not room:
            if not strict:
                break
            raise ParameterError("spasms", f"at most {k} spasms of up to {longest:g} s in the relax phases "
                                           f"(with {margin_s:g} s of clearance)", n)
        lengths = np.array([b - a - d for a, b in room]) + 1e-9
        i = int(rng.choice(len(room), p=lengths / lengths.sum()))
        a, b = room[i]
        onset = float(a + rng.uniform(0.0, b - a - d))
        onset = round(onset * fs) / fs
        out.append(ScriptedEvent("spasm", onset, d, amplitude=amplitude, channels=(k % n_channels,)))
        # Split the free interval around the spasm, keeping the margin.
        new_free = []
        for x, y in free:
            if x <= onset < y:
                if onset - margin_s > x:
                    new_free.append([x, onset - margin_s])
                if onset + d + margin_s < y:
                    new_free.append([onset + d + margin_s, y])
            else:
                new_free.append([x, y])
        free = new_free
    return out
