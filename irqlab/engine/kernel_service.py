"""The per-lane kernel, random times: service-time distributions and a policy's random
handler body time (``body_dist``).

The kernel form of :mod:`irqlab.plugins.builtin.services` for one lane, with the
deterministic transforms of :mod:`irqlab.engine.rng` (``det_exp``, ``normal``) written
for one float64, operation for operation, so the times are bit-identical to the NumPy
executors'. Service times draw from stream ``300 + d`` (counter slot ``2D + M + d``),
body times from ``400 + g`` (slot ``3D + M + g``), as :mod:`irqlab.engine.context` numbers them.
"""

from __future__ import annotations

import math

import numpy as np

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import LN2_HI, LN2_LO, det_log, draw, hot, inner
from irqlab.engine.rng import _A, _B, _C, _D, _E, _EXP_COEFFS, _F

EXP_COEFFS = np.array(_EXP_COEFFS)
AS241 = np.array([_A, _B, _C, _D, _E, _F])  # [6, 8]: Wichura's AS241 numerators and denominators
LN2 = LN2_HI + LN2_LO
U_MIN = 2.0**-54
SQRT3 = math.sqrt(3.0)


@inner
def det_exp(x):
    """rng.det_exp of one float64."""
    k = math.floor(x / LN2 + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = EXP_COEFFS[0]
    for i in range(1, EXP_COEFFS.shape[0]):
        p = p * r + EXP_COEFFS[i]
    return np.ldexp(p, np.int64(k))


@inner
def _poly(row, x):
    p = AS241[row, 7]
    for i in range(6, -1, -1):
        p = p * x + AS241[row, i]
    return p


@inner
def normal(u):
    """rng.normal of one uniform (AS241)."""
    u = min(max(u, U_MIN), 1.0 - U_MIN)
    q = u - 0.5
    if abs(q) <= 0.425:
        r_c = 0.180625 - q * q
        return q * _poly(0, r_c) / _poly(1, r_c)
    r = math.sqrt(-det_log(min(u, 1.0 - u)))
    if r <= 5.0:
        tail = _poly(2, r - 1.6) / _poly(3, r - 1.6)
    else:
        tail = _poly(4, r - 5.0) / _poly(5, r - 5.0)
    return -tail if q < 0 else tail


@inner
def ps(x):
    """services._ps: a time in float64 ps, rounded to int64 ps."""
    return np.int64(math.floor(max(x, 0.0) + 0.5))


@inner
def gamma(s, slot, stream, shape):
    """services.gamma_variates for one lane: Marsaglia and Tsang, shape < 1 boosted."""
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = 0.0
    while True:
        z = normal(draw(s, slot, stream))
        u = 1.0 - draw(s, slot, stream)
        v = 1.0 + c * z
        v3 = v * v * v
        if v > 0 and det_log(u) < 0.5 * z * z + d * (1.0 - v3 + det_log(v3)):
            out = d * v3
            break
    if boost:
        u = 1.0 - draw(s, slot, stream)
        out *= det_exp(det_log(u) / shape)
    return out


@inner
def by_kind(s, slot, stream, kind, a, b):
    """One time of distribution ``kind`` (``SVC_*``) with parameters ``a, b`` (float64: the
    plugin's, in its ``params`` order), as a float64 before rounding."""
    if kind == SVC_EXPONENTIAL:
        return -a * det_log(1.0 - draw(s, slot, stream))
    if kind == SVC_UNIFORM:
        hi = max(b, a)
        return a + (hi - a) * draw(s, slot, stream)
    if kind == SVC_LOGNORMAL:
        mu = det_log(max(a, 1e-300)) - 0.5 * b * b
        return det_exp(mu + b * normal(draw(s, slot, stream)))
    return gamma(s, slot, stream, b) * a / b  # SVC_GAMMA: mean, shape


@hot
def service_time(s, pf, d):
    """How long this service of device ``d`` takes: its constant, or one draw of its
    distribution (reference.service_time). (Inlined: the constant is the common case;
    :func:`service_dist` is the rest.)"""
    row = s[O_PDEV] + d * N_DEV
    if s[row + D_SVC_KIND] < 0:
        return s[s[O_PI] + s[row + D_SERVICE]]
    return service_dist(s, pf, d)


@inner
def service_dist(s, pf, d):
    """:func:`service_time` of a device with a service-time distribution."""
    row = s[O_PDEV] + d * N_DEV
    kind = s[row + D_SVC_KIND]
    if kind == SVC_CONSTANT:
        return s[s[O_PI] + s[row + D_SVC_P0]]
    if kind == SVC_EMPIRICAL:  # a sample drawn uniformly
        n = s[row + D_SVC_P1]
        u = draw(s, 2 * s[CFG + C_D] + s[CFG + C_M] + d, 300 + d)
        return s[s[O_PTIMES] + s[row + D_SVC_P0] + min(np.int64(u * n), n - 1)]
    p1 = s[row + D_SVC_P1]
    b = pf[p1] if p1 >= 0 else 0.0
    x = by_kind(s, 2 * s[CFG + C_D] + s[CFG + C_M] + d, 300 + d, kind, pf[s[row + D_SVC_P0]], b)
    return ps(x)


@inner
def body_time(s, pf, g, mean_ps):
    """services.sample_by_cv: a random body time of ``mean_ps`` and the policy's
    coefficient of variation ``body_cv``, from the group's stream."""
    row = s[O_PGRP] + g * N_GRP
    kind = s[row + G_BODY_KIND]
    mean = np.float64(mean_ps)
    if kind == SVC_CONSTANT:
        return ps(mean)
    cv = pf[s[row + G_BODY_CV]]
    slot, stream = 3 * s[CFG + C_D] + s[CFG + C_M] + g, 400 + g
    if kind == SVC_UNIFORM:
        half = min(cv * SQRT3, 1.0) * mean
        return ps(mean - half + 2.0 * half * draw(s, slot, stream))
    if kind == SVC_LOGNORMAL:
        sigma = math.sqrt(det_log(1.0 + cv * cv))
        mu = det_log(max(mean, 1e-300)) - 0.5 * sigma * sigma
        return ps(det_exp(mu + sigma * normal(draw(s, slot, stream))))
    if kind == SVC_GAMMA:
        shape = 1.0 / max(cv * cv, 1e-6)
        return ps(gamma(s, slot, stream, shape) * mean / shape)
    return ps(by_kind(s, slot, stream, SVC_EXPONENTIAL, mean, 0.0))
