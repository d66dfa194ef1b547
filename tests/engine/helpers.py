"""Running scenarios in tests and looking at their traces."""

from __future__ import annotations

import json

from irqlab import engine
from irqlab.engine.result import BatchResult


def run(scn, n: int = 1, backend: str = "numpy", trace: bool = True, **lane_kw) -> BatchResult:
    prog = engine.compile(scn)
    lanes = [engine.Lane(i, (), lane_kw.get("params", {})) for i in range(n)]
    return engine.run(prog, lanes, trace_lanes=range(n) if trace else (), backend=backend)


def events(result: BatchResult, lane: int = 0, names=None) -> list[tuple[int, str, str]]:
    """(t_ps, event, text) in time order, optionally only some event names."""
    out = [(t, e, x) for t, _, _, e, x in result.traces[lane].sorted()]
    return [r for r in out if names is None or r[1] in names]


def names(result: BatchResult, lane: int = 0, keep=None) -> list[str]:
    return [e for _, e, _ in events(result, lane, keep)]


def same_everything(a: BatchResult, b: BatchResult, i: int, j: int | None = None) -> bool:
    j = i if j is None else j
    la, lb = a.lane(i), b.lane(j)
    return json.dumps(la, sort_keys=True) == json.dumps(lb, sort_keys=True)


KVM = {"kvm_exit", "kvm_entry", "kvm_nested_vmexit", "kvm_nested_vmexit_inject", "kvm_eoi",
       "kvm_userspace_exit", "kvm_set_irq", "kvm_msi_set_irq", "kvm_apic_accept_irq", "kvm_ioapic_set_irq",
       "kvm_inj_virq"}
