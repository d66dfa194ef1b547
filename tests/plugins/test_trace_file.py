"""arrival trace files are validated when the scenario is checked, read fast, and read once."""

from __future__ import annotations

import numpy as np
import pytest

from irqlab.cli.main import main
from irqlab.dsl import load_all
from irqlab.plugins.builtin import arrivals
from tests.dsl.conftest import GOOD

TRACE = GOOD.replace("arrival once at 0", 'arrival trace file "tr.txt"')


def _check(tmp_path, capsys, trace: bytes | None) -> tuple[int, str]:
    arrivals._CACHE.clear()
    if trace is not None:
        (tmp_path / "tr.txt").write_bytes(trace)
    p = tmp_path / "t.scn"
    p.write_text(TRACE)
    rc = main(["check", str(p)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    (b"nan", "not a finite timestamp"),
    (b"Infinity", "not a finite timestamp"),
    (b"1e30", "beyond the range of times"),
    (b"-5us", "timestamps cannot be negative"),
    (b"soon", "not a timestamp: 'soon'"),
    (b"\xff\xfe", "invalid UTF-8"),
])
def test_the_first_bad_line_is_located_in_the_trace(tmp_path, capsys, bad, message):
    """check: FILE:LINE:COL at the first bad line of the trace, with the line and a caret, exit 2."""
    rc, err = _check(tmp_path, capsys, b"# arrivals\n1ms\n" + bad + b"\n" + bad + b"\n")
    assert rc == 2, err
    lines = err.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'tr.txt'}:3:1: error: ") and message in lines[0], err
    assert "^" in lines[2] and len(err.split(": error: ")) == 2, err  # one error, shown with its caret


@pytest.mark.parametrize("make, message", [(None, "No such file"), ("dir", "is a directory")])
def test_a_missing_or_directory_trace_is_located_at_the_file_argument(tmp_path, capsys, make, message):
    """check: a missing trace, or a directory, is an error at the scenario's file argument only."""
    if make == "dir":
        (tmp_path / "tr.txt").mkdir()
    rc, err = _check(tmp_path, capsys, None)
    assert rc == 2 and "t.scn:12:28: error:" in err and message in err, err
    assert "needs parameter" not in err  # the cause only


def test_the_bulk_reader_and_the_line_reader_agree(tmp_path):
    """A large file of bare seconds (the bulk reader) gives the same picoseconds as with a
    comment line added (the line-by-line reader)."""
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.exponential(1e-4, arrivals.FAST_BYTES // 8))
    body = "".join(f"{x:.12f}\n" for x in t) + "0.1\n1e-3\n5\n"
    bulk, lines = tmp_path / "a.txt", tmp_path / "b.txt"
    bulk.write_text(body)
    lines.write_text("# the same\n" + body)
    assert bulk.stat().st_size >= arrivals.FAST_BYTES
    assert arrivals._fast_ps(bulk.read_bytes()) is not None
    a, b = arrivals.load_timestamps(str(bulk)), arrivals.load_timestamps(str(lines))
    assert a.dtype == np.int64 and np.array_equal(a, b)
    assert 10**11 in a and 10**9 in a and 5 * 10**12 in a


def test_a_bad_value_in_a_large_file_is_found_by_line(tmp_path):
    """A NaN deep in a large file of bare numbers is reported at its line."""
    n = arrivals.FAST_BYTES // 4
    body = "0.5\n" * n + "-0.25\n" + "0.5\n" * 10
    p = tmp_path / "a.txt"
    p.write_text(body)
    with pytest.raises(Exception, match="timestamps cannot be negative") as e:
        arrivals.load_timestamps(str(p))
    assert e.value.diagnostics[0].span.line == n + 1


def test_a_trace_is_read_once_for_check_and_run(tmp_path, monkeypatch):
    """Checking, resolving and running a scenario read its trace file once."""
    from irqlab import engine, files
    from irqlab.engine.program import Lane
    from irqlab.resolve import resolve

    arrivals._CACHE.clear()
    reads = []
    real = files.read_bytes
    monkeypatch.setattr(files, "read_bytes", lambda path, **kw: reads.append(path) or real(path, **kw))
    (tmp_path / "tr.txt").write_text("1us\n2us\n")
    p = tmp_path / "t.scn"
    p.write_text(TRACE.replace("\n}\n", "\n    run { duration 1ms }\n}\n"))
    s = resolve(load_all(str(p))["s"])
    engine.run(engine.compile(s), [Lane(seed=1, spawn_key=(i,)) for i in range(3)])
    assert [r for r in reads if r.endswith("tr.txt")] == [str(tmp_path / "tr.txt")]


EMPIRICAL = GOOD.replace("serviced_by L2 after 20us", 'serviced_by L2\n        service empirical { file "s.txt" }')


@pytest.mark.parametrize("body, where", [
    (b"12us\nsoon\n", "s.txt:2:1: error: "),
    (b"# nothing measured\n", "t.scn:12:34: error: "),
])
def test_an_empirical_sample_file_is_checked_at_check_time(tmp_path, capsys, body, where):
    """check: a bad or empty `service empirical` file is one located error, exit 2 (not a run failure)."""
    arrivals._CACHE.clear()
    (tmp_path / "s.txt").write_bytes(body)
    p = tmp_path / "t.scn"
    p.write_text(EMPIRICAL)
    rc = main(["check", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and where in err and len(err.split(": error: ")) == 2, err
