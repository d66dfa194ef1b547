"""Batch sizing: probe first, then seconds-long batches, split at the tail."""

from __future__ import annotations

from irqlab.experiments.plan import Batcher, PlannedRun


def _runs(n, key="k"):
    return [PlannedRun(f"{key}{i}", i, 0, 0, (0,), {}, key=key) for i in range(n)]


def test_the_first_batch_is_a_probe():
    """With no measurement yet a batch has probe_lanes lanes."""
    b = Batcher(_runs(1000), probe_lanes=8)
    key, batch = b.next_batch(workers=1)
    assert key == "k" and len(batch) == 8


def test_batches_grow_to_the_target_time():
    """After measurements, a batch holds about target_s / (seconds per lane) lanes."""
    b = Batcher(_runs(100_000), target_s=2.0, max_lanes=10_000, probe_lanes=8)
    sizes = []
    for _ in range(6):
        key, batch = b.next_batch(workers=1)
        sizes.append(len(batch))
        b.observe(key, len(batch), 0.001 * len(batch))  # 1 ms per lane
    assert sizes[0] == 8 and sizes[1] == 64  # growth is capped at 8x per step
    assert sizes[-1] == 2000


def test_max_lanes_caps_a_batch():
    """No batch exceeds max_lanes, however cheap a lane is."""
    b = Batcher(_runs(10_000), target_s=2.0, max_lanes=100, probe_lanes=100)
    key, batch = b.next_batch()
    b.observe(key, len(batch), 1e-6)
    assert max(len(b.next_batch()[1]) for _ in range(5)) == 100


def test_the_tail_is_split_across_workers():
    """A batch never takes more than pending / (2 x workers) lanes."""
    b = Batcher(_runs(40), target_s=100.0, probe_lanes=8)
    key, batch = b.next_batch(workers=2)
    b.observe(key, len(batch), 0.001)
    assert len(b.next_batch(workers=2)[1]) == 8  # ceil(32 / 4)


def test_every_run_is_batched_exactly_once_and_keys_are_not_mixed():
    """Batches partition the runs, one Program.key per batch."""
    runs = _runs(50, "a") + _runs(30, "b") + _runs(7, "a")[:0]
    b = Batcher(runs, probe_lanes=16)
    seen = []
    while b.pending:
        key, batch = b.next_batch(workers=2)
        assert {r.key for r in batch} == {key}
        seen += [r.run_id for r in batch]
    assert sorted(seen) == sorted(r.run_id for r in runs)
    assert b.next_batch() is None


def test_a_fixed_cost_per_call_is_fitted_and_batches_reach_the_target():
    """With t(n) = 0.5 s + 1 ms x n, batches converge on t = target_s (1500 lanes)."""
    b = Batcher(_runs(100_000), target_s=2.0, max_lanes=100_000, probe_lanes=8)
    sizes = []
    for _ in range(6):
        key, batch = b.next_batch(workers=1)
        sizes.append(len(batch))
        b.observe(key, len(batch), 0.5 + 0.001 * len(batch))
    assert sizes[-1] == 1500


def test_when_the_fixed_cost_alone_exceeds_the_target_batches_are_as_large_as_allowed():
    """If one call costs more than target_s whatever its size, take max_lanes (growth permitting)."""
    b = Batcher(_runs(100_000), target_s=1.0, max_lanes=500, probe_lanes=8)
    sizes = []
    for _ in range(4):
        key, batch = b.next_batch()
        sizes.append(len(batch))
        b.observe(key, len(batch), 3.0 + 1e-4 * len(batch))
    assert sizes == [8, 4, 64, 500]
