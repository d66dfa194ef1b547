"""A wrong plugin parameter in a .scn file is an error at its file:line:col, checked
against the plugin's declarations, for every parameter type.

tests/dsl/test_semantic_errors.py already covers, on built-ins: an unknown plugin
name (did-you-mean), an unknown parameter (did-you-mean), a missing required
parameter, a value below the minimum, a non-whole int, a sweep axis value below
the minimum, and a plugin's own check() message. These cover the other types and
a third-party (runtime-registered) plugin, through the `irqlab check` output."""

from __future__ import annotations

import pytest

from irqlab.plugins.api import Mitigation, Param

from .conftest import cli, founding_with


class Zoo(Mitigation):
    """A mitigation with a parameter of every type, for the error tests."""

    name = "zoo"
    version = "1"
    params = (Param("level", "int", 1, "a level", min=0, max=3),
              Param("mode", "choice", "fast", "a mode", choices=("fast", "slow")),
              Param("on", "bool", False, "a flag"),
              Param("period", "time", 1e-3, "a period", min=1e-6),
              Param("rate", "frequency", 1000.0, "a rate", max=1e6),
              Param("tag", "str", "x", "a tag"))


@pytest.fixture
def zoo(fresh_registry):
    fresh_registry.add_class(Zoo)


def check(capsys, tmp_path, line: str) -> tuple[int, str]:
    """`irqlab check` on the founding case with ``line`` at line 3: (status, stderr)."""
    f = tmp_path / "t.scn"
    f.write_text(founding_with(line))
    status, _, err = cli(capsys, "check", str(f))
    return status, err.replace(str(f), "t.scn")


CASES = [
    ("level 4", "t.scn:3:28: error: level 4 is outside 0-3", None),
    ("mode fsat", "t.scn:3:27: error: mode cannot be 'fsat'", "did you mean 'fast'?"),
    ("on 3", "t.scn:3:25: error: on takes on or off, not the number 3", None),
    ("period 10kHz", "t.scn:3:29: error: period takes a time such as 10us or 1000 cycles, not the frequency 10kHz",
     None),
    ("period 100ns", "t.scn:3:29: error: period must be at least 1us; got 100ns", None),
    ("rate 2MHz", "t.scn:3:27: error: rate must be at most 1MHz; got 2MHz", None),
    ("rate 5ms", "t.scn:3:27: error: rate takes a frequency such as 50kHz, not the time 5ms", None),
    ("tag 5", "t.scn:3:26: error: tag takes a word or a quoted string, not the number 5", None),
]


@pytest.mark.parametrize("arg, expected, hint", CASES, ids=[c[0] for c in CASES])
def test_wrong_value_is_an_error_at_its_place(zoo, capsys, tmp_path, arg, expected, hint):
    """Each wrong value is reported at the value's file:line:col with the source line and a caret."""
    status, err = check(capsys, tmp_path, f"    mitigation zoo {{ {arg} }}")
    assert status == 2
    lines = err.splitlines()
    assert lines[0] == expected
    assert lines[1].strip() == f"mitigation zoo {{ {arg} }}"
    col = int(expected.split(":")[2])
    assert lines[2].index("^") - lines[1].index("m") == col - 5  # the caret sits under the value
    if hint:
        assert lines[3] == f"  hint: {hint}"


def test_every_wrong_value_is_reported_at_once(zoo, capsys, tmp_path):
    """Six wrong parameters in one block give six errors, one per line, in source order."""
    body = "    mitigation zoo {\n" + "".join(f"        {a}\n" for a in
                                          ("level 4", "mode fsat", "on 3", "period 10kHz", "rate 2MHz", "tag 5")) + "    }"
    status, err = check(capsys, tmp_path, body)
    located = [ln.split(": error:")[0] for ln in err.splitlines() if ": error:" in ln]
    assert status == 2
    assert located == ["t.scn:4:15", "t.scn:5:14", "t.scn:6:12", "t.scn:7:16", "t.scn:8:14", "t.scn:9:13"]


def test_unknown_parameter_of_a_runtime_plugin(zoo, capsys, tmp_path):
    """A misspelt parameter of a non-built-in plugin gets the same did-you-mean."""
    status, err = check(capsys, tmp_path, "    mitigation zoo { perod 1ms }")
    assert status == 2
    assert err.splitlines()[0] == "t.scn:3:22: error: mitigation 'zoo' has no parameter 'perod'"
    assert "  hint: did you mean 'period'?" in err


def test_set_override_is_checked_against_the_declaration(zoo, capsys, tmp_path):
    """--set zoo.level=9 on the command line is out of range: an error pointing at the
    9 on the command line, saying which value it set."""
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation zoo { level 2 }"))
    status, _, err = cli(capsys, "run", str(f), "--set", "zoo.level=9")
    assert status == 2
    command = f"irqlab run {f} --set zoo.level=9"
    col = len(command)
    lines = err.splitlines()
    assert lines[0] == f"<command line>:1:{col}: error: mitigation.zoo.level 9 is outside 0-3"
    assert lines[1].strip() == command and lines[2].index("^") == lines[1].index(command) + col - 1
    assert "hint: mitigation.zoo.level was set to 9" in err


def test_a_correct_use_checks_clean(zoo, capsys, tmp_path):
    """The baseline: every parameter right."""
    status, err = check(capsys, tmp_path, "    mitigation zoo { level 3; mode slow; on on; period 1us; "
                                          "rate 1MHz; tag hello }")
    assert (status, err) == (0, "")
