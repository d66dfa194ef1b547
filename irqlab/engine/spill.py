"""An append-only list that keeps a bounded part of itself in memory.

A traced run can emit far more records than fit in memory. :class:`Spill`
holds at most ``chunk`` items in memory; each full chunk is pickled to an
anonymous temporary file (deleted when the list is, or when the process ends).
It reads back in emission order, or sorted by an external merge sort whose
memory is again about one chunk, so a trace of any length can be written out
(``irqlab run --trace``, ``irqlab trace --perfetto``) without holding it.
"""

from __future__ import annotations

import heapq
import pickle
from array import array
import tempfile
from typing import IO, Any, Callable, Iterable, Iterator

CHUNK = 1 << 15  # items in memory per list; a trace record is about 250 bytes


class Spill:
    """Append-only list of picklable items, at most ``chunk`` of them in memory.

    If a chunk cannot be written (a full disk), appending goes on (the run that
    records it is not lost) but keeps nothing more, and reading raises the error.

    ``len``, iteration (emission order) and ``==`` (item by item, with any iterable
    of the same length) behave as for a list; :meth:`iter_sorted` reads the items
    in sorted order without loading them all.
    """

    def __init__(self, items: Iterable[Any] = (), chunk: int | None = None) -> None:
        self.chunk = max(1, CHUNK if chunk is None else chunk)
        self._buf: list[Any] = []
        self._file: IO[bytes] | None = None
        self._chunks = array("q")  # file offsets of the spilled chunks, in emission order
        self._n = 0
        self.error: OSError | None = None  # why a chunk could not be spilled (a full disk)
        for x in items:
            self.append(x)

    def append(self, item: Any) -> None:
        self._n += 1
        if self.error is not None:
            return
        self._buf.append(item)
        if len(self._buf) >= self.chunk:
            try:
                self._chunks.append(_dump(self._spill_file(), self._buf))
            except OSError as e:  # the run goes on; reading the list raises this
                self.error = e
            self._buf = []

    def _spill_file(self) -> IO[bytes]:
        if self._file is None:
            self._file = _temporary("irqlab-trace-")
        return self._file

    @property
    def spilled(self) -> int:
        """How many items are on disk rather than in memory."""
        return self._n - len(self._buf)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Any]:
        self._check()
        for pos in self._chunks.tolist():
            yield from _load(self._file, pos)
        yield from list(self._buf)

    def __eq__(self, other: object) -> bool:
        try:
            if len(other) != len(self):  # type: ignore[arg-type]
                return False
            return all(a == b for a, b in zip(self, other))  # type: ignore[call-overload]
        except TypeError:
            return NotImplemented

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def __repr__(self) -> str:
        return f"Spill({self._n} items, {self.spilled} on disk)"

    def __reduce__(self):
        return (Spill, (list(self), self.chunk))

    def iter_sorted(self, key: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """The items in ascending order (by ``key``; stable: equal keys keep emission order).

        Each spilled chunk is sorted into a run on disk, written in blocks; runs are
        merged :data:`FANIN` at a time, reading one block of each, until :data:`FANIN`
        are left, which are merged as they are read. Memory: about ``chunk`` items.
        """
        self._check()
        if not self._chunks:
            yield from sorted(self._buf, key=key)
            return
        block = max(1, self.chunk // FANIN)
        runs_file = _temporary("irqlab-sort-")
        try:
            runs: list[array] = []  # block offsets of each sorted run
            idx = 0
            for part in [*self._chunks, None]:
                items = list(self._buf) if part is None else _load(self._file, part)
                if key is None:
                    items.sort()
                else:  # decorated: (key, emission index, item); the index settles every tie
                    items = sorted((key(x), idx + i, x) for i, x in enumerate(items))
                idx += len(items)
                runs.append(_write_run(runs_file, items, block))
                del items
            while len(runs) > FANIN:
                runs = [_write_run(runs_file, _merge(runs_file, runs[k:k + FANIN]), block)
                        for k in range(0, len(runs), FANIN)]
            merged = _merge(runs_file, runs)
            yield from merged if key is None else (x for _, _, x in merged)
        finally:
            runs_file.close()


FANIN = 16  # sorted runs merged at once


def _write_run(fh: IO[bytes], items: Iterable[Any], block: int) -> array:
    """Write sorted ``items`` to ``fh`` in blocks of ``block``; the blocks' offsets."""
    out, buf = array("q"), []
    for x in items:
        buf.append(x)
        if len(buf) >= block:
            out.append(_dump(fh, buf))
            buf = []
    if buf:
        out.append(_dump(fh, buf))
    return out


def _merge(fh: IO[bytes], runs: list[array]) -> Iterator[Any]:
    return heapq.merge(*(_read_blocks(fh, blocks) for blocks in runs))


def _dump(fh: IO[bytes], items: list[Any]) -> int:
    """Append ``items`` to ``fh`` as one pickle; its offset. A failed write (a full disk)
    is an OSError naming the temporary directory."""
    try:
        pos = fh.seek(0, 2)
        pickle.dump(items, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as e:
        raise _spill_error(e) from e
    return pos


def _temporary(prefix: str) -> IO[bytes]:
    """An anonymous temporary file (gone when closed or when the process ends)."""
    try:
        return tempfile.TemporaryFile(prefix=prefix)
    except OSError as e:
        raise _spill_error(e) from e


def _spill_error(e: OSError) -> OSError:
    """``e`` as an error naming the temporary directory (the command line reports it)."""
    return OSError(e.errno, f"{e.strerror or e} (a long trace is kept there; TMPDIR chooses where)",
                   tempfile.gettempdir())


def _load(fh: IO[bytes] | None, pos: int) -> list[Any]:
    assert fh is not None
    fh.seek(pos)
    return pickle.load(fh)


def _read_blocks(fh: IO[bytes], blocks: array) -> Iterator[Any]:
    for pos in blocks:
        yield from _load(fh, pos)
