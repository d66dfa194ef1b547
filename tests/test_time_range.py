"""Times beyond int64 picoseconds (and whole numbers beyond int64) are located errors, never OverflowError."""

from __future__ import annotations

import pytest

from irqlab.cli.main import main
from irqlab.dsl import load_all
from irqlab.errors import ScenarioError
from tests.dsl.conftest import GOOD

def _scn(tmp_path, body: str):
    p = tmp_path / "t.scn"
    p.write_text(body)
    return p


@pytest.mark.parametrize("duration", ["1e7s", "1e22cycles"])
def test_check_rejects_a_time_beyond_int64_picoseconds(tmp_path, duration):
    """duration 1e7s (1e19 ps) is an error at the value when the file is checked."""
    p = _scn(tmp_path, GOOD.replace("\n}\n", f"\n    run {{ duration {duration} }}\n}}\n"))
    with pytest.raises(ScenarioError, match="beyond the range of times") as e:
        load_all(str(p))
    d = e.value.diagnostics[0]
    assert (d.span.line, d.span.col) == (14, 20)


def test_the_largest_time_is_accepted(tmp_path):
    """9e6s (below 2**63 ps) is a valid duration."""
    p = _scn(tmp_path, GOOD.replace("\n}\n", "\n    run { duration 9e6s }\n}\n"))
    assert load_all(str(p))["s"].run.duration.value == 9e6


def test_a_whole_number_beyond_int64_is_located(tmp_path):
    """A plugin's int parameter of 1e30 is an error at the value."""
    p = _scn(tmp_path, GOOD.replace("arrival once at 0", "arrival periodic period 1ms count 1e30"))
    with pytest.raises(ScenarioError, match="beyond the range of whole numbers") as e:
        load_all(str(p))
    assert e.value.diagnostics[0].span.line == 12


def test_set_of_a_time_beyond_the_range_is_a_located_command_line_error(tmp_path, capsys):
    """--set run.duration=1e7s: exit 2, the error under the value on the command line."""
    p = _scn(tmp_path, GOOD)
    rc = main(["run", str(p), "--set", "run.duration=1e7s"])
    err = capsys.readouterr().err
    assert rc == 2 and "<command line>" in err and "beyond the range of times" in err, err


def test_a_sweep_point_beyond_the_range_fails_alone(tmp_path, capsys):
    """A swept value that overflows only at its point fails that point's runs with the
    range error; the other points run."""
    src = GOOD.replace("scenario s {", "param k = 1\nscenario s {").replace(
        "\n}\n", "\n    run { duration 1ms * k }\n    sweep { k = [1, 2e10] }\n}\n")
    p = _scn(tmp_path, src)
    rc = main(["sweep", str(p), "--out", str(tmp_path / "out"), "--no-table", "--no-progress",
               "--launcher", "inline"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 ok, 1 failed" in out and "beyond the range of times" in out, out
