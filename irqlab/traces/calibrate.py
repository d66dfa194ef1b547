"""Fitting a scenario's costs to a trace's step durations by least squares.

The model's step durations are a linear function of its costs along one loop
(each step's duration is a sum of cost terms: ``vmexit + eoi``, ``nested_exit``
...), so the map is measured, not assumed: the model is run at the starting
costs and once more with each free cost raised by :func:`delta`, giving
``d(c) = d0 + A (c - c0)`` with ``A`` ``[steps, free]`` in ns per cycle.
``numpy.linalg.lstsq`` then solves ``A x = y - d0`` for the trace's median step
durations ``y`` (steps without a duration in the trace are left out).

Identifiability: a cost is determined by the trace iff its unit vector lies in
the row space of ``A``, i.e. it has no component in ``A``'s null space (SVD,
relative tolerance :data:`RCOND`). A cost with a zero column is not in the loop
at all; one with a null-space component is determined only in combination with
others (named). Undetermined costs keep their starting values and are said to
be so, and what the trace does determine of them is given as combinations: per
step, the weighted sum of those costs that makes the step last as in the trace.
The determined costs are the same in every least-squares solution; they are
reported with the condition number of their columns and a standard error from
the residuals when there are more steps than the rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from irqlab.errors import ScenarioError
from irqlab.traces.compare import align
from irqlab.traces.cycles import Loop

RCOND = 1e-9


def delta(cycles: float) -> float:
    """The step by which a cost is raised to measure its column: 10%, at least 100 cycles."""
    return max(100.0, round(0.1 * cycles))


@dataclass(frozen=True)
class CostFit:
    """One cost's outcome: ``value`` in cycles, ``stderr`` (None if not estimable), and
    ``status``: ``'fitted'``, ``'fixed'`` (not freed), ``'absent'`` (not in the loop) or
    ``'combined'`` (``partners`` name what it is determined together with)."""

    name: str
    start: float
    value: float
    status: str
    stderr: float | None = None
    partners: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fit:
    """A calibration: per-cost outcomes, per-step trace / model-before / model-after
    durations (ns; after: with the costs as fitted, undetermined ones kept), the rank of the
    map and the condition number of the determined costs' columns."""

    costs: tuple[CostFit, ...]
    keys: tuple[str, ...]
    trace_ns: tuple[float | None, ...]
    before_ns: tuple[float | None, ...]
    after_ns: tuple[float | None, ...]
    rank: int
    cond: float | None
    combos: tuple[tuple[int, tuple[tuple[str, float], ...], float], ...] = ()
    """What the trace determines of the costs it cannot separate: ``(step, ((cost, weight),
    ...), total)``, the weighted sum of those costs (largest weight 1) in cycles that makes
    step ``step`` last as in the trace, one per distinct combination."""


def _steps(loop: Loop, trace: Loop, what: str) -> np.ndarray:
    a = align(trace, loop)
    if not a.match:
        i, j, how = a.first_diff
        raise ScenarioError(f"{what}: the model's loop does not match the trace's (step {i + 1}: "
                            f"{how}), so its costs cannot be fitted to it",
                            hint="run `irqlab compare` to see both loops")
    return np.array([np.nan if s is None else s for s in a.model_steps], dtype=float)


def fit(trace: Loop, run_loop: Callable[[dict[str, float]], Loop], start: dict[str, float],
        free: list[str]) -> Fit:
    """Fit the costs in ``free`` (names of ``start``, values in cycles) so that the loop of
    ``run_loop(costs)`` has the step durations of ``trace``'s loop."""
    y = np.array([np.nan if s is None else s for s in trace.steps_ns], dtype=float)
    rows = ~np.isnan(y)
    if not rows.any():
        raise ScenarioError("the trace has no timestamps, so its step durations are unknown "
                            "and no cost can be fitted", hint="calibrate needs a timed trace "
                            "(trace-cmd report, perf script, or irqlab's Perfetto JSON)")
    d0 = _steps(run_loop(dict(start)), trace, "at the starting costs")
    A = np.zeros((len(y), len(free)))
    for j, name in enumerate(free):
        c = dict(start)
        c[name] = start[name] + delta(start[name])
        A[:, j] = (_steps(run_loop(c), trace, f"with {name} raised") - d0) / delta(start[name])
    A = np.nan_to_num(A)
    steps = np.flatnonzero(rows)
    Ar, r = A[rows], y[rows] - np.nan_to_num(d0[rows])
    outcome: dict[str, CostFit] = {n: CostFit(n, v, v, "fixed") for n, v in start.items()}
    rank, cond, combos = 0, None, []
    x = np.zeros(len(free))
    present = [j for j in range(len(free)) if np.any(Ar[:, j])]
    for j in range(len(free)):
        if j not in present:
            outcome[free[j]] = CostFit(free[j], start[free[j]], start[free[j]], "absent")
    if present:
        Ap = Ar[:, present]
        names = [free[j] for j in present]
        _, sv, vt = np.linalg.svd(Ap, full_matrices=True)
        rank = int((sv > RCOND * sv[0]).sum()) if sv[0] > 0 else 0
        null = vt[rank:]  # [present - rank, present]: directions the trace cannot see
        sol, *_ = np.linalg.lstsq(Ap, r, rcond=None)  # the fitted step durations are unique
        resid = r - Ap @ sol
        dof = len(r) - rank
        cov = float(resid @ resid) / dof * np.linalg.pinv(Ap.T @ Ap) if dof > 0 else None
        moves = np.abs(null) > 1e-6 if len(null) else np.zeros((0, len(present)), dtype=bool)
        ident = [i for i in range(len(present)) if not moves[:, i].any()]
        for i, name in enumerate(names):
            if i in ident:
                x[present[i]] = sol[i]
                se = float(np.sqrt(max(cov[i, i], 0.0))) if cov is not None else None
                outcome[name] = CostFit(name, start[name], start[name] + float(sol[i]), "fitted", se)
            else:
                mine = moves[:, i]
                partners = tuple(names[k] for k in range(len(names)) if k != i and moves[mine, k].any())
                outcome[name] = CostFit(name, start[name], start[name], "combined", partners=partners)
        if ident:
            svs = np.linalg.svd(Ap[:, ident], compute_uv=False)
            cond = float(svs[0] / svs[-1]) if svs[-1] > 0 else float("inf")
        comb = [i for i in range(len(present)) if i not in ident]
        seen = set()
        for row, k in enumerate(steps):
            coef = Ap[row, comb]
            if not np.any(np.abs(coef) > 1e-12):
                continue
            coef = coef / np.abs(coef).max()
            terms = tuple((names[i], round(float(c), 6)) for i, c in zip(comb, coef) if abs(c) > 1e-9)
            if terms in seen:
                continue
            seen.add(terms)
            total = sum(c * (start[names[i]] + sol[i]) for i, c in zip(comb, coef))
            combos.append((int(k), terms, float(total)))
    after = np.nan_to_num(d0) + A @ x if free else np.nan_to_num(d0)
    opt = lambda a: tuple(None if np.isnan(v) else float(v) for v in a)  # noqa: E731
    return Fit(tuple(outcome[n] for n in start), trace.keys, opt(y), opt(d0), opt(after), rank, cond,
               tuple(combos))
