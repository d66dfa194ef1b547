"""Built-in device models: how arrivals become interrupts and what service does."""

from __future__ import annotations

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.plugins.api import DeviceModel


class Generic(DeviceModel):
    """A device with a status register, like UHCI: every arrival raises the
    interrupt (a level line stays asserted while work is pending); one service
    handles all pending work and lowers the line."""

    name = "generic"
    version = "1.0"
    kernel_kind = K.DEV_GENERIC  # irqlab.engine.kernel runs it natively

    def on_arrival(self, ctx, lanes):
        return np.ones(len(lanes), dtype=bool)

    def on_service(self, ctx, lanes):
        handled = ctx.pending(lanes) > 0
        ctx.set_pending(lanes, np.zeros(len(lanes), dtype=np.int64))
        return handled, np.ones(len(lanes), dtype=bool)


class Queue(DeviceModel):
    """A device with a completion queue: each service handles one completion;
    the line stays asserted while completions remain (a slow driver falls
    behind and the line never drops)."""

    name = "queue"
    version = "1.0"
    kernel_kind = K.DEV_QUEUE  # irqlab.engine.kernel runs it natively

    def on_arrival(self, ctx, lanes):
        return np.ones(len(lanes), dtype=bool)

    def on_service(self, ctx, lanes):
        pending = ctx.pending(lanes)
        handled = pending > 0
        left = np.maximum(pending - 1, 0)
        ctx.set_pending(lanes, left)
        return handled, left == 0
