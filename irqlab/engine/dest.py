"""Interrupt destinations: which vCPUs an IOAPIC pin's or an MSI's message reaches
(docs/model.md, "Destinations"). Pure functions of the compiled machine, shared by the
compiler, the language's cross-checks (so no NumPy here) and both executors.

Sources: KVM arch/x86/kvm/lapic.c ``kvm_apic_match_dest``,
``kvm_apic_match_physical_addr``, ``kvm_apic_match_logical_addr``, ``kvm_apic_mda``,
``kvm_apic_calc_x2apic_ldr``, ``kvm_vector_to_index``, ``kvm_apic_compare_prio``;
arch/x86/kvm/irq_comm.c (later lapic.c) ``kvm_irq_delivery_to_apic``; SDM 10.6.2.
"""

from __future__ import annotations

APIC_BROADCAST = 0xFF  # an IOAPIC/MSI destination of 0xff reaches every LAPIC (x2APIC too: kvm_apic_mda)


def apic_id(v: int) -> int:
    """**Choice:** vCPU ``v`` has APIC ID ``v`` (QEMU's default topology)."""
    return v


def logical_id(v: int, x2apic: bool, dfr: str) -> int:
    """The LAPIC's logical ID (its LDR). x2APIC: fixed by the hardware,
    ``kvm_apic_calc_x2apic_ldr``: cluster ``id >> 4`` in bits 31:16, bit ``id & 0xf``.
    xAPIC: written by the guest; flat (Linux ``default_init_apic_ldr``): bit ``v`` of
    the 8-bit ID (none from vCPU 8 on); cluster (**Choice**, SDM 10.6.2.2): cluster
    ``v // 4`` in bits 7:4, bit ``v % 4``."""
    a = apic_id(v)
    if x2apic:
        return ((a >> 4) << 16) | (1 << (a & 0xF))
    if dfr == "flat":
        return (1 << a) & 0xFF
    return ((a // 4) << 4 | 1 << (a % 4)) & 0xFF


def match_dest(v: int, dest: int, mode: str, x2apic: bool, dfr: str) -> bool:
    """``kvm_apic_match_dest`` with no shorthand and no source (an IOAPIC pin or an MSI)."""
    if dest == APIC_BROADCAST:  # kvm_apic_broadcast, after kvm_apic_mda's x2APIC quirk
        return True
    if mode == "physical":
        return dest == apic_id(v)
    ldr = logical_id(v, x2apic, dfr)
    if x2apic:
        return (ldr >> 16) == (dest >> 16) and (ldr & dest & 0xFFFF) != 0
    if dfr == "flat":
        return (ldr & dest) != 0
    return (ldr >> 4) == (dest >> 4) and (ldr & dest & 0xF) != 0


def targets(n_vcpus: int, dest: int, mode: str, x2apic: bool, dfr: str) -> tuple[int, ...]:
    """The vCPUs a message to ``dest`` in destination ``mode`` matches, in vCPU order."""
    return tuple(v for v in range(n_vcpus) if match_dest(v, dest, mode, x2apic, dfr))


def vector_to_index(vector: int, matched: tuple[int, ...]) -> int:
    """``kvm_vector_to_index``: lowest priority with vector hashing takes the
    ``vector % n``-th of the ``n`` matching vCPUs."""
    return matched[vector % len(matched)]


def lowest_by_arb(arb):
    """``kvm_apic_compare_prio`` without vector hashing: the first of the matching vCPUs
    with the lowest ``apic_arb_prio``. ``arb`` int64[n, k] (lanes x matching vCPUs);
    returns int64[n], the index in the matching tuple."""
    return arb.argmin(axis=1)


def message_text(grp, dest=None) -> tuple[str, str]:
    """(destination, "delivery|mode") of vector group ``grp``'s message as KVM's
    kvm_msi_set_irq / kvm_ioapic_set_irq print them (the destination in hex but for a
    plain physical fixed message, whose text stays as it was). ``dest``: a plain
    message's current destination when a guest action has moved it (engine/routes.py)."""
    if grp.msg is None:
        return str(grp.dest if dest is None else dest), "Fixed|physical"
    return f"{grp.msg[0]:x}", f"{'LowPrio' if grp.lowest else 'Fixed'}|{grp.msg[1]}"
