"""Built-in metric plugins: extra per-run columns computed from a batch's final state."""

from __future__ import annotations

import numpy as np

from irqlab.plugins.api import Column, Metric


class Rates(Metric):
    """Exits, EOIs and delivered interrupts per second of simulated time."""

    name = "rates"
    version = "1.0"
    columns = (
        Column("exits_per_s", "float", "1/s", "VM exits per second"),
        Column("eois_per_s", "float", "1/s", "LAPIC EOIs per second"),
        Column("irqs_per_s", "float", "1/s", "interrupts delivered per second"),
    )

    def compute(self, view):
        seconds = np.maximum(view.metric("sim_time_ns"), 1.0) / 1e9
        return {
            "exits_per_s": view.metric("exits_total") / seconds,
            "eois_per_s": view.metric("eoi_count") / seconds,
            "irqs_per_s": view.metric("interrupts_delivered") / seconds,
        }
