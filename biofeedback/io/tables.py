"""Writing tables of dictionaries as CSV (summaries, error lists)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from biofeedback.errors import ParameterError


def _cell(value):
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    return value


def write_rows(path, rows, first_columns=()) -> Path:
    """Write ``rows`` (list of dict) to a CSV file with a header row.

    Columns are ``first_columns`` in order, then every other key in the
    order first seen. Floats are written with 6 significant digits; NaN as an
    empty cell.

    Parameters
    ----------
    path : str or Path
        Output file; its folder must exist.
    rows : list of dict
    first_columns : sequence of str
        Columns that lead, present even when ``rows`` is empty.

    Returns
    -------
    Path
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ParameterError("output folder", "an existing folder", str(path.parent))
    columns = list(first_columns)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return path
