"""irqlab-tokenbucket: a token-bucket limit on re-injections of a level-triggered pin."""

import numpy as np

from irqlab.plugins.api import NEVER, Mitigation, Param


class TokenBucket(Mitigation):
    """A token bucket per pin limits re-injections at EOI.

    Each EOI that would re-inject a pin whose line is still high spends one of
    the pin's tokens; with none left the re-injection is held back. A timer adds
    one token to every pin each ``1/rate`` (up to ``burst``), then re-injects the
    held pins, which spends the new token. So a storm is let through at most
    ``rate`` times per second after an initial ``burst``.
    """

    name = "token_bucket"
    version = "0.1.0"
    params = (
        Param("rate", "frequency", 1000.0, "tokens added per second", min=1.0),
        Param("burst", "int", 100, "bucket size: re-injections let through at once", min=1),
    )
    hooks = frozenset({"ioapic_eoi", "timer"})
    timers = 1
    kernel_hook = "irqlab_tokenbucket.kernel:hook"  # the same hooks for the per-lane kernel

    def kernel_state(self, n_pins, n_vcpus):
        return 2 * n_pins  # spent, then held, per pin

    def init(self, ctx):
        ctx.state.alloc("spent", (ctx.n_pins,), np.int64, 0)  # [L, pins] tokens missing
        ctx.state.alloc("held", (ctx.n_pins,), np.bool_, False)  # [L, pins] held back

    def on_ioapic_eoi(self, ctx, ev):
        spent = ctx.state["spent"]
        has = spent[ev.lanes, ev.pin] < ctx.param("burst", ev.lanes)
        spent[ev.lanes, ev.pin] += ev.asserted & has
        hold = ev.asserted & ~has
        ev.defer |= hold
        if hold.any():
            lanes = ev.lanes[hold]
            ctx.state["held"][lanes, ev.pin[hold]] = True
            self.arm(ctx, lanes[ctx.timer(lanes, 0) == NEVER])
            ctx.activated(lanes)

    def on_timer(self, ctx, ev):
        s, lanes = ctx.state, ev.lanes
        s["spent"][lanes] = np.maximum(s["spent"][lanes] - 1, 0) + s["held"][lanes]
        s["held"][lanes] = False
        self.arm(ctx, lanes[(s["spent"][lanes] > 0).any(axis=1)])  # timers fire once: re-arm
        ctx.service_ioapic(lanes)

    def arm(self, ctx, lanes):
        period = np.ceil(1e12 / ctx.param("rate", lanes)).astype(np.int64)  # ps per token
        ctx.set_timer(lanes, 0, ctx.now(lanes) + period)
