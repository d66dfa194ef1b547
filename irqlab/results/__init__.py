"""Results: the schema, the Parquet dataset and SQL database, read-only queries, plots.

* :mod:`irqlab.results.store` -- :class:`ResultStore`, the sweep driver's one writer
* :mod:`irqlab.results.schema`, :mod:`irqlab.results.naming`, :mod:`irqlab.results.views`
  -- tables, column names, views (documented in ``docs/results.md``)
* :mod:`irqlab.results.query` -- read-only SQL and output formats
* :mod:`irqlab.results.reproduce`, :mod:`irqlab.results.plot`

Importing this package is cheap: pyarrow, SQLAlchemy and matplotlib load when used.
"""

from irqlab.results.store import ResultStore, RunInfo, SweepInfo

__all__ = ["ResultStore", "RunInfo", "SweepInfo"]
