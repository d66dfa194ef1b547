"""The lockstep executor against the per-lane kernel on random scenarios drawn for
issue 13's mechanism 4: task priority, L2's exits to L1, an L2 that EOIs L1's vLAPIC and
the nested vPPR (case G)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from irqlab.ir import Quantity
from tests.engine.scenarios import use
from tests.engine.test_differential import compare, scenarios


# at most 120 examples each (CI's profile asks 300), for CI time
CAP = settings(max_examples=min(settings.default.max_examples, 120))


@st.composite
def tpr_scenarios(draw, nested: bool = False):
    """The random scenarios of test_differential with a TPR (0 included; the generator's
    vectors are 0x30, 0x51, 0x52, 0x91) and, when nested, L2 exits to L1 every few
    microseconds, devices whose EOI L2 writes (policy l2_eoi) and either state of KVM's
    two case-G fixes."""
    scn = draw(scenarios())
    tpr = draw(st.sampled_from([0, 0x10, 0x30, 0x4F, 0x50, 0x60, 0x90]))
    m = replace(scn.machine, tpr=tpr)
    if nested and len(scn.vcpus[0].levels) == 3:
        every = draw(st.sampled_from([0.0, 1e-6, 5e-6, 20e-6]))
        m = replace(m, l2_exit_every=Quantity(every, "s"), defer_svi=draw(st.booleans()),
                    vppr_refresh=draw(st.booleans()))
        devices = tuple(replace(d, policy=use("policy", "l2_eoi")) if draw(st.booleans()) else d
                        for d in scn.devices)
        scn = replace(scn, devices=devices)
    return replace(scn, machine=m)


@pytest.mark.slow
@CAP
@given(tpr_scenarios())
def test_executors_agree_with_a_task_priority(scn):
    """Every metric and trace record of the lockstep executor and of the kernel (traced and
    untraced) equals the traced kernel's when a TPR blocks some vectors."""
    compare(scn)


@pytest.mark.slow
@CAP
@given(tpr_scenarios(nested=True))
def test_executors_agree_with_l2_exits_l2_eois_and_the_nested_vppr(scn):
    """The same with L2's exits to L1, L2's EOIs of L1's vectors and a stale vmcs01 SVI."""
    compare(scn)


@pytest.mark.parametrize("name", ["bug.scn", "fix.scn"])
def test_executors_agree_on_case_g(name):
    """The same on the casebook's case G scenarios (nested-vppr), bit for bit."""
    from pathlib import Path

    from irqlab.dsl import load

    path = Path(__file__).resolve().parents[2] / "examples" / "casebook" / "nested-vppr" / name
    compare(load(str(path)), n=2)
