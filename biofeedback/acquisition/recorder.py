"""Crash-safe recording of raw samples: an append-only CSV and an events CSV.

Data file (read by :mod:`biofeedback.io.csv_io`)::

    # biofeedback recording
    # sampling_rate_hz: 250
    # units: counts
    # source: /dev/ttyACM0 (bridge)
    # protocol: bridge
    # fs_origin: device
    # started: 2026-01-01T10:00:00+00:00
    sample,ch1,ch2
    0,512,498
    1,515,501
    4,509,497          <- samples 2 and 3 were lost (see the events file)

``sample`` is the absolute sample index, so a gap is a jump. Rows are only
ever appended; each chunk is handed to the operating system as it is written
(at least once a second with a non-zero ``flush_interval_s``) and the files
are synced to disk on close, so a crash of the program loses nothing already
received, and an error or Ctrl-C never loses what was written.

Events file ``<stem>.events.csv`` (one row per gap, disconnect, reconnect,
overrun; ``channel`` is empty for stream-wide events)::

    file,channel,kind,onset_s,offset_s,duration_s,peak,n_samples
    rec.csv,,gap,0.008000,0.016000,0.008000,,2
"""

from __future__ import annotations

import csv
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biofeedback.errors import BiofeedbackError

EVENT_COLUMNS = ("file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak", "n_samples")


def events_path_for(path) -> Path:
    """``rec.csv`` -> ``rec.events.csv``."""
    path = Path(path)
    return path.with_name(path.stem + ".events.csv")


class RecordingWriter:
    """Write chunks of a stream to a CSV file as they arrive.

    Parameters
    ----------
    path : str or Path
        Data file to create.
    info : StreamInfo
        Stream metadata (rate, channel names, units, source).
    overwrite : bool
        Replace an existing file (default: refuse, so no recording is lost
        by a typo).
    flush_interval_s : float
        Longest time rows may wait in Python's buffer, in seconds. The
        default 0 hands every chunk to the operating system at once (one
        system call per read of the port: cheap at device rates), so a
        killed process loses nothing already received.
    comments : mapping, optional
        Further ``# key: value`` header lines.
    """

    def __init__(self, path, info, *, overwrite: bool = False, flush_interval_s: float = 0.0, comments=None):
        self.path = Path(path)
        self.events_path = events_path_for(self.path)
        self.info = info
        self.flush_interval_s = float(flush_interval_s)
        for target in (self.path, self.events_path):
            if target.exists() and not overwrite:
                raise BiofeedbackError(f"{target} exists; choose another --out or pass --overwrite")
        if self.path.parent and not self.path.parent.exists():
            raise BiofeedbackError(f"folder {self.path.parent} does not exist")
        try:
            self._data = open(self.path, "w", encoding="utf-8", newline="")
            self._events = open(self.events_path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise BiofeedbackError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        self._events_csv = csv.writer(self._events, lineterminator="\n")
        self.samples_written = 0
        self.next_index = 0
        self.events_written = 0
        self._last_flush = time.monotonic()
        self._fmt = "%d" + ",%.10g" * info.n_channels + "\n"
        self._write_header(comments or {})

    def _write_header(self, comments):
        info = self.info
        lines = [
            "# biofeedback recording",
            f"# sampling_rate_hz: {info.fs:.10g}",
            f"# units: {info.units}",
            f"# source: {info.source}",
        ]
        for key, value in comments.items():
            if value not in (None, ""):
                lines.append(f"# {key}: {' '.join(str(value).split())}")
        lines.append(f"# started: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        lines.append(",".join(("sample",) + tuple(info.ch_names)))
        self._data.write("\n".join(lines) + "\n")
        self._events_csv.writerow(EVENT_COLUMNS)
        self._sync()

    def write_chunk(self, chunk, stop_index: int | None = None) -> int:
        """Append a chunk's samples (and its events).

        Parameters
        ----------
        chunk : Chunk
            Samples with their absolute ``first_sample``.
        stop_index : int, optional
            Do not write samples at or after this index (end of a timed
            recording).

        Returns
        -------
        int
            Samples written.
        """
        for event in chunk.events:
            if stop_index is None or event.onset_s * self.info.fs < stop_index:
                self.write_event(event)
        n = chunk.n_samples
        if stop_index is not None:
            n = max(0, min(n, stop_index - chunk.first_sample))
        if n:
            index = chunk.first_sample + np.arange(n)
            data = np.asarray(chunk.data[:, :n], dtype=np.float64)
            rows = np.column_stack((index.astype(np.float64), data.T))
            # One format string applied row by row in C is fast enough for
            # any device rate (tens of thousands of rows per second).
            fmt = self._fmt
            self._data.write("".join(fmt % tuple(row) for row in rows))
            self.samples_written += n
            self.next_index = int(index[-1]) + 1
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()
        return n

    def write_event(self, event) -> None:
        """Append one event row (flushed at once: events are rare and precious)."""
        n_samples = event.extra.get("n_samples") if event.extra else None
        peak = "" if event.peak is None or (isinstance(event.peak, float) and math.isnan(event.peak)) else event.peak
        self._events_csv.writerow(
            (
                self.path.name,
                event.channel or "",
                event.kind,
                f"{event.onset_s:.6f}",
                f"{event.offset_s:.6f}",
                f"{event.duration_s:.6f}",
                peak,
                "" if n_samples is None else int(n_samples),
            )
        )
        self.events_written += 1
        self._events.flush()

    def flush(self) -> None:
        """Hand written rows to the operating system."""
        self._data.flush()
        self._events.flush()
        self._last_flush = time.monotonic()

    def _sync(self):
        self.flush()
        for handle in (self._data, self._events):
            try:
                os.fsync(handle.fileno())
            except OSError:
                pass

    def close(self) -> None:
        """Flush, sync to disk and close (safe to call twice)."""
        if self._data.closed:
            return
        try:
            self._sync()
        finally:
            self._data.close()
            self._events.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
