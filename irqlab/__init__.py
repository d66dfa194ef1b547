"""irqlab: model, sweep and explain interrupt storms in virtualized x86 machines.

The pipeline (each stage importable on its own):

    .scn text --dsl.parse--> tree --dsl.lower--> ir.Scenario
        --engine.compile--> Program --engine.run(lanes)--> BatchResult
        --experiments--> results (Parquet + SQL) --> query / plot
"""

__version__ = "0.1.0"

_API = ("open", "run", "Results")


def __getattr__(name: str):
    """``irqlab.open``, ``irqlab.run`` and ``irqlab.Results`` (see :mod:`irqlab.analysis`),
    imported on first use so that ``import irqlab`` stays light."""
    if name in _API:
        from irqlab import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'irqlab' has no attribute {name!r}")
