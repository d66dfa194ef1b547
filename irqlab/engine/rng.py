"""Per-lane random streams that never depend on the other lanes, and a log
that gives the same bits on every machine.

Each lane has a 128-bit key from ``SeedSequence(seed, spawn_key)``. Draw ``c``
of stream ``s`` is a SplitMix64 finalizer applied to a Weyl sequence over
(key, s, c): counter-based, so a lane's draws depend only on its key, the
stream and how many draws that stream has made. Only integer operations and
IEEE-754 basic arithmetic are used (``frexp``, +, -, *, /), which every
machine rounds identically; ``numpy.log`` is not, as its SIMD and libm paths
may differ in the last bit between machines.
"""

from __future__ import annotations

import math

import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_MUL = np.uint64(0xD1B54A32D192ED03)
C1 = np.uint64(0xBF58476D1CE4E5B9)
C2 = np.uint64(0x94D049BB133111EB)
TWO_M53 = 2.0**-53


def lane_keys(seeds: list[tuple[int, tuple[int, ...]]]) -> np.ndarray:
    """``uint64[n, 2]`` keys for ``(seed, spawn_key)`` pairs."""
    out = np.empty((len(seeds), 2), dtype=np.uint64)
    cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
    for i, sk in enumerate(seeds):
        k = cache.get(sk)
        if k is None:
            k = np.random.SeedSequence(sk[0], spawn_key=sk[1]).generate_state(2, np.uint64)
            cache[sk] = k
        out[i] = k
    return out


def _mix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * C1
        z = (z ^ (z >> np.uint64(27))) * C2
        return z ^ (z >> np.uint64(31))


def uniform(keys: np.ndarray, stream: int, counter: np.ndarray) -> np.ndarray:
    """``float64[n]`` in [0, 1): draw ``counter[i]`` of ``stream`` for key ``keys[i]``."""
    with np.errstate(over="ignore"):
        s = np.uint64(stream + 1) * STREAM_MUL
        z = keys[:, 0] ^ s
        z = _mix(z + counter.astype(np.uint64) * GOLDEN + keys[:, 1])
        z = _mix(z ^ keys[:, 1])
    return (z >> np.uint64(11)).astype(np.float64) * TWO_M53


LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
SQRT_HALF = 0.7071067811865476
_ATANH_COEFFS = tuple(1.0 / k for k in range(25, 0, -2))  # 1/25 ... 1/3, 1/1


def det_log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive ``x`` (float64), bit-identical on every machine.

    ``log x = e ln 2 + 2 atanh(s)``, ``s = (m-1)/(m+1)`` with ``m`` in
    [sqrt(1/2), sqrt(2)); the atanh series is summed by Horner's rule to
    better than 1e-16 relative error.
    """
    x = np.asarray(x, dtype=np.float64)
    m, e = np.frexp(x)
    low = m < SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = np.where(low, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, _ATANH_COEFFS[0])
    for c in _ATANH_COEFFS[1:]:
        p = p * s2 + c
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * p)


def exponential(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Exponential variates of ``mean`` from uniforms ``u`` in [0, 1)."""
    return -mean * det_log(1.0 - u)


def det_exp(x: np.ndarray) -> np.ndarray:
    """``e**x`` (float64), bit-identical on every machine: ``x = k ln 2 + r`` with
    ``|r| <= ln2/2``, a degree-14 Taylor polynomial of ``e**r`` by Horner's rule
    (relative error below 1e-16), scaled exactly by ``2**k``."""
    x = np.asarray(x, dtype=np.float64)
    k = np.floor(x / (LN2_HI + LN2_LO) + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = np.full_like(r, _EXP_COEFFS[0])
    for c in _EXP_COEFFS[1:]:
        p = p * r + c
    return np.ldexp(p, k.astype(np.int64))


_EXP_COEFFS = tuple(1.0 / math.factorial(k) for k in range(14, -1, -1))  # 1/14! ... 1/1!, 1/0!

# Wichura's AS241 (PPND16), the normal quantile to about 1e-16 with +, *, /, sqrt and log only.
_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
      4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3)
_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
      2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4, 5.2264952788528545610e3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
      1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
      2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)


def _poly(c: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    p = np.full_like(x, c[-1])
    for a in reversed(c[:-1]):
        p = p * x + a
    return p


def normal(u: np.ndarray) -> np.ndarray:
    """Standard normal variates from uniforms ``u`` in [0, 1) by the inverse CDF (AS241);
    ``u = 0`` maps to the quantile of 2**-54."""
    u = np.clip(np.asarray(u, dtype=np.float64), 2.0 ** -54, 1.0 - 2.0 ** -54)
    q = u - 0.5
    r_c = 0.180625 - q * q
    central = q * _poly(_A, r_c) / _poly(_B, r_c)
    r = np.sqrt(-det_log(np.minimum(u, 1.0 - u)))
    near = r - 1.6
    far = r - 5.0
    tail = np.where(r <= 5.0, _poly(_C, near) / _poly(_D, near), _poly(_E, far) / _poly(_F, far))
    tail = np.where(q < 0, -tail, tail)
    return np.where(np.abs(q) <= 0.425, central, tail)
