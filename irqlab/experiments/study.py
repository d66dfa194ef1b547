"""A *study*: every sweep of one file, run one after the other, joined in one table.

The embedded default job (``irqlab sweep`` with no file) is a study: the
same mitigation settings swept on the founding storm and on a well-behaved
device, for each mitigation of the seed. ``irqlab sweep FILE --all`` runs
any file this way.

Each *member* is a scenario of the file that has a ``sweep`` (its own or
inherited). It is run as an ordinary sweep of its own text: the file's
*prelude* (everything before the first member: shared bases, params,
imports) followed by the member's own lines (from the end of the previous
member). So each member's stored scenario text has that member as its main
(last) scenario, ``irqlab reproduce`` reruns it as it is, and members get
their own sweep ids and views (``sweep_<name>``). A member may extend
scenarios of the prelude, not another member.

The table (:func:`tradeoff_table`) joins members that sweep the same
parameter paths (one row per combination of their values) and shows, per
member, what answers its side of the question:

* a member whose devices all have one arrival (``arrival once``, a storm
  episode): the mean time to L2 progress (to progress without L2) and the
  mean L2 share;
* any other member: for each device with recurring arrivals, its latency
  p99 (mean over replications) and throughput (services per second).

A row is on the *Pareto front* (``*``) when no other row is at least as
good in every column and better in one (less time, more share, less
latency, more throughput).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from irqlab.errors import ScenarioError, Span
from irqlab.experiments.table import _fmt_ns, _fmt_param, _mean, short_names


@dataclass(frozen=True)
class Member:
    """One sweep of a study: the scenario's name, its own text, and what it answers."""

    name: str
    text: str
    episode: bool  # every device raises once: time to progress and L2 share
    devices: tuple[str, ...]  # devices with recurring arrivals: p99 and throughput


def members(text: str, file: str) -> list[Member]:
    """The study members of ``text`` in file order (see the module docstring).

    Raises ScenarioError for a file that does not lower, that has no sweep,
    or whose members cannot stand alone (one extends another member)."""
    from irqlab.dsl.lowering import lower_text_all

    built = lower_text_all(text, file)
    swept = [s for s in built.values() if s.sweep is not None]
    if not swept:
        raise ScenarioError("no scenario in this file has a sweep", Span(file, 1, 1, 1, 2),
                            hint="add 'sweep { PATH = [v1, v2] }' to a scenario")
    lines = text.splitlines(keepends=True)
    starts = [s.span.line for s in swept]
    prelude = "".join(lines[:starts[0] - 1])
    out, prev_end = [], starts[0] - 1
    for s in swept:
        end = s.span.end_line or s.span.line
        own = "".join(lines[prev_end:end])
        prev_end = end
        once = [d for d in s.devices if d.arrival.name == "once"]
        out.append(Member(s.name, prelude + own, episode=len(once) == len(s.devices),
                          devices=tuple(d.name for d in s.devices if d.arrival.name != "once")))
    return out


# --------------------------------------------------------------------------- the table

def metric_paths(member: Member) -> tuple[str, ...]:
    """The stored metrics the table reads for ``member``."""
    if member.episode:
        return ("time_to_l2_progress_ns", "time_to_progress_ns", "l2_fraction", "livelock")
    return ("sim_time_ns", *(f"device.{d}.{m}" for d in member.devices
                             for m in ("latency_p99_ns", "serviced")))


@dataclass(frozen=True)
class Column:
    """One value column: its header, whether more is better, and how to show it."""

    header: str
    higher_is_better: bool
    kind: str  # "ns", "share" or "rate"


def _columns(member: Member, nested: bool) -> list[Column]:
    if member.episode:
        label = "storm: L2 runs after" if nested else "storm: progress after"
        return [Column(label, False, "ns"), Column("L2 share", True, "share")] if nested \
            else [Column(label, False, "ns")]
    out = []
    for d in member.devices:
        out += [Column(f"{d} p99", False, "ns"), Column(f"{d} per s", True, "rate")]
    return out


def _values(member: Member, rows: Sequence[Any], nested: bool) -> list[float]:
    ok = [r for r in rows if r.status == "ok"]
    if member.episode:
        prog = [r.metrics.get("time_to_l2_progress_ns" if nested else "time_to_progress_ns")
                for r in ok]
        # a run that never progressed counts as the whole run: the storm never ended in it
        vals = [_mean([p if p is not None and not math.isnan(p) else math.inf for p in prog])
                if prog else math.nan]
        if nested:
            vals.append(_mean([r.metrics.get("l2_fraction") for r in ok]))
        return vals
    out = []
    for d in member.devices:
        out.append(_mean([r.metrics.get(f"device.{d}.latency_p99_ns") for r in ok]))
        out.append(_mean([r.metrics[f"device.{d}.serviced"] / (r.metrics["sim_time_ns"] * 1e-9)
                          for r in ok if r.metrics.get("sim_time_ns")]))
    return out


def _fmt_value(v: Any, unit: str) -> str:
    """A swept value as the table shows it: a whole number stays whole (``10000``)."""
    if isinstance(v, float) and not unit and v.is_integer():
        return str(int(v))
    return _fmt_param(v, unit)


def _fmt(v: float, kind: str) -> str:
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "never"
    if kind == "ns":
        return _fmt_ns(v)
    if kind == "share":
        return f"{v:.3f}"
    return f"{v:,.0f}"


def pareto_front(points: Sequence[Sequence[float]], higher: Sequence[bool]) -> list[bool]:
    """For each point, whether no other point dominates it (at least as good in every
    coordinate, better in one); ``higher[i]``: more is better in coordinate ``i``.
    A point with a missing (NaN) coordinate is never on the front."""
    def key(p):
        return [(-x if h else x) for x, h in zip(p, higher)]

    ks = [key(p) for p in points]
    out = []
    for i, a in enumerate(ks):
        if any(math.isnan(x) for x in a):
            out.append(False)
            continue
        dominated = any(all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b))
                        for j, b in enumerate(ks) if j != i and not any(math.isnan(y) for y in b))
        out.append(not dominated)
    return out


@dataclass
class Side:
    """A member's results for the table: the member, its swept paths and units, its rows."""

    member: Member
    param_paths: tuple[str, ...]
    units: dict[str, str]
    rows: list[Any]
    nested: bool


@dataclass(frozen=True)
class TradeoffRow:
    """One setting: the group (the mitigation), its parameter cells and its values."""

    group: str
    params: tuple[str, ...]
    values: tuple[float, ...]


def tradeoff(sides: Sequence[Side]) -> tuple[list[Column], list[str], list[TradeoffRow]]:
    """``(value columns, parameter headers, rows)``: the members joined per group (members
    sweeping the same paths), one row per combination of swept values (in the order of
    the values), groups in file order. A parameter header is the paths' last name where
    every group agrees (``threshold``), else ``param N``. A row of a group that lacks a
    column has NaN there."""
    columns: list[Column] = []
    for s in sides:
        for c in _columns(s.member, s.nested):
            if c not in columns:
                columns.append(c)
    groups: dict[tuple[str, ...], list[Side]] = {}
    for s in sides:
        groups.setdefault(s.param_paths, []).append(s)
    width = max(len(p) for p in groups)
    headers = []
    for i in range(width):
        last = {p[i].rsplit(".", 1)[-1] for p in groups if i < len(p)}
        headers.append(last.pop() if len(last) == 1 else f"param {i + 1}")
    out: list[TradeoffRow] = []
    for paths, members_ in groups.items():
        by_point: dict[tuple, dict[str, float]] = {}
        cells: dict[tuple, tuple[str, ...]] = {}
        order: dict[tuple, tuple] = {}
        for s in members_:
            grouped: dict[tuple, list[Any]] = {}
            for r in s.rows:
                grouped.setdefault(tuple(repr(r.params.get(p)) for p in paths), []).append(r)
            for key, rs in grouped.items():
                params = [rs[0].params.get(p) for p in paths]
                order.setdefault(key, tuple((isinstance(v, str), v if not isinstance(v, str) else 0,
                                             str(v)) for v in params))
                cells.setdefault(key, tuple(_fmt_value(v, s.units.get(p, ""))
                                            for v, p in zip(params, paths)) + ("",) * (width - len(paths)))
                vals = by_point.setdefault(key, {})
                for c, v in zip(_columns(s.member, s.nested), _values(s.member, rs, s.nested)):
                    vals[c.header] = v
        for key in sorted(by_point, key=lambda k: order[k]):
            out.append(TradeoffRow(_group_label(paths), cells[key],
                                   tuple(by_point[key].get(c.header, math.nan) for c in columns)))
    return columns, headers, out


def _group_label(paths: Sequence[str]) -> str:
    """``mitigation.qemu_eoi_throttle.threshold``, ``...delay`` -> ``qemu_eoi_throttle``:
    the plugin the paths belong to (what they share, less the section), else their
    short names."""
    parts = [p.split(".")[:-1] for p in paths]  # the parameter's owner
    common = []
    for segs in zip(*parts):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    if len(common) > 1 and common[0] in ("mitigation", "device", "param", "machine", "run", "costs"):
        common = common[1:]
    return ".".join(common) if common else ", ".join(short_names(list(paths)).values())


def _merge_labels(texts: Sequence[str]) -> str:
    """``["10 / 1ms", "10 / 10ms"]`` -> ``"10 / 1ms, 10ms"``: settings at one spot."""
    firsts = {t.split(" / ", 1)[0] for t in texts}
    if len(firsts) == 1 and all(" / " in t for t in texts):
        return f"{firsts.pop()} / " + ", ".join(t.split(" / ", 1)[1] for t in texts)
    return "; ".join(texts)


def tradeoff_table(sides: Sequence[Side]) -> tuple[list[str], list[list[str]], int]:
    """``(header, rows, n)``: the study's table as text cells: the group (``mitigation``),
    its ``n`` parameter columns, the value columns, and ``front`` (``*`` on the Pareto
    front over every value column)."""
    columns, param_headers, rows = tradeoff(sides)
    front = pareto_front([r.values for r in rows], [c.higher_is_better for c in columns])
    header = ["mitigation", *param_headers, *(c.header for c in columns), "front"]
    out = []
    for r, f in zip(rows, front):
        out.append([r.group, *r.params, *(_fmt(v, c.kind) for v, c in zip(r.values, columns)),
                    "*" if f else ""])
    return header, out, len(param_headers)


def format_tradeoff(header: Sequence[str], rows: Sequence[Sequence[str]], n_params: int) -> str:
    """Plain text: the group column left-aligned, the rest right-aligned."""
    n_left = 1
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < n_left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def plot_tradeoff(sides: Sequence[Side], out_path: str) -> str | None:
    """Draw the storm's time to L2 progress against the first device's latency p99, one
    marker per setting and mitigation, the Pareto front joined by a line; writes
    ``out_path`` (PNG) and returns it, or None when no member pair has both values."""
    columns, _, rows = tradeoff(sides)
    xi = next((i for i, c in enumerate(columns) if c.kind == "ns" and c.header.startswith("storm")), None)
    yi = next((i for i, c in enumerate(columns) if c.kind == "ns" and i != xi), None)
    if xi is None or yi is None:
        return None
    pts = [(r, r.values[xi], r.values[yi]) for r in rows
           if all(math.isfinite(v) and v > 0 for v in (r.values[xi], r.values[yi]))]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front([(x, y) for _, x, y in pts], [False, False])
    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = "osD^vP*X"
    offsets = ((5, 4), (5, -11), (5, 15))
    for gi, g in enumerate(dict.fromkeys(r.group for r, _, _ in pts)):
        mine = [(r, x * 1e-6, y * 1e-6) for r, x, y in pts if r.group == g]
        ax.scatter([x for _, x, _ in mine], [y for _, _, y in mine], marker=markers[gi % len(markers)],
                   s=46, alpha=0.75, label=g)
        labels: dict[tuple[float, float], list[str]] = {}
        for r, x, y in mine:  # settings that land on one spot share one label
            labels.setdefault((x, y), []).append(" / ".join(c for c in r.params if c))
        for (x, y), texts in labels.items():
            ax.annotate(_merge_labels(texts), (x, y), textcoords="offset points",
                        xytext=offsets[gi % len(offsets)], fontsize=6.5, alpha=0.85)
    fp = sorted((x * 1e-6, y * 1e-6) for (_, x, y), f in zip(pts, front) if f)
    ax.step([p[0] for p in fp], [p[1] for p in fp], where="post", color="black", lw=1,
            ls="--", label="Pareto front (these two axes)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    nested = "L2" in columns[xi].header
    ax.set_xlabel(f"storm: time until {'L2 runs' if nested else 'progress'} [ms]")
    ax.set_ylabel(f"well-behaved device: {columns[yi].header} latency [ms]")
    ax.set_title("Storm throttles: ending the storm sooner vs delaying a legitimate device\n"
                 "(each point one threshold / delay; lower left is better)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
