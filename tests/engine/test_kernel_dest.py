"""The kernel's destinations (kernel_dest): the same deliveries, records and metrics as the
lockstep executor and the kernel's Python on fixed cases the random tests rarely draw, and no cost without destinations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from irqlab.engine import kernel_ids as K
from irqlab.engine.kernelprog import kernel_support, pack
from tests.engine.scenarios import device, guest, us, use
from tests.engine.test_differential import compare


def spread(d, dest, mode="logical", delivery="fixed"):
    return replace(d, dest=dest, dest_mode=mode, delivery_mode=delivery)


def level_pin(**kw):
    return device("disk", 0x51, gsi=10, trigger="level", service=us(3),
                  arrival=use("arrival", "poisson", rate=40_000.0), **kw)


def edge_msi(vector=0x41, serviced_by="L1"):
    return device("nic", vector, gsi=None, trigger="edge", service=us(2), serviced_by=serviced_by,
                  arrival=use("arrival", "periodic", period=us(30)))


CASES = {
    # a level IOAPIC pin to a logical cluster, KVM's IOAPIC and QEMU's (split)
    "level pin, cluster, kernel irqchip": dict(
        devices=[spread(level_pin(), 0x13)], irqchip="kernel", apicv=True, vcpus=8, apic_dfr="cluster"),
    "level pin, broadcast, split irqchip": dict(
        devices=[spread(level_pin(), 0xFF, mode="physical")], irqchip="split", apicv=False, vcpus=3),
    # lowest priority by apic_arb_prio over 4 vCPUs, with a plain physical MSI beside it
    "lowest by arbitration, x2APIC": dict(
        devices=[spread(edge_msi(), 0b1111, delivery="lowest"), device("timer", 0x60, gsi=None, trigger="edge",
                                                                      dest=2, arrival=use("arrival", "periodic",
                                                                                          period=us(45)))],
        irqchip="kernel", apicv=True, x2apic=True, vcpus=4, vector_hashing=False),
    "lowest by vector hashing, level pin": dict(
        devices=[spread(level_pin(), 0b0110, delivery="lowest")], irqchip="split", apicv=True, vcpus=4),
    "bare metal, flat logical": dict(levels=("L0",), devices=[spread(edge_msi(serviced_by="L0"), 0b101)], vcpus=3),
}


@pytest.mark.parametrize("case", CASES)
def test_kernel_delivers_destinations_as_the_lockstep_executor_does(case):
    """Every metric and trace record of the lockstep executor and of the kernel's Python, and
    every metric of the untraced kernel, equals the traced kernel's."""
    kw = dict(CASES[case])
    scn = guest(duration=us(400), **kw)
    prog = engine.compile(scn)
    assert "destinations" in prog.mechanisms and kernel_support(prog) is None
    compare(scn, n=2, others=("numpy", "untraced", "reference"))


def test_destinations_cost_a_lane_their_program_and_one_counter_per_vcpu():
    """A spread message adds its record (lowest, count, targets) and apic_arb_prio per vCPU to a
    lane; a program without destinations has neither (its program offset is -1)."""
    plain = pack(engine.compile(guest(devices=[edge_msi()], vcpus=4, irqchip="kernel", apicv=True)))
    bcast = pack(engine.compile(guest(devices=[spread(edge_msi(), 0xFF, mode="physical")], vcpus=4,
                                      irqchip="kernel", apicv=True)))
    assert plain.o[K.O_DS_PROG] == -1
    assert bcast.size - plain.size == (1 + 2 + 4) + 4  # one group's entry and record, arb of 4 vCPUs


def test_every_module_of_compiled_kernel_code_is_in_the_cache_stamp():
    """kernelrun.KERNEL_SOURCES names every module whose compiled functions the kernel calls,
    so an edit of any of them alone (kernel_dest.py) drops the stale cached kernel."""
    import sys

    from numba.core import config
    from numba.core.registry import CPUDispatcher

    if config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT=1: no compiled functions")

    from irqlab.engine import kernel, kernelrun  # noqa: F401

    compiled = {name.rsplit(".", 1)[1] for name, mod in list(sys.modules.items())
                if name.startswith("irqlab.engine.kernel") and mod is not None
                and any(isinstance(f, CPUDispatcher) and f.__module__ == name for f in vars(mod).values())}
    compiled.discard("kernel_api")  # third-party hooks' helpers: called through a pointer, cached apart
    assert "kernel_dest" in compiled
    assert compiled <= set(kernelrun.KERNEL_SOURCES)
