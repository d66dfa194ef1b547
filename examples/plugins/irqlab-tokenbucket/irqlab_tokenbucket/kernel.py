"""The token bucket's hooks for irqlab's per-lane kernel: the NumPy hooks of __init__.py for
one lane, on the lane's state (``spent`` at state(s, m) + pin, ``held`` n_pins further on)."""

import math

from irqlab.engine.kernel_api import (
    activated, helper, kernel_hook, lane, n_pins, now, param, param_f, params, set_timer, state, timer,
)
from irqlab.engine.kernel_ids import KF_DEFER, KF_SERVICE, KH_IOAPIC_EOI, KH_TIMER, NEVER


@helper
def arm(s, pf, m):
    set_timer(s, m, 0, now(s) + math.ceil(1e12 / param_f(s, pf, m, 0)))  # ps per token (rate)


@kernel_hook
def hook(event, s_ptr, n_s, pf_ptr, n_pf, m, pin, a):
    s, pf = lane(s_ptr, n_s), params(pf_ptr, n_pf)
    spent, held = state(s, m), state(s, m) + n_pins(s)
    if event == KH_IOAPIC_EOI and a:
        if s[spent + pin] < param(s, m, 1):  # burst
            s[spent + pin] += 1
            return 0
        s[held + pin] = 1
        if timer(s, m, 0) == NEVER:
            arm(s, pf, m)
        activated(s, m)
        return KF_DEFER
    if event == KH_TIMER:
        left = False
        for p in range(n_pins(s)):
            s[spent + p] = max(s[spent + p] - 1, 0) + s[held + p]
            s[held + p] = 0
            left = left or s[spent + p] > 0
        if left:  # timers fire once: re-arm
            arm(s, pf, m)
        return KF_SERVICE
    return 0
