"""The lockstep executor against the per-lane kernel on random scenarios
with guest actions that change routes (issue 13, mechanism 1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from irqlab.ir import Action, Quantity, RouteWrite
from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import compare, scenarios


@st.composite
def route_actions(draw, scn):
    """1-3 random ``at`` actions over ``scn``'s pins and MSI devices."""
    n_vcpus = scn.machine.vcpus
    pins = sorted({d.gsi for d in scn.devices if d.gsi is not None})
    msis = [d.name for d in scn.devices if d.gsi is None]
    out = []
    for _ in range(draw(st.integers(1, 3))):
        writes = []
        for _ in range(draw(st.integers(1, 3))):
            if msis and (not pins or draw(st.booleans())):
                writes.append(RouteWrite("msi", device=draw(st.sampled_from(msis)),
                                         dest=draw(st.integers(0, n_vcpus - 1))))
                continue
            if not pins:
                break
            dest = draw(st.one_of(st.none(), st.integers(0, n_vcpus - 1)))
            mask = draw(st.sampled_from([None, True, False] if dest is not None else [True, False]))
            writes.append(RouteWrite("ioapic", gsi=draw(st.sampled_from(pins)), dest=dest, mask=mask))
        if writes:
            every = draw(st.sampled_from([0.0, 1.3e-6, 7e-6, 55e-6]))
            out.append(Action(at=Quantity(draw(st.integers(0, 500)) * 1e-6, "s"), every=Quantity(every, "s"),
                              writes=tuple(writes)))
    return tuple(out)


@st.composite
def route_scenarios(draw):
    """Random single-level scenarios (bare metal or one guest level), with route actions and
    the KVM/QEMU versions of the route rules drawn too."""
    scn = draw(scenarios().filter(lambda s: len(s.vcpus[0].levels) < 3))
    if draw(st.booleans()):
        scn = replace(scn, machine=replace(scn.machine, vcpus=2),
                      vcpus=tuple(replace(scn.vcpus[0], index=i) for i in range(2)))
    # mostly APICv: the EOI-exit bitmap and the PIR only matter with it
    machine = replace(scn.machine, eoi_scan=draw(st.sampled_from(["pending_pir", "pending", "route"])),
                      rte_update=draw(st.sampled_from(["routes_first", "service_first"])),
                      apicv=draw(st.sampled_from([True, True, True, False])))
    return replace(scn, machine=machine, actions=draw(route_actions(scn)))


@pytest.mark.slow
@settings(max_examples=60)  # about 1 s each: the CI profile's 300 would take 6 minutes of CI's 20
@given(route_scenarios())
def test_lockstep_matches_the_kernel_on_random_route_changes(scn):
    """Every metric and trace record of the lockstep executor and of the kernel (traced and
    untraced) equals the traced kernel's on scenarios whose guest rewrites redirection entries and
    MSI messages during the run."""
    compare(scn)


def moved_in_service(irqchip: str, eoi_scan: str):
    """Two vCPUs; a level pin moved from vCPU 0 to vCPU 1 while its first interrupt is in
    service on vCPU 0 (the handler's body runs from 0.4 us to 2.4 us)."""
    dev = device("d", 0x50, gsi=23, arrival=use("arrival", "periodic", period=us(100)))
    scn = guest(devices=[dev], vcpus=2, duration=ms(1), irqchip=irqchip, eoi_scan=eoi_scan)
    return replace(scn, actions=(Action(at=us(2), writes=(RouteWrite("ioapic", gsi=23, dest=1),)),))


@pytest.mark.parametrize("irqchip", ["kernel", "split"])
@pytest.mark.parametrize("eoi_scan", ["route", "pending"])
def test_lockstep_matches_the_kernel_on_a_move_in_service(irqchip, eoi_scan):
    """The three executors give the same records and metrics for a level pin moved while in service."""
    compare(moved_in_service(irqchip, eoi_scan), n=2)


ROUTE_CASES = ("lost-eoi-reroute", "lost-eoi-pir", "stale-kvm-route")


@pytest.mark.parametrize("case", ROUTE_CASES)
@pytest.mark.parametrize("which", ["bug", "fix"])
def test_lockstep_matches_the_kernel_on_the_route_cases(case, which):
    """The three executors agree record for record on the casebook's route-change cases
    (a move in service, a vector waiting in the PIR, a stale KVM route)."""
    from pathlib import Path

    from irqlab.dsl import load

    compare(load(Path(__file__).resolve().parents[2] / "examples" / "casebook" / case / f"{which}.scn"),
            n=2)
