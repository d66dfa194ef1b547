"""Cross-checks of a scenario whose values are known (resolved or literal).

:func:`check_scenario` runs when a file is lowered and again at every
:func:`irqlab.resolve.resolve` (a sweep point may move a device onto another
vector or switch the irqchip). Each problem is added to the sink at the span
of the field that causes it.
"""

from __future__ import annotations

from typing import Any, Iterable

from irqlab import ir
from irqlab.errors import ErrorSink, ScenarioError, Span
from irqlab.ir import field_span

DIRECTED_EOI_NOTE = ("KVM advertises Directed EOI only with x2APIC (kvm_apic_set_version); with the "
                     "split irqchip it ignored SPIV bit 12 (quirk) until 6517dfbcc918; the in-kernel "
                     "IOAPIC honours it, and since 0bcc3fb95b97 KVM no longer advertises it there")


def _known(*values: Any) -> bool:
    return not any(isinstance(v, ir.Expr) or v is None for v in values)


def handling_policy(s: ir.Scenario, d: ir.Device) -> ir.PluginUse | None:
    """The handler policy that runs for ``d``'s vector: the device's own, else the
    receiving level's of its destination vCPU."""
    if d.policy is not None:
        return d.policy
    vc = _vcpu(s, d.dest)
    if vc is None:
        return None
    lv = vc.level(vc.receiving_level)
    return lv.policy if lv is not None else None


def _vcpu(s: ir.Scenario, index: Any) -> ir.Vcpu | None:
    for v in s.vcpus:
        if v.index == index:
            return v
    return None


def site_for(s: ir.Scenario, vcpu: ir.Vcpu | None, d: ir.Device | None):
    """The :class:`~irqlab.plugins.api.Site` a plugin's ``check`` sees."""
    from irqlab.plugins.api import Site

    m = s.machine
    levels = tuple(lv.level for lv in vcpu.levels) if vcpu is not None else ("L0",)
    recv = vcpu.receiving_level if vcpu is not None else "L0"
    kw: dict[str, Any] = dict(irqchip="none" if levels == ("L0",) else m.irqchip, apicv=m.apicv, x2apic=m.x2apic,
                              suppress_eoi_broadcast=m.suppress_eoi_broadcast,
                              nested="L2" in levels, receiving_level=recv, levels=levels)
    if d is not None:
        kw.update(serviced_locally=d.serviced_by == recv, trigger=d.trigger, delivery=d.delivery)
    else:
        kw.update(serviced_locally="L2" not in levels)
    return Site(**kw)


def plugin_check(use: ir.PluginUse, site: Any, sink: ErrorSink, seen: set, note: str = "") -> None:
    """Run a plugin's ``check(site)``; its messages become errors at the plugin use
    (or the named parameter)."""
    from irqlab.plugins.registry import registry

    try:
        cls = registry().get(use.kind, use.name, use.span)
    except ScenarioError:
        return  # reported where the plugin was named
    try:
        found: Iterable = cls.check(site) or ()
        found = list(found)
    except Exception as e:  # noqa: BLE001 - a plugin's bug is reported, not raised
        found = [(f"{use.kind} '{use.name}' failed to check this scenario: "
                  f"{type(e).__name__}: {e}", None)]
    for item in found:
        try:
            message, param = item
        except (TypeError, ValueError):
            message, param = str(item), None
        span = use.span
        if param:
            a = use.arg(param)
            if a is not None and a.span.line > 0:
                span = a.span
        key = (str(message), span)
        if key in seen:
            continue
        seen.add(key)
        sink.add(str(message), span, hint=note or None)


def check_scenario(s: ir.Scenario, sink: ErrorSink) -> None:
    """Every cross-field rule of a scenario (see the module doc)."""
    m = s.machine
    if _known(m.suppress_eoi_broadcast, m.x2apic, m.irqchip) and m.suppress_eoi_broadcast in ("on", "quirk"):
        if not m.x2apic:  # with the in-kernel IOAPIC, quirk and on both honour SPIV bit 12
            need = "x2apic on"
            sink.add(f"suppress_eoi_broadcast {m.suppress_eoi_broadcast} needs {need}",
                     field_span(m, "suppress_eoi_broadcast"), hint=DIRECTED_EOI_NOTE)
    stacks = {}
    for v in s.vcpus:
        stacks.setdefault(tuple(lv.level for lv in v.levels), v)
    if len(stacks) > 1:
        (first, v0), *rest = stacks.items()
        for stack, v in rest:
            sink.add(f"vcpu {v.index} has levels {', '.join(stack)} but vcpu {v0.index} has "
                     f"{', '.join(first)}", v.span,
                     hint="every vCPU must have the same levels (an engine restriction for now)")
    if _known(m.vcpus) and s.vcpus and m.vcpus != len(s.vcpus):
        sink.add(f"machine.vcpus is {m.vcpus} but {len(s.vcpus)} vcpu block(s) are given",
                 field_span(m, "vcpus"), hint="write 'vcpu all { ... }' to give every vCPU the same levels")
    _check_devices(s, sink)
    from irqlab.dsl.timer_checks import check_timers

    check_timers(s, sink)
    _check_idle_and_destinations(s, sink)
    seen: set = set()
    for d in s.devices:
        vc = _vcpu(s, d.dest)
        if vc is None or not _known(d.trigger, d.delivery, d.serviced_by):
            continue
        site = site_for(s, vc, d)
        pol = handling_policy(s, d)
        if pol is not None:
            plugin_check(pol, site, sink, seen, f"for device {d.name}")
        plugin_check(d.arrival, site, sink, seen)
        plugin_check(d.model, site, sink, seen)
        if d.service_dist is not None:
            plugin_check(d.service_dist, site, sink, seen)
    if s.mitigations:
        site = site_for(s, s.vcpus[0] if s.vcpus else None, None)
        for mu in s.mitigations:
            plugin_check(mu, site, sink, seen)


def _check_vfio(s: ir.Scenario, d: ir.Device, sink: ErrorSink) -> None:
    """A VFIO INTx device is a level-triggered IOAPIC pin of a guest with KVM's in-kernel
    IOAPIC (the resampling irqfd of docs/model.md; the split irqchip's
    ``kvm_resample_fd_notify`` path is not modelled)."""
    if d.vfio is not True:
        return
    bare = bool(s.vcpus) and all(lv.level == "L0" for v in s.vcpus for lv in v.levels)
    for bad, msg, hint in (
            (d.delivery != "ioapic" or d.trigger != "level", "vfio is INTx: it needs 'gsi N' and "
             "'trigger level'", "an MSI of a passed-through device needs no resampler"),
            (bare, "vfio needs a guest (levels L1 or L1 and L2)", None),
            (s.machine.irqchip != "kernel", "vfio is modelled with KVM's in-kernel IOAPIC only",
             "write machine { irqchip kernel }")):
        if _known(d.delivery, d.trigger, s.machine.irqchip) and bad:
            sink.add(msg, field_span(d, "vfio"), hint=hint)
            return


def _check_idle_and_destinations(s: ir.Scenario, sink: ErrorSink) -> None:
    """What the compiler would refuse about idle vCPUs and destinations (docs/model.md,
    "Idle vCPUs", "Destinations"), found by ``irqlab check`` already."""
    from irqlab.engine.dest import targets

    m = s.machine
    stack = tuple(lv.level for lv in s.vcpus[0].levels) if s.vcpus else ()
    single = stack in (("L1",), ("L0", "L1"))
    n = len(s.vcpus)
    if m.idle is True and s.vcpus and not single:
        sink.add(f"machine.idle models the HLT of a single-level guest (vcpu levels: L1 only), not "
                 f"{' '.join(stack)}", field_span(m, "idle"))
    for d in s.devices:
        mine = ("", "device", d.name)
        if _known(d.work_on) and d.work_on != -1:
            if m.idle is not True:
                sink.add("work_on needs idle vCPUs (machine { idle on })", field_span(d, "work_on"), presumes=mine)
            elif n and not 0 <= d.work_on < n:
                sink.add(f"work_on vCPU {d.work_on} does not exist (the machine has {n})",
                         field_span(d, "work_on"), presumes=mine)
        plain = d.dest_mode == "physical" and d.delivery_mode == "fixed" and d.dest != 0xFF
        if plain or not n or not _known(d.dest, m.x2apic, m.apic_dfr):
            continue
        if stack and stack[-1] == "L2":
            sink.add("logical, lowest-priority and broadcast destinations are modelled for single-level "
                     "guests and bare metal, not nested ones", field_span(d, "dest"), presumes=mine)
        elif not targets(n, d.dest, d.dest_mode, m.x2apic, m.apic_dfr):
            sink.add(f"destination {d.dest:#x} ({d.dest_mode}) matches no vCPU of {n}", field_span(d, "dest"),
                     presumes=mine)


def _check_devices(s: ir.Scenario, sink: ErrorSink) -> None:
    m = s.machine
    by_vector: dict[Any, ir.Device] = {}
    by_gsi: dict[Any, ir.Device] = {}
    for d in s.devices:
        mine = ("", "device", d.name)  # these presume the device is fully defined
        if d.delivery == "ioapic":
            if d.gsi is None:
                sink.add(f"device {d.name} has no gsi", d.span,
                         hint="write 'gsi N' for an IOAPIC pin, or 'msi'", presumes=mine)
            elif _known(d.gsi, m.ioapic_pins) and d.gsi >= m.ioapic_pins:
                sink.add(f"gsi {d.gsi} is beyond the IOAPIC's {m.ioapic_pins} pins "
                         f"(0-{m.ioapic_pins - 1})", field_span(d, "gsi"),
                         hint="raise machine.ioapic_pins or use another pin", presumes=mine)
        elif d.delivery == "msi" and d.trigger == "level":
            sink.add("an MSI cannot be level-triggered", field_span(d, "trigger"),
                     hint="MSIs are edge-triggered; use 'gsi N' for a level-triggered line",
                     presumes=mine)
        _check_vfio(s, d, sink)
        one = d.dest_mode == "physical" and not (_known(d.dest) and d.dest == 0xFF)  # else: irqlab.engine.dest
        vc = _vcpu(s, d.dest if one else 0)
        if one and _known(d.dest) and vc is None and s.vcpus:
            have = f"0-{len(s.vcpus) - 1}" if len(s.vcpus) > 1 else "0"
            sink.add(f"dest vCPU {d.dest} does not exist (the machine has vCPU {have})",
                     field_span(d, "dest"), presumes=mine)
        elif vc is not None and vc.levels and _known(d.serviced_by):  # no levels: reported already
            ok = vc.service_levels
            if d.serviced_by not in ok:
                names = tuple(lv.level for lv in vc.levels)
                if d.serviced_by not in names:
                    msg = f"serviced_by {d.serviced_by}: vcpu {vc.index} has no level {d.serviced_by}"
                else:
                    msg = (f"serviced_by {d.serviced_by}: interrupts arrive at {vc.receiving_level}, "
                           f"so only {' or '.join(ok)} can service this device")
                sink.add(msg, field_span(d, "serviced_by"),
                         hint=f"vcpu {vc.index} has levels {', '.join(names)}", presumes=mine)
        if _known(d.vector):
            other = by_vector.get(d.vector)
            if other is None:
                by_vector[d.vector] = d
            else:
                _shared_vector(other, d, sink)
        if d.delivery == "ioapic" and _known(d.gsi):
            other = by_gsi.get(d.gsi)
            if other is None:
                by_gsi[d.gsi] = d
            else:
                _shared_pin(other, d, sink)


def _shared_vector(a: ir.Device, b: ir.Device, sink: ErrorSink) -> None:
    vec = f"0x{b.vector:X}" if isinstance(b.vector, int) else str(b.vector)
    where = f"first at {field_span(a, 'vector')}"
    if _known(a.trigger, b.trigger) and a.trigger != b.trigger:
        sink.add(f"devices {a.name} and {b.name} share vector {vec} with conflicting trigger "
                 f"modes ({a.trigger} and {b.trigger})", field_span(b, "trigger")
                 if field_span(b, "trigger") != b.span else field_span(b, "vector"),
                 hint=f"{a.name}'s vector is {where}; the LAPIC keeps one trigger mode per vector (TMR)")
    if _known(a.dest, b.dest) and a.dest != b.dest:
        sink.add(f"devices {a.name} and {b.name} share vector {vec} but not their dest vCPU "
                 f"({a.dest} and {b.dest})", field_span(b, "dest") if field_span(b, "dest") != b.span
                 else field_span(b, "vector"), hint=f"{a.name}'s vector is {where}")
    if _known(a.serviced_by, b.serviced_by) and a.serviced_by != b.serviced_by:
        sink.add(f"devices {a.name} and {b.name} share vector {vec} but are serviced by different "
                 f"levels ({a.serviced_by} and {b.serviced_by})", field_span(b, "serviced_by"),
                 hint=f"one handler runs per vector; {a.name}'s vector is {where}")
    if a.policy != b.policy:
        sink.add(f"devices {a.name} and {b.name} share vector {vec} but not their handler policy",
                 b.policy.span if b.policy is not None else field_span(b, "vector"),
                 hint=f"one handler runs per vector; {a.name}'s vector is {where}")


def _shared_pin(a: ir.Device, b: ir.Device, sink: ErrorSink) -> None:
    for f in ("vector", "trigger", "polarity", "dest"):
        x, y = getattr(a, f), getattr(b, f)
        if _known(x, y) and x != y:
            show = (lambda v: f"0x{v:X}") if f == "vector" else str
            sink.add(f"devices {a.name} and {b.name} share gsi {b.gsi} but not their {f} "
                     f"({show(x)} and {show(y)})", field_span(b, f),
                     hint="one IOAPIC pin has one redirection entry; "
                     f"{a.name}'s gsi is at {field_span(a, 'gsi')}")


def spans_equal(a: Span, b: Span) -> bool:  # pragma: no cover - helper for tests
    return (a.file, a.line, a.col) == (b.file, b.line, b.col)
