"""Syntax errors and the command line: located, in the language's words, status 2."""

from __future__ import annotations

import re

import pytest

from tests.dsl.conftest import GOOD
from irqlab.cli.main import main
from irqlab.dsl import lower, parse
from irqlab.errors import ScenarioError

RAW = re.compile(r"__ANON|\b(RBRACE|LBRACE|LSQB|RSQB|LPAR|RPAR|SEMICOLON|_NL|NAME|NUMBER|DOTTED|"
                 r"COMMA|EQUAL|\$END)\b")


def run_check(files, text: str | bytes, capsys) -> tuple[int, str]:
    p = files.root / "t.scn"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    rc = main(["check", str(p)])
    return rc, capsys.readouterr().err


def test_unexpected_token_in_words(files, capsys):
    """A stray ']' names what was expected, with no raw token names."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi 23 ]"), capsys)
    assert rc == 2
    assert re.search(r"t\.scn:8:16: error: unexpected '\]'; expected a value", err)
    assert "'}'" in err and "a new line or ';'" in err
    assert not RAW.search(err)


def test_caret_under_the_spot(files, capsys):
    """The source line is printed with a caret under the error's column."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi 23 ]"), capsys)
    lines = err.splitlines()
    i = next(k for k, ln in enumerate(lines) if "error:" in ln)
    assert lines[i + 1].strip() == "gsi 23 ]"
    assert lines[i + 2].index("^") == lines[i + 1].index("]")


def test_unclosed_brace_points_at_it(files, capsys):
    """A missing '}' is reported at the '{' that is never closed."""
    rc, err = run_check(files, GOOD.rstrip().rstrip("}"), capsys)
    assert rc == 2
    assert "t.scn:1:12: error: this '{' is never closed" in err


def test_unmatched_closing_brace(files, capsys):
    """A '}' with nothing open."""
    rc, err = run_check(files, GOOD + "}\n", capsys)
    assert "t.scn:15:1: error: unmatched '}'" in err


def test_missing_value_at_end_of_line(files, capsys):
    """An operator at the end of a line expects a value."""
    rc, err = run_check(files, GOOD.replace("after 20us", "after 20us +"), capsys)
    assert "t.scn:11:36: error: unexpected end of line; expected a value" in err


def test_list_missing_comma(files, capsys):
    """[1 2] asks for ',' or ']'."""
    src = GOOD.replace("\n}\n", "\n    sweep { grid { uhci.vector = [0x50 0x51] } }\n}\n")
    rc, err = run_check(files, src, capsys)
    assert "t.scn:14:40: error: unexpected '0x51'; expected ']' or ','" in err


def test_assignment_where_comparison_meant(files, capsys):
    """'where a = 1' hints at '=='."""
    src = GOOD.replace("\n}\n", "\n    sweep { where a = 1 }\n}\n")
    rc, err = run_check(files, src, capsys)
    assert "t.scn:14:21: error: unexpected '='" in err
    assert "write '=='" in err


def test_unexpected_character(files, capsys):
    """A character the language does not use."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi @23"), capsys)
    assert "t.scn:8:13: error: unexpected character '@'" in err


def test_control_character_shown_as_code_point(files, capsys):
    """A control character is shown as U+XXXX, not raw."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi \x0723"), capsys)
    assert "t.scn:8:13: error: unexpected character U+0007" in err


def test_unterminated_string(files, capsys):
    """A string that runs to the end of its line."""
    rc, err = run_check(files, 'import "x.scn\n' + GOOD, capsys)
    assert "t.scn:1:8: error: unterminated string" in err


def test_invalid_utf8_is_located(files, capsys):
    """Invalid UTF-8 is reported at its line and column."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi \udcff23").encode("utf-8", "surrogateescape"),
                        capsys)
    assert rc == 2
    assert "t.scn:8:13: error: invalid UTF-8 (byte 0xFF)" in err


def test_nul_byte_is_located(files, capsys):
    """A NUL byte is a located error, not a crash."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi 2\x003"), capsys)
    assert rc == 2
    assert "t.scn:8:14: error: the file contains a NUL byte" in err


def test_no_traceback_without_debug(files, capsys):
    """User errors print no Python traceback."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi 23 ]"), capsys)
    assert "Traceback" not in err


def test_debug_shows_traceback(files, capsys):
    """--debug prints the traceback of a user error too."""
    p = files.write("t.scn", GOOD.replace("{ gsi", "{ gsi"))  # valid
    bad = files.write("b.scn", "scenario s {")
    rc = main(["--debug", "lower", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and "never closed" in err
    assert p.exists()


def test_check_reports_every_file(files, capsys):
    """check goes on after a bad file and exits 2."""
    good = files.write("good.scn", GOOD)
    bad = files.write("bad.scn", "scenario s {")
    rc = main(["check", str(bad), str(good)])
    cap = capsys.readouterr()
    assert rc == 2
    assert "good.scn: ok" in cap.out
    assert "bad.scn:1:12: error" in cap.err


def test_missing_file_is_a_user_error(files, capsys):
    """A file that does not exist: status 2, no traceback."""
    rc = main(["check", str(files.root / "nope.scn")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot read" in err and "Traceback" not in err


def test_visit_error_unwrapped(files):
    """lower(parse(...)) of a bad unit raises ScenarioError, not lark's VisitError."""
    src = GOOD.replace("after 20us", "after 20xs")
    tree = parse(src, "t.scn")
    with pytest.raises(ScenarioError, match="unknown unit 'xs'") as e:
        lower(tree, "t.scn", src)
    assert (e.value.span.line, e.value.span.col) == (11, 30)


def test_deep_nesting_is_a_located_error(files, capsys):
    """Hundreds of nested parentheses are refused at a place, without a RecursionError."""
    rc, err = run_check(files, GOOD.replace("after 20us", "after " + "(" * 400 + "1us" + ")" * 400), capsys)
    assert rc == 2 and "nested more than" in err and "t.scn:11:" in err


def test_long_expression_is_a_located_error(files, capsys):
    """A statement with thousands of operators is refused without a RecursionError."""
    rc, err = run_check(files, GOOD.replace("after 20us", "after 1us" + " + 1us" * 3000), capsys)
    assert rc == 2 and "more than 100 operators" in err


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ": error: " in ln]


def test_independent_syntax_errors_are_all_reported(files, capsys):
    """Three broken statements in three blocks: three errors, in source order, each located."""
    text = (GOOD.replace("irqchip split", "irqchip split +")
            .replace("gsi 23", "gsi 23 @ 4")
            .replace("trigger level", "trigger = = level"))
    rc, err = run_check(files, text, capsys)
    assert rc == 2
    assert [ln.split(": error:")[0] for ln in _error_lines(err)] == \
        [f"{files.root / 't.scn'}:2:31", f"{files.root / 't.scn'}:8:16", f"{files.root / 't.scn'}:10:19"]


def test_recovery_keeps_the_first_error_exactly(files, capsys):
    """The first error of a file with several reads as it does when it is the only one."""
    one = GOOD.replace("gsi 23", "gsi 23 ]")
    _, alone = run_check(files, one, capsys)
    _, several = run_check(files, one.replace("vector 0x50", "vector 0x50 ]"), capsys)
    first = alone.split("\n")[:3]
    assert several.split("\n")[:3] == first and len(_error_lines(several)) == 2


def test_a_bad_statement_is_skipped_whole(files, capsys):
    """After an error the rest of its statement, braces and all, yields no further errors."""
    text = GOOD.replace("gsi 23", "gsi 23 ] ] { ] } ]")
    rc, err = run_check(files, text, capsys)
    assert len(_error_lines(err)) == 1 and ":8:16: error:" in err


def test_an_unclosed_bracket_does_not_cascade(files, capsys):
    """A '(' left open swallows the new lines after it, so it is one error, not one a line."""
    rc, err = run_check(files, GOOD.replace("gsi 23", "gsi (23,"), capsys)
    assert rc == 2 and len(_error_lines(err)) == 1


def test_missing_separator_after_block_is_its_own_error(files, capsys):
    """Two statements on one line after a '}' are a real error; the next line's is another."""
    text = GOOD.replace("machine { irqchip split }", "machine { irqchip split } costs { }")
    text = text.replace("vector 0x50", "vector 0x50 +")
    rc, err = run_check(files, text, capsys)
    locs = [ln.split(": error:")[0].rsplit(":", 2)[1:] for ln in _error_lines(err)]
    assert locs == [["2", "31"], ["9", "22"]]


def test_syntax_errors_are_capped(files, capsys):
    """A file of garbage stops at MAX_SYNTAX_ERRORS errors."""
    from irqlab.dsl.syntax import MAX_SYNTAX_ERRORS

    rc, err = run_check(files, "x = = 1\n" * (MAX_SYNTAX_ERRORS + 10), capsys)
    assert rc == 2 and len(_error_lines(err)) == MAX_SYNTAX_ERRORS


def test_recovery_leaves_nothing_behind_for_the_next_file():
    """A file whose recovery stops at the cap inside an open '(' does not change how the
    next file is read (its new lines still end statements)."""
    from irqlab.dsl.syntax import MAX_SYNTAX_ERRORS, parse_statements

    with pytest.raises(ScenarioError):
        parse_statements("a (\n" + "x = @\n" * (MAX_SYNTAX_ERRORS + 5), "a.scn")
    assert len(parse_statements("a 1\nb 2\n", "b.scn")) == 2


def test_a_caret_under_a_negative_number_starts_at_its_sign(files, capsys):
    """A value error on `-1` (prefix minus) points at the '-', and underlines the whole `-1`."""
    from tests.dsl.test_routes_language import smp

    code, err = run_check(files, smp("").replace("vcpus 2", "vcpus 2; tpr -1"), capsys)
    assert code == 2
    lines = err.splitlines()
    assert ":2:44: error: tpr -1 is outside 0-0xFF" in lines[0]
    assert lines[2] == " " * lines[1].index("-1") + "^^"
