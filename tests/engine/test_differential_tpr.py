"""The lockstep executor against the reference interpreter on random scenarios drawn for
issue 13's mechanism 4 (task priority, the nested vPPR)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

from tests.engine.test_differential import compare, scenarios


@st.composite
def tpr_scenarios(draw):
    """The random scenarios of test_differential with a nonzero TPR (some vectors blocked:
    the generator's vectors are 0x30, 0x51, 0x52, 0x91)."""
    scn = draw(scenarios())
    tpr = draw(st.sampled_from([0x10, 0x30, 0x4F, 0x50, 0x60, 0x90]))
    return replace(scn, machine=replace(scn.machine, tpr=tpr))


@pytest.mark.slow
@given(tpr_scenarios())
def test_lockstep_matches_reference_with_a_task_priority(scn):
    """Every metric and trace record of the lockstep executor equals the reference's when a
    nonzero TPR blocks some vectors (the kernel leaves these programs to them)."""
    compare(scn, others=("numpy",))
