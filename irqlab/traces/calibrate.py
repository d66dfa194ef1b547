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
be so; the rest are solved for, with the condition number of their columns and
a standard error from the residuals when there are more steps than costs.
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
    durations (ns), the rank and condition number of the fitted columns."""

    costs: tuple[CostFit, ...]
    keys: tuple[str, ...]
    trace_ns: tuple[float | None, ...]
    before_ns: tuple[float | None, ...]
    after_ns: tuple[float | None, ...]
    rank: int
    cond: float | None


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
    Ar, r = A[rows], y[rows] - np.nan_to_num(d0[rows])
    outcome: dict[str, CostFit] = {n: CostFit(n, v, v, "fixed") for n, v in start.items()}
    rank, cond = 0, None
    if free:
        _, sv, vt = np.linalg.svd(Ar, full_matrices=True)
        tol = RCOND * (sv[0] if len(sv) and sv[0] > 0 else 1.0)
        rank = int((sv > tol).sum())
        null = vt[rank:]  # [free - rank, free]
        ok = []
        for j, name in enumerate(free):
            comp = null[:, j] if len(null) else np.zeros(0)
            if not np.any(Ar[:, j]):
                outcome[name] = CostFit(name, start[name], start[name], "absent")
            elif len(comp) and np.linalg.norm(comp) > 1e-6:
                mine = np.abs(comp) > 1e-6  # the null directions this cost moves along
                partners = tuple(free[k] for k in range(len(free))
                                 if k != j and np.any(np.abs(null[mine, k]) > 1e-6))
                outcome[name] = CostFit(name, start[name], start[name], "combined", partners=partners)
            else:
                ok.append(j)
        x = np.zeros(len(free))
        if ok:
            As = Ar[:, ok]
            sol, *_ = np.linalg.lstsq(As, r, rcond=None)
            x[ok] = sol
            svs = np.linalg.svd(As, compute_uv=False)
            cond = float(svs[0] / svs[-1]) if svs[-1] > 0 else float("inf")
            resid = r - As @ sol
            dof = len(r) - len(ok)
            cov = None
            if dof > 0:
                sigma2 = float(resid @ resid) / dof
                cov = sigma2 * np.linalg.inv(As.T @ As)
            for i, j in enumerate(ok):
                name = free[j]
                se = float(np.sqrt(max(cov[i, i], 0.0))) if cov is not None else None
                outcome[name] = CostFit(name, start[name], start[name] + float(sol[i]), "fitted", se)
    after = np.nan_to_num(d0) + A @ x if free else np.nan_to_num(d0)
    opt = lambda a: tuple(None if np.isnan(v) else float(v) for v in a)  # noqa: E731
    return Fit(tuple(outcome[n] for n in start), trace.keys, opt(y), opt(d0), opt(after), rank, cond)
