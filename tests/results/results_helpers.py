"""Hand-built batch results and sweep/run identities for the results tests."""

from __future__ import annotations

import numpy as np

from irqlab.engine.result import DEVICE_METRICS, EXIT_REASONS, METRICS, USERSPACE_EXITS, BatchResult
from irqlab.results.store import RunInfo, SweepInfo

PATHS = ("mitigation.qemu_eoi_throttle.threshold", "mitigation.qemu_eoi_throttle.delay")


def make_result(n: int, *, seed: int = 0, devices=("uhci",), series: bool = False,
                fail: tuple[int, ...] = (), histogram: bool = False) -> BatchResult:
    """A BatchResult of ``n`` lanes with pseudo-random but deterministic metrics."""
    rng = np.random.default_rng(seed)
    metrics = {}
    for name, (typ, _, _) in METRICS.items():
        if typ == "float":
            v = rng.random(n) * 1e6
            if name == "time_to_l2_progress_ns":
                v[::3] = np.nan  # never progressed
        elif typ == "int":
            v = rng.integers(0, 10**9, n, dtype=np.int64)
        else:
            v = rng.random(n) < 0.5
        metrics[name] = v
    devs = {d: {m: (rng.random(n) * 1e3 if t == "float" else rng.integers(0, 1000, n))
                for m, (t, _, _) in DEVICE_METRICS.items()} for d in devices}
    if histogram:
        for d in devices:
            devs[d]["latency_hist"] = rng.integers(0, 50, (n, 6))
    status = ["failed" if i in fail else "ok" for i in range(n)]
    error = ["boom" if i in fail else None for i in range(n)]
    ser = None
    if series:
        ser = {"t_ns": np.arange(4) * 1e6, "l2_fraction": rng.random((n, 4))}
    return BatchResult(
        n=n, status=status, error=error, metrics=metrics,
        exits={r: rng.integers(0, 100, n) for r in EXIT_REASONS},
        userspace_exits={r: rng.integers(0, 100, n) for r in USERSPACE_EXITS},
        mitigation_activations={"qemu_eoi_throttle": rng.integers(0, 5, n)},
        devices=devs, extra={"exits_per_s": rng.random(n)}, series=ser)


def sweep_info(sweep_id: str = "s1", name: str = "storm", n_planned: int = 8) -> SweepInfo:
    """A SweepInfo sweeping the QEMU EOI throttle's threshold and delay."""
    return SweepInfo(
        sweep_id=sweep_id, name=name, scenario_text="run { duration 1ms }\n",
        scenario_hash="abc123", scenario_file="storm.scn", command="irqlab sweep storm.scn",
        irqlab_version="0.1.0", plugin_versions={"mitigation.qemu_eoi_throttle": "1.0"},
        git_commit="deadbeef", git_dirty=False, host="testhost",
        started_at="2024-01-01T00:00:00+00:00", planned_runs=n_planned, param_paths=PATHS,
        base_seed=42)


def run_infos(n: int, *, start: int = 0, prefix: str = "r", reps: int = 2) -> list[RunInfo]:
    """``n`` runs over a threshold x delay grid with ``reps`` replications."""
    out = []
    for k in range(start, start + n):
        point, rep = divmod(k, reps)
        out.append(RunInfo(
            run_id=f"{prefix}{k:06d}", point=point, replication=rep, seed=1000 + k,
            spawn_key=(point, rep),
            params={PATHS[0]: [10, 100, 1000][point % 3], PATHS[1]: [0.001, 0.01][point // 3 % 2]},
            wall_s=0.01 * k))
    return out


def lane_of(res: BatchResult, i: int) -> BatchResult:
    """Lane ``i`` of ``res`` as a one-lane BatchResult."""
    sl = slice(i, i + 1)
    return BatchResult(
        n=1, status=[res.status[i]], error=[res.error[i]],
        metrics={k: v[sl] for k, v in res.metrics.items()},
        exits={k: v[sl] for k, v in res.exits.items()},
        userspace_exits={k: v[sl] for k, v in res.userspace_exits.items()},
        mitigation_activations={k: v[sl] for k, v in res.mitigation_activations.items()},
        devices={d: {m: v[sl] for m, v in c.items()} for d, c in res.devices.items()},
        extra={k: v[sl] for k, v in res.extra.items()},
        series=None if res.series is None else
        {k: (v[sl] if k != "t_ns" else v) for k, v in res.series.items()})


def fake_rerun(calls: list | None = None, tweak=None):
    """A stand-in for irqlab.experiments.rerun that recomputes the ``written`` fixture's lanes."""
    def rerun(scenario_text, scenario_file, params, seed, spawn_key):
        if calls is not None:
            calls.append((scenario_text, scenario_file, dict(params), seed, tuple(spawn_key)))
        k = int(seed) - 1000
        res = (make_result(6, fail=(4,), series=True) if k < 6
               else make_result(6, seed=1, series=True))
        out = lane_of(res, k % 6)
        if tweak:
            tweak(out)
        return out
    return rerun


def write_two_sweeps(store) -> None:
    """Sweep s1 (14 runs: a failure retried in a rewritten shard, a device added by a later
    batch, series and histograms) and sweep s2 'storm' (2 runs, two devices), into ``store``."""
    store.begin_sweep(sweep_info())
    store.write_batch("s1", run_infos(6), make_result(6, fail=(4,), series=True, histogram=True))
    store.write_batch("s1", run_infos(6, start=6), make_result(6, seed=1, series=True))
    store.write_batch("s1", run_infos(6), make_result(6, seed=5))  # retries r000004
    store.write_batch("s1", run_infos(2, start=12), make_result(2, devices=("uhci", "nic")))
    store.begin_sweep(sweep_info("s2", "storm"))
    store.write_batch("s2", run_infos(2, prefix="q"), make_result(2, devices=("a", "b")))
    store.finish_sweep("s1", "2024-01-01T01:00:00+00:00", "done")
