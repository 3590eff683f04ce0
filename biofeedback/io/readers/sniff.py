"""Tell a recording's format from its first bytes (the name only breaks ties).

============  ==============================================================
format        recognised by
============  ==============================================================
wav           ``RIFF`` .... ``WAVE``
bdf           ``0xFF BIOSEMI``
edf           ``"0       "`` then a numeric header length at byte 184 and a
              numeric signal count at byte 252
hdf5          the HDF5 signature at byte 0, 512, 1024 or 2048
mat           ``MATLAB 5.0 MAT-file`` / ``MATLAB 7.3 MAT-file`` text (or a
              ``.mat`` name: version 4 files have no text header)
xlsx          a ZIP archive holding ``xl/workbook.xml``
wfdb          a ``.hea`` file, or a ``.dat`` with a ``.hea`` beside it, or
              text whose first line is a WFDB record line naming the file
openbci       first line ``%OpenBCI Raw``
opensignals   first line ``# OpenSignals Text File Format``
csv           any other text (PLUX "Simple Text Format" included)
============  ==============================================================
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from biofeedback.errors import InputFileError

FORMATS = ("csv", "openbci", "opensignals", "wav", "edf", "bdf", "wfdb", "hdf5", "mat", "xlsx")

#: File name endings that directory scans treat as recordings.
RECORDING_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".edf", ".bdf", ".rec", ".wav", ".h5", ".hdf5",
                      ".mat", ".xlsx", ".xlsm", ".hea")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WFDB_RECORD_LINE = re.compile(rb"^(\S+?)(?:/\d+)?\s+\d+(?:\s+[\d.eE+-]+(?:/[\d.eE+-]+)?(?:\([\d.eE+-]+\))?)?")


def _looks_like_edf(head: bytes) -> bool:
    if len(head) < 256 or head[:8] != b"0       ":
        return False
    try:
        header_bytes = int(head[184:192].decode("ascii").strip())
        n_signals = int(head[252:256].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return False
    return n_signals >= 0 and header_bytes == 256 * (n_signals + 1)


def wfdb_header_for(path: Path) -> Path | None:
    """The ``.hea`` file of a WFDB record, given its header or a data file beside it."""
    if path.suffix.lower() == ".hea":
        return path
    for suffix in (".hea", ".HEA"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def detect_format(path) -> str:
    """Name of the format of ``path`` (one of :data:`FORMATS`).

    Raises
    ------
    InputFileError
        Missing, unreadable or empty file, a folder, or binary content
        that is none of the known formats.
    """
    p = Path(path)
    spath = str(path)
    if not p.exists():
        raise InputFileError(spath, "file not found")
    if p.is_dir():
        raise InputFileError(spath, "is a directory, expected a recording file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise InputFileError(spath, f"cannot be opened: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()
    if not head:
        if suffix == ".hea":
            raise InputFileError(spath, "WFDB header is empty")
        raise InputFileError(spath, "file is empty (no header, no data)")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:8] == b"\xffBIOSEMI":
        return "bdf"
    if _looks_like_edf(head):
        return "edf"
    if head.startswith(b"MATLAB 5.0 MAT-file") or head.startswith(b"MATLAB 7.3 MAT-file"):
        return "mat"
    if head.startswith(_HDF5_SIGNATURE) or any(
            head[k:k + 8] == _HDF5_SIGNATURE for k in (512, 1024, 2048)):
        return "hdf5"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(p) as zf:
                if "xl/workbook.xml" in zf.namelist():
                    return "xlsx"
        except zipfile.BadZipFile:
            raise InputFileError(spath, "is a damaged ZIP archive (an .xlsx?)") from None
        raise InputFileError(spath, "is a ZIP archive that is not an Excel .xlsx workbook")
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InputFileError(spath, "is an old binary Excel (.xls) or Office file; save it as .xlsx or CSV")
    if suffix == ".hea" or (suffix == ".dat" and wfdb_header_for(p) is not None):
        return "wfdb"
    if suffix == ".mat":
        return "mat"  # MATLAB version 4 files start with binary numbers, no text
    if suffix in (".edf", ".bdf", ".rec"):
        what = "BDF" if suffix == ".bdf" else "EDF"
        raise InputFileError(spath, f"is not a valid {what} file: the header does not start with "
                                    f"{'0xFF BIOSEMI' if what == 'BDF' else repr('0' + ' ' * 7)} and numeric "
                                    "header length and signal count fields")
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"%OpenBCI Raw"):
        return "openbci"
    if stripped.startswith(b"# OpenSignals Text File Format"):
        return "opensignals"
    m = _WFDB_RECORD_LINE.match(stripped)
    if m and m.group(1).decode("latin-1") == p.stem and b"\n" in head:
        return "wfdb"
    if b"\x00" in head:
        shown = head[:8].hex(" ")
        raise InputFileError(spath, f"looks like a binary file (NUL bytes; first bytes {shown}) that is none of "
                                    "the known formats (EDF/BDF, WAV, HDF5, MAT, XLSX, WFDB); expected a "
                                    "recording")
    return "csv"
