"""The least-squares fit and its identifiability verdicts, on a loop whose map is known."""

from __future__ import annotations

import pytest

from irqlab.errors import ScenarioError
from irqlab.traces.calibrate import fit
from irqlab.traces.cycles import Loop

KEYS = ("kvm_exit EOI_INDUCED", "kvm_eoi vec 80", "kvm_entry")


def _loop(steps, keys=KEYS) -> Loop:
    return Loop(tuple(keys), 10, 30, 30, tuple(steps), None, ())


def _model(c: dict[str, float]) -> Loop:
    """Steps: a + b, 2 c, and c + 1 ns; d in no step."""
    return _loop((c["a"] + c["b"], 2 * c["c"], c["c"] + 1))


START = {"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0}


def test_a_cost_in_no_step_is_said_to_be_undetermined():
    """A cost no step depends on keeps its start value and is marked absent."""
    f = fit(_loop((35, 8, 5)), _model, START, ["c", "d"])
    by = {c.name: c for c in f.costs}
    assert by["d"].status == "absent" and by["d"].value == 40.0
    assert by["c"].status == "fitted" and by["c"].value == pytest.approx(4.0)


def test_costs_seen_only_summed_are_named_together_not_guessed():
    """a and b appear only as a + b: neither is fitted, each names the other."""
    f = fit(_loop((35, 8, 5)), _model, START, ["a", "b", "c"])
    by = {c.name: c for c in f.costs}
    assert (by["a"].status, by["a"].partners, by["a"].value) == ("combined", ("b",), 10.0)
    assert (by["b"].status, by["b"].partners) == ("combined", ("a",))
    assert by["c"].value == pytest.approx(4.0) and f.rank == 2


def test_residuals_and_stderr_come_from_the_misfit():
    """An inconsistent trace leaves residuals and a non-zero standard error."""
    f = fit(_loop((30, 8, 7)), _model, START, ["c"])
    c = next(x for x in f.costs if x.name == "c")
    assert c.value == pytest.approx(4.4)  # least squares of 2c = 8 and c + 1 = 7
    assert c.stderr and c.stderr > 0
    assert f.after_ns[1] == pytest.approx(8.8) and f.after_ns[2] == pytest.approx(5.4)


def test_a_model_loop_that_changes_with_a_cost_is_refused():
    """If raising a cost changes the model's loop, the fit refuses rather than mixing loops."""
    def model(c):
        keys = KEYS if c["c"] == 30.0 else ("kvm_exit HLT", "kvm_eoi vec 80", "kvm_entry")
        return _loop((c["a"] + c["b"], 2 * c["c"], c["c"] + 1), keys)

    with pytest.raises(ScenarioError, match="with c raised"):
        fit(_loop((35, 8, 5)), model, START, ["c"])


def test_what_is_determined_of_combined_costs_is_given():
    """For a + b the fit gives the sum the trace fixes (35), from the step that fixes it."""
    f = fit(_loop((35, 8, 5)), _model, START, ["a", "b", "c"])
    assert f.combos == ((0, (("a", 1.0), ("b", 1.0)), pytest.approx(35.0)),)
