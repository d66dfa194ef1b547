"""Helpers for the plugin tests: fake installed distributions, a fresh registry, the CLI."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from irqlab.plugins import registry as reg_mod

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# A valid plugin module body; tests append classes to it.
HEADER = "import numpy as np\nfrom irqlab.plugins.api import *\n"


class FakeDists:
    """Writes fake installed distributions (``NAME-VERSION.dist-info`` with METADATA and
    ``entry_points.txt``, plus a module) into one directory on ``sys.path``; every
    ``add`` resets the registry so the next use rediscovers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, dist: str, module: str, source: str, entry_points: dict[str, str],
            version: str = "1.0") -> None:
        (self.root / f"{module}.py").write_text(HEADER + textwrap.dedent(source), encoding="utf-8")
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
                                       encoding="utf-8")
        eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text("[irqlab.plugins]\n" + eps, encoding="utf-8")
        self.modules.append(module)
        reg_mod.reset()


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    """A :class:`FakeDists` whose directory is on sys.path for this test only."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fd = FakeDists(root)
    reg_mod.reset()
    yield fd
    for m in fd.modules:
        sys.modules.pop(m, None)
    reg_mod.reset()


@pytest.fixture
def fresh_registry():
    """The process registry, rediscovered before and after the test (runtime additions
    made by the test do not leak)."""
    reg_mod.reset()
    yield reg_mod.registry()
    reg_mod.reset()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``irqlab ARGS`` in this process: (exit status, stdout, stderr)."""
    from irqlab.cli.main import main

    capsys.readouterr()
    try:
        status = main(list(args))
    except SystemExit as e:  # some commands leave through SystemExit, as the console script would
        status = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


# A mitigation that raises in its immediate-exit hook in the lanes where ``fail`` is 1.
FRAGILE = '''
class Fragile(Mitigation):
    """Raises RuntimeError('boom') on an immediate exit where its parameter fail is 1."""

    name = "fragile"
    version = "1.0"
    params = (Param("fail", "int", 0, "1 makes it raise", min=0, max=1),)
    hooks = frozenset({"immediate_exit"})

    def on_immediate_exit(self, ctx, ev):
        if (ctx.param("fail", ev.lanes) == 1).any():
            raise RuntimeError("boom")
'''

def founding_with(body: str, duration: str = "2ms", reps: int = 2, run: bool = True) -> str:
    """A scenario extending the founding case with ``body`` at line 3 (a mitigation,
    a sweep...), the run shortened to ``duration`` (no run block if not ``run``)."""
    return (f'import "{EXAMPLES / "founding_case.scn"}"\n'
            f"scenario t extends founding_case {{\n"
            f"{body}\n"
            + (f"    run {{ duration {duration}; replications {reps} }}\n" if run else "")
            + "}\n")
