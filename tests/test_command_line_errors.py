"""Errors in --set / --grid are located on the command line, in every command that takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqlab.cli.main import main

SWEEP = "examples/sweep_founding.scn"
CASE = "examples/founding_case.scn"


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err.splitlines()


def _caret(lines: list[str], text: str) -> tuple[int, int]:
    """(column of the caret, its width) under the command line quoted in the error."""
    src, marks = lines[1], lines[2]
    start = marks.index("^")
    return start - src.index("irqlab") + 1, len(marks.strip())


@pytest.mark.parametrize("argv", [
    ("run", CASE, "--set", "nosuch=3"),
    ("lower", CASE, "--set", "nosuch=3"),
    ("sweep", SWEEP, "--set", "nosuch=3", "--dry-run"),
    ("sweep", SWEEP, "--grid", "nosuch=3,4", "--dry-run"),
])
def test_an_unknown_path_is_marked_where_it_was_typed(capsys, argv):
    """The caret sits under the path, whichever command and option it came with."""
    rc, lines = _run(capsys, *argv)
    command = "irqlab " + " ".join(argv)
    col = command.index("nosuch") + 1
    assert rc == 2
    assert lines[0] == f"<command line>:1:{col}: error: no parameter 'nosuch' in this scenario"
    assert lines[1].strip() == command and _caret(lines, command) == (col, len("nosuch"))


@pytest.mark.parametrize("cmd", [("run", CASE), ("lower", CASE), ("sweep", SWEEP)])
def test_a_bad_value_is_marked_where_it_was_typed(capsys, cmd):
    """A value of the wrong dimension: the caret sits under the value."""
    argv = (*cmd, "--set", "run.duration=4kHz", *(("--dry-run",) if cmd[0] == "sweep" else ()))
    rc, lines = _run(capsys, *argv)
    command = "irqlab " + " ".join(argv)
    col = command.index("4kHz") + 1
    assert rc == 2 and lines[0].startswith(f"<command line>:1:{col}: error: run.duration takes a time")
    assert _caret(lines, command) == (col, len("4kHz"))


def test_an_option_without_equals_sign_is_marked(capsys):
    """--set x: the whole item is marked, with what was expected."""
    rc, lines = _run(capsys, "sweep", SWEEP, "--set", "x", "--dry-run")
    command = f"irqlab sweep {SWEEP} --set x --dry-run"
    col = command.index(" x ") + 2
    assert rc == 2 and lines[0] == f"<command line>:1:{col}: error: --set expects PATH=VALUE, got 'x'"


def test_a_quoted_override_is_marked_inside_its_quotes(capsys):
    """An override with spaces is shown quoted as a shell shows it; the caret is on its value."""
    rc, lines = _run(capsys, "run", CASE, "--set", "run.duration = 2 * 3Hz")
    command = f"irqlab run {CASE} --set 'run.duration = 2 * 3Hz'"
    assert rc == 2 and lines[1].strip() == command
    assert _caret(lines, command) == (command.index("2 * 3Hz") + 1, len("2 * 3Hz"))


def test_an_error_in_another_file_shows_its_line(capsys, tmp_path):
    """A file that extends another: an error located in the other file prints that file's line."""
    base = tmp_path / "base.scn"
    base.write_text(Path(CASE).read_text())
    top = tmp_path / "top.scn"
    top.write_text('import "base.scn"\nscenario top extends founding_case {\n}\n')
    rc, lines = _run(capsys, "run", str(top), "--set", "machine.ioapic_pins=8")
    assert rc == 2 and lines[0].startswith(f"{base}:") and "beyond the IOAPIC's 8 pins" in lines[0]
    assert lines[1].strip() == "gsi 23"


def test_a_value_computed_from_a_bad_override_does_not_echo_its_error(capsys):
    """costs.handler=3Hz is one error: the policy body that defaults to it says nothing."""
    rc, lines = _run(capsys, "run", CASE, "--set", "costs.handler=3Hz")
    errors = [ln for ln in lines if ": error: " in ln]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith("<command line>:")


def test_a_grid_value_no_point_could_take_stops_the_sweep_before_it_runs(capsys, tmp_path):
    """--grid run.duration=1ms,3kHz: exit 2 with the caret under 3kHz, and nothing stored."""
    out = tmp_path / "out"
    argv = ("sweep", SWEEP, "--grid", "run.duration=1ms,3kHz", "--out", str(out))
    rc, lines = _run(capsys, *argv)
    command = "irqlab " + " ".join(argv)
    col = command.index("3kHz") + 1
    assert rc == 2 and lines[0].startswith(f"<command line>:1:{col}: error: run.duration takes a time")
    assert _caret(lines, command) == (col, len("3kHz")) and not (out / "results.db").exists()


def test_grid_expressions_are_left_to_each_point(capsys):
    """A --grid value that is an expression is not judged up front: the dry run lists it."""
    rc, _ = _run(capsys, "sweep", SWEEP, "--grid", "run.duration=1ms,2*1ms", "--dry-run")
    assert rc == 0


@pytest.mark.parametrize("argv", [
    ("trace", CASE, "--set", "run.duration=10us", "--perfetto", "{missing}/t.json"),
    ("sweep", SWEEP, "--set", "run.duration=1ms", "--out", "{missing}/out", "--no-progress"),
])
def test_an_output_path_that_cannot_be_written_is_a_user_error(capsys, tmp_path, argv):
    """A file or directory the user named cannot be created: exit 2 naming it, no traceback."""
    missing = tmp_path / "file-not-dir"
    missing.write_text("")  # a file where a directory is needed
    argv = tuple(a.format(missing=missing) for a in argv)
    rc, lines = _run(capsys, *argv)
    assert rc == 2 and lines[-1].startswith(f"error: cannot use '{missing}"), lines


def test_a_negative_seed_is_refused(capsys):
    """--seed -5: seeds are non-negative (SeedSequence entropy): a usage error, exit 2."""
    rc, lines = _run(capsys, "run", CASE, "--seed", "-5")
    assert rc == 2 and any("'--seed': -5 is not in the range x>=0" in ln for ln in lines)


def test_a_duration_below_its_minimum_is_refused(capsys):
    """run.duration=0s is below the 1 ps minimum (a tolerance of 1e-12 s used to hide it)."""
    rc, lines = _run(capsys, "run", CASE, "--set", "run.duration=0s")
    assert rc == 2 and "must be at least" in lines[0]


def test_run_refuses_more_replications_than_one_batch_holds(capsys):
    """run -n 100000000 would build one batch of 10^8 lanes: refused at once, pointing to sweep."""
    rc, lines = _run(capsys, "run", CASE, "-n", "100000000")
    assert rc == 2 and "at most 10,000, not 100,000,000" in lines[0] and "irqlab sweep" in lines[1]


def test_a_trace_filter_that_matches_nothing_is_pointed_out(capsys):
    """trace -e kvm_exti: nothing printed, and a note on stderr suggests kvm_exit."""
    rc, lines = _run(capsys, "trace", CASE, "--set", "run.duration=10us", "-e", "kvm_exti")
    assert rc == 0 and lines == ["note: no event of this run matches 'kvm_exti'; "
                                 "did you mean 'kvm_exit'?"]
