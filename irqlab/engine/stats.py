"""Per-lane counters both executors fill, and their conversion to a BatchResult.

Shapes: ``L`` lanes, ``V`` vCPUs, ``D`` devices, ``M`` mitigations, ``NB``
latency bins. Times are int64 picoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from irqlab.engine import idle as I
from irqlab.engine.idle import N_COUNTERS as N_IDLE
from irqlab.engine.program import Program
from irqlab.engine.result import EXIT_REASONS, USERSPACE_EXITS, BatchResult
from irqlab.engine.rng import det_log
from irqlab.plugins.api import NEVER

LN10 = 2.302585092994046
BINS_PER_DECADE = 10
LAT_MIN_PS = 10_000.0  # 10 ns: the first bin's lower edge
N_BINS = 2 + 9 * BINS_PER_DECADE  # under 10 ns, 10 ns .. 10 s, over 10 s (the exact max is kept)
EXIT_INDEX = {r: i for i, r in enumerate(EXIT_REASONS)}
UEXIT_INDEX = {r: i for i, r in enumerate(USERSPACE_EXITS)}


@dataclass
class Stats:
    """Counters of ``n`` lanes."""

    acc: np.ndarray  # [L, V, 4] time per mode
    stall_max: np.ndarray  # [L, V]
    first_irq: np.ndarray  # [L]
    ttp: np.ndarray  # [L] time to innermost progress, NEVER = none
    ttp_l2: np.ndarray  # [L]
    eoi_count: np.ndarray
    raised: np.ndarray
    delivered: np.ndarray
    coalesced: np.ndarray
    spurious: np.ndarray
    immediate: np.ndarray
    events: np.ndarray
    end_t: np.ndarray
    truncated: np.ndarray  # [L] bool
    zt_loop: np.ndarray  # [L] bool: stopped at a zero-time cycle
    zt_cycle: np.ndarray  # [L] records per turn of that cycle
    exits: np.ndarray  # [L, R]
    uexits: np.ndarray  # [L, 2]
    act: np.ndarray  # [L, M]
    dev_raised: np.ndarray  # [L, D]
    dev_delivered: np.ndarray
    dev_coalesced: np.ndarray
    dev_serviced: np.ndarray
    dev_redelivered: np.ndarray  # [L, D] deliveries of a line still asserted (no new arrival)
    dev_lost: np.ndarray  # [L, D] edges that hit a masked pin
    dev_pending: np.ndarray  # [L, D] bool: an interrupt raised and not yet delivered at the end
    lat_hist: np.ndarray  # [L, D, NB] uint16: the low 16 bits of each bin's count
    lat_max: np.ndarray  # [L, D]
    lat_min: np.ndarray  # [L, D] (NEVER while empty)
    lat_sum: np.ndarray  # [L, D] float64 (ps)
    lat_n: np.ndarray  # [L, D]
    # [L, D, NB] uint16, the high 16 bits; allocated when a bin first passes 65535
    lat_hist_hi: np.ndarray | None = None
    # guest actions (engine/routes.py), zeros unless given: [L] IOAPIC deliveries through a
    # stale KVM route; [L] ps level pins' Remote IRR stayed orphaned
    misrouted: np.ndarray = None  # type: ignore[assignment]
    dead_ps: np.ndarray = None  # type: ignore[assignment]
    idle: np.ndarray | None = None  # [L, idle.N_COUNTERS] int64 (irqlab.engine.idle); None: all 0

    def __post_init__(self) -> None:
        n = len(self.first_irq)
        if self.misrouted is None:
            self.misrouted = np.zeros(n, np.int64)
        if self.dead_ps is None:
            self.dead_ps = np.zeros(n, np.int64)

    @classmethod
    def zeros(cls, n: int, program: Program) -> "Stats":
        V, D, M = program.n_vcpus, len(program.devices), len(program.mitigations)
        i64 = np.int64
        return cls(
            acc=np.zeros((n, V, 4), i64), stall_max=np.zeros((n, V), i64),
            first_irq=np.full(n, NEVER, i64), ttp=np.full(n, NEVER, i64), ttp_l2=np.full(n, NEVER, i64),
            eoi_count=np.zeros(n, i64), raised=np.zeros(n, i64), delivered=np.zeros(n, i64),
            coalesced=np.zeros(n, i64), spurious=np.zeros(n, i64), immediate=np.zeros(n, i64),
            events=np.zeros(n, i64), end_t=np.zeros(n, i64), truncated=np.zeros(n, bool),
            zt_loop=np.zeros(n, bool), zt_cycle=np.zeros(n, i64),
            exits=np.zeros((n, len(EXIT_REASONS)), i64), uexits=np.zeros((n, len(USERSPACE_EXITS)), i64),
            act=np.zeros((n, M), i64),
            dev_raised=np.zeros((n, D), i64), dev_delivered=np.zeros((n, D), i64),
            dev_coalesced=np.zeros((n, D), i64), dev_serviced=np.zeros((n, D), i64),
            dev_redelivered=np.zeros((n, D), i64), dev_lost=np.zeros((n, D), i64),
            dev_pending=np.zeros((n, D), bool),
            lat_hist=np.zeros((n, D, N_BINS), np.uint16), lat_max=np.zeros((n, D), i64),
            lat_min=np.full((n, D), NEVER, i64),
            lat_sum=np.zeros((n, D), np.float64), lat_n=np.zeros((n, D), i64),
            idle=np.zeros((n, N_IDLE), i64),
        )

    @classmethod
    def concat(cls, parts: list["Stats"]) -> "Stats":
        if any(p.lat_hist_hi is not None for p in parts):
            for p in parts:
                p._hi()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in fields(cls) if getattr(parts[0], f.name) is not None})

    def _hi(self) -> np.ndarray:
        if self.lat_hist_hi is None:
            self.lat_hist_hi = np.zeros_like(self.lat_hist)
        return self.lat_hist_hi

    def add_latency(self, lanes: np.ndarray, di: int, lat: np.ndarray) -> None:
        """Count one service latency ``lat[i]`` (int64 ps) of device ``di`` in lane
        ``lanes[i]`` (distinct lanes)."""
        b = latency_bin(lat)
        low = self.lat_hist[lanes, di, b]
        full = low == 0xFFFF
        if full.any():  # carry into the high word
            self._hi()[lanes[full], di, b[full]] += 1
        self.lat_hist[lanes, di, b] = np.where(full, 0, low + 1)
        self.lat_max[lanes, di] = np.maximum(self.lat_max[lanes, di], lat)
        self.lat_min[lanes, di] = np.minimum(self.lat_min[lanes, di], lat)
        self.lat_sum[lanes, di] += lat
        self.lat_n[lanes, di] += 1

    def latency_counts(self, di: int, rows: slice = slice(None)) -> np.ndarray:
        """``int64[rows, NB]``: device ``di``'s latency histogram counts."""
        counts = self.lat_hist[rows, di].astype(np.int64)
        if self.lat_hist_hi is not None:
            counts += self.lat_hist_hi[rows, di].astype(np.int64) << 16
        return counts


def latency_bin(lat_ps: np.ndarray) -> np.ndarray:
    """Histogram bin of latencies (int64 ps): 10 log-spaced bins per decade from 1 ns."""
    x = np.maximum(lat_ps.astype(np.float64), 1.0) / LAT_MIN_PS
    b = np.floor(det_log(x) / LN10 * BINS_PER_DECADE).astype(np.int64) + 1
    return np.clip(np.where(lat_ps < LAT_MIN_PS, 0, b), 0, N_BINS - 1)


def bin_edges_ps() -> np.ndarray:
    """Lower edge of every latency bin, in ps (bin 0 starts at 0)."""
    k = np.arange(N_BINS - 1, dtype=np.float64)
    return np.concatenate([[0.0], LAT_MIN_PS * 10.0 ** (k / BINS_PER_DECADE)])


def hist_quantile(stats: Stats, di: int, q: float, chunk: int = 512) -> np.ndarray:
    """Quantile ``q`` of device ``di``'s latency histograms; NaN where empty.
    ``float64[L]``, in ps. Works in chunks of lanes to keep temporaries small.

    The bin holding the quantile is narrowed to the exact [min, max] of the samples
    and interpolated geometrically in it, so the estimate lies within [min, max]
    (exact when every sample is equal) and in the same bin as the true quantile:
    within a factor 10^(1/10) = 1.26 of it."""
    n = len(stats.lat_hist)
    return np.concatenate([_hist_quantile(stats.latency_counts(di, slice(i, i + chunk)), q,
                                          stats.lat_max[i:i + chunk, di], stats.lat_min[i:i + chunk, di])
                           for i in range(0, n, chunk)] or [np.zeros(0)])


def _hist_quantile(hist: np.ndarray, q: float, lat_max: np.ndarray, lat_min: np.ndarray) -> np.ndarray:
    edges = bin_edges_ps()
    upper = np.concatenate([edges[1:], [np.inf]])
    cum = np.cumsum(hist, axis=-1)
    total = cum[..., -1]
    target = q * total
    b = np.argmax(cum >= np.maximum(target, 1e-9)[..., None], axis=-1)
    below = np.take_along_axis(cum, b[..., None], -1)[..., 0] - np.take_along_axis(hist, b[..., None], -1)[..., 0]
    inbin = np.maximum(np.take_along_axis(hist, b[..., None], -1)[..., 0], 1)
    frac = np.clip((target - below) / inbin, 0.0, 1.0)
    top = np.maximum(lat_max, 0).astype(np.float64)
    bottom = np.minimum(np.maximum(lat_min, 0), top).astype(np.float64)
    lo = np.clip(edges[b], bottom, top)
    hi = np.clip(upper[b], bottom, top)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(lo > 0, lo * (hi / np.maximum(lo, 1e-300)) ** frac, lo + (hi - lo) * frac)
    val = np.clip(val, bottom, top)
    return np.where(total > 0, val, np.nan)


def build_result(program: Program, stats: Stats, params: dict[str, np.ndarray],
                 status: list[str], error: list[str | None], traces: dict,
                 extra: dict[str, np.ndarray] | None = None,
                 series: dict[str, np.ndarray] | None = None) -> BatchResult:
    """Turn counters into the metric arrays of a :class:`BatchResult`."""
    n = len(status)
    ns = 1e-3
    acc = stats.acc.astype(np.float64)
    total = acc.sum(axis=(1, 2))
    V = program.n_vcpus
    duration = stats.end_t.astype(np.float64)
    window = np.minimum(params["run.livelock_window"], params["run.duration"])
    stall = stats.stall_max.max(axis=1) if V else np.zeros(n, np.int64)
    failed = np.array([s != "ok" for s in status], dtype=bool)

    def nan_never(x: np.ndarray) -> np.ndarray:
        return np.where(x == NEVER, np.nan, x.astype(np.float64) * ns)

    metrics = {
        "l2_time_ns": acc[:, :, 2].sum(1) * ns,
        "l1_time_ns": acc[:, :, 1].sum(1) * ns,
        "l0_time_ns": acc[:, :, 0].sum(1) * ns,
        "userspace_time_ns": acc[:, :, 3].sum(1) * ns,
        "l2_fraction": np.where(total > 0, acc[:, :, 2].sum(1) / np.maximum(duration * V, 1), 0.0),
        "time_to_l2_progress_ns": nan_never(stats.ttp_l2),
        "time_to_progress_ns": nan_never(stats.ttp),
        "livelock": (stall >= window) & (stall > 0),
        "livelock_max_ns": stall.astype(np.float64) * ns,
        "eoi_count": stats.eoi_count,
        "interrupts_raised": stats.raised,
        "interrupts_delivered": stats.delivered,
        "interrupts_coalesced": stats.coalesced,
        "spurious_count": stats.spurious,
        "immediate_exits": stats.immediate,
        "exits_total": stats.exits.sum(1) + (stats.idle[:, I.HLT_EXITS] if stats.idle is not None else 0),
        "events": stats.events,
        "truncated": stats.truncated,
        "zero_time_loop": stats.zt_loop,
        "zero_time_cycle": stats.zt_cycle,
        "sim_time_ns": duration * ns,
        **(idle_metrics(stats.idle) if stats.idle is not None else no_idle_metrics(n)),
    }
    if not program.nested:
        metrics["time_to_l2_progress_ns"] = np.full(n, np.nan)
    for k, v in metrics.items():
        if failed.any():
            v = v.astype(np.float64) if v.dtype.kind == "f" else v.copy()
            v[failed] = np.nan if v.dtype.kind == "f" else 0
            metrics[k] = v
    exits = {r: stats.exits[:, i] for r, i in EXIT_INDEX.items()}
    uexits = {r: stats.uexits[:, i] for r, i in UEXIT_INDEX.items()}
    acts = {mi.label: stats.act[:, mi.index] for mi in program.mitigations}
    devices = {}
    for d in program.devices:
        i = d.index
        lat_n = stats.lat_n[:, i]
        devices[d.name] = {
            "raised": stats.dev_raised[:, i],
            "delivered": stats.dev_delivered[:, i],
            "coalesced": stats.dev_coalesced[:, i],
            "lost": stats.dev_lost[:, i],
            "pending": stats.dev_pending[:, i].astype(np.int64),
            "redelivered": stats.dev_redelivered[:, i],
            "serviced": stats.dev_serviced[:, i],
            "latency_p50_ns": hist_quantile(stats, i, 0.5) * ns,
            "latency_p99_ns": hist_quantile(stats, i, 0.99) * ns,
            "latency_max_ns": np.where(lat_n > 0, stats.lat_max[:, i] * ns, np.nan),
            "latency_mean_ns": np.where(lat_n > 0, stats.lat_sum[:, i] / np.maximum(lat_n, 1) * ns, np.nan),
        }
        if program.histograms:
            devices[d.name]["latency_hist"] = stats.latency_counts(i)
    extra = dict(extra or {})
    if "routes" in program.mechanisms:
        from irqlab.engine.routes import route_metrics

        extra.update(route_metrics(stats))
    return BatchResult(n=n, status=status, error=error, metrics=metrics, exits=exits,
                       userspace_exits=uexits, mitigation_activations=acts, devices=devices,
                       extra=extra, series=series, traces=traces,
                       vcpu_time_ns=acc * ns)


def no_idle_metrics(n: int) -> dict[str, np.ndarray]:
    """The idle metrics of ``n`` lanes without idle vCPUs: zeros, each one value every lane
    shares (a read-only broadcast, no memory per lane)."""
    return {k: np.broadcast_to(v, (n,)) for k, v in idle_metrics(np.zeros((1, N_IDLE), np.int64)).items()}


def idle_metrics(idle: np.ndarray) -> dict[str, np.ndarray]:
    """The idle-vCPU metrics (result.METRICS) from ``Stats.idle`` [L, N_IDLE]."""
    return {"halt_exits": idle[:, I.HLT_EXITS], "ipis": idle[:, I.IPIS], "work_ns": idle[:, I.WORK] * 1e-3, "work_done_ns": idle[:, I.WORK_DONE] * 1e-3,
            "halt_polls_ok": idle[:, I.POLL_OK], "halt_poll_ns": idle[:, I.POLL_PS] * 1e-3,
            "halt_wait_ns": idle[:, I.WAIT_PS] * 1e-3}


class MetricView:
    """What a metric plugin's ``compute`` sees: built-in metrics and raw counters."""

    def __init__(self, result: BatchResult, stats: Stats, rows: np.ndarray | None = None) -> None:
        self._result = result
        self._stats = stats
        self._rows = rows

    def metric(self, name: str) -> np.ndarray:
        arr = np.asarray(self._result.metrics[name], dtype=np.float64)
        return arr if self._rows is None else arr[self._rows]

    def counter(self, name: str) -> np.ndarray:
        if name == "lat_hist":  # [L, D, NB] whole counts, whatever the storage
            s = self._stats
            arr = np.stack([s.latency_counts(d) for d in range(s.lat_hist.shape[1])], axis=1)
        else:
            arr = getattr(self._stats, name)
        return arr if self._rows is None else arr[self._rows]


def series_arrays(program: Program, samples: list[list[tuple[float, ...]]]) -> dict[str, np.ndarray] | None:
    """Per-lane sample lists -> ``{field: float64[L, S]}`` padded with NaN."""
    if not program.series_fields:
        return None
    names = ("t_ns",) + program.series_fields
    width = max((len(s) for s in samples), default=0)
    out = {f: np.full((len(samples), width), np.nan) for f in names}
    for i, rows in enumerate(samples):
        if rows:
            block = np.asarray(rows, dtype=np.float64)
            for j, f in enumerate(names):
                out[f][i, : len(rows)] = block[:, j]
    return out


def finish_batch(program: Program, stats: Stats, params: dict[str, np.ndarray], status: list[str],
                 error: list[str | None], traces: dict, series: dict | None) -> BatchResult:
    """Build the BatchResult and add the metric plugins' columns.

    A metric plugin that raises is retried lane by lane, so only the lanes it
    fails on are marked failed (the others' values do not depend on the batch).
    """
    result = build_result(program, stats, params, status, error, traces, series=series)
    for label, plugin, _ in program.metrics:
        cols = type(plugin).columns
        try:
            values = plugin.compute(MetricView(result, stats))  # type: ignore[attr-defined]
            for c in cols:
                result.extra[c.name] = np.asarray(values[c.name], dtype=np.float64)
        except Exception:  # noqa: BLE001 - isolate the failing lanes below
            for c in cols:
                result.extra[c.name] = np.full(result.n, np.nan)
            for i in range(result.n):
                try:
                    values = plugin.compute(MetricView(result, stats, np.array([i])))  # type: ignore[attr-defined]
                    for c in cols:
                        result.extra[c.name][i] = float(np.asarray(values[c.name])[0])
                except Exception as e:  # noqa: BLE001
                    result.status[i] = "failed"
                    result.error[i] = f"metric plugin '{label}' raised {type(e).__name__}: {e}"
    return result
