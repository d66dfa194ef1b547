"""Plots of a metric against one parameter (lines with 95% confidence intervals over
replications, one line per value of a second parameter) or two (a heatmap of means);
and of a latency histogram (``device.<dev>.latency_hist``): the distribution of
every successful run's services, one line per value of a parameter.

Axes carry a human name and its unit (``time to L2 progress [ms]``): metrics
take theirs from ``METRICS``/``DEVICE_METRICS`` (through the ``sweep_columns``
catalog), parameters from the units stored with their values. Times and
frequencies are shown in a readable scale (ns/us/ms/s, Hz/kHz/MHz/GHz), on log
axes when the values span two decades or more (unless ``logx``/``logy`` say
otherwise). The title names the sweep as the other commands do (``sweep <id>
(<name>)``); lines differ in marker and style, and lines that coincide are named
in the caption, as is every swept parameter the plot averages (or sums) over.
matplotlib runs with the Agg backend; PNG or SVG by suffix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError, did_you_mean
from irqlab.results import catalog
from irqlab.results.query import run_query

# two-sided 95% Student t quantiles for 1..30 degrees of freedom
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_SCALES = {
    "s": [(1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")],
    "ns": [(1e9, "s"), (1e6, "ms"), (1e3, "us"), (1.0, "ns")],
    "Hz": [(1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz")],
}


@dataclass
class Col:
    """A column of a sweep's wide view as the plot sees it."""

    name: str
    path: str
    role: str
    unit: str


def t95(n: int) -> float:
    """The 95% two-sided t quantile for a mean of ``n`` samples."""
    return _T95[n - 2] if 2 <= n <= 31 else 1.96


def scale_for(unit: str, values: Any) -> tuple[float, str]:
    """``(divisor, display unit)`` so that the values read well."""
    import numpy as np

    if unit not in _SCALES:
        return 1.0, unit
    v = np.asarray(values, np.float64)
    v = np.abs(v[np.isfinite(v) & (v != 0)])
    if not v.size:
        return _SCALES[unit][-1 if unit != "s" else 0]
    m = float(np.median(v))
    for div, name in _SCALES[unit]:
        if m >= div:
            return div, name
    return _SCALES[unit][-1]


_UNIT_SUFFIX = re.compile(r"_(ns|us|ms|s|hz|per_s)$", re.I)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLES = ("-", "--", "-.", ":")
DECADES = 2.0  # values spanning this many decades (max/min >= 100) get a log axis


def human(col: Col) -> str:
    """A readable name: the path's last segment without its unit suffix, ``_`` as spaces,
    levels as ``L0``/``L1``/``L2``, a device metric prefixed with its device
    (``device.uhci.latency_p99_ns`` -> ``uhci latency p99``)."""
    segs = col.path.split(".") if col.path else [col.name]
    base = segs[-1]
    if col.role == "metric" and segs[0] in ("exits", "userspace_exits", "mitigation_activations"):
        base = "_".join(segs)
    words = _UNIT_SUFFIX.sub("", base).replace("_", " ").strip() or base
    words = re.sub(r"\bl([012])\b", r"L\1", words)
    if col.role == "metric" and segs[0] == "device" and len(segs) == 3:
        words = f"{segs[1]} {words}"
    return words


def label(col: Col, unit: str) -> str:
    """An axis label: the human name and its unit in brackets (``delay [ms]``)."""
    return f"{human(col)} [{unit}]" if unit else human(col)


def sweep_title(what: str, sw: dict) -> str:
    """``<what>: sweep <id> (<name>)``, the sweep named as the other commands name it."""
    return f"{what}: sweep {sw['sweep_id']} ({sw['name']})" if sw.get("name") else \
        f"{what}: sweep {sw['sweep_id']}"


def spans_decades(values: Any) -> bool:
    """True if the finite positive ``values`` span :data:`DECADES` decades or more (and
    none is zero or negative, which a log axis cannot show)."""
    import numpy as np

    v = np.asarray([x for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)],
                   np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.any(v <= 0):
        return False
    return math.log10(v.max() / v.min()) >= DECADES


def averaged_caption(target: str, view: str, cols: list[Col], shown: list[Col], verb: str,
                     where: str = "status = 'ok'") -> str:
    """``mean over delay (2 values)``: the swept parameters that are not on the plot but
    take several values among the runs drawn; empty if there are none."""
    others = [c for c in cols if c.role == "param" and c.name not in {s.name for s in shown}]
    if not others:
        return ""
    sel = ", ".join(f'count(DISTINCT "{c.name}")' for c in others)
    counts = run_query(target, f'SELECT {sel} FROM "{view}" WHERE {where}').rows[0]
    parts = [f"{human(c)} ({n} values)" for c, n in zip(others, counts) if n and n > 1]
    return f"{verb} over " + ", ".join(parts) if parts else ""


def resolve_column(cols: list[Col], name: str, role: str | None = None) -> Col:
    """A column by name, dotted path or unique dotted suffix; ScenarioError otherwise."""
    pool = [c for c in cols if role is None or c.role == role]
    for c in pool:
        if name in (c.name, c.path):
            return c
    hits = [c for c in pool if c.path.endswith("." + name) or c.name.endswith("_" + name)]
    if len(hits) == 1:
        return hits[0]
    kind = {"param": "parameter", "metric": "metric"}.get(role or "", "column")
    if len(hits) > 1:
        raise ScenarioError(f"'{name}' matches several {kind}s: "
                            + ", ".join(c.name for c in hits))
    raise ScenarioError(f"no {kind} '{name}' in this sweep",
                        hint=did_you_mean(name, [c.name for c in pool] + [c.path for c in pool])
                        or f"{kind}s: " + ", ".join(c.name for c in pool))


def sweep_columns(target: str, sweep_id: str) -> list[Col]:
    """The catalog of a sweep's wide view."""
    res = run_query(target, "SELECT column_name, path, role, unit FROM sweep_columns "
                            "WHERE sweep_id = :s ORDER BY ordinal", {"s": sweep_id})
    return [Col(a, b, c, d or "") for a, b, c, d in res.rows]


def plot(target: str, metric: str, x: str | None, *, out: str, hue: str | None = None,
         y: str | None = None, sweep: str | None = None, logx: bool | None = None,
         logy: bool | None = None, title: str | None = None) -> dict[str, Any]:
    """Draw ``metric`` against parameter ``x`` (lines, one per ``hue`` value, 95% CI bands)
    or, with ``y``, a heatmap over ``x`` and ``y``; a histogram metric is drawn as a
    distribution, one line per ``hue`` value. Only runs with status ``ok`` count.
    ``logx``/``logy``: None picks a log axis when the values span two decades.
    Returns a summary (rows used, groups, ``caption``, ``logx``, ``logy``)."""
    import numpy as np

    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ScenarioError(f"cannot write a plot to '{out}'", hint="use a .png or .svg file")
    if hue and y:
        raise ScenarioError("give either a second parameter for lines (--by) or for a heatmap "
                            "(-y), not both")
    sw = catalog.find_sweep(target, sweep) if sweep else catalog.latest_sweep(target)
    cols = sweep_columns(target, sw["sweep_id"])
    if not cols:
        raise ScenarioError(f"sweep '{sw['sweep_id']}' has no stored runs yet")
    hist = _histogram_name(target, sw["sweep_id"], metric)
    if hist is None and _looks_like_histogram(metric):
        raise ScenarioError(
            f"sweep {sw['sweep_id']} ({sw['name']}) stored no latency histograms, so there is "
            f"no {metric} to plot",
            hint="histograms are off by default: add 'histograms on' to the scenario's run "
                 "block (run { histograms on }) and run the sweep again")
    if hist is not None:
        if x or y:
            raise ScenarioError(f"{hist} is a histogram: its x axis is the latency",
                                hint="give --by PARAM for one line per value, or neither")
        by = resolve_column(cols, hue, "param") if hue else None
        return _plot_histogram(target, sw, cols, hist, by, out, suffix, logy, title)
    if not x:
        raise ScenarioError(f"plotting {metric} needs a parameter for the x axis (-x PARAM)")
    m = resolve_column(cols, metric, "metric")
    cx = resolve_column(cols, x, "param")
    second = resolve_column(cols, hue or y, "param") if (hue or y) else None
    if second is not None and second.name == cx.name:
        raise ScenarioError(f"{cx.name} is given for both -x and {'--by' if hue else '-y'}",
                            hint="the second parameter must be another one")
    q = lambda c: '"' + c.name + '"'  # noqa: E731
    sel = [q(cx), q(m)] + ([q(second)] if second else [])
    res = run_query(target, f"SELECT {', '.join(sel)} FROM \"{sw['view_name']}\" "
                            f"WHERE status = 'ok'")
    if not res.rows:
        raise ScenarioError(f"sweep '{sw['sweep_id']}' has no successful runs to plot")
    caption = averaged_caption(target, sw["view_name"], cols,
                               [cx] + ([second] if second else []), "mean")
    xs = [r[0] for r in res.rows]
    vals = np.array([np.nan if r[1] is None else float(r[1]) for r in res.rows])
    gs = [r[2] for r in res.rows] if second else [None] * len(xs)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text
        return _draw(plt, np, res, sw, m, cx, second, y, xs, vals, gs, out, suffix, logx, logy,
                     title, caption)


def _draw(plt, np, res, sw, m, cx, second, y, xs, vals, gs, out, suffix, logx, logy, title,
          caption):

    mdiv, munit = scale_for(m.unit, vals)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs
                    if v is not None)
    xdiv, xunit = scale_for(cx.unit, [v for v in xs if v is not None]) if numeric_x else (1.0, "")
    summary: dict[str, Any] = {"rows": len(xs), "sweep": sw["sweep_id"], "metric": m.path}
    if y:
        xv = sorted({v for v in xs if v is not None}, key=_key)
        yv = sorted({v for v in gs if v is not None}, key=_key)
        grid = np.full((len(yv), len(xv)), np.nan)
        acc: dict[tuple, list[float]] = {}
        for a, b, v in zip(xs, gs, vals):
            if a is not None and b is not None and not math.isnan(v):
                acc.setdefault((a, b), []).append(v)
        for (a, b), v in acc.items():
            grid[yv.index(b), xv.index(a)] = np.mean(v) / mdiv
        ydiv, yunit = scale_for(second.unit, yv) if all(
            isinstance(v, (int, float)) for v in yv) else (1.0, "")
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(xv)), [_fmt(v, xdiv) for v in xv], rotation=45, ha="right")
        ax.set_yticks(range(len(yv)), [_fmt(v, ydiv) for v in yv])
        ax.set_xlabel(label(cx, xunit))
        ax.set_ylabel(label(second, yunit))
        cb = fig.colorbar(im, ax=ax)
        cb.set_label(f"mean {label(m, munit)}")
        summary["cells"] = len(acc)
        logx = logy = False  # a heatmap's axes are categories
    else:
        groups: dict[Any, dict[Any, list[float]]] = {}
        for a, g, v in zip(xs, gs, vals):
            if a is not None and not math.isnan(v):
                groups.setdefault(g, {}).setdefault(a, []).append(v)
        hdiv, hunit = (scale_for(second.unit, [g for g in groups if g is not None])
                       if second and all(isinstance(g, (int, float)) for g in groups
                                         if g is not None) else (1.0, ""))
        means: dict[Any, tuple] = {}
        for k, g in enumerate(sorted(groups, key=_key)):
            pts = sorted(groups[g], key=_key)
            mean = np.array([np.mean(groups[g][p]) for p in pts]) / mdiv
            half = np.array([t95(len(groups[g][p])) * np.std(groups[g][p], ddof=1)
                             / math.sqrt(len(groups[g][p])) if len(groups[g][p]) > 1 else 0.0
                             for p in pts]) / mdiv
            xp = [p / xdiv for p in pts] if numeric_x else [str(p) for p in pts]
            name = None if g is None else f"{second.name} = {_fmt_unit(g, second.unit, hdiv, hunit)}"
            line, = ax.plot(xp, mean, marker=MARKERS[k % len(MARKERS)],
                            linestyle=STYLES[k % len(STYLES)], markerfacecolor="none",
                            markersize=6 + 2 * (k % 3), label=name)
            means.setdefault((tuple(map(str, xp)), tuple(np.round(mean, 12))), []).append(name)
            if np.any(half > 0):
                ax.fill_between(xp, mean - half, mean + half, alpha=0.2, color=line.get_color(),
                                linewidth=0)
        if second is not None:
            ax.legend(fontsize="small")
        ax.set_xlabel(label(cx, xunit))
        ax.set_ylabel(f"mean {label(m, munit)}, 95% CI")
        ax.grid(True, alpha=0.3)
        summary["lines"] = len(groups)
        same = [names for names in means.values() if len(names) > 1]
        if same:
            note = "; ".join(" and ".join(n.split(" = ", 1)[-1] for n in names)
                             + f" coincide ({second.name})" for names in same)
            caption = f"{caption}; lines {note}" if caption else f"lines {note}"
        if logx is None:
            logx = numeric_x and spans_decades(xs)
        if logy is None:
            logy = spans_decades([v for ln in ax.get_lines() for v in ln.get_ydata()])
    import matplotlib.ticker

    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 1000, not 10^3
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
    summary.update(caption=caption, logx=bool(logx), logy=bool(logy))
    _save(plt, fig, ax, title or sweep_title(human(m), sw), out, suffix, caption)
    return summary


def _save(plt, fig, ax, title: str, out: str, suffix: str, caption: str = "") -> None:
    ax.set_title(title, fontsize="medium")
    if caption:
        fig.text(0.01, 0.01, caption, fontsize="small", ha="left", va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(out, format=suffix[1:])
    plt.close(fig)


def _looks_like_histogram(metric: str) -> bool:
    return metric.endswith("latency_hist")


def _histogram_name(target: str, sweep_id: str, metric: str) -> str | None:
    """The stored histogram ``metric`` names (``device.<dev>.latency_hist``, or a unique
    suffix such as ``latency_hist`` or ``uhci.latency_hist``), or None."""
    res = run_query(target, "SELECT DISTINCT name FROM metric_arrays WHERE sweep_id = :s",
                    {"s": sweep_id})
    names = sorted(r[0] for r in res.rows if r[0].endswith(".latency_hist"))
    if metric in names:
        return metric
    hits = [n for n in names if n.endswith("." + metric)]
    if len(hits) > 1:
        raise ScenarioError(f"'{metric}' matches several histograms: " + ", ".join(hits))
    return hits[0] if hits else None


def _plot_histogram(target: str, sw: dict, cols: list[Col], name: str, by: Col | None, out: str,
                    suffix: str, logy: bool | None, title: str | None) -> dict[str, Any]:
    """Each group's services per latency bin as a fraction of the group's services, drawn
    as steps over the bins' edges (log latency axis)."""
    import numpy as np

    view = sw["view_name"]
    group = f', w."{by.name}"' if by else ""
    res = run_query(target, f'SELECT a.idx, sum(a.value){group} FROM metric_arrays a '
                            f'JOIN "{view}" w ON w.run_id = a.run_id '
                            f"WHERE a.name = :n AND w.status = 'ok' "
                            f"GROUP BY a.idx{group}", {"n": name})
    edges = run_query(target, "SELECT idx, lower_ns, upper_ns FROM latency_bins ORDER BY idx")
    if not edges.rows:
        raise ScenarioError("this database has no latency_bins table rows; it was written by an "
                            "older irqlab")
    lower = np.array([max(r[1], 1.0) for r in edges.rows])  # bin 0 starts at 0: drawn from 1 ns
    upper = np.array([r[2] if r[2] is not None else r[1] * 10 ** 0.1 for r in edges.rows])
    groups: dict[Any, np.ndarray] = {}
    for idx, count, *g in res.rows:
        key = g[0] if g else None
        groups.setdefault(key, np.zeros(len(lower)))[int(idx)] += count or 0.0
    groups = {k: v for k, v in groups.items() if v.sum() > 0}
    if not groups:
        raise ScenarioError(f"no service was recorded in {name} for this sweep's successful runs")
    used = np.flatnonzero(np.sum(list(groups.values()), axis=0))
    lo, hi = max(used.min() - 1, 1), min(used.max() + 2, len(lower))  # a free bin each side
    div, unit = scale_for("ns", lower[lo:hi])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        gdiv, gunit = (scale_for(by.unit, [k for k in groups if k is not None])
                       if by and all(isinstance(k, (int, float)) for k in groups) else (1.0, ""))
        for k in sorted(groups, key=_key):
            frac = groups[k][lo:hi] / groups[k].sum()
            xs = np.append(lower[lo:hi], upper[hi - 1]) / div
            label_ = None if k is None else f"{by.name} = {_fmt_unit(k, by.unit, gdiv, gunit)}"
            ax.stairs(frac, xs, label=label_)
        ax.set_xscale("log")  # the bins are logarithmic
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain if hi - lo <= 10 else matplotlib.ticker.NullFormatter())
        if logy is None:
            logy = spans_decades([v for k in groups for v in groups[k][lo:hi] / groups[k].sum()
                                  if v > 0])
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(f"latency, assertion to service [{unit}]")
        ax.set_ylabel("fraction of services")
        if by is not None:
            ax.legend(fontsize="small")
        ax.grid(True, alpha=0.3)
        caption = averaged_caption(target, view, cols, [by] if by else [], "summed")
        dev = name.split(".")[1] if name.count(".") == 2 else name
        _save(plt, fig, ax, title or sweep_title(f"{dev} latency distribution", sw), out, suffix,
              caption)
    runs = run_query(target, f'SELECT count(DISTINCT a.run_id) FROM metric_arrays a JOIN "{view}" w '
                             f"ON w.run_id = a.run_id WHERE a.name = :n AND w.status = 'ok'",
                     {"n": name}).rows[0][0]
    return {"rows": runs, "sweep": sw["sweep_id"], "metric": name, "lines": len(groups),
            "caption": caption, "logx": True, "logy": bool(logy)}


def _key(v: Any) -> tuple:
    if v is None:
        return (0, 0)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (1, v)
    return (2, str(v))


def _fmt_unit(v: Any, unit: str, div: float, shown: str) -> str:
    """A legend value: a time or frequency in its own readable unit (``100 us``, ``1 ms``),
    anything else scaled by ``div`` with the unit ``shown``."""
    if unit in ("s", "Hz") and isinstance(v, (int, float)) and not isinstance(v, bool):
        from irqlab.ir import Quantity, format_quantity

        text = format_quantity(Quantity(float(v), unit))
        return re.sub(r"^([-\d.e+]+)", r"\1 ", text)
    return _fmt(v, div) + (f" {shown}" if shown else "")


def _fmt(v: Any, div: float) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v / div:g}"
    return str(v)
