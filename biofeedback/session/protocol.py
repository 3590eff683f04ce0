"""Session protocols as data: one TOML file per protocol.

A protocol is a list of phases, each asking the user to relax or to
contract for a while, optionally with a target for the envelope. Phases can
be grouped in blocks that repeat. Built-in protocols live in
``biofeedback/protocols/*.toml``; users write their own files in the same
format and pass the path (or put them in :func:`user_protocols_dir`).

Format
------
::

    name = "glazer"                       # short name (letters, digits, _ . -)
    description = "Pelvic-floor assessment ..."
    reference = "Glazer et al. 1999 ..."  # optional, free text

    [[phase]]                             # a single phase
    name = "pre-baseline"                 # label shown to the user
    role = "baseline"                     # what reports measure (phases.ROLES)
    cue = "relax"                         # relax | contract (default from the role)
    duration_s = 60                       # > 0
    target = "below_rest"                 # optional, see below
    prompt = "Rest quietly"               # optional instruction text
    mvc = false                           # optional: measure the MVC in this phase

    [[block]]                             # phases repeated `repeat` times
    name = "flicks"
    repeat = 5
      [[block.phase]]
      role = "flick"
      duration_s = 2
      target = { pct_mvc = [70, 100] }
      [[block.phase]]
      role = "rest"
      duration_s = 8

``[[phase]]`` and ``[[block]]`` entries run in the order they appear in the
file. Targets: ``"below_rest"`` (envelope below 1.5 times the resting
level; ``{ below_rest = 1.3 }`` for another factor), ``{ pct_mvc = 40 }``
(40 ± 10 % of the maximum voluntary contraction), ``{ pct_mvc = [30, 50] }``
(a band), ``{ level = [20, 40] }`` (a band in the recording's units, µV for
a calibrated sensor). The string forms ``"pct_mvc = 40"`` and
``"level = 20..40"`` are accepted too.

Every mistake in a file is reported on one line naming the file, the line
and the key (``glazer.toml, line 14: unknown key 'duraton_s' in [[block]]
2, [[block.phase]] 1 (did you mean 'duration_s'?)``). ``tomllib`` does not
give positions, so the line is found by scanning the text for the table
header and the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from biofeedback.errors import BiofeedbackError, InputFileError, ParameterError
from biofeedback.session.phases import CUES, ROLES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "PhaseSpec", "Protocol", "Target", "builtin_protocols", "list_protocols", "load_protocol",
    "parse_protocol", "user_protocols_dir",
]

TOP_KEYS = ("name", "description", "reference", "phase", "block")
PHASE_KEYS = ("name", "role", "cue", "duration_s", "target", "prompt", "mvc")
BLOCK_KEYS = ("name", "repeat", "phase")
TARGET_KINDS = ("below_rest", "pct_mvc", "level")

#: Cue given by default for each role.
DEFAULT_CUE = {"baseline": "relax", "relax": "relax", "rest": "relax", "release": "relax",
               "flick": "contract", "tonic": "contract", "endurance": "contract", "work": "contract"}

#: Half-width of the band of a single %MVC target (``pct_mvc = 40`` is 30-50 %MVC).
PCT_MVC_TOLERANCE = 10.0
#: Default factor of a ``below_rest`` target (the detector's off-threshold floor).
BELOW_REST_FACTOR = 1.5
#: Longest phase and longest protocol accepted (a typo guard).
MAX_PHASE_S = 4 * 3600.0
MAX_REPEAT = 1000

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# ---------------------------------------------------------------------------
# data model


@dataclass(frozen=True)
class Target:
    """What the envelope should do during a phase.

    Attributes
    ----------
    kind : {"below_rest", "pct_mvc", "level"}
    low, high : float or None
        ``below_rest``: ``high`` is the factor of the resting level.
        ``pct_mvc``: the band in percent of the MVC. ``level``: the band
        in the recording's units.
    """

    kind: str
    low: float | None = None
    high: float | None = None

    def band(self, rest_level: float | None = None, mvc: float | None = None):
        """``(low, high)`` in the envelope's units, or ``(None, None)`` when not known yet.

        ``below_rest`` needs the resting level, ``pct_mvc`` the MVC.
        """
        if self.kind == "level":
            return self.low, self.high
        if self.kind == "below_rest":
            if rest_level is None or not math.isfinite(rest_level):
                return None, None
            return 0.0, self.high * rest_level
        if mvc is None or not math.isfinite(mvc) or mvc <= 0:
            return None, None
        return self.low / 100.0 * mvc, self.high / 100.0 * mvc

    def describe(self) -> str:
        """Short text: ``below 1.5x rest``, ``30-50 %MVC``, ``20-40``."""
        if self.kind == "below_rest":
            return f"below {self.high:g}x rest"
        if self.kind == "pct_mvc":
            return f"{self.low:g}-{self.high:g} %MVC"
        return f"{self.low:g}-{self.high:g}"

    def as_dict(self) -> dict:
        if self.kind == "below_rest":
            return {"below_rest": self.high}
        return {self.kind: [self.low, self.high]}


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a protocol (blocks already expanded).

    Attributes
    ----------
    name : str
        Label shown to the user; repetitions get ``" 2/5"`` appended.
    role, cue : str
        See :data:`biofeedback.session.phases.ROLES` and ``CUES``.
    duration_s : float
    target : Target or None
    prompt : str
        Instruction text (may be empty).
    mvc : bool
        The highest envelope in this phase is taken as the MVC when none is
        known yet.
    block : str
        Name of the block it comes from ("" for a single phase).
    repetition, repetitions : int
        Which repetition of the block (1-based) and how many there are
        (1 and 1 for a single phase).
    line : int or None
        Line of the phase's table header in the file.
    """

    name: str
    role: str
    cue: str
    duration_s: float
    target: Target | None = None
    prompt: str = ""
    mvc: bool = False
    block: str = ""
    repetition: int = 1
    repetitions: int = 1
    line: int | None = field(default=None, compare=False)

    def as_dict(self) -> dict:
        out = {"name": self.name, "role": self.role, "cue": self.cue, "duration_s": self.duration_s}
        if self.target is not None:
            out["target"] = self.target.as_dict()
        if self.prompt:
            out["prompt"] = self.prompt
        if self.mvc:
            out["mvc"] = True
        if self.block:
            out.update(block=self.block, repetition=self.repetition, repetitions=self.repetitions)
        return out


@dataclass(frozen=True)
class Protocol:
    """A validated protocol.

    Attributes
    ----------
    name, description, reference : str
    phases : tuple of PhaseSpec
        In the order they run.
    source : str
        The file it was read from (``builtin:NAME`` for a built-in one).
    """

    name: str
    description: str
    phases: tuple
    reference: str = ""
    source: str = ""

    @property
    def duration_s(self) -> float:
        """Planned length in seconds (without pauses)."""
        return float(sum(p.duration_s for p in self.phases))

    def scaled(self, factor: float) -> "Protocol":
        """The same protocol with every duration multiplied by ``factor`` (> 0)."""
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0
                and math.isfinite(factor)):
            raise ParameterError("--duration-scale", "a positive number", factor)
        if factor == 1:
            return self
        from dataclasses import replace

        return replace(self, phases=tuple(replace(p, duration_s=p.duration_s * factor) for p in self.phases))

    @classmethod
    def from_dict(cls, data: dict) -> "Protocol":
        """Rebuild a protocol from :meth:`to_dict` data (as stored in ``session.json``)."""
        phases = []
        for p in data.get("phases", []):
            target = None
            if p.get("target"):
                (kind, value), = p["target"].items()
                target = Target(kind, None, float(value)) if kind == "below_rest" else \
                    Target(kind, float(value[0]), float(value[1]))
            phases.append(PhaseSpec(str(p["name"]), str(p["role"]), str(p["cue"]), float(p["duration_s"]), target,
                                    str(p.get("prompt", "")), bool(p.get("mvc", False)), str(p.get("block", "")),
                                    int(p.get("repetition", 1)), int(p.get("repetitions", 1))))
        return cls(name=str(data.get("name", "")), description=str(data.get("description", "")),
                   phases=tuple(phases), reference=str(data.get("reference", "")), source=str(data.get("file", "")))

    def to_dict(self) -> dict:
        """Plain data for ``session.json``."""
        return {"name": self.name, "description": self.description, "reference": self.reference,
                "file": self.source, "duration_s": self.duration_s,
                "phases": [p.as_dict() for p in self.phases]}


# ---------------------------------------------------------------------------
# locating keys in the text (tomllib gives no positions)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*(\]\]?)\s*(#.*)?$")


class _Locator:
    """Line numbers of table headers and keys, from a plain scan of the text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        # (line number, header path) for every [table] and [[array]] header.
        self.headers: list[tuple[int, str]] = []
        for i, line in enumerate(self.lines, start=1):
            m = _HEADER.match(line)
            if m and m.group(1) in ("[", "[[") and len(m.group(1)) == len(m.group(3)):
                path = ".".join(part.strip().strip("\"'") for part in m.group(2).split("."))
                self.headers.append((i, path))

    def entry_lines(self, path: str) -> list[int]:
        """Lines of every ``[[path]]`` header, in order."""
        return [n for n, p in self.headers if p == path]

    def block_phase_lines(self, block_index: int) -> list[int]:
        """Lines of the ``[[block.phase]]`` headers of block ``block_index`` (0-based)."""
        blocks = self.entry_lines("block")
        if block_index >= len(blocks):
            return []
        start = blocks[block_index]
        stop = blocks[block_index + 1] if block_index + 1 < len(blocks) else len(self.lines) + 1
        return [n for n, p in self.headers if p == "block.phase" and start < n < stop]

    def key_line(self, key: str, table_line: int | None) -> int | None:
        """Line of ``key = ...`` in the table whose header is at ``table_line`` (None: top level)."""
        start = table_line or 0
        later = [n for n, _ in self.headers if n > start]
        stop = later[0] if later else len(self.lines) + 1
        pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*[=.]")
        inline = re.compile(r"[{,]\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for n in range(start + 1, stop):
            line = self.lines[n - 1]
            if pattern.match(line) or inline.search(line):
                return n
        # A misspelt table name ([[phases]]) is a header, not a key.
        prefix = "" if table_line is None else next((p + "." for n, p in self.headers if n == table_line), "")
        for n, p in self.headers:
            if n > start and p == prefix + key:
                return n
        return None


# ---------------------------------------------------------------------------
# parsing and validation


class _Checker:
    def __init__(self, path: str, locator: _Locator):
        self.path = path
        self.loc = locator

    def fail(self, message: str, line: int | None):
        raise InputFileError(self.path, message, line=line)

    def unknown_keys(self, table: dict, allowed, where: str, table_line: int | None):
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(allowed)})"
                self.fail(f"unknown key '{key}' in {where}{hint}", self.loc.key_line(key, table_line))

    def number(self, table, key, where, table_line, *, positive=True, integer=False, maximum=None):
        value = table[key]
        line = self.loc.key_line(key, table_line)
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.fail(f"{key} in {where}: expected {kind}, found {value!r}", line)
        if not math.isfinite(value):
            self.fail(f"{key} in {where}: expected a finite number, found {value!r}", line)
        if positive and value <= 0:
            what = "negative" if value < 0 else "zero"
            self.fail(f"{key} in {where}: expected a positive {'count' if integer else 'duration'}, "
                      f"found {what} {value!r}", line)
        if maximum is not None and value > maximum:
            self.fail(f"{key} in {where}: expected at most {maximum:g}, found {value!r}", line)
        return value

    def text(self, table, key, where, table_line) -> str:
        value = table[key]
        if not isinstance(value, str):
            self.fail(f"{key} in {where}: expected a text in quotes, found {value!r}",
                      self.loc.key_line(key, table_line))
        return value.strip()

    def target(self, value, where, table_line) -> Target:
        line = self.loc.key_line("target", table_line)
        expected = ('"below_rest", { below_rest = FACTOR }, { pct_mvc = N }, { pct_mvc = [LOW, HIGH] } '
                    'or { level = [LOW, HIGH] }')
        if isinstance(value, str):
            parsed = _target_from_text(value)
            if parsed is None:
                self.fail(f"target in {where}: expected {expected}, found {value!r}", line)
            value = parsed
        if not isinstance(value, dict) or len(value) != 1:
            self.fail(f"target in {where}: expected {expected}, found {value!r}", line)
        (kind, spec), = value.items()
        if kind not in TARGET_KINDS:
            close = difflib.get_close_matches(kind, TARGET_KINDS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(f"unknown target kind '{kind}' in {where}{hint}: expected {expected}", line)

        def num(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

        if kind == "below_rest":
            factor = BELOW_REST_FACTOR if spec is True else spec
            if not num(factor) or factor <= 1:
                self.fail(f"target.below_rest in {where}: expected a factor above 1 (times the resting level), "
                          f"found {spec!r}", line)
            return Target("below_rest", None, float(factor))
        if num(spec) and kind == "pct_mvc":
            if not 0 < spec <= 100:
                self.fail(f"target.pct_mvc in {where}: expected a percentage in (0, 100], found {spec!r}", line)
            return Target("pct_mvc", max(0.0, spec - PCT_MVC_TOLERANCE), min(100.0, spec + PCT_MVC_TOLERANCE))
        if not (isinstance(spec, list) and len(spec) == 2 and all(num(x) for x in spec)):
            self.fail(f"target.{kind} in {where}: expected [LOW, HIGH], found {spec!r}", line)
        low, high = float(spec[0]), float(spec[1])
        if not 0 <= low < high:
            self.fail(f"target.{kind} in {where}: expected 0 <= LOW < HIGH, found {spec!r}", line)
        if kind == "pct_mvc" and high > 100:
            self.fail(f"target.pct_mvc in {where}: expected percentages up to 100, found {spec!r}", line)
        return Target(kind, low, high)

    def phase(self, table, where, table_line, block="", repetition=1, repetitions=1) -> PhaseSpec:
        if not isinstance(table, dict):
            self.fail(f"{where}: expected a table of phase keys, found {table!r}", table_line)
        self.unknown_keys(table, PHASE_KEYS, where, table_line)
        for key in ("role", "duration_s"):
            if key not in table:
                self.fail(f"{where}: missing key '{key}'", table_line)
        role = self.text(table, "role", where, table_line)
        if role not in ROLES:
            close = difflib.get_close_matches(role, ROLES, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(f"role in {where}: expected one of {', '.join(ROLES)}, found {role!r}{hint}",
                      self.loc.key_line("role", table_line))
        cue = DEFAULT_CUE[role]
        if "cue" in table:
            cue = self.text(table, "cue", where, table_line)
            if cue not in CUES:
                self.fail(f"cue in {where}: expected relax or contract, found {cue!r}",
                          self.loc.key_line("cue", table_line))
        duration = float(self.number(table, "duration_s", where, table_line, maximum=MAX_PHASE_S))
        name = self.text(table, "name", where, table_line) if "name" in table else role
        if not name:
            name = role
        target = self.target(table["target"], where, table_line) if "target" in table else None
        prompt = self.text(table, "prompt", where, table_line) if "prompt" in table else ""
        mvc = table.get("mvc", False)
        if not isinstance(mvc, bool):
            self.fail(f"mvc in {where}: expected true or false, found {mvc!r}", self.loc.key_line("mvc", table_line))
        if mvc and cue != "contract":
            self.fail(f"mvc in {where}: the MVC can only be measured in a contract phase",
                      self.loc.key_line("mvc", table_line))
        if repetitions > 1:
            name = f"{name} {repetition}/{repetitions}"
        return PhaseSpec(name, role, cue, duration, target, prompt, mvc, block, repetition, repetitions, table_line)


def _target_from_text(text: str):
    """``"below_rest"``, ``"pct_mvc = 40"``, ``"pct_mvc = 30..50"``, ``"level = 20..40"`` → dict, or None."""
    text = text.strip()
    if text == "below_rest":
        return {"below_rest": True}
    number = r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    m = re.fullmatch(r"(below_rest|pct_mvc|level)\s*[=:]\s*" + number + r"(?:\s*(?:\.\.|-|,)\s*" + number + ")?", text)
    if not m:
        return {text: None} if re.fullmatch(r"[A-Za-z_]+", text) else None
    try:
        a = float(m.group(2))
        b = None if m.group(3) is None else float(m.group(3))
    except ValueError:
        return None
    return {m.group(1): a if b is None else [a, b]}


def _entry_order(data: dict, loc: _Locator, path: str):
    """``[("phase"|"block", index, header line)]`` in file order."""
    phases = data.get("phase", [])
    blocks = data.get("block", [])
    phase_lines = loc.entry_lines("phase")
    block_lines = loc.entry_lines("block")
    n_phase = len(phases) if isinstance(phases, list) else 0
    n_block = len(blocks) if isinstance(blocks, list) else 0
    if len(phase_lines) != n_phase or len(block_lines) != n_block:
        if n_phase and n_block:
            raise InputFileError(path, "write phases as [[phase]] and blocks as [[block]] tables (not inline arrays) "
                                       "when a protocol has both, so that their order is known",
                                 line=loc.key_line("phase", None) or loc.key_line("block", None))
        phase_lines = phase_lines if len(phase_lines) == n_phase else [None] * n_phase
        block_lines = block_lines if len(block_lines) == n_block else [None] * n_block
    entries = [("phase", i, ln) for i, ln in enumerate(phase_lines)] + \
              [("block", i, ln) for i, ln in enumerate(block_lines)]
    entries.sort(key=lambda e: (e[2] if e[2] is not None else 0, e[0] == "block", e[1]))
    return entries


def parse_protocol(text: str, path: str = "<protocol>", default_name: str = "") -> Protocol:
    """Validate the TOML ``text`` of a protocol.

    Parameters
    ----------
    text : str
    path : str
        Named in error messages.
    default_name : str
        Used when the file has no ``name``.

    Raises
    ------
    InputFileError
        One line naming the file, the line and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message) or "invalid syntax"
        raise InputFileError(path, f"not valid TOML: {message}", line=line) from None
    loc = _Locator(text)
    check = _Checker(path, loc)
    check.unknown_keys(data, TOP_KEYS, "the protocol's top level", None)
    name = check.text(data, "name", "the protocol", None) if "name" in data else (default_name or "protocol")
    if not _NAME.match(name or ""):
        check.fail(f"name: expected letters, digits, '_', '.' or '-' (at most 64), found {name!r}",
                   loc.key_line("name", None))
    description = check.text(data, "description", "the protocol", None) if "description" in data else ""
    reference = check.text(data, "reference", "the protocol", None) if "reference" in data else ""
    for key in ("phase", "block"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(t, dict) for t in data[key])):
            check.fail(f"{key}: expected [[{key}]] tables, found {data[key]!r}", loc.key_line(key, None))
    phases: list[PhaseSpec] = []
    for kind, i, line in _entry_order(data, loc, path):
        if kind == "phase":
            phases.append(check.phase(data["phase"][i], f"[[phase]] {i + 1}", line))
            continue
        block = data["block"][i]
        where = f"[[block]] {i + 1}"
        check.unknown_keys(block, BLOCK_KEYS, where, line)
        repeat = 1
        if "repeat" in block:
            repeat = check.number(block, "repeat", where, line, integer=True, maximum=MAX_REPEAT)
        block_name = check.text(block, "name", where, line) if "name" in block else f"block {i + 1}"
        inner = block.get("phase")
        if not (isinstance(inner, list) and inner and all(isinstance(t, dict) for t in inner)):
            check.fail(f"{where}: expected at least one [[block.phase]] table", line)
        inner_lines = loc.block_phase_lines(i)
        if len(inner_lines) != len(inner):
            inner_lines = [line] * len(inner)
        for r in range(1, repeat + 1):
            for j, (t, ln) in enumerate(zip(inner, inner_lines)):
                phases.append(check.phase(t, f"{where}, [[block.phase]] {j + 1}", ln, block_name, r, repeat))
    if not phases:
        check.fail("expected at least one [[phase]] or [[block]]", None)
    return Protocol(name=name, description=description, phases=tuple(phases), reference=reference, source=path)


# ---------------------------------------------------------------------------
# finding protocols


def _builtin_dir():
    from importlib.resources import files

    return files("biofeedback") / "protocols"


def builtin_protocols() -> list[str]:
    """Names of the built-in protocols."""
    folder = _builtin_dir()
    try:
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))
    except (FileNotFoundError, NotADirectoryError):  # pragma: no cover - broken install
        return []


def user_protocols_dir() -> Path:
    """Folder of the user's own protocols: ``$BIOFEEDBACK_HOME/protocols`` or the XDG data folder."""
    home = os.environ.get("BIOFEEDBACK_HOME")
    if home:
        return Path(home) / "protocols"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "biofeedback" / "protocols"


def list_protocols() -> list[tuple[str, str, Protocol | None, str]]:
    """``(name, where, protocol or None, error)`` for built-in and user protocols."""
    out = []
    for name in builtin_protocols():
        try:
            out.append((name, "built-in", load_protocol(name), ""))
        except BiofeedbackError as exc:  # pragma: no cover - shipped files are tested
            out.append((name, "built-in", None, str(exc)))
    folder = user_protocols_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            try:
                out.append((path.stem, str(path), load_protocol(path), ""))
            except BiofeedbackError as exc:
                out.append((path.stem, str(path), None, str(exc)))
    return out


def load_protocol(spec) -> Protocol:
    """A protocol by file path, user protocol name or built-in name.

    Parameters
    ----------
    spec : str or Path
        A path to a ``.toml`` file, or a name: looked up in
        :func:`user_protocols_dir` first, then among the built-ins.
    """
    text_spec = str(spec)
    path = Path(text_spec).expanduser()
    looks_like_path = text_spec.endswith(".toml") or os.sep in text_spec or path.is_file()
    if not looks_like_path:
        user = user_protocols_dir() / f"{text_spec}.toml"
        if user.is_file():
            path, looks_like_path = user, True
    if looks_like_path:
        if not path.is_file():
            raise InputFileError(str(path), "protocol file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(str(path), f"cannot read the protocol: {exc}") from None
        return parse_protocol(text, str(path), default_name=path.stem)
    resource = _builtin_dir() / f"{text_spec}.toml"
    if not _NAME.match(text_spec) or not resource.is_file():
        known = ", ".join(builtin_protocols())
        raise ParameterError("--protocol", f"a protocol file or one of: {known}", text_spec)
    return parse_protocol(resource.read_text(encoding="utf-8"), f"builtin:{text_spec}", default_name=text_spec)
