"""Batch analysis of many recordings: discovery, per-file work, parallel engines, tables.

One top-level function, :func:`analyze_one`, does all the work for one file
(read in chunks with :func:`~biofeedback.io.readers.iter_recording`, analyse
with :func:`~biofeedback.analysis.batch.analyze_stream`, build the table rows
and the report plot). The three engines only decide where it runs:

* ``serial``: in this process, one file after the other (``--jobs 1``);
* ``processes``: a :class:`concurrent.futures.ProcessPoolExecutor` with
  ``--jobs N`` worker processes;
* ``dask``: the workers of a Dask distributed cluster (``--engine dask
  --scheduler ADDRESS``; without an address, a local cluster of ``--jobs``
  single-threaded worker processes is started and stopped).

Results come back in the order the files were found, whatever order they
finish in, so the tables are byte-for-byte the same for every engine and job
count. A file that fails becomes an error row; the others go on.

Running on a real cluster
-------------------------
1. Install the same biofeedback version with the extras on the machine that
   runs ``analyze`` and on every worker: ``pip install
   'biofeedback[cluster,formats]'`` (``analyze`` checks the workers' version
   and refuses to mix versions, whose numbers could differ).
2. Start a scheduler and workers, e.g. ``dask scheduler`` on one host and
   ``dask worker tcp://SCHEDULER:8786 --nthreads 1 --nworkers N`` on the
   others (one thread per worker process: the analysis is NumPy-bound and
   holds the GIL between calls), or through dask-jobqueue/dask-kubernetes.
3. Put the recordings where every worker sees them at the same absolute
   path (a shared or network file system): workers open the files
   themselves; only the results travel back. Relative paths are made
   absolute on the submitting machine.
4. ``biofeedback analyze /shared/study --engine dask --scheduler
   tcp://SCHEDULER:8786 --out results/``. The tables and report are written
   by the submitting machine. Same-version workers on the same kind of CPU
   give the same bytes as a local run; another NumPy/SciPy build may differ
   in the last digits.

Memory: a file is streamed in chunks of 16 384 samples (longer for fewer than 8
channels, the same size in memory, see :func:`chunk_samples_for`); the envelope kept
between the two analysis passes spills to disk (see
:class:`~biofeedback.analysis.store.ChunkStore`); a worker sends back only
table rows, one spectrum per channel and a small plot, so a worker's memory
does not grow with the recording's length. On glibc, ``analyze`` lets its
processes keep their chunk-sized blocks for reuse instead of handing them
back and faulting them in again (:func:`tune_allocator`; set one of the
``MALLOC_*`` variables to choose otherwise).

Median frequency
----------------
``median_freq_hz`` in ``summary.csv`` is the frequency that splits the
power of the whole recording, between the band-pass edges, into two equal
halves. The spectrum is a Welch average of Blackman-Harris-windowed,
mean-removed, non-overlapping segments of ``2**ceil(log2(fs))`` samples
(about 1 s, bins of about 1 Hz) of the raw signal; bins within ``max(3 Hz,
four bins)`` of the notched mains frequency and its harmonics are left out,
and the crossing is interpolated linearly within its bin. Restricting the raw spectrum to the
pass band and leaving out the notched lines is what the filter does to the
power, apart from the filter's roll-off at the edges. The whole recording
is used (rest and activity alike); compare files of the same protocol.

The report plots the envelope the detector used, against its thresholds:
the largest value of each 0.25 s block, kept while the file is analysed
(:meth:`~biofeedback.analysis.batch.AnalysisResult.display_envelope`).
"""

from __future__ import annotations

import glob
import math
import os
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from biofeedback.core.types import Chunk
from biofeedback.errors import BiofeedbackError, ParameterError

#: Samples per chunk read from a file. 16 Ki samples (1 MiB for 8 channels) keeps the per-chunk
#: temporaries of the analysis small: with 64 Ki chunks an hour of 8 channels at 2 kHz peaked at about
#: 400 MB resident, with 16 Ki at about 290 MB, in the same time. Every engine uses the same chunks, so
#: results do not depend on how the files are run.
CHUNK_SAMPLES = 16384
#: Values (samples x channels) per chunk handed to the analysis: ``CHUNK_SAMPLES`` of 8 channels. Files
#: with fewer channels get longer chunks of the same size in memory (see :func:`chunk_samples_for`).
CHUNK_VALUES = 8 * CHUNK_SAMPLES


def chunk_samples_for(n_channels: int) -> int:
    """Samples per chunk analysed for a file of ``n_channels`` channels.

    ``CHUNK_VALUES // n_channels``, at least ``CHUNK_SAMPLES``: 128 Ki
    samples for one channel, 16 Ki from 8 channels on. Each chunk costs a
    fixed amount of Python work in every stage (filters, heartbeat and
    quality checks, detector), which a chunk of one channel does not
    amortise: 1 channel at 1 kHz, 10 min, went from about 0.13 s to 0.11 s
    of processing with 64-128 Ki chunks, 2 channels at 2 kHz from 0.44 s to
    0.37 s with 64 Ki. Many channels keep 16 Ki chunks, whose temporaries
    set the peak memory (see ``CHUNK_SAMPLES``). The decisions do not
    depend on the chunking; envelope values may differ in the last digits
    (the moving RMS sums a block of a chunk at a time).
    """
    return max(CHUNK_SAMPLES, CHUNK_VALUES // max(1, int(n_channels)))

#: Files with at least this many channels are read one or two chunks ahead
#: in a thread (:func:`~biofeedback.io.prefetch.prefetch`) while the previous
#: chunk is analysed: parsing and filtering release the GIL in their numpy and
#: scipy loops, so they overlap on a second core (8 channels at 2 kHz, 10 min:
#: 2.6-3.3 s -> 2.2-2.4 s). A chunk of one channel is about a millisecond of
#: work, less than handing it between threads costs (1 channel at 1 kHz:
#: 0.27 s -> 0.32-0.40 s), so small files are read in line.
PREFETCH_MIN_CHANNELS = 4
#: Points per channel kept for the report plot.
PLOT_POINTS = 1500
#: Files that directory scans skip: the simulator's true-event sidecars and analysis outputs.
_SKIP_SUFFIXES = (".events.csv",)
_OUTPUT_NAMES = {"events.csv", "summary.csv", "errors.csv"}

ERROR_COLUMNS = ("file", "error")


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------
def _is_recording_name(path: Path) -> bool:
    from biofeedback.io.readers.sniff import RECORDING_SUFFIXES

    name = path.name
    if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES) or name in _OUTPUT_NAMES:
        return False
    suffix = path.suffix.lower()
    if suffix not in RECORDING_SUFFIXES:
        return False
    if suffix == ".dat" and (path.with_suffix(".hea").exists() or path.with_suffix(".HEA").exists()):
        return False  # the data file of a WFDB record: its .hea stands for it
    return True


def _walk(folder: Path, skip: Path | None) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                         and (skip is None or (rootp / d).resolve() != skip))
        for name in sorted(files):
            p = rootp / name
            if _is_recording_name(p):
                found.append(p)
    return found


def discover(inputs, skip_dir=None) -> tuple[list[str], list[tuple[str, str]]]:
    """Turn files, folders and glob patterns into a list of recordings.

    Parameters
    ----------
    inputs : iterable of str
        Files (taken whatever their name: the content decides the format),
        folders (searched recursively for names ending in one of
        :data:`~biofeedback.io.readers.RECORDING_SUFFIXES`; hidden files,
        ``*.events.csv`` sidecars and WFDB ``.dat`` files beside their
        ``.hea`` are skipped) and glob patterns (``**`` recurses).
    skip_dir : str or Path, optional
        A folder left out of the scans (the output folder).

    Returns
    -------
    files : list of str
        In the order given, each folder's files sorted; no duplicates.
    problems : list of (str, str)
        Inputs that gave nothing, with the reason (become ``errors.csv`` rows).
    """
    skip = Path(skip_dir).resolve() if skip_dir is not None else None
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(p: Path):
        key = str(p.resolve())
        if key not in seen:
            seen.add(key)
            files.append(str(p))

    from biofeedback.io.readers.sniff import RECORDING_SUFFIXES

    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = _walk(p, skip)
            if not found:
                problems.append((text, "directory holds no recordings (looked recursively for "
                                       f"{', '.join(RECORDING_SUFFIXES)})"))
            for f in found:
                add(f)
        elif p.exists():
            add(p)
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            hits = [Path(m) for m in matches if Path(m).is_file() and _is_recording_name(Path(m))]
            for m in matches:
                if Path(m).is_dir():
                    hits.extend(_walk(Path(m), skip))
            if not hits:
                problems.append((text, "no recordings match this pattern"))
            for f in hits:
                add(f)
        else:
            problems.append((text, "file not found"))
    return files, problems


# ---------------------------------------------------------------------------
# spectrum and display envelope, computed while the chunks stream past
# ---------------------------------------------------------------------------
class _Segments:
    """Cuts a stream into consecutive non-overlapping segments of ``n`` samples (carrying the rest)."""

    def __init__(self, n: int):
        self.n = n
        self.carry = None
        self.next_sample = 0

    def take(self, data, first_sample: int):
        """Segments completed by this chunk, shape (n_channels, n_segments, n), mean removed."""
        if first_sample != self.next_sample:
            self.carry = None  # a gap: segments do not span it
        self.next_sample = first_sample + data.shape[1]
        x = data if self.carry is None else np.concatenate((self.carry, data), axis=1)
        n_seg = x.shape[1] // self.n
        used = n_seg * self.n
        self.carry = x[:, used:].copy() if used < x.shape[1] else None
        seg = x[:, :used].reshape(x.shape[0], n_seg, self.n)
        return seg - seg.mean(axis=2, keepdims=True)


class SpectrumMonitor:
    """Welch spectrum of a stream, for its median frequency.

    See the module notes. The spectrum uses segments of about one second
    (``2**ceil(log2(fs))`` samples, ~1 Hz bins) and a low-leakage window, so
    a strong mains line does not spill into its neighbours.
    """

    def __init__(self, info, settings):
        fs = info.fs
        self.fs = fs
        self.n_ch = info.n_channels
        low, high, _ = settings.band()
        high = min(450.0, 0.45 * fs) if high is None else float(high)
        self.low, self.high = float(low), high
        # spectrum for the median frequency
        n = max(64, 1 << int(math.ceil(math.log2(max(fs, 2.0)))))
        self.spec = _Segments(n)
        from scipy.signal.windows import blackmanharris

        # Blackman-Harris: sidelobes 92 dB down, so a mains line 60 dB above the EMG leaks nothing
        # measurable beyond the bins left out around it.
        self.spec_window = blackmanharris(n, sym=False)
        self.freqs = np.fft.rfftfreq(n, 1.0 / fs)
        self.psd_sum = np.zeros((self.n_ch, self.freqs.size))
        self.n_segments = 0

    def observe(self, chunks):
        """Yield the chunks unchanged, taking their samples in on the way."""
        for chunk in chunks:
            self.update(chunk.data, chunk.first_sample)
            yield chunk

    def update(self, data, first_sample: int) -> None:
        # One channel at a time keeps the temporary spectra small (a 64 Ki chunk of 8 channels would
        # otherwise hold some 20 MB of them at once).
        seg = self.spec.take(data, first_sample)
        if seg.shape[1]:
            for ch in range(self.n_ch):
                spec = np.fft.rfft(seg[ch] * self.spec_window, axis=1)
                self.psd_sum[ch] += (spec.real ** 2 + spec.imag ** 2).sum(axis=0)
            self.n_segments += seg.shape[1]

    def median_frequency(self, mains_hz) -> np.ndarray:
        """Median frequency per channel in Hz (NaN without power in the band)."""
        df = self.fs / self.spec.n
        keep = (self.freqs >= self.low) & (self.freqs <= self.high)
        if mains_hz:
            keep &= ~_line_mask(self.freqs, float(mains_hz), max(3.0, 4 * df))
        out = np.full(self.n_ch, np.nan)
        if not self.n_segments or not keep.any():
            return out
        f = self.freqs[keep]
        for ch in range(self.n_ch):
            p = self.psd_sum[ch, keep]
            total = p.sum()
            if not total > 0:
                continue
            c = np.cumsum(p)
            i = int(np.searchsorted(c, 0.5 * total))
            prev = c[i - 1] if i > 0 else 0.0
            frac = (0.5 * total - prev) / p[i] if p[i] > 0 else 0.0
            out[ch] = f[i] - 0.5 * df + frac * df
        return out


def _line_mask(freqs, f0: float, half_width: float) -> np.ndarray:
    """Bins within ``half_width`` Hz of a harmonic of ``f0``."""
    k = np.round(freqs / f0)
    return (k >= 1) & (np.abs(freqs - k * f0) <= half_width)


# ---------------------------------------------------------------------------
# one file
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JobSpec:
    """Everything every file's analysis needs (picklable, sent to the workers).

    Attributes
    ----------
    settings : PipelineSettings
    analysis : dict
        Keyword arguments of :func:`~biofeedback.analysis.batch.analyze_stream`
        (``rest``, ``mvc``, ``classifier``, ``cue_map``, ``quality``...).
    reader : ReaderOptions
    chunk_samples : int or None
        Samples per chunk read; None (default): by channel count
        (:func:`chunk_samples_for`).
    plot : bool
        Write the report's SVG plot of each file (in the worker).
    format : str, optional
        Skip format detection.
    """

    settings: object
    analysis: dict = field(default_factory=dict)
    reader: object = None
    chunk_samples: int | None = None
    plot: bool = True
    format: str | None = None


@dataclass
class FileOutcome:
    """What came back for one file: the table rows, or the error."""

    index: int
    file: str
    error: str = ""
    event_rows: list = field(default_factory=list)
    summary_rows: list = field(default_factory=list)
    duration_s: float = 0.0
    fs: float = 0.0
    channels: tuple = ()
    units: str = ""
    format: str = ""
    mains_note: str = ""
    ecg_note: str = ""
    messages: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    calibration: object = None
    svg: str | None = None  # the report's plot of this file

    @property
    def ok(self) -> bool:
        return not self.error


def _notes(extra) -> dict:
    keys = ("fs_source", "fs_argument_ignored", "index_jumps", "time_irregular_steps", "truncated_bytes",
            "unused_columns", "unused_channels", "conversion", "device", "sheet", "variable", "note",
            "resampled_hz", "trailing_empty_rows")
    out = {}
    for k in keys:
        v = extra.get(k)
        if v not in (None, "", (), 0):
            out[k] = v if isinstance(v, (int, float, str)) else ", ".join(map(str, v))
    return out


def analyze_one(index: int, path: str, job: JobSpec, display: str | None = None) -> FileOutcome:
    """Analyse one recording; never raises for a bad file (the error is in the outcome).

    Parameters
    ----------
    index : int
        Position of the file in the batch (results are put back in this order).
    path : str
        The file to read (absolute for cluster workers).
    job : JobSpec
    display : str, optional
        Name written in the tables (default ``path``).
    """
    from biofeedback.analysis.batch import analyze_stream
    from biofeedback.detect.classify import ACTIVATION_KINDS
    from biofeedback.detect.quality import FLAGS
    from biofeedback.io.prefetch import prefetch
    from biofeedback.io.readers import iter_recording

    name = display or path
    out = FileOutcome(index=index, file=name)
    try:
        info, chunks = iter_recording(path, job.chunk_samples or CHUNK_SAMPLES, format=job.format,
                                      options=job.reader)
        if job.chunk_samples is None:
            chunks = _regroup(chunks, chunk_samples_for(info.n_channels))
        if info.n_channels >= PREFETCH_MIN_CHANNELS:
            chunks = prefetch(chunks)
        monitor = SpectrumMonitor(info, job.settings)
        trimming = _Trimming(monitor.observe(chunks))
        result = analyze_stream(info, trimming, job.settings, **job.analysis)
        del chunks
        if trimming.large:
            _release_memory()
        mdf = monitor.median_frequency(result.mains_hz)
        summary = result.summary_rows(name)
        for ch, row in enumerate(summary):
            mine = [e for e in result.events if e.channel == row["channel"] and e.kind in ACTIVATION_KINDS]
            durations = [e.duration_s for e in mine]
            row["format"] = info.extra.get("format", "")
            row["median_freq_hz"] = round(float(mdf[ch]), 2) if np.isfinite(mdf[ch]) else ""
            row["mean_burst_s"] = float(np.mean(durations)) if durations else ""
            row["longest_burst_s"] = float(np.max(durations)) if durations else ""
            flags = [f for f in FLAGS if row.get(f"{f}_s", 0)]
            row["quality_flags"] = ";".join(flags)
        out.event_rows = [{"file": name, **e.as_row()} for e in result.events]
        out.summary_rows = summary
        out.duration_s = result.duration_s
        out.fs = info.fs
        out.channels = info.ch_names
        out.units = info.units
        out.format = str(info.extra.get("format", ""))
        out.mains_note = result.mains_note
        out.ecg_note = result.ecg_note
        out.messages = dict(result.messages)
        out.notes = _notes(info.extra)
        out.calibration = result.calibration if job.analysis.get("rest") is not None else None
        if job.plot:
            from biofeedback.analysis.batch_report import plot_file

            t, env = result.display_envelope(PLOT_POINTS)
            try:
                out.svg = plot_file(name, t, env, info, result.events, result.thresholds, result.messages,
                                    duration=result.duration_s)
            except Exception as exc:  # a plot must never cost the analysis
                out.notes["plot"] = f"no plot ({type(exc).__name__}: {exc})"
    except BiofeedbackError as exc:
        out.error = _reason(str(exc), (name, path))
    except MemoryError:
        out.error = "ran out of memory"
    except Exception as exc:  # a library's own error on a damaged file; keep the batch going
        where = traceback.extract_tb(exc.__traceback__)[-1]
        out.error = (f"unexpected {type(exc).__name__}: {exc} "
                     f"(at {Path(where.filename).name}:{where.lineno}; please report)")
    if out.error:
        out.event_rows, out.summary_rows = [], []
    return out


#: Bytes of chunk data between two hand-backs of freed memory during a file's first pass.
TRIM_EVERY_BYTES = 64 * 1024 * 1024


def _regroup(chunks, size: int):
    """Yield consecutive chunks joined into chunks of at least ``size`` samples (the last may be shorter).

    The readers are asked for ``CHUNK_SAMPLES`` before the channel count
    is known; files of few channels are then analysed in longer chunks
    (:func:`chunk_samples_for`). Chunks are only joined where the samples
    follow on (no gap in ``first_sample``); a chunk already long enough
    passes unchanged.
    """
    held: list = []
    n = 0
    for chunk in chunks:
        if held and chunk.first_sample != held[-1].stop:
            yield _join(held)
            held, n = [], 0
        held.append(chunk)
        n += chunk.n_samples
        if n >= size:
            yield _join(held)
            held, n = [], 0
    if held:
        yield _join(held)


def _join(chunks):
    """One chunk of consecutive ``chunks`` (data, cues and layers joined along time)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    cues = None if first.cues is None else np.concatenate([c.cues for c in chunks])
    layers = {key: np.concatenate([np.asarray(c.layers[key]) for c in chunks], axis=-1) for key in first.layers}
    return Chunk(np.concatenate([c.data for c in chunks], axis=1), first.first_sample, first.info,
                 layers=layers, cues=cues)


class _Trimming:
    """Iterate over the chunks unchanged, handing freed memory back every ``every_bytes`` of chunk data.

    The first pass allocates chunk-sized temporaries (about 1 MiB for 8
    channels) between small arrays that live to the end of the file (the
    quality windows, the quiet-window samples); glibc then cannot return the
    temporaries' space, and an hour of 8 channels at 2 kHz gained some 50 MB
    of resident memory that no object held. ``malloc_trim`` releases those
    free pages; once per 64 MiB of samples it costs nothing measurable.
    A file of less than ``every_bytes`` of samples is never trimmed: its
    temporaries are small, and the next file reuses them (``malloc_trim``
    walks the heap: a quarter of a millisecond, three times per file, was
    some 2 % of a batch of 1-minute files).
    """

    def __init__(self, chunks, every_bytes: int = TRIM_EVERY_BYTES):
        self.chunks, self.every_bytes = chunks, every_bytes
        self.total = 0  # bytes of chunk data seen

    @property
    def large(self) -> bool:
        """Whether the file held ``every_bytes`` of samples or more (worth trimming after)."""
        return self.total >= self.every_bytes

    def __iter__(self):
        since = 0
        for chunk in self.chunks:
            since += chunk.data.nbytes
            self.total += chunk.data.nbytes
            if since >= self.every_bytes:
                _release_memory()
                since = 0
            yield chunk
        # The end of the first pass: the quality report and the baseline come
        # next, with temporaries of their own.
        if self.large:
            _release_memory()


def _release_memory() -> None:
    """Hand memory freed by the analysis back to the system (glibc keeps it otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


#: Allocations of at least this many bytes get pages of their own (glibc's
#: ``M_MMAP_THRESHOLD``) in a process tuned by :func:`tune_allocator`.
MMAP_THRESHOLD_BYTES = 16 << 20
#: Free memory at the top of the heap kept for the next allocations before
#: glibc hands it back (``M_TRIM_THRESHOLD``), in a tuned process.
TRIM_THRESHOLD_BYTES = 32 << 20
#: Environment variables through which a user sets glibc's allocator himself;
#: :func:`tune_allocator` leaves the settings alone when one is set.
ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def tune_allocator() -> bool:
    """Let a batch process keep and reuse its chunk-sized blocks of memory (glibc only).

    The analysis allocates temporaries of about a chunk (1 MiB) and the CSV
    parser arrays of ~100 KiB, block after block. With glibc's default
    settings, blocks that size are mapped and unmapped each time, or freed
    into the top of the heap and handed back once the free top exceeds an
    adaptive threshold; every reuse then pays page faults. ``analyze`` on 60
    one-minute files of 1 channel at 1 kHz took some 150 000 minor page
    faults; with blocks under :data:`MMAP_THRESHOLD_BYTES` taken from the
    heap and up to :data:`TRIM_THRESHOLD_BYTES` of free top kept, 59 000,
    and the run 0.35 s (~14 %) less, with the same peak memory (an hour of
    8 channels at 2 kHz: 209 MB either way; the big files' periodic
    ``malloc_trim`` still hands freed memory back).

    Called by ``biofeedback analyze`` for its own process and its worker
    processes, not by the library functions: the settings hold for the whole
    process. Nothing is changed when a ``MALLOC_*`` variable of
    :data:`ALLOCATOR_ENV` or a ``glibc.malloc`` tunable is set (the user's
    choice), nor outside glibc.

    Returns
    -------
    bool
        Whether the settings were applied.
    """
    if any(os.environ.get(name) for name in ALLOCATOR_ENV) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES)) and bool(mallopt(m_trim_threshold,
                                                                                 TRIM_THRESHOLD_BYTES))


def _reason(message: str, names) -> str:
    """The message without the file name it starts with (the tables have a file column)."""
    for prefix in names:
        for sep in (": ", ", "):
            if prefix and message.startswith(prefix + sep):
                return message[len(prefix) + len(sep):]
    return message


def describe_error(file: str, reason: str) -> str:
    """One line naming the file and the reason (``file, line 3, ...`` or ``file: ...``)."""
    return f"{file}, {reason}" if reason.startswith("line ") else f"{file}: {reason}"


def _call(args):
    return analyze_one(*args)


# ---------------------------------------------------------------------------
# engines
# ---------------------------------------------------------------------------
def run_batch(files, job: JobSpec, jobs: int = 1, engine: str = "local", scheduler: str | None = None,
              on_done: Callable[[FileOutcome], None] | None = None) -> list[FileOutcome]:
    """Analyse ``files`` and return their outcomes in the files' order.

    Parameters
    ----------
    files : list of str
    job : JobSpec
    jobs : int
        Worker processes (``local`` engine; 1 = this process) or, for
        ``dask`` without ``scheduler``, the workers of the local cluster.
    engine : str
        ``local`` or ``dask``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    on_done : callable, optional
        Called in this process with each outcome as it arrives.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError("--jobs", "a positive number of worker processes", jobs)
    if engine not in ("local", "dask"):
        raise ParameterError("--engine", "local or dask", engine)
    if scheduler and engine != "dask":
        raise ParameterError("--scheduler", "to be used with --engine dask", scheduler)
    tasks = [(i, os.path.abspath(f), job, str(f)) for i, f in enumerate(files)]
    done = on_done or (lambda outcome: None)
    results: list[FileOutcome | None] = [None] * len(tasks)
    if not tasks:
        return []
    if engine == "dask":
        _run_dask(tasks, jobs, scheduler, results, done)
    elif jobs == 1 or len(tasks) == 1:
        for t in tasks:
            results[t[0]] = outcome = _call(t)
            done(outcome)
    else:
        _run_processes(tasks, jobs, results, done)
    return [r for r in results if r is not None]


def _crashed(task, exc) -> FileOutcome:
    return FileOutcome(index=task[0], file=task[3],
                       error=f"the worker analysing it stopped ({type(exc).__name__}: {exc})")


def _run_processes(tasks, jobs, results, done):
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=tune_allocator) as pool:
        futures = {pool.submit(_call, t): t for t in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # BrokenProcessPool: a worker was killed (out of memory?)
                outcome = _crashed(task, exc)
            results[task[0]] = outcome
            done(outcome)


def _run_dask(tasks, jobs, scheduler, results, done):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        from biofeedback.io.readers._base import MissingDependencyError

        raise MissingDependencyError("--engine dask needs the Python package 'distributed': "
                                     "pip install 'biofeedback[cluster]'") from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError) as exc:
                raise ParameterError("--scheduler", "the address of a running Dask scheduler (tcp://host:8786)",
                                     f"{scheduler} ({type(exc).__name__}: {exc})") from None
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            _check_workers(client)
            run_id = uuid.uuid4().hex
            futures = [client.submit(_call, t, pure=False, key=f"biofeedback-analyze-{run_id}-{t[0]}")
                       for t in tasks]
            by_key = {f.key: t for f, t in zip(futures, tasks)}
            for fut in as_completed(futures):
                task = by_key[fut.key]
                try:
                    outcome = fut.result()
                except Exception as exc:  # KilledWorker, lost connection...
                    outcome = _crashed(task, exc)
                results[task[0]] = outcome
                done(outcome)
                fut.release()
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _worker_version():
    import biofeedback

    return biofeedback.__version__


def _check_workers(client) -> None:
    """Every worker must run this version of biofeedback (else results could differ)."""
    import biofeedback

    try:
        versions = client.run(_worker_version)
    except Exception as exc:
        raise BiofeedbackError(f"--engine dask: the workers cannot run biofeedback ({type(exc).__name__}: {exc}); "
                               "install it on every worker (pip install 'biofeedback[cluster]')") from None
    wrong = {w: v for w, v in versions.items() if v != biofeedback.__version__}
    if not versions:
        raise BiofeedbackError("--engine dask: the cluster has no workers")
    if wrong:
        w, v = next(iter(wrong.items()))
        raise BiofeedbackError(f"--engine dask: worker {w} runs biofeedback {v}, this is {biofeedback.__version__}; "
                               "install the same version everywhere")


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
def write_tables(out_dir, outcomes, problems, event_columns, summary_columns) -> dict:
    """Write events.csv, summary.csv and errors.csv; return their paths."""
    from biofeedback.io.tables import write_rows

    out = Path(out_dir)
    events = [row for o in outcomes for row in o.event_rows]
    summary = [row for o in outcomes for row in o.summary_rows]
    errors = [{"file": f, "error": why} for f, why in problems]
    errors += [{"file": o.file, "error": o.error} for o in outcomes if not o.ok]
    return {
        "events": str(write_rows(out / "events.csv", events, event_columns)),
        "summary": str(write_rows(out / "summary.csv", summary, summary_columns)),
        "errors": str(write_rows(out / "errors.csv", errors, ERROR_COLUMNS)),
    }
