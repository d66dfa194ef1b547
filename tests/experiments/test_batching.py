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
    """With a cost all per lane (1 ms), a batch settles at target_s / 1 ms = 2000 lanes."""
    b = Batcher(_runs(100_000), target_s=2.0, max_lanes=10_000, probe_lanes=8)
    sizes = []
    for _ in range(8):
        key, batch = b.next_batch(workers=1)
        sizes.append(len(batch))
        b.observe(key, len(batch), 0.001 * len(batch), max_events=100)
    assert sizes[:3] == [8, 64, 512]  # growth is at most 8x per batch
    assert sizes[-1] == 2000


def test_slow_batches_shrink_by_at_most_half():
    """A batch that took 10x the target makes the next one half as large, not a tenth."""
    b = Batcher(_runs(1000), target_s=1.0, probe_lanes=64)
    key, batch = b.next_batch()
    b.observe(key, len(batch), 10.0, max_events=100)
    assert len(b.next_batch()[1]) == 32


def test_a_fixed_cost_per_step_grows_batches_fast():
    """When a step costs nearly the same for 8 or 64 lanes, batches grow to thousands."""
    b = Batcher(_runs(100_000), target_s=2.0, max_lanes=4096, probe_lanes=8)
    sizes = []
    for _ in range(5):
        key, batch = b.next_batch(workers=1)
        n = len(batch)
        sizes.append(n)
        b.observe(key, n, 3000 * (400e-6 + 1e-7 * n), max_events=3000)  # 1.2 s at 8 lanes
    assert sizes[:3] == [8, 64, 512]  # x8 to measure a second size, then at most x8 steps
    assert sizes[3] == 4000  # E (c0 + c1 n) = 2 E c0: the fixed cost is half the batch


def test_time_is_rescaled_to_the_longest_lanes():
    """A fast batch of light lanes does not make the next (heavier) batch huge: its time
    is rescaled to the most events seen in the key."""
    b = Batcher(_runs(100_000), target_s=1.0, max_lanes=100_000, probe_lanes=100)
    key, batch = b.next_batch()
    b.observe(key, 100, 1.0, max_events=10_000)
    key, batch = b.next_batch()
    b.observe(key, 100, 0.1, max_events=1000, )  # same per-step cost, lighter lanes
    assert len(b.next_batch()[1]) == 100


def test_a_workers_first_batch_is_not_used_once_another_exists():
    """The warm-up batch (imports) is ignored once a regular measurement exists."""
    b = Batcher(_runs(100_000), target_s=1.0, probe_lanes=8)
    key, _ = b.next_batch()
    b.observe(key, 8, 5.0, max_events=100, warm_up=True)
    assert len(b.next_batch()[1]) == 4  # only the warm-up: shrink by half
    b.observe(key, 4, 0.5, max_events=100)
    assert len(b.next_batch()[1]) == 32  # from the regular one: faster than target, x8
    b.observe(key, 32, 4.0, max_events=100)
    assert len(b.next_batch()[1]) == 16  # all cost per lane (no fixed cost): 32 x 1 / 4 ... halved


def test_max_lanes_caps_a_batch():
    """No batch exceeds max_lanes, however cheap a lane is."""
    b = Batcher(_runs(10_000), target_s=2.0, max_lanes=100, probe_lanes=100)
    key, batch = b.next_batch()
    b.observe(key, len(batch), 1e-6, max_events=10)
    assert max(len(b.next_batch()[1]) for _ in range(5)) == 100


def test_the_tail_is_split_evenly_across_workers():
    """When the runs left fit in one batch per worker, they go in `workers` equal pieces."""
    b = Batcher(_runs(40), target_s=100.0, probe_lanes=8)
    key, batch = b.next_batch(workers=2)
    b.observe(key, len(batch), 0.001, max_events=10)
    assert [len(b.next_batch(workers=2)[1]) for _ in range(2)] == [16, 16]
    assert b.next_batch(workers=2) is None


def test_every_run_is_batched_exactly_once_and_keys_are_not_mixed():
    """Batches partition the runs, one Program.key per batch."""
    runs = _runs(50, "a") + _runs(30, "b")
    b = Batcher(runs, probe_lanes=16)
    seen = []
    while b.pending:
        key, batch = b.next_batch(workers=2)
        assert {r.key for r in batch} == {key}
        seen += [r.run_id for r in batch]
    assert sorted(seen) == sorted(r.run_id for r in runs)
    assert b.next_batch() is None


def test_the_next_size_of_an_empty_queue_is_asked_safely():
    """Once every run is cut, asking the next batch's size (what to plan) cuts no tail."""
    b = Batcher(_runs(10), probe_lanes=10)
    key, batch = b.next_batch(workers=2)
    b.observe(key, len(batch), 0.5, max_events=10)
    assert b.pending == 0 and b.next_size(workers=2) >= 1 and b.tail is None
