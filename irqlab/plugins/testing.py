"""Check that a compiled scenario's plugins keep the vectorized contract.

The contract (:mod:`irqlab.plugins.api`) promises that a lane's result depends
only on its own parameters and seed: not on the backend, the batch it runs in,
its position there, or what ran before. These checks run a program's lanes in
the ways that would expose a plugin breaking it, using only the engine's public
``compile``/``run`` API::

    from irqlab.plugins.testing import assert_contract
    assert_contract(program, lanes)     # AssertionError listing every difference

``irqlab plugins check FILE --vary PATH=V1,V2`` does the same from the command
line. What each check catches:

* *alone vs batch*: writing rows outside ``ev.lanes``, reductions across lanes;
* *reversed batch*: anything that depends on a lane's position;
* *run twice*: global random generators, and other state kept outside the
  lanes' rows (the engine itself fails a run in which a plugin changed its own
  attributes: the instance is shared by every run of a compiled program);
* *backends agree*: a plugin with kernel support (``kernel_kind`` or
  ``kernel_hook``) runs its NumPy hooks in the lockstep executor and its kernel
  hooks in the kernel: the two must give the same bits.

A lane that fails (its plugin raised) is reported too. The checks can only see
differences that the chosen lanes provoke: vary the parameters so that lanes
take different paths (some limited, some not) at different times.
"""

from __future__ import annotations

import json
from typing import Any, Sequence


def default_backends(program: Any) -> tuple[str, ...]:
    """The backends a check compares: the lockstep executor, and the kernel when every
    plugin of ``program`` has kernel support."""
    from irqlab.engine.kernelprog import kernel_support

    return ("numpy",) if kernel_support(program) is not None else ("numpy", "kernel")


def lane_key(result: Any, i: int) -> str:
    """Lane ``i`` of a BatchResult as canonical JSON (every metric, exactly)."""
    return json.dumps(result.lane(i), sort_keys=True)


def contract_problems(program: Any, lanes: Sequence[Any],
                      backends: Sequence[str] | None = None) -> list[str]:
    """Every way ``lanes`` of ``program`` break the contract, as messages ([] if none).

    ``lanes`` are :class:`irqlab.engine.Lane` s of ``program`` (vary their
    parameters and seeds); ``backends`` default to :func:`default_backends`. Costs
    about ``len(lanes) + 3`` runs per backend.
    """
    from irqlab import engine

    backends = default_backends(program) if backends is None else backends
    lanes = list(lanes)
    problems: list[str] = []
    first: dict[str, list[str]] = {}
    for backend in backends:
        batch = engine.run(program, lanes, backend=backend)
        keys = [lane_key(batch, i) for i in range(len(lanes))]
        first[backend] = keys
        for i in range(len(lanes)):
            if batch.status[i] != "ok":
                problems.append(f"{backend}: lane {i} failed: {batch.error[i]}")
        again = engine.run(program, lanes, backend=backend)
        for i in range(len(lanes)):
            if lane_key(again, i) != keys[i]:
                problems.append(f"{backend}: lane {i} differs when the same batch runs again "
                                f"(state kept outside ctx.state?)")
        rev = engine.run(program, lanes[::-1], backend=backend)
        for i in range(len(lanes)):
            if lane_key(rev, len(lanes) - 1 - i) != keys[i]:
                problems.append(f"{backend}: lane {i} differs at another position in the batch")
        for i, lane in enumerate(lanes):
            alone = engine.run(program, [lane], backend=backend)
            if lane_key(alone, 0) != keys[i]:
                problems.append(f"{backend}: lane {i} run alone differs from the lane in a batch "
                                f"({_diff(json.loads(lane_key(alone, 0)), json.loads(keys[i]))})")
    names = list(first)
    for other in names[1:]:
        for i in range(len(lanes)):
            if first[other][i] != first[names[0]][i]:
                problems.append(f"lane {i}: {other} differs from {names[0]} "
                                f"({_diff(json.loads(first[other][i]), json.loads(first[names[0]][i]))})")
    return problems


def assert_contract(program: Any, lanes: Sequence[Any],
                    backends: Sequence[str] | None = None) -> None:
    """Raise AssertionError listing :func:`contract_problems`, if there are any."""
    problems = contract_problems(program, lanes, backends)
    if problems:
        raise AssertionError("the vectorized contract is broken:\n  " + "\n  ".join(problems))


def _diff(a: Any, b: Any, path: str = "") -> str:
    """The first differing field of two lane dicts, as ``path: a != b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return "equal"
    return f"{path}: {a!r} != {b!r}"
