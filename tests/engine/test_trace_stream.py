"""Long traces stream to disk: bounded memory, the same bytes from every backend."""

from __future__ import annotations

import errno
import io
import json
import random
import tempfile
import tracemalloc
from pathlib import Path

import pytest

from irqlab import engine
from irqlab.cli.main import main
from irqlab.engine import kernelrun, spill
from irqlab.engine.spill import Spill
from irqlab.engine.trace import format_report, to_perfetto, write_perfetto
from tests.engine.scenarios import founding, ms

BACKENDS = ("reference", "numpy", "kernel")


def test_a_spilled_list_reads_back_in_order_and_sorted():
    """A Spill with most items on disk iterates, compares and sorts (stably, by key) as a list."""
    rng = random.Random(5)
    items = [(rng.randrange(40), i, rng.randrange(3), f"x{i}") for i in range(5000)]
    s = Spill(items, chunk=61)
    assert s.spilled > 4900 and len(s) == 5000
    assert list(s) == items and s == items and s != items[:-1]
    assert list(s.iter_sorted()) == sorted(items)
    key = lambda r: (r[0], r[2])  # noqa: E731 - ties: emission order
    assert list(s.iter_sorted(key=key)) == sorted(items, key=key)


def test_write_perfetto_writes_the_bytes_of_json_dump():
    """The streamed Perfetto file is byte for byte json.dump of the Perfetto object."""
    prog = engine.compile(founding(duration=ms(0.2)))
    trace = engine.run(prog, [engine.Lane(1)], trace_lanes=[0], backend="numpy").traces[0]
    fh = io.StringIO()
    write_perfetto(trace, prog.n_vcpus, fh, "t")
    assert fh.getvalue() == json.dumps(to_perfetto(trace, prog.n_vcpus, "t"))


def _traced_peak(prog, backend: str, out: Path) -> tuple[int, int]:
    """(records, peak bytes traced by tracemalloc) of one traced run written to ``out``."""
    tracemalloc.start()
    try:
        trace = engine.run(prog, [engine.Lane(2)], trace_lanes=[0], backend=backend).traces[0]
        with open(out, "w") as fh:
            fh.writelines(line + "\n" for line in format_report(trace))
        with open(out.with_suffix(".json"), "w") as fh:
            write_perfetto(trace, prog.n_vcpus, fh)
        return len(trace.records), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_traced_run_has_bounded_memory(backend, tmp_path, monkeypatch):
    """A traced run 4x longer (4x the records) peaks at about the same memory, writing out included."""
    monkeypatch.setattr(spill, "CHUNK", 512)
    monkeypatch.setattr(kernelrun, "TRACE_BUFFER", 512)
    if backend == "kernel":
        kernelrun.kernel_module()  # compiled or loaded before measuring
    short, long_ = (engine.compile(founding(duration=ms(d))) for d in (2, 8))
    _traced_peak(short, backend, tmp_path / "warm.txt")  # first-call allocations (imports, caches)
    n1, peak1 = _traced_peak(short, backend, tmp_path / "short.txt")
    n4, peak4 = _traced_peak(long_, backend, tmp_path / "long.txt")
    assert n4 > 3.5 * n1 > 3.5 * 1000
    assert peak4 < 1.5 * peak1, (peak1, peak4)  # in memory: 4x to 5x


@pytest.mark.parametrize("case", ["founding_case.scn", "founding_case_qemu_throttle.scn",
                                  "casebook/storm-2019/bug.scn",
                                  "casebook/kvm-eoi-delay/bug.scn"])
def test_run_trace_files_are_byte_identical_across_backends(case, tmp_path, monkeypatch, capsys):
    """`irqlab run --trace --perfetto` writes the same bytes with every backend (spilling)."""
    monkeypatch.setattr(spill, "CHUNK", 128)
    path = Path("examples") / case
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    files = {}
    for b in BACKENDS:
        rc = main(["run", str(path), "--set", "run.duration=400us", "--backend", b,
                   "--trace", str(tmp_path / f"{b}.txt"), "--perfetto", str(tmp_path / f"{b}.json")])
        assert rc == 0, capsys.readouterr().err
        files[b] = ((tmp_path / f"{b}.txt").read_bytes(), (tmp_path / f"{b}.json").read_bytes())
    assert len(files["reference"][0].splitlines()) > 128
    assert files["numpy"] == files["reference"] and files["kernel"] == files["reference"]


def test_run_trace_to_an_unwritable_path_fails_before_running(tmp_path, capsys):
    """A --trace path that cannot be created is a user error (exit 2) before any run."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    rc = main(["run", "examples/founding_case.scn", "--set", "run.duration=10us",
               "--trace", str(blocker / "t.txt")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.startswith(f"error: cannot use '{blocker / 't.txt'}'")
    assert "backend:" not in captured.out


@pytest.mark.parametrize("option", ["--trace", "--perfetto"])
def test_an_empty_trace_path_is_a_usage_error_not_ignored(capsys, option):
    """--trace "" (or --perfetto "") is a usage error (exit 2) before any run, not a run without a trace."""
    rc = main(["run", "examples/founding_case.scn", "--set", "run.duration=10us", option, ""])
    captured = capsys.readouterr()
    assert rc == 2 and f"Invalid value for '{option}': an empty path" in captured.err
    assert "backend:" not in captured.out


def test_a_full_disk_while_spilling_keeps_the_results_and_says_where(tmp_path, monkeypatch, capsys):
    """A trace that cannot be spilled (full disk): the run's table is printed, then exit 2 naming TMPDIR."""
    class Full(io.BytesIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spill, "CHUNK", 64)
    monkeypatch.setattr(spill.tempfile, "TemporaryFile", lambda **kw: Full())
    rc = main(["run", "examples/founding_case.scn", "--set", "run.duration=200us", "--backend", "numpy",
               "--trace", str(tmp_path / "t.txt")])
    out, err = capsys.readouterr()
    assert rc == 2 and "backend: numpy" in out and "devices (first run)" in out
    assert f"cannot write {tmp_path / 't.txt'}: No space left on device" in err
    assert f"({tempfile.gettempdir()})" in err and "Traceback" not in err
