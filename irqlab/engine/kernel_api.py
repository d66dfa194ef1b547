"""Kernel support for a third-party mitigation: its hook, compiled by Numba, called by the
per-lane kernel through a function pointer (docs/writing-plugins.md, "Kernel support").

A mitigation class with kernel support names its hook in ``kernel_hook``
(``"package.module:function"``, imported only when the kernel runs it) and says how many
``int64`` state slots a lane needs in ``kernel_state(n_pins, n_vcpus)``. The hook is one
function for every event, decorated with :func:`kernel_hook`::

    hook(event, s_ptr, n_s, pf_ptr, n_pf, m, pin, a) -> int64

``lane(s_ptr, n_s)`` and ``params(pf_ptr, n_pf)`` give the lane's state ``s`` (int64) and
its parameters as float64; ``m`` is the mitigation's index. The events (``KH_*``) and
their arguments and results:

* ``KH_INIT`` (lane start; the state is zeroed before): 0.
* ``KH_IOAPIC_EOI`` (``pin``, ``a`` = asserted): ``KF_DEFER`` to hold the re-delivery back.
* ``KH_DELIVER`` (``pin``): ``KF_DEFER`` to block the delivery.
* ``KH_REDIRECT`` (``pin``): 0.
* ``KH_IMMEDIATE_EXIT`` (``pin`` = the vCPU, ``a`` = the timer so far): the timer (ps).
* ``KH_HANDLER_DONE`` (``pin``, ``a`` = handled + 2 * vCPU): 0.
* ``KH_TIMER`` (``a`` = the timer's index): 0.

``KF_SERVICE`` in the result of ``KH_IOAPIC_EOI``, ``KH_HANDLER_DONE`` or ``KH_TIMER``
services the IOAPIC (``ctx.service_ioapic``) when the hook returns. The helpers below
read and write the lane as the NumPy context's methods do (one lane; ``j`` is a
parameter's position in the class's ``params``, at most 5).
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import carray, cfunc, njit, types
from numba.core import config

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants

HOOK_SIG = types.int64(types.int64, types.CPointer(types.int64), types.int64, types.CPointer(types.float64),
                       types.int64, types.int64, types.int64, types.int64)
helper = njit(cache=True, error_model="numpy")


def kernel_hook(fn):
    """Compile ``fn`` as a kernel hook (a C function of :data:`HOOK_SIG`, cached on disk);
    with ``NUMBA_DISABLE_JIT=1`` the kernel runs as Python and so does the hook."""
    if config.DISABLE_JIT:
        return fn
    return cfunc(HOOK_SIG, cache=True, error_model="numpy")(fn)


@kernel_hook
def no_plugin(event, s_ptr, n_s, pf_ptr, n_pf, m, pin, a):
    """The hook of a program without third-party kernel code (never called)."""
    return 0


@helper
def lane(s_ptr, n_s):
    """The lane's state ``s`` (``int64[n_s]``)."""
    return carray(s_ptr, (n_s,))


@helper
def params(pf_ptr, n_pf):
    """The lane's parameters as float64 (``float64[n_pf]``)."""
    return carray(pf_ptr, (n_pf,))


if config.DISABLE_JIT:  # the kernel passes ``array.ctypes``: the same memory as an array

    def lane(s_ptr, n_s):  # noqa: F811
        return np.ctypeslib.as_array(s_ptr.data_as(ctypes.POINTER(ctypes.c_int64)), (n_s,))

    def params(pf_ptr, n_pf):  # noqa: F811
        return np.ctypeslib.as_array(pf_ptr.data_as(ctypes.POINTER(ctypes.c_double)), (n_pf,))


@helper
def now(s):
    return s[S_T]


@helper
def param(s, m, j):
    """Parameter ``j`` of mitigation ``m`` as int64 (times in ps, counts)."""
    return s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P0 + j]]


@helper
def param_f(s, pf, m, j):
    """Parameter ``j`` of mitigation ``m`` as float64 (frequencies in Hz)."""
    return pf[s[s[O_PMIT] + m * N_MIT + M_P0 + j]]


@helper
def state(s, m):
    """Where mitigation ``m``'s ``kernel_state`` slots begin in ``s``."""
    return s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]


@helper
def timer(s, m, k):
    return s[s[O_TIMER_T] + s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE] + k]


@helper
def set_timer(s, m, k, t):
    """Arm timer ``k`` at ``t`` (ps; ``NEVER`` cancels)."""
    s[s[O_TIMER_T] + s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE] + k] = t


@helper
def n_pins(s):
    return s[CFG + C_PINS]


@helper
def line(s, pin):
    return s[s[O_P_LINE] + pin] > 0


@helper
def irr(s, pin):
    return s[s[O_P_IRR] + pin] != 0


@helper
def remote_irr(s, pin):
    return s[s[O_P_RIRR] + pin] != 0


@helper
def masked(s, pin):
    return s[s[O_P_MASKED] + pin] != 0


@helper
def rip(s, v):
    """vCPU ``v``'s instruction pointer (``ImmediateExitEvent.rip``)."""
    return s[s[O_RIP] + v]


@helper
def activated(s, m):
    """Count an activation (``ctx.activated``)."""
    s[s[O_ACT] + m] += 1
