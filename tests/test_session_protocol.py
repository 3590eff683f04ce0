"""Protocol files: the built-ins, the format, and one-line errors naming file, line and key."""

from __future__ import annotations

import pytest

from biofeedback.cli import main
from biofeedback.errors import BiofeedbackError, InputFileError, ParameterError
from biofeedback.session.protocol import (
    Protocol, Target, builtin_protocols, load_protocol, parse_protocol,
)

GOOD = """\
name = "mine"
description = "test"

[[phase]]
name = "rest"
role = "baseline"
duration_s = 10
target = "below_rest"

[[block]]
name = "cycles"
repeat = 3

  [[block.phase]]
  role = "work"
  duration_s = 5
  target = { pct_mvc = 40 }

  [[block.phase]]
  role = "rest"
  duration_s = 5.5

[[phase]]
role = "baseline"
duration_s = 10
"""


def test_builtins_load_and_are_listed():
    assert set(builtin_protocols()) >= {"glazer", "downtraining", "kegel", "quick_release"}
    for name in builtin_protocols():
        protocol = load_protocol(name)
        assert protocol.name == name and protocol.phases and protocol.description


def test_glazer_follows_the_issue():
    p = load_protocol("glazer")
    seq = [(ph.role, ph.cue, ph.duration_s) for ph in p.phases]
    assert seq[0] == ("baseline", "relax", 60.0)
    flicks = [s for s in seq if s[0] == "flick"]
    tonic = [s for s in seq if s[0] == "tonic"]
    assert len(flicks) == 5 and all(s[1] == "contract" and s[2] == 2.0 for s in flicks)
    assert len(tonic) == 5 and all(s[1] == "contract" and s[2] == 10.0 for s in tonic)
    rest_after_tonic = [seq[i + 1] for i, s in enumerate(seq) if s[0] == "tonic"]
    assert all(r == ("rest", "relax", 10.0) for r in rest_after_tonic)
    assert seq[-2] == ("endurance", "contract", 60.0)
    assert seq[-1] == ("baseline", "relax", 60.0)
    assert p.phases[1].name == "flick 1/5" and p.phases[1].repetitions == 5


def test_downtraining_kegel_quick_release_shapes():
    down = load_protocol("downtraining")
    relax = [ph for ph in down.phases if ph.role == "relax"]
    assert relax and all(ph.cue == "relax" and ph.target.kind == "below_rest" and ph.duration_s >= 60
                         for ph in relax)
    kegel = load_protocol("kegel")
    work = [ph for ph in kegel.phases if ph.role == "work"]
    assert work and all(ph.target.kind == "pct_mvc" and ph.target.low == 30 and ph.target.high == 50 for ph in work)
    assert any(ph.mvc for ph in kegel.phases)
    quick = load_protocol("quick_release")
    roles = [ph.role for ph in quick.phases]
    assert "release" in roles and roles[roles.index("release") - 1] == "work"


def test_format_order_repeat_and_targets():
    p = parse_protocol(GOOD, "mine.toml")
    assert [ph.name for ph in p.phases] == ["rest", "work 1/3", "rest 1/3", "work 2/3", "rest 2/3", "work 3/3",
                                            "rest 3/3", "baseline"]
    assert p.duration_s == 10 + 3 * 10.5 + 10
    assert p.phases[1].cue == "contract" and p.phases[2].cue == "relax"  # default cue from the role
    assert p.phases[0].target == Target("below_rest", None, 1.5)
    assert p.phases[1].target.band(rest_level=2.0, mvc=100.0) == (30.0, 50.0)
    assert p.phases[0].target.band(rest_level=2.0) == (0.0, 3.0)
    assert p.phases[1].target.band(rest_level=2.0) == (None, None)  # no MVC yet
    again = Protocol.from_dict(p.to_dict())
    assert [(a.name, a.role, a.cue, a.duration_s, a.target) for a in again.phases] == \
        [(a.name, a.role, a.cue, a.duration_s, a.target) for a in p.phases]


@pytest.mark.parametrize("text, expected", [
    ('target = "pct_mvc = 40"', Target("pct_mvc", 30.0, 50.0)),
    ("target = { pct_mvc = [20, 35] }", Target("pct_mvc", 20.0, 35.0)),
    ("target = { level = [5, 9.5] }", Target("level", 5.0, 9.5)),
    ('target = "level = 5..9"', Target("level", 5.0, 9.0)),
    ("target = { below_rest = 1.2 }", Target("below_rest", None, 1.2)),
])
def test_target_forms(text, expected):
    p = parse_protocol(f'[[phase]]\nrole = "work"\nduration_s = 3\n{text}\n', "t.toml", "t")
    assert p.phases[0].target == expected


def _error(text, path="bad.toml") -> str:
    with pytest.raises(InputFileError) as info:
        parse_protocol(text, path, "bad")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_file_line_key_and_suggestion():
    text = GOOD.replace("  duration_s = 5\n", "  duraton_s = 5\n")
    message = _error(text)
    line = text.splitlines().index("  duraton_s = 5") + 1
    assert message.startswith(f"bad.toml, line {line}: ")
    assert "'duraton_s'" in message and "did you mean 'duration_s'" in message
    assert "[[block]] 1, [[block.phase]] 1" in message


def test_negative_duration_is_named():
    text = GOOD.replace("duration_s = 5.5", "duration_s = -5.5")
    message = _error(text)
    line = text.splitlines().index("  duration_s = -5.5") + 1
    assert f"line {line}" in message and "duration_s" in message and "negative" in message


@pytest.mark.parametrize("change, words", [
    (('role = "baseline"', 'role = "baseline2"'), ["role", "did you mean 'baseline'"]),
    (('repeat = 3', 'repeat = 0'), ["repeat", "positive"]),
    (('repeat = 3', 'repeat = 2.5'), ["repeat", "integer"]),
    (('target = { pct_mvc = 40 }', 'target = { pct_mvc = 140 }'), ["target.pct_mvc", "percentage"]),
    (('target = { pct_mvc = 40 }', 'target = { pct_mcv = 40 }'), ["target kind 'pct_mcv'", "pct_mvc"]),
    (('target = "below_rest"', 'target = "somewhere"'), ["target", "below_rest"]),
    (('duration_s = 10\ntarget', 'duration_s = "ten"\ntarget'), ["duration_s", "'ten'"]),
    (('name = "mine"', 'nmae = "mine"'), ["'nmae'", "did you mean 'name'"]),
    (('  role = "rest"\n  duration_s = 5.5', '  role = "rest"\n  cue = "squeeze"\n  duration_s = 5.5'),
     ["cue", "relax or contract"]),
])
def test_mistakes_are_one_line_with_line_and_key(change, words):
    old, new = change
    assert old in GOOD
    message = _error(GOOD.replace(old, new, 1))
    assert message.startswith("bad.toml, line ")
    for w in words:
        assert w in message


def test_syntax_error_and_empty_protocol():
    message = _error('name = "x"\n[[phase]]\nrole = \n')
    assert "line 3" in message and "not valid TOML" in message
    assert "at least one" in _error('name = "x"\n')
    assert "missing key 'duration_s'" in _error('[[phase]]\nrole = "rest"\n')


def test_mvc_only_in_contract_phases():
    assert "mvc" in _error('[[phase]]\nrole = "rest"\nduration_s = 3\nmvc = true\n')


def test_files_names_and_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    assert load_protocol(path).name == "mine"
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "short.toml").write_text('[[phase]]\nrole = "relax"\nduration_s = 30\n')
    assert load_protocol("short").name == "short"
    with pytest.raises(ParameterError, match="glazer"):
        load_protocol("no_such_protocol")
    with pytest.raises(InputFileError, match="not found"):
        load_protocol(tmp_path / "missing.toml")
    scaled = load_protocol("glazer").scaled(0.5)
    assert scaled.duration_s == load_protocol("glazer").duration_s / 2
    with pytest.raises(BiofeedbackError):
        load_protocol("glazer").scaled(-1)


def test_cli_lists_protocols_and_reports_a_bad_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(tmp_path))
    assert main(["session", "--list-protocols"]) == 0
    out = capsys.readouterr().out
    for name in ("glazer", "downtraining", "kegel", "quick_release"):
        assert name in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[phase]]\nrole = "relax"\nduration_s = -3\n')
    assert main(["session", "--protocol", str(bad), "--source", "sim", "--headless"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.toml, line 3" in err and "duration_s" in err
    assert not (tmp_path / "sessions").exists()
