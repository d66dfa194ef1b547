"""docs/writing-plugins.md works as written: its files and commands, run in order in an empty
directory, install a plugin, run, check, sweep and query it; its verbatim outputs are what
the commands print."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from irqlab.plugins import registry as reg_mod

from .conftest import ROOT

DOC = ROOT / "docs" / "writing-plugins.md"
BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def blocks() -> list[tuple[str, str, str]]:
    """Every fenced block of the doc: (language, info after it, body)."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in BLOCK.finditer(DOC.read_text("utf-8"))]


def script() -> str:
    """The doc as one bash script: ``file=NAME`` blocks are written, ``sh`` blocks run,
    ``python run`` blocks executed, in order; everything else is left out."""
    out = ["set -euo pipefail"]
    for lang, info, body in blocks():
        m = re.search(r"file=(\S+)", info)
        if m:
            out.append(f"cat > {m.group(1)} <<'__IRQLAB_DOC__'\n{body}__IRQLAB_DOC__")
        elif lang == "sh":
            out.append(body)
        elif lang == "python" and "run" in info.split():
            out.append(f"python - <<'__IRQLAB_DOC__'\n{body}__IRQLAB_DOC__")
    return "\n".join(out) + "\n"


def test_the_doc_has_a_complete_walkthrough():
    """The doc writes a pyproject, the plugin and a scenario, and installs, runs, sweeps, queries."""
    s = script()
    for piece in ("cat > pyproject.toml", "cat > irqlab_mingap.py", "cat > mingap.scn", "pip install",
                  "irqlab plugins --kind", "irqlab run", "irqlab plugins check", "irqlab sweep", "irqlab query"):
        assert piece in s


def test_the_docs_plugin_validates():
    """The plugin class in the doc registers ok (no install needed)."""
    from irqlab.plugins.registry import Registry

    (body,) = [b for lang, info, b in blocks() if "file=irqlab_mingap.py" in info]
    ns: dict = {}
    exec(compile(body, "irqlab_mingap.py", "exec"), ns)  # noqa: S102 - our own doc
    assert Registry().add_class(ns["MinGap"]).status == "ok"


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    """Run the script in an empty directory with this environment's python, pip and irqlab;
    every command succeeds and every ``text verbatim`` block appears in the output."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               PYTHONPATH="")
    (tmp_path / "walk.sh").write_text(script(), encoding="utf-8")
    try:
        done = subprocess.run(["bash", "walk.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "irqlab-mingap"],
                       capture_output=True)
        reg_mod.reset()
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    printed = {ln.rstrip() for ln in done.stdout.splitlines()}
    for lang, info, body in blocks():
        if lang == "text" and "verbatim" in info.split():
            for ln in body.splitlines():
                assert ln.rstrip() in printed, f"the doc shows {ln!r}; the commands printed:\n{done.stdout}"
    work = tmp_path / "irqlab-mingap"
    assert (work / "runs" / "results.db").exists()
    assert "### `min_gap`" in (work / "PLUGIN.md").read_text("utf-8")
