"""Issue-13 mechanism 3 in the reference interpreter: periodic timers that catch up on
missed ticks (KVM's PIT with reinjection, QEMU's RTC with coalesced-tick tracking,
Hyper-V SynIC stimers with a message slot) and host contention (a vCPU descheduled for stretches). A mixin of
:class:`~irqlab.engine.reference.LaneSim`; :mod:`irqlab.engine.timers_lockstep` is the
same for the lockstep executor. docs/model.md, "Timers that catch up, and host
contention", states the rules and their sources.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.context import call_plugin
from irqlab.engine.program import L0
from irqlab.engine.trace import KWORKER, QEMU
from irqlab.plugins.api import NEVER

PIT_SOURCE = 2  # the PIT's irq source id (kvm_request_irq_source_id after userspace 0 and the resampler 1)
EAGAIN = -11
RTC_REINJECT_ON_ACK_COUNT = 20  # hw/rtc/mc146818rtc.c
HV_UNIT = 100_000  # ps per unit of the Hyper-V reference time (100 ns), as the tracepoints print it


def n_timer_slots(program) -> int:
    """The timer mechanisms' event slots: one per deschedule plugin, then one per RTC
    (its coalesced-tick timer)."""
    return len(program.desched) + sum(1 for _, kind in program.timer_devices if kind == "rtc")


class RefTimers:
    """State: PIT ``pit_pend[d]`` (ticks not yet acked) and ``pit_ack[d]``; stimer
    ``st_retry[d]`` (msg_pending: a delivery to retry), ``st_slot[d]`` (the SINT message slot
    holds a message), ``st_exp[d]`` (exp_time), ``st_due[d]`` (expired while descheduled);
    RTC ``rtc_coal[d]`` (irq_coalesced), ``rtc_acks[d]`` (irq_reinject_on_ack_count),
    ``rtc_eoi[d]`` (KVM's rtc_status.pending_eoi); ``tslot_t``: the next time of each timer
    slot (deschedule plugin k at k; RTC j's coalesced timer after them); per deschedule
    plugin ``ds_on``, ``ds_start`` (nominal start);
    per vCPU ``held``, ``held_rem``, ``held_mode``, ``held_run``, ``held_kick``."""

    def timers_init(self) -> None:
        pr = self.p
        D, V = len(pr.devices), pr.n_vcpus
        self.tkind = dict(pr.timer_devices)
        self.pit_pend = [0] * D
        self.pit_ack = [True] * D  # kvm_pit_reset_reinject
        self.st_retry = [False] * D
        self.st_slot = [False] * D
        self.st_exp = [NEVER] * D
        self.st_due = [False] * D
        self.ds = [pr.mitigations[i].path for i in pr.desched]
        self.ds_start = [self.v[f"{p}.start"] for p in self.ds]
        self.rtcs = [di for di, kind in pr.timer_devices if kind == "rtc"]
        self.rtc_slot = {di: len(self.ds) + j for j, di in enumerate(self.rtcs)}
        self.tslot_t = list(self.ds_start) + [NEVER] * len(self.rtcs)
        self.rtc_coal = [0] * D
        self.rtc_acks = [0] * D
        self.rtc_eoi = [False] * D
        self.ds_on = [False] * len(self.ds)
        self.ds_begin = [0] * len(self.ds)
        self.held = [False] * V
        self.held_rem = [NEVER] * V
        self.held_mode = [0] * V
        self.held_run = [False] * V
        self.held_kick = [False] * V

    def tparam(self, di: int, name: str) -> int:
        return self.v[f"{self.p.devices[di].model_path}.{name}"]

    # ------------------------------------------------------------------ expiry

    def timer_expire(self, di: int) -> None:
        """The host timer of timer device ``di`` expires (its arrival slot)."""
        d = self.p.devices[di]
        t = self.t
        kind = self.tkind[di]
        self.thread = {"pit": KWORKER, "rtc": QEMU}.get(kind, d.dest)  # stimers run on the vCPU
        self.tick_raised(di, 1)
        self.note_arrival(di)
        if kind in ("pit", "rtc"):
            self.pit_expire(di) if kind == "pit" else self.rtc_expire(di)
            one = np.zeros(1, dtype=np.int64)
            nxt = call_plugin(self.ctx_arrival[di], "arrival", d.arrival.next, one, np.array([t]))
            self.arr_t[di] = max(int(nxt[0]), t)
        else:
            self.arr_t[di] = NEVER  # stimer_timer_callback: HRTIMER_NORESTART
            self.st_exp[di] = t
            self.emit("kvm_hv_stimer_callback", f"vcpu_id {d.dest} timer 0")
            if self.held[d.dest]:
                self.st_due[di] = True  # KVM_REQ_HV_STIMER waits for the vCPU to run
            else:
                self.stimer_process(di)

    def tick_raised(self, di: int, n: int) -> None:
        self.stats.raised[0] += n
        self.stats.dev_raised[0, di] += n

    # ------------------------------------------------------------------ PIT

    def pit_expire(self, di: int) -> None:
        """``pit_timer_fn``: count a pending tick (reinject), then ``pit_do_work``."""
        if self.tparam(di, "reinject"):
            self.pit_pend[di] += 1
        self.emit("irqlab_pit_timer", f"pending {self.pit_pend[di]}")
        self.pit_work(di, True)

    def pit_work(self, di: int, fresh: bool) -> None:
        """``pit_do_work``: with reinject, inject only if the last tick was acked."""
        if self.tparam(di, "reinject"):
            if not self.pit_ack[di]:
                return
            self.pit_ack[di] = False
        self.inject_tick(di, fresh)

    def inject_tick(self, di: int, fresh: bool) -> None:
        """One edge on the PIT's GSI (``kvm_set_irq`` 1 then 0 from the PIT's source).
        ``fresh``: the tick of this expiry (else a reinjected one: ``redelivered``)."""
        pin = self.p.devices[di].pin
        self.pending[di] += 1
        self.fresh[di] = fresh
        self.edge_merged = False
        self.emit("kvm_set_irq", f"gsi {pin} level 1 source {PIT_SOURCE}")
        self.line_effect(pin, 1)
        self.emit("kvm_set_irq", f"gsi {pin} level 0 source {PIT_SOURCE}")
        self.line_effect(pin, 0)
        if self.fresh[di]:  # not delivered: merged into irr, or the pin is masked
            self.fresh[di] = False
            if self.edge_merged:
                self.merge(di)
            else:
                self.stats.dev_lost[0, di] += 1

    def pit_ack_irq(self, di: int) -> None:
        """``kvm_pit_ack_irq``: irq_ack = 1; ``atomic_dec_if_positive(pending) > 0`` queues
        ``pit_do_work`` again (the reinjection of a missed tick)."""
        self.emit("kvm_ack_irq", f"irqchip IOAPIC pin {self.p.devices[di].pin}")
        self.pit_ack[di] = True
        if self.pit_pend[di] > 0:
            self.pit_pend[di] -= 1
            if self.pit_pend[di] > 0:
                self.pit_work(di, False)

    # ------------------------------------------------------------------ RTC

    def rtc_expire(self, di: int) -> None:
        """``rtc_periodic_timer`` with ``lost_tick_policy`` slew: a tick KVM reports as not
        delivered is counted in ``irq_coalesced`` and the coalesced timer is armed."""
        if not self.tparam(di, "slew"):
            if not self.rtc_raise(di, True):
                self.merge(di)  # LOST_TICK_POLICY_DISCARD: the tick is gone
            return
        if self.rtc_acks[di] >= RTC_REINJECT_ON_ACK_COUNT:
            self.rtc_acks[di] = 0
        if not self.rtc_raise(di, True):
            self.rtc_coal[di] += 1
            self.emit("irqlab_rtc_coalesced", f"irq_coalesced {self.rtc_coal[di]}")
            self.rtc_timer_update(di)

    def rtc_raise(self, di: int, fresh: bool) -> bool:
        """``qemu_irq_raise`` of the RTC's line into KVM's IOAPIC (``KVM_IRQ_LINE_STATUS``):
        KVM's ``ioapic_set_irq`` reports the RTC's GSI coalesced while the last RTC interrupt
        awaits its EOI (``rtc_irq_check_coalesced``), else its edge delivers. Returns whether
        it was delivered (``kvm_get_irq_delivered``)."""
        pin = self.p.devices[di].pin
        self.emit("kvm_set_irq", f"gsi {pin} level 1 source 0")
        if self.rtc_eoi[di] or self.p_irr[pin]:
            return False
        d = self.p.devices[di]
        self.fresh[di] = fresh
        self.pending[di] += 1
        merged = bool(self.irr[d.dest] >> d.group & 1)  # the LAPIC will not accept it
        self.line_effect(pin, 1)  # count_delivery books it (a reinjection as redelivered)
        delivered = not self.p_irr[pin] and not merged
        if not delivered:
            self.pending[di] -= 1
        self.fresh[di] = False
        self.rtc_eoi[di] = delivered  # rtc_status.pending_eoi = the vCPUs it went to
        return delivered

    def rtc_reinject(self, di: int) -> None:
        """A reinjection of a coalesced tick; it counts down ``irq_coalesced`` if delivered."""
        if self.rtc_raise(di, False):
            self.rtc_coal[di] -= 1
            self.emit("irqlab_rtc_coalesced", f"irq_coalesced {self.rtc_coal[di]}")

    def rtc_timer_update(self, di: int) -> None:
        """``rtc_coalesced_timer_update``: with ticks coalesced, retry after period / c,
        c = min(irq_coalesced, 7) + 1; else stop."""
        k = self.rtc_slot[di]
        if self.rtc_coal[di] == 0:
            self.tslot_t[k] = NEVER
        else:
            period = self.v[f"{self.p.devices[di].arrival_path}.period"]
            self.tslot_t[k] = self.t + period // (min(self.rtc_coal[di], 7) + 1)

    def rtc_coalesced_timer(self, di: int) -> None:
        """``rtc_coalesced_timer``."""
        self.thread = QEMU
        if self.rtc_coal[di]:
            self.rtc_reinject(di)
        self.rtc_timer_update(di)

    def rtc_read_c(self, di: int) -> None:
        """The guest's handler reads register C: ``qemu_irq_lower``, then with ticks
        coalesced and fewer than RTC_REINJECT_ON_ACK_COUNT reinjections on ack, one more."""
        pin = self.p.devices[di].pin
        self.emit("kvm_set_irq", f"gsi {pin} level 0 source 0")
        self.line_effect(pin, 0)
        if self.tparam(di, "slew") and self.rtc_coal[di] and self.rtc_acks[di] < RTC_REINJECT_ON_ACK_COUNT:
            self.rtc_acks[di] += 1
            self.rtc_reinject(di)

    # ------------------------------------------------------------------ SynIC stimer

    def stimer_process(self, di: int) -> None:
        """``kvm_hv_process_stimers`` for an expired stimer: ``stimer_expiration`` (send the
        message), then, if no delivery is left to retry, ``stimer_start`` at the next period
        boundary after now (the ticks passed over are lost: KVM's "lazy" policy)."""
        d = self.p.devices[di]
        t = self.t
        self.st_due[di] = False
        self.st_retry[di] = True
        if self.st_slot[di]:
            if self.tparam(di, "retry"):
                r = EAGAIN  # msg_pending set in the slot: KVM retries at the guest's EOM/EOI
            else:
                r = 0  # 7deec5e0df74: no_retry for periodic timers, the tick is dropped
                self.merge(di)
        else:
            r = 0
            self.st_slot[di] = True
            self.pending[di] += 1
            fresh = self.st_exp[di] == t  # delivered at its own expiry
            self.fresh[di] = fresh
            self.emit("kvm_msi_set_irq", f"dst {d.dest} vec {d.vector} (Fixed|physical|edge)")
            accepted = self.accept(d.dest, d.group, False)
            if fresh:
                self.count_delivery([di], accepted)
            elif accepted:
                self.stats.dev_redelivered[0, di] += 1
                self.stats.delivered[0] += 1
            else:
                self.merge(di)
        self.emit("kvm_hv_stimer_expiration", f"vcpu_id {d.dest} timer 0 direct 0 msg send result {r}")
        if r == 0:
            self.st_retry[di] = False
            period = self.v[f"{d.arrival_path}.period"]
            skipped = (t - self.st_exp[di]) // period
            if skipped:
                self.tick_raised(di, skipped)
                for _ in range(skipped):
                    self.merge(di)
            nxt = t + (period - (t - self.st_exp[di]) % period)
            self.arr_t[di] = nxt
            self.emit("kvm_hv_stimer_start_periodic", f"vcpu_id {d.dest} timer 0 time_now {t // HV_UNIT} "
                      f"exp_time {nxt // HV_UNIT}")

    # ------------------------------------------------------------------ hooks

    def timer_eoi(self, g: int) -> None:
        """The guest's EOI of vector group ``g`` reached KVM: the PIT's ack notifier
        (``kvm_ioapic_update_eoi_one`` runs it first), and for a SINT vector
        ``kvm_hv_notify_acked_sint``: a stimer with a delivery to retry expires again."""
        for di in self.p.groups[g].devices:
            kind = self.tkind.get(di)
            if kind == "pit" and self.tparam(di, "reinject"):
                self.pit_ack_irq(di)
            elif kind == "stimer" and self.st_retry[di]:
                self.stimer_process(di)
            elif kind == "rtc" and self.rtc_eoi[di]:
                self.rtc_eoi[di] = False  # rtc_irq_eoi

    def timer_serviced(self, di: int) -> None:
        """The guest's handler consumed the SynIC message (the slot is free), or read the
        RTC's register C."""
        kind = self.tkind.get(di)
        if kind == "stimer":
            self.st_slot[di] = False
        elif kind == "rtc":
            self.rtc_read_c(di)

    def descheduled(self, v: int) -> bool:
        """``notify`` hook: a descheduled vCPU notices a new interrupt when it runs again."""
        if self.held[v]:
            self.held_kick[v] = True
            return True
        return False

    # ------------------------------------------------------------------ host contention

    def tslot_event(self, i: int) -> None:
        """Timer slot ``i``: a deschedule plugin's boundary, or an RTC's coalesced timer."""
        if i < len(self.ds):
            self.desched_event(i)
        else:
            self.rtc_coalesced_timer(self.rtcs[i - len(self.ds)])

    def desched_event(self, k: int) -> None:
        """A stretch of deschedule plugin ``k`` begins or ends."""
        path = self.ds[k]
        v = self.v[f"{path}.vcpu"]
        t = self.t
        self.thread = v
        if self.ds_on[k]:
            self.resume(k, v)
            return
        length, period = self.v[f"{path}.length"], self.v[f"{path}.period"]
        if length == 0 or self.held[v]:
            self.ds_start[k] += period
            self.tslot_t[k] = self.ds_start[k]
            return
        if self.since[v] > t:  # a transition in progress completes first
            self.tslot_t[k] = self.since[v]
            return
        self.emit("irqlab_deschedule", f"vcpu {v} for {length // 1000}ns")
        self.held_run[v] = self.run_start[v] != NEVER
        if self.held_run[v]:
            self.end_run(v, t)
        self.held_rem[v] = NEVER if self.vt[v] == NEVER else self.vt[v] - t
        self.vt[v] = NEVER
        self.held_mode[v] = self.mode[v]
        self.switch(v, L0)
        self.held[v] = True
        self.held_kick[v] = False
        self.ds_on[k] = True
        self.ds_begin[k] = t
        self.tslot_t[k] = t + length

    def resume(self, k: int, v: int) -> None:
        """The vCPU runs again where it stopped; its pending work is ``length`` later."""
        t = self.t
        shift = t - self.ds_begin[k]
        self.emit("irqlab_reschedule", f"vcpu {v}")
        self.held[v] = False
        self.ds_on[k] = False
        self.ds_start[k] += self.v[f"{self.ds[k]}.period"]
        self.tslot_t[k] = max(self.ds_start[k], t)
        self.switch(v, self.held_mode[v])
        if self.pt_armed[v]:
            self.pt_deadline[v] += shift
        if self.held_run[v]:
            self.run_start[v] = t
        if self.held_rem[v] != NEVER:
            self.vt[v] = t + self.held_rem[v]
        for di, kind in self.p.timer_devices:
            if kind == "stimer" and self.st_due[di] and self.p.devices[di].dest == v:
                self.stimer_process(di)
        if self.held_kick[v]:
            self.held_kick[v] = False
            self.notify(v)
