"""Outputs that read well: the run table, `runs`, `show`, `--dry-run`, `run --help`, and the
example sweep's comment against what the sweep shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from irqlab.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run_table(capsys, path, *args):
    assert main(["run", str(path), *args]) == 0
    return capsys.readouterr().out


def _two_vcpus(text: str, where: Path) -> Path:
    """A scenario text with a second vCPU, written to ``where``/two.scn."""
    text = text.replace("    vcpu 0 {", "    vcpu 1 {\n        L1 linux { policy lower_then_eoi }\n"
                        "    }\n\n    vcpu 0 {")
    f = where / "two.scn"
    f.write_text(text)
    return f


def _header(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if "┃ rep" in ln)
    return [c.strip() for c in line.strip("┃ ").split("┃")]


def test_run_table_shows_only_the_levels_that_exist(capsys):
    """A non-nested guest has no L2 column; bare metal has only L0 and no VMM userspace."""
    guest = _header(_run_table(capsys, EXAMPLES / "level_highrate.scn", "-n", "1",
                               "--set", "run.duration=2ms"))
    assert "L2" not in guest and {"L1", "L0", "user"} <= set(guest)
    bare = _header(_run_table(capsys, EXAMPLES / "baremetal_edge_poisson.scn", "-n", "1",
                              "--set", "run.duration=2ms"))
    assert "L0" in bare and not {"L2", "L1", "user"} & set(bare)
    nested = _header(_run_table(capsys, EXAMPLES / "founding_case.scn", "-n", "1",
                                "--set", "run.duration=1ms"))
    assert {"L2", "L1", "L0", "user"} <= set(nested)


def test_run_table_shares_are_per_vcpu(capsys, tmp_path):
    """With two vCPUs the level shares of a run add up to 100%, not 200%."""
    out = _run_table(capsys, _two_vcpus((EXAMPLES / "level_highrate.scn").read_text(), tmp_path),
                     "-n", "1", "--set", "run.duration=2ms")
    assert "per vCPU, mean of 2" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("│   0"))
    shares = [float(x) for x in re.findall(r"([\d.]+)%", row)]
    assert len(shares) == 3 and sum(shares) == pytest.approx(100.0, abs=0.2)


def test_run_shows_each_vcpus_shares_whose_mean_is_the_run_row(capsys, tmp_path):
    """With two vCPUs a table gives each vCPU's share at each level; their mean is the
    run table's share."""
    text = (EXAMPLES / "level_highrate.scn").read_text()
    out = _run_table(capsys, _two_vcpus(text, tmp_path), "-n", "1", "--set", "run.duration=2ms")
    lines = out.splitlines()
    run_row = [float(x) for x in re.findall(r"([\d.]+)%", next(ln for ln in lines if ln.startswith("│   0 │")))]
    start = next(i for i, ln in enumerate(lines) if "time share per vCPU" in ln)
    per_cpu = [[float(x) for x in re.findall(r"([\d.]+)%", ln)] for ln in lines[start:]
               if re.match(r"│ +[01] │", ln)]
    assert len(per_cpu) == 2 and len(per_cpu[0]) == len(run_row) == 3
    for k in range(3):
        assert (per_cpu[0][k] + per_cpu[1][k]) / 2 == pytest.approx(run_row[k], abs=0.11)


def test_run_table_shows_each_replications_seed(capsys):
    """Replications show their own stream (seed and spawn key), not one shared seed."""
    out = _run_table(capsys, EXAMPLES / "founding_case.scn", "-n", "2", "--seed", "7",
                     "--set", "run.duration=1ms")
    assert "seed" in _header(out)
    assert "│   0 │ 7 [0] │" in out and "│   1 │ 7 [1] │" in out


def test_run_devices_table_marks_p50_as_an_estimate(capsys):
    """p50/p99 are labelled as histogram estimates and max as exact."""
    out = _run_table(capsys, EXAMPLES / "level_highrate.scn", "-n", "1",
                     "--set", "run.duration=2ms")
    assert "p50 (est.)" in out and "p99 (est.)" in out and "max (exact)" in out
    assert "p50, p99: estimates from a histogram" in out


def test_run_help_states_the_real_default_backend(capsys):
    """`run --help` names the default backend the IR really has and what it picks."""
    import dataclasses

    from irqlab import ir
    default = next(f.default for f in dataclasses.fields(ir.RunSpec) if f.name == "backend")
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"itself '{default}' unless set" in text
    assert "else the NumPy lockstep executor" in text
    assert "normally numpy" not in text


def test_dry_run_prints_values_in_their_units(capsys, tmp_path):
    """--dry-run prints delay=1ms and rate=50kHz, not 0.001 and 50000.0."""
    assert main(["sweep", str(EXAMPLES / "sweep_founding.scn"), "--out", str(tmp_path / "o"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mitigation.qemu_eoi_throttle.delay=1ms" in out
    assert "mitigation.qemu_eoi_throttle.threshold=10," in out
    assert "delay=0.001" not in out
    assert main(["sweep", str(EXAMPLES / "level_highrate.scn"), "--out", str(tmp_path / "o"),
                 "--grid", "device.dev.arrival.rate=50kHz,1MHz", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "device.dev.arrival.rate=50kHz" in out and "device.dev.arrival.rate=1MHz" in out


@pytest.mark.slow
def test_show_names_the_git_commit_of_the_scenarios_work_tree(tmp_path, capsys):
    """A sweep of a scenario in a git work tree: `show` prints that commit and 'dirty: no'."""
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (EXAMPLES / "founding_case.scn").read_text()
    (repo / "s.scn").write_text(text + "\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "s.scn"], check=True)
    subprocess.run([*git, "commit", "-qm", "s"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    out = tmp_path / "out"
    assert main(["sweep", str(repo / "s.scn"), "--out", str(out), "--set", "run.duration=1ms",
                 "--set", "run.replications=1", "--no-table"]) == 0
    capsys.readouterr()
    assert main(["runs", str(out), "-f", "csv"]) == 0
    run_id = capsys.readouterr().out.splitlines()[1].split(",")[0]
    assert main(["show", str(out), run_id]) == 0
    shown = capsys.readouterr().out
    assert re.search(rf"git_commit\s+{head}\b", shown)
    assert re.search(r"git_dirty\s+no\b", shown)


@pytest.mark.slow
def test_sweep_founding_comment_matches_its_results(tmp_path, capsys):
    """The example's comment (progress = threshold x loop period, the delay changes nothing)
    is what its sweep shows, on a shortened run."""
    from irqlab.results.query import run_query

    comment = (EXAMPLES / "sweep_founding.scn").read_text()
    assert "the delay does not change it" in comment
    period_us = float(re.search(r"about ([\d.]+) us an iteration", comment).group(1))
    out = tmp_path / "o"
    assert main(["sweep", str(EXAMPLES / "sweep_founding.scn"), "--out", str(out),
                 "--set", "run.duration=3ms", "--set", "run.replications=1",
                 "--no-table"]) == 0
    rows = run_query(str(out), "SELECT threshold, delay, time_to_l2_progress_ns FROM sweep_1 "
                               "ORDER BY 1, 2").rows
    by_threshold: dict[float, set] = {}
    for threshold, _delay, t in rows:
        by_threshold.setdefault(threshold, set()).add(t)
    assert all(len(ts) == 1 for ts in by_threshold.values())  # the delay changes nothing
    progressed = {th: ts.pop() for th, ts in by_threshold.items() if None not in ts}
    assert len(progressed) >= 2  # 10 and 100 progress within 3 ms
    for threshold, t in progressed.items():
        assert t / 1e3 / threshold == pytest.approx(period_us, rel=0.05)
