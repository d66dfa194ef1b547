"""Column and view names: how dotted paths become SQL/Parquet column names.

The rule (also in ``docs/results.md``):

* run columns are fixed: :data:`RUN_COLUMNS`;
* a metric keeps its flat name (``BatchResult.flat_columns()``) with every
  character other than ``[A-Za-z0-9_]`` (the dots) turned into ``_``:
  ``exits.VMRESUME`` -> ``exits_VMRESUME``,
  ``device.uhci.latency_p99_ns`` -> ``device_uhci_latency_p99_ns``;
* a parameter gets the shortest suffix of its dotted path, in whole segments,
  that is unique among the sweep's parameter paths, with ``.`` -> ``_``
  (``mitigation.qemu_eoi_throttle.threshold`` -> ``threshold``; with
  ``device.a.service`` and ``device.b.service`` both swept: ``a_service``,
  ``b_service``). A suffix is lengthened while it starts with a digit, is an
  SQL keyword, or clashes (case-insensitively) with a run or metric column;
  if even the whole path clashes, it is prefixed with ``param_``.

Pure Python: no numpy, no pyarrow.
"""

from __future__ import annotations

import re
from typing import Iterable

RUN_COLUMNS = ("run_id", "point", "replication", "seed", "spawn_key", "status", "error", "wall_s")

# Words that cannot be bare column names in SQLite or PostgreSQL (and a few that read badly).
SQL_KEYWORDS = frozenset("""
all alter analyse analyze and any array as asc asymmetric between both by case cast check collate
column constraint create cross current_date current_time current_timestamp current_user default
deferrable delete desc distinct do drop else end except exists false fetch for foreign from full
grant group having in index initially inner insert intersect into is isnull join lateral leading
left like limit localtime localtimestamp natural not notnull null offset on only or order outer
overlaps placing primary references returning right select session_user similar some symmetric
table then to trailing true union unique update user using values variadic when where window with
""".split())

_BAD = re.compile(r"[^A-Za-z0-9_]")


def sanitize(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    return _BAD.sub("_", name)


def metric_column(flat_name: str) -> str:
    """The column name of a flat metric name (``exits.VMRESUME`` -> ``exits_VMRESUME``)."""
    return sanitize(flat_name)


def param_columns(paths: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """``{dotted path: column name}`` for a sweep's parameter paths (see the module rule).

    ``taken``: names already used by run and metric columns (compared
    case-insensitively). The result is deterministic and independent of the
    order of ``paths``.
    """
    paths = sorted(set(paths))
    used = {t.lower() for t in taken} | {c.lower() for c in RUN_COLUMNS}
    split = {p: p.split(".") for p in paths}
    out: dict[str, str] = {}
    for p in paths:
        segs = split[p]
        name = None
        for k in range(1, len(segs) + 1):
            suffix = segs[-k:]
            if any(q != p and split[q][-k:] == suffix for q in paths):
                continue  # not unique among the parameters
            cand = sanitize("_".join(suffix))
            if cand[:1].isdigit() or cand.lower() in SQL_KEYWORDS or cand.lower() in used:
                continue
            name = cand
            break
        if name is None:
            name = "param_" + sanitize(p)
        while name.lower() in used or name.lower() in {v.lower() for v in out.values()}:
            name += "_"
        out[p] = name
    return out


def view_name(sweep_no: int) -> str:
    """The wide view of sweep number ``sweep_no``: ``sweep_<no>``."""
    return f"sweep_{sweep_no}"


def data_table(sweep_no: int) -> str:
    """The table behind the wide view: ``sweep_<no>_data``."""
    return f"sweep_{sweep_no}_data"


def alias_view(sweep_name: str) -> str | None:
    """``sweep_<name>`` (sanitized, lower case) for the latest sweep of that name, or None
    when the name would look like a numbered view."""
    safe = sanitize(sweep_name).lower().strip("_")
    if not safe or safe[0].isdigit() or re.fullmatch(r"\d+(_data)?", safe):
        return None
    return f"sweep_{safe}"
