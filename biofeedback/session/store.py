"""The session folder: a crash-safe writer, a tolerant reader and a repair.

Format: ``docs/session_format.md``. In short, a folder (mode 0700) with
``session.json`` (metadata, rewritten atomically), and ``samples.csv``,
``events.csv``, ``phases.csv`` (files 0600, append-only).

Why it survives a crash
-----------------------
* Rows are only ever appended, and only whole rows are handed to the
  operating system: :class:`SessionWriter` keeps its own buffer of complete
  lines and writes it with ``os.write`` at least every ``flush_interval_s``
  (0.5 s by default, from a timer thread as well, so a stalled source does
  not hold rows back), when an event or a phase ends, and on close.
* At the end of every phase and on close the files are ``fsync``-ed, so a
  power cut loses at most the current phase's last half second.
* ``session.json`` is replaced atomically (write a temporary file, fsync,
  rename, fsync the folder): it is always either the old or the new
  version. Its ``status`` stays ``recording`` until the session is closed,
  so a crashed session is recognisable.
* A write cut short (``kill -9`` during ``os.write``, a power cut, a full
  disk) can leave one incomplete line at the end of a file (or a run of NUL
  bytes after a power cut). :func:`load_session` ignores it and says so;
  :func:`repair_session` removes it, rebuilds the rows of the phases that
  ended (or were cut) without their row, and marks the session
  ``repaired``.

Nothing here opens a network connection: sessions are health data and stay
on the machine, readable by their owner only.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biofeedback import __version__
from biofeedback.core.types import Event, Recording, StreamInfo
from biofeedback.errors import BiofeedbackError, InputFileError
from biofeedback.session.phases import Phase

__all__ = [
    "EVENT_COLUMNS", "PHASE_COLUMNS", "SessionData", "SessionStorageError", "SessionWriter",
    "load_session", "repair_session", "sessions_root", "new_session_folder",
]

FORMAT = "biofeedback-session"
VERSION = 1
SAMPLES, EVENTS, PHASES, META = "samples.csv", "events.csv", "phases.csv", "session.json"
EVENT_COLUMNS = ("channel", "kind", "onset_s", "offset_s", "duration_s", "peak", "cue", "phase", "shape",
                 "relax_delay_s", "detail")
PHASE_COLUMNS = ("index", "name", "role", "cue", "start_s", "end_s", "target_low", "target_high",
                 "start_sample", "end_sample", "repetition", "repetitions", "target", "paused_s", "completed")
STATUSES = ("recording", "complete", "stopped", "interrupted", "repaired")
_CUE_CODES = {"relax": 0, "contract": 1}
_CUE_NAMES = np.array(["relax", "contract"])
_BAD_NAME = re.compile(r'[,"#%\r\n]')


class SessionStorageError(BiofeedbackError):
    """The session folder cannot be created or written (read-only, disk full...)."""


def sessions_root() -> Path:
    """``$BIOFEEDBACK_HOME/sessions``, else ``$XDG_DATA_HOME/biofeedback/sessions``, else ``~/.local/share/...``."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return Path(home) / "sessions"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "biofeedback" / "sessions"


def new_session_folder(root, user: str, protocol: str, now: datetime | None = None) -> Path:
    """``root/user/YYYYmmdd-HHMMSS-protocol`` (with ``-2``, ``-3``... if taken); not created here."""
    now = now or datetime.now()
    base = Path(root) / user / f"{now:%Y%m%d-%H%M%S}-{protocol}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _storage_error(action: str, path, exc: OSError, kept: str = "") -> SessionStorageError:
    code = exc.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        why = "the disk is full"
    elif code == errno.EROFS:
        why = "the file system is read-only"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    else:
        why = exc.strerror or str(exc)
    return SessionStorageError(f"cannot {action} {path}: {why}{kept}")


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700 (existing parents are left alone)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace ``path`` by ``data`` as JSON so that readers see the old or the new file, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(text.encode("utf-8"))
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clean_name(name: str) -> str:
    name = _BAD_NAME.sub("_", str(name)).strip() or "ch"
    return name


def _number_text(value) -> str:
    if value is None:
        return ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "" if math.isnan(v) else repr(v)


class _AppendFile:
    """An append-only file with a buffer of whole lines written by ``os.write``."""

    def __init__(self, path: Path, header: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0),
                          0o600)
        os.fchmod(self.fd, 0o600)
        self.pending: list[bytes] = [header.encode("utf-8")]
        self.size = 0  # bytes on disk

    def add(self, text: str) -> None:
        self.pending.append(text.encode("utf-8"))

    def flush(self) -> None:
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending = []
        view = memoryview(data)
        try:
            while view:
                n = _os_write(self.fd, view)
                view = view[n:]
                self.size += n
        except OSError:
            self.pending = []  # what did not fit is lost; what is on disk stays readable
            raise

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _os_write(fd, data) -> int:
    """``os.write`` (a seam for tests that simulate a full disk)."""
    return os.write(fd, data)


class SessionWriter:
    """Write a session folder as the session runs.

    Parameters
    ----------
    folder : str or Path
        The session folder to create (must not exist, or be empty). Missing
        parents are created with mode 0700.
    info : StreamInfo
        Rate, channel names, units and source of the stream.
    meta : dict
        Further ``session.json`` fields (``user``, ``protocol``,
        ``source``, ``settings``, ``schedule``...).
    flush_interval_s : float
        Longest time a written row waits before it is handed to the
        operating system (<= 1 s).
    on_flush : callable, optional
        ``f(samples_on_disk)`` after every flush (tests, progress).

    Raises
    ------
    SessionStorageError
        The folder cannot be created (read-only file system, permission,
        full disk), with the reason in words.
    """

    def __init__(self, folder, info: StreamInfo, meta: dict | None = None, *, flush_interval_s: float = 0.5,
                 on_flush=None):
        self.folder = Path(folder)
        self.info = info
        if not 0 < flush_interval_s <= 1.0:
            raise ValueError("flush_interval_s must be in (0, 1] seconds")
        self.flush_interval_s = float(flush_interval_s)
        self.on_flush = on_flush
        self._lock = threading.RLock()
        self._error: SessionStorageError | None = None
        self.closed = False
        self.samples_written = 0  # rows given to write_samples
        self.samples_on_disk = 0  # rows handed to the operating system
        self._rows_pending = 0
        self.next_index = 0
        self.last_index = -1
        self.events_written = 0
        self.phases_written = 0
        names = tuple(_clean_name(n) for n in info.ch_names)
        if len(set(names)) != len(names):
            names = tuple(f"{n}_{i + 1}" for i, n in enumerate(names))
        self.ch_names = names
        self.meta = {
            "format": FORMAT, "version": VERSION, "software": f"biofeedback {__version__}",
            "user": "", "protocol": None, "source": {"description": info.source},
            "fs": info.fs, "ch_names": list(names), "units": info.units,
            "settings": None, "calibration": None, "references": None,
            "started_at": _now_iso(), "ended_at": None, "status": "recording",
            "flush_interval_s": self.flush_interval_s, "notes": [], "pauses": [],
        }
        self.meta.update(meta or {})
        self.meta["status"] = "recording"
        # The folder is built under a hidden name and renamed into place once
        # session.json and the three headers are on disk: a crash during the
        # creation never leaves a half-made session behind.
        building = self.folder.parent / f".{self.folder.name}.creating-{os.getpid()}"
        try:
            if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
                raise SessionStorageError(f"{self.folder} exists and is not an empty folder; choose a new --out")
            _make_private_dirs(self.folder.parent)
            if building.exists():
                shutil.rmtree(building)
            os.mkdir(building, 0o700)
            os.chmod(building, 0o700)
            header = self._samples_header()
            self._samples = _AppendFile(building / SAMPLES, header)
            self._events = _AppendFile(building / EVENTS, ",".join(EVENT_COLUMNS) + "\n")
            self._phases = _AppendFile(building / PHASES, ",".join(PHASE_COLUMNS) + "\n")
            for f in self._files:
                f.flush()
                f.sync()
            write_json_atomic(building / META, self.meta)
            os.rename(building, self.folder)  # replaces an empty folder given with --out
            for f in self._files:
                f.path = self.folder / f.path.name
            _fsync_dir(self.folder.parent)
        except OSError as exc:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
            raise _storage_error("create the session folder", self.folder, exc) from None
        n = info.n_channels
        self._fmt = "%d" + ",%.10g" * n + ",%s\n"
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._flush_loop, name="session-flush", daemon=True)
        self._timer.start()

    @property
    def _files(self):
        return (self._samples, self._events, self._phases)

    def _samples_header(self) -> str:
        info = self.info
        source = " ".join(str(info.source).split())
        lines = [
            "# biofeedback recording",
            f"# sampling_rate_hz: {info.fs!r}",
            f"# units: {info.units}",
            f"# source: {source}",
            f"# session: {self.folder.name}",
            f"# started: {self.meta['started_at']}",
            ",".join(("sample",) + self.ch_names + ("cue",)),
        ]
        return "\n".join(lines) + "\n"

    # -- writing ---------------------------------------------------------------------
    def _check(self):
        if self._error is not None:
            raise self._error
        if self.closed:
            raise SessionStorageError(f"the session {self.folder} is already closed")

    def write_samples(self, first_sample: int, data, cues) -> None:
        """Append samples ``first_sample ...`` (``data`` shape (n_channels, n)) with their cues."""
        data = np.asarray(data, dtype=np.float64)
        n = data.shape[1]
        if n == 0:
            return
        with self._lock:
            self._check()
            if first_sample < self.next_index:
                raise ValueError(f"samples must be appended in order: {first_sample} < {self.next_index}")
            cue_list = [str(c) for c in np.asarray(cues).tolist()] if cues is not None else ["relax"] * n
            fmt = self._fmt
            rows = data.T.tolist()
            if np.isnan(data).any():
                text = "".join(
                    f"{first_sample + i}," + ",".join("" if math.isnan(v) else "%.10g" % v for v in row) + f",{c}\n"
                    for i, (row, c) in enumerate(zip(rows, cue_list)))
            else:
                text = "".join([fmt % (first_sample + i, *row, c) for i, (row, c) in enumerate(zip(rows, cue_list))])
            self._samples.add(text)
            self.samples_written += n
            self._rows_pending += n
            self.next_index = first_sample + n
            self.last_index = first_sample + n - 1
            if time.monotonic() - self._last_flush >= self.flush_interval_s:
                self._flush_locked()

    def write_event(self, event: Event, phase: int | None = None) -> None:
        """Append one event (flushed at once: events are rare and precious)."""
        extra = dict(event.extra or {})
        cue = extra.pop("cue", "")
        shape = extra.pop("shape", "")
        delay = extra.pop("relax_delay_s", None)
        extra.pop("phase", None)
        detail = json.dumps(extra, sort_keys=True, default=_json_default) if extra else ""
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([
            event.channel, event.kind, repr(float(event.onset_s)), repr(float(event.offset_s)),
            repr(round(float(event.duration_s), 9)), _number_text(event.peak), cue, "" if phase is None else int(phase),
            shape, _number_text(delay), detail])
        with self._lock:
            self._check()
            self._events.add(buf.getvalue())
            self.events_written += 1
            self._flush_locked()

    def write_phase(self, phase: Phase) -> None:
        """Append a finished phase, then flush and fsync every file."""
        row = phase.as_row()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_phase_cell(row.get(k)) for k in PHASE_COLUMNS])
        with self._lock:
            self._check()
            self._phases.add(buf.getvalue())
            self.phases_written += 1
            self._flush_locked(sync=True)

    def add_note(self, text: str) -> None:
        """Add a note to ``session.json`` (rewritten atomically)."""
        with self._lock:
            self.meta["notes"].append(str(text))
            self._save_meta()

    def update_meta(self, **fields) -> None:
        """Set ``session.json`` fields (e.g. ``calibration``, ``references``, ``pauses``)."""
        with self._lock:
            self.meta.update(fields)
            self._save_meta()

    def _save_meta(self) -> None:
        if self._error is not None:
            return  # a full disk: the previous session.json stays as it was
        try:
            write_json_atomic(self.folder / META, self.meta)
        except OSError as exc:
            self._fail("update", self.folder / META, exc)

    def flush(self, sync: bool = False) -> None:
        """Hand every buffered row to the operating system (and fsync with ``sync``)."""
        with self._lock:
            if self._error is None and not self.closed:
                self._flush_locked(sync=sync)

    def _flush_locked(self, sync: bool = False) -> None:
        current = self.folder
        try:
            for f in self._files:
                current = f.path
                f.flush()
            if sync:
                for f in self._files:
                    current = f.path
                    f.sync()
        except OSError as exc:
            self._fail("write", current, exc)
        self.samples_on_disk += self._rows_pending
        self._rows_pending = 0
        self._last_flush = time.monotonic()
        if self.on_flush is not None:
            self.on_flush(self.samples_on_disk)

    def _fail(self, action, path, exc: OSError):
        kept = (f"; the session is kept up to {self.samples_on_disk / self.info.fs:.1f} s in {self.folder} "
                f"(run `biofeedback repair {self.folder}` once there is room)")
        self._error = _storage_error(action, path, exc, kept)
        self._rows_pending = 0
        raise self._error

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s / 2):
            with self._lock:
                if self.closed or self._error is not None:
                    return
                if time.monotonic() - self._last_flush >= self.flush_interval_s and \
                        (self._rows_pending or any(f.pending for f in self._files)):
                    try:
                        self._flush_locked()
                    except SessionStorageError:
                        return  # raised again by the next write

    @property
    def failed(self) -> SessionStorageError | None:
        """The storage error that stopped the writer, if any."""
        return self._error

    def close(self, status: str = "complete", note: str | None = None) -> None:
        """Flush, fsync, set the final status and close (safe to call twice).

        Parameters
        ----------
        status : {"complete", "stopped", "interrupted"}
        note : str, optional
            Added to the notes.
        """
        if status not in STATUSES:
            raise ValueError(f"status: one of {STATUSES}")
        with self._lock:
            if self.closed:
                return
            self._stop.set()
            error = self._error
            if error is None:
                try:
                    self._flush_locked(sync=True)
                except SessionStorageError as exc:
                    error = exc
            if error is not None and status == "complete":
                status = "interrupted"
            if note:
                self.meta["notes"].append(note)
            if error is not None:
                self.meta["notes"].append(f"storage error: {error}")
            self.meta.update(status=status, ended_at=_now_iso(), n_samples=self.samples_on_disk)
            self.closed = True
            for f in self._files:
                f.close()
            try:
                write_json_atomic(self.folder / META, self.meta)
            except OSError:
                pass  # the old session.json (status recording) stays; repair fixes it
        if self._timer is not threading.current_thread():
            self._timer.join(timeout=2.0)
        if error is not None:
            raise error


def _phase_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


# ---------------------------------------------------------------------------
# reading


@dataclass
class SessionData:
    """A session folder read back.

    Attributes
    ----------
    path : Path
    meta : dict
        ``session.json``.
    recording : Recording
        Column ``k`` is stream sample ``k``; samples missing from the file
        (device gaps, a disconnect) hold the previous value and are False in
        :attr:`present`; ``cues`` is the cue track; ``events`` holds the
        ``gap`` spans.
    events : list of Event
        Events in ``events.csv`` (``extra`` has ``cue``, ``phase``,
        ``shape``, ``relax_delay_s`` when set, and the ``detail`` fields).
    phases : list of Phase
    present : ndarray of bool
        True where the file has a sample.
    warnings : list of str
        What was wrong and worked around (a cut last line, a session not
        closed). The session's own notes are in ``meta["notes"]``.
    """

    path: Path
    meta: dict
    recording: Recording
    events: list
    phases: list
    present: np.ndarray = field(repr=False, default=None)
    warnings: list = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.meta.get("status", ""))

    @property
    def fs(self) -> float:
        return self.recording.info.fs

    @property
    def n_samples(self) -> int:
        """Samples actually recorded (rows of ``samples.csv``)."""
        return int(self.present.sum()) if self.present is not None else self.recording.n_samples


def _split_complete(raw: bytes) -> tuple[bytes, bytes]:
    """``(complete lines, cut tail)``: the tail is what follows the last newline, plus trailing NUL bytes."""
    stripped = raw.rstrip(b"\x00")
    cut = len(raw) - len(stripped)
    end = stripped.rfind(b"\n") + 1
    return stripped[:end], raw[end:] if cut or end < len(stripped) else b""


def _read_meta(folder: Path) -> dict:
    path = folder / META
    if not path.is_file():
        raise InputFileError(str(folder), f"not a session folder (no {META})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(str(path), f"cannot read the session metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputFileError(str(path), f"expected a {FORMAT} metadata file")
    if int(meta.get("version", 0)) > VERSION:
        raise InputFileError(str(path), f"written by a newer version (format {meta.get('version')}); "
                                        "update biofeedback")
    return meta


def _parse_samples(path: Path, n_channels: int, repair: bool = False):
    """Rows of samples.csv: ``(index, data (C, n), cue codes, header info, problems, keep_bytes, bad_lines)``."""
    raw = path.read_bytes()
    body_start = 0
    header_lines = 0
    comments = {}
    pos = 0
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0:
            raise InputFileError(str(path), "the header is incomplete (the session ended before it was written)")
        line = raw[pos:nl].decode("utf-8", "replace").rstrip("\r")
        header_lines += 1
        pos = nl + 1
        if line.startswith("#"):
            if ":" in line:
                key, _, value = line[1:].partition(":")
                comments[key.strip()] = value.strip()
            continue
        columns = line.split(",")
        body_start = pos
        break
    if columns[0] != "sample" or columns[-1] != "cue" or len(columns) != n_channels + 2:
        raise InputFileError(str(path), f"expected the header sample,<{n_channels} channels>,cue, found {line!r}",
                             line=header_lines)
    complete, tail = _split_complete(raw[body_start:])
    problems = []
    if tail:
        problems.append(f"{path.name}: ignored an incomplete last line ({len(tail)} bytes, a write cut by a crash)")
    width = n_channels + 2
    text = complete.replace(b",relax\n", b",0\n").replace(b",contract\n", b",1\n")
    values = None
    n_lines = complete.count(b"\n")
    if n_lines:
        try:
            values = np.fromstring(text.replace(b"\n", b",").decode("ascii"), sep=",")  # noqa: NPY201
        except (ValueError, UnicodeDecodeError):
            values = None
        if values is not None and values.size != n_lines * width:
            values = None
    bad_lines = []
    if values is None and n_lines:
        values, bad_lines = _parse_samples_slow(complete, width, header_lines, path, repair)
        n_lines = values.size // width
    elif not n_lines:
        values = np.zeros(0)
    table = values.reshape(n_lines, width) if n_lines else np.zeros((0, width))
    index = table[:, 0]
    codes = table[:, -1]
    ok_index = np.all(index == np.round(index)) and np.all(index >= 0)
    ok_cues = np.all((codes == 0) | (codes == 1))
    steps = np.diff(index)
    if not (ok_index and ok_cues and np.all(steps > 0)):
        if repair:
            values, more_bad = _parse_samples_slow(complete, width, header_lines, path, True)
            bad_lines += more_bad
            table = values.reshape(-1, width)
            index, codes = table[:, 0], table[:, -1]
        else:
            k = int(np.flatnonzero(~(np.concatenate(([True], steps > 0))))[0]) if not np.all(steps > 0) else 0
            raise InputFileError(str(path), "corrupted rows (sample indices out of order or bad cue values); "
                                            "run `biofeedback repair` on the session", line=header_lines + k + 1)
    data = table[:, 1:-1].T.copy()
    return index.astype(np.int64), data, codes.astype(np.int8), comments, problems, body_start + len(complete), \
        bad_lines


def _parse_samples_slow(complete: bytes, width: int, header_lines: int, path: Path, repair: bool):
    """Line-by-line parse: NaN for empty cells; a bad row is an error (or dropped when repairing)."""
    rows = []
    bad = []
    last = -1
    for k, line in enumerate(complete.decode("utf-8", "replace").split("\n")[:-1]):
        fields = line.rstrip("\r").split(",")
        try:
            if len(fields) != width:
                raise ValueError(f"{len(fields)} fields instead of {width}")
            index = int(fields[0])
            cue = _CUE_CODES[fields[-1]]
            vals = [float(x) if x != "" else math.nan for x in fields[1:-1]]
            if index <= last:
                raise ValueError(f"sample index {index} after {last}")
        except (ValueError, KeyError) as exc:
            if repair:
                bad.append(header_lines + k + 1)
                continue
            raise InputFileError(str(path), f"corrupted row ({exc}); run `biofeedback repair` on the session",
                                 line=header_lines + k + 1) from None
        last = index
        rows.append([index, *vals, cue])
    return np.array(rows, dtype=float).reshape(-1), bad


def _read_rows(path: Path, columns) -> tuple[list[dict], list[str], int]:
    """CSV rows as dicts (header checked); a cut last line is ignored. Returns rows, problems, bytes kept."""
    problems = []
    if not path.is_file():
        return [], [f"{path.name} is missing"], 0
    raw = path.read_bytes()
    complete, tail = _split_complete(raw)
    if tail:
        problems.append(f"{path.name}: ignored an incomplete last line ({len(tail)} bytes, a write cut by a crash)")
    reader = csv.reader(io.StringIO(complete.decode("utf-8", "replace")))
    header = next(reader, None)
    if header is None:
        return [], problems, len(complete)
    if tuple(header[:len(columns)]) != tuple(columns[:len(header)]) or len(header) < 4:
        raise InputFileError(str(path), f"expected the header {','.join(columns)}", line=1)
    rows = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise InputFileError(str(path), f"corrupted row: {len(row)} fields instead of {len(header)}",
                                 line=reader.line_num)
        rows.append(dict(zip(header, row)))
    return rows, problems, len(complete)


def _float(text, default=math.nan) -> float:
    try:
        return float(text) if text not in ("", None) else default
    except ValueError:
        return default


def _event_from_row(row: dict, path: Path) -> Event:
    extra = {}
    if row.get("detail"):
        try:
            extra.update(json.loads(row["detail"]))
        except json.JSONDecodeError:
            extra["detail"] = row["detail"]
    for key in ("cue", "shape"):
        if row.get(key):
            extra[key] = row[key]
    if row.get("phase", "") != "":
        extra["phase"] = int(row["phase"])
    if row.get("relax_delay_s", "") != "":
        extra["relax_delay_s"] = _float(row["relax_delay_s"])
    onset, offset = _float(row["onset_s"]), _float(row["offset_s"])
    if not (math.isfinite(onset) and math.isfinite(offset)) or offset < onset:
        raise InputFileError(str(path), f"bad event times {row['onset_s']!r}..{row['offset_s']!r}")
    return Event(row["kind"], row["channel"], onset, offset, _float(row.get("peak")), extra)


def _phase_from_row(row: dict) -> Phase:
    def opt(key):
        v = _float(row.get(key))
        return None if math.isnan(v) else v

    extra = {}
    for key in ("start_sample", "end_sample", "repetition", "repetitions"):
        if row.get(key, "") != "":
            extra[key] = int(float(row[key]))
    extra["target"] = row.get("target", "")
    extra["paused_s"] = _float(row.get("paused_s"), 0.0)
    extra["completed"] = row.get("completed", "1") not in ("0", "False", "false")
    return Phase(index=int(row["index"]), name=row["name"], role=row["role"], cue=row["cue"],
                 start_s=float(row["start_s"]), end_s=float(row["end_s"]), target_low=opt("target_low"),
                 target_high=opt("target_high"), extra=extra)


def _open_folder(path):
    """The session folder (a file inside it names its folder) and its metadata."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise InputFileError(str(folder), "session folder not found")
    return folder, _read_meta(folder)


def load_session(path) -> SessionData:
    """Read a session folder (complete, stopped, or cut short by a crash).

    Parameters
    ----------
    path : str or Path
        The session folder (or any file in it).

    Returns
    -------
    SessionData

    Raises
    ------
    InputFileError
        Not a session folder; a corrupted row in the middle of a file (not a
        cut last line: that one is ignored and named in ``warnings``).
    """
    folder, meta = _open_folder(path)
    fs = float(meta["fs"])
    ch_names = tuple(meta["ch_names"])
    samples_path = folder / SAMPLES
    if not samples_path.is_file():
        raise InputFileError(str(folder), f"not a session folder (no {SAMPLES})")
    index, data, codes, _, problems, _, _ = _parse_samples(samples_path, len(ch_names))
    recording, present = _assemble(index, data, codes, fs, ch_names, meta, samples_path)
    rows, more, _ = _read_rows(folder / EVENTS, EVENT_COLUMNS)
    problems += more
    events = [_event_from_row(r, folder / EVENTS) for r in rows]
    rows, more, _ = _read_rows(folder / PHASES, PHASE_COLUMNS)
    problems += more
    phases = [_phase_from_row(r) for r in rows]
    if meta.get("status") == "recording":
        problems.append("the session was not closed (the program ended without closing it); "
                        f"run `biofeedback repair {folder}` to close it")
    return SessionData(folder, meta, recording, events, phases, present, problems)


def _assemble(index, data, codes, fs, ch_names, meta, samples_path):
    n_ch = len(ch_names)
    info = StreamInfo(fs=fs, ch_names=ch_names, units=str(meta.get("units", "uV")), source=str(samples_path),
                      extra={"session": str(samples_path.parent), "status": meta.get("status")})
    if index.size == 0:
        return Recording(np.zeros((n_ch, 0)), info, np.empty(0, dtype="<U8")), np.zeros(0, dtype=bool)
    total = int(index[-1]) + 1
    if total == index.size:
        present = np.ones(total, dtype=bool)
        full = data
        cue_codes = codes
    else:
        present = np.zeros(total, dtype=bool)
        present[index] = True
        # Hold the previous sample in gaps (filters see a flat stretch, not NaN).
        pos = np.cumsum(present) - 1
        full = data[:, np.maximum(pos, 0)]
        if index[0] > 0:
            full[:, :index[0]] = data[:, :1]
        cue_codes = np.zeros(total, dtype=np.int8)
        cue_codes[index] = codes
    nan = np.isnan(full)
    if nan.any():
        from biofeedback.live.worker import fill_missing

        full = fill_missing(full, np.nan_to_num(full[:, 0]).copy())
        present &= ~nan.all(axis=0)
    cues = _CUE_NAMES[cue_codes]
    gaps = []
    if not present.all():
        edges = np.diff(np.concatenate(([0], (~present).astype(np.int8), [0])))
        name = ",".join(ch_names)
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            gaps.append(Event("gap", name, a / fs, b / fs, math.nan, {"n_samples": int(b - a)}))
    return Recording(full, info, cues, tuple(gaps)), present


# ---------------------------------------------------------------------------
# repair


def repair_session(path) -> tuple[SessionData, list[str]]:
    """Close a session cut short by a crash, a power cut or a full disk.

    * drops an incomplete last line (and corrupted rows) of each CSV file;
    * writes the rows of the phases that ended without their row, and of the
      phase that was running, cut at the last sample (``completed`` 0);
    * sets ``status`` to ``repaired`` (for a session still marked
      ``recording``) and adds a note saying what was done.

    A session that needs nothing is left untouched.

    Returns
    -------
    SessionData
        The session as read after the repair.
    list of str
        What was done (empty when nothing was needed).
    """
    folder, meta = _open_folder(path)
    fs = float(meta["fs"])
    n_ch = len(meta["ch_names"])
    actions = []
    samples_path = folder / SAMPLES
    index, data, codes, _, _, keep, bad = _parse_samples(samples_path, n_ch, repair=True)
    try:
        size = samples_path.stat().st_size
        if bad:
            _rewrite_without(samples_path, bad)
            actions.append(f"dropped {len(bad)} corrupted row(s) of {SAMPLES} (lines {_lines_text(bad)})")
            size = samples_path.stat().st_size
            index, data, codes, _, _, keep, _ = _parse_samples(samples_path, n_ch, repair=True)
        if keep < size:
            os.truncate(samples_path, keep)
            actions.append(f"dropped an incomplete last line of {SAMPLES} ({size - keep} bytes)")
        for name, columns in ((EVENTS, EVENT_COLUMNS), (PHASES, PHASE_COLUMNS)):
            p = folder / name
            if not p.is_file():
                _create_with_header(p, columns)
                actions.append(f"created the missing {name}")
                continue
            raw = p.read_bytes()
            complete, tail = _split_complete(raw)
            if tail:
                os.truncate(p, len(complete))
                actions.append(f"dropped an incomplete last line of {name} ({len(tail)} bytes)")
        last = int(index[-1]) + 1 if index.size else 0
        rows, _, _ = _read_rows(folder / PHASES, PHASE_COLUMNS)
        written = {int(r["index"]) for r in rows}
        new_rows = _missing_phases(meta, fs, last, written)
        if new_rows:
            with open(folder / PHASES, "a", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                for ph in new_rows:
                    row = ph.as_row()
                    w.writerow([_phase_cell(row.get(k)) for k in PHASE_COLUMNS])
                fh.flush()
                os.fsync(fh.fileno())
            cut = [p for p in new_rows if not p.extra.get("completed", True)]
            done = [p for p in new_rows if p.extra.get("completed", True)]
            if done:
                actions.append(f"wrote the rows of {len(done)} phase(s) that had ended")
            for p in cut:
                actions.append(f"closed the interrupted phase '{p.name}' at {p.end_s:.3f} s")
        if meta.get("status") == "recording":
            meta["status"] = "repaired"
            meta["ended_at"] = datetime.fromtimestamp(samples_path.stat().st_mtime, timezone.utc).isoformat(
                timespec="seconds")
            actions.append(f"the session ends at {last / fs:.3f} s ({index.size} samples)")
        if actions:
            meta["n_samples"] = int(index.size)
            meta.setdefault("notes", []).append(f"repaired {_now_iso()}: " + "; ".join(actions))
            write_json_atomic(folder / META, meta)
    except OSError as exc:
        raise _storage_error("repair", folder, exc) from None
    return load_session(folder), actions


def _lines_text(lines) -> str:
    text = ", ".join(str(n) for n in lines[:5])
    return text + (", ..." if len(lines) > 5 else "")


def _rewrite_without(path: Path, bad_lines) -> None:
    bad = set(bad_lines)
    raw = path.read_bytes()
    complete, _ = _split_complete(raw)
    lines = complete.split(b"\n")[:-1]
    kept = b"".join(line + b"\n" for k, line in enumerate(lines, start=1) if k not in bad)
    tmp = path.with_name(f".{path.name}.repair")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(kept)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _create_with_header(path: Path, columns) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (",".join(columns) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing_phases(meta: dict, fs: float, last: int, written: set) -> list[Phase]:
    """Phase rows to add: ended phases without a row, and the phase running at ``last`` (cut there)."""
    proto = meta.get("protocol")
    if not proto or not proto.get("phases") or meta.get("status") not in ("recording", "repaired"):
        return []
    from biofeedback.session.protocol import Protocol
    from biofeedback.session.runner import ProtocolRunner

    protocol = Protocol.from_dict(proto)
    refs = meta.get("references") or {}
    runner = ProtocolRunner(protocol, fs, rest_level=refs.get("rest_level"), mvc=refs.get("mvc"),
                            start_sample=int(meta.get("start_sample", 0)))
    pauses = []
    for p in meta.get("pauses") or []:
        p = dict(p)
        if p.get("stop_sample") is None:  # paused when it ended: the protocol never went on
            p["stop_sample"] = max(int(p["start_sample"]), last)
        pauses.append(p)
    runner.restore_pauses(pauses)
    out = []
    for ph in runner.pop_finished(last):
        if ph.index not in written:
            out.append(ph)
    cut = runner.cut_phase(last)
    if cut is not None and cut.index not in written:
        out.append(cut)
    return out
