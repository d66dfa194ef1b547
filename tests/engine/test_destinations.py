"""Logical, lowest-priority and broadcast destinations, one rule per test (KVM's
kvm_apic_match_dest, kvm_irq_delivery_to_apic, kvm_vector_to_index, apic_arb_prio)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from irqlab.engine import dest as D
from irqlab.errors import ScenarioError
from tests.engine.helpers import events, run
from tests.engine.scenarios import device, guest, ms, us, use


def msi(vector=0x41, dest=0xFF, mode="physical", delivery="fixed", period=us(100), **kw):
    d = device("nic", vector, gsi=None, trigger="edge", service=us(2),
               arrival=use("arrival", "periodic", period=period), **kw)
    return replace(d, dest=dest, dest_mode=mode, delivery_mode=delivery)


def machine(vcpus=4, devices=(), x2apic=False, **m):
    s = guest(devices=list(devices), irqchip="kernel", apicv=True, x2apic=x2apic, vcpus=vcpus, duration=us(250))
    return replace(s, machine=replace(s.machine, **m))


def accepted(r, lane=0):
    return [x.split()[1] for _, e, x in events(r, lane) if e == "kvm_apic_accept_irq"]


def test_logical_flat_matches_each_set_bit():
    """xAPIC flat: LDR bit v; a destination mask reaches every vCPU whose bit it has."""
    assert D.targets(8, 0b1010, "logical", False, "flat") == (1, 3)
    assert D.targets(10, 0xFF, "logical", False, "flat") == tuple(range(10))  # 0xff is the broadcast


def test_logical_cluster_matches_cluster_and_member_bits():
    """xAPIC cluster: cluster in bits 7:4 must be equal, member bits intersect (SDM 10.6.2.2)."""
    assert D.targets(8, 0x13, "logical", False, "cluster") == (4, 5)
    assert D.targets(8, 0x03, "logical", False, "cluster") == (0, 1)


def test_x2apic_logical_uses_the_hardware_ldr():
    """x2APIC: LDR = (id >> 4) << 16 | 1 << (id & 0xf) (kvm_apic_calc_x2apic_ldr)."""
    assert D.logical_id(17, True, "flat") == (1 << 16) | 2
    assert D.targets(4, 0b0110, "logical", True, "flat") == (1, 2)


def test_lowest_priority_with_vector_hashing_takes_the_vector_mod_n_th():
    """kvm_vector_to_index: vector % n among the matching vCPUs."""
    assert D.vector_to_index(0x41, (0, 1, 2, 3)) == 1
    assert D.vector_to_index(0x43, (1, 3)) == 3


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_a_broadcast_reaches_every_vcpu(backend):
    """Destination 0xff (physical, fixed): every LAPIC accepts the message."""
    r = run(machine(devices=[msi(period=ms(1))]), backend=backend)
    assert accepted(r) == ["0", "1", "2", "3"]
    assert r.lane(0)["interrupts_delivered"] == 1  # one message, counted once


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_lowest_priority_without_hashing_rotates_by_arbitration_priority(backend):
    """vector_hashing off: the matching vCPU with the lowest apic_arb_prio, which each
    lowest-priority acceptance raises: a round robin."""
    s = machine(devices=[msi(dest=0b0111, mode="logical", delivery="lowest", period=us(50))], vector_hashing=False)
    assert accepted(run(s, backend=backend)) == ["0", "1", "2", "0", "1"]


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_lowest_priority_with_hashing_always_picks_the_same_vcpu(backend):
    """vector_hashing on: the same vector always goes to the same vCPU; the trace says LowPrio."""
    s = machine(devices=[msi(dest=0b0111, mode="logical", delivery="lowest", period=us(50))])
    r = run(s, backend=backend)
    assert accepted(r) == ["2"] * 5  # 0x41 % 3 == 2
    assert any(x.endswith("(LowPrio|logical|edge)") and x.startswith("dst 7") for _, e, x in events(r)
               if e == "kvm_msi_set_irq")


def test_physical_broadcast_with_lowest_priority_is_delivered_as_fixed():
    """kvm_irq_delivery_to_apic: "phys broadcast and lowest prio" becomes fixed: all vCPUs."""
    s = machine(devices=[msi(delivery="lowest", period=ms(1))])
    assert accepted(run(s)) == ["0", "1", "2", "3"]


def test_a_destination_that_matches_no_vcpu_is_an_error():
    """A logical mask without any vCPU's bit is a ScenarioError naming the device."""
    with pytest.raises(ScenarioError, match="nic.*matches no vCPU"):
        engine.compile(machine(vcpus=2, devices=[msi(dest=0b1000, mode="logical")]))


def test_destinations_are_a_mechanism_the_kernel_runs():
    """Program.mechanisms names destinations (a plain physical program does not), and auto
    runs such a program on the kernel (kernel_dest)."""
    prog = engine.compile(machine(devices=[msi()]))
    assert "destinations" in prog.mechanisms
    assert "destinations" not in engine.compile(machine(devices=[msi(dest=1)])).mechanisms
    assert engine.run(prog, [engine.Lane(0)]).backend.startswith("kernel (")
