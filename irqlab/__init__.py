"""irqlab: model, sweep and explain interrupt storms in virtualized x86 machines.

The pipeline (each stage importable on its own):

    .scn text --dsl.parse--> tree --dsl.lower--> ir.Scenario
        --engine.compile--> Program --engine.run(lanes)--> BatchResult
        --experiments--> results (Parquet + SQL) --> query / plot
"""

__version__ = "0.1.0"
