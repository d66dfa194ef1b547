"""Named cost profiles: `costs { profile NAME }` in a .scn file."""

from __future__ import annotations

import pytest

from irqlab import ir
from irqlab.dsl import loads
from irqlab.errors import ScenarioError

SRC = """scenario s {{
    costs {{ {costs} }}
    vcpu 0 {{ L1 guest {{}} }}
    device nic {{ gsi 20; vector 0x61; trigger level; serviced_by L1 after 2us; arrival once at 0 }}
}}
"""


def costs(text: str) -> dict[str, ir.Quantity]:
    return {a.name: a.value for a in loads(SRC.format(costs=text), "t.scn").costs}


def test_a_profile_sets_its_costs_and_leaves_the_others_at_their_defaults():
    """profile bonzini2019_before sets the nested costs; the others keep the defaults."""
    c = costs("profile bonzini2019_before")
    assert c["nested_exit"].value == c["nested_entry"].value == 5443
    assert c["vmexit"].value == ir.COSTS["vmexit"][0].value


def test_lines_of_the_block_override_the_profile_before_or_after_it():
    """A cost written in the block wins over the profile, whichever comes first."""
    for text in ("profile bonzini2019_after; nested_exit 100 cycles",
                 "nested_exit 100 cycles; profile bonzini2019_after"):
        c = costs(text)
        assert c["nested_exit"].value == 100 and c["nested_entry"].value == 4571


def test_an_unknown_profile_is_an_error_with_a_suggestion():
    """A misspelt profile name: located error with a did-you-mean."""
    with pytest.raises(ScenarioError) as e:
        costs("profile bonzini2019_aftr")
    assert "unknown cost profile 'bonzini2019_aftr'" in str(e.value)
    assert "did you mean 'bonzini2019_after'" in str(e.value)
