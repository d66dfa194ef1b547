"""examples/analysis.ipynb runs top to bottom in a kernel of this environment's Python."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_example_notebook_runs_top_to_bottom(tmp_path):
    """Every cell executes without error, in a kernel running this venv's python."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    nb = nbformat.read(ROOT / "examples" / "analysis.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stored clean
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path / "examples")}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on an error
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"kernel python: {sys.executable}" in first or \
        f"kernel python: {os.path.realpath(sys.executable)}" in first
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/svg+xml" in o.get("data", {}) for o in shown)  # the plot, inline
    text = "".join(o.get("text", "") for o in shown)
    assert "reproduced:" in text and "NOT reproduced" not in text
