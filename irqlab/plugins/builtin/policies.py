"""Built-in handler policies: what the receiving level's interrupt handler does.

Each returns a program of :class:`~irqlab.plugins.api.Step` s for one vector,
depending on whether the vector's devices are serviced at the receiving level
(``site.serviced_locally``) or forwarded to the deeper level (L2).
"""

from __future__ import annotations

from irqlab.plugins.api import HandlerPolicy, Param, Site, Step

BODY = (Param("body", "time", "costs.handler", "handler time before its first action (its mean when "
              "body_dist is not constant)", min=0),
        Param("body_dist", "choice", "constant", "distribution of the body time, drawn per invocation "
              "from the vector's own stream", choices=("constant", "exponential", "uniform", "lognormal",
                                                       "gamma")),
        Param("body_cv", "float", 0.5, "coefficient of variation of the body time (uniform, lognormal, "
              "gamma)", min=0))


class LowerThenEoi(HandlerPolicy):
    """A correct driver: the line is lowered before the EOI.

    Serviced here: service the device (which lowers the line), then EOI.
    Serviced by L2: forward to L2, keep the vector in service until L2 has
    serviced the device, then EOI (what Liran Alon recommended in the seed
    thread: "use vmcs12 to inject interrupt to L2 and allow L2 interrupt
    handler to first lower the irq-line and only then perform EOI").
    """

    name = "lower_then_eoi"
    version = "1.0"
    params = BODY

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.serviced_locally:
            return (Step("SERVICE", "body"), Step("EOI"), Step("RETURN", "costs.resume"))
        return (Step("FORWARD", "body"), Step("WAIT", "costs.resume"), Step("EOI"), Step("RETURN", "costs.resume"))


class EoiBeforeLower(HandlerPolicy):
    """The seed's Hyper-V: EOI while the level-triggered line is still asserted.

    Serviced by L2: EOI, then forward the device to L2 and VMRESUME (the 2019
    KVM thread: "Hyper-V does EOI for a still pending level-triggered interrupt
    ... it needs Windows partition - L2 VM - to run and do the job").
    Serviced here: EOI, then service (the broken level ISR behind KVM commit
    184564efae4d: each interrupt is followed by one spurious re-delivery).
    """

    name = "eoi_before_lower"
    version = "1.0"
    params = BODY

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.serviced_locally:
            return (Step("EOI", "body"), Step("SERVICE"), Step("RETURN", "costs.resume"))
        return (Step("EOI", "body"), Step("FORWARD"), Step("RETURN", "costs.resume"))


class IrqfOneshot(HandlerPolicy):
    """Linux's ``IRQF_ONESHOT`` flow: mask the pin, EOI, unmask after the thread ran.

    ``handle_fasteoi_irq`` with ``IRQCHIP_ONESHOT_SAFE`` unset masks a oneshot
    IRQ (``mask_irq``) and EOIs it (``cond_unmask_eoi_irq``); the threaded
    handler services the device and ``irq_finalize_oneshot`` unmasks it
    (kernel/irq/chip.c, kernel/irq/manage.c). Each mask and unmask is an IOAPIC
    register access from the guest: exits as docs/model.md says (an IOREGSEL
    write, an IOWIN write and, for a mask, a read-back). Not VFIO's host-side
    INTx masking, which happens in the host, not in the guest.
    """

    name = "irqf_oneshot"
    version = "1.0"
    params = BODY + (Param("thread", "time", 0.0, "from the EOI until the irq thread services the "
                           "device (its wakeup and scheduling; serviced here only)", min=0),)

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.delivery == "msi":
            return LowerThenEoi.program(self, site)  # type: ignore[arg-type]
        if site.serviced_locally:
            return (Step("MASK", "body"), Step("EOI"), Step("SERVICE", "thread"), Step("UNMASK"),
                    Step("RETURN", "costs.resume"))
        return (Step("MASK", "body"), Step("EOI"), Step("FORWARD"), Step("WAIT", "costs.resume"), Step("UNMASK"),
                Step("RETURN", "costs.resume"))


class MaskUntilServiced(IrqfOneshot):
    """Deprecated alias of ``irqf_oneshot`` (the same program; the old name said
    "VFIO-like", which it is not)."""

    name = "mask_until_serviced"


class DirectedEoi(HandlerPolicy):
    """EOI the LAPIC, let the device be serviced, then EOI the IOAPIC directly.

    What Windows does when the LAPIC advertises Directed EOI (suppress-EOI-
    broadcast): the LAPIC EOI should not reach the IOAPIC; the later write to
    the IOAPIC's EOI register (0xFEC00040) clears Remote IRR once the line is
    low. If the machine only advertises the feature (``suppress_eoi_broadcast
    quirk``, KVM's legacy split-irqchip behaviour) the LAPIC EOI still
    broadcasts and the line re-fires at once. A LAPIC that does not advertise
    it (``off``, LVR bit 24 clear) does not let the guest set SPIV bit 12, so
    this policy needs ``quirk`` or ``on``. With KVM's in-kernel IOAPIC
    (``on``: KVM before 0bcc3fb95b97) the broadcast is suppressed and the
    IOAPIC EOI write is ignored (version 0x11 has no EOI register): Remote IRR
    stays set and the line is dead (the Windows/Hyper-V hang 0bcc3fb95b97 fixed).
    """

    name = "directed_eoi"
    version = "1.0"
    params = BODY

    @classmethod
    def check(cls, site: Site):
        if site.suppress_eoi_broadcast == "off" and site.delivery == "ioapic" and site.trigger == "level":
            yield ("directed_eoi needs a LAPIC that advertises Directed EOI (LVR bit 24): "
                   "machine { suppress_eoi_broadcast quirk } or on; with off the guest cannot "
                   "set SPIV bit 12", None)

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.delivery == "msi" or site.trigger == "edge":
            return LowerThenEoi.program(self, site)  # type: ignore[arg-type]
        if site.serviced_locally:
            return (Step("EOI", "body"), Step("SERVICE"), Step("IOAPIC_EOI"), Step("RETURN", "costs.resume"))
        return (Step("EOI", "body"), Step("FORWARD"), Step("WAIT", "costs.resume"), Step("IOAPIC_EOI"),
                Step("RETURN", "costs.resume"))


class WindowsEoi(HandlerPolicy):
    """Windows' choice of EOI: Directed EOI when the LAPIC advertises it, else a broadcast.

    With LVR bit 24 set (``suppress_eoi_broadcast quirk`` or ``on``) Windows sets SPIV
    bit 12 and runs ``directed_eoi``'s program (LAPIC EOI, service, IOAPIC EOI
    register); otherwise ``lower_then_eoi``'s. **Choice** (model-review.md, case I):
    Windows with the Hyper-V role behaves so, which is why KVM stopped advertising
    Directed EOI with its in-kernel IOAPIC (0bcc3fb95b97).
    """

    name = "windows_eoi"
    version = "1.0"
    params = BODY

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.suppress_eoi_broadcast in ("quirk", "on"):
            return DirectedEoi.program(self, site)  # type: ignore[arg-type]
        return LowerThenEoi.program(self, site)  # type: ignore[arg-type]


class L2Eoi(HandlerPolicy):
    """An L1 that passes its x2APIC through to L2 (the pKVM port to VMX, whose deprivileged
    host is L2 to KVM): L1 injects the vector into L2 and resumes it; L2's driver services
    the device and writes the EOI itself. L1's MSR bitmap does not intercept the EOI MSR
    (0x80B), so the write exits to L0, which emulates it on L1's vLAPIC while L2 is active
    (``kvm_nested_vmexit``, not reflected). Serviced here: ``lower_then_eoi``'s program.
    docs/model.md, "The nested vPPR (case G)".
    """

    name = "l2_eoi"
    version = "1.0"
    params = BODY
    eoi_by_l2 = True  # read by the compiler (GroupInfo.l2_eoi)

    def program(self, site: Site) -> tuple[Step, ...]:
        if site.serviced_locally:
            return LowerThenEoi.program(self, site)  # type: ignore[arg-type]
        return (Step("FORWARD", "body"), Step("RETURN", "costs.resume"))
