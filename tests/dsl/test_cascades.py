"""The root cause comes first, alone: break one thing in a valid file and exactly one
error, the root one, is reported; what only follows from it is not."""

from __future__ import annotations

import re

import pytest

from irqlab.dsl import loads
from irqlab.errors import Diagnostic, ScenarioError, drop_echoes
from irqlab.plugins import registry as reg_mod
from tests.dsl.conftest import GOOD, ROOT

# checked as a file in examples/, next to founding_case.scn
WHERE = str(ROOT / "examples" / "cascade.scn")

VALID = """\
import "founding_case.scn"

param svc = 20us

scenario s extends founding_case {
    device uhci { serviced_by L2 after 2 * svc }
    device nic {
        gsi 22
        vector 0x60
        trigger level
        model queue
        arrival poisson rate 50kHz
        serviced_by L2 after 5us
    }
    mitigation qemu_eoi_throttle { threshold 100; delay 1ms }
    mitigation preemption_timer_throttle {}
    run { duration qemu_eoi_throttle.delay * 10 }
    sweep {
        qemu_eoi_throttle.threshold = [10, 100]
        nic.arrival.rate = [10kHz, 50kHz]
        preemption_timer_throttle.delay = [100, 1000]
    }
}
"""

#: (what is broken, the replacements that break it, the one error expected)
MUTATIONS = [
    ("extends without its import", [('import "founding_case.scn"\n', "")],
     r"unknown scenario 'founding_case'"),
    ("unknown base", [("extends founding_case", "extends founding_cse")],
     r"unknown scenario 'founding_cse'"),
    ("misspelt mitigation", [("mitigation qemu_eoi_throttle {", "mitigation qemu_eoi_throtle {")],
     r"unknown mitigation 'qemu_eoi_throtle'"),
    ("misspelt arrival", [("arrival poisson", "arrival poison")], r"unknown arrival 'poison'"),
    ("misspelt device model", [("model queue", "model queu")], r"unknown device 'queu'"),
    ("a time for a frequency", [("rate 50kHz", "rate 20us")], r"rate takes a frequency"),
    ("a zero rate", [("rate 50kHz", "rate 0Hz")], r"rate must be at least"),
    ("a zero period", [("arrival poisson rate 50kHz", "arrival periodic period 0"),
                       ("nic.arrival.rate = [10kHz, 50kHz]", "nic.arrival.period = [1us, 2us]")],
     r"period must be at least"),
    ("a bad threshold", [("threshold 100;", "threshold -1;")], r"threshold must be at least"),
    ("unknown parameter name", [("param svc = 20us", "param svcc = 20us")], r"unknown name 'svc'"),
]


def errors_of(text: str) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as info:
        loads(text, WHERE)
    return info.value.diagnostics


def test_the_valid_file_is_valid():
    """The file every mutation starts from lowers without error."""
    assert loads(VALID, WHERE).name == "s"


def mutate(replacements) -> str:
    text = VALID
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize("what, replacements, expected", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_one_break_gives_one_error(what, replacements, expected):
    """Breaking one thing gives exactly one error, the root one."""
    diags = errors_of(mutate(replacements))
    assert len(diags) == 1, "\n".join(d.format() for d in diags)
    assert re.search(expected, diags[0].message), diags[0].message


def plugin_declarations() -> list[str]:
    """Every plugin name the valid file declares (generated mutations misspell each)."""
    return re.findall(r"(?:mitigation|arrival|model|policy) (\w+)", VALID)


@pytest.mark.parametrize("name", plugin_declarations())
def test_misspelling_any_plugin_gives_one_error(name):
    """Misspelling any plugin where it is declared gives one error however often the file
    refers to its parameters (run duration, sweep axes)."""
    text = re.sub(rf"((?:mitigation|arrival|model|policy) ){name}\b", rf"\g<1>{name}x", VALID, count=1)
    diags = errors_of(text)
    assert len(diags) == 1 and f"'{name}x'" in diags[0].message, "\n".join(d.format() for d in diags)


def test_a_plugin_that_failed_to_load_gives_one_error():
    """An installed plugin that fails to load is the only error, not also its parameters."""
    reg_mod.reset()
    try:
        reg_mod.registry().add_broken("mitigation.min_gap", "irqlab-mingap", "irqlab_mingap:MinGap",
                                      "ImportError: No module named 'irqlab_mingap'")
        text = mutate([("mitigation qemu_eoi_throttle { threshold 100; delay 1ms }",
                        "mitigation min_gap { gap 5us }"),
                       ("qemu_eoi_throttle.delay * 10", "min_gap.gap * 10"),
                       ("qemu_eoi_throttle.threshold = [10, 100]", "min_gap.gap = [1us, 2us]")])
        diags = errors_of(text)
    finally:
        reg_mod.reset()
    assert len(diags) == 1, "\n".join(d.format() for d in diags)
    assert "installed but broken" in diags[0].message


def test_independent_errors_are_all_reported():
    """Two unrelated breaks give two errors: only what follows from another is left out."""
    diags = errors_of(mutate([("mitigation qemu_eoi_throttle {", "mitigation qemu_eoi_throtle {"),
                              ("rate 50kHz", "rate 20us")]))
    assert len(diags) == 2


def test_an_echo_is_dropped_whatever_the_order():
    """drop_echoes drops an error whose presumed part another breaks, before or after it."""
    root = Diagnostic("unknown mitigation 'm'", breaks=(("s", "mitigation", "m"),))
    echo = Diagnostic("no parameter 'm.gap'", presumes=("s", "m", "gap"), presumes_suffix=True)
    other = Diagnostic("no parameter 'x.gap'", presumes=("s", "x", "gap"), presumes_suffix=True)
    elsewhere = Diagnostic("no parameter 'm.gap'", presumes=("t", "m", "gap"), presumes_suffix=True)
    assert drop_echoes([echo, root, other, elsewhere]) == [root, other, elsewhere]


def test_unclosed_block_points_at_its_brace_and_the_end(files, capsys):
    """An unclosed 'machine {' inside a closed scenario is reported at machine's '{', with
    where the file ended, not at the scenario's '{'."""
    from irqlab.cli.main import main

    text = GOOD.replace("    machine { irqchip split }\n", "    machine {\n        irqchip split\n")
    p = files.root / "t.scn"
    p.write_text(text, encoding="utf-8")
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    n = len(text.rstrip("\n").split("\n"))
    assert f"t.scn:2:13: error: this '{{' is never closed: the file ends at line {n}" in err
    assert "line 4 is indented like this block's first line" in err


@pytest.mark.parametrize("line", [i for i, ln in enumerate(VALID.split("\n")) if ln.strip()])
def test_deleting_any_line_gives_at_most_one_error(line):
    """Deleting any one line of the valid file (a field, a device's line, a mitigation, a
    brace) gives at most one error: the missing part, not every use of it."""
    lines = VALID.split("\n")
    try:
        loads("\n".join(lines[:line] + lines[line + 1:]), WHERE)
    except ScenarioError as e:
        assert len(e.diagnostics) == 1, "\n".join(d.format() for d in e.diagnostics)


def test_two_typos_under_one_plugin_are_both_reported():
    """Two misspelt parameters of one declared plugin are two errors, not one echo."""
    diags = errors_of(mutate([("qemu_eoi_throttle.delay * 10", "qemu_eoi_throttle.dellay * 10"),
                              ("qemu_eoi_throttle.threshold = [", "qemu_eoi_throttle.treshold = [")]))
    assert [d.message for d in diags] == ["no parameter 'qemu_eoi_throttle.dellay' in this scenario",
                                          "no parameter 'qemu_eoi_throttle.treshold' in this scenario"]


def words():
    """Every word and number of the valid file, by position (generated mutations break each)."""
    return [(m.start(), m.end()) for m in re.finditer(r"[A-Za-z_][\w.]*|\d\w*", VALID)]


@pytest.mark.parametrize("start, end", words(), ids=lambda x: str(x))
def test_misspelling_any_word_gives_at_most_one_error(start, end):
    """Misspelling any word of the valid file (a statement, a field, a plugin, a name, a
    file) gives at most one error: the misspelt statement, not what it would have defined."""
    text = VALID[:start] + VALID[start:end] + "q" + VALID[end:]
    try:
        loads(text, WHERE)
    except ScenarioError as e:
        assert len(e.diagnostics) == 1, "\n".join(d.format() for d in e.diagnostics)


def test_a_vcpu_whose_only_level_is_misnamed_gives_one_error():
    """'vcpu 0 { Level1 linux {} }' is one error (the unknown level), not also 'declares no level'."""
    text = ("scenario s {\n    vcpu 0 { Level1 linux {} }\n"
            "    device d { gsi 10; vector 0x30; serviced_by L1 after 1us; arrival once at 0 }\n}\n")
    errors = errors_of(text)
    assert [e.message for e in errors] == ["unknown level 'Level1'"]


def test_run_trace_is_an_error_that_names_the_commands():
    """`run { trace on }` (a field that never did anything) is one located error whose hint
    names the commands that write traces."""
    errors = errors_of(VALID.replace("run { duration", "run { trace on; duration", 1))
    assert [e.message for e in errors] == [
        "the run block has no 'trace' field: a trace is asked for on the command line"]
    assert "irqlab trace FILE" in errors[0].hint
