"""The answer table printed at the end of a sweep.

One row per combination of the ``by`` parameters (default: every swept
parameter that takes more than one value), aggregated over the runs there
(replications, and any parameter not in ``by``):

* ``runs``: ok runs / runs (failed runs are counted, never averaged);
* ``livelock``: the fraction of ok runs that livelocked;
* ``time to L2 progress``: the mean over ok runs that progressed, and how
  many never did (``time to progress`` of the innermost level when the
  scenario has no L2);
* ``L2 fraction``: the mean share of time spent running L2 guest code
  (nested scenarios only).

Values are shown to 4 significant digits.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from irqlab.ir import Quantity, format_quantity

MAX_ROWS = 40


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def _fmt_param(v: Any, unit: str) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)) and unit in ("s", "Hz"):
        return format_quantity(Quantity(_sig(float(v)), unit))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt_ns(v: float) -> str:
    return format_quantity(Quantity(_sig(v * 1e-9), "s"))


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """The shortest unique dotted suffix of each path (``...qemu_eoi_throttle.delay`` -> ``delay``)."""
    split = {p: p.split(".") for p in paths}
    out = {}
    for p in paths:
        segs = split[p]
        for k in range(1, len(segs) + 1):
            if not any(q != p and split[q][-k:] == segs[-k:] for q in paths):
                out[p] = ".".join(segs[-k:])
                break
        else:
            out[p] = p
    return out


def _mean(xs: Iterable[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else math.nan


def answer_table(rows: Sequence[Any], param_paths: Sequence[str], by: Sequence[str] | None = None,
                 units: Mapping[str, str] | None = None, nested: bool = True
                 ) -> tuple[list[str], list[list[str]], int]:
    """``(header, rows, groups)``: the table as text cells, at most :data:`MAX_ROWS` rows,
    and the total number of groups. ``rows`` are :class:`~.driver.RunRow` s; ``nested``:
    the scenario runs an L2 (else progress is the innermost level's, and there is no
    L2 fraction)."""
    units = dict(units or {})
    if by is None:
        by = [p for p in param_paths
              if len({repr(r.params.get(p)) for r in rows}) > 1]
    groups: dict[tuple, list[Any]] = {}
    for r in sorted(rows, key=lambda r: (r.point, r.replication)):
        groups.setdefault(tuple(repr(r.params.get(p)) for p in by), []).append(r)
    progress_metric = "time_to_l2_progress_ns" if nested else "time_to_progress_ns"
    names = short_names(list(by))
    header = [names[p] for p in by] + [
        "runs", "livelock", "time to L2 progress" if nested else "time to progress", "never"]
    if nested:
        header.append("L2 fraction")
    out = []
    for rs in groups.values():
        oks = [r for r in rs if r.status == "ok"]
        cells = [_fmt_param(rs[0].params.get(p), units.get(p, "")) for p in by]
        cells.append(f"{len(oks)}/{len(rs)}")
        if oks:
            ll = _mean([float(bool(r.metrics.get("livelock"))) for r in oks])
            prog = [r.metrics.get(progress_metric) for r in oks]
            never = sum(1 for x in prog if x is None or (isinstance(x, float) and math.isnan(x)))
            mp = _mean(prog)
            cells += [f"{ll:.2f}", "-" if math.isnan(mp) else _fmt_ns(mp), str(never)]
            if nested:
                frac = _mean([r.metrics.get("l2_fraction") for r in oks])
                cells.append("-" if math.isnan(frac) else f"{frac:.3f}")
        else:
            cells += ["-"] * (len(header) - len(cells))
        out.append(cells)
    return header, out[:MAX_ROWS], len(out)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], total: int) -> str:
    """Plain text, columns aligned (numbers right, parameters left)."""
    if not rows:
        return "(no runs)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if total > len(rows):
        lines.append(f"... {total - len(rows)} more rows (aggregate with --by PATH, or use "
                     "'irqlab query')")
    return "\n".join(lines)
