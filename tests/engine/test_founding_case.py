"""The founding case (../shared/seed): the storm, and what each mitigation does to it."""

from __future__ import annotations

import pytest

from tests.engine.helpers import KVM, events, run
from tests.engine.scenarios import founding, ms, use

SEED_LOOP = [
    ("kvm_exit", "reason VMRESUME"), ("kvm_entry", ""), ("kvm_exit", "reason PREEMPTION_TIMER"),
    ("kvm_nested_vmexit", "reason PREEMPTION_TIMER"),
    ("kvm_nested_vmexit_inject", "reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000050"),
    ("kvm_entry", ""), ("kvm_exit", "reason EOI_INDUCED"), ("kvm_eoi", "apicid 0 vector 80"),
    ("kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)"), ("kvm_set_irq", "gsi 23 level 1"),
    ("kvm_msi_set_irq", "dst 0 vec 80 (Fixed|physical|level)"), ("kvm_apic_accept_irq", "apicid 0 vec 80"),
    ("kvm_entry", ""),
]


def iteration_ps(s) -> int:
    """One loop iteration from the scenario's costs (L1 resume .. entry after the EOI)."""
    c = {a.name: a.value.to_ps(s.machine.tsc.value) for a in s.costs}
    return (c["resume"] + c["vmexit"] + c["nested_entry"] + c["vmentry"]  # VMRESUME, enter L2
            + c["vmexit"] + c["nested_exit"] + c["vmentry"]  # immediate exit, reflect to L1
            + c["handler"] + c["vmexit"] + c["eoi"]  # L1 handler, EOI_INDUCED
            + c["userspace_exit"] + c["ioapic"] + c["vmentry"])  # QEMU's EOI broadcast and back


def test_storm_is_a_livelock():
    """Split irqchip, EOI before lower, no mitigation: livelock, and L2 never runs."""
    r = run(founding(duration=ms(5)), trace=False)
    m = r.lane(0)
    assert m["livelock"] and m["l2_time_ns"] == 0 and m["time_to_l2_progress_ns"] is None
    assert m["devices"]["uhci"]["serviced"] == 0


def test_steady_state_is_the_seed_loop():
    """The trace's steady state repeats the seed thread's loop, record for record."""
    r = run(founding(duration=ms(0.2)))
    kvm = [(e, x) for _, e, x in events(r, 0, KVM)]
    start = next(i for i, (e, x) in enumerate(kvm) if e == "kvm_exit" and "VMRESUME" in x)
    for k in range(3):
        for (e, x), (want_e, want_x) in zip(kvm[start + 13 * k: start + 13 * (k + 1)], SEED_LOOP):
            assert e == want_e and want_x in x


def test_loop_iteration_time_matches_costs():
    """Consecutive VMRESUME exits are one iteration's worth of the scenario's costs apart."""
    s = founding(duration=ms(0.2))
    r = run(s)
    t = [t for t, e, x in events(r) if e == "kvm_exit" and "VMRESUME" in x]
    assert {b - a for a, b in zip(t[1:], t[2:])} == {iteration_ps(s)}


@pytest.mark.slow
def test_qemu_throttle_frees_l2_after_threshold_iterations():
    """QEMU's throttle: L2 progresses after threshold x one iteration (within 1%), the device is
    serviced and the storm ends."""
    s = founding(duration=ms(120), mitigations=[use("mitigation", "qemu_eoi_throttle")])
    m = run(s, trace=False).lane(0)
    expect_ns = 10000 * iteration_ps(s) / 1000
    assert m["time_to_l2_progress_ns"] == pytest.approx(expect_ns, rel=0.01)
    assert m["devices"]["uhci"]["serviced"] == 1
    assert m["mitigation_activations"]["qemu_eoi_throttle"] == 1
    assert m["l2_time_ns"] == pytest.approx(120e6 - m["time_to_l2_progress_ns"], rel=0.01)


@pytest.mark.slow
def test_kernel_irqchip_kvm_rule_without_userspace_exits():
    """In-kernel irqchip: the same under KVM's rule, without exits to userspace."""
    s = founding(irqchip="kernel", duration=ms(100), mitigations=[use("mitigation", "kvm_eoi_delay")])
    m = run(s, trace=False).lane(0)
    c = {a.name: a.value.to_ps(s.machine.tsc.value) for a in s.costs}
    expect_ns = 10000 * (iteration_ps(s) - c["userspace_exit"]) / 1000
    assert m["time_to_l2_progress_ns"] == pytest.approx(expect_ns, rel=0.01)
    assert m["userspace_exits"] == {} and m["userspace_time_ns"] == 0
    assert m["mitigation_activations"]["kvm_eoi_delay"] == 1


def test_preemption_timer_throttle_after_about_100_iterations():
    """The RFC's throttle: L2 runs after about 100 immediate exits at one instruction."""
    s = founding(duration=ms(5), mitigations=[use("mitigation", "preemption_timer_throttle")])
    m = run(s, trace=False).lane(0)
    iterations = m["time_to_l2_progress_ns"] * 1000 / iteration_ps(s)
    assert 100 <= iterations <= 103
    assert m["devices"]["uhci"]["serviced"] == 1 and not m["livelock"]


def test_directed_eoi_honoured_prevents_the_storm():
    """Suppress-EOI-broadcast honoured and a directed-EOI L1: one delivery, no storm."""
    m = run(founding(duration=ms(5), policy="directed_eoi", suppress="on"), trace=False).lane(0)
    assert m["interrupts_delivered"] == 1 and m["immediate_exits"] == 0 and not m["livelock"]
    assert m["userspace_exits"] == {"KVM_EXIT_MMIO": 1}


def test_directed_eoi_with_legacy_quirk_still_storms():
    """Directed EOI advertised but ignored (KVM's split-irqchip quirk before 6517dfbcc918):
    the LAPIC EOI still reaches QEMU and the line re-fires."""
    m = run(founding(duration=ms(5), policy="directed_eoi", suppress="quirk"), trace=False).lane(0)
    assert m["livelock"] and m["immediate_exits"] > 100


def test_correct_l1_forwarding_does_not_storm():
    """L1 that forwards to L2 and EOIs only after L2 has lowered the line: no storm."""
    m = run(founding(duration=ms(5), policy="lower_then_eoi"), trace=False).lane(0)
    assert m["interrupts_delivered"] == 1 and m["eoi_count"] == 1 and not m["livelock"]
