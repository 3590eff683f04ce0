"""The phases of a guided session, as run (shared by recording and reports).

A protocol file describes phases to run; once run, each phase is a
:class:`Phase` with its actual start and end times in the recording. Reports
compute their metrics per phase from these, so the recorder and the report
agree on one type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from biofeedback.errors import ParameterError

#: Cues a phase can give: the user is asked to relax or to contract.
CUES = ("relax", "contract")

#: Roles of phases that reports know how to summarise.
ROLES = (
    "baseline",      # resting baseline (pre/post), resting mean and variability
    "flick",         # quick contraction (~2 s): peak, rise and recovery time
    "tonic",         # held contraction (~10 s): mean, variability
    "endurance",     # long hold (~60 s): mean, median-frequency slope
    "relax",         # down-training relax phase: spasms, time to relax
    "work",          # contract-relax training: contraction at a %MVC target
    "rest",          # rest between work phases
    "release",       # quick release: relaxation time after a contraction
)


@dataclass(frozen=True)
class Phase:
    """One phase of a session as it was run.

    Attributes
    ----------
    index : int
        Position in the session (0-based).
    name : str
        Label shown to the user, e.g. ``"tonic 3/5"``.
    role : str
        One of :data:`ROLES` (what the report measures).
    cue : str
        ``"relax"`` or ``"contract"``.
    start_s, end_s : float
        Start and end in seconds from the first sample of the recording.
    target_low, target_high : float or None
        Target band of the envelope in the stream's units (None if none).
    extra : dict
        Protocol-specific fields (repetition, target in %MVC…).
    """

    index: int
    name: str
    role: str
    cue: str
    start_s: float
    end_s: float
    target_low: float | None = None
    target_high: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.cue not in CUES:
            raise ParameterError("phase cue", " or ".join(CUES), self.cue)
        if self.role not in ROLES:
            raise ParameterError("phase role", ", ".join(ROLES), self.role)
        if not self.end_s >= self.start_s:
            raise ParameterError("phase end_s", f"at least start_s = {self.start_s}", self.end_s)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_row(self) -> dict:
        """Flat dictionary for ``phases.csv``."""
        row = asdict(self)
        row.pop("extra")
        row.update(self.extra)
        return row
