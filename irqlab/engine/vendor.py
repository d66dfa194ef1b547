"""Exit names by vendor: what KVM's ``kvm_exit`` tracepoint prints on AMD.

The executors count exits by their VMX name (``EXIT_REASONS``, the metric
columns); on an AMD machine (``machine { vendor amd }``) the trace prints the
name KVM's ``kvm_print_exit_reason`` gives for SVM (``SVM_EXIT_REASONS``,
arch/x86/include/uapi/asm/svm.h) for the exit that takes the same place.
"""

from __future__ import annotations

SVM_NAMES = {
    "EXTERNAL_INTERRUPT": "interrupt",  # SVM_EXIT_INTR
    "PREEMPTION_TIMER": "interrupt",  # the immediate exit is a self-IPI: SVM_EXIT_INTR
    "INTERRUPT_WINDOW": "vintr",  # SVM_EXIT_VINTR (KVM's virtual interrupt window)
    "VMRESUME": "vmrun",  # SVM_EXIT_VMRUN
    "EPT_MISCONFIG": "npf",  # MMIO: SVM_EXIT_NPF
    "APIC_ACCESS": "npf",  # xAPIC page without AVIC: SVM_EXIT_NPF
    "MSR_WRITE": "msr",  # x2APIC EOI without AVIC: SVM_EXIT_MSR
    "EOI_INDUCED": "avic_unaccelerated_access",  # AVIC traps a level vector's EOI
    "HLT": "hlt",  # SVM_EXIT_HLT
}


def exit_name(vendor: str, reason: str) -> str:
    """The name the trace prints for exit ``reason`` (a VMX name) on ``vendor``."""
    return SVM_NAMES[reason] if vendor == "amd" else reason


EXIT_EVENTS = ("kvm_exit", "kvm_nested_vmexit", "kvm_nested_vmexit_inject")


def record_text(vendor: str, event: str, text: str) -> str:
    """A trace record's text as printed on ``vendor``: on AMD the ``reason`` of an exit
    record is its SVM name (both executors emit every record through this)."""
    if vendor != "amd" or event not in EXIT_EVENTS or not text.startswith("reason ") and " reason " not in text:
        return text
    head, _, rest = text.partition("reason ")
    reason, sep, tail = rest.partition(" ")
    return f"{head}reason {SVM_NAMES.get(reason, reason)}{sep}{tail}"
