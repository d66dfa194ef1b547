"""The lockstep executor against the per-lane kernel on random
scenarios with logical, lowest-priority and broadcast destinations, with and without idle
vCPUs (the kernel where it runs them: not yet with idle vCPUs)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from tests.engine.test_differential import compare, scenarios
from tests.engine.test_differential_idle import idle_scenarios, single_level


@st.composite
def dest_scenarios(draw):
    """A single-level (or bare-metal) random scenario on 1-4 vCPUs whose vectors go to random
    destinations: physical IDs, 0xff, logical masks; fixed or lowest priority; xAPIC flat or
    cluster, x2APIC; vector hashing on or off; idle vCPUs or not."""
    scn = draw(scenarios())
    if scn.vcpus[0].levels[-1].level == "L2":
        scn = single_level(scn)
    if draw(st.booleans()) and scn.vcpus[0].levels[-1].level == "L1":
        scn = draw(idle_scenarios(base=st.just(scn)))
    n = draw(st.integers(1, 4))
    vcpus = tuple(replace(scn.vcpus[0], index=i) for i in range(n))
    x2apic = draw(st.booleans())
    choice = {}
    devices = []
    for d in scn.devices:
        if d.vector not in choice:
            mode = draw(st.sampled_from(["physical", "logical"]))
            dest = draw(st.sampled_from([0xFF, 0] if mode == "physical" else [0xFF, 0b1, 0b11, 0b0110, 0x13]))
            choice[d.vector] = (dest, mode, draw(st.sampled_from(["fixed", "lowest"])))
        dest, mode, how = choice[d.vector]
        devices.append(replace(d, dest=dest, dest_mode=mode, delivery_mode=how,
                               work_on=d.work_on if d.work_on < n else n - 1))
    m = replace(scn.machine, vcpus=n, x2apic=x2apic, apic_dfr=draw(st.sampled_from(["flat", "cluster"])),
                vector_hashing=draw(st.booleans()),
                suppress_eoi_broadcast="off" if not x2apic else scn.machine.suppress_eoi_broadcast)
    return replace(scn, machine=m, vcpus=vcpus, devices=tuple(devices))


def compiles(scn) -> bool:
    from irqlab import engine
    from irqlab.errors import ScenarioError

    try:
        engine.compile(scn)
    except ScenarioError as e:
        assert "matches no vCPU" in str(e)  # the only error these scenarios may draw
        return False
    return True


@pytest.mark.slow
@settings(max_examples=min(settings.default.max_examples, 120))  # CI time: 120 of the ci profile's 300
@given(dest_scenarios())
def test_executors_agree_with_logical_lowest_and_broadcast_destinations(scn):
    """Every metric and trace record of the lockstep executor and of the kernel equals the
    traced kernel's when interrupts reach several vCPUs or one chosen by KVM's lowest-priority rules."""
    if compiles(scn):
        compare(scn)
