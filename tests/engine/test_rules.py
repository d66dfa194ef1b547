"""One LAPIC / IOAPIC / KVM / QEMU rule per test, checked on exact traces."""

from __future__ import annotations

import pytest

from irqlab.ir import Quantity
from tests.engine.helpers import events, names, run
from tests.engine.scenarios import device, founding, guest, ms, us, use

HZ = lambda x: Quantity(float(x), "Hz")  # noqa: E731


def kvm_exits(r, lane=0):
    return [x.split()[1] for _, e, x in events(r, lane, {"kvm_exit"})]


def test_level_eoi_with_line_high_redelivers_at_once():
    """An EOI that finds the level line still high re-delivers in the same instant (split: QEMU)."""
    r = run(founding(duration=ms(0.05)))
    ev = events(r)
    i = next(k for k, (_, e, _) in enumerate(ev) if e == "kvm_userspace_exit")
    t_user = ev[i][0]
    redeliver = [t for t, e, _ in ev[i + 1:] if e == "kvm_apic_accept_irq"][0]
    assert redeliver > t_user and not any(e == "kvm_entry" for t, e, _ in ev[i + 1:] if t < redeliver)


def test_level_eoi_with_line_low_does_not_redeliver():
    """A correct driver lowers the line before its EOI: one delivery only."""
    d = device("nic", 0x61, gsi=20, service=us(2))
    r = run(guest(devices=[d], duration=ms(1)))
    assert names(r).count("kvm_apic_accept_irq") == 1


def test_remote_irr_blocks_a_second_delivery_of_a_level_pin():
    """While Remote IRR is set, a new assertion of the level pin is not delivered."""
    d = device("nic", 0x61, gsi=20, service=us(50), arrival=use("arrival", "periodic", period=us(10)))
    r = run(guest(devices=[d], duration=ms(0.045)))
    assert names(r).count("kvm_apic_accept_irq") == 1
    assert r.lane(0)["interrupts_coalesced"] >= 3


def test_masked_pin_keeps_irr_and_fires_on_unmask():
    """A masked level pin keeps irr; unmasking it with the line still high delivers at once."""
    d = device("nic", 0x61, gsi=20, service=us(5), arrival=use("arrival", "periodic", period=us(3), count=2))
    r = run(guest(devices=[d], policy="irqf_oneshot", duration=ms(0.1)))
    ev = [(e, x) for _, e, x in events(r, 0, {"irqlab_redirect", "kvm_apic_accept_irq", "ioapic_set_irq"})]
    assert ev[0] == ("ioapic_set_irq", "vector: 20 level: 1")
    assert ("irqlab_redirect", "pin 20 masked 1") in ev and ("irqlab_redirect", "pin 20 masked 0") in ev
    assert [e for e, _ in ev].count("kvm_apic_accept_irq") == 1


def test_edges_on_a_masked_pin_are_lost():
    """An edge on a masked pin is lost: QEMU ignores it; KVM's pulse (level 1 then 0) clears the
    irr it set, so unmasking delivers nothing."""
    d = device("e", 0x41, gsi=11, trigger="edge", service=us(20),
               arrival=use("arrival", "periodic", period=us(10), count=3))
    for irqchip in ("split", "kernel"):
        m = run(guest(devices=[d], policy="irqf_oneshot", irqchip=irqchip, duration=ms(0.2))).lane(0)
        assert m["interrupts_delivered"] == 1 and m["interrupts_raised"] == 3


def test_lapic_keeps_one_pending_copy_per_vector():
    """A vector already pending in IRR collapses a new acceptance into it (MSI)."""
    d = device("m", 0x71, gsi=None, trigger="edge", service=us(30), arrival=use("arrival", "periodic", period=us(5), count=4))
    m = run(guest(devices=[d], duration=ms(0.2)), trace=False).lane(0)
    assert m["interrupts_delivered"] == 2 and m["interrupts_coalesced"] == 2


def test_higher_priority_class_is_delivered_while_lower_in_service():
    """Bare metal: a vector of a higher class is not blocked by a lower one in service; the same
    class waits until the EOI."""
    lo = device("lo", 0x41, gsi=None, trigger="edge", serviced_by="L0", service=us(10), arrival=use("arrival", "once", at=0.0))
    hi = device("hi", 0x81, gsi=None, trigger="edge", serviced_by="L0", service=us(1), arrival=use("arrival", "once", at=2e-6))
    same = device("same", 0x42, gsi=None, trigger="edge", serviced_by="L0", service=us(1), arrival=use("arrival", "once", at=2e-6))
    r = run(guest(levels=("L0",), devices=[lo, hi], duration=ms(0.05)))
    entries = [x for _, e, x in events(r, 0, {"irq_handler_entry"})]
    assert entries == ["irq=65 name=lo", "irq=129 name=hi"]
    deliver = [t for t, e, _ in events(r, 0, {"irqlab_apic_accept"})]
    assert deliver == [0, 2_000_000]
    r2 = run(guest(levels=("L0",), devices=[lo, same], duration=ms(0.05)))
    ent2 = [(t, x) for t, e, x in events(r2, 0, {"irq_handler_entry"})]
    assert ent2[1][1] == "irq=66 name=same" and ent2[1][0] > 10_000_000


def test_eoi_of_edge_vector_does_not_exit_with_apicv():
    """With APICv an edge vector's EOI is virtualized without an exit; without APICv it traps."""
    d = device("m", 0x71, gsi=None, trigger="edge", service=us(1))
    assert kvm_exits(run(guest(devices=[d], duration=ms(0.05)))) == []
    assert kvm_exits(run(guest(devices=[d], duration=ms(0.05), apicv=False))) == ["EXTERNAL_INTERRUPT", "MSR_WRITE"]


def test_level_eoi_exits_and_split_goes_to_userspace():
    """A level vector's EOI is an EOI_INDUCED exit; with split irqchip it continues to QEMU."""
    d = device("nic", 0x61, gsi=20, service=us(1))
    split = names(run(guest(devices=[d], duration=ms(0.05))))
    kernel = names(run(guest(devices=[d], irqchip="kernel", duration=ms(0.05))))
    assert "kvm_userspace_exit" in split and "kvm_userspace_exit" not in kernel
    assert split.count("kvm_eoi") == kernel.count("kvm_eoi") == 1


def test_suppressed_broadcast_needs_an_ioapic_eoi():
    """Directed EOI honoured: the LAPIC EOI does not reach QEMU; the IOAPIC EOI register does."""
    r = run(founding(duration=ms(0.2), policy="directed_eoi", suppress="on"))
    ev = [(e, x) for _, e, x in events(r, 0, {"kvm_eoi", "kvm_userspace_exit", "irqlab_ioapic_eoi"})]
    assert ev == [("kvm_eoi", "apicid 0 vector 80"), ("kvm_userspace_exit", "reason KVM_EXIT_MMIO (6)"),
                  ("irqlab_ioapic_eoi", "vector 80")]


def test_immediate_exit_gives_l2_no_time():
    """VMRESUME with an interrupt pending for L1: entry then PREEMPTION_TIMER exit at the same
    instant L2 starts; L2 executes nothing."""
    r = run(founding(duration=ms(0.1)))
    ev = events(r)
    k = next(i for i, (_, e, x) in enumerate(ev) if e == "kvm_exit" and "VMRESUME" in x)
    entry_t = ev[k + 1][0]
    pt = ev[k + 2]
    assert ev[k + 1][1] == "kvm_entry" and "PREEMPTION_TIMER" in pt[2]
    s = founding()
    vmentry = {a.name: a.value for a in s.costs}["vmentry"].to_ps(s.machine.tsc.value)
    assert pt[0] - entry_t == vmentry and r.lane(0)["l2_time_ns"] == 0


def test_ack_on_exit_reports_the_vector_else_injects_later():
    """Acknowledge-interrupt-on-exit: int_info 0x800000VV; without it int_info 0 and the vector is
    injected into L1 later (without APICv, after an interrupt window)."""
    on = [x for _, e, x in events(run(founding(duration=ms(0.01))), 0, {"kvm_nested_vmexit_inject", "kvm_inj_virq"})]
    off = [x for _, e, x in events(run(founding(duration=ms(0.01), ack_on_exit=False, apicv=False)), 0,
                                   {"kvm_nested_vmexit_inject", "kvm_inj_virq"})]
    assert "int_info 80000050" in on[0] and not any("irq 80" == x for x in on)
    assert "int_info 0 " in off[0] and off[1] == "irq 80"


def test_kvm_delay_triggers_when_counter_equals_threshold():
    """KVM: the delay arms when the counter equals the threshold (here at the 5th EOI)."""
    s = founding(irqchip="kernel", duration=ms(0.2), mitigations=[use("mitigation", "kvm_eoi_delay", threshold=5, delay=1e-3)])
    r = run(s)
    ev = names(r)
    eois_before = ev[: ev.index("kvm_ioapic_delayed_eoi_inj")].count("kvm_eoi")
    assert eois_before == 5 and r.lane(0)["mitigation_activations"]["kvm_eoi_delay"] == 1


def test_qemu_throttle_triggers_at_threshold_and_timer_only_moves_earlier():
    """QEMU: the counter reaching the threshold defers re-delivery by `delay`."""
    s = founding(duration=ms(0.5), mitigations=[use("mitigation", "qemu_eoi_throttle", threshold=3, delay=ms(0.1))])
    r = run(s)
    ev = events(r)
    t_defer = [t for t, e, _ in ev if e == "ioapic_eoi_delayed_reassert"][0]
    assert [e for _, e, _ in ev][: [e for _, e, _ in ev].index("ioapic_eoi_delayed_reassert")].count("kvm_eoi") == 3
    assert r.lane(0)["devices"]["uhci"]["serviced"] == 1
    assert r.lane(0)["time_to_l2_progress_ns"] < (t_defer / 1000 + 50_000)


def test_preemption_timer_throttle_arms_delay_in_timer_units():
    """Throttled: L2 runs delay x 2^rate TSC cycles (1000 x 32 / 2.5 GHz = 12.8 us) before the
    preemption-timer exit."""
    s = founding(duration=ms(2), mitigations=[use("mitigation", "preemption_timer_throttle", threshold=2, delay=1000)],
                 service=us(100))
    r = run(s)
    ev = events(r)
    runs = []
    for k, (t, e, x) in enumerate(ev):
        if e == "kvm_entry" and k + 1 < len(ev) and "PREEMPTION_TIMER" in ev[k + 1][2]:
            runs.append(ev[k + 1][0] - t)
    vmentry = 400_000
    assert runs[:3] == [vmentry] * 3 and runs[3] == vmentry + 12_800_000


def test_linux_spurious_disables_a_screaming_line():
    """A line nobody handles is disabled after `window` interrupts with > `threshold` unhandled,
    and its devices are polled from then on."""
    st = device("stuck", 0x62, gsi=21, lowers_line=False, service=us(1))
    s = guest(devices=[st], duration=ms(20), mitigations=[use("mitigation", "linux_spurious", window=1000, threshold=990, poll=ms(1))])
    r = run(s)
    m = r.lane(0)
    assert m["mitigation_activations"]["linux_spurious"] == 1
    # the first interrupt was handled (the device had work): the window opens at the second
    assert m["interrupts_delivered"] == 1001 and m["time_to_progress_ns"] is not None
    assert names(r).count("irqlab_poll") >= 10


def test_linux_spurious_window_starts_at_the_first_unhandled_interrupt():
    """Since v5.13 (7c07012eb1be) handled interrupts before the first unhandled one do not advance
    the window; pre_5_13 1 counts them (one handled interrupt: 1001 deliveries against 1000)."""
    st = device("stuck", 0x62, gsi=21, lowers_line=False, service=us(1))
    got = {}
    for pre in (0, 1):
        mit = use("mitigation", "linux_spurious", window=1000, threshold=990, poll=ms(1), pre_5_13=pre)
        got[pre] = run(guest(devices=[st], duration=ms(20), mitigations=[mit]), trace=False).lane(0)
    assert got[0]["interrupts_delivered"] == 1001 and got[1]["interrupts_delivered"] == 1000


def test_xen_ratelimit_masks_then_unmasks_after_the_window():
    """Xen do_IRQ: `limit` deliveries pass, the (limit+1)-th within the window of the quantum's start
    (boot) is dropped and the pin masked; the timer unmasks it one window later, and the next
    delivery restarts the quantum."""
    st = device("stuck", 0x62, gsi=21, lowers_line=False, service=us(1))
    s = guest(devices=[st], duration=ms(1), mitigations=[use("mitigation", "xen_irq_ratelimit", limit=50, window=ms(0.4))])
    r = run(s)
    red = [(t, x) for t, e, x in events(r, 0, {"irqlab_redirect"})]
    assert red[0][1] == "pin 21 masked 1" and red[1][1] == "pin 21 masked 0"
    assert red[1][0] - red[0][0] == 400_000_000
    before = [t for t, e, _ in events(r, 0, {"kvm_apic_accept_irq"}) if t <= red[0][0]]
    assert len(before) == 50
    after = [t for t, e, _ in events(r, 0, {"kvm_apic_accept_irq"}) if t >= red[1][0]]
    assert after and after[0] == red[1][0]  # delivered at the unmask: the quantum restarts


def test_xen_ratelimit_quantum_is_only_checked_past_the_limit():
    """Xen looks at the clock only when the count passes the limit: a storm starting after the
    first window gets limit deliveries, a restart of the quantum (which passes), and limit more
    before the first drop: 2 * 50 + 1."""
    st = device("stuck", 0x62, gsi=21, lowers_line=False, service=us(1),
                arrival=use("arrival", "once", at=0.5e-3))
    s = guest(devices=[st], duration=ms(1.5), mitigations=[use("mitigation", "xen_irq_ratelimit", limit=50, window=ms(0.4))])
    r = run(s)
    first_mask = next(t for t, _, x in events(r, 0, {"irqlab_redirect"}) if x.endswith("masked 1"))
    assert len([t for t, _, _ in events(r, 0, {"kvm_apic_accept_irq"}) if t <= first_mask]) == 101


@pytest.mark.slow
def test_correct_high_rate_level_device_never_activates_mitigations():
    """A correct level-triggered driver at 50 kHz: no mitigation ever activates, no livelock."""
    d = device("nic", 0x61, gsi=20, service=us(2), arrival=use("arrival", "poisson", rate=HZ(50e3)))
    s = guest(devices=[d], duration=ms(50), mitigations=[use("mitigation", "qemu_eoi_throttle"),
                                                         use("mitigation", "linux_spurious")])
    m = run(s, n=4, trace=False)
    for i in range(4):
        lane = m.lane(i)
        assert all(v == 0 for v in lane["mitigation_activations"].values())
        assert not lane["livelock"] and lane["interrupts_raised"] > 2000


def test_kvm_eoi_delay_is_hz_over_100_jiffies_at_a_tick():
    """KVM's delay is HZ/100 jiffies and the work runs at a jiffy tick: HZ 1000 gives the 10th
    tick after the EOI, HZ 250 the 2nd (8 ms, not 10)."""
    from tests.engine.scenarios import founding

    for hz, tick, jiffies in ((1000, 1_000_000_000, 10), (250, 4_000_000_000, 2)):
        mit = use("mitigation", "kvm_eoi_delay", threshold=5, hz=hz)
        r = run(founding(irqchip="kernel", mitigations=[mit], duration=ms(30), service=ms(100)))
        t0 = next(t for t, e, _ in events(r) if e == "kvm_ioapic_delayed_eoi_inj")
        again = next(t for t, e, _ in events(r) if e == "kvm_ioapic_set_irq" and t > t0)
        assert again == (t0 // tick + jiffies) * tick


def test_compile_refuses_a_device_serviced_by_a_level_the_vcpus_lack():
    """An IR scenario (built without the DSL's checks) whose device is serviced_by L1 on bare
    metal is a user error naming the device, not a run whose executors disagree."""
    from irqlab import engine
    from irqlab.errors import ScenarioError

    with pytest.raises(ScenarioError, match="device 'd': serviced_by L1, but interrupts arrive at L0"):
        engine.compile(guest(levels=("L0",), devices=[device("d", 0x41, gsi=None, trigger="edge")]))
