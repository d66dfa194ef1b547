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
