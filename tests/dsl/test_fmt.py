"""irqlab fmt: canonical, idempotent, comment-preserving, IR-preserving."""

from __future__ import annotations

import pytest

from tests.dsl.conftest import EXAMPLES, ROOT
from irqlab.cli.main import main
from irqlab.dsl import format_source, loads

ALL = EXAMPLES + [ROOT / "irqlab" / "data" / "default.scn"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_examples_are_formatted_and_idempotent(path):
    """Every example is already canonical, so formatting changes nothing."""
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text


MESSY = """# head comment
scenario   s   {   # after brace
  machine{irqchip split;apicv on}   # trailing
    vcpu 0 {
  L1 hyperv {policy eoi_before_lower}
        L2 windows {
        }
}


    device uhci {
      gsi 23 ; vector 0x50
      trigger level
      serviced_by L2 after 20us ; arrival once at 0
      # before the end
    }
    run { duration 1000   cycles*2 }
    sweep { grid { uhci.service = [1us,
        2us,   # in a list
        3us] } }
}
# tail
"""


def test_messy_file_formats_canonically():
    """Spacing, indentation, separators and blank lines become canonical."""
    out = format_source(MESSY)
    assert "scenario s {  # after brace" in out
    assert "    machine { irqchip split; apicv on }  # trailing" in out
    assert "        gsi 23\n        vector 0x50\n" in out
    assert "        L2 windows {}\n" in out
    assert "    run { duration 1000 cycles * 2 }" in out
    assert "\n\n\n" not in out


def test_formatting_twice_changes_nothing():
    """fmt(fmt(x)) == fmt(x)."""
    once = format_source(MESSY)
    assert format_source(once) == once


def test_comments_survive():
    """Every comment of the input is in the output."""
    out = format_source(MESSY)
    for c in ("# head comment", "# after brace", "# trailing", "# before the end", "# in a list", "# tail"):
        assert c in out


def test_formatted_file_lowers_to_same_ir():
    """The formatted text lowers to an IR equal to the original's (spans aside)."""
    src = MESSY.replace("    sweep", "    mitigation qemu_eoi_throttle {}\n    sweep")
    assert loads(format_source(src)) == loads(src)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_examples_round_trip_ir(path):
    """An example and its formatted text lower to equal IR."""
    text = path.read_text(encoding="utf-8")
    assert loads(format_source(text, str(path)), str(path)) == loads(text, str(path))


def test_fmt_check_and_in_place(tmp_path, capsys):
    """--check exits 1 for a file that would change; -i rewrites it; then --check passes."""
    p = tmp_path / "m.scn"
    p.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", "--check", str(p)]) == 1
    assert p.read_text(encoding="utf-8") == MESSY
    assert main(["fmt", "-i", str(p)]) == 0
    assert main(["fmt", "--check", str(p)]) == 0
    capsys.readouterr()


def test_fmt_syntax_error_is_status_2(tmp_path, capsys):
    """fmt of a file that does not parse reports it located, status 2."""
    p = tmp_path / "bad.scn"
    p.write_text("scenario s {\n", encoding="utf-8")
    assert main(["fmt", str(p)]) == 2
    assert "bad.scn:1:12: error" in capsys.readouterr().err


def test_prefix_operators_keep_their_operands():
    """-x, +x and not x are written back with their operands (the grammar keeps their tokens)."""
    text = "param x = -3\nparam y = not (x > -(2 + 1))\nparam z = +x\n"
    assert format_source(text) == text
