"""Issue 13, mechanism 4: task and processor priority (SDM 10.8.3.1), one rule per test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from tests.engine.helpers import run, same_everything
from tests.engine.scenarios import device, guest, ms, us, use

BACKENDS = ("reference", "numpy", "kernel")


def msi_guest(vector: int, tpr: int, **kw):
    """A single-level guest with one MSI device at ``vector`` raising once at 10 us."""
    d = device("nic", vector, gsi=None, trigger="edge", arrival=use("arrival", "once", at=10e-6))
    return guest(devices=[d], duration=ms(1), tpr=tpr, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vector_of_the_tpr_class_or_below_is_never_delivered(backend):
    """With TPR 0x50 a vector 0x5x stays pending in IRR: its class is not above PPR[7:4]."""
    lane = run(msi_guest(0x58, 0x50), backend=backend, trace=False).lane(0)
    assert lane["devices"]["nic"]["serviced"] == 0
    assert lane["devices"]["nic"]["delivered"] == 1  # accepted into IRR, never dispatched


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vector_of_a_class_above_the_tpr_is_delivered(backend):
    """With TPR 0x50 a vector 0x61 is dispatched and serviced."""
    lane = run(msi_guest(0x61, 0x50), backend=backend, trace=False).lane(0)
    assert lane["devices"]["nic"]["serviced"] == 1


def test_auto_runs_a_tpr_program_on_the_kernel():
    """A nonzero TPR is a mechanism (Program.mechanisms names it) that the kernel runs: `auto` picks it."""
    assert "tpr" in engine.compile(msi_guest(0x61, 0x50)).mechanisms
    assert "tpr" not in engine.compile(msi_guest(0x61, 0)).mechanisms
    assert engine.run(engine.compile(msi_guest(0x61, 0x50)), [engine.Lane(0)]).backend.startswith("kernel")


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_service_class_above_the_tpr_sets_ppr(backend):
    """PPR[7:4] is the larger of TPR[7:4] and the in-service class: with TPR 0x20 and 0x61 in
    service, a second MSI at 0x41 waits for 0x61's EOI (trapped: APICv off), then is delivered."""
    hi = device("hi", 0x61, gsi=None, trigger="edge", arrival=use("arrival", "once", at=10e-6),
                service=us(20))
    lo = device("lo", 0x41, gsi=None, trigger="edge", arrival=use("arrival", "once", at=15e-6))
    r = run(guest(devices=[hi, lo], duration=ms(1), tpr=0x20, apicv=False), backend=backend)
    ev = [(t, e, x) for t, _, _, e, x in r.traces[0].sorted()]
    eoi_hi = next(t for t, e, x in ev if e == "kvm_eoi" and x.endswith("vector 97"))
    take_lo = next(t for t, e, x in ev if e == "kvm_eoi" and x.endswith("vector 65"))
    assert eoi_hi < take_lo
    assert r.lane(0)["devices"]["lo"]["serviced"] == 1


def test_tpr_zero_changes_nothing():
    """``machine.tpr`` 0 (the default) gives the same results as a scenario that never names it."""
    a = run(msi_guest(0x58, 0), trace=False)
    b = run(guest(devices=[device("nic", 0x58, gsi=None, trigger="edge",
                                  arrival=use("arrival", "once", at=10e-6))], duration=ms(1)), trace=False)
    assert same_everything(a, b, 0)


def case_g(**machine):
    """Case G's machine: an L1 that passes its x2APIC through to L2 (policy l2_eoi) and
    handles an L2 exit every 10 us; a NIC for L2 whose EOI L2 writes at 13.2 us, and L1's own
    1 kHz timer, whose first tick (20 us) lands while L1 handles an exit."""
    nic = device("nic", 0x80, gsi=None, trigger="edge", serviced_by="L2",
                 arrival=use("arrival", "once", at=5e-6), policy=use("policy", "l2_eoi"))
    timer = device("timer", 0x40, gsi=None, trigger="edge", serviced_by="L1", service=us(1),
                   arrival=use("arrival", "periodic", period=1e-3, start=20e-6),
                   policy=use("policy", "lower_then_eoi"))
    m = dict(irqchip="kernel", l2_exit_every=us(10), defer_svi=False, vppr_refresh=False)
    m.update(machine)
    return guest(levels=("L0", "L1", "L2"), l1_kind="pkvm", devices=[nic, timer], duration=ms(5), **m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stale_svi_keeps_l1s_timer_pending_while_l2_is_resumed(backend):
    """Before 04bc93cf49d1 and cda3960fbcc5 a vector at or below the class of the EOI L2 wrote
    is never delivered to L1: vPPR is recomputed from vmcs01's stale SVI at every entry."""
    lane = run(case_g(), backend=backend, trace=False).lane(0)
    assert lane["devices"]["timer"]["serviced"] == 0
    assert lane["immediate_exits"] == 0
    assert lane["exits"]["VMRESUME"] > 300


@pytest.mark.parametrize("backend", BACKENDS)
def test_refreshing_vppr_at_nested_vm_enter_delivers_l1s_timer(backend):
    """cda3960fbcc5: VMRESUME refreshes vPPR, finds the timer pending and exits at once to L1."""
    lane = run(case_g(vppr_refresh=True), backend=backend, trace=False).lane(0)
    assert lane["devices"]["timer"]["serviced"] == lane["devices"]["timer"]["raised"] == 5
    assert lane["immediate_exits"] >= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_deferring_the_svi_update_to_vmcs01_delivers_l1s_timer(backend):
    """04bc93cf49d1: vmcs01's SVI follows the EOI L2 wrote, vPPR is right, the timer is delivered."""
    lane = run(case_g(defer_svi=True), backend=backend, trace=False).lane(0)
    assert lane["devices"]["timer"]["serviced"] == 5


def test_without_apicv_there_is_no_svi_to_go_stale():
    """SVI exists only with virtual-interrupt delivery: with APICv off the timer is delivered."""
    lane = run(case_g(apicv=False), trace=False).lane(0)
    assert lane["devices"]["timer"]["serviced"] == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_l2_writes_the_eoi_of_an_l2_eoi_vector_and_l0_handles_it(backend):
    """Policy l2_eoi: L2's EOI exits to L0 (MSR_WRITE 0x80b, kvm_nested_vmexit, no reflection),
    kvm_eoi clears L1's ISR, and L0 re-enters L2."""
    r = run(case_g(defer_svi=True, l2_exit_every=us(0)), backend=backend)
    ev = [(t, e, x) for t, _, _, e, x in r.traces[0].sorted()]
    i = next(k for k, (_, e, x) in enumerate(ev) if e == "kvm_exit" and "MSR_WRITE" in x)
    assert [e for _, e, _ in ev[i:i + 4]] == ["kvm_exit", "kvm_nested_vmexit", "kvm_eoi", "kvm_entry"]
    assert r.lane(0)["eoi_count"] >= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_l2_exits_to_l1_after_every_l2_exit_every_of_its_execution(backend):
    """machine.l2_exit_every: L2 exits (EPT_MISCONFIG, reflected to L1) after each 10 us it runs."""
    lane = run(case_g(defer_svi=True, vppr_refresh=True), backend=backend, trace=False).lane(0)
    n = lane["exits"]["EPT_MISCONFIG"]
    assert n == lane["l2_time_ns"] // 10_000


def test_l2_exit_every_needs_a_nested_guest():
    """machine.l2_exit_every on a single-level guest is a ScenarioError."""
    from irqlab.errors import ScenarioError

    with pytest.raises(ScenarioError, match="nested"):
        engine.compile(msi_guest(0x61, 0, l2_exit_every=us(10)))


def kvm_l1(scn):
    """``scn`` with its L1 named ``kvm`` (KVM-like: takes pending interrupts before VMRESUME)."""
    return replace(scn, vcpus=tuple(
        replace(v, levels=tuple(replace(lv, name="kvm") if lv.level == "L1" else lv for lv in v.levels))
        for v in scn.vcpus))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_kvm_like_l1_cannot_take_its_timer_itself_past_a_stale_svi(backend):
    """A KVM-like L1 takes pending interrupts by virtual-interrupt delivery before VMRESUME;
    the vPPR computed from the stale SVI blocks that too, so the timer still waits."""
    scn = kvm_l1(case_g())
    assert engine.compile(scn).l1_irq_window
    assert run(scn, backend=backend, trace=False).lane(0)["devices"]["timer"]["serviced"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_kvm_like_l1_takes_its_timer_itself_once_svi_is_right(backend):
    """With 04bc93cf49d1 a KVM-like L1 takes the timer through RVI before VMRESUME: every
    tick is serviced and none needs an immediate exit."""
    lane = run(kvm_l1(case_g(defer_svi=True)), backend=backend, trace=False).lane(0)
    assert lane["devices"]["timer"]["serviced"] == 5
    assert lane["immediate_exits"] == 0
