"""Idle vCPUs (machine.idle), one rule per test: work, HLT, halt-polling and the wake-up
latency (docs/model.md, "Idle vCPUs")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from irqlab import engine
from irqlab.engine import idle as I
from irqlab.errors import ScenarioError
from tests.engine.helpers import events, run
from tests.engine.scenarios import device, guest, ms, us, use

PS = 1_000_000  # ps per us
VMEXIT = 400_000  # costs.vmexit: 1000 cycles at 2.5 GHz, ps


def idle_guest(period=us(100), work=us(20), halt_poll=us(200), wakeup=us(10), apicv=True, **kw):
    """One vCPU, KVM's IOAPIC, an MSI every ``period`` that brings ``work`` of guest work."""
    d = replace(device("nic", 0x40, gsi=None, trigger="edge", service=us(2),
                       arrival=use("arrival", "periodic", period=period)), work=work)
    s = guest(devices=[d], irqchip="kernel", apicv=apicv, duration=kw.pop("duration", ms(1)), **kw)
    return replace(s, machine=replace(s.machine, idle=True, halt_poll=halt_poll, wakeup=wakeup))


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_a_vcpu_without_work_halts_at_once_and_blocks(backend):
    """With no work the vCPU executes HLT at 0 and, with polling off, blocks until the end."""
    s = idle_guest(halt_poll=us(0))
    s = replace(s, devices=(replace(s.devices[0], arrival=use("arrival", "once", at=10.0)),))
    r = run(s, backend=backend)
    ev = events(r)
    assert ev[0][:2] == (0, "kvm_exit") and "reason HLT" in ev[0][2]
    assert r.lane(0)["halt_exits"] == 1 and r.lane(0)["exits_total"] == 1
    assert r.lane(0)["l1_time_ns"] == 0 and r.lane(0)["livelock"] is False


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_a_blocked_vcpu_runs_again_one_wakeup_latency_after_the_interrupt(backend):
    """Blocked (no polling): the vCPU thread runs machine.wakeup after the interrupt's acceptance."""
    r = run(idle_guest(halt_poll=us(0), wakeup=us(7)), backend=backend)
    ev = events(r)
    i, wake, text = next((i, t, x) for i, (t, e, x) in enumerate(ev) if e == "kvm_vcpu_wakeup")
    accept = max(t for t, e, _ in ev[:i] if e == "kvm_apic_accept_irq")
    halt = max(t for t, e, x in ev[:i] if e == "kvm_exit" and "reason HLT" in x) + VMEXIT
    assert wake - accept == 7 * PS
    assert text == f"wait time {(wake - halt) // 1000} ns, polling valid"


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_an_interrupt_during_halt_polling_wakes_the_vcpu_at_once(backend):
    """Polling: the wake-up comes at the interrupt itself, without the wake-up latency."""
    s = idle_guest(halt_poll=us(200), wakeup=us(7), period=us(30), work=us(5))
    r = run(s, backend=backend)
    pairs = []
    ev = events(r)
    for i, (t, e, x) in enumerate(ev):
        if e == "kvm_vcpu_wakeup" and x.startswith("poll"):
            accept = max(tt for tt, ee, _ in ev[:i] if ee == "kvm_apic_accept_irq")
            pairs.append(t - accept)
    assert pairs and all(d == 0 for d in pairs)
    assert r.lane(0)["halt_polls_ok"] == len(pairs)


def test_halt_poll_ns_grows_from_grow_start_and_shrinks_after_a_long_halt():
    """KVM's grow_halt_poll_ns / shrink_halt_poll_ns: 0 -> grow_start, x grow, / shrink past the max."""
    kw = dict(max_hp=200, grow=2, grow_start=10, shrink=2)
    assert I.halt_poll_next(0, 5, **kw) == (10, I.GROW)
    assert I.halt_poll_next(10, 15, **kw) == (20, I.GROW)
    assert I.halt_poll_next(20, 15, **kw) == (20, I.KEEP)  # halt within the poll time
    assert I.halt_poll_next(160, 300, **kw) == (80, I.SHRINK)  # long block
    assert I.halt_poll_next(15, 300, **kw) == (0, I.SHRINK)  # below grow_start: off
    assert I.halt_poll_next(150, 199, **kw) == (300, I.GROW)  # capped at the next halt's start
    assert I.halt_poll_next(50, 300, **dict(kw, max_hp=0)) == (0, I.ZERO)


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_progress_is_measured_against_the_work_available(backend):
    """A vCPU that keeps up runs all the work it is given, and its halts are no livelock."""
    r = run(idle_guest(duration=ms(2)), backend=backend, trace=False).lane(0)
    assert r["work_ns"] == 20 * 1000 * 20 and r["work_done_ns"] == r["work_ns"]
    assert r["livelock"] is False and r["livelock_max_ns"] < 20_000
    assert r["halt_exits"] == 20


def test_work_left_undone_when_the_vcpu_cannot_keep_up():
    """Work beyond the vCPU's time stays available, and the metric says so."""
    r = run(idle_guest(period=us(10), work=us(20), duration=ms(1)), trace=False).lane(0)
    assert 0 < r["work_done_ns"] < r["work_ns"]


def test_idle_needs_a_single_level_guest():
    """machine.idle on a nested guest is a ScenarioError, not a wrong model."""
    s = idle_guest()
    nested = guest(levels=("L0", "L1", "L2"), devices=[replace(s.devices[0], serviced_by="L2")])
    with pytest.raises(ScenarioError, match="single-level guest"):
        engine.compile(replace(nested, machine=replace(nested.machine, idle=True)))


def test_auto_runs_idle_programs_on_the_kernel():
    """The kernel runs idle vCPUs (kernel_idle), so `auto` picks it for a program using them."""
    prog = engine.compile(idle_guest())
    assert "idle" in prog.mechanisms
    assert engine.run(prog, [engine.Lane(0)], backend="auto").backend.startswith("kernel (")


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_work_handed_to_another_vcpu_wakes_it_with_a_reschedule_ipi(backend):
    """work_on: the servicing vCPU sends vector 0xfd to the runner, which wakes, EOIs it and runs the work."""
    s = idle_guest(halt_poll=us(0), vcpus=2)
    s = replace(s, devices=(replace(s.devices[0], work_on=1),))
    r = run(s, backend=backend)
    ev = events(r)
    ipi = next(t for t, e, x in ev if e == "kvm_apic_ipi" and x.startswith("dst 1 vec 253"))
    assert any(t == ipi and x.startswith("apicid 1 vec 253") for t, e, x in ev if e == "kvm_apic_accept_irq")
    m = r.lane(0)
    assert m["ipis"] == 10 and m["work_done_ns"] == m["work_ns"] == 10 * 20_000
    assert m["vcpu_time_ns"]["1"]["L1"] > 10 * 20_000 > m["vcpu_time_ns"]["0"]["L1"]  # vCPU 1 ran the work


def test_work_on_needs_idle_vcpus():
    """work_on without machine.idle is a ScenarioError."""
    s = idle_guest(vcpus=2)
    s = replace(s, machine=replace(s.machine, idle=False), devices=(replace(s.devices[0], work_on=1),))
    with pytest.raises(ScenarioError, match="work_on needs idle"):
        engine.compile(s)
