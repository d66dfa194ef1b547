"""Compile a resolved scenario into a :class:`~irqlab.engine.program.Program`.

The compiler splits the scenario into *structure* (what the executor's arrays
and code paths look like: levels, vector groups and their handler programs,
pins, plugins) and *lane parameters* (every numeric value, converted to engine
units). The structure is hashed into ``Program.key``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from irqlab import __version__
from irqlab.errors import ErrorSink, ScenarioError
from irqlab.ir import COSTS, Expr, PluginUse, Quantity, Scenario, field_span, service_levels
from irqlab.plugins.api import HandlerPolicy, Plugin, Site
from irqlab.plugins.registry import PluginValidationError, check_program, registry
from irqlab.engine.idle import RESCHEDULE_VECTOR, ipi_group
from irqlab.engine.dest import APIC_BROADCAST, targets as dest_targets, vector_to_index
from irqlab.engine.program import DeviceInfo, GroupInfo, MitigationInfo, Program, spread

DEFAULT_POLICY = PluginUse("policy", "lower_then_eoi")


def compile_scenario(scenario: Scenario) -> Program:
    """Compile ``scenario`` (resolved: no expressions left) for the executors."""
    scenario = _ensure_resolved(scenario)
    c = _Compiler(scenario)
    return c.build()


def site_irqchip(machine, stack: tuple[str, ...]) -> str:
    """The irqchip a scenario runs with: ``machine.irqchip``, except on bare metal, where
    there is no KVM and the setting is ignored: ``"none"`` (a physical IOAPIC, with the
    in-kernel IOAPIC's rules; docs/model.md)."""
    return "none" if tuple(stack) == ("L0",) else machine.irqchip


RTC_GSI = 8
# L1 kinds that enable interrupts after every exit they handle (KVM: local_irq_enable() in
# vcpu_enter_guest), so they take pending interrupts through their IDT before re-entering L2
KVM_LIKE_L1 = ("kvm",)


def eoi_exit_vectors(routes, vcpu: int, irqchip: str, notifier_pins=frozenset(),
                     pending_eoi=frozenset()) -> frozenset[int]:
    """The vectors of vCPU ``vcpu``'s APICv EOI-exit bitmap (``ioapic_handled_vectors``).

    ``routes``: ``(pin, vector, dest, level)`` of every IOAPIC pin in use. A pin's vector is
    in the bitmap if the pin is level-triggered, has an ack notifier (``notifier_pins``:
    irqfd resamplers, PIT reinjection) or, with the in-kernel IOAPIC, is the RTC's
    (GSI 8, tracked for coalesced ticks), and it targets ``vcpu`` or its vector still
    awaits an EOI there (``pending_eoi``, after a reroute). KVM ``kvm_ioapic_scan_entry``
    (kernel) and ``kvm_scan_ioapic_routes`` (split). Recomputed from the routes, so a
    route change can recompute it."""
    out = set()
    for pin, vector, dest, level in routes:
        tracked = level or pin in notifier_pins or (irqchip == "kernel" and pin == RTC_GSI)
        if tracked and (dest == vcpu or vector in pending_eoi):
            out.add(vector)
    return frozenset(out)


def _ensure_resolved(scenario: Scenario) -> Scenario:
    from irqlab.resolve import is_resolved, resolve

    if not is_resolved(scenario) and _has_expr(scenario):
        scenario = resolve(scenario)
    return scenario


def _has_expr(obj: object) -> bool:
    if isinstance(obj, Expr):
        return True
    if isinstance(obj, tuple):
        return any(_has_expr(x) for x in obj)
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, Quantity):
        return any(_has_expr(getattr(obj, f)) for f in obj.__dataclass_fields__ if f not in ("span", "source"))
    return False


class _Compiler:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.m = scenario.machine
        self.tsc = float(self.m.tsc.value)
        self.params: dict[str, float | int] = {}
        self.types: dict[str, str] = {}
        self.errors = ErrorSink()

    # ------------------------------------------------------------------ values

    def add(self, path: str, typ: str, value: object) -> None:
        """Record a lane parameter, converting ``value`` to engine units."""
        self.params[path] = self.convert(typ, value, path)
        self.types[path] = typ

    def convert(self, typ: str, value: object, path: str) -> float | int:
        if isinstance(value, str) and value.startswith("costs."):
            value = self.s.cost(value[6:])
        if typ == "time":
            if isinstance(value, Quantity):
                if value.unit not in ("s", "cycles"):
                    raise ScenarioError(f"{path} must be a time, not {value}")
                return value.to_ps(self.tsc)
            return int(round(float(value) * 1e12))  # a bare number in a default means seconds
        v = value.value if isinstance(value, Quantity) else value
        if typ == "int":
            return int(v)
        return float(v)

    def plugin_params(self, cls: type[Plugin], use: PluginUse, path: str) -> None:
        for p in cls.params:
            if not p.numeric:
                continue
            value = use.get(p.name, None)
            if value is None:
                if p.required:
                    raise ScenarioError(f"{use.kind} '{use.name}' needs parameter '{p.name}'", use.span)
                value = p.default
            self.add(f"{path}.{p.name}", p.type, value)

    def instance(self, kind: str, use: PluginUse, path: str) -> Plugin:
        cls = registry().get(kind, use.name, use.span)
        self.plugin_params(cls, use, path)
        config = {}
        for p in cls.params:
            if not p.numeric:
                v = use.get(p.name, None)
                config[p.name] = p.default if v is None and not p.required else v
        try:
            return cls(config, label=use.name)
        except ScenarioError:
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's constructor failing is the user's setup
            raise ScenarioError(f"{kind} '{use.name}' could not start: {type(e).__name__}: {e}",
                                use.span) from None

    # ------------------------------------------------------------------ build

    def build(self) -> Program:
        s, m = self.s, self.m
        stack = self.stack()
        n_vcpus = max(m.vcpus, len(s.vcpus), 1)
        for name in COSTS:
            self.add(f"costs.{name}", "time", s.cost(name))
        self.add("machine.tsc", "frequency", m.tsc)
        self.add("machine.preemption_timer_rate", "int", m.preemption_timer_rate)
        if m.tpr:
            self.add("machine.tpr", "int", m.tpr)
        l2_exit = float(m.l2_exit_every.value) > 0
        if l2_exit:
            if stack[-1] != "L2":
                raise ScenarioError("machine.l2_exit_every needs a nested guest (levels L1 and L2)",
                                    field_span(m, "l2_exit_every"))
            self.add("machine.l2_exit_every", "time", m.l2_exit_every)
        self.add("run.duration", "time", s.run.duration)
        self.add("run.max_events", "int", s.run.max_events)
        self.add("run.livelock_window", "time", s.run.livelock_window)
        series_fields: tuple[str, ...] = ()
        if s.run.series is not None:
            self.add("run.series.every", "time", s.run.series.every)
            series_fields = tuple(s.run.series.fields)

        receiving = "L0" if stack == ("L0",) else "L1"
        idle = bool(m.idle)
        if idle:
            self.idle_params(stack)
        devices = []
        ipi = self.ipi_vector(idle, n_vcpus)
        vectors = sorted({d.vector for d in s.devices} | ({ipi} if ipi else set()))
        group_of_vector = {v: i for i, v in enumerate(vectors)}
        for i, d in enumerate(s.devices):
            if d.serviced_by not in service_levels(stack):  # dsl.checks says so for a file
                raise ScenarioError(f"device '{d.name}': serviced_by {d.serviced_by}, but interrupts arrive at "
                                    f"{receiving} of levels {', '.join(stack)}", field_span(d, "serviced_by"))
            reach, lowest = self.targets(d, n_vcpus, stack)
            base = f"device.{d.name}"
            dist = None
            if d.service_dist is None:
                self.add(f"{base}.service", "time", d.service)
            else:
                dist = self.instance("service", d.service_dist, f"{base}.service")
            if idle:
                self.add(f"{base}.work", "time", d.work)
            arrival = self.instance("arrival", d.arrival, f"{base}.arrival")
            model = self.instance("device", d.model, f"{base}.model")
            pin = d.gsi if d.delivery == "ioapic" else -1
            if pin is not None and pin >= m.ioapic_pins:
                raise ScenarioError(f"gsi {pin} is beyond the IOAPIC's {m.ioapic_pins} pins", d.span)
            devices.append(DeviceInfo(
                index=i, name=d.name, delivery=d.delivery, pin=-1 if pin is None else pin,
                vector=d.vector, trigger=d.trigger, dest=reach[0], group=group_of_vector[d.vector],
                local=d.serviced_by == receiving, lowers_line=d.lowers_line,
                service=f"{base}.service", service_dist=dist, arrival=arrival, arrival_path=f"{base}.arrival",
                model=model, model_path=f"{base}.model", vfio=bool(d.vfio), targets=reach,
                lowest=lowest, dest_mode=d.dest_mode, msg_dest=d.dest, work_on=d.work_on))
        groups = [ipi_group(gi, v) if v == ipi else
                  self.group(gi, v, [d for d in devices if d.vector == v], stack, receiving)
                  for gi, v in enumerate(vectors)]
        from irqlab.engine.routes import compile_actions

        actions = compile_actions(s, devices, n_vcpus, stack, self.add)
        groups = self.directed_eoi(groups)
        if m.apicv and stack != ("L0",):
            routes = [(d.pin, d.vector, d.dest, d.trigger == "level") for d in devices if d.pin >= 0]
            notified = frozenset(d.pin for d in devices if getattr(d.model, "timer_kind", "") == "pit")
            bitmaps = {v: eoi_exit_vectors(routes, v, m.irqchip, notified) for v in range(n_vcpus)}
            sint = {d.vector for d in devices if getattr(d.model, "timer_kind", "") == "stimer"}
            groups = [replace(g, eoi_exit=g.vector in bitmaps[g.dest] or g.vector in sint) for g in groups]
        pin_group = [-1] * m.ioapic_pins
        pin_level = [False] * m.ioapic_pins
        for d in devices:
            if d.pin >= 0:
                pin_group[d.pin] = d.group
                pin_level[d.pin] = d.trigger == "level"
        mitigations, n_timers = [], 0
        for i, use in enumerate(s.mitigations):
            path = f"mitigation.{use.name}"
            plugin = self.instance("mitigation", use, path)
            mitigations.append(MitigationInfo(i, use.name, plugin, path, n_timers))
            n_timers += type(plugin).timers
        metrics = []
        for use in s.run.metrics:
            plugin = self.instance("metric", use, f"run.metrics.{use.name}")
            metrics.append((use.name, plugin, f"run.metrics.{use.name}"))
        self.errors.raise_if_any()

        l1_irq_window = stack[-1] == "L2" and any(
            lv.level == "L1" and lv.name in KVM_LIKE_L1 for v in s.vcpus for lv in v.levels)
        structure = (
            __version__, stack, n_vcpus, m.ioapic_pins, m.irqchip, m.apicv, m.x2apic,
            m.suppress_eoi_broadcast, m.ack_on_exit, m.vendor, m.resample_on_unmask, m.lazy_eoi,
            tuple(a.writes for a in actions), actions and (m.eoi_scan, m.rte_update),
            tuple((d.name, d.delivery, d.pin, d.vector, d.trigger, d.dest, d.local, d.lowers_line, d.vfio,
                   d.arrival.name, sorted(d.arrival.config.items()), d.model.name,
                   sorted(d.model.config.items()),
                   d.service_dist and (d.service_dist.name, sorted(d.service_dist.config.items())))
                  for d in devices),
            tuple((g.vector, g.steps, g.before, g.policy, g.eoi_exit, g.suppress, g.body_dist, g.l2_eoi)
                  for g in groups),
            tuple((mi.label, type(mi.plugin).name, sorted(mi.plugin.config.items())) for mi in mitigations),
            tuple(name for name, _, _ in metrics), series_fields, s.run.histograms,
            tuple(sorted(self.types.items())),
        )
        spread_devs = tuple((d.targets, d.lowest, d.msg_dest, d.dest_mode) for d in devices if spread(d))
        if spread_devs:  # destinations (irqlab.engine.dest); absent, the key stays what it was
            structure += ((spread_devs, bool(m.vector_hashing)),)
        handed = tuple((d.index, d.work_on) for d in devices if d.work_on != -1)
        if handed:  # idle work handed to another vCPU with an IPI
            structure += (handed,)
        prio = (bool(m.tpr), l2_exit, m.defer_svi, m.vppr_refresh)
        key = hashlib.sha256(repr((structure, l1_irq_window, prio)).encode()).hexdigest()[:20]
        return Program(
            scenario=s, key=key, params=self.params, param_types=self.types, n_vcpus=n_vcpus,
            stack=stack, n_pins=m.ioapic_pins, split=site_irqchip(m, stack) == "split", apicv=m.apicv,
            x2apic=m.x2apic, suppress_mode=m.suppress_eoi_broadcast, ack_on_exit=m.ack_on_exit,
            devices=devices, groups=groups, mitigations=mitigations, metrics=metrics,
            n_timers=n_timers, pin_group=tuple(pin_group), pin_level=tuple(pin_level),
            series_fields=series_fields, histograms=s.run.histograms,
            l1_irq_window=l1_irq_window,
            vendor=m.vendor, resample_on_unmask=bool(m.resample_on_unmask),
            lazy_eoi_level=(m.lazy_eoi == "all" and m.apicv and site_irqchip(m, stack) == "kernel"),
            vfio_devices=tuple(d.index for d in devices if d.vfio),
            actions=actions, eoi_scan=m.eoi_scan, rte_update=m.rte_update,
            timer_devices=tuple((d.index, d.model.timer_kind) for d in devices
                                if getattr(d.model, "timer_kind", "")),
            desched=tuple(mi.index for mi in mitigations if getattr(mi.plugin, "host_contention", False)),
            idle=idle, vector_hashing=bool(m.vector_hashing), ipi_group=group_of_vector.get(ipi, -1),
            tpr=bool(m.tpr), l2_exit=l2_exit, defer_svi=bool(m.defer_svi), vppr_refresh=bool(m.vppr_refresh))

    def ipi_vector(self, idle: bool, n_vcpus: int) -> int:
        """The reschedule IPI's vector if a device hands its work to another vCPU, else 0."""
        handed = [d for d in self.s.devices if d.work_on != -1]
        for d in handed:
            if not idle:
                raise ScenarioError(f"device '{d.name}': work_on needs idle vCPUs (machine {{ idle on }})",
                                    field_span(d, "work_on"))
            if not 0 <= d.work_on < n_vcpus:
                raise ScenarioError(f"device '{d.name}': work_on vCPU {d.work_on}, but the machine has "
                                    f"{n_vcpus}", field_span(d, "work_on"))
        if handed and any(d.vector == RESCHEDULE_VECTOR for d in self.s.devices):
            raise ScenarioError(f"vector {RESCHEDULE_VECTOR:#x} is the guest's reschedule IPI; give the device "
                                "another vector", next(d.span for d in self.s.devices if d.vector == RESCHEDULE_VECTOR))
        return RESCHEDULE_VECTOR if handed else 0

    def targets(self, d, n_vcpus: int, stack: tuple[str, ...]) -> tuple[tuple[int, ...], bool]:
        """The vCPUs device ``d``'s interrupt reaches (docs/model.md, "Destinations"; with
        lowest priority and vector hashing, the one KVM picks), and whether it is delivered
        with lowest priority."""
        m = self.m
        plain = d.dest_mode == "physical" and d.delivery_mode == "fixed" and d.dest != APIC_BROADCAST
        if plain:
            if d.dest >= n_vcpus:
                raise ScenarioError(f"device '{d.name}' targets vCPU {d.dest}, but the machine has "
                                    f"{n_vcpus}", d.span)
            return (d.dest,), False
        if stack[-1] == "L2":
            raise ScenarioError(f"device '{d.name}': logical, lowest-priority and broadcast destinations "
                                "are modelled for single-level guests and bare metal, not nested ones", d.span)
        reach = dest_targets(n_vcpus, d.dest, d.dest_mode, m.x2apic, m.apic_dfr)
        if not reach:
            raise ScenarioError(f"device '{d.name}': destination {d.dest:#x} ({d.dest_mode}) matches no vCPU "
                                f"of {n_vcpus}", d.span)
        lowest = d.delivery_mode == "lowest"
        if lowest and d.dest_mode == "physical" and d.dest == APIC_BROADCAST:
            return reach, False  # kvm_irq_delivery_to_apic: "phys broadcast and lowest prio" goes as fixed
        if lowest and m.vector_hashing:
            return (vector_to_index(d.vector, reach),), True
        return reach, lowest

    def idle_params(self, stack: tuple[str, ...]) -> None:
        """``machine { idle on }``: KVM's halt-polling parameters and the wake-up latency."""
        m = self.m
        if stack != ("L0", "L1"):
            raise ScenarioError("machine.idle models the HLT of a single-level guest (vcpu levels: L1 only), "
                                f"not {' '.join(stack)}", field_span(m, "idle"))
        for name in ("halt_poll", "halt_poll_grow_start", "wakeup"):
            self.add(f"machine.{name}", "time", getattr(m, name))
        for name in ("halt_poll_grow", "halt_poll_shrink"):
            self.add(f"machine.{name}", "int", getattr(m, name))

    def stack(self) -> tuple[str, ...]:
        stacks = {tuple(["L0"] + [lv.level for lv in v.levels if lv.level != "L0"])
                  if any(lv.level != "L0" for lv in v.levels) else ("L0",)
                  for v in self.s.vcpus} or {("L0", "L1")}
        if len(stacks) != 1:
            raise ScenarioError("every vCPU must have the same stack of levels", self.s.span)
        stack = stacks.pop()
        if stack not in (("L0",), ("L0", "L1"), ("L0", "L1", "L2")):
            raise ScenarioError(f"levels {' '.join(stack)} are not a stack (L0; L1; or L1 and L2)",
                                self.s.vcpus[0].span if self.s.vcpus else self.s.span)
        return stack

    def policy_use(self, dev_names: list[str], dest: int, receiving: str) -> tuple[PluginUse, str]:
        for d in self.s.devices:
            if d.name in dev_names and d.policy is not None:
                return d.policy, f"device.{d.name}.policy"
        for v in self.s.vcpus:
            if v.index == dest:
                lv = v.level(receiving)
                if lv is not None and lv.policy is not None:
                    return lv.policy, f"vcpu.{dest}.{receiving}.policy"
        return DEFAULT_POLICY, f"vcpu.{dest}.{receiving}.policy"

    def group(self, gi: int, vector: int, devs: list[DeviceInfo], stack, receiving) -> GroupInfo:
        m = self.m
        first = devs[0]
        for d in devs[1:]:
            if (d.dest, d.local, d.targets, d.lowest) != (first.dest, first.local, first.targets, first.lowest):
                raise ScenarioError(f"devices '{first.name}' and '{d.name}' share vector {vector:#x} "
                                    "but not their destination and servicing level",
                                    self.s.device(d.name).span)
        level = any(d.trigger == "level" for d in devs)
        delivery = "msi" if all(d.delivery == "msi" for d in devs) else "ioapic"
        use, path = self.policy_use([d.name for d in devs], first.dest, receiving)
        cls = registry().get("policy", use.name, use.span)
        assert issubclass(cls, HandlerPolicy)
        policy = self.instance("policy", use, path)
        site = Site(irqchip=site_irqchip(m, stack), apicv=m.apicv, x2apic=m.x2apic,
                    suppress_eoi_broadcast=m.suppress_eoi_broadcast, nested=stack[-1] == "L2",
                    receiving_level=receiving, serviced_locally=first.local,
                    trigger="level" if level else "edge", delivery=delivery, levels=stack)
        steps = tuple(policy.program(site))  # type: ignore[attr-defined]
        try:
            check_program(steps, site, {p.name for p in cls.params if p.type == "time"})
        except PluginValidationError as e:
            raise ScenarioError(f"policy '{use.name}' gives an invalid program: {e}", use.span) from None
        before = tuple(None if st.before is None else
                       st.before if st.before.startswith("costs.") else f"{path}.{st.before}"
                       for st in steps)
        return GroupInfo(
            index=gi, vector=vector, level=level, delivery=delivery,
            pins=tuple(sorted({d.pin for d in devs if d.pin >= 0})),
            devices=tuple(d.index for d in devs), dest=first.dest, local=first.local,
            steps=steps, before=before, policy=use.name,
            eoi_exit=False, suppress=False, body_dist=str(policy.config.get("body_dist") or "constant"),
            body_path=path, targets=first.targets, lowest=first.lowest,
            msg=(first.msg_dest, first.dest_mode) if spread(first) else None,
            l2_eoi=bool(getattr(cls, "eoi_by_l2", False)) and not first.local)

    def directed_eoi(self, groups: list[GroupInfo]) -> list[GroupInfo]:
        """Set ``suppress`` on the level IOAPIC vectors of every LAPIC whose guest sets SPIV
        bit 12. The bit is LAPIC-wide, and writable only when the LAPIC advertises Directed
        EOI in LVR bit 24 (``kvm_lapic_reg_write``, APIC_SPIV; ``suppress_eoi_broadcast``
        quirk or on). **Choice:** the guest sets it when a handler of that vCPU writes the
        IOAPIC's EOI register (an ``IOAPIC_EOI`` step): an OS uses Directed EOI for all
        its level interrupts or for none."""
        if self.m.suppress_eoi_broadcast not in ("quirk", "on"):
            return groups
        spiv = {g.dest for g in groups if any(st.action == "IOAPIC_EOI" for st in g.steps)}
        return [replace(g, suppress=g.dest in spiv and g.level and g.delivery == "ioapic") for g in groups]

