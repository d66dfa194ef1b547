"""Writing imported records to Parquet, in row groups, as they stream in.

Rows are buffered as tuples and written every :data:`ROW_GROUP` records with
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
        self.buf: list[tuple] = []  # rows not yet written, one tuple of NAMES' values each
        self.rows = 0

    def add(self, rec: dict) -> None:
        self.buf.append(tuple(map(rec.get, NAMES)))
        if len(self.buf) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.buf:
            return
        cols = dict(zip(NAMES, zip(*self.buf)))
        cols["ts_ns"] = [None if t is None else int(round(t)) for t in cols["ts_ns"]]
        batch = pa.record_batch([pa.array(cols[f.name], type=f.type) for f in self.schema],
                                schema=self.schema)
        self.writer.write_batch(batch)
        self.rows += len(self.buf)
        self.buf = []

    def close(self) -> None:
        """Write what is left and move the file into place."""
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (the output path is left as it was)."""
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - a writer that failed may fail to close too
            pass
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise
