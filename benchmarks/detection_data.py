"""Recordings and ground truth of the detection benchmark (``bench_detection.py``).

Each dataset folder under ``shared/data/real/`` has a SOURCE.md that says
where the files come from and what their labels mean; the truth built here
follows it. The decisions, per dataset:

myo_readings/12345-1 (Myo armband, 200 Hz, 8 channels, per-sample cue label)
    Active = label != 0. The label is the *cue* written by the recording
    app; SOURCE.md measured the EMG rising 0.05-0.55 s after it. Reference
    onset = cue onset + 0.30 s (middle of that range), tolerance +-0.75 s
    (SOURCE.md's suggestion), i.e. a detection between 0.45 s before and
    1.05 s after the cue counts. Scored channels: ch0, ch3, ch4, ch6, ch7,
    the ones SOURCE.md names as carrying flexion and fist (the others
    barely change); 0.txt (rest only) uses the same five, as the control of
    the same session. The 1 s after each cue offset is not scored: the EMG
    offset lags the cue like the onset does, and opening the hand may
    fire the antagonists. Rest for false alarms: label 0, less that second
    and less each onset's match window.
uci_emg_gestures/01 (Myo held on a ~1 kHz clock, 8 channels, class label)
    Resampled on the ``time`` column to a uniform 1000 Hz grid (linear
    interpolation; SOURCE.md: the clock is irregular). Volts are converted
    to microvolts. Class 1 = rest, classes 2-7 = gestures, class 0 =
    unknown (pauses and ramps: neither rest nor activity, so a detection
    starting there outside every match window is not scored). SOURCE.md measured
    the envelope rising typically 0.7-1.3 s *before* a gesture label
    starts, so reference onset = label start - 1.0 s with a generous
    +-1.5 s tolerance (a detection between 2.5 s before and 0.5 s after the
    label start counts). All 8 channels are scored (each gesture uses
    other muscles). Rest = class-1 stretches only (about 4 s in this file).
elderly_emg_dynamometry/ID 1.xlsx (2000 Hz, 4 electrodes, load cell)
    One 10 s isometric test per EMG sheet, with the force of that test's
    muscle (``DNM`` column k for sheet k) as the truth: force low-passed at
    10 Hz (zero phase), baseline = its 1st percentile, top = its 99th
    percentile; active where force > baseline + 20 % of (top - baseline);
    active stretches closer than 1 s are joined (a dip of a held force is
    not a relaxation) and ones shorter than 0.5 s dropped. An onset needs a
    rest before it: a stretch gives an onset only if the force stayed below
    the threshold for at least ``ELDERLY_MIN_REST_S`` = 1 s before it (the
    same minimum rest the rest-based peers need). The earlier rule ("a
    stretch starting at the very first sample gives no onset") scored
    onsets at 0.24-0.77 s in all four ID 1 tests, but in every one of them
    the force is at its minimum at the very first sample and already
    rising (VL test: 12.7 kgf over the first 50 ms, 15.1 kgf 0.25 s later):
    the contraction began before the recording, and the 1st-percentile
    "baseline" is a point on that rise, not a preload at rest. The EMG
    agrees: the VL electrode is at 20-26 times its resting level (seen in
    the BF test) from the first sample of the VL and LG tests. Such a force
    crossing is not an onset from rest, which is what every method here
    detects. Tolerance +-1.0 s around the force onset (the electrodes pick
    up crosstalk and co-contraction that SOURCE.md says lag the force by up
    to ~1.5 s). All four electrodes are scored. Rest = stretches of at
    least 1 s with the force below the threshold, less each onset's match
    window. SOURCE.md: every test starts contracting within its first 0-2
    s, so ID 1 has neither a scorable onset nor a rest; its row shows "-"
    for every method alike.
emggo/Sample Data.mat (250 Hz, 1 channel)
    Count only: 56 activations (emgGO docs); no onset times are annotated.
    The rest handed to the rest-based peers is 0.5-7.5 s (SOURCE.md lists
    the first burst at 8.02 s).
emggo/ECG Contaminated.mat (2048 Hz, 8 channels)
    No labels. Scored channels: ch4-ch7, where SOURCE.md locates the
    heartbeat. SOURCE.md lists about ten muscle bursts (~1.3, 4.0 ... 18.4
    s); any detection starting outside [t - 0.3 s, t + 0.8 s] of those is a
    false alarm (the rest of the record is quiet except for the heartbeat).
    R peaks are found on the 5-40 Hz mean of ch4-ch7 to tell how many
    false alarms sit on a heartbeat (within -0.15/+0.25 s of an R peak).
backyardbrains_rEMG/amp_on_baseline.wav (44.1 kHz, 1.38 s, relaxed biceps)
    Rest only: every detection is a false alarm.
synthetic (biofeedback.sources.simulator)
    See :func:`synthetic_case`: exact truth from the simulator.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biofeedback.core.types import Recording, StreamInfo

try:  # imported as a module of benchmarks/ or with benchmarks/ on sys.path
    from scoring import intervals_from_mask, merge_close, normalise_intervals, subtract_intervals
except ImportError:  # pragma: no cover
    from benchmarks.scoring import intervals_from_mask, merge_close, normalise_intervals, subtract_intervals

#: Environment variable naming the ``shared`` folder (holding ``data/real``).
ENV_VAR = "BIOFEEDBACK_SHARED_DATA"

MYO_FS = 200.0
MYO_LAG_S = 0.30
MYO_TOL_S = 0.75
MYO_CHANNELS = (0, 3, 4, 6, 7)
MYO_OFFSET_GUARD_S = 1.0

UCI_FS = 1000.0
UCI_LEAD_S = 1.0
UCI_TOL_S = 1.5

ELDERLY_FS = 2000.0
ELDERLY_SHEETS = ("EMG_VL", "EMG_BF", "EMG_TA", "EMG_LG")
ELDERLY_FRACTION = 0.20
ELDERLY_JOIN_S = 1.0
ELDERLY_MIN_ACTIVE_S = 0.5
ELDERLY_TOL_S = 1.0
ELDERLY_MIN_REST_S = 1.0

EMGGO_COUNT = 56
EMGGO_REST = (0.5, 7.5)
ECG_CHANNELS = (4, 5, 6, 7)
ECG_BURSTS_S = (1.3, 4.0, 5.6, 7.3, 9.3, 11.1, 12.8, 14.7, 16.7, 18.4)
ECG_BURST_WINDOW = (0.3, 0.8)  # seconds before / after each listed burst
ECG_LOCK = (0.15, 0.25)  # a false alarm "on a heartbeat": within R - 0.15 s .. R + 0.25 s

SYN_TOL_S = 0.2
SYN_OFFSET_GUARD_S = 0.5
PEER_REST_MIN_S = 1.0


@dataclass
class Case:
    """One signal with its truth (several Cases may form one table row).

    Attributes
    ----------
    name : str
    recording : Recording
        Only the scored channels; every method gets exactly this.
    onsets : ndarray
        Reference onset times (s); empty for rest-only or count-only cases.
    tolerance : float
        Matching tolerance (s) around each reference onset.
    rest : list of (float, float)
        Rest intervals (s) for the false-alarm rate.
    peer_rest : (float, float) or None
        Rest segment handed to the rest-based peers (Bonato, Hodges-Bui):
        the first rest interval of at least 1 s, or None when there is none.
    expected_count : int or None
        Count-only truth.
    spasms : ndarray or None
        Synthetic: true spasm onsets (s).
    relax : list of (float, float)
        Synthetic: relax phases (s), where a detection is a spasm or a false alarm.
    heartbeats : ndarray or None
        ECG file: R-peak times (s).
    unscored : list of (float, float)
        Stretches whose true state is unknown (outside every onset's match
        window): a detection starting there is neither a hit nor a false
        positive.
    """

    name: str
    recording: Recording
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tolerance: float = 0.0
    rest: list = field(default_factory=list)
    peer_rest: tuple | None = None
    expected_count: int | None = None
    spasms: np.ndarray | None = None
    relax: list = field(default_factory=list)
    heartbeats: np.ndarray | None = None
    unscored: list = field(default_factory=list)


@dataclass
class Row:
    """One row of the table: a name, a kind of scoring and its cases.

    ``kind`` is ``"labelled"`` (onset F1), ``"rest"`` (false alarms only),
    ``"count"``, ``"ecg"`` or ``"synthetic"`` (onset F1 and spasm F1).
    ``skipped`` holds the reason when the files are missing.
    """

    name: str
    kind: str
    cases: list = field(default_factory=list)
    truth: str = ""
    skipped: str = ""
    snr_db: float | None = None


# -- locating the data ----------------------------------------------------------------------------
def real_data_dir() -> Path:
    """``shared/data/real`` next to the project (or under ``$BIOFEEDBACK_SHARED_DATA``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        base = Path(env).expanduser()
        for candidate in (base / "data" / "real", base / "real", base):
            if candidate.is_dir():
                return candidate
        return base / "data" / "real"
    project = Path(__file__).resolve().parent.parent
    return project.parent / "shared" / "data" / "real"


def first_rest(rest, min_s: float = PEER_REST_MIN_S):
    """First rest interval lasting at least ``min_s`` seconds, or None."""
    for a, b in normalise_intervals(rest):
        if b - a >= min_s:
            return (a, b)
    return None


def _recording(data, fs, names, units, source, cues=None) -> Recording:
    data = np.asarray(data, dtype=float)
    if data.ndim == 1:
        data = data[None, :]
    return Recording(data=data, info=StreamInfo(fs=fs, ch_names=tuple(names), units=units, source=str(source)),
                     cues=cues)


# -- Myo readings ---------------------------------------------------------------------------------
def load_myo(path: Path) -> Case:
    """A myo_readings file: scored channels, cue-based truth (see module docstring)."""
    table = np.loadtxt(path, delimiter=",")
    labels = table[:, 8].astype(int)
    fs = MYO_FS
    rec = _recording(table[:, list(MYO_CHANNELS)].T, fs, [f"ch{c}" for c in MYO_CHANNELS], "counts", path)
    cue = intervals_from_mask(labels != 0, fs)
    onsets = np.array([a + MYO_LAG_S for a, _ in cue])
    rest_label = intervals_from_mask(labels == 0, fs)
    windows = [(t - MYO_TOL_S, t + MYO_TOL_S) for t in onsets]
    after_offset = subtract_intervals([(b, b + MYO_OFFSET_GUARD_S) for _, b in cue], windows)
    rest = subtract_intervals(rest_label, after_offset + windows)
    return Case(name=path.name, recording=rec, onsets=onsets, tolerance=MYO_TOL_S, rest=rest,
                peer_rest=first_rest(rest_label), unscored=after_offset)


# -- UCI gestures ---------------------------------------------------------------------------------
def _runs(values):
    """(start index, stop index, value) of runs of equal values."""
    values = np.asarray(values)
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [values.size]])
    return [(int(a), int(b), values[a]) for a, b in zip(starts, stops)]


def load_uci(path: Path) -> Case:
    """UCI gestures subject 01: resampled to 1 kHz, class-based truth."""
    table = np.loadtxt(path, skiprows=1)
    t_ms = table[:, 0]
    keep = np.concatenate([t_ms[1:] > t_ms[:-1], [True]])  # strictly increasing time
    t_ms, table = t_ms[keep], table[keep]
    grid = np.arange(t_ms[0], t_ms[-1] + 1e-9, 1000.0 / UCI_FS)
    data = np.vstack([np.interp(grid, t_ms, table[:, 1 + c]) for c in range(8)]) * 1e6  # V -> uV
    idx = np.clip(np.searchsorted(t_ms, grid, side="right") - 1, 0, t_ms.size - 1)
    labels = table[idx, 9].astype(int)
    fs = UCI_FS
    rec = _recording(data, fs, [f"channel{c + 1}" for c in range(8)], "uV", path)
    gestures = [(a / fs, b / fs) for a, b, v in _runs(labels) if v >= 2]
    onsets = np.array([a - UCI_LEAD_S for a, _ in gestures])
    windows = [(t - UCI_TOL_S, t + UCI_TOL_S) for t in onsets]
    runs = _runs(labels)
    rest_label = [(a / fs, b / fs) for a, b, v in runs if v == 1]
    unknown = subtract_intervals([(a / fs, b / fs) for a, b, v in runs if v == 0], windows)
    rest = subtract_intervals(rest_label, windows)
    return Case(name=path.name, recording=rec, onsets=onsets, tolerance=UCI_TOL_S, rest=rest,
                peer_rest=first_rest(rest_label), unscored=unknown)


# -- Elderly EMG + dynamometry --------------------------------------------------------------------
def read_xlsx_sheets(path: Path) -> dict:
    """All sheets of a numbers-only workbook as float arrays (needs openpyxl)."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheets = {}
        for ws in book.worksheets:
            rows = [[np.nan if v is None else v for v in row] for row in ws.iter_rows(values_only=True)]
            sheets[ws.title] = np.asarray(rows, dtype=float)
        return sheets
    finally:
        book.close()


def force_truth(force, fs: float):
    """Active intervals (s) of a force trace (see module docstring)."""
    from scipy import signal

    force = np.asarray(force, dtype=float)
    force = force[np.isfinite(force)]
    smooth = signal.sosfiltfilt(signal.butter(2, 10.0, fs=fs, output="sos"), force)
    base, top = np.percentile(smooth, [1, 99])
    active = smooth > base + ELDERLY_FRACTION * (top - base)
    spans = merge_close(intervals_from_mask(active, fs), ELDERLY_JOIN_S, ELDERLY_MIN_ACTIVE_S)
    return spans, smooth.size / fs


def load_elderly(path: Path) -> list:
    """One Case per isometric test of ID 1.xlsx."""
    sheets = read_xlsx_sheets(path)
    force = sheets["DNM"]
    cases = []
    for k, name in enumerate(ELDERLY_SHEETS):
        emg = sheets[name]
        emg = emg[np.all(np.isfinite(emg), axis=1)]
        fs = ELDERLY_FS
        rec = _recording(emg.T, fs, ["VL", "BF", "TA", "GL"], "uV", f"{path}:{name}")
        spans, _ = force_truth(force[:, k], fs)
        rest_force = [(a, b) for a, b in subtract_intervals([(0.0, rec.duration_s)], spans)
                      if b - a >= ELDERLY_MIN_REST_S]
        # An onset is scored only right after a rest (see the module docstring).
        onsets = np.array([a for a, _ in spans if any(abs(b - a) < 1e-9 for _, b in rest_force)])
        rest = subtract_intervals(rest_force, [(t - ELDERLY_TOL_S, t + ELDERLY_TOL_S) for t in onsets])
        cases.append(Case(name=f"{path.name}:{name}", recording=rec, onsets=onsets, tolerance=ELDERLY_TOL_S,
                          rest=rest, peer_rest=first_rest(rest_force)))
    return cases


# -- emgGO ----------------------------------------------------------------------------------------
def _load_mat(path: Path):
    from scipy import io

    mat = io.loadmat(path, squeeze_me=True, struct_as_record=False)
    emg = mat["EMG"]
    data = np.asarray(emg.channelData, dtype=float)
    if data.ndim == 1:
        data = data[:, None]
    return data.T, float(emg.fs)


def load_emggo_sample(path: Path) -> Case:
    data, fs = _load_mat(path)
    rec = _recording(data, fs, ["TA"], "uV", path)
    return Case(name=path.name, recording=rec, expected_count=EMGGO_COUNT, peer_rest=EMGGO_REST)


def r_peaks(data, fs: float) -> np.ndarray:
    """R-peak times (s) of the heartbeat common to the rows of ``data``."""
    from scipy import signal

    band = signal.sosfiltfilt(signal.butter(2, [5.0, 40.0], btype="band", fs=fs, output="sos"), data, axis=-1)
    trace = np.abs(band.mean(axis=0))
    peaks, props = signal.find_peaks(trace, distance=int(0.35 * fs), height=0.0)
    if peaks.size == 0:
        return np.zeros(0)
    heights = props["peak_heights"]
    # A beat is a peak at least a third as tall as the typical tall peak.
    keep = heights >= np.percentile(heights, 90) / 3.0
    return peaks[keep] / fs


def load_emggo_ecg(path: Path) -> Case:
    data, fs = _load_mat(path)
    sel = data[list(ECG_CHANNELS)]
    rec = _recording(sel, fs, [f"ch{c}" for c in ECG_CHANNELS], "mV", path)
    before, after = ECG_BURST_WINDOW
    rest = subtract_intervals([(0.0, rec.duration_s)], [(t - before, t + after) for t in ECG_BURSTS_S])
    # Match window [t - before, t + after] written as a centre and a half-width.
    centres = np.asarray(ECG_BURSTS_S) + (after - before) / 2.0
    return Case(name=path.name, recording=rec, onsets=centres, tolerance=(before + after) / 2.0,
                rest=rest, peer_rest=(0.0, ECG_BURSTS_S[0] - before), heartbeats=r_peaks(sel, fs))


# -- Backyard Brains ------------------------------------------------------------------------------
def load_wav_rest(path: Path) -> Case:
    from scipy.io import wavfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data chunk claims 4 bytes more than present
        fs, samples = wavfile.read(path)
    samples = np.asarray(samples, dtype=float)
    if samples.ndim > 1:
        samples = samples[:, 0]
    rec = _recording(samples, float(fs), ["biceps"], "counts", path)
    whole = [(0.0, rec.duration_s)]
    return Case(name=path.name, recording=rec, rest=whole, peer_rest=first_rest(whole))


# -- synthetic grid -------------------------------------------------------------------------------
SYN_DURATION_S = 90.0
SYN_LEAD_S = 10.0
SYN_ON_S = 5.0
SYN_OFF_S = 10.0
SYN_SPASM_S = (0.2, 0.5, 1.0, 1.5)


def synthetic_scenario(seed: int, snr_db: float):
    """Cued contractions with spasms in the relax phases, at a given SNR.

    Layout (90 s): 10 s lead rest; five cycles of a 5 s cued contraction
    (0.2 s ramps) and 10 s of relaxation; in each relaxation two uncued
    spasms (durations cycling 0.2, 0.5, 1.0, 1.5 s; 0.03 s ramps), the first
    starting 2-3.5 s and the second 6-7.5 s after the contraction ends
    (jittered by the seed). Contraction and spasm bursts both have the SNR
    (burst RMS over resting RMS, see ``Scenario.with_snr``). No mains, ECG
    or drift: those are tested on the real recordings.
    """
    from biofeedback.sources.simulator import Scenario, ScriptedEvent

    rng = np.random.default_rng(seed)
    events, k = [], 0
    t = SYN_LEAD_S
    while t + SYN_ON_S + SYN_OFF_S <= SYN_DURATION_S:
        events.append(ScriptedEvent("contraction", t, SYN_ON_S, cued=True))
        relax = t + SYN_ON_S
        for start in (2.0, 6.0):
            d = SYN_SPASM_S[k % len(SYN_SPASM_S)]
            events.append(ScriptedEvent("spasm", relax + start + rng.uniform(0.0, 1.5), d))
            k += 1
        t += SYN_ON_S + SYN_OFF_S
    return Scenario(duration_s=SYN_DURATION_S, events=tuple(events)).with_snr(snr_db)


def synthetic_case(fs: float, snr_db: float, seed: int) -> Case:
    """Simulated recording and its exact truth (tolerance +-0.2 s).

    Rest for false alarms = everything but ``[onset - 0.2 s, offset + 0.5 s]``
    of every event; relax phases (for spasm precision) = everything but
    that span around each contraction.
    """
    from biofeedback.sources.simulator import simulate

    rec = simulate(synthetic_scenario(seed, snr_db), fs, seed)
    muscle = [e for e in rec.events if e.kind in ("contraction", "spasm")]
    whole = [(0.0, rec.duration_s)]
    around = [(e.onset_s - SYN_TOL_S, e.offset_s + SYN_OFFSET_GUARD_S) for e in muscle]
    contractions = [(e.onset_s - SYN_TOL_S, e.offset_s + SYN_OFFSET_GUARD_S) for e in muscle if e.kind == "contraction"]
    rest = subtract_intervals(whole, around)
    first = min(e.onset_s for e in muscle)
    return Case(name=f"fs{fs:g} snr{snr_db:g} seed{seed}", recording=rec,
                onsets=np.array(sorted(e.onset_s for e in muscle)), tolerance=SYN_TOL_S, rest=rest,
                peer_rest=(0.0, first), spasms=np.array(sorted(e.onset_s for e in muscle if e.kind == "spasm")),
                relax=subtract_intervals(whole, contractions))


# -- the rows -------------------------------------------------------------------------------------
def _guard(row: Row, paths, loader):
    missing = [p for p in paths if not p.is_file()]
    if missing:
        row.skipped = "skipped (not found: " + ", ".join(p.name for p in missing) + ")"
        return row
    try:
        loaded = loader()
    except Exception as exc:  # a broken file is reported in its row, not as a traceback
        row.skipped = f"skipped (cannot read: {type(exc).__name__}: {exc})"
        return row
    row.cases = loaded if isinstance(loaded, list) else [loaded]
    return row


def real_rows(only: str | None = None) -> list:
    """Rows of the real recordings (loaded unless filtered out by ``only``)."""
    base = real_data_dir()
    myo = base / "myo_readings" / "12345-1"
    uci_dir = base / "uci_emg_gestures" / "01"
    uci_files = sorted(uci_dir.glob("*.txt")) if uci_dir.is_dir() else []
    uci = uci_files[0] if uci_files else uci_dir / "1_raw_data_*.txt"
    specs = [
        ("myo 1.txt flexion", "labelled", [myo / "1.txt"], lambda: load_myo(myo / "1.txt"),
         f"cue+{MYO_LAG_S:g}s +-{MYO_TOL_S:g}s, ch0,3,4,6,7"),
        ("myo 7.txt fist", "labelled", [myo / "7.txt"], lambda: load_myo(myo / "7.txt"),
         f"cue+{MYO_LAG_S:g}s +-{MYO_TOL_S:g}s, ch0,3,4,6,7"),
        ("myo 0.txt rest", "rest", [myo / "0.txt"], lambda: load_myo(myo / "0.txt"), "rest only, ch0,3,4,6,7"),
        ("uci 01 gestures", "labelled", [uci], lambda: load_uci(uci),
         f"label-{UCI_LEAD_S:g}s +-{UCI_TOL_S:g}s, 8 ch, rest=class 1"),
        ("elderly ID1 (4 tests)", "labelled", [base / "elderly_emg_dynamometry" / "ID 1.xlsx"],
         lambda: load_elderly(base / "elderly_emg_dynamometry" / "ID 1.xlsx"),
         f"force>{ELDERLY_FRACTION:.0%} after >={ELDERLY_MIN_REST_S:g}s rest +-{ELDERLY_TOL_S:g}s, 4 ch"),
        ("emggo Sample (count)", "count", [base / "emggo" / "Sample Data.mat"],
         lambda: load_emggo_sample(base / "emggo" / "Sample Data.mat"), f"count {EMGGO_COUNT}"),
        ("emggo ECG-contaminated", "ecg", [base / "emggo" / "ECG Contaminated.mat"],
         lambda: load_emggo_ecg(base / "emggo" / "ECG Contaminated.mat"), "FA outside listed bursts, ch4-7"),
        ("byb amp_on_baseline.wav", "rest", [base / "backyardbrains_rEMG" / "amp_on_baseline.wav"],
         lambda: load_wav_rest(base / "backyardbrains_rEMG" / "amp_on_baseline.wav"), "rest only"),
    ]
    rows = []
    for name, kind, paths, loader, truth in specs:
        if only and only.lower() not in name.lower():
            continue
        rows.append(_guard(Row(name=name, kind=kind, truth=truth), paths, loader))
    return rows


def synthetic_rows(rates, snrs, seeds, only: str | None = None) -> list:
    """One row per sampling rate x SNR, with one case per seed."""
    rows = []
    for fs in rates:
        for snr in snrs:
            name = f"synthetic {fs:g} Hz {snr:g} dB"
            if only and only.lower() not in name.lower():
                continue
            cases = [synthetic_case(fs, snr, seed) for seed in seeds]
            rows.append(Row(name=name, kind="synthetic", cases=cases, snr_db=snr,
                            truth=f"exact +-{SYN_TOL_S:g}s, {len(seeds)} seed(s)"))
    return rows
