"""Real traces in: import kvm trace text, find the loop a machine is stuck in, compare
it with a scenario's, and fit the scenario's costs to the trace's timings.

* :mod:`~irqlab.traces.lines`: one line of ``trace-cmd report``/``perf script``/excerpt text;
* :mod:`~irqlab.traces.fields`: the typed fields of each kvm event, across kernel versions;
* :mod:`~irqlab.traces.reader`: files (text, irqlab's Perfetto JSON, imported Parquet) as records;
* :mod:`~irqlab.traces.schema`, :mod:`~irqlab.traces.table`: the Arrow schema and Parquet writer;
* :mod:`~irqlab.traces.summary`, :mod:`~irqlab.traces.cycles`: counts and the storm detector;
* :mod:`~irqlab.traces.model`: a scenario's run seen as a trace;
* :mod:`~irqlab.traces.compare`, :mod:`~irqlab.traces.calibrate`: alignment and cost fitting.
"""
