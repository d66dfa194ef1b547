"""The scenario's side: one traced run of the model, as the records a trace import gives.

The engine's records (:class:`irqlab.engine.trace.Trace`) are read with the same
field parsers and the same thread naming as ``irqlab trace`` prints them, so a
model run and a real trace are summarized by the same code.
"""

from __future__ import annotations

from irqlab.errors import ScenarioError
from irqlab.traces.reader import make_record
from irqlab.traces.summary import Summary

SOURCE = "<scenario>"


def summarize_trace(trace, events: frozenset[str] | None = None) -> Summary:
    """A :class:`Summary` of an engine trace (times in ns, from the trace's ps), of the
    records of ``events`` only when given (the events a real trace recorded: a trace of
    ``-e kvm:kvm_exit -e kvm:kvm_entry`` is compared with the model's exits and entries)."""
    from irqlab.engine.trace import thread_name

    s = Summary()
    for t, seq, thread, event, text in trace.sorted():
        if events is not None and event not in events:
            continue
        comm, pid, cpu = thread_name(thread)
        s.add(make_record(SOURCE, seq, 0, event, text, t / 1000, cpu, comm, pid))
    return s


def run_model(program, lane, events: frozenset[str] | None = None) -> Summary:
    """Run one lane of ``program`` with tracing and summarize its records (of ``events``)."""
    from irqlab import engine

    result = engine.run(program, [lane], trace_lanes=[0])
    if result.status[0] != "ok":
        raise ScenarioError(f"the scenario's run failed: {result.error[0]}")
    return summarize_trace(result.traces[0], events)


def main_loop(summary: Summary):
    """``(stream id, Loop)`` of the stream whose loop covers most records, or None."""
    best = None
    for sid, loop in summary.loops().items():
        if loop is not None and (best is None or loop.covered > best[1].covered):
            best = (sid, loop)
    return best
