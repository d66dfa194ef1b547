"""What keeps the per-lane kernel's first compile short (docs/implementations.md, "Compile cost")."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")


def test_constant_arguments_do_not_specialize_a_kernel_function():
    """A kernel function called with different constants from compiled code is compiled once."""
    from irqlab.engine.kernel_base import one_specialization

    @one_specialization
    @numba.njit
    def at(s, phase, t):
        s[phase] = t

    @numba.njit
    def caller(s, t):
        at(s, 0, 5)
        at(s, 1, 6)
        at(s, 2, t)

    s = np.zeros(3, np.int64)
    caller(s, 7)
    assert list(s) == [5, 6, 7]
    assert len(at.signatures) == 1


def _leaf_and_step():
    """An ``inner`` kernel function adding 1 to ``s[0]``, and a ``hot`` one calling it."""
    from irqlab.engine.kernel_base import hot, inner

    @inner
    def leaf(s):
        s[0] += 1

    @hot
    def step(s):
        leaf(s)

    return leaf, step


def test_a_hot_functions_callee_is_not_always_inlined_by_inheritance():
    """hot marks only its own functions alwaysinline: an inner callee first compiled from one stays a call."""
    leaf, step = _leaf_and_step()

    @numba.njit
    def caller(s):
        step(s)

    s = np.zeros(1, np.int64)
    caller(s)
    assert s[0] == 1
    assert [c.fndesc.inline for c in step.overloads.values()] == [True]
    assert [c.fndesc.inline for c in leaf.overloads.values()] == [False]


def test_kernel_functions_are_compiled_without_a_cfunc_wrapper():
    """A kernel function's library holds no cfunc wrapper: nothing calls one, and each cost a compile."""
    from irqlab.engine.kernel_base import entry

    leaf, step = _leaf_and_step()

    @entry
    def top(s):
        step(s)

    s = np.zeros(1, np.int64)
    top(s)
    assert s[0] == 1
    for fn in (leaf, step, top):
        (cres,) = fn.overloads.values()
        assert [f.name for f in cres.library._final_module.functions if f.name.startswith("cfunc.")] == []
