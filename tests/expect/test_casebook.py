"""The casebook: every case is complete and indexed, its expectations hold, and they fail
when its fix is turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqlab.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CASEBOOK = ROOT / "examples" / "casebook"
CASES = sorted(p.name for p in CASEBOOK.iterdir() if p.is_dir())

# the --set that takes each case's fix away (the fix out of reach, or the behaviour before it)
FIX_OFF = {
    "storm-2019": ("kvm_eoi_delay.threshold=1000000", True),
    "qemu-eoi-throttle": ("qemu_eoi_throttle.threshold=1000000", True),
    "kvm-eoi-delay": ("kvm_eoi_delay.threshold=1000000", True),
    "preemption-timer-rfc": ("preemption_timer_throttle.threshold=1000000", False),
    "directed-eoi-2025": ("machine.suppress_eoi_broadcast=quirk", False),
    "oneshot-vfio-unmask": ("machine.resample_on_unmask=false", False),
    "avic-lazy-eoi-recursion": ("machine.lazy_eoi=all", False),
    "directed-eoi-kernel-ioapic": ("machine.suppress_eoi_broadcast=on", False),
    "founding-amd": ("costs.self_ipi=0cycles", False),
    "vfio-intx-storm": ("device.nic.vfio=true", True),
    "lost-eoi-reroute": ("machine.eoi_scan=route", False),
    "stale-kvm-route": ("machine.rte_update=service_first", False),
    "lost-eoi-pir": ("machine.eoi_scan=pending", False),
    "hyperv-stimer-pileup": ("device.stimer0.model.retry=1", False),
    "wakeup-storm": ("machine.halt_poll=0us", False),
    "nested-vppr": ("machine.vppr_refresh=false", False),
}
# cases whose scenarios import a base of their own, and why not the founding files
OWN_BASE = {"wakeup-storm": ("storm.scn", "idle vCPUs need a single-level guest; the founding files are nested")}
# scenarios with expectations beyond bug.scn and fix.scn
EXTRA = {"wakeup-storm": ("lowest.scn",)}


def test_every_case_has_a_bug_a_fix_a_readme_and_a_trace():
    """Each case folder holds bug.scn, fix.scn, README.md (with its sections) and trace.txt."""
    assert CASES == sorted(FIX_OFF)
    for case in CASES:
        d = CASEBOOK / case
        assert {p.name for p in d.iterdir()} >= {"bug.scn", "fix.scn", "README.md", "trace.txt"}, case
        readme = (d / "README.md").read_text()
        for section in ("## Symptom", "## Mechanism, step by step", "## Run it"):
            assert section in readme, (case, section)
        assert "irqlab trace" in (d / "trace.txt").read_text()


def test_docs_casebook_indexes_every_case_and_the_readme_links_it():
    """docs/casebook.md has a table row per case with its command; the README links to it."""
    doc = (ROOT / "docs" / "casebook.md").read_text()
    for case in CASES:
        assert f"| [{case}](../examples/casebook/{case}/) |" in doc
        assert f"`irqlab test examples/casebook/{case}/` |" in doc
    assert "(docs/casebook.md)" in (ROOT / "README.md").read_text()


def test_the_casebook_scenarios_import_the_founding_files():
    """Every case scenario reaches a founding file through import, so model changes flow through."""
    for case in CASES:
        for name in ("bug.scn", "fix.scn"):
            text = (CASEBOOK / case / name).read_text()
            assert ('import "../../founding_case' in text or 'import "../storm-2019/bug.scn"' in text
                    or (name == "fix.scn" and 'import "bug.scn"' in text)
                    or (case in OWN_BASE and f'import "{OWN_BASE[case][0]}"' in text)), (case, name)


@pytest.mark.slow
def test_irqlab_test_examples_passes(capsys):
    """`irqlab test examples/` (what CI checks): every scenario with expectations passes."""
    status = main(["test", str(ROOT / "examples")])
    out = capsys.readouterr().out
    assert status == 0, out
    n = 2 * len(CASES) + sum(len(x) for x in EXTRA.values())
    assert out.splitlines()[-1] == f"{n} scenarios with expectations: {n} passed, 0 failed"


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if FIX_OFF[c][1] else c
                                  for c in sorted(FIX_OFF)])
def test_a_case_fails_its_expectations_without_its_fix(case, capsys):
    """With the fix taken away by --set, fix.scn's expectations fail (status 1)."""
    setting, _ = FIX_OFF[case]
    status = main(["test", str(CASEBOOK / case / "fix.scn"), "--set", setting])
    out = capsys.readouterr().out
    assert status == 1, out
    assert out.startswith("FAIL") and "measured:" in out


@pytest.mark.parametrize("case", ["preemption-timer-rfc", "directed-eoi-2025", "oneshot-vfio-unmask",
                                  "avic-lazy-eoi-recursion", "directed-eoi-kernel-ioapic", "founding-amd",
                                  "hyperv-stimer-pileup", "wakeup-storm", "nested-vppr"])
def test_a_quick_case_passes_with_its_fix(case, capsys):
    """The same fix.scn passes as written (so the failure above is the fix's doing)."""
    assert main(["test", str(CASEBOOK / case / "fix.scn")]) == 0
