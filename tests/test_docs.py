"""The README and docs/ work as printed: every scenario block is checked, every shell
command is run (or marked illustrative), and nothing is written outside results/.

The conventions (CONTRIBUTING.md, "Runnable docs"): every fenced block has a language;
a ```scn block is a whole file, checked from the repository root, or from the directory
its first line names (``# in examples/``); ```sh lines and ```console ``$ `` lines are
commands, run in document order by the slow test below, unless the block is preceded
by ``<!-- illustrative ... -->``; code is never shown as an indented block.
docs/writing-plugins.md runs as tests/plugins/test_writing_plugins_doc.py says, and
docs/plugins.md's snippets are checked by tests/plugins/test_cli.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from irqlab.dsl import loads

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md")
                                    if p.name not in ("writing-plugins.md", "plugins.md"))
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
ILLUSTRATIVE = re.compile(r"<!--\s*illustrative\b[^>]*-->\s*$")
IN_DIR = re.compile(r"^#\s*in\s+(\S+?)/?\s*$")
#: the setup a command may start with: the test's environment is that setup already
SETUP = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -q -e \S+ && ")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence
    lang: str
    body: str
    illustrative: bool

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of ``doc``, with whether an illustrative marker precedes it."""
    text = doc.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append(Block(doc, text.count("\n", 0, m.start()) + 1, m.group(1).strip().split(" ")[0],
                         m.group(2), bool(ILLUSTRATIVE.search(before))))
    return out


def all_blocks(lang: str | None = None) -> list[Block]:
    return [b for d in DOCS for b in blocks(d) if lang is None or b.lang == lang]


def commands(block: Block) -> list[str]:
    """The shell commands of a ```sh or ```console block (comments and output left out)."""
    if block.lang == "console":
        return [ln[2:] for ln in block.body.splitlines() if ln.startswith("$ ")]
    if block.lang == "sh":
        return [ln for ln in block.body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return []


def scn_blocks() -> list[Block]:
    return all_blocks("scn")


def test_every_block_says_its_language():
    """Every fenced block names its language (scn, sh, console, text, python, sql)."""
    bare = [b.where for b in all_blocks() if not b.lang]
    assert not bare, f"fenced blocks without a language: {bare}"


def test_no_code_in_indented_blocks():
    """No doc shows a command or scenario as an indented block (the test would not see it)."""
    found = []
    for doc in DOCS:
        lines = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), doc.read_text(encoding="utf-8")).split("\n")
        for i, ln in enumerate(lines):
            if ln.startswith("    ") and i and not lines[i - 1].strip() and \
                    re.match(r"\s+(\$ |\.venv/|irqlab |python|scenario |import )", ln):
                found.append(f"{doc.relative_to(ROOT)}:{i + 1}")
    assert not found, f"indented code: {found}"


@pytest.mark.parametrize("block", scn_blocks(), ids=lambda b: b.where)
def test_scenario_blocks_check(block):
    """Every ```scn block lowers with every check, from the directory it names."""
    first = block.body.splitlines()[0] if block.body.strip() else ""
    m = IN_DIR.match(first)
    where = ROOT / m.group(1) if m else ROOT
    assert where.is_dir(), f"{block.where}: '{first}' names no directory"
    loads(block.body, str(where / f"{block.doc.stem}-line{block.line}.scn"))


def test_the_readme_tutorial_is_checked():
    """The README's tutorial snippets are among the checked blocks, those that extend the
    founding case with their import."""
    readme = [b for b in scn_blocks() if b.doc.name == "README.md"]
    extends = [b for b in readme if "extends founding_case" in b.body]
    assert len(readme) >= 5 and len(extends) >= 3
    assert all('import "founding_case.scn"' in b.body for b in extends)


#: docs whose commands another test runs as written (the doc and its runner)
OWN_RUNNER = {"python-api.md": "tests/test_python_api_doc.py"}


def runnable() -> list[tuple[Block, str]]:
    return [(b, c) for d in DOCS if d.name not in OWN_RUNNER
            for b in blocks(d) if not b.illustrative for c in commands(b)]


def test_docs_with_their_own_runner_have_it():
    """A doc left to its own runner names a test file that exists and reads that doc."""
    for doc, runner in OWN_RUNNER.items():
        assert doc in (ROOT / runner).read_text(encoding="utf-8"), runner


def test_every_shown_command_runs_or_is_illustrative():
    """The runnable commands are the README's, each an irqlab command of this checkout."""
    cmds = runnable()
    assert {b.doc.name for b, _ in cmds} == {"README.md"}
    for b, c in cmds:
        c = SETUP.sub("", c)
        assert c.startswith(".venv/bin/irqlab "), f"{b.where}: {c}"


def test_readme_commands_write_under_results():
    """Every file a README command writes (--out, -o, --perfetto, --trace) goes under results/."""
    seen = 0
    for b in blocks(ROOT / "README.md"):
        for c in commands(b):
            args = shlex.split(SETUP.sub("", c), comments=True)
            for opt, val in zip(args, args[1:]):
                if opt in ("--out", "-o", "--output", "--perfetto", "--trace"):
                    seen += 1
                    assert val.startswith("results/"), f"{b.where}: {opt} {val}"
    assert seen >= 3


@pytest.mark.slow
def test_readme_commands_run_as_printed(tmp_path):
    """Every runnable README command, in order, in a fresh directory holding examples/ and
    a .venv/bin with this environment's irqlab, exits 0."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    env = dict(os.environ, PYTHONPATH="")
    for b, c in runnable():
        cmd = SETUP.sub("", c)
        p = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, f"{b.where}: {cmd}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert (tmp_path / "results" / "founding" / "tradeoff.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".venv", "examples", "results"]
