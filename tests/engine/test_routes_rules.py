"""Rules of guest actions that change routes (docs/model.md, "Guest actions: route changes")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from irqlab.ir import Action, Quantity, RouteWrite
from tests.engine.helpers import events, run
from tests.engine.scenarios import device, guest, ms, us, use


def smp(*actions, vcpus=2, irqchip="kernel", devices=None, **machine):
    devs = devices or [device("d", 0x41, gsi=21, arrival=use("arrival", "periodic", period=us(100)))]
    scn = guest(devices=devs, vcpus=vcpus, duration=ms(0.3), irqchip=irqchip, **machine)
    return replace(scn, actions=tuple(actions))


def at(t_us, *writes, every_us=0.0):
    return Action(at=us(t_us), every=Quantity(every_us * 1e-6, "s"), writes=tuple(writes))


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_an_action_with_every_repeats_until_the_end(backend):
    """`at T every P` makes its writes at T, T+P, T+2P, ... while the run lasts."""
    scn = smp(at(10, RouteWrite("ioapic", gsi=21, mask=True), every_us=70))
    times = [t for t, e, _ in events(run(scn, backend=backend)) if e == "irqlab_redirect"]
    assert times == [10_000_000, 80_000_000, 150_000_000, 220_000_000, 290_000_000]


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_an_msi_write_sends_the_next_messages_to_the_new_destination(backend):
    """After `msi D dest 1` the device's MSIs are accepted by vCPU 1."""
    net = device("net", 0x60, gsi=None, trigger="edge", arrival=use("arrival", "periodic", period=us(100)))
    scn = smp(at(50, RouteWrite("msi", device="net", dest=1)), devices=[net])
    dsts = [x.split()[1] for _, e, x in events(run(scn, backend=backend)) if e == "kvm_msi_set_irq"]
    assert dsts == ["0", "1", "1"]


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_the_in_kernel_ioapic_rescans_the_old_and_new_destination_only(backend):
    """KVM ioapic_write_indirect requests a rescan of the entry's old and new vCPUs."""
    scn = smp(at(50, RouteWrite("ioapic", gsi=21, dest=2)), vcpus=3)
    scans = [x for _, e, x in events(run(scn, backend=backend)) if e == "irqlab_eoi_exitmap"]
    assert scans == ["vcpu 0 vectors none", "vcpu 2 vectors 0x41"]


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_the_split_irqchip_rescans_every_vcpu_when_qemu_commits_routes(backend):
    """QEMU's route commit (KVM_SET_GSI_ROUTING) requests a rescan on every vCPU."""
    scn = smp(at(50, RouteWrite("ioapic", gsi=21, dest=2)), vcpus=3, irqchip="split")
    scans = [x for _, e, x in events(run(scn, backend=backend)) if e == "irqlab_eoi_exitmap"]
    assert scans == ["vcpu 0 vectors none", "vcpu 1 vectors none", "vcpu 2 vectors 0x41"]


@pytest.mark.parametrize("backend", ["reference", "kernel"])
def test_a_masked_pin_keeps_its_kvm_route_until_it_is_unmasked(backend):
    """QEMU ioapic_update_kvm_routes skips masked pins: a delivery after the destination
    write of a masked pin, before its unmask, is not possible, and the unmask's own
    delivery (service before the routes, QEMU before 54ad31fb0a0a) uses the old route."""
    dev = device("d", 0x41, gsi=21, arrival=use("arrival", "periodic", period=us(20), count=2))
    scn = smp(at(5, RouteWrite("ioapic", gsi=21, mask=True)), at(30, RouteWrite("ioapic", gsi=21, dest=1)),
              at(40, RouteWrite("ioapic", gsi=21, mask=False)), devices=[dev], irqchip="split",
              rte_update="service_first")
    r = run(scn, backend=backend)
    assert [x.split()[1] for _, e, x in events(r) if e == "kvm_msi_set_irq"] == ["0", "0"]
    assert r.extra["misrouted"][0] == 1


def test_route_changes_are_a_mechanism_auto_runs_on_the_kernel():
    """A program with actions names `routes` in its mechanisms, and auto picks the kernel for it."""
    prog = engine.compile(smp(at(5, RouteWrite("ioapic", gsi=21, dest=1))))
    assert "routes" in prog.mechanisms
    r = engine.run(prog, [engine.Lane(0)], backend="auto")
    assert r.backend.startswith("kernel (")


@pytest.mark.parametrize("backend", ["numpy", "kernel"])
def test_a_move_kills_the_line_exactly_when_it_lands_before_the_eoi(backend):
    """Case A's sweep in one batch (action.0.at differs per lane): with KVM before
    0fc5a36dd6b3 the line is dead from the EOI (2.8 us) to the end iff the move lands at or
    before it, and each lane equals its own run alone in the other executor."""
    from pathlib import Path

    from irqlab.dsl import load

    scn = load(Path(__file__).resolve().parents[2] / "examples" / "casebook" / "lost-eoi-reroute" / "bug.scn")
    prog = engine.compile(scn)
    times = [0, 1_000_000, 2_800_000, 2_900_000, 5_000_000]  # ps
    lanes = [engine.Lane(0, (), {"action.0.at": t}) for t in times]
    batch = engine.run(prog, lanes, backend=backend)
    dead = batch.extra["line_dead_ns"].tolist()
    assert dead == [997_200.0, 997_200.0, 997_200.0, 0.0, 0.0]
    for i, lane in enumerate(lanes):
        alone = engine.run(prog, [lane], backend="kernel" if backend == "numpy" else "numpy")
        assert alone.lane(0) == batch.lane(i)


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_the_stall_watch_starts_on_the_vcpu_the_route_names_at_the_arrival(backend):
    """After a move, vCPU 1's livelock watch starts at the first arrival routed to it: a
    screaming level line moved to vCPU 1 livelocks vCPU 1 (the run's livelock is true)."""
    dev = device("d", 0x41, gsi=21, lowers_line=False, arrival=use("arrival", "periodic", period=us(100)))
    scn = smp(at(50, RouteWrite("ioapic", gsi=21, dest=1)), devices=[dev], irqchip="kernel",
              eoi_scan="pending")
    scn = replace(scn, run=replace(scn.run, livelock_window=us(100)))
    r = run(scn, backend=backend)
    assert r.lane(0)["livelock"] is True
