"""Built-in storm mitigations, each as the source it models does it.

Counters live in per-lane state arrays; timers are the mitigation's own.
See docs/model.md for the sources and the choices made where they are silent.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.plugins.api import NEVER, Mitigation, Param, Site


def successive_eoi(ctx, ev, reached) -> np.ndarray:
    """The successive-EOI counter both KVM and QEMU keep per pin (``irq_eoi[pin]``): an
    EOI that finds the pin unmasked with its line high increments it, any other resets it;
    where ``reached(count, threshold)`` the counter is reset and the re-delivery deferred.
    Returns the lanes' mask of deferrals (``bool[n]``)."""
    cnt = ctx.state["irq_eoi"]
    c = np.where(ev.asserted, cnt[ev.lanes, ev.pin] + 1, 0)
    hit = ev.asserted & reached(c, ctx.param("threshold", ev.lanes))
    cnt[ev.lanes, ev.pin] = np.where(hit, 0, c)
    ev.defer |= hit
    return hit


class KvmEoiDelay(Mitigation):
    """KVM's in-kernel IOAPIC successive-EOI delay (arch/x86/kvm/ioapic.c, 184564efae4d).

    On an EOI that finds the pin unmasked and its line still high, the pin's
    counter is incremented; when it *equals* ``threshold`` it is reset and
    re-delivery waits for the delayed work ``eoi_inject``
    (``schedule_delayed_work(..., HZ / 100)``, not re-armed while pending),
    otherwise the pin is re-serviced at once. The delay is ``HZ / 100`` jiffies
    of the host's ``hz`` (integer division: 10 ms at HZ 100, 300 and 1000, 8 ms
    at HZ 250), and the work runs at a jiffy tick: at ``(now // tick + d) * tick``
    with ``tick = 1 s / hz`` (**Choice:** jiffies count from the run's start).
    A nonzero ``delay`` replaces HZ/100 and is rounded up to whole jiffies. An
    EOI that finds the pin masked or its line low resets the counter. When the
    work runs it services every level pin with irr set and Remote IRR clear.
    """

    name = "kvm_eoi_delay"
    version = "1.0"
    kernel_kind = K.MIT_KVM_EOI_DELAY  # irqlab.engine.kernel runs it natively
    params = (
        Param("threshold", "int", 10000, "successive EOIs with the line high before a delay "
              "(IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT)", min=1),
        Param("hz", "int", 1000, "the host kernel's HZ (CONFIG_HZ): the delay is HZ/100 jiffies",
              min=1),
        Param("delay", "time", 0, "0: HZ/100 jiffies, as KVM; else this delay, rounded up to "
              "whole jiffies", min=0),
    )
    hooks = frozenset({"ioapic_eoi", "timer"})
    timers = 1

    @staticmethod
    def due(now: np.ndarray, hz: np.ndarray, delay: np.ndarray) -> np.ndarray:
        """When the delayed work runs (int64 ps): at the jiffy tick ``d`` ticks after the
        current one, ``d = hz // 100`` or ``ceil(delay / tick)``."""
        tick = (1_000_000_000_000 // hz).astype(np.int64)
        d = np.where(delay > 0, -(-delay // tick), hz // 100)
        return (now // tick + d) * tick

    @classmethod
    def check(cls, site: Site):
        if site.irqchip == "none":
            yield ("kvm_eoi_delay is KVM's; a bare-metal scenario has no KVM", None)
        elif site.irqchip != "kernel":
            yield ("kvm_eoi_delay is KVM's in-kernel IOAPIC mitigation; it needs irqchip kernel "
                   "(with split, use qemu_eoi_throttle)", None)

    def init(self, ctx):
        ctx.state.alloc("irq_eoi", (ctx.n_pins,), np.int64, 0)

    def on_ioapic_eoi(self, ctx, ev):
        hit = successive_eoi(ctx, ev, np.equal)  # "when it *equals* 10000"
        if hit.any():
            lanes = ev.lanes[hit]
            idle = lanes[ctx.timer(lanes, 0) == NEVER]  # schedule_delayed_work: no-op if pending
            ctx.set_timer(idle, 0, self.due(ctx.now(idle), ctx.param("hz", idle), ctx.param("delay", idle)))
            ctx.activated(lanes)
            ctx.trace(lanes, "kvm_ioapic_delayed_eoi_inj", [f"pin {p}" for p in ev.pin[hit]])

    def on_timer(self, ctx, ev):
        ctx.set_timer(ev.lanes, 0, np.full(len(ev.lanes), NEVER, dtype=np.int64))
        ctx.service_ioapic(ev.lanes, level_only=True)


class QemuEoiThrottle(Mitigation):
    """QEMU's port of KVM's delay to its userspace IOAPIC (hw/intc/ioapic.c, 958a01dab8e0).

    On an EOI broadcast that clears Remote IRR of an unmasked pin whose line is
    still high, the pin's counter is incremented; at ``>= threshold`` it is
    reset and the delayed-service timer is set ``delay`` ahead, only ever moving
    earlier (``timer_mod_anticipate``); otherwise the pin is serviced at once. A
    masked or low pin resets the counter, and so does any write to the pin's
    redirection entry. The timer services every pin.
    """

    name = "qemu_eoi_throttle"
    version = "1.0"
    kernel_kind = K.MIT_QEMU_EOI_THROTTLE  # irqlab.engine.kernel runs it natively
    params = (
        Param("threshold", "int", 10000, "successive EOIs with the line high before a delay "
              "(SUCCESSIVE_IRQ_MAX_COUNT)", min=1),
        Param("delay", "time", 0.01, "QEMU_CLOCK_VIRTUAL delay before re-service "
              "(NANOSECONDS_PER_SECOND / 100)", min=0),
    )
    hooks = frozenset({"ioapic_eoi", "redirect", "timer"})
    timers = 1

    @classmethod
    def check(cls, site: Site):
        if site.irqchip == "none":
            yield ("qemu_eoi_throttle is QEMU's; a bare-metal scenario has no QEMU", None)
        elif site.irqchip != "split":
            yield ("qemu_eoi_throttle lives in QEMU's userspace IOAPIC; it needs irqchip split "
                   "(with kernel, use kvm_eoi_delay)", None)

    def init(self, ctx):
        ctx.state.alloc("irq_eoi", (ctx.n_pins,), np.int64, 0)

    def on_ioapic_eoi(self, ctx, ev):
        hit = successive_eoi(ctx, ev, np.greater_equal)  # "++s->irq_eoi[n] >= SUCCESSIVE_IRQ_MAX_COUNT"
        if hit.any():
            lanes = ev.lanes[hit]
            due = ctx.now(lanes) + ctx.param("delay", lanes)
            ctx.set_timer(lanes, 0, np.minimum(ctx.timer(lanes, 0), due))  # timer_mod_anticipate
            ctx.activated(lanes)
            ctx.trace(lanes, "ioapic_eoi_delayed_reassert", [f"pin {p}" for p in ev.pin[hit]])

    def on_redirect(self, ctx, ev):
        ctx.state["irq_eoi"][ev.lanes, ev.pin] = 0

    def on_timer(self, ctx, ev):
        ctx.set_timer(ev.lanes, 0, np.full(len(ev.lanes), NEVER, dtype=np.int64))
        ctx.service_ioapic(ev.lanes)


class PreemptionTimerThrottle(Mitigation):
    """The preemption-timer throttle proposed (and dropped) in the seed thread.

    When L0 requests an immediate exit from L2 (preemption timer 0) to reflect
    an interrupt to L1, it compares L2's instruction pointer with the last one:
    the same one increments a counter, another resets it. Past ``threshold``
    immediate exits at one instruction, the timer is armed with ``delay`` timer
    units instead of 0, so L2 runs for a while (one unit is 2^rate TSC cycles,
    ``machine { preemption_timer_rate }``). Defaults: the RFC's
    HV_TIMER_THROTTLE 100 and HV_TIMER_DELAY 1000.
    """

    name = "preemption_timer_throttle"
    version = "1.0"
    kernel_kind = K.MIT_PT_THROTTLE  # irqlab.engine.kernel runs it natively
    params = (
        Param("threshold", "int", 100, "immediate exits at one L2 instruction before throttling "
              "(HV_TIMER_THROTTLE)", min=0),
        Param("delay", "int", 1000, "preemption-timer value when throttled, in timer units "
              "(HV_TIMER_DELAY)", min=0),
    )
    hooks = frozenset({"immediate_exit"})

    @classmethod
    def check(cls, site: Site):
        if "L2" not in site.levels:
            yield ("preemption_timer_throttle acts on immediate exits from L2; the scenario "
                   "has no L2 level", None)

    def init(self, ctx):
        ctx.state.alloc("last_rip", (ctx.n_vcpus,), np.int64, -1)
        ctx.state.alloc("count", (ctx.n_vcpus,), np.int64, 0)

    def on_immediate_exit(self, ctx, ev):
        last, count = ctx.state["last_rip"], ctx.state["count"]
        same = last[ev.lanes, ev.vcpu] == ev.rip
        c = np.where(same, count[ev.lanes, ev.vcpu] + 1, 0)
        count[ev.lanes, ev.vcpu] = c
        last[ev.lanes, ev.vcpu] = ev.rip
        hit = c > ctx.param("threshold", ev.lanes)
        if hit.any():
            lanes = ev.lanes[hit]
            units = ctx.param("delay", lanes).astype(np.float64)
            ev.timer[hit] = np.floor(units * ctx.timer_unit_ps(lanes)).astype(np.int64)
            ctx.activated(lanes)


class LinuxSpurious(Mitigation):
    """Linux's spurious-interrupt detector (kernel/irq/spurious.c, ``note_interrupt``).

    Per IRQ: an unhandled interrupt increments ``irqs_unhandled`` (restarting at
    1 if the previous one was more than ``reset`` ago). ``irq_count`` advances
    only while ``irqs_unhandled`` is not 0 (``if (likely(!desc->irqs_unhandled))
    return;``, 7c07012eb1be, v5.13), so the window starts at the first unhandled
    interrupt; ``pre_5_13 1`` counts every interrupt, as before. When
    ``irq_count`` reaches ``window``, more than ``threshold`` unhandled disables
    the IRQ ("nobody cared") and its devices are polled every ``poll``; both
    counts restart.
    """

    name = "linux_spurious"
    version = "1.0"
    kernel_kind = K.MIT_LINUX_SPURIOUS  # irqlab.engine.kernel runs it natively
    params = (
        Param("window", "int", 100000, "interrupts per verdict", min=1),
        Param("threshold", "int", 99900, "unhandled interrupts in a window that disable the IRQ",
              min=0),
        Param("reset", "time", 0.1, "an unhandled interrupt later than this restarts the count "
              "(HZ/10)", min=0),
        Param("poll", "time", 0.1, "polling interval of a disabled IRQ (POLL_SPURIOUS_IRQ_INTERVAL)",
              min=1e-9),
        Param("pre_5_13", "int", 0, "1: every interrupt advances the window (kernels before "
              "7c07012eb1be, v5.13)", min=0, max=1),
    )
    hooks = frozenset({"handler_done", "timer"})
    timers = 1

    def init(self, ctx):
        p = (ctx.n_pins,)
        ctx.state.alloc("irq_count", p, np.int64, 0)
        ctx.state.alloc("unhandled", p, np.int64, 0)
        ctx.state.alloc("last_unhandled", p, np.int64, -(2**62))
        ctx.state.alloc("disabled", p, np.bool_, False)

    def on_handler_done(self, ctx, ev):
        s = ctx.state
        lanes, pin, now = ev.lanes, ev.pin, ctx.now(ev.lanes)
        un = s["unhandled"][lanes, pin]
        stale = now - s["last_unhandled"][lanes, pin] > ctx.param("reset", lanes)
        miss = ~ev.handled
        un = np.where(miss, np.where(stale, 1, un + 1), un)
        s["last_unhandled"][lanes, pin] = np.where(miss, now, s["last_unhandled"][lanes, pin])
        counts = (un != 0) | (ctx.param("pre_5_13", lanes) == 1)
        count = s["irq_count"][lanes, pin] + counts
        verdict = counts & (count >= ctx.param("window", lanes))
        bad = verdict & (un > ctx.param("threshold", lanes)) & ~s["disabled"][lanes, pin]
        s["irq_count"][lanes, pin] = np.where(verdict, 0, count)
        s["unhandled"][lanes, pin] = np.where(verdict, 0, un)
        if bad.any():
            bl, bp = lanes[bad], pin[bad]
            s["disabled"][bl, bp] = True
            ctx.set_mask(bl, bp, True)
            due = now[bad] + ctx.param("poll", bl)
            ctx.set_timer(bl, 0, np.minimum(ctx.timer(bl, 0), due))
            ctx.activated(bl)
            ctx.trace(bl, "irqlab_spurious_disable", [f"irq {p}: nobody cared, disabling" for p in bp])

    def on_timer(self, ctx, ev):
        lanes = ev.lanes
        disabled = ctx.state["disabled"][lanes]
        for p in range(ctx.n_pins):
            on = disabled[:, p]
            if on.any():
                ctx.poll(lanes[on], np.full(int(on.sum()), p, dtype=np.int64))
        ctx.set_timer(lanes, 0, ctx.now(lanes) + ctx.param("poll", lanes))


class XenIrqRatelimit(Mitigation):
    """Xen's per-IRQ rate limit (xen/arch/x86/irq.c, ``irq_ratelimit``).

    ``do_IRQ``: ``rl_cnt`` counts every delivery of the pin, and the time is
    looked at only when ``rl_cnt++ >= limit``, i.e. from the (limit+1)-th
    delivery since the quantum started. Then, within ``window`` (MILLISECS(10))
    of ``rl_quantum_start`` the IRQ is disabled (the pin masked) and this
    delivery dropped, and the one rate-limit timer is set ``window`` ahead if
    no IRQ was limited yet; otherwise ``rl_cnt`` = 0 and the quantum restarts
    now, and the delivery goes through. ``irq_ratelimit_timer_fn`` only
    re-enables the limited IRQs: their count and quantum stay, so the next
    delivery restarts the quantum. **Choice:** ``rl_quantum_start`` starts at 0
    (Xen's boot = the run's start), and the IRQ is the VM's IOAPIC pin.
    """

    name = "xen_irq_ratelimit"
    version = "1.0"
    kernel_kind = K.MIT_XEN_RATELIMIT  # irqlab.engine.kernel runs it natively
    params = (
        Param("limit", "int", 10000, "deliveries per window before the pin is masked "
              "(irq_ratelimit)", min=1),
        Param("window", "time", 0.01, "length of a quantum and of the masking", min=1e-9),
    )
    hooks = frozenset({"deliver", "timer"})
    timers = 1

    def init(self, ctx):
        p = (ctx.n_pins,)
        ctx.state.alloc("count", p, np.int64, 0)
        ctx.state.alloc("quantum_start", p, np.int64, 0)
        ctx.state.alloc("limited", p, np.bool_, False)

    def on_deliver(self, ctx, ev):
        s = ctx.state
        lanes, pin, now = ev.lanes, ev.pin, ctx.now(ev.lanes)
        window = ctx.param("window", lanes)
        old = s["count"][lanes, pin]
        check = old >= ctx.param("limit", lanes)  # rl_cnt++ >= irq_ratelimit_threshold
        inside = now < s["quantum_start"][lanes, pin] + window
        over = check & inside
        restart = check & ~inside
        s["count"][lanes, pin] = np.where(restart, 0, old + 1)
        s["quantum_start"][lanes, pin] = np.where(restart, now, s["quantum_start"][lanes, pin])
        if over.any():
            ol, op = lanes[over], pin[over]
            ev.block |= over
            idle = ~s["limited"][ol].any(axis=1)  # the list was empty: set the timer
            s["limited"][ol, op] = True
            ctx.set_mask(ol, op, True)
            ctx.set_timer(ol[idle], 0, now[over][idle] + window[over][idle])
            ctx.activated(ol)
            ctx.trace(ol, "irqlab_xen_ratelimit", [f"pin {p} masked" for p in op])

    def on_timer(self, ctx, ev):
        s = ctx.state
        lanes = ev.lanes
        ctx.set_timer(lanes, 0, np.full(len(lanes), NEVER, dtype=np.int64))
        for p in range(ctx.n_pins):
            on = s["limited"][lanes, p]
            if on.any():
                sel = lanes[on]
                s["limited"][sel, p] = False
                ctx.set_mask(sel, np.full(len(sel), p, dtype=np.int64), False)
