"""Mutated example files: check ends with status 0, or 2 with a located error; never a crash.

200 examples, or 3000 with ``HYPOTHESIS_PROFILE=ci`` (what CI sets).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dsl.conftest import EXAMPLES
from irqlab.cli.main import main

# This test's own example count: the shared profiles (tests/conftest.py) size the other
# property tests, and re-registering a profile name would resize them all.
MUTANTS = 3000 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 200
FUZZ = settings(max_examples=MUTANTS, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LOCATED = re.compile(r"^(.+):(\d+):(\d+): error: .+", re.M)
SOURCES = {p.name: p.read_bytes() for p in EXAMPLES}


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """An example file's bytes after a few random edits."""
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = SOURCES[name]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["del_line", "dup_line", "swap_lines", "rev_line", "truncate",
                                   "del_chars", "dup_chars", "swap_chars", "insert_bytes", "replace_byte",
                                   "bad_utf8", "insert_token"]))
        lines = _lines(data)
        n = len(lines)
        i = draw(st.integers(0, max(0, n - 1)))
        if op == "del_line" and n > 1:
            del lines[i]
            data = b"\n".join(lines)
        elif op == "dup_line":
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif op == "swap_lines" and n > 1:
            j = draw(st.integers(0, n - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        elif op == "rev_line":
            lines[i] = lines[i][::-1]
            data = b"\n".join(lines)
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        else:
            k = draw(st.integers(0, len(data)))
            w = draw(st.integers(1, 8))
            if op == "del_chars":
                data = data[:k] + data[k + w:]
            elif op == "dup_chars":
                data = data[:k] + data[k:k + w] + data[k:]
            elif op == "swap_chars" and len(data) > 1:
                j = draw(st.integers(0, len(data) - 1))
                b = bytearray(data)
                b[min(k, len(b) - 1)], b[j] = b[j], b[min(k, len(b) - 1)]
                data = bytes(b)
            elif op == "insert_bytes":
                data = data[:k] + draw(st.binary(min_size=1, max_size=6)) + data[k:]
            elif op == "replace_byte" and data:
                b = bytearray(data)
                b[min(k, len(b) - 1)] = draw(st.integers(0, 255))
                data = bytes(b)
            elif op == "bad_utf8":
                data = data[:k] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"])) + data[k:]
            elif op == "insert_token":
                tok = draw(st.sampled_from([b"{", b"}", b"[", b"]", b"(", b")", b";", b"=", b"..", b"-", b"**",
                                            b'"', b"#", b"\n", b"0x", b"1e999", b"param", b"where", b"in",
                                            b"include \"founding_case.scn\"\n", b"import \"x.scn\"\n",
                                            b"vcpu 1 {}\n", b"remove device uhci\n", b"10 cycles",
                                            b"not", b"min(", b"if(", b"0", b"-1ms", b"L3", b"all"]))
                data = data[:k] + tok + data[k:]
    return name, data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    for p in EXAMPLES:
        shutil.copy(p, d / p.name)
    return d


@pytest.mark.slow
@FUZZ
@given(case=mutated())
def test_check_never_crashes_on_mutated_examples(case, workdir, capsys):
    """check ends with 0, or with 2 and a located error; never an internal error."""
    name, data = case
    path = workdir / f"mutant_{name}"
    path.write_bytes(data)
    rc = main(["check", str(path)])
    out = capsys.readouterr()
    assert rc in (0, 2), out.err
    assert "Traceback" not in out.err and "internal error" not in out.err, out.err
    if rc == 2:
        m = LOCATED.search(out.err)
        assert m, out.err
        assert int(m.group(2)) >= 1 and int(m.group(3)) >= 1, out.err


@pytest.mark.slow
@FUZZ
@given(case=mutated())
def test_recovery_never_fails_and_keeps_the_first_error(case):
    """Error recovery raises nothing of its own and starts with the error a plain parse gives."""
    from lark.exceptions import UnexpectedInput

    from irqlab.dsl import syntax
    from irqlab.errors import ScenarioError

    name, data = case
    try:
        text = syntax.check_text(syntax.decode(data, name), name)
        syntax._parser("tree").parse(text, start="start")
    except ScenarioError:
        return
    except UnexpectedInput as e:
        first = syntax.syntax_error(e, text, name)
    else:
        return
    try:
        found = syntax._recover(text, name)
    except ScenarioError:  # a nesting bound later in the file: reported as such
        return
    assert found and found[0].span == first.span, (found, first)
    assert found[0].message == first.message
