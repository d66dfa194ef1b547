"""Guest actions that change routes, in the reference interpreter (docs/model.md, "Guest
actions: route changes"); a mixin of :class:`~irqlab.engine.reference.LaneSim`.

State (one lane): ``rte_dest[pin]`` the redirection table's destination (QEMU's table with
the split irqchip, KVM's IOAPIC with the kernel one); ``kdest[pin]`` KVM's route for the pin
(split: the MSI route QEMU last committed; kernel: the redirection table itself);
``msi_dest[d]`` an MSI device's destination; per vCPU ``eoi_bits`` (the EOI-exit bitmap,
bit g = vector group g), ``scan_req`` (KVM_REQ_SCAN_IOAPIC pending) and ``pir`` (the IRR
bits still in the posted-interrupt descriptor, not yet synced) and ``entry_at`` (the time of
its last VM entry: before it, a vCPU whose mode already says guest is still in KVM or QEMU
on its way in); ``dead_since[pin]`` when
the pin's Remote IRR was orphaned by an EOI the IOAPIC never saw.
"""

from __future__ import annotations

from irqlab.engine.program import L1, L2
from irqlab.engine.routes import KEEP, bitmap_text, scan_bits
from irqlab.plugins.api import NEVER


class RefRoutes:
    def routes_init(self) -> None:
        pr = self.p
        self.routes_on = bool(pr.actions)
        self.rte_dest = [0] * pr.n_pins
        for d in pr.devices:
            if d.pin >= 0:
                self.rte_dest[d.pin] = d.dest
        self.kdest = list(self.rte_dest)
        self.msi_dest = [d.dest for d in pr.devices]
        self.eoi_bits = [0] * pr.n_vcpus
        for g in pr.groups:
            if g.eoi_exit:
                for v in g.targets or (g.dest,):  # every vCPU the route matches (kvm_apic_match_dest)
                    self.eoi_bits[v] |= 1 << g.index
        self.scan_req = [False] * pr.n_vcpus
        self.pir = [0] * pr.n_vcpus
        self.entry_at = [0] * pr.n_vcpus
        self.dead_since = [NEVER] * pr.n_pins
        self.act_t = [self.v[a.at] for a in pr.actions]
        self.group_of_vector = {g.vector: g.index for g in pr.groups}

    # ------------------------------------------------------------------ actions

    def action_event(self, k: int) -> None:
        """Action ``k`` happens: its writes in order, then its next time (``every``)."""
        a = self.p.actions[k]
        for target, idx, dest, mask in a.writes:
            if target == "ioapic":
                masked = self.p_masked[idx] if mask == KEEP else bool(mask)
                self.redirect_write(idx, masked, None if dest == KEEP else dest)
            else:
                self.emit("irqlab_msi_write", f"dev {self.p.devices[idx].name} dest {dest}")
                self.msi_dest[idx] = dest
        every = self.v[a.every]
        self.act_t[k] = self.t + every if every > 0 else NEVER

    def update_kvm_routes(self) -> None:
        """QEMU ``ioapic_update_kvm_routes``: the MSI route of every unmasked pin follows its
        redirection entry; committing the routes (``KVM_SET_GSI_ROUTING`` ->
        ``kvm_arch_irq_routing_update``) requests a rescan on every vCPU."""
        for pin in self.used_pins:
            if not self.p_masked[pin]:
                self.kdest[pin] = self.rte_dest[pin]
        self.request_scan(range(self.p.n_vcpus))

    def request_scan(self, vcpus) -> None:
        """KVM_REQ_SCAN_IOAPIC on ``vcpus``. **Choice:** a vCPU running guest code is kicked
        and rescans at once (the kick's exit is not modelled); one in KVM or QEMU rescans at
        its next entry (``vcpu_enter_guest``)."""
        if self.p.bare:
            return
        for v in sorted(set(vcpus)):
            self.settle(v)
            if self.in_guest(v):
                self.route_scan(v)
            else:
                self.scan_req[v] = True

    def in_guest(self, v: int) -> bool:
        return self.mode[v] in (L1, L2) and self.t >= self.entry_at[v]

    def route_scan(self, v: int, t: int | None = None) -> None:
        """``vcpu_scan_ioapic``: since f3ced000a2df the PIR is synced first with either
        irqchip; before it only the in-kernel branch synced it. ``route``: the bitmap holds the
        new routes only (before 0fc5a36dd6b3 / fceb3a36c29a)."""
        mode, pr = self.p.eoi_scan, self.p
        if mode == "pending_pir" or (mode == "pending" and not pr.split):
            self.pir[v] = 0
        pending = 0 if mode == "route" else (self.irr[v] & ~self.pir[v]) | self.isr[v]
        table = self.kdest if pr.split else self.rte_dest
        routes = [(pin, pr.groups[pr.pin_group[pin]].vector, table[pin], pr.pin_level[pin])
                  for pin in self.used_pins]
        bits = scan_bits(routes, v, "split" if pr.split else "kernel", pending, self.group_of_vector)
        self.scan_req[v] = False
        self.eoi_bits[v] = bits
        self.emit("irqlab_eoi_exitmap", f"vcpu {v} vectors {bitmap_text(pr.groups, bits)}", t=t, thread=v)

    # ------------------------------------------------------------------ hooks

    def settle(self, v: int) -> None:
        """What vCPU ``v``'s last VM entry did, once it has happened (``entry_at``): a pending
        rescan, then ``sync_pir_to_irr`` (``vcpu_enter_guest``'s order); the rescan's record is
        stamped with the entry's time. Called before anything reads or changes ``v``'s LAPIC
        state after the entry: ``v``'s own events, a posted interrupt, a rescan request."""
        if (self.scan_req[v] or self.pir[v]) and self.in_guest(v):
            if self.scan_req[v]:
                self.route_scan(v, self.entry_at[v])
            self.pir[v] = 0

    def posted(self, v: int, bit: int) -> None:
        """An interrupt accepted at ``v`` while it is outside guest mode waits in the PIR."""
        if self.routes_on and self.p.apicv and not self.p.bare:
            self.settle(v)
            if not self.in_guest(v):
                self.pir[v] |= bit

    def eoi_unseen(self, v: int, g: int) -> None:
        """An EOI of group ``g`` that did not exit: a level pin whose Remote IRR is set and
        whose vector no LAPIC holds any more stays blocked (the line is dead)."""
        if not self.routes_on:
            return
        held = any((self.irr[u] | self.isr[u]) >> g & 1 for u in range(self.p.n_vcpus))
        for pin in self.p.groups[g].pins:
            if self.p.pin_level[pin] and self.p_rirr[pin] and not held and self.dead_since[pin] == NEVER:
                self.dead_since[pin] = self.t

    def rirr_cleared(self, pin: int) -> None:
        if self.dead_since[pin] != NEVER:
            self.stats.dead_ps[0] += self.t - self.dead_since[pin]
            self.dead_since[pin] = NEVER

    def routes_finish(self, t_end: int) -> None:
        for pin, since in enumerate(self.dead_since):
            if since != NEVER and t_end > since:
                self.stats.dead_ps[0] += t_end - since
