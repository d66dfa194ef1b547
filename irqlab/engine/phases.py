"""What a vCPU does next: the phases of its state machine, shared by executors.

A vCPU is always in one phase with a time ``t`` at which the phase's action
happens. Actions are instantaneous and may emit several trace records; the
time between actions is the cost of what the vCPU is doing (a VM exit, an
entry, a handler body, an exit to userspace), attributed to a mode
(:data:`~irqlab.engine.program.MODES`). docs/model.md describes each one.
"""

RUN_IDLE = 0  # innermost guest code, nothing scheduled (only an interrupt stops it)
RUN_SVC = 1  # L2 guest code; at t the device it is servicing is done
RUN_PT = 2  # L2 guest code; at t the VMX preemption timer fires
KICK = 3  # an interrupt arrived while the guest ran: the guest exits (EXTERNAL_INTERRUPT)
TAKE = 4  # the guest takes an interrupt itself (posted interrupt, iret, bare metal)
L0_CHECK = 5  # nested: L0 after an L2 exit: reflect an interrupt to L1, or re-enter L2
L0_INJECT = 6  # L0 after an exit of a single-level guest: inject an interrupt, or re-enter
ACT = 7  # the handler executes its current step (ACT + action index in the lockstep executor)
SERVICE_DONE = 8  # the handler's local service of its devices ends
EOI_L0 = 9  # L0 handles an EOI exit
EOI_USER = 10  # QEMU handles the IOAPIC EOI (split irqchip), then back into the guest
MMIO_L0 = 11  # L0 handles an IOAPIC MMIO write
MMIO_USER = 12  # QEMU handles it (split irqchip)
VMRESUME_L0 = 13  # L0 has emulated L1's VMRESUME and enters L2
REFLECT = 14  # L0 reflects L2's completion exit (its EOI write) to L1
MMIO_NEXT = 15  # the handler makes the next access of a multi-access IOAPIC register write
L1_STI = 16  # nested, no ack-on-exit: L1 enables interrupts after handling the emulated exit
RUN_EXIT = 17  # L2 guest code; at t L2 makes an access L1 intercepts (machine.l2_exit_every)
L1_EXIT = 18  # L1 has handled L2's reflected exit and executes VMRESUME
EOI_BACK = 19  # back from QEMU after an EOI L2 wrote to L1's vLAPIC: L0 checks nested events

RUN_PHASES = (RUN_IDLE, RUN_SVC, RUN_PT, RUN_EXIT)

# IOAPIC accesses of a handler step (Linux arch/x86/kernel/apic/io_apic.c): a redirection entry
# is written through IOREGSEL then IOWIN (__io_apic_write), and a mask is read back
# (io_apic_sync); the EOI register is one write. (accesses, index of the one that acts)
MMIO_ACCESSES = {"IOAPIC_EOI": (1, 0), "MASK": (3, 1), "UNMASK": (2, 1)}


def eoi_exit(x2apic: bool) -> tuple[str, int]:
    """(exit reason, exit qualification) of a trapped guest EOI write without APICv.

    x2APIC: a WRMSR to 0x80B (``MSR_WRITE``). xAPIC: a write to the APIC-access page at
    offset 0xB0, an ``APIC_ACCESS`` exit with qualification 0x10B0 (access type 1 = linear
    write, SDM 27.2.1 table 27-6); KVM takes it in ``handle_apic_access``'s fast-EOI path.
    ``APIC_WRITE`` would need APIC-register virtualization, i.e. APICv.
    """
    return ("MSR_WRITE", 0x80B) if x2apic else ("APIC_ACCESS", 0x10B0)

NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

# Guest instruction pointers shown in kvm_exit (the first two are the seed trace's).
RIP_L1_VMRESUME = 0xFFFFF80006A40115
RIP_L1_EOI = 0xFFFFF80006A17E1A
RIP_L1_MMIO = 0xFFFFF80006A18C40
RIP_L1_IRET = 0xFFFFF80006A17F02
RIP_L1_STI = 0xFFFFF80006A40020
RIP_L2_BASE = 0xFFFFF8022F3D8350
RIP_GUEST_BASE = 0xFFFFFFFF81000000
