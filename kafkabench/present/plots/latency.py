"""Latency figures: by percentile on HdrHistogram's "number of nines" axis
(`latency_spectrum`), per second over a run (`latency_over_time`), against throughput up to
saturation (`rate_vs_latency`), and a processing stage's latency over time, run against run
(`processing_over_time`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kafkabench.core.contract import HISTOGRAMS
from kafkabench.core.errors import ConfigError
from kafkabench.present.plots._common import (
    _LATENCY,
    _UNIT_WORDS,
    COLORS,
    DASHES,
    METRIC_NAMES,
    _bare,
    _empty,
    _figure,
    _gapped,
    _hover,
    _hover_columns,
    _key,
    _log_axis,
    _missing,
    _num,
    _scale,
    _time_index,
    axis_title,
    format_number,
    line_style,
)
from kafkabench.present.plots.faults import _run_time_axes, run_x_range
from kafkabench.present.plots.rules import SCALE_FACTOR

_PERCENTILE_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)


def _percentile_x(percentile: Any) -> np.ndarray:
    """HdrHistogram's percentile axis: 1 / (1 - p/100), so each extra nine is one decade."""
    p = _num(percentile)
    with np.errstate(divide="ignore"):
        return np.where(p < 100.0, 100.0 / (100.0 - p), np.nan)


def latency_spectrum(spectrum: pd.DataFrame, *, color: str = "metric", title: str | None = None,
                     log_y: bool | None = None) -> go.Figure:
    """Latency by percentile, on the log "number of nines" axis of HdrHistogram plots.

    Args:
        spectrum: `RunResult.spectrum()` (columns metric, percentile, value_ms); with an extra
            `run` column, several runs are compared: colour by run, dash by metric.
        color: column to colour by when there is no `run` column.
        title: figure title.
        log_y: logarithmic latency axis (long tails); None: logarithmic when the lines'
            maxima differ by more than `rules.SCALE_FACTOR` (end-to-end latency of a consumer
            far behind beside publish latency).

    Returns:
        The figure: one line per metric (per run and metric with a `run` column); the
        100th percentile (max) is left out, it has no place on this axis.
    """
    fig = _figure(title or "latency by percentile", xaxis_title="percentile",
                  yaxis_title=axis_title("value_ms"), hovermode="closest")
    if spectrum.empty:
        return _empty(fig, "no latency recorded")
    by_run = "run" in spectrum.columns
    keys = ["run", "metric"] if by_run else [color] + (["metric"] if color != "metric" else [])
    colours: dict[str, str] = {}
    dashes: dict[str, str] = {}
    for value, part in spectrum.groupby(keys, sort=False):
        value = value if isinstance(value, tuple) else (value,)
        first, metric = _key(value[0]), _key(value[-1])
        colour = colours.setdefault(first, COLORS[len(colours) % len(COLORS)])
        dash = dashes.setdefault(metric, DASHES[len(dashes) % len(DASHES)]) if len(value) > 1 else "solid"
        label = " · ".join(METRIC_NAMES.get(_key(v), _key(v)) for v in value)
        part = part[_num(part["percentile"]) < 100.0]
        fig.add_trace(go.Scatter(
            x=_percentile_x(part["percentile"]), y=_num(part["value_ms"]), name=label, mode="lines",
            line={"color": colour, "dash": dash}, customdata=_num(part["percentile"]),
            hovertemplate=f"<b>{label}</b><br>p%{{customdata:.3f}}: %{{y:,.4~r}} ms<extra></extra>"))
    fig.update_xaxes(type="log", tickvals=[100.0 / (100.0 - p) for p in _PERCENTILE_TICKS],
                     ticktext=[f"{p:g}%" for p in _PERCENTILE_TICKS])
    if log_y if log_y is not None else _scales_differ([t.y for t in fig.data]):
        _log_axis(fig, "y", [t.y for t in fig.data])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")
    return fig


# Per-second latency columns in ms (publish delay, in us, is drawn on its own).
_LATENCY_COLUMNS = tuple(c for h in HISTOGRAMS if h.unit == "ms" for c in h.columns("timeseries"))


def latency_over_time(timeseries: pd.DataFrame, *, columns: Sequence[str] | None = None,
                      title: str | None = None, log_y: bool | None = None,
                      faults: pd.DataFrame | None = None,
                      x_range: tuple[float, float] | None = None) -> go.Figure:
    """Per-second latency percentiles.

    Args:
        timeseries: `RunResult.timeseries` (index t).
        columns: latency columns to draw (default: publish and end-to-end p50 and p99 that
            have at least one value, so a run without consumers shows no empty e2e lines).
        title: figure title.
        log_y: logarithmic latency axis; None: logarithmic when the lines' maxima differ by
            more than `rules.SCALE_FACTOR` (an end-to-end p99 of seconds during a fault would
            flatten a publish p50 of milliseconds on a linear axis).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        x_range: the time axis' range (default `run_x_range`), to line figures up exactly.

    Returns:
        The figure: one line per column, coloured by latency, dashed by percentile.
    """
    fig = _figure(title or "latency over time", xaxis_title=axis_title("t"),
                  yaxis_title="latency (ms)", hovermode="x unified")
    if columns is None:
        columns = [c for c in _LATENCY_COLUMNS if c in timeseries and timeseries[c].notna().any()]
    t = _time_index(timeseries)
    _add_latency_lines(fig, t, timeseries, columns)
    _latency_axis(fig, columns, log_y)
    if not columns or not len(t):
        _empty(fig, "no latency recorded")
    return _run_time_axes(fig, faults, x_range or run_x_range(t, faults))


def _add_latency_lines(fig: go.Figure, t: np.ndarray, timeseries: pd.DataFrame,
                       columns: Sequence[str]) -> None:
    """A line per latency column: a colour per latency, a dash per percentile."""
    colours: dict[str, str] = {}
    dashes: dict[str, str] = {}
    for column in columns:
        m = _LATENCY.match(column)
        what, stat = (m.group(1), m.group(3)) if m else (column, "")
        colour = colours.setdefault(what, COLORS[len(colours) % len(COLORS)])
        dash = dashes.setdefault(stat, DASHES[len(dashes) % len(DASHES)])
        unit = _UNIT_WORDS.get(m.group(2), "") if m else ""
        x, y = _gapped(t, timeseries[column])
        fig.add_trace(go.Scatter(x=x, y=y, name=_bare(axis_title(column)), connectgaps=False,
                                 mode="lines+markers", marker={"size": 4},
                                 line={"color": colour, "dash": dash},
                                 hovertemplate=f"%{{y:,.4~r}} {unit}"))


def _latency_axis(fig: go.Figure, columns: Sequence[str], log_y: bool | None) -> None:
    """The y axis of `latency_over_time`: titled with the columns' unit, log or from zero."""
    units = {m.group(2) for m in map(_LATENCY.match, columns) if m}
    fig.update_yaxes(title_text=f"latency ({_UNIT_WORDS[units.pop()]})" if len(units) == 1 else "latency")
    if log_y if log_y is not None else _scales_differ([trace.y for trace in fig.data]):
        _log_axis(fig, "y", [trace.y for trace in fig.data])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")


def _scales_differ(series: Sequence[Any]) -> bool:
    """Whether the largest positive maximum of the series is SCALE_FACTOR times another's."""
    tops = [np.nanmax(v) for v in (_num(s) for s in series) if np.isfinite(v).any()]
    tops = [top for top in tops if top > 0]
    return bool(tops) and max(tops) > SCALE_FACTOR * min(tops)


def rate_vs_latency(df: pd.DataFrame, x: str = "publish_rate",
                    y: str | Sequence[str] = ("e2e_latency_ms_p50", "e2e_latency_ms_p99"), *,
                    target: str | float | None = None, title: str | None = None,
                    log_y: bool = True, hover_data: Sequence[str] | None = None) -> go.Figure:
    """Latency against throughput, up to saturation: points joined in order of `x`.

    Args:
        df: one row per run or sweep point (any order).
        x: achieved rate column.
        y: latency column(s), one line each.
        target: a column of target rates (e.g. `target_rate`): each point gets a hollow
            marker at its target rate joined to the achieved one, so saturation shows as
            the gap; or a number: a vertical line at that required rate.
        title: figure title.
        log_y: logarithmic latency axis.
        hover_data: more columns to show on hover.

    Returns:
        The figure: a line per `y` column, plus the target markers or line.
    """
    ys = [y] if isinstance(y, str) else list(y)
    df = df.sort_values(x, kind="stable")  # a line through points out of x order zig-zags
    x_title = axis_title(x)
    fig = _figure(title or "latency vs throughput", xaxis_title=x_title,
                  yaxis_title="latency (ms)" if all("_ms_" in c for c in ys) else axis_title(ys[0]))
    custom, extra = _hover_columns(df, hover_data)
    xs = _num(df[x])
    for i, column in enumerate(ys):
        name = _bare(axis_title(column))
        colour, dash = line_style(i)
        fig.add_trace(go.Scatter(x=xs, y=_num(df[column]), name=name, mode="lines+markers",
                                 line={"color": colour, "dash": dash}, customdata=custom,
                                 hovertemplate=_hover(x_title, axis_title(column), extra=extra)))
    if isinstance(target, str):
        # One trace: target marker -> achieved marker per point, None-separated segments.
        tx, ty = _num(df[target]), _num(df[ys[-1]])
        seg_x = np.column_stack([tx, xs, np.full(len(xs), np.nan)]).ravel()
        seg_y = np.column_stack([ty, ty, np.full(len(ty), np.nan)]).ravel()
        fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", name="target → achieved",
                                 line={"color": COLORS[6], "width": 1, "dash": "dot"}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=tx, y=ty, mode="markers", name=_bare(axis_title(target)),
                                 marker={"symbol": "circle-open", "size": 9, "color": COLORS[6]},
                                 customdata=xs,
                                 hovertemplate=("target: %{x:,.4~r}<br>achieved: %{customdata:,.4~r}"
                                                "<extra></extra>")))
    elif target is not None and not _missing(target):
        fig.add_vline(x=float(target), line={"color": COLORS[3], "dash": "dash"},
                      annotation_text=f"target {format_number(float(target))}",
                      annotation_position="top left")
    fig.update_xaxes(rangemode="tozero")
    if log_y:
        _log_axis(fig, "y", [df[c] for c in ys])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")
    return fig


def processing_over_time(frames: Mapping[str, pd.DataFrame], column: str = "done_latency_ms_p99", *,
                         title: str | None = None,
                         x_range: tuple[float, float] | None = None) -> go.Figure:
    """One column of several runs' `processing` frames over time, a line per run: e.g. inline
    retries against retry topics, where head-of-line blocking shows as done latency.

    Args:
        frames: label -> `RunResult.processing` (t, processed, ..., done_latency_ms_p99).
        column: the column to draw.
        title: figure title.
        x_range: the time axis' range (default `run_x_range` of every run's t).

    Returns:
        The figure: the runs share the y axis on purpose (one quantity compared).
    """
    fig = _figure(title or f"{_bare(axis_title(column))} over time", hovermode="x unified")
    for i, (label, frame) in enumerate(frames.items()):
        if column not in frame:
            raise ConfigError(f"processing_over_time: no column {column!r}; the processing frame "
                              f"has {list(frame.columns)}")
        color, dash = line_style(i)
        x, y = _gapped(frame["t"], frame[column])
        fig.add_trace(go.Scatter(x=x, y=y, name=str(label), mode="lines", connectgaps=False,
                                 line={"color": color, "dash": dash}, meta=_scale(column)))
    fig.update_xaxes(title_text=axis_title("t"))
    fig.update_yaxes(title_text=axis_title(column), rangemode="nonnegative")
    if not any(len(f) for f in frames.values()):
        _empty(fig, "no processing recorded")
    t = np.concatenate([_num(f["t"]) for f in frames.values()]) if frames else np.array([])
    return _run_time_axes(fig, None, x_range or run_x_range(t))
