"""Excel ``.xlsx`` recordings, read with ``openpyxl``.

One sheet is one recording. Default sheet: the first whose name contains
"emg" (case-insensitive), else the first sheet; ``sheet=`` names another
(name or 0-based index). A first row without numbers is the header (channel
names, ``name (unit)`` gives the unit); columns without numbers are left
out; rows that are empty at the end of the sheet are dropped, an empty cell
inside the data is an error naming the cell. A column named ``time``/
``time (s)``/``time_ms``... gives the rate when ``fs`` is not passed
(it must then be regular); spreadsheets rarely have one, so ``fs`` is
usually needed. The sheet is read whole (spreadsheets are small).
"""

from __future__ import annotations

import re

import numpy as np

from biofeedback.core.types import StreamInfo
from biofeedback.errors import InputFileError, ParameterError, check_sampling_rate
from biofeedback.io.readers._base import ReaderOptions, block_chunks, normalise_unit, require, select

_NAME_UNIT = re.compile(r"^(.*?)\s*[\(\[]\s*([^\)\]]{1,12})\s*[\)\]]$")
_TIME = {"time": 1.0, "t": 1.0, "time_s": 1.0, "seconds": 1.0, "time_ms": 1e-3, "ms": 1e-3}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _column_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def iter_xlsx(path, chunk_samples: int, opts: ReaderOptions):
    spath = str(path)
    openpyxl = require("openpyxl", "Excel .xlsx files")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # damaged archive, not a workbook
        raise InputFileError(spath, f"Excel workbook cannot be opened ({type(exc).__name__}: {exc})") from None
    try:
        titles = list(wb.sheetnames)
        if opts.sheet is None:
            title = next((t for t in titles if "emg" in t.lower()), titles[0])
        elif str(opts.sheet) in titles:
            title = str(opts.sheet)
        elif str(opts.sheet).isdigit() and int(opts.sheet) < len(titles):
            title = titles[int(opts.sheet)]
        else:
            raise ParameterError("sheet", f"a sheet of this workbook ({', '.join(titles)}) or its 0-based index",
                                 opts.sheet)
        rows = [r for r in wb[title].iter_rows(values_only=True)]
    finally:
        wb.close()
    while rows and all(v is None or (isinstance(v, str) and not v.strip()) for v in rows[-1]):
        rows.pop()
    if not rows:
        raise InputFileError(spath, f"sheet {title!r} is empty")
    width = max(len(r) for r in rows)
    first = list(rows[0]) + [None] * (width - len(rows[0]))
    header = not any(_is_number(v) for v in first)
    body = rows[1:] if header else rows
    if not body:
        raise InputFileError(spath, f"sheet {title!r} has a header row but no data rows")
    names, units = [], []
    for i in range(width):
        text = str(first[i]).strip() if header and first[i] is not None else ""
        m = _NAME_UNIT.match(text)
        name, unit = (m.group(1).strip(), m.group(2)) if m and m.group(1).strip() else (text, "")
        names.append(name or f"ch{i + 1}")
        units.append(unit)
    numeric = [any(_is_number(r[i]) for r in body[:50] if i < len(r)) for i in range(width)]
    time_col = None
    for i, name in enumerate(names):
        key = name.lower() + (f"_{units[i].lower()}" if units[i] else "")
        if numeric[i] and (name.lower() in _TIME or key in _TIME):
            time_col = i
            break
    cols = [i for i in range(width) if numeric[i] and i != time_col]
    if not cols:
        raise InputFileError(spath, f"sheet {title!r} has no numeric column")
    picked = [cols[k] for k in select([names[i] for i in cols], opts.channels)]
    need = picked + ([time_col] if time_col is not None else [])
    table = np.empty((len(need), len(body)))
    first_row = 2 if header else 1
    for r, row in enumerate(body):
        for j, c in enumerate(need):
            v = row[c] if c < len(row) else None
            if not _is_number(v):
                where = f"cell {_column_letter(c)}{first_row + r}"
                raise InputFileError(spath, f"sheet {title!r}, {where}: expected a number, found {v!r}")
            table[j, r] = v
    extra = {"format": "xlsx", "sheet": title, "sheets": tuple(titles)}
    if opts.fs is not None:
        fs = check_sampling_rate(opts.fs, "fs")
        extra["fs_source"] = "argument"
    elif time_col is not None and len(body) > 1:
        key = names[time_col].lower()
        scale = _TIME.get(key, _TIME.get(f"{key}_{units[time_col].lower()}", 1.0))
        t = table[-1] * scale
        steps = np.diff(t)
        fs = 1.0 / float(np.median(steps))
        if not np.all(np.abs(steps * fs - 1.0) <= 0.5):
            raise InputFileError(spath, f"sheet {title!r}: the time column is irregular; pass --fs HZ")
        fs = check_sampling_rate(round(fs, 6), "sampling rate from the time column")
        extra["fs_source"] = "time column"
    else:
        raise InputFileError(spath, f"sampling rate is missing for sheet {title!r} (no time column): pass --fs HZ")
    chosen_units = {normalise_unit(units[i]) for i in picked}
    unit = chosen_units.pop() if len(chosen_units) == 1 else "a.u."
    data = np.ascontiguousarray(table[:len(picked)])
    if not np.isfinite(data).all():
        raise InputFileError(spath, f"sheet {title!r} holds NaN or infinite values")
    info = StreamInfo(fs=fs, ch_names=tuple(names[i] for i in picked), units=unit, source=spath, extra=extra)
    return info, block_chunks(info, data.shape[1], lambda a, b: data[:, a:b], chunk_samples)
