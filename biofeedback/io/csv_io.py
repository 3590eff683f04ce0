"""Read and write delimited text recordings (CSV, TSV, whitespace tables).

The reader takes the files people actually have: with or without a header
row; comma, semicolon, tab or whitespace separated; ``#`` and ``%`` comment
lines; CRLF (or old Mac CR) line endings; a trailing delimiter; a time
column in seconds, milliseconds or microseconds, a sampling rate in a
comment line, or neither (then the caller passes ``fs``).

Speed and memory
----------------
Files are read in byte blocks of at most :data:`BLOCK_BYTES` (128 KiB), and
of about 12 Ki fields when rows are narrow, cut at line ends, so a file
larger than memory can be streamed with :func:`iter_csv`.
Each block is parsed by a vectorised numpy parser (no per-value Python
code) that validates the number syntax of every field and reproduces
Python's correctly rounded ``float()`` exactly. Blocks it declines (text
columns, empty fields, comments between rows, very long numbers) go to
:func:`numpy.loadtxt`; only when that fails too does a line-by-line Python
scan run, to name the line and column of the problem. :func:`read_csv` is
:func:`iter_csv`'s block stream concatenated: one code path.

Decisions worth knowing
-----------------------
* Units: a header such as ``ch1 (uV)`` or ``ch1 [mV]`` gives the unit, a
  comment ``# units: uV`` gives it for all channels; otherwise the unit is
  unknown and ``info.units`` is ``"a.u."`` (arbitrary units).
* ``fs`` precedence: the ``fs`` argument, then a comment line (``# Sampling
  Rate (Hz):= 1000``, ``%Sample Rate = 200.0 Hz``, ``# fs: 500``...), then the
  time column. A time column is always checked against a given or declared
  rate (median step, 1 % tolerance). When the rate comes from the time
  column alone, every time stamp must lie within half a sample period of
  ``t0 + k / fs``; otherwise the file is rejected as irregular (pass ``fs``
  to read the rows as equally spaced samples anyway; the number of
  irregular steps is then kept in ``info.extra["time_irregular_steps"]``).
* Blank lines and comment lines are skipped anywhere. A row made only of
  delimiters (every field empty) is an error in the middle of the data (a
  sample is missing), but such rows at the very end of the file are
  dropped: nothing follows them, so no later sample is displaced. Their
  count is ``info.extra["trailing_empty_rows"]``.
* An empty or non-numeric field in a *selected* column is an error naming
  the line and column; in an unselected column it is ignored.
* Default channels (``channels=None``): the data columns whose first rows
  hold numbers, leaving out columns named like labels or clock times
  (``class``, ``label``, ``cue``, ``timestamp``...); those are listed in
  ``info.extra["unused_columns"]`` and can be selected explicitly.
* Files written by :func:`write_recording` (first line ``# biofeedback
  recording``) are read verbatim: ``time_s`` is the time column, a last
  column ``cue`` becomes the cues, a ``sample`` index column (as the live
  recorder writes) is dropped with its jumps counted, every other column
  is a channel.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from biofeedback.core.types import Chunk, Event, Recording, StreamInfo
from biofeedback.errors import InputFileError, ParameterError, check_sampling_rate

__all__ = [
    "BLOCK_BYTES",
    "iter_csv",
    "parse_channel_spec",
    "read_csv",
    "read_events",
    "write_events",
    "write_recording",
]

#: Bytes read and parsed per block at most (the last partial line is carried
#: to the next block). Small enough that the parser's temporary arrays stay in
#: the CPU cache: 128 KiB parsed about twice as fast as 8 MiB when measured.
BLOCK_BYTES = 128 << 10
#: Fields per block at most: narrow rows get blocks of fewer bytes. The
#: parser holds a few dozen arrays of 8 bytes per field; at 128 KiB or more
#: each, glibc may serve them from fresh mmap pages (its threshold adapts to
#: what the process allocated before), and every block then pays page
#: faults. Measured in bench_batch's process, 1 channel + time at 1 kHz (6.5
#: bytes a field, 1 min file): 128 KiB blocks (20 Ki fields) read at 33-46
#: MB/s with ~4000 page faults per read, 16 Ki fields about the same, 12 Ki
#: fields (96 KiB arrays) at 60-83 MB/s with almost none. Faults also come
#: from glibc trimming the top of the heap when the temporaries freed there
#: exceed its trim threshold (1.2-1.5 MB in a process that has run an
#: analysis): the next block faults the pages back in. With the one-word
#: mantissa path the parser's peak at 12 Ki fields is ~1.1 MB (2.2 MB
#: before), and a 1 min file read after an analysis went from ~4000 faults
#: to none; 16 Ki fields brought some back.
_BLOCK_FIELDS = 12 << 10

UNKNOWN_UNITS = "a.u."
OWN_FORMAT_MARK = "# biofeedback recording"
EVENT_COLUMNS = ("file", "channel", "kind", "onset_s", "offset_s", "duration_s", "peak")

# Rows used to sniff the layout and to estimate fs from a time column. A fixed
# row count (not "the first block") keeps results independent of BLOCK_BYTES.
_SNIFF_ROWS = 50
_FS_ESTIMATE_ROWS = 10000

_TIME_NAMES = {
    "time": 1.0, "t": 1.0, "time_s": 1.0, "time_sec": 1.0, "time_secs": 1.0,
    "time_seconds": 1.0, "seconds": 1.0, "second": 1.0, "sec": 1.0, "secs": 1.0,
    "elapsed": 1.0, "elapsed_s": 1.0, "elapsed_time": 1.0, "timestamp_s": 1.0, "t_s": 1.0,
    "time_ms": 1e-3, "ms": 1e-3, "millis": 1e-3, "milliseconds": 1e-3, "msec": 1e-3,
    "timestamp_ms": 1e-3, "t_ms": 1e-3, "time_msec": 1e-3, "elapsed_ms": 1e-3,
    "time_us": 1e-6, "us": 1e-6, "micros": 1e-6, "microseconds": 1e-6,
    "timestamp_us": 1e-6, "t_us": 1e-6,
}
# Base names that become a time column only with a unit, e.g. "timestamp (ms)".
_TIME_BASES = {"time", "t", "timestamp", "elapsed", "elapsed_time", "clock"}
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "usec": 1e-6}
# Names that say "time" but not in which unit: seconds unless the steps say
# otherwise (see _CsvStream._settle_fs).
_UNITLESS_TIME_NAMES = {"time", "t", "elapsed", "elapsed_time"}
_INDEX_NAMES = {"sample", "samples", "sample_index", "sample index", "sampleindex", "index",
                "idx", "nseq", "sample_number", "sample_no", "sample_nr", "seq"}
# Columns that are almost never a signal: left out of the default selection.
_NOT_SIGNAL_NAMES = {"class", "label", "labels", "cue", "cues", "marker", "markers", "trigger",
                     "stimulus", "annotation", "event", "events", "gesture", "timestamp",
                     "datetime", "date", "clock", "time_of_day"}

# "<key> [(Hz)] [:=|=|:|is] <number> [Hz|kHz]"; only a unit and a separator
# may stand between key and number, so "sampling rate unknown, gain 1000"
# gives nothing rather than 1000 Hz.
_FS_COMMENT = re.compile(
    r"(?:sampling[\s_-]*rate(?:[\s_-]*hz)?|sample[\s_-]*rate|samplerate|sampling[\s_-]*frequency|\bfs)"
    r"\s*(?:[\(\[]\s*(k?)hz\s*[\)\]])?\s*(?:in\s+(k?)hz\s*)?(?::=|[:=]|\bis\b)?\s*"
    r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:(k?)hz\b)?",
    re.IGNORECASE,
)
_UNITS_COMMENT = re.compile(r"^units?\s*[:=]+\s*(\S.*?)\s*$", re.IGNORECASE)
_SOURCE_COMMENT = re.compile(r"^source\s*[:=]\s*(.*?)\s*$", re.IGNORECASE)
_UNIT_SUFFIX = re.compile(r"^(.*?)\s*[\(\[]\s*([A-Za-z%µμ][A-Za-z0-9%µμ./^*·\-]{0,11})\s*[\)\]]$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")

_WHITESPACE_NAMES = {" ", "whitespace", "space", "spaces", "ws"}


# ---------------------------------------------------------------------------
# channel selection
# ---------------------------------------------------------------------------
def parse_channel_spec(spec, names: Sequence[str]) -> list[int]:
    """Turn a channel selection into 0-based positions in ``names``.

    Parameters
    ----------
    spec : None, int, str or sequence of int/str
        ``None`` selects every name. A string is split at commas; each item
        is a name (exact, else case-insensitive), a 0-based position
        (``"3"``), an inclusive range (``"0-7"``), or any of these prefixed
        with ``!`` to exclude it (``"!8"``). Without any inclusion, the
        exclusions apply to all names. A sequence may mix ints and such
        strings. A name takes precedence over a position when a name looks
        like a number.
    names : sequence of str
        The names of the columns that can be selected, in file order.

    Returns
    -------
    list of int
        Selected positions, in the order asked for, without duplicates.

    Raises
    ------
    ParameterError
        An unknown name or a position out of range (the message lists the
        available names), or an empty selection.
    """
    names = [str(n) for n in names]
    if spec is None:
        return list(range(len(names)))
    if isinstance(spec, (str, int, np.integer)) and not isinstance(spec, bool):
        items = [spec]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ParameterError("channels", "names or 0-based positions, e.g. '0-7' or 'ch1,ch3'", spec) from None
    tokens: list = []
    for item in items:
        if isinstance(item, str):
            tokens.extend(t.strip() for t in item.split(",") if t.strip())
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            tokens.append(int(item))
        else:
            raise ParameterError("channels", "names or 0-based positions", item)
    if not tokens:
        raise ParameterError("channels", "at least one channel name or position", spec)
    available = _describe_names(names)

    def resolve(token) -> list[int]:
        if isinstance(token, int):
            if 0 <= token < len(names):
                return [token]
            raise ParameterError("channels", f"a 0-based position among {available}", token)
        if token in names:
            return [names.index(token)]
        folded = [i for i, n in enumerate(names) if n.lower() == token.lower()]
        if len(folded) == 1:
            return folded
        m = _RANGE.match(token)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo <= hi < len(names):
                return list(range(lo, hi + 1))
            raise ParameterError("channels", f"a range of 0-based positions among {available}", token)
        if token.isdigit():
            return resolve(int(token))
        raise ParameterError("channels", f"channel names or 0-based positions among {available}", token)

    include: list[int] = []
    exclude: set[int] = set()
    any_include = False
    for token in tokens:
        if isinstance(token, str) and token.startswith("!"):
            exclude.update(resolve(token[1:].strip()))
        else:
            any_include = True
            include.extend(resolve(token))
    if not any_include:
        include = list(range(len(names)))
    selected = list(dict.fromkeys(i for i in include if i not in exclude))
    if not selected:
        raise ParameterError("channels", f"at least one channel among {available}", spec)
    return selected


def _describe_names(names: Sequence[str]) -> str:
    shown = ", ".join(f"{i}:{n}" for i, n in enumerate(names[:40]))
    if len(names) > 40:
        shown += f", ... ({len(names)} columns)"
    return f"[{shown}]" if names else "[] (no data columns)"


# ---------------------------------------------------------------------------
# file layout (header, delimiter, comments)
# ---------------------------------------------------------------------------
@dataclass
class _Layout:
    path: str
    delimiter: str | None  # None: runs of whitespace
    newline: bytes
    names: list[str]
    units: list[str]
    has_header: bool
    n_cols: int
    trailing_delimiter: bool
    data_offset: int  # byte offset of the first data row
    data_end: int  # byte offset after the last non-empty data row
    first_data_line: int  # 1-based physical line number of the first data row
    numeric: list[bool]  # per column: the sniffed rows hold numbers
    comment_fs: float | None = None
    comment_fs_text: str = ""
    comment_units: str | None = None
    comment_source: str | None = None
    own_format: bool = False
    first_values: tuple = ()
    bytes_per_row: float = 1.0  # average length of the sniffed data rows
    trailing_empty_rows: int = 0


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _normalise_delimiter(delimiter):
    """Return (known, delimiter) where delimiter None means whitespace runs."""
    if delimiter is None:
        return False, None
    if not isinstance(delimiter, str) or not delimiter:
        raise ParameterError("delimiter", "one character such as ',', ';', '\\t' or 'whitespace'", delimiter)
    low = delimiter.lower()
    if low in ("\\t", "tab", "\t"):
        return True, "\t"
    if low in _WHITESPACE_NAMES:
        return True, None
    stripped = delimiter.strip(" ")
    if len(stripped) == 1 and stripped not in "#%\"0123456789.+-eE\r\n":
        return True, stripped
    raise ParameterError("delimiter", "one character such as ',', ';', '\\t' or 'whitespace'", delimiter)


def _strip_comment(text: str) -> str:
    cut = len(text)
    for mark in ("#", "%"):
        i = text.find(mark)
        if 0 <= i < cut:
            cut = i
    return text[:cut]


def _is_blank(text: str, delimiter: str | None) -> bool:
    """True for a line without data: empty, blanks, or a comment.

    A line of delimiters only ("\t\t") is not blank: it is a row whose
    fields are all empty.
    """
    t = _strip_comment(text)
    return not t.strip() and (delimiter is None or delimiter not in t)


def _split(text: str, delimiter: str | None) -> list[str]:
    text = text.rstrip("\r\n")
    if delimiter is None:
        return text.split()
    return [f.strip().strip('"').strip() for f in text.split(delimiter)]


# What numpy.loadtxt and the fast parser accept as a number (float() would
# also take "1_000"; keep the careful path in step with the fast ones).
_NUMBER = re.compile(r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def _sniff_delimiter(rows: list[str]) -> str | None:
    # Prefer tab, then semicolon (a comma may then be a decimal comma), then
    # comma: the first one present on every sniffed line wins.
    for cand in ("\t", ";", ","):
        if all(cand in r for r in rows):
            return cand
    for cand in ("|",):
        if all(cand in r for r in rows):
            return cand
    return None


def _split_name_unit(name: str) -> tuple[str, str]:
    m = _UNIT_SUFFIX.match(name)
    if m and m.group(1).strip():
        return m.group(1).strip(), m.group(2)
    return name, ""


#: Bytes at the start of a file checked for NUL bytes (binary content) and
#: for the kind of line end.
_CHECKED_START = 1 << 20
#: Bytes read at a time for that check and for the first rows: one read of
#: the whole MiB took ~0.4 ms against ~0.06 ms in pieces (a fresh 1 MiB
#: buffer is page-faulted in every time), as much as parsing a block.
_HEAD_PIECE = 1 << 16


def _byte_kinds_at_start(fh, head: bytes) -> tuple[bool, bool, bool]:
    """Whether the first :data:`_CHECKED_START` bytes of a file hold NUL, LF, CR.

    Parameters
    ----------
    fh : binary file
        Positioned just after ``head``; left there.
    head : bytes
        The file's first bytes.

    Returns
    -------
    (has_nul, has_lf, has_cr) : tuple of bool
    """
    has_nul, has_lf, has_cr = b"\x00" in head, b"\n" in head, b"\r" in head
    start = fh.tell()
    checked = len(head)
    while checked < _CHECKED_START:
        piece = fh.read(min(_HEAD_PIECE, _CHECKED_START - checked))
        if not piece:
            break
        checked += len(piece)
        has_nul = has_nul or b"\x00" in piece
        has_lf = has_lf or b"\n" in piece
        has_cr = has_cr or b"\r" in piece
    fh.seek(start)
    return has_nul, has_lf, has_cr


def _scan_head(path, delimiter) -> _Layout:
    """Read the start of the file: comments, header, delimiter, columns."""
    p = Path(path)
    spath = str(path)
    if not p.exists():
        raise InputFileError(spath, "file not found")
    if p.is_dir():
        raise InputFileError(spath, "is a directory, expected a CSV or text file")
    try:
        size = p.stat().st_size
        fh = open(p, "rb")
    except OSError as exc:
        raise InputFileError(spath, f"cannot be opened: {exc.strerror or exc}") from None
    if size == 0:
        fh.close()
        raise InputFileError(spath, "file is empty (no header, no data rows)")
    known, delim = _normalise_delimiter(delimiter)
    with fh:
        head = fh.read(_HEAD_PIECE)
        has_nul, has_lf, has_cr = _byte_kinds_at_start(fh, head)
        if has_nul:
            raise InputFileError(spath, "looks like a binary file (NUL bytes), expected delimited text")
        bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        # Old Mac files end lines with CR only; treat CR as the line end then.
        newline = b"\r" if (not has_lf and has_cr) else b"\n"
        comments: list[str] = []
        rows: list[tuple[int, int, int, str]] = []  # (line_no, start, end, text)
        pos, line_no = bom, 0
        while len(rows) < _SNIFF_ROWS + 1:
            nl = head.find(newline, pos)
            if nl < 0:
                more = fh.read(1 << 20)
                if more:
                    head += more
                    continue
                if pos >= len(head):
                    break
                nl = len(head)
            line_no += 1
            text = _decode(head[pos:nl])
            stripped = text.strip()
            if stripped.startswith(("#", "%")):
                if not rows:
                    comments.append(stripped)
            elif stripped and _strip_comment(stripped).strip():
                rows.append((line_no, pos, nl + 1, _strip_comment(text)))
            pos = nl + 1
    if not rows:
        what = "only comment lines" if comments else "only blank lines"
        raise InputFileError(spath, f"has no data rows ({what})")

    own = bool(comments) and comments[0].lower().startswith(OWN_FORMAT_MARK)
    if not known:
        sample = [r[3] for r in rows[: _SNIFF_ROWS + 1]]
        delim = _sniff_delimiter(sample)
    split_rows = [_split(r[3], delim) for r in rows]

    first = split_rows[0]
    non_empty = [f for f in first if f]
    has_header = bool(non_empty) and not any(_is_number(f) for f in non_empty)
    data_split = split_rows[1:] if has_header else split_rows
    if not data_split:
        raise InputFileError(spath, "has a header row but no data rows")

    # A delimiter at the end of every row adds an empty last field: drop it.
    trailing = delim is not None and all(len(r) > 1 and r[-1] == "" for r in data_split)
    if trailing:
        data_split = [r[:-1] for r in data_split]
    header = list(first)
    if has_header and delim is not None and len(header) > 1 and header[-1] == "":
        header = header[:-1]

    counts = [len(r) for r in data_split]
    if has_header and delim is None and max(counts) == 1 and len(header) > 1:
        # One column whose header contains spaces ("EMG value").
        header = [" ".join(header)]
    # The widest row sets the columns, so a short row is reported as such
    # instead of a column being dropped.
    n_cols = max(max(counts), len(header) if has_header else 0)

    names: list[str] = []
    units: list[str] = []
    for i in range(n_cols):
        raw_name = header[i] if has_header and i < len(header) else ""
        if own:
            name, unit = raw_name, ""
        else:
            name, unit = _split_name_unit(raw_name)
        names.append(name)
        units.append(unit)
    # Fill missing names and make all names unique so that selection by name
    # is unambiguous.
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name:
            name = f"ch{i + 1}"
            if name in names:
                name = f"col{i + 1}"
        base, k = name, 2
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        names[i] = name

    numeric = []
    for i in range(n_cols):
        vals = [r[i] for r in data_split if i < len(r) and r[i] != ""]
        # At least half the values numbers: a numeric column (a few bad values are then
        # reported as errors instead of the column silently left out).
        numeric.append(bool(vals) and 2 * sum(_is_number(v) for v in vals) >= len(vals))

    comment_fs = None
    comment_fs_text = ""
    comment_units = None
    comment_source = None
    for c in comments:
        body = c.lstrip("#%").strip()
        if comment_fs is None:
            m = _FS_COMMENT.search(body)
            if m:
                value = float(m.group(3))
                if any(g and g.lower() == "k" for g in (m.group(1), m.group(2), m.group(4))):
                    value *= 1000.0
                comment_fs = value
                comment_fs_text = body
        m = _UNITS_COMMENT.match(body)
        if m and comment_units is None:
            comment_units = m.group(1)
        m = _SOURCE_COMMENT.match(body)
        if m and comment_source is None:
            comment_source = m.group(1)
    if comment_fs is not None and not (0 < comment_fs < math.inf):
        raise InputFileError(
            spath, f"the sampling rate in the comment line {comment_fs_text!r} is not a positive number"
        )

    data_row = rows[1] if has_header else rows[0]
    layout = _Layout(
        path=spath, delimiter=delim, newline=newline, names=names, units=units,
        has_header=has_header, n_cols=n_cols, trailing_delimiter=trailing,
        data_offset=data_row[1], data_end=size, first_data_line=data_row[0],
        numeric=numeric, comment_fs=comment_fs, comment_fs_text=comment_fs_text,
        comment_units=comment_units, comment_source=comment_source, own_format=own,
        first_values=tuple(data_split[0]),
        bytes_per_row=(rows[-1][2] - data_row[1]) / max(len(data_split), 1),
    )
    _scan_tail(layout, size)
    if layout.data_end <= layout.data_offset:
        raise InputFileError(spath, "has no data rows (only empty rows after the header)")
    return layout


def _scan_tail(layout: _Layout, size: int) -> None:
    """Find where the data ends: drop trailing blank, comment and all-empty rows."""
    nl = layout.newline
    delim = layout.delimiter
    dropped = 0
    end = size
    window = 1 << 16
    with open(layout.path, "rb") as fh:
        while end > layout.data_offset:
            start = max(layout.data_offset, end - window)
            fh.seek(start)
            piece = fh.read(end - start)
            stop = len(piece)
            while stop > 0:  # walk back line by line
                line_end = stop - 1 if piece[stop - 1:stop] == nl else stop
                cut = piece.rfind(nl, 0, line_end)
                if cut < 0 and start > layout.data_offset:
                    break  # this line begins before the piece: read further back
                line = _strip_comment(_decode(piece[cut + 1:line_end]))
                content = line if delim is None else line.replace(delim, "")
                if content.strip():
                    layout.data_end = start + stop
                    layout.trailing_empty_rows = dropped
                    return
                if not _is_blank(line, delim):
                    dropped += 1  # a row of delimiters only
                stop = cut + 1
            if stop == 0:
                break
            if start + stop == end:
                window *= 2  # one very long line: widen the window
            end = start + stop
    layout.data_end = layout.data_offset
    layout.trailing_empty_rows = dropped


# ---------------------------------------------------------------------------
# column plan
# ---------------------------------------------------------------------------
@dataclass
class _Plan:
    time_col: int | None
    time_scale: float  # seconds per time-column unit
    time_unit: str
    time_unit_known: bool
    index_col: int | None
    cue_col: int | None
    channel_cols: list[int]
    used: list[int]  # file columns parsed as numbers, time and index first
    unused: list[str]


def _time_scale_of(name: str, unit: str) -> float | None:
    low = name.strip().lower()
    if unit:
        scale = _TIME_UNITS.get(unit.lower())
        if scale is not None and (low in _TIME_BASES or low in _TIME_NAMES):
            return scale
        return None
    return _TIME_NAMES.get(low)


def _find_column(spec, layout: _Layout, what: str) -> int:
    names = layout.names
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if 0 <= int(spec) < layout.n_cols:
            return int(spec)
    elif isinstance(spec, str):
        if spec in names:
            return names.index(spec)
        folded = [i for i, n in enumerate(names) if n.lower() == spec.strip().lower()]
        if len(folded) == 1:
            return folded[0]
        if spec.strip().isdigit() and int(spec) < layout.n_cols:
            return int(spec)
    raise ParameterError(what, f"a column name or 0-based file column among {_describe_names(names)}", spec)


def _plan_columns(layout: _Layout, channels, time_column, cue_column) -> _Plan:
    names = layout.names
    time_col, scale, tunit, known = None, 1.0, "", True
    if layout.own_format and time_column == "auto":
        if "time_s" in names:
            time_col, scale, tunit = names.index("time_s"), 1.0, "s"
    elif time_column == "auto":
        if layout.has_header:
            for i, name in enumerate(names):
                s = _time_scale_of(name, layout.units[i])
                if s is not None:
                    time_col, scale = i, s
                    known = bool(layout.units[i]) or name.strip().lower() not in _UNITLESS_TIME_NAMES
                    break
    elif time_column is not None:
        time_col = _find_column(time_column, layout, "time_column")
        s = _time_scale_of(names[time_col], layout.units[time_col])
        scale = 1.0 if s is None else s
        known = s is not None and (
            bool(layout.units[time_col]) or names[time_col].strip().lower() not in _UNITLESS_TIME_NAMES
        )
    if time_col is not None:
        tunit = {1.0: "s", 1e-3: "ms", 1e-6: "us"}[scale]

    index_col = None
    if layout.has_header:  # own files too: the live recorder writes a "sample" column
        for i, name in enumerate(names):
            if i != time_col and name.strip().lower() in _INDEX_NAMES:
                index_col = i
                break

    cue_col = None
    if cue_column is not None:
        cue_col = _find_column(cue_column, layout, "cue_column")
        if cue_col == time_col:
            raise ParameterError("cue_column", "a column other than the time column", cue_column)
        if cue_col == index_col:
            index_col = None
    elif layout.own_format and names and names[-1] == "cue" and layout.n_cols > 1:
        cue_col = layout.n_cols - 1

    data_cols = [i for i in range(layout.n_cols) if i not in (time_col, index_col, cue_col)]
    data_names = [names[i] for i in data_cols]
    unused: list[str] = []
    if channels is None:
        chosen = []
        for i in data_cols:
            lname = names[i].strip().lower()
            if not layout.numeric[i] or (not layout.own_format and lname in _NOT_SIGNAL_NAMES):
                unused.append(names[i])
            else:
                chosen.append(i)
        if not chosen:
            shown = ", ".join(repr(v) for v in layout.first_values[:8])
            hint = ""
            if any(_DECIMAL_COMMA.fullmatch(v) for v in layout.first_values):
                hint = " (decimal commas? use '.' as decimal point)"
            raise InputFileError(
                layout.path,
                f"no numeric channel column found{hint}: columns {', '.join(names)}, first data row {shown}; "
                "choose columns with channels",
            )
    else:
        if not data_cols:
            raise ParameterError("channels", "a data column, but the file has none besides time/index/cue", channels)
        chosen = [data_cols[k] for k in parse_channel_spec(channels, data_names)]
        unused = [names[i] for i in data_cols if i not in chosen]
    used = ([time_col] if time_col is not None else []) + ([index_col] if index_col is not None else []) + chosen
    return _Plan(time_col, scale, tunit, known, index_col, cue_col, chosen, used, unused)


# ---------------------------------------------------------------------------
# vectorised block parser
# ---------------------------------------------------------------------------
_U64 = np.uint64
_ASCII_ZEROS = _U64(0x3030303030303030)
_M1 = _U64(0x00FF00FF00FF00FF)
_M2 = _U64(0x0000FFFF0000FFFF)
_M3 = _U64(0x00000000FFFFFFFF)
# _KEEP[L]: keep the last L bytes of a little-endian 8-byte word (the L digits
# just before the end position).
_KEEP = np.array([0] + [((1 << 64) - 1) ^ ((1 << (8 * (8 - n))) - 1) for n in range(1, 9)], dtype=np.uint64)
# Dropping the decimal point from the 8-byte word that ends a mantissa, by
# the number of digits after the point (index 8, or -1: no point):
# _FRACTION[k] keeps the k digits after the point, _BEFORE_POINT[k] the
# bytes before it (shifted up one byte, over the point).
_FRACTION = np.concatenate((_KEEP[:8], [~_U64(0)])).astype(np.uint64)
_BEFORE_POINT = np.concatenate((~_KEEP[1:9], [_U64(0)])).astype(np.uint64)
# In a byte of ``word ^ _ASCII_ZEROS``, bit 4 is set for the point ('.' is
# 0x2E, 0x1E after the XOR) and clear for a digit (0..9). Signs and exponent
# letters would set it too, but _parse_fast rules them out of the mantissa
# before looking for points.
_POINT_BITS = _U64(0x1010101010101010)
_POW10_U = np.array([10 ** k for k in range(20)], dtype=np.uint64)
_POW10_F = 10.0 ** np.arange(23)
_EXACT_INT = 2 ** 53
_PAD = 16


def _swar8(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Value of the last ``lengths`` ASCII digits of each 8-byte word."""
    return _combine_digit_bytes((words ^ _ASCII_ZEROS) & _KEEP[lengths])


# (multiplier, shift, mask) of the steps of _combine_digit_bytes.
_COMBINE_STEPS = ((_U64(10), _U64(8), _M1), (_U64(100), _U64(16), _M2), (_U64(10000), _U64(32), _M3))


def _combine_digit_bytes(w: np.ndarray) -> np.ndarray:
    """Value of the 8 digits held one per byte (0-9, not ASCII) in each word.

    The last byte in memory (the most significant, little-endian) is the
    units digit. Three multiply-shift steps combine digit pairs, then pairs
    of pairs, then the two 4-digit halves (classic SIMD-within-a-register
    decoding): ``w = (w * 10 + (w >> 8)) & _M1`` and so on, done in place,
    so ``w`` (uint64) is overwritten by the result.
    """
    for multiplier, shift, mask in _COMBINE_STEPS:
        higher = w >> shift
        w *= multiplier
        w += higher
        w &= mask
    return w


def _digits_value(words_at, end: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Integer value of the ``length`` (<= 16) digits ending at ``end``."""
    val = _swar8(words_at[end + (_PAD - 8)], np.minimum(length, 8))
    long_ = np.flatnonzero(length > 8)
    if long_.size:
        hi = _swar8(words_at[end[long_] + (_PAD - 16)], np.minimum(length[long_] - 8, 8))
        val[long_] += hi * _U64(10 ** 8)
    return val


def _mantissa_value(words_at, ms, dot, mend, n_int, n_frac) -> np.ndarray:
    """Integer value of the mantissa digits (the point left out), <= 19 digits.

    A mantissa of at most 8 bytes, point included (``12.85``, ``-0.001``:
    nearly every field of a recording), is decoded from the one word that
    ends it, with the point dropped by a shift; the others from their
    integer and fraction parts. Both give the same integer.
    """
    span = mend - ms
    long_ = np.flatnonzero(span > 8)
    if 2 * long_.size > span.size:  # mostly long numbers ("%.17g"): two parts each
        return _split_mantissa_value(words_at, dot, mend, n_int, n_frac)
    after_point = mend - dot - 1  # digits after the point; -1 (the table's last entry): no point
    if long_.size:
        after_point = np.minimum(after_point, 7)  # long ones are decoded below
    w = words_at[mend + (_PAD - 8)]
    w = (w & _FRACTION[after_point]) | ((w & _BEFORE_POINT[after_point]) << _U64(8))
    m = _swar8(w, np.minimum(n_int + n_frac, 8) if long_.size else n_int + n_frac)
    if long_.size:
        m[long_] = _split_mantissa_value(words_at, dot[long_], mend[long_], n_int[long_], n_frac[long_])
    return m


def _split_mantissa_value(words_at, dot, mend, n_int, n_frac) -> np.ndarray:
    """Mantissa value from its integer part and its fraction (<= 16 digits each)."""
    lf = np.minimum(n_frac, 16)
    ip = _digits_value(words_at, dot, np.minimum(n_int, 16))
    fp = _digits_value(words_at, mend, lf)
    return ip * _POW10_U[np.minimum(lf, 19)] + fp


def _allowed_bytes(delim: int | None) -> bytes:
    extra = b"\t" if delim is None else bytes([delim])
    return b"0123456789.+-eE \r\n" + extra


def _parse_fast(buf: bytes, delim: int | None, nf: int) -> np.ndarray | None:
    """Parse a block of complete, purely numeric lines; None if it cannot.

    Parameters
    ----------
    buf : bytes
        Whole lines, each ending with ``b"\\n"``.
    delim : int or None
        Delimiter byte, or None for runs of whitespace.
    nf : int
        Fields per line; every line must have exactly this many.

    Returns
    -------
    ndarray, shape (n_lines, nf), or None
        None whenever anything is unusual (a character other than digits,
        sign, point, exponent, blank, delimiter; an empty field; a ragged
        row; a malformed number; many over-long numbers). The caller then
        uses the general path, which accepts or explains it. A field is
        accepted only if it is ``[sign] digits [. digits] [e [sign] digits]``
        and the value is the correctly rounded double, like ``float()``.
    """
    if buf.translate(None, _allowed_bytes(delim)):
        return None
    b = np.frombuffer(buf, np.uint8)
    is_nl = b == 10
    n_lines = int(np.count_nonzero(is_nl))
    if n_lines == 0:
        return None
    has_blank = bool(np.count_nonzero(b == 32)) or bool(np.count_nonzero(b == 13))
    if delim is None:
        blank = (b == 32) | (b == 9) | (b == 13) | is_nl
        content = ~blank
        edges = np.diff(content.view(np.int8), prepend=np.int8(0), append=np.int8(0))
        rs = np.flatnonzero(edges == 1)
        re_ = np.flatnonzero(edges == -1)
        n_fields = rs.size
        if n_fields != n_lines * nf:
            return None
        nl_pos = np.flatnonzero(is_nl)
        if not np.array_equal(np.searchsorted(rs, nl_pos), np.arange(1, n_lines + 1) * nf):
            return None
        # Field of a byte inside a field: the fields begun up to it, less one.
        field_bounds, field_shift = edges[:-1] == 1, -1
    else:
        sep = is_nl  # newlines and, from here on, delimiters (one array less at the peak)
        sep |= b == delim
        seps = np.flatnonzero(sep)
        n_fields = seps.size
        if n_fields != n_lines * nf or not np.all(b[seps[nf - 1::nf]] == 10):
            return None
        starts = np.empty(n_fields, np.int64)
        starts[0] = 0
        starts[1:] = seps[:-1] + 1
        # Field of a byte inside a field: the separators before it.
        field_bounds, field_shift = sep, 0
        if has_blank:
            content = ~(sep | (b == 32) | (b == 13))
            edges = np.diff(content.view(np.int8), prepend=np.int8(0), append=np.int8(0))
            rs = np.flatnonzero(edges == 1)
            re_ = np.flatnonzero(edges == -1)
            # Exactly one run of content per field: no empty field, no blank
            # inside a number.
            if rs.size != n_fields or not (np.all(rs >= starts) and np.all(re_ <= seps)):
                return None
        else:
            # An empty field (re_ == rs) has no digit: rejected with the mantissas.
            rs, re_ = starts, seps

    first = b[rs]
    neg = first == 45
    signed = neg | (first == 43)
    ms = rs + signed  # mantissa start
    mend = re_  # mantissa end (exclusive); before the exponent when there is one
    exp10 = None

    n_e = int(np.count_nonzero(b == 101) + np.count_nonzero(b == 69))
    n_exp_signs = 0
    if n_e:
        # The exponent is short: look for the 'e' 2..5 bytes before the end.
        q = np.full(n_fields, -1, np.int64)
        for k in (2, 3, 4, 5):
            pos = re_ - k
            ok = (pos >= ms) & (q < 0)
            hit = ok & ((b[np.maximum(pos, 0)] | 0x20) == 101)
            q[hit] = pos[hit]
        fe = np.flatnonzero(q >= 0)
        if fe.size != n_e:
            return None
        qe = q[fe]
        after = b[qe + 1]
        esign = (after == 43) | (after == 45)
        ds = qe + 1 + esign
        nde = re_[fe] - ds
        if np.any(nde < 1):
            return None
        ev = np.zeros(fe.size, np.int64)
        for j in range(4):
            sel = np.flatnonzero(nde > j)
            if not sel.size:
                break
            ch = b[ds[sel] + j].astype(np.int64)
            if np.any((ch < 48) | (ch > 57)):
                return None
            ev[sel] = ev[sel] * 10 + (ch - 48)
        ev[after == 45] *= -1
        exp10 = np.zeros(n_fields, np.int64)
        exp10[fe] = ev
        mend = re_.copy()
        mend[fe] = qe
        n_exp_signs = int(np.count_nonzero(esign))

    # Every sign must be a leading sign or an exponent sign.
    if int(np.count_nonzero(b == 45) + np.count_nonzero(b == 43)) != int(np.count_nonzero(signed)) + n_exp_signs:
        return None

    n_dot = int(np.count_nonzero(b == 46))
    padded = b"0" * _PAD + buf
    words_at = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    span = mend - ms  # mantissa bytes, point included
    if int(span.max()) <= 8:
        # Nearly every recording ("12.85", "-0.001", "59.999"): each mantissa
        # lies in the one word that ends it, and its point is found there,
        # without the passes over the block's bytes of the general case.
        short = _short_mantissas(words_at, mend, span, n_dot)
        if short is None:
            return None
        mantissa, n_frac = short
        slow = None  # at most 8 digits: exact
    else:
        dot = _point_positions(b, field_bounds, field_shift, ms, mend, n_dot)
        if dot is None:
            return None
        n_int = dot - ms
        n_frac = np.maximum(mend - dot - 1, 0)
        n_dig = n_int + n_frac
        if np.any(n_dig < 1):
            return None
        slow = (n_int > 16) | (n_frac > 16) | (n_dig > 19)
        mantissa = _mantissa_value(words_at, ms, dot, mend, n_int, n_frac)
        slow |= mantissa > _U64(_EXACT_INT)
        mantissa = mantissa.astype(np.float64)
    # mantissa exact (< 2**53) and 10**|e| exact (|e| <= 22): one
    # multiplication or division is correctly rounded, the same double as
    # float().
    if n_e:
        e10 = exp10 - n_frac
        far = np.abs(e10) > 22
        slow = far if slow is None else slow | far
        val = np.where(e10 >= 0, mantissa * _POW10_F[np.clip(e10, 0, 22)],
                       mantissa / _POW10_F[np.clip(-e10, 0, 22)])
    else:  # no exponent: e10 = -n_frac <= 0 (more than 16 digits after the point: slow already)
        val = mantissa
        val /= _POW10_F[np.minimum(n_frac, 22)]
    # Times -1.0 is exact, and far faster than a masked negation.
    val *= np.where(neg, -1.0, 1.0)
    if slow is not None:
        slow_idx = np.flatnonzero(slow)
        if slow_idx.size:
            if slow_idx.size > max(64, n_fields // 16):
                return None
            for i in slow_idx:
                val[i] = float(buf[rs[i]:re_[i]])
    return val.reshape(n_lines, nf)


def _short_mantissas(words_at, mend: np.ndarray, span: np.ndarray,
                     n_dot: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Value and digits after the point of mantissas of at most 8 bytes.

    Parameters
    ----------
    words_at : ndarray of uint64
        The block's bytes after :data:`_PAD` ASCII zeros, as the 8-byte word
        starting at every offset.
    mend : ndarray of int, shape (n_fields,)
        Offset in the block just after each mantissa (before an exponent).
    span : ndarray of int, shape (n_fields,)
        Bytes of each mantissa, point included, at most 8; no sign.
    n_dot : int
        Points in the whole block.

    Returns
    -------
    (mantissa, n_frac) or None
        ``mantissa`` (float64, shape (n_fields,)): the mantissa digits as an
        integer (exact: below 10**8), the point left out; ``n_frac`` (int,
        shape (n_fields,)): digits after the point. None when a point is not
        in a mantissa (``1e.5``), a mantissa has two points or no digit.

    Notes
    -----
    The caller has ruled out signs and exponent letters inside mantissas,
    so a mantissa byte is a digit or a point, told apart by bit 4 (see
    :data:`_POINT_BITS`). ``mantissa`` is the integer :func:`_mantissa_value`
    gives.
    """
    # In place, and the temporaries in helpers that free them on return: the
    # parser's peak memory, and so the heap's growth and trimming, stays low.
    digits = words_at[mend + (_PAD - 8)]
    digits ^= _ASCII_ZEROS
    digits &= _KEEP[span]
    after_point = _digits_after_point(digits, span, n_dot)
    if after_point is None:
        return None
    _drop_point(digits, after_point)
    mantissa = _combine_digit_bytes(digits).astype(np.float64)
    return mantissa, after_point & 7  # 8 (no point) -> 0 digits after it


def _digits_after_point(digits: np.ndarray, span: np.ndarray, n_dot: int) -> np.ndarray | None:
    """Digits after the point of one-word mantissas, checking the points.

    Parameters
    ----------
    digits : ndarray of uint64, shape (n_fields,)
        Each mantissa's word XOR :data:`_ASCII_ZEROS`, bytes before the
        mantissa zeroed: digit values, and 0x1E for the point.
    span, n_dot
        As in :func:`_short_mantissas`.

    Returns
    -------
    ndarray of int32, shape (n_fields,), or None
        0-7, or 8 for a mantissa without a point (the last entry of
        :data:`_FRACTION` and :data:`_BEFORE_POINT`). None when a point of
        the block is outside the mantissas, or a mantissa has two points or
        no digit.
    """
    points = digits & _POINT_BITS
    # As many words with a point as points in the block: as the mantissas do
    # not overlap, every point is then in a mantissa, one at most in each.
    # And each mantissa has a digit.
    if int(np.count_nonzero(points)) != n_dot or np.any(span <= (points != 0)):
        return None
    # Byte j (0-7) of the point, from the exponent of its one bit as a float:
    # 2**(8j + 4) = 0.5 * 2**(8j + 5); frexp(0) gives 0, so j = -1 then.
    exponent = np.frexp(points.astype(np.float64))[1]
    return 7 - ((exponent - 5) >> 3)


def _drop_point(digits: np.ndarray, after_point: np.ndarray) -> None:
    """Take the point out of each word, in place: the bytes before it move
    up one byte, over it (``after_point`` as :func:`_digits_after_point` gives)."""
    before_point = digits & _BEFORE_POINT[after_point]
    digits &= _FRACTION[after_point]
    before_point <<= _U64(8)
    digits |= before_point


def _point_positions(b: np.ndarray, field_bounds: np.ndarray, field_shift: int, ms: np.ndarray,
                     mend: np.ndarray, n_dot: int) -> np.ndarray | None:
    """Offset of each field's point, for mantissas of any length.

    Parameters
    ----------
    b : ndarray of uint8
        The block's bytes.
    field_bounds : ndarray of bool, shape like ``b``
        Bytes that end a field (delimiters, newlines; ``field_shift`` 0) or
        begin one (whitespace-separated rows; ``field_shift`` -1).
    field_shift : int
        Added to the running count of ``field_bounds`` to give a byte's field.
    ms, mend : ndarray of int, shape (n_fields,)
        Start and end (exclusive) of each mantissa.
    n_dot : int
        Points in the whole block.

    Returns
    -------
    ndarray of int, shape (n_fields,), or None
        The point's offset, or the mantissa end when there is none; None when
        a point is outside the mantissas or two share one.
    """
    dot = mend.copy()  # no point: the integer part runs to the mantissa end
    if n_dot:
        dp = np.flatnonzero(b == 46)
        if n_dot == ms.size and np.all((dp >= ms) & (dp < mend)):
            dot = dp
        else:
            # Some fields have no point (whole seconds in a time column): find
            # the field of each point by counting field boundaries, one pass
            # over the bytes instead of a binary search per point.
            fd = np.cumsum(field_bounds, dtype=np.intp)[dp] + field_shift
            if np.any(fd >= ms.size) or np.any(np.diff(fd) == 0):
                return None
            if not np.all((dp >= ms[fd]) & (dp < mend[fd])):
                return None
            dot[fd] = dp
    return dot


# ---------------------------------------------------------------------------
# general path and error explanation
# ---------------------------------------------------------------------------
def _data_lines(buf: bytes, line0: int, delimiter: str | None) -> tuple[list[str], np.ndarray]:
    """Lines with data (no blank/comment lines) and their 1-based line numbers."""
    text = _decode(buf)
    if '"' in text:  # quoted fields: the quotes are not part of the values
        text = text.replace('"', "")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    keep = [i for i, s in enumerate(lines) if not _is_blank(s, delimiter)]
    return [lines[i] for i in keep], np.asarray(keep, dtype=np.int64) + line0


def _explain(layout: _Layout, plan_cols: list[int], lines, line_nos, numeric: bool, fallback: str,
             channel_cols=()):
    """Find the first bad field and raise an InputFileError naming it."""
    need = max(plan_cols) + 1
    for text, ln in zip(lines, line_nos):
        fields = _split(_strip_comment(text), layout.delimiter)
        if layout.trailing_delimiter and len(fields) > 1 and fields[-1] == "":
            fields = fields[:-1]
        for j in sorted(plan_cols):
            if j >= len(fields):
                raise InputFileError(
                    layout.path,
                    f"expected at least {need} fields (up to column {layout.names[j]!r}), found {len(fields)}",
                    line=int(ln),
                )
            if not numeric:
                continue
            value = fields[j]
            if value == "":
                hint = ""
                if j in channel_cols:
                    hint = "; select other channels (channels=/--channels) if this column is not needed"
                raise InputFileError(
                    layout.path, f"expected a number, found an empty field{hint}", line=int(ln), column=layout.names[j]
                )
            if not _is_number(value):
                shown = value if len(value) <= 40 else value[:37] + "..."
                hint = ""
                if _DECIMAL_COMMA.fullmatch(value):
                    hint = " (decimal comma? use '.' as decimal point)"
                raise InputFileError(
                    layout.path, f"expected a number, found {shown!r}{hint}", line=int(ln), column=layout.names[j]
                )
    first = fallback.strip().splitlines()[0] if fallback.strip() else "unreadable rows"
    where = int(line_nos[0]) if len(line_nos) else None
    raise InputFileError(layout.path, f"cannot be read as numbers ({first})", line=where)


def _loadtxt(lines, layout: _Layout, cols: list[int], dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.loadtxt(
            lines,
            dtype=dtype,
            delimiter=layout.delimiter,
            usecols=cols,
            comments=["#", "%"],
            ndmin=2 if dtype is np.float64 else 1,
        )


def _parse_block(buf: bytes, line0: int, layout: _Layout, plan: _Plan):
    """Parse one block of whole lines.

    Returns
    -------
    values : ndarray, shape (len(plan.used), n_rows)
        Channels first (C order), so that later copies are contiguous.
    cues : ndarray of str, shape (n_rows,), or None
    line_nos : ndarray of int or None
        Physical line number of each row (None: rows are consecutive lines
        starting at ``line0``).
    """
    values = None
    line_nos = None
    lines = None
    dbyte = None if layout.delimiter is None else ord(layout.delimiter)
    if dbyte is None or dbyte < 128:
        fast_buf = buf
        if layout.trailing_delimiter:
            d = layout.delimiter.encode()
            fast_buf = buf.replace(d + b"\r\n", b"\r\n").replace(d + b"\n", b"\n")
        full = _parse_fast(fast_buf, dbyte, layout.n_cols)
        if full is not None:
            values = full.T[plan.used]
    if values is None:
        lines, line_nos = _data_lines(buf, line0, layout.delimiter)
        if not lines:
            values = np.empty((len(plan.used), 0))
        else:
            try:
                values = np.ascontiguousarray(_loadtxt(lines, layout, plan.used, np.float64).T)
            except ValueError as exc:
                _explain(layout, plan.used, lines, line_nos, True, str(exc), plan.channel_cols)
    if values.shape[1] and not np.all(np.isfinite(values)):
        bad = ~np.isfinite(values)
        r = int(np.flatnonzero(bad.any(axis=0))[0])  # first bad row, then its first bad column
        c = int(np.flatnonzero(bad[:, r])[0])
        ln = int(line0 + r if line_nos is None else line_nos[r])
        what = "NaN" if np.isnan(values[c, r]) else "an infinite value"
        raise InputFileError(
            layout.path,
            f"{what} is not a valid sample (found '{float(values[c, r])}'); remove or fill the gap before reading",
            line=ln,
            column=layout.names[plan.used[c]],
        )
    cues = None
    if plan.cue_col is not None:
        if lines is None:
            lines, line_nos = _data_lines(buf, line0, layout.delimiter)
        if not lines:
            cues = np.empty(0, dtype=str)
        else:
            try:
                cues = np.char.strip(_loadtxt(lines, layout, [plan.cue_col], str).astype(str))
            except ValueError as exc:
                _explain(layout, [plan.cue_col], lines, line_nos, False, str(exc))
            if cues.shape[0] != values.shape[1]:  # pragma: no cover - both skip the same lines
                raise InputFileError(layout.path, "cue column and data rows do not line up")
    return values, cues, line_nos


def _block_bytes(layout: _Layout) -> int:
    """Bytes per block: :data:`BLOCK_BYTES`, or fewer to hold about
    :data:`_BLOCK_FIELDS` fields of the sniffed row length."""
    per_field = layout.bytes_per_row / max(layout.n_cols, 1)
    return max(1, int(min(BLOCK_BYTES, _BLOCK_FIELDS * per_field)))


def _raw_blocks(layout: _Layout) -> Iterator[tuple[bytes, int]]:
    """Yield (bytes of whole lines ending in LF, line number of the first)."""
    nl = layout.newline
    line_no = layout.first_data_line
    remaining = layout.data_end - layout.data_offset
    block = _block_bytes(layout)
    carry = b""
    with open(layout.path, "rb") as fh:
        fh.seek(layout.data_offset)
        while remaining > 0:
            piece = fh.read(min(block, remaining))
            if not piece:
                break
            remaining -= len(piece)
            buf = carry + piece if carry else piece
            if remaining > 0:
                cut = buf.rfind(nl) + 1
                if cut == 0:  # one line longer than a block: keep reading
                    carry = buf
                    continue
                carry, buf = buf[cut:], buf[:cut]
            else:
                carry = b""
                if not buf.endswith(nl):
                    buf += nl
            if nl == b"\r":
                buf = buf.replace(b"\r", b"\n")
            yield buf, line_no
            line_no += int(np.count_nonzero(np.frombuffer(buf, np.uint8) == 10))
        if carry:  # pragma: no cover - only if the file shrank while reading
            buf = carry if carry.endswith(nl) else carry + nl
            yield (buf.replace(b"\r", b"\n") if nl == b"\r" else buf), line_no


# ---------------------------------------------------------------------------
# the stream: fs, time checks, index jumps
# ---------------------------------------------------------------------------
class _CsvStream:
    """Parsed blocks of one file, with the sampling rate settled."""

    def __init__(self, path, fs, channels, time_column, cue_column, delimiter):
        if fs is not None:
            fs = check_sampling_rate(fs, "fs")
        if not (time_column is None or time_column == "auto" or isinstance(time_column, (str, int, np.integer))):
            raise ParameterError("time_column", "'auto', None, a column name or a 0-based column", time_column)
        self.layout = layout = _scan_head(path, delimiter)
        self.plan = plan = _plan_columns(layout, channels, time_column, cue_column)
        if fs is None and layout.comment_fs is None and plan.time_col is None:
            raise InputFileError(layout.path, "sampling rate is missing: pass --fs HZ or add a time column")
        self._parsed = (
            (_parse_block(buf, line0, layout, plan), line0) for buf, line0 in _raw_blocks(layout)
        )
        self._pending: list = []
        extra = {
            "delimiter": "whitespace" if layout.delimiter is None else layout.delimiter,
            "header": layout.has_header,
            "columns": tuple(layout.names),
            "unused_columns": tuple(plan.unused),
            "trailing_empty_rows": layout.trailing_empty_rows,
        }
        if layout.own_format and layout.comment_source:
            extra["original_source"] = layout.comment_source
        if plan.cue_col is not None:
            extra["cue_column"] = layout.names[plan.cue_col]
        if plan.index_col is not None:
            extra["index_column"] = layout.names[plan.index_col]
            extra["index_jumps"] = 0
        self._time_strict = False
        if plan.time_col is not None:
            extra["time_column"] = layout.names[plan.time_col]
            extra["time_unit"] = plan.time_unit
        self.fs, fs_source = self._settle_fs(fs, extra)
        extra["fs_source"] = fs_source
        if plan.time_col is not None and not self._time_strict:
            extra["time_irregular_steps"] = 0
        ch_units = [layout.units[i] for i in plan.channel_cols]
        if any(ch_units):
            extra["channel_units"] = tuple(u or UNKNOWN_UNITS for u in ch_units)
        if ch_units and all(ch_units) and len(set(ch_units)) == 1:
            units = ch_units[0]
        elif not any(ch_units) and layout.comment_units:
            units = layout.comment_units
        else:
            units = UNKNOWN_UNITS
        self.info = StreamInfo(
            fs=self.fs,
            ch_names=tuple(layout.names[i] for i in plan.channel_cols),
            units=units,
            source=layout.path,
            extra=extra,
        )
        self._extra = extra

    # -- sampling rate ------------------------------------------------------
    def _lookahead_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Time stamps (s) and line numbers of the first rows, for fs."""
        times, lines, n = [], [], 0
        while n < _FS_ESTIMATE_ROWS:
            nxt = next(self._parsed, None)
            if nxt is None:
                break
            self._pending.append(nxt)
            (values, _cues, line_nos), line0 = nxt
            t = values[0] * self.plan.time_scale
            times.append(t)
            lines.append(np.arange(line0, line0 + len(t)) if line_nos is None else line_nos)
            n += len(t)
        if not times:
            return np.empty(0), np.empty(0, np.int64)
        return np.concatenate(times)[:_FS_ESTIMATE_ROWS], np.concatenate(lines)[:_FS_ESTIMATE_ROWS]

    def _settle_fs(self, fs, extra) -> tuple[float, str]:
        layout, plan = self.layout, self.plan
        tname = layout.names[plan.time_col] if plan.time_col is not None else None
        if fs is not None:
            source, declared = "argument", fs
            if layout.comment_fs is not None:
                extra["header_fs"] = layout.comment_fs
        elif layout.comment_fs is not None:
            source, declared = "header comment", layout.comment_fs
        else:
            source, declared = "time column", None
        if plan.time_col is None:
            return declared, source

        t, lines = self._lookahead_times()
        if t.size == 0:
            raise InputFileError(layout.path, "has no data rows")
        if not plan.time_unit_known and t.size >= 2:
            # A column named just "time" holds seconds, unless its median step
            # would mean a rate below 2 Hz, which no sEMG recording has: then
            # the stamps are milliseconds (or microseconds), as in many
            # device exports. The choice is recorded in info.extra.
            med_raw = float(np.median(np.diff(t))) / plan.time_scale
            for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
                if med_raw * scale < 0.5:
                    break
            t = t * (scale / plan.time_scale)
            plan.time_scale, plan.time_unit = scale, unit
            extra["time_unit"] = unit
            extra["time_unit_inferred"] = True
        self._t0 = float(t[0])
        extra["t0_s"] = self._t0
        what = f"time column {tname!r} ({plan.time_unit})"
        if t.size < 2:
            if declared is None:
                raise InputFileError(
                    layout.path, f"cannot infer the sampling rate from a {what} with one row: pass --fs HZ"
                )
            return declared, source
        steps = np.diff(t)
        med = float(np.median(steps))
        if declared is not None:
            if med <= 0:
                raise InputFileError(layout.path, f"{what} does not increase (median step {med:g} s)")
            fs_med = 1.0 / med
            if abs(fs_med - declared) > 0.01 * declared:
                given = "--fs" if source == "argument" else f"the header ({layout.comment_fs_text!r})"
                raise InputFileError(
                    layout.path,
                    f"sampling rate {declared:g} Hz from {given} disagrees with the {what}: "
                    f"median step {med * 1000:g} ms = {fs_med:g} Hz (more than 1 % apart)",
                )
            return declared, source

        # fs from the time column alone: the stamps must be regular.
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            k = bad[0] + 1
            raise InputFileError(
                layout.path,
                f"{what} does not increase ({t[k]:.9g} s after {t[k - 1]:.9g} s); "
                "pass --fs HZ to read the rows as equally spaced samples",
                line=int(lines[k]), column=tname,
            )
        fs_mean = (t.size - 1) / (t[-1] - t[0])
        k = np.arange(t.size)
        for digits in range(0, 7):
            cand = round(fs_mean, digits)
            if cand > 0 and np.max(np.abs(t - t[0] - k / cand)) <= 0.5 / cand:
                self._time_strict = True
                return float(cand), source
        off = np.abs(steps - med) > 0.5 * med
        worst = int(np.argmax(np.abs(steps - med)))
        raise InputFileError(
            layout.path,
            f"{what} is irregular: {100 * off.mean():.1f} % of the first {t.size} steps differ from the "
            f"median step ({med * 1000:g} ms = {1 / med:g} Hz) by more than half a step, e.g. "
            f"{steps[worst] * 1000:g} ms before line {int(lines[worst + 1])}; resample it to a fixed rate, "
            "or pass --fs HZ to read the rows as equally spaced samples",
        )

    # -- blocks -------------------------------------------------------------
    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yield (samples (n_ch, n) float64, cues (n,) or None) per block."""
        plan = self.plan
        n_done = 0
        last_t = None
        last_idx = None
        n_lead = (plan.time_col is not None) + (plan.index_col is not None)
        while True:
            if self._pending:
                item = self._pending.pop(0)
            else:
                item = next(self._parsed, None)
                if item is None:
                    return
            (values, cues, line_nos), line0 = item
            n = values.shape[1]
            if n == 0:
                continue
            col = 0
            if plan.time_col is not None:
                t = values[0] * plan.time_scale
                self._check_time(t, n_done, last_t, line0, line_nos)
                last_t = float(t[-1])
                col = 1
            if plan.index_col is not None:
                idx = values[col]
                prev = np.concatenate(([idx[0] - 1 if last_idx is None else last_idx], idx[:-1]))
                jumps = (idx - prev != 1) & (idx != 0)  # a drop to 0 is a counter wrap
                self._extra["index_jumps"] += int(np.count_nonzero(jumps))
                last_idx = float(idx[-1])
            n_done += n
            yield values[n_lead:], cues

    def _check_time(self, t, n_done, last_t, line0, line_nos) -> None:
        fs = self.fs
        if self._time_strict:
            expected = self._t0 + (n_done + np.arange(t.size)) / fs
            bad = np.flatnonzero(np.abs(t - expected) > 0.5 / fs)
            if bad.size:
                r = int(bad[0])
                ln = int(line0 + r if line_nos is None else line_nos[r])
                tname = self.layout.names[self.plan.time_col]
                raise InputFileError(
                    self.layout.path,
                    f"irregular timing: time {t[r]:.9g} s where {expected[r]:.9g} s is expected at "
                    f"{fs:g} Hz (a gap, a repeat or drift of more than half a sample); resample the file "
                    "or pass --fs HZ to read the rows as equally spaced samples",
                    line=ln, column=tname,
                )
        else:
            steps = np.diff(t) if last_t is None else np.diff(np.concatenate(([last_t], t)))
            self._extra["time_irregular_steps"] += int(np.count_nonzero(np.abs(steps * fs - 1.0) > 0.5))


# ---------------------------------------------------------------------------
# public reader API
# ---------------------------------------------------------------------------
def iter_csv(
    path,
    chunk_samples: int = 65536,
    fs=None,
    channels=None,
    time_column="auto",
    cue_column=None,
    delimiter=None,
) -> tuple[StreamInfo, Iterator[Chunk]]:
    """Stream a delimited text recording in chunks, without loading it whole.

    The file is read in byte blocks of at most :data:`BLOCK_BYTES`; each block is
    parsed vectorised. The head of the file (comments, header, delimiter)
    is checked before returning; with a time column, the first 10 000 rows
    are parsed too, to settle the sampling rate. A problem further in the
    file is raised while iterating.

    Parameters
    ----------
    path : str or Path
        The file.
    chunk_samples : int
        Samples per yielded chunk (the last one may be shorter).
    fs, channels, time_column, cue_column, delimiter
        As in :func:`read_csv`.

    Returns
    -------
    info : StreamInfo
        Metadata. ``info.extra`` counters (``index_jumps``,
        ``time_irregular_steps``) are updated while iterating and are final
        once the iterator is exhausted.
    chunks : iterator of Chunk
        Consecutive chunks, ``data`` shape ``(n_channels, n)`` float64 in
        ``info.units``, ``first_sample`` counted from the first row. With a
        cue column, ``chunk.layers["cues"]`` holds the cue values as an
        object array of shape ``(1, n)`` (one row, because layers are 2-D).

    Raises
    ------
    InputFileError
        The file cannot be read as asked (message names line and column).
    ParameterError
        A bad argument (e.g. an unknown channel).
    """
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, (int, np.integer)) or chunk_samples <= 0:
        raise ParameterError("chunk_samples", "a positive number of samples", chunk_samples)
    chunk_samples = int(chunk_samples)
    stream = _CsvStream(path, fs, channels, time_column, cue_column, delimiter)
    return stream.info, _rechunk(stream, chunk_samples)


def _rechunk(stream: _CsvStream, size: int) -> Iterator[Chunk]:
    info = stream.info
    parts: list[np.ndarray] = []  # parsed blocks not yet handed out, oldest first
    cue_parts: list[np.ndarray] = []
    held = 0
    first = 0
    with_cues = stream.plan.cue_col is not None

    def emit(data, cues):
        layers = {"cues": np.asarray(cues, dtype=object).reshape(1, -1)} if with_cues else {}
        return Chunk(np.ascontiguousarray(data), first, info, layers=layers)

    for data, cues in stream.blocks():
        parts.append(data)
        if with_cues:
            cue_parts.append(cues)
        held += data.shape[1]
        while held >= size:
            yield emit(_take_front(parts, size), _take_front(cue_parts, size) if with_cues else None)
            first += size
            held -= size
    if held:
        yield emit(_take_front(parts, held), _take_front(cue_parts, held) if with_cues else None)


def _take_front(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Remove the first ``n`` samples (along the last axis) from ``parts``.

    Parameters
    ----------
    parts : list of ndarray
        Consecutive pieces, shape ``(n_channels, k)`` or ``(k,)``, holding
        at least ``n`` samples together; the list is shortened in place.
    n : int
        Samples to take.

    Returns
    -------
    ndarray
        The ``n`` samples: one piece's view, or the pieces joined. Only the
        samples of one chunk are copied (joining all held blocks first and
        then copying each chunk out of that copied 8-channel data twice).
    """
    taken = []
    while n:
        piece = parts[0]
        if piece.shape[-1] <= n:
            taken.append(parts.pop(0))
            n -= piece.shape[-1]
        else:
            taken.append(piece[..., :n])
            parts[0] = piece[..., n:]
            n = 0
    return taken[0] if len(taken) == 1 else np.concatenate(taken, axis=-1)


def read_csv(path, fs=None, channels=None, time_column="auto", cue_column=None, delimiter=None) -> Recording:
    """Read a delimited text recording into memory.

    Parameters
    ----------
    path : str or Path
        A CSV/TSV/whitespace text file. Comment lines start with ``#`` or
        ``%``; the first non-comment row is a header when none of its fields
        is a number.
    fs : float, optional
        Sampling rate in Hz. Wins over a rate found in the file; a time
        column that disagrees with it by more than 1 % is an error.
    channels : None, str, int or sequence
        Channels to read, among the data columns (all columns except the
        time, index and cue columns), by name or 0-based position; see
        :func:`parse_channel_spec` (``"0-7"``, ``"ch1,ch3"``, ``"!8"``).
        None: every numeric data column (see the module notes).
    time_column : "auto", None, str or int
        ``"auto"`` finds a header named like ``time``, ``t``, ``time_s``,
        ``time (s)``, ``seconds`` (seconds), ``time_ms``, ``ms``,
        ``millis``, ``timestamp_ms`` (milliseconds) or ``time_us``
        (microseconds). A name or 0-based file column picks one (seconds
        unless its name gives a unit); None means no time column.
    cue_column : str or int, optional
        Name or 0-based file column of a label/cue column, returned as
        :attr:`Recording.cues` (raw text values).
    delimiter : str, optional
        ``","``, ``";"``, ``"\\t"``, ``"whitespace"`` or another single
        character; sniffed when None.

    Returns
    -------
    Recording
        ``data`` shape ``(n_channels, n_samples)`` float64 in
        ``info.units``; ``info.extra`` tells what was found (delimiter,
        header, time column, ``t0_s``, ``fs_source``...).

    Raises
    ------
    InputFileError
        Missing/empty file, missing sampling rate, a bad or missing value
        in a selected column, NaN/inf, irregular time stamps. The message
        names file, line (1-based physical line) and column.
    ParameterError
        Bad arguments, e.g. an unknown channel (the available names are
        listed).
    """
    stream = _CsvStream(path, fs, channels, time_column, cue_column, delimiter)
    # One output array, sized from the file size and the sniffed row length
    # and doubled when short: keeping hundreds of block arrays and
    # concatenating them at the end was markedly slower.
    layout = stream.layout
    capacity = max(1024, int(1.05 * (layout.data_end - layout.data_offset) / max(layout.bytes_per_row, 1.0)))
    data = np.empty((stream.info.n_channels, capacity))
    n = 0
    cues = []
    for block, cue in stream.blocks():
        k = block.shape[1]
        if n + k > data.shape[1]:
            grown = np.empty((data.shape[0], max(2 * data.shape[1], n + k)))
            grown[:, :n] = data[:, :n]
            data = grown
        data[:, n:n + k] = block
        n += k
        if cue is not None:
            cues.append(cue)
    if n == 0:
        raise InputFileError(stream.layout.path, "has no data rows")
    data = data[:, :n] if n > 0.9 * data.shape[1] else data[:, :n].copy()
    cue_arr = None
    if stream.plan.cue_col is not None:
        cue_arr = np.concatenate(cues).astype(str) if cues else np.empty(0, dtype=str)
    return Recording(data=data, info=stream.info, cues=cue_arr)


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------
def _check_output_path(path) -> Path:
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ParameterError("output directory", "an existing directory", str(parent))
    if p.is_dir():
        raise ParameterError("output path", "a file name, not a directory", str(p))
    return p


_BAD_TEXT = re.compile(r'[,"#%\r\n]')


def write_recording(path, recording: Recording, float_format: str = "%.6g") -> None:
    """Write a recording as CSV that :func:`read_csv` reads back.

    Layout: comment lines ``# biofeedback recording``, ``# sampling_rate_hz:
    <fs>`` (exact, ``repr``), ``# units: <units>``, ``# source: <source>``;
    the header ``time_s,<channel names>[,cue]``; one row per sample with the
    time ``k / fs`` in seconds (12 significant digits), the samples in
    ``float_format`` and the cue text. Values round-trip exactly when
    ``float_format`` prints them exactly (``"%.17g"`` always does).

    Parameters
    ----------
    path : str or Path
        Output file; its directory must exist.
    recording : Recording
        Data ``(n_channels, n_samples)``; optional cues ``(n_samples,)``.
    float_format : str
        printf-style format of one sample value.

    Raises
    ------
    ParameterError
        Missing output directory; a channel name or cue the reader would
        misread (comma, quote, ``#``, ``%``, line break, surrounding blanks,
        duplicates, the reserved names ``time_s``/``cue``); NaN or inf in
        the data (the reader rejects them); a bad ``float_format``.
    """
    p = _check_output_path(path)
    if not isinstance(recording, Recording):
        raise ParameterError("recording", "a Recording", type(recording).__name__)
    try:
        probe = float_format % 1.5
        float(probe)
    except (TypeError, ValueError):
        raise ParameterError("float_format", "a printf format for one number, e.g. '%.6g'", float_format) from None
    info = recording.info
    names = list(info.ch_names)
    for name in names:
        if (not name or name != name.strip() or _BAD_TEXT.search(name) or name in ("time_s", "cue")
                or name.lower() in _INDEX_NAMES):
            raise ParameterError(
                "channel name",
                "no comma, quote, '#', '%', line break or surrounding blanks; not 'time_s', 'cue' or an index "
                "name such as 'sample'",
                name,
            )
    if len(set(names)) != len(names):
        raise ParameterError("channel names", "unique names", names)
    data = np.asarray(recording.data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        ch, k = np.argwhere(~np.isfinite(data))[0]
        raise ParameterError(
            f"recording data (channel {names[ch]!r}, sample {k})", "finite numbers (the reader rejects NaN/inf)",
            data[ch, k],
        )
    cues = None
    if recording.cues is not None:
        cues = np.asarray(recording.cues).astype(str)
        if cues.shape != (recording.n_samples,):
            raise ParameterError("recording cues", f"shape ({recording.n_samples},)", f"shape {cues.shape}")
        bad = [c for c in np.unique(cues) if _BAD_TEXT.search(c) or c != c.strip()]
        if bad:
            raise ParameterError("cue value", "no comma, quote, '#', '%', line break or surrounding blanks", bad[0])
    units = str(info.units).replace("\n", " ").replace("\r", " ")
    source = str(info.source).replace("\n", " ").replace("\r", " ")
    header = ["time_s"] + names + (["cue"] if cues is not None else [])
    row_fmt = ",".join(["%.12g"] + [float_format] * len(names))
    n = data.shape[1]
    times = np.arange(n) / info.fs
    step = 20000
    with open(p, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"{OWN_FORMAT_MARK}\n# sampling_rate_hz: {info.fs!r}\n# units: {units}\n# source: {source}\n")
        fh.write(",".join(header) + "\n")
        for s in range(0, n, step):
            block = np.column_stack((times[s:s + step], data[:, s:s + step].T))
            if cues is None:
                fh.write("".join((row_fmt % tuple(r)) + "\n" for r in block.tolist()))
            else:
                fh.write("".join(
                    (row_fmt % tuple(r)) + "," + c + "\n" for r, c in zip(block.tolist(), cues[s:s + step].tolist())
                ))


def _event_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "" if math.isnan(v) else repr(v)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_events(path, events, file=None) -> None:
    """Write events as CSV, one row per event.

    Columns: ``file,channel,kind,onset_s,offset_s,duration_s,peak`` then the
    union of the events' ``extra`` keys, sorted. Times are seconds written
    exactly (``repr``); a NaN peak and a missing extra value are empty.

    Parameters
    ----------
    path : str or Path
        Output file; its directory must exist.
    events : iterable of Event
    file : str, optional
        Value of the ``file`` column for every row; when None, each event's
        ``extra["file"]`` (as :func:`read_events` sets it) or empty.

    Raises
    ------
    ParameterError
        Missing output directory, or an item that is not an Event.
    """
    p = _check_output_path(path)
    events = list(events)
    for ev in events:
        if not isinstance(ev, Event):
            raise ParameterError("events", "Event objects", type(ev).__name__)
    keys = sorted({str(k) for ev in events for k in ev.extra} - set(EVENT_COLUMNS))
    with open(p, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(list(EVENT_COLUMNS) + keys)
        for ev in events:
            extra = {str(k): v for k, v in ev.extra.items()}
            fname = file if file is not None else extra.get("file", "")
            row = [
                _event_value(fname), ev.channel, ev.kind, _event_value(float(ev.onset_s)),
                _event_value(float(ev.offset_s)), _event_value(float(ev.duration_s)), _event_value(float(ev.peak)),
            ]
            row += [_event_value(extra.get(k)) for k in keys]
            w.writerow(row)


_INT_TEXT = re.compile(r"[+-]?\d+")


def _parse_extra(text: str):
    if text in ("True", "False"):
        return text == "True"
    if _INT_TEXT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def read_events(path) -> list[Event]:
    """Read events written by :func:`write_events`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Event
        Extra columns become ``extra`` entries (empty cells are left out;
        ``True``/``False``, integers and floats are converted back); a
        non-empty ``file`` column becomes ``extra["file"]``. ``duration_s``
        is derived, so it is not read.

    Raises
    ------
    InputFileError
        Missing file, missing columns, a time that is not a number, or an
        offset before the onset (message names line and column).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(str(path), "file not found")
    if p.is_dir():
        raise InputFileError(str(path), "is a directory, expected an events CSV file")
    events: list[Event] = []
    with open(p, "r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = None
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                continue
            if header is None:
                header = [h.strip() for h in row]
                missing = [c for c in ("channel", "kind", "onset_s", "offset_s") if c not in header]
                if missing:
                    raise InputFileError(
                        str(path), f"expected event columns channel,kind,onset_s,offset_s; missing {','.join(missing)}",
                        line=reader.line_num,
                    )
                col = {name: i for i, name in enumerate(header)}
                extra_cols = [h for h in header if h not in EVENT_COLUMNS]
                continue
            line = reader.line_num

            def cell(name):
                i = col.get(name)
                return row[i].strip() if i is not None and i < len(row) else ""

            def number(name, allow_empty=False):
                text = cell(name)
                if text == "" and allow_empty:
                    return math.nan
                try:
                    v = float(text)
                except ValueError:
                    raise InputFileError(
                        str(path), f"expected a number, found {text!r}", line=line, column=name
                    ) from None
                if name != "peak" and not math.isfinite(v):
                    raise InputFileError(
                        str(path), f"expected a finite time in seconds, found {text!r}", line=line, column=name
                    )
                return v

            onset, offset = number("onset_s"), number("offset_s")
            if offset < onset:
                raise InputFileError(
                    str(path), f"offset {offset!r} s is before onset {onset!r} s", line=line, column="offset_s"
                )
            peak = number("peak", allow_empty=True) if "peak" in col else math.nan
            extra = {}
            if cell("file"):
                extra["file"] = cell("file")
            for name in extra_cols:
                text = cell(name)
                if text != "":
                    extra[name] = _parse_extra(text)
            events.append(Event(kind=cell("kind"), channel=cell("channel"), onset_s=onset, offset_s=offset,
                                peak=peak, extra=extra))
    if header is None:
        raise InputFileError(str(path), "file is empty (expected a header row of event columns)")
    return events
