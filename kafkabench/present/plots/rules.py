"""Rules every kafkabench figure keeps, checked on the figure itself: `figure_problems` lists
where one figure breaks them, `figures_aligned` where several figures of one run do not share
their time axis. Pure: a Figure in, sentences out; the plot modules' tests call them.

The rules:

- no two legend entries look alike: legend-visible traces differ in (colour, dash) (a bar's
  dash is its pattern, a markers-only trace's its marker symbol);
- a time series without samples for a while is drawn with a gap: on a time x axis, no line
  joins two points further apart than `gap_limit` of its steps;
- one y axis, one scale: no line lies flat beside another whose maximum is more than
  `SCALE_FACTOR` times its own (log axes excepted; traces whose `meta` names one `scale`, such
  as the partitions of one lag or the brokers of one metric, are one quantity compared on
  purpose);
- axes that share x have one range, and a shaded fault band starts and ends on fault lines.

They also hold the thresholds the plot modules apply (`gap_limit`, `SCALE_FACTOR`, `SCALE`),
so that a figure is drawn and checked by one rule.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

#: A step longer than this many times a series' median step is a gap ...
GAP_FACTOR = 2.5
#: ... and longer than this many x units (seconds): a per-second series may miss one second.
GAP_MIN = 1.5
#: Two lines of one linear y axis whose maxima differ by more than this need their own axes.
SCALE_FACTOR = 25.0
#: The key of a trace's `meta` naming the quantity it draws: traces naming one are compared
#: on one scale on purpose (the partitions of a lag, the brokers of a metric, runs).
SCALE = "scale"
#: Shape names `mark_faults` gives its lines and its shaded down bands.
FAULT_LINE, FAULT_SPAN = "fault", "fault span"

_TOLERANCE = 1e-6
#: plotly.js' own colorway, for a figure without a template.
_PLOTLY_JS_COLORWAY = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                       "#7f7f7f", "#bcbd22", "#17becf")
_AXIS = re.compile(r"^([xy])axis(\d*)$")


def gap_limit(x: Any) -> float:
    """The longest step between a series' samples that is not a gap.

    Args:
        x: the series' x values (seconds), in drawing order.

    Returns:
        max(GAP_FACTOR x the median positive step, GAP_MIN); infinity for fewer than two
        distinct x values.
    """
    steps = np.diff(_numbers(x))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return max(GAP_FACTOR * float(np.median(steps)), GAP_MIN) if len(steps) else np.inf


def figure_problems(fig: go.Figure) -> list[str]:
    """Where a figure breaks the rules every kafkabench figure keeps (see the module).

    Args:
        fig: the figure.

    Returns:
        One sentence per problem, naming the traces, axes or shapes; empty when it keeps them.
    """
    return (_look_alike_entries(fig) + _connected_gaps(fig) + _mixed_scales(fig)
            + _shared_x_ranges(fig) + _loose_fault_bands(fig))


def figures_aligned(figs: Sequence[go.Figure]) -> list[str]:
    """Where figures of one run, shown together, do not share their time axis.

    Args:
        figs: the figures, e.g. a run's throughput, latency and cluster state over time.

    Returns:
        One sentence per figure without an x range set, one if the ranges set differ, and one
        if their plot areas differ (side margins not fixed, or an x axis not spanning the
        width: the same second then falls at a different place on the page).
    """
    labelled = [(f"figure {i} ({_title(fig)})", _x_range(fig)) for i, fig in enumerate(figs)]
    problems = [f"{label}: its x axis range is not set, so plotly fits it to the data"
                for label, span in labelled if span is None]
    if len({span for _, span in labelled if span is not None}) > 1:
        problems.append("x axis ranges differ, so the same time falls at different places: "
                        + "; ".join(f"{label} {span}" for label, span in labelled if span is not None))
    areas = [(f"figure {i} ({_title(fig)})", _plot_area(fig)) for i, fig in enumerate(figs)]
    if len({area for _, area in areas}) > 1:
        problems.append("plot areas differ (margins left/right, x domain), so the same time falls at "
                        "different places on the page: " + "; ".join(f"{label} {area}" for label, area in areas))
    return problems


def _plot_area(fig: go.Figure) -> tuple:
    """(left margin, right margin, x domains): None for a margin plotly sizes itself."""
    margin = fig.layout.margin
    automatic = any(a.automargin is not False for a in fig.select_yaxes())
    return (None if automatic else margin.l, None if automatic else margin.r,
            tuple(sorted({tuple(a.domain) if a.domain else (0.0, 1.0) for a in fig.select_xaxes()})))


# ------------------------------------------------------------------ legend


def _look_alike_entries(fig: go.Figure) -> list[str]:
    """Legend-visible traces that share (colour, dash)."""
    if fig.layout.showlegend is False:
        return []
    seen: dict[tuple[Any, str], str] = {}
    problems = []
    for i, trace in enumerate(fig.data):
        if trace.type not in ("scatter", "scattergl", "bar") or trace.showlegend is False \
                or trace.visible is False:
            continue
        style, name = _style(fig, i, trace), _name(trace, i)
        if style in seen:
            problems.append(f"legend entries {seen[style]!r} and {name!r} look alike "
                            f"(colour {style[0]}, {style[1]})")
        else:
            seen[style] = name
    return problems


def _style(fig: go.Figure, i: int, trace: Any) -> tuple[Any, str]:
    """(colour, dash) of a trace's legend entry; plotly's colorway colour when none is set."""
    marker = getattr(trace, "marker", None)
    if trace.type == "bar":
        colour, dash = marker.color, (marker.pattern.shape or "solid")
    elif "lines" in (trace.mode or "lines"):
        colour, dash = trace.line.color or (marker.color if marker else None), trace.line.dash or "solid"
    else:
        colour, dash = marker.color, f"marker {marker.symbol or 'circle'}"
    if colour is None:
        colour = _colorway(fig)[i % len(_colorway(fig))]
    colour = tuple(str(c).lower() for c in colour) if _is_array(colour) else str(colour).lower()
    return colour, str(dash)


def _colorway(fig: go.Figure) -> Sequence[str]:
    """The colours plotly gives traces without one, in trace order."""
    template = fig.layout.template.layout if fig.layout.template else None
    return fig.layout.colorway or (template.colorway if template else None) or _PLOTLY_JS_COLORWAY


# ------------------------------------------------------------------ gaps


def _connected_gaps(fig: go.Figure) -> list[str]:
    """Lines of a time axis drawn across a stretch without samples."""
    time_axes = _time_x_axes(fig)
    problems = []
    for i, trace in enumerate(fig.data):
        if not _is_line(trace) or (trace.xaxis or "x") not in time_axes:
            continue
        x, y = _numbers(trace.x), _numbers(trace.y)
        if len(x) != len(y):
            continue
        problems += [f"line {_name(trace, i)!r} is drawn across {x1 - x0:.3g} s without samples "
                     f"(t {x0:.4g} to {x1:.4g}): put a NaN point inside the gap"
                     + (" and set connectgaps=False" if trace.connectgaps else "")
                     for x0, x1 in _bridged(x, y, bool(trace.connectgaps))]
    return problems


def _bridged(x: np.ndarray, y: np.ndarray, connectgaps: bool) -> list[tuple[float, float]]:
    """The (from, to) of each gap a line joins: consecutive drawn points too far apart."""
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    limit = gap_limit(x)
    if connectgaps:  # plotly joins the points around missing values: only those count
        x, y = x[np.isfinite(y)], y[np.isfinite(y)]
    joined = np.isfinite(y[:-1]) & np.isfinite(y[1:]) & (np.diff(x) > limit)
    return [(float(x[j]), float(x[j + 1])) for j in np.flatnonzero(joined)]


def _time_x_axes(fig: go.Figure) -> set[str]:
    """The x axes ("x", "x2") that show time: titled "time ...", or matched to one that is."""
    axes = _axes(fig, "x")
    titled = {ref for ref, axis in axes.items()
              if str(axis.title.text or "").lower().startswith("time")}
    groups = {ref: axis.matches or ref for ref, axis in axes.items()}
    timed = {groups[ref] for ref in titled}
    out = {ref for ref, group in groups.items() if ref in titled or group in timed}
    dated = any(_is_line(t) and (t.xaxis or "x") == "x" and _is_dates(t.x) for t in fig.data)
    return out | ({"x"} if dated else set())


# ------------------------------------------------------------------ scales


def _mixed_scales(fig: go.Figure) -> list[str]:
    """Lines that lie flat beside a line of another quantity on one linear y axis."""
    axes = _axes(fig, "y")
    problems = []
    for ref, lines in _line_maxima(fig).items():
        if ref in axes and axes[ref].type == "log":
            continue
        for name, scale, top in lines:
            other = max(((n, t) for n, s, t in lines if s is None or s != scale), key=lambda o: o[1],
                        default=None)
            if other is not None and other[1] > SCALE_FACTOR * top:
                problems.append(f"on y axis {ref!r}, {name!r} (max {top:.4g}) lies flat beside "
                                f"{other[0]!r} (max {other[1]:.4g}): give it its own axis or row")
    return problems


def _line_maxima(fig: go.Figure) -> dict[str, list[tuple[str, Any, float]]]:
    """y axis -> (name, scale, largest finite y) of each line on it whose largest y is > 0."""
    by_axis: dict[str, list[tuple[str, Any, float]]] = {}
    for i, trace in enumerate(fig.data):
        y = _numbers(trace.y) if _is_line(trace) else np.array([])
        y = y[np.isfinite(y)]
        if len(y) and y.max() > 0:
            scale = trace.meta.get(SCALE) if isinstance(trace.meta, dict) else None
            by_axis.setdefault(trace.yaxis or "y", []).append((_name(trace, i), scale, float(y.max())))
    return by_axis


# ------------------------------------------------------------------ x ranges and fault marks


def _shared_x_ranges(fig: go.Figure) -> list[str]:
    """Shared x axes whose ranges were set differently."""
    groups: dict[str, dict[str, Any]] = {}
    for ref, axis in _axes(fig, "x").items():
        groups.setdefault(axis.matches or ref, {})[ref] = _range(axis)
    return [f"x axes {sorted(ranges)} are shared but their ranges differ: {ranges}"
            for ranges in groups.values() if len(set(ranges.values())) > 1]


def _loose_fault_bands(fig: go.Figure) -> list[str]:
    """Fault bands that do not start and end on a fault line."""
    shapes = fig.layout.shapes or ()
    lines = np.array([float(s.x0) for s in shapes if s.name == FAULT_LINE])
    problems = []
    for band in (s for s in shapes if s.name == FAULT_SPAN):
        x0, x1 = float(band.x0), float(band.x1)
        if len(lines) and not _on(x0, lines):
            problems.append(f"fault band {x0:.4g}-{x1:.4g} s starts where no fault line is")
        if (lines > x0 + _TOLERANCE).any() and not _on(x1, lines):
            problems.append(f"fault band {x0:.4g}-{x1:.4g} s ends where no fault line is "
                            f"(lines at {sorted(set(lines.round(3).tolist()))})")
    return problems


def _on(x: float, lines: np.ndarray) -> bool:
    return bool((np.abs(lines - x) <= _TOLERANCE).any())


# ------------------------------------------------------------------ figure access


def _axes(fig: go.Figure, letter: str) -> dict[str, Any]:
    """The layout's x or y axes by trace reference: {"x": layout.xaxis, "x2": layout.xaxis2}."""
    names = [m for m in map(_AXIS.match, fig.layout.to_plotly_json()) if m and m.group(1) == letter]
    return {f"{letter}{m.group(2)}": fig.layout[m.group(0)] for m in names} or {letter: fig.layout[f"{letter}axis"]}


def _range(axis: Any) -> tuple[float, ...] | None:
    return None if axis.range is None else tuple(float(v) for v in axis.range)


def _x_range(fig: go.Figure) -> tuple[float, ...] | None:
    return _range(fig.layout.xaxis)


def _title(fig: go.Figure) -> str:
    return str(fig.layout.title.text or "untitled")


def _name(trace: Any, i: int) -> str:
    return str(trace.name) if trace.name is not None else f"trace {i}"


def _is_line(trace: Any) -> bool:
    return trace.type in ("scatter", "scattergl") and "lines" in (trace.mode or "lines") \
        and trace.y is not None


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _decoded(values: Any) -> Any:
    """Trace values as a sequence: plotly's typed-array form ({"dtype": "f8", "bdata": base64},
    how figures are stored in notebooks and sent to the browser) decoded."""
    if isinstance(values, Mapping) and "bdata" in values:
        data = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values.get("dtype", "f8")))
        return data.reshape(values["shape"]) if "shape" in values and isinstance(values["shape"], list) else data
    return values


def _is_dates(values: Any) -> bool:
    values = _decoded(values)
    return values is not None and len(values) > 0 and pd.api.types.is_datetime64_any_dtype(
        pd.Series(list(values[:1])))


def _numbers(values: Any) -> np.ndarray:
    """Float array of trace values: None and text become NaN, datetimes seconds, typed
    arrays (a figure read back from JSON) decoded."""
    values = _decoded(values)
    if values is None:
        return np.array([], dtype="float64")
    series = pd.Series(list(values))
    if pd.api.types.is_datetime64_any_dtype(series):
        return (series - pd.Timestamp(0, tz=series.dt.tz)).dt.total_seconds().to_numpy(dtype="float64")
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
