"""Helpers for the scenario-language tests: write files, lower them, find diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqlab.dsl import load_all
from irqlab.errors import Diagnostic, ScenarioError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.scn"))

# A valid nested scenario, one statement per line, used as a starting point.
GOOD = """scenario s {
    machine { irqchip split }
    vcpu 0 {
        L1 hyperv { policy eoi_before_lower }
        L2 windows {}
    }
    device uhci {
        gsi 23
        vector 0x50
        trigger level
        serviced_by L2 after 20us
        arrival once at 0
    }
}
"""


class Files:
    """Writes scenario files into a temporary directory and lowers them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        p = self.root / name
        p.write_text(text, encoding="utf-8")
        return p

    def errors(self, text: str, name: str = "t.scn", **others: str) -> list[Diagnostic]:
        """The diagnostics of lowering ``text`` (fails the test if it lowers)."""
        for other, body in others.items():
            self.write(other.replace("__", "."), body)
        p = self.write(name, text)
        try:
            load_all(str(p))
        except ScenarioError as e:
            return e.diagnostics
        raise AssertionError("expected a ScenarioError")

    def find(self, text: str, fragment: str, **others: str) -> Diagnostic:
        """The one diagnostic whose message contains ``fragment``."""
        ds = [d for d in self.errors(text, **others) if fragment in d.message]
        assert ds, f"no error mentions {fragment!r}: {[d.message for d in self.errors(text, **others)]}"
        return ds[0]

    def at(self, d: Diagnostic) -> str:
        """``file:line:col`` of a diagnostic, with the file relative to the temp dir."""
        assert d.span is not None
        return f"{Path(d.span.file).name}:{d.span.line}:{d.span.col}"


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)
