"""Guest actions that change routes: what both executors share (docs/model.md, "Guest
actions: route changes").

- :func:`compile_actions` turns the scenario's ``at`` actions into
  :class:`~irqlab.engine.program.ActionInfo` and their lane parameters;
- :func:`scan_bits` is KVM's rescan of one vCPU's EOI-exit bitmap (``vcpu_scan_ioapic``),
  over vector groups, from the current routes; both executors call it, one lane at a time
  (scans happen at route changes only).
"""

from __future__ import annotations

from typing import Callable, Sequence

from irqlab.errors import ScenarioError
from irqlab.ir import Scenario
from irqlab.engine.program import ActionInfo, DeviceInfo

KEEP = -1

# Metrics of a run with guest actions: name -> (type, unit, meaning); in BatchResult.extra.
ROUTE_METRICS: dict[str, tuple[str, str, str]] = {
    "misrouted": ("int", "", "IOAPIC deliveries to a vCPU other than the pin's redirection-entry "
                  "destination (a stale KVM route: QEMU before 54ad31fb0a0a)"),
    "line_dead_ns": ("float", "ns", "time level pins' Remote IRR stayed set after the EOI of their "
                     "vector went unseen by the IOAPIC (no LAPIC holds it any more): the line is dead"),
}


def route_metrics(stats) -> dict:
    """The :data:`ROUTE_METRICS` columns of a batch's counters (float64 [n])."""
    import numpy as np

    return {"misrouted": stats.misrouted.astype(np.float64), "line_dead_ns": stats.dead_ps * 1e-3}


def compile_actions(s: Scenario, devices: Sequence[DeviceInfo], n_vcpus: int, stack: tuple[str, ...],
                    add: Callable[[str, str, object], None]) -> tuple[ActionInfo, ...]:
    """The scenario's actions, checked against its devices and vCPUs; ``add(path, type, value)``
    records the lane parameters ``action.<k>.at`` and ``action.<k>.every``."""
    out = []
    pins = {d.pin for d in devices if d.pin >= 0}
    by_name = {d.name: d for d in devices}
    for k, a in enumerate(s.actions):
        if stack[-1] == "L2":
            raise ScenarioError("route changes are modelled for single-level guests (L1 or bare metal), "
                                "not nested ones", a.span,
                                hint="a nested handler's FORWARD ties devices to their first destination")
        add(f"action.{k}.at", "time", a.at)
        add(f"action.{k}.every", "time", a.every)
        writes = []
        for w in a.writes:
            moved = [d for d in devices if (d.pin == w.gsi if w.target == "ioapic" else d.name == w.device)]
            if w.dest is not None and any(d.dest_mode != "physical" or d.lowest or len(d.targets) > 1
                                          for d in moved):
                raise ScenarioError("a guest action moves a physical, fixed destination; this device's "
                                    "is logical, lowest-priority or broadcast", w.span,
                                    hint="route changes of those destinations are not modelled")
            if w.dest is not None and w.dest >= n_vcpus:
                raise ScenarioError(f"dest {w.dest}: the machine has {n_vcpus} vCPU(s)", w.span)
            dest = KEEP if w.dest is None else w.dest
            if w.target == "ioapic":
                if w.gsi not in pins:
                    raise ScenarioError(f"no device uses gsi {w.gsi}", w.span,
                                        hint="pins in use: " + (", ".join(map(str, sorted(pins))) or "none"))
                writes.append(("ioapic", w.gsi, dest, KEEP if w.mask is None else int(w.mask)))
            else:
                d = by_name.get(w.device)
                if d is None or d.delivery != "msi":
                    msis = [n for n, x in by_name.items() if x.delivery == "msi"]
                    raise ScenarioError(f"no MSI device '{w.device}'", w.span,
                                        hint="MSI devices: " + (", ".join(msis) or "none"))
                writes.append(("msi", d.index, dest, KEEP))
        out.append(ActionInfo(k, f"action.{k}.at", f"action.{k}.every", tuple(writes)))
    return tuple(out)


def scan_bits(routes: Sequence[tuple[int, int, int, bool]], v: int, irqchip: str, pending: int,
              group_of_vector: dict[int, int]) -> int:
    """vCPU ``v``'s EOI-exit bitmap as group bits: :func:`~irqlab.engine.compiler.eoi_exit_vectors`
    over ``routes`` ``(pin, vector, dest, level)`` with the groups in ``pending`` (bits) as
    vectors still awaiting an EOI on ``v``."""
    from irqlab.engine.compiler import eoi_exit_vectors

    pend = frozenset(vec for vec, g in group_of_vector.items() if pending >> g & 1)
    bits = 0
    for vec in eoi_exit_vectors(routes, v, irqchip, pending_eoi=pend):
        bits |= 1 << group_of_vector[vec]
    return bits


def bitmap_text(groups, bits: int) -> str:
    """The vectors of an EOI-exit bitmap of group ``bits``, as ``irqlab_eoi_exitmap`` writes them."""
    return ",".join(f"0x{g.vector:x}" for g in groups if bits >> g.index & 1) or "none"
