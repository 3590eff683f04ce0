"""Export a session to EDF+ (European Data Format) with annotations.

EDF+ is read by most EEG/EMG software (EDFbrowser, MNE, Persyst...). The
samples become one signal per channel (16-bit, physical range from the
data); the phases, the cue changes, the events and the protocol pauses
become EDF+ annotations. The header is anonymous (patient "X"): the file
is written on this machine only, readable by its owner (mode 0600).

Uses the optional package ``edfio`` (``pip install 'biofeedback[formats]'``),
imported only when an export is asked for.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import numpy as np

from biofeedback.errors import BiofeedbackError, ParameterError

#: Data-record durations tried, in seconds: the first that holds a whole number of samples is used.
RECORD_DURATIONS_S = (1, 2, 4, 5, 10, 20, 25, 50, 100)


def _edfio():
    try:
        import edfio
    except ImportError:
        raise BiofeedbackError("EDF export needs the optional package edfio: "
                               "pip install 'biofeedback[formats]' (or pip install edfio)") from None
    return edfio


def record_duration(fs: float) -> float:
    """Shortest data-record duration (s) holding a whole number of samples at ``fs``."""
    for d in RECORD_DURATIONS_S:
        n = fs * d
        if abs(n - round(n)) < 1e-6 * max(1.0, n):
            return float(d)
    raise ParameterError("sampling rate", "a rate with a whole number of samples in 1-100 s for EDF "
                         "(e.g. 250 or 1000 Hz)", fs)


def _ascii(text: str) -> str:
    return str(text).encode("ascii", "replace").decode("ascii")


def session_annotations(session) -> list[tuple[float, float | None, str]]:
    """``(onset_s, duration_s, text)`` for phases, cue changes, events and pauses, sorted by onset."""
    out = []
    for ph in session.phases:
        state = "" if ph.extra.get("completed", True) else ", cut short"
        out.append((ph.start_s, ph.duration_s, f"phase {ph.index + 1}: {ph.name} ({ph.role}, {ph.cue}{state})"))
    cues = session.recording.cues
    fs = session.recording.info.fs
    if cues is not None and cues.size:
        change = np.flatnonzero(cues[1:] != cues[:-1]) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [cues.size]))
        for a, b in zip(starts, stops):
            out.append((a / fs, (b - a) / fs, f"cue {cues[a]}"))
    for e in session.events:
        text = f"{e.kind} {e.channel}".strip()
        cue = (e.extra or {}).get("cue")
        if cue:
            text += f" (cue {cue})"
        out.append((e.onset_s, e.duration_s if e.duration_s > 0 else None, text))
    for p in session.meta.get("pauses") or []:
        start = int(p["start_sample"])
        stop = p.get("stop_sample")
        out.append((start / fs, None if stop is None else (int(stop) - start) / fs,
                    f"protocol paused: {p.get('reason', '')}".strip()))
    out.sort(key=lambda a: a[0])
    return out


def export_edf(session, out, *, overwrite: bool = False) -> Path:
    """Write ``session`` (a :class:`~biofeedback.session.store.SessionData` or a folder) as EDF+.

    Samples missing from the recording (gaps) hold the previous value and
    are annotated as gaps; the last data record is padded with the last
    sample (an annotation marks the end of the recording).

    Returns
    -------
    Path
        The file written.
    """
    from biofeedback.session.store import SessionData, load_session

    edfio = _edfio()
    if not isinstance(session, SessionData):
        session = load_session(session)
    out = Path(out)
    if out.exists() and not overwrite:
        raise ParameterError("--edf", "a new file (or --overwrite)", f"{out} exists")
    if not out.parent.is_dir():
        raise ParameterError("--edf", "a file in an existing folder", str(out))
    rec = session.recording
    fs = rec.info.fs
    if rec.n_samples == 0:
        raise BiofeedbackError(f"{session.path}: the session has no samples to export")
    duration = record_duration(fs)
    per_record = int(round(fs * duration))
    n = rec.n_samples
    total = int(math.ceil(n / per_record)) * per_record
    data = np.asarray(rec.data, dtype=float)
    if total > n:
        data = np.concatenate([data, np.repeat(data[:, -1:], total - n, axis=1)], axis=1)
    units = {"uv": "uV", "µv": "uV"}.get(rec.info.units.lower(), rec.info.units)
    signals = []
    for ch, name in enumerate(rec.info.ch_names):
        x = data[ch]
        low, high = float(np.min(x)), float(np.max(x))
        if not high > low:
            low, high = low - 1.0, high + 1.0
        signals.append(edfio.EdfSignal(x, fs, label=_ascii(name)[:16], physical_dimension=_ascii(units)[:8],
                                       physical_range=(low, high), prefiltering="none (raw)"))
    annotations = [edfio.EdfAnnotation(max(0.0, onset), dur, _ascii(text))
                   for onset, dur, text in session_annotations(session)]
    if total > n:
        annotations.append(edfio.EdfAnnotation(n / fs, None, "end of recording (padding follows)"))
    started = session.meta.get("started_at")
    start = None
    try:
        start = datetime.fromisoformat(started) if started else None
    except ValueError:
        start = None
    protocol = (session.meta.get("protocol") or {}).get("name", "")
    recording = edfio.Recording(startdate=start.date() if start else None,
                                additional=(_ascii(f"biofeedback-session-{protocol}")[:40].replace(" ", "_"),))
    edf = edfio.Edf(signals, patient=edfio.Patient(), recording=recording,
                    starttime=start.time().replace(microsecond=0, tzinfo=None) if start else None,
                    data_record_duration=duration, annotations=annotations)
    payload = edf.to_bytes()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    tmp = out.with_name(f".{out.name}.tmp")
    fd = os.open(tmp, flags | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, out)
    return out
