"""The Arrow schema of an imported trace: one row per record.

Common columns: ``file`` (source file), ``line`` (1-based source line; the
event's index for a JSON trace), ``segment`` (records of one segment are
contiguous: an excerpt, or a stretch between lost events), ``ts_ns`` (null when
the source has no timestamps), ``cpu``, ``task``, ``pid``, ``stream`` (the
thread the record belongs to: the pid when known, else the CPU, else 0),
``event`` and ``raw`` (the fields text as printed). Then the typed fields of
:mod:`irqlab.traces.fields`, null where an event has no such field.
"""

from __future__ import annotations

COMMON = (
    ("file", "string"), ("line", "int64"), ("segment", "int32"), ("ts_ns", "int64"),
    ("cpu", "int32"), ("task", "string"), ("pid", "int32"), ("stream", "int64"),
    ("event", "string"), ("raw", "string"),
)

FIELD_COLUMNS = (
    ("vcpu", "int32"), ("reason", "string"), ("reason_code", "int32"), ("rip", "uint64"),
    ("info1", "uint64"), ("info2", "uint64"), ("intr_info", "uint32"), ("error_code", "uint32"),
    ("guest_mode", "bool_"), ("immediate_exit", "bool_"),
    ("vector", "int32"), ("dest", "int64"), ("gsi", "int32"), ("pin", "int32"), ("level", "int32"),
    ("source", "int32"), ("delivery", "string"), ("dest_mode", "string"), ("trigger", "string"),
    ("coalesced", "bool_"), ("masked", "bool_"), ("rh", "bool_"), ("soft", "bool_"),
    ("reinjected", "bool_"), ("irqchip", "string"),
    ("rw", "string"), ("reg", "string"), ("msr", "uint32"), ("value", "uint64"), ("gpa", "uint64"),
    ("length", "int32"), ("gp", "bool_"),
    ("vmcs", "uint64"), ("nested_rip", "uint64"), ("int_ctl", "uint32"), ("event_inj", "uint32"),
    ("tdp", "bool_"), ("guest_pgd", "uint64"),
)

COLUMNS = COMMON + FIELD_COLUMNS
NAMES = tuple(name for name, _ in COLUMNS)


def arrow_schema():
    """The pyarrow schema of :data:`COLUMNS` (every column nullable)."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS],
                     metadata={"irqlab.traces": "1"})
