"""docs/python-api.md runs as written: its sh block, then its python blocks in one namespace."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"


def blocks(lang: str) -> list[str]:
    """The fenced ``lang`` blocks of the page, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


@pytest.mark.slow
def test_python_api_doc_runs_as_written(tmp_path, monkeypatch):
    """Every block of docs/python-api.md runs, in a fresh directory with examples/."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    for sh in blocks("sh"):
        done = subprocess.run(["bash", "-e", "-c", sh], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc__"}
    code = blocks("python")
    assert len(code) >= 6
    for k, block in enumerate(code):
        exec(compile(block, f"{DOC.name} python block {k + 1}", "exec"), namespace)  # noqa: S102
