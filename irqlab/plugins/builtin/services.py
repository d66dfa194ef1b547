"""Built-in service-time distributions: how long one service of a device takes.

Each draws from the device's own service stream (``ctx.uniform``), one job at a
time, with the deterministic transforms of :mod:`irqlab.engine.rng` (no libm),
so a lane's times are bit-identical in every batch and backend. Times are
``int64`` picoseconds, rounded to the nearest.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.engine.rng import det_exp, det_log, normal
from irqlab.plugins.api import Param, ServiceTime

MEAN = Param("mean", "time", doc="mean service time", min=0)


def _ps(x: np.ndarray) -> np.ndarray:
    return np.floor(np.maximum(x, 0.0) + 0.5).astype(np.int64)


def gamma_variates(ctx, lanes: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Gamma(``shape``, 1) variates, Marsaglia and Tsang (2000): a normal and a uniform
    per try until accepted; shape < 1 via Gamma(shape + 1) * U**(1/shape)."""
    shape = np.asarray(shape, dtype=np.float64)
    boost = shape < 1.0
    d = np.where(boost, shape + 1.0, shape) - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.zeros(len(lanes))
    todo = np.arange(len(lanes))
    while len(todo):
        z = normal(ctx.uniform(lanes[todo]))
        u = 1.0 - ctx.uniform(lanes[todo])  # (0, 1]
        v = 1.0 + c[todo] * z
        v3 = v * v * v
        ok = v > 0
        ok[ok] = det_log(u[ok]) < 0.5 * z[ok] * z[ok] + d[todo][ok] * (1.0 - v3[ok] + det_log(v3[ok]))
        out[todo[ok]] = d[todo][ok] * v3[ok]
        todo = todo[~ok]
    if boost.any():
        b = np.flatnonzero(boost)
        u = 1.0 - ctx.uniform(lanes[b])
        out[b] *= det_exp(det_log(u) / shape[b])
    return out


BODY_DISTS = ("constant", "exponential", "uniform", "lognormal", "gamma")


def sample_by_cv(kind: str, ctx, lanes: np.ndarray, mean: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """``int64[n]`` ps: one time of distribution ``kind`` with ``mean`` (ps) and coefficient of
    variation ``cv`` (a policy's random body time): uniform over mean ± min(cv √3, 1) mean,
    lognormal with sigma² = ln(1 + cv²), gamma with shape 1/cv², exponential (cv 1)."""
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (len(lanes),)).copy()
    cv = np.broadcast_to(np.asarray(cv, dtype=np.float64), (len(lanes),)).copy()
    if kind == "constant":
        return _ps(mean)
    if kind == "exponential":
        return _ps(ctx.exponential(lanes, mean))
    if kind == "uniform":
        half = np.minimum(cv * np.sqrt(3.0), 1.0) * mean
        return _ps(mean - half + 2.0 * half * ctx.uniform(lanes))
    if kind == "lognormal":
        sigma = np.sqrt(det_log(1.0 + cv * cv))
        mu = det_log(np.maximum(mean, 1e-300)) - 0.5 * sigma * sigma
        return _ps(det_exp(mu + sigma * normal(ctx.uniform(lanes))))
    shape = 1.0 / np.maximum(cv * cv, 1e-6)
    return _ps(gamma_variates(ctx, lanes, shape) * mean / shape)


class Constant(ServiceTime):
    """Every service takes ``mean``."""

    name = "constant"
    version = "1.0"
    kernel_kind = K.SVC_CONSTANT  # irqlab.engine.kernel_service runs it natively
    params = (MEAN,)

    def sample(self, ctx, lanes):
        return ctx.param("mean", lanes).astype(np.int64)


class Exponential(ServiceTime):
    """Exponential service times of ``mean`` (variance mean²): the M in M/M/1."""

    name = "exponential"
    version = "1.0"
    kernel_kind = K.SVC_EXPONENTIAL  # irqlab.engine.kernel_service runs it natively
    params = (MEAN,)

    def sample(self, ctx, lanes):
        return _ps(ctx.exponential(lanes, ctx.param("mean", lanes).astype(np.float64)))


class Uniform(ServiceTime):
    """Uniform service times in [``low``, ``high``)."""

    name = "uniform"
    version = "1.0"
    kernel_kind = K.SVC_UNIFORM  # irqlab.engine.kernel_service runs it natively
    params = (Param("low", "time", doc="shortest service time", min=0),
              Param("high", "time", doc="longest service time", min=0))

    def sample(self, ctx, lanes):
        lo = ctx.param("low", lanes).astype(np.float64)
        hi = np.maximum(ctx.param("high", lanes).astype(np.float64), lo)
        return _ps(lo + (hi - lo) * ctx.uniform(lanes))


class Lognormal(ServiceTime):
    """Lognormal service times of ``mean`` whose logarithm has standard deviation
    ``sigma`` (so ``mu = ln(mean) - sigma²/2``; variance mean² (e^(sigma²) - 1))."""

    name = "lognormal"
    version = "1.0"
    kernel_kind = K.SVC_LOGNORMAL  # irqlab.engine.kernel_service runs it natively
    params = (MEAN, Param("sigma", "float", 0.5, "standard deviation of the log", min=0))

    def sample(self, ctx, lanes):
        mean = np.maximum(ctx.param("mean", lanes).astype(np.float64), 1e-300)
        sigma = ctx.param("sigma", lanes).astype(np.float64)
        mu = det_log(mean) - 0.5 * sigma * sigma
        return _ps(det_exp(mu + sigma * normal(ctx.uniform(lanes))))


class Gamma(ServiceTime):
    """Gamma service times of ``mean`` and ``shape`` k (variance mean²/k; k = 1 is
    exponential, large k nearly constant)."""

    name = "gamma"
    version = "1.0"
    kernel_kind = K.SVC_GAMMA  # irqlab.engine.kernel_service runs it natively
    params = (MEAN, Param("shape", "float", 2.0, "shape k", min=1e-3))

    def sample(self, ctx, lanes):
        shape = ctx.param("shape", lanes).astype(np.float64)
        mean = ctx.param("mean", lanes).astype(np.float64)
        return _ps(gamma_variates(ctx, lanes, shape) * mean / shape)


def load_samples(path: str, span=None) -> np.ndarray:
    """``int64[n]`` ps: the samples of an ``empirical`` file (read as a trace file:
    :func:`irqlab.plugins.builtin.arrivals.load_timestamps`); a ScenarioError at
    ``span`` (the ``file`` argument) when it holds no sample."""
    from irqlab.errors import ScenarioError
    from irqlab.plugins.builtin.arrivals import load_timestamps

    samples = load_timestamps(path, span)
    if not len(samples):
        raise ScenarioError(f"service sample file '{path}' has no samples", span)
    return samples


class Empirical(ServiceTime):
    """Service times drawn uniformly from a file of measured samples, one per line
    (the format of the ``trace`` arrival's files: ``# comments``, a bare number is
    seconds, or give a unit: ``12.5us``)."""

    name = "empirical"
    version = "1.0"
    kernel_kind = K.SVC_EMPIRICAL  # irqlab.engine.kernel_service runs it natively (its samples in the lane's state)
    params = (Param("file", "file", doc="path of the sample file, relative to the scenario",
                    validate=lambda path, span: load_samples(path, span)),)

    def init(self, ctx):
        self.samples = self.kernel_times()

    def sample(self, ctx, lanes):
        n = len(self.samples)
        i = np.minimum((ctx.uniform(lanes) * n).astype(np.int64), n - 1)
        return self.samples[i]

    def kernel_times(self) -> np.ndarray:
        """The file's samples (``int64[n]`` ps, sorted)."""
        return load_samples(self.config["file"])
