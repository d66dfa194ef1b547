"""The interrupt model: compile a resolved scenario, run lanes in lockstep.

    program = engine.compile(scenario)          # ir.Scenario (resolved) -> Program
    result  = engine.run(program, lanes)        # list[Lane] -> BatchResult

A :class:`Lane` is one run: a seed and the numeric parameter values that
differ from the program's (``Program.params``, by canonical dotted path).
Runs whose scenarios compile to the same ``Program.key`` can share a batch.
A lane's result depends only on (scenario, parameters, seed, irqlab version),
never on the batch it runs in or its position there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from irqlab.engine.program import Lane, Program
    from irqlab.engine.result import BatchResult
    from irqlab.ir import Scenario

__all__ = ["compile", "run", "Lane", "Program", "BatchResult"]


def compile(scenario: "Scenario") -> "Program":  # noqa: A001 - the stage's name
    """Compile a resolved scenario into a :class:`Program` (a ScenarioError if it cannot run)."""
    from irqlab.engine.compiler import compile_scenario

    return compile_scenario(scenario)


def run(program: "Program", lanes: Sequence["Lane"], *, trace_lanes: Iterable[int] = (),
        backend: str | None = None) -> "BatchResult":
    """Run ``lanes`` of ``program`` with an executor backend (default: the scenario's
    ``run.backend``, normally ``auto``: the compiled kernel when every plugin has kernel
    support, else the lockstep executor); trace the lanes at the given positions."""
    from irqlab.engine.program import run_program

    return run_program(program, lanes, trace_lanes=tuple(trace_lanes), backend=backend)


def __getattr__(name: str):
    if name in ("Lane", "Program"):
        from irqlab.engine import program

        return getattr(program, name)
    if name == "BatchResult":
        from irqlab.engine.result import BatchResult

        return BatchResult
    raise AttributeError(name)
