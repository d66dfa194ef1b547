"""Rules corrected after the review against the real sources (model-review.md, section 1)."""

from __future__ import annotations

from irqlab import engine
from tests.engine.helpers import events, names, run
from tests.engine.scenarios import device, guest, ms, us, use


def kvm_exits(r, lane=0):
    return [x.split()[1] for _, e, x in events(r, lane, {"kvm_exit"})]


def test_xapic_eoi_without_apicv_is_an_apic_access_exit():
    """Row 12: without APICv an xAPIC EOI write exits with APIC_ACCESS (qualification 0x10b0)."""
    d = device("nic", 0x61, gsi=20)
    r = run(guest(devices=[d], apicv=False, x2apic=False, duration=ms(0.1)))
    eoi = [x for _, e, x in events(r, 0, {"kvm_exit"}) if "APIC" in x]
    assert eoi and all(x.startswith("reason APIC_ACCESS") and "info 10b0" in x for x in eoi)
    assert r.lane(0)["exits"]["APIC_ACCESS"] == len(eoi)


def test_bare_metal_ignores_the_irqchip_and_emits_no_kvm_records():
    """A bare-metal scenario has no KVM: no kvm_* records, whatever machine.irqchip says."""
    d = device("e", 0x41, gsi=11, trigger="edge", serviced_by="L0",
               arrival=use("arrival", "periodic", period=us(20), count=5))
    for irqchip in ("split", "kernel"):
        r = run(guest(levels=("L0",), devices=[d], irqchip=irqchip, duration=ms(0.2)))
        assert not [e for e in names(r) if e.startswith("kvm_")]
    a = run(guest(levels=("L0",), devices=[d], irqchip="split", duration=ms(0.2)), trace=False).lane(0)
    b = run(guest(levels=("L0",), devices=[d], irqchip="kernel", duration=ms(0.2)), trace=False).lane(0)
    assert a == b


def two_vcpu_storm():
    """The issue's reproduction: two vCPUs, ack_on_exit off, two level devices on different
    destinations, qemu_eoi_throttle { threshold 3; delay 5us }."""
    devs = [device("a", 0x51, gsi=9, serviced_by="L2", dest=0, service=us(2),
                   arrival=use("arrival", "poisson", rate=engine_hz(2e5))),
            device("b", 0x61, gsi=20, serviced_by="L2", dest=1, service=us(3),
                   arrival=use("arrival", "poisson", rate=engine_hz(1e5)))]
    return guest(levels=("L0", "L1", "L2"), policy="eoi_before_lower", devices=devs, vcpus=2,
                 ack_on_exit=False, duration=ms(0.3),
                 mitigations=[use("mitigation", "qemu_eoi_throttle", threshold=3, delay=us(5))])


def engine_hz(x):
    from irqlab.ir import Quantity

    return Quantity(x, "Hz")


def test_a_lane_traced_in_a_batch_equals_the_same_lane_run_alone():
    """Every record of lane 1 of a 6-lane batch (thread included) equals that lane run alone."""
    prog = engine.compile(two_vcpu_storm())
    lanes = [engine.Lane(3, (i,)) for i in range(6)]
    batch = engine.run(prog, lanes, trace_lanes=range(6), backend="numpy")
    for i in (1, 4):
        alone = engine.run(prog, [lanes[i]], trace_lanes=(0,), backend="numpy")
        assert batch.traces[i].sorted() == alone.traces[0].sorted()
        assert {th for _, _, th, _, _ in batch.traces[i].records} >= {0, 1}


def test_mask_until_serviced_is_a_deprecated_alias_of_irqf_oneshot():
    """The old policy name still parses and gives IRQF_ONESHOT's program."""
    d = device("nic", 0x61, gsi=20)
    a = engine.compile(guest(devices=[d], policy="irqf_oneshot"))
    b = engine.compile(guest(devices=[d], policy="mask_until_serviced"))
    assert a.groups[0].steps == b.groups[0].steps


def test_spiv_directed_eoi_bit_is_lapic_wide():
    """Row 10: a guest that sets SPIV bit 12 for one vector's handler suppresses the EOI broadcast of
    every level vector on that LAPIC: a lower_then_eoi device there never gets Remote IRR cleared."""
    a = device("a", 0x51, gsi=9, policy=use("policy", "directed_eoi"))
    b = device("b", 0x61, gsi=20, arrival=use("arrival", "periodic", period=us(50), count=3))
    m = run(guest(devices=[a, b], suppress_eoi_broadcast="on", duration=ms(0.5)), trace=False).lane(0)
    assert m["devices"]["b"]["delivered"] == 1 and m["devices"]["b"]["raised"] == 3
    assert m["devices"]["a"]["delivered"] == 1


def test_directed_eoi_with_the_in_kernel_ioapic_kills_the_line():
    """Review item I (0bcc3fb95b97): with KVM's in-kernel IOAPIC advertising Directed EOI, SPIV bit 12
    suppresses the broadcast and the IOAPIC EOI write is ignored (no EOI register): Remote IRR stays
    set and later interrupts of the line are never delivered."""
    d = device("nic", 0x61, gsi=20, policy=use("policy", "directed_eoi"),
               arrival=use("arrival", "periodic", period=us(50), count=4))
    r = run(guest(devices=[d], irqchip="kernel", suppress_eoi_broadcast="on", duration=ms(0.5)))
    assert r.lane(0)["devices"]["nic"]["delivered"] == 1
    assert ("irqlab_ioapic_eoi", "vector 97 ignored") in [(e, x) for _, e, x in events(r)]
    split = run(guest(devices=[d], irqchip="split", suppress_eoi_broadcast="on", duration=ms(0.5)),
                trace=False).lane(0)
    assert split["devices"]["nic"]["delivered"] == 4


def test_mask_and_unmask_take_ioregsel_iowin_and_a_read_back():
    """Row 21: a Linux guest masks a pin with an IOREGSEL write, an IOWIN write and a read-back, and
    unmasks with two writes: 3 + 2 MMIO exits, each a KVM_EXIT_MMIO with the split irqchip."""
    d = device("nic", 0x61, gsi=20)
    for irqchip in ("split", "kernel"):
        m = run(guest(devices=[d], policy="irqf_oneshot", irqchip=irqchip, duration=ms(0.2)),
                trace=False).lane(0)
        assert m["exits"]["EPT_MISCONFIG"] == 5
        assert m["userspace_exits"].get("KVM_EXIT_MMIO", 0) == (5 if irqchip == "split" else 0)


def test_the_mask_takes_effect_at_the_iowin_write():
    """The pin is masked at the second access (IOWIN), between the first and the third exit."""
    d = device("nic", 0x61, gsi=20)
    r = run(guest(devices=[d], policy="irqf_oneshot", irqchip="kernel", duration=ms(0.2)))
    ev = [(t, e, x) for t, e, x in events(r, 0, {"kvm_exit", "irqlab_redirect"})]
    mmio = [t for t, e, x in ev if "EPT_MISCONFIG" in x]
    masked = next(t for t, e, x in ev if x == "pin 20 masked 1")
    assert mmio[1] < masked < mmio[2]


def test_without_ack_on_exit_l1_runs_with_interrupts_off_then_opens_a_window():
    """Row 14: after the emulated exit without ack-on-exit L1 has IF=0 (load_vmcs12_host_state), so L0
    cannot inject on that entry; costs.l1_irq_off later L1 enables interrupts: an INTERRUPT_WINDOW exit
    (no APICv) and then kvm_inj_virq."""
    from dataclasses import replace

    from irqlab.ir import Arg, Quantity
    from tests.engine.scenarios import founding

    for off_cycles in (1000, 5000):
        s = founding(duration=ms(0.01), ack_on_exit=False, apicv=False)
        s = replace(s, costs=tuple(Arg(a.name, Quantity(off_cycles, "cycles")) if a.name == "l1_irq_off" else a
                                   for a in s.costs))
        ev = events(run(s))
        k = next(i for i, (_, e, _) in enumerate(ev) if e == "kvm_nested_vmexit_inject")
        entry, window, inj = ev[k + 1], ev[k + 2], ev[k + 3]
        assert entry[1] == "kvm_entry" and "INTERRUPT_WINDOW" in window[2] and inj[1:] == ("kvm_inj_virq", "irq 80")
        vmentry = 1000 * 400  # cycles at 2.5 GHz, in ps
        assert window[0] - entry[0] == vmentry + off_cycles * 400


def test_without_ack_on_exit_and_with_apicv_l1_takes_the_interrupt_without_an_exit():
    """Row 14 with APICv: once L1 enables interrupts the pending vector is delivered by virtual-interrupt
    delivery (RVI): no INTERRUPT_WINDOW exit and no kvm_inj_virq."""
    from tests.engine.scenarios import founding

    r = run(founding(duration=ms(0.05), ack_on_exit=False))
    assert "kvm_inj_virq" not in names(r) and r.lane(0)["exits"].get("INTERRUPT_WINDOW", 0) == 0
    assert r.lane(0)["exits"]["EOI_INDUCED"] > 0


def test_eoi_exit_bitmap_is_computed_from_routes_and_notifiers():
    """Row 11: the EOI-exit bitmap holds level pins, pins with ack notifiers, the RTC (GSI 8, in-kernel
    IOAPIC only) for the vCPUs they target, and vectors still awaiting an EOI after a reroute."""
    from irqlab.engine.compiler import eoi_exit_vectors

    routes = [(20, 0x61, 0, True), (8, 0x38, 0, False), (11, 0x41, 0, False), (21, 0x71, 1, True)]
    assert eoi_exit_vectors(routes, 0, "kernel") == {0x61, 0x38}
    assert eoi_exit_vectors(routes, 0, "split") == {0x61}
    assert eoi_exit_vectors(routes, 0, "split", notifier_pins={11}) == {0x61, 0x41}
    assert eoi_exit_vectors(routes, 0, "split", pending_eoi={0x71}) == {0x61, 0x71}
    assert eoi_exit_vectors(routes, 1, "kernel") == {0x71}


def test_rtc_edge_eoi_exits_with_the_in_kernel_ioapic():
    """Row 11: with APICv and the in-kernel IOAPIC, the EOI of the RTC's edge vector (GSI 8) is an
    EOI_INDUCED exit (KVM tracks RTC EOIs); another edge pin's EOI does not exit."""
    for gsi, exits in ((8, 1), (11, 0)):
        d = device("rtc", 0x38, gsi=gsi, trigger="edge")
        m = run(guest(devices=[d], irqchip="kernel", duration=ms(0.1)), trace=False).lane(0)
        assert m["exits"].get("EOI_INDUCED", 0) == exits


def test_kvm_like_l1_takes_pending_interrupts_through_its_idt_before_vmresume():
    """Row 16: an L1 of kind kvm enables interrupts after handling an exit, so an interrupt pending for
    it is taken through its IDT before VMRESUME: no immediate exits, no VMRESUME while one is pending.
    A Hyper-V-like L1 resumes L2 with it pending (immediate exits)."""
    from dataclasses import replace

    from tests.engine.scenarios import founding

    def with_l1(kind):
        s = founding(duration=ms(0.3))
        v = s.vcpus[0]
        return replace(s, vcpus=(replace(v, levels=tuple(replace(lv, name=kind) if lv.level == "L1" else lv
                                                         for lv in v.levels)),))

    hv = run(with_l1("hyperv"), trace=False).lane(0)
    kvm = run(with_l1("kvm"), trace=False).lane(0)
    assert hv["immediate_exits"] > 10 and kvm["immediate_exits"] == 0
    assert kvm["exits"].get("VMRESUME", 0) == 0 and kvm["livelock"]
    assert kvm["eoi_count"] > hv["eoi_count"]
