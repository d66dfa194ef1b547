"""Writing imported records to Parquet, in row groups, as they stream in.

Rows are buffered per column and written every :data:`ROW_GROUP` records with
``pyarrow.parquet.ParquetWriter``, so memory stays bounded whatever the input's
size. The file is written under a temporary name and renamed into place on
:meth:`TraceWriter.close`, so a failed import leaves no half-written output.
"""

from __future__ import annotations

import os

from irqlab.traces.schema import NAMES, arrow_schema

ROW_GROUP = 65536


class TraceWriter:
    """``with TraceWriter(path) as w: w.add(record)`` (a dict of schema columns)."""

    def __init__(self, path: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.tmp = f"{path}.partial"
        self.schema = arrow_schema()
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.cols: dict[str, list] = {n: [] for n in NAMES}
        self.n = 0
        self.rows = 0

    def add(self, rec: dict) -> None:
        for name, col in self.cols.items():
            col.append(rec.get(name))
        self.n += 1
        if self.n >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.n:
            return
        ts = self.cols["ts_ns"]
        self.cols["ts_ns"] = [None if t is None else int(round(t)) for t in ts]
        batch = pa.record_batch([pa.array(self.cols[f.name], type=f.type) for f in self.schema],
                                schema=self.schema)
        self.writer.write_batch(batch)
        self.rows += self.n
        self.cols = {n: [] for n in NAMES}
        self.n = 0

    def close(self) -> None:
        """Write what is left and move the file into place."""
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (the output path is left as it was)."""
        try:
            self.writer.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
