"""The commands a user starts with load no heavy module: they start in a fraction of a second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("ray", "pyarrow", "sqlalchemy", "matplotlib", "pandas", "duckdb", "numba", "polars")

PROBE = """
import json, sys
from irqlab.cli.main import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(m for m in sys.modules if "." not in m)}),
      file=sys.stderr)
"""


def loaded(*args: str) -> tuple[int, set[str]]:
    """Run ``irqlab ARGS`` in a fresh interpreter: its exit status and top-level modules."""
    p = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    report = json.loads(p.stderr.strip().splitlines()[-1])
    return report["status"], set(report["modules"])


@pytest.mark.parametrize("args", [
    ("--help",),
    ("check", "examples/founding_case.scn"),
    ("fmt", "examples/founding_case.scn"),
    ("fmt", "--check", "examples/sweep_features.scn"),
], ids=" ".join)
def test_first_commands_import_nothing_heavy(args):
    """--help, check and fmt import none of ray, pyarrow, sqlalchemy, matplotlib (and the like)."""
    status, modules = loaded(*args)
    assert status == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_help_and_fmt_do_not_import_numpy():
    """--help and fmt do not even import numpy (check does: the plugins' declarations do)."""
    for args in (("--help",), ("fmt", "examples/founding_case.scn")):
        assert "numpy" not in loaded(*args)[1]


def test_the_probe_sees_what_a_command_imports():
    """The probe is not blind: a sweep's dry run, which plans with numpy, shows numpy."""
    status, modules = loaded("sweep", "--dry-run")
    assert status == 0 and "numpy" in modules
