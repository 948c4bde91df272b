"""Throughput figures: throughput against a swept setting (`throughput_vs`), messages per
second over a run (`throughput_over_time`), and the Locust users that offered the load
(`users_over_time`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.core.errors import ConfigError
from kafkabench.present.plots._common import (
    _AGGREGATES,
    COLORS,
    DASHES,
    TEMPLATE,
    _axis_values,
    _bare,
    _empty,
    _figure,
    _gapped,
    _hover,
    _hover_columns,
    _is_numeric,
    _key,
    _log_axis,
    _num,
    _scale,
    _time_index,
    axis_title,
    line_style,
)
from kafkabench.present.plots.faults import _run_time_axes, run_x_range

_SETTING_PREFIXES = ("producer.", "consumer.", "common.", "workload.", "profile.", "run.")


def throughput_vs(df: pd.DataFrame, x: str, y: str = "publish_rate", color: str | None = None, *,
                  error_y: str | Sequence[str] | bool | None = None, log_x: bool = False,
                  title: str | None = None, hover_data: Sequence[str] | None = None) -> go.Figure:
    """Throughput against a swept parameter, one line per value of another.

    Args:
        df: one row per sweep point (a sweep summary or `load_results()` rows), e.g. columns
            `producer.linger.ms`, `publish_rate_median`, `publish_rate_min`, `publish_rate_max`.
        x: the swept column; numeric columns give lines, others (compression.type) bars.
        y: the throughput column.
        color: column whose values each get their own line (e.g. `producer.compression.type`).
        error_y: error bars: a `(low, high)` pair of column names (e.g. min and max), one
            column of symmetric half-widths, or True for `<base>_min`/`<base>_max` where `y`
            is `<base>_<aggregate>`.
        log_x: logarithmic x axis.
        title: figure title (default "<y> vs <x>").
        hover_data: more columns to show on hover (e.g. `run_id`).

    Returns:
        The figure: one trace per `color` value (one trace when `color` is None); the y axis
        starts at 0, so that a small difference looks small.

    Raises:
        ConfigError: several rows share one (x, color) point, as runs of a sweep do when
            other settings varied too. Plotly would stack them into one bar (or zig-zag a
            line through them); aggregate first, e.g. `sweep.summarize(runs, [x, color])`
            for the median per point, or colour by the other setting.
    """
    _one_row_per_point(df, x, color)
    if error_y is True:
        base = y.rsplit("_", 1)[0] if y.rsplit("_", 1)[-1] in _AGGREGATES else y
        error_y = (f"{base}_min", f"{base}_max")
    x_title, y_title = axis_title(x), axis_title(y)
    fig = _figure(title or f"{_bare(y_title)} vs {_bare(x_title)}", xaxis_title=x_title,
                  yaxis_title=y_title, legend_title_text=axis_title(color) if color else None)
    categorical = not _is_numeric(df[x])
    groups = ([((_bare(y_title),), df)] if color is None
              else list(df.groupby([color], sort=True, dropna=False)))
    for i, ((value,), part) in enumerate(groups):
        name = _key(value)
        if not categorical:
            part = part.sort_values(x, kind="stable")
        xs, ys = _axis_values(part[x]), _num(part[y])
        errors = None
        if isinstance(error_y, str):
            errors = {"type": "data", "array": _num(part[error_y]), "visible": True}
        elif error_y is not None:
            low, high = error_y
            errors = {"type": "data", "symmetric": False, "visible": True,
                      "array": _num(part[high]) - ys, "arrayminus": ys - _num(part[low])}
        custom, extra = _hover_columns(part, hover_data)
        colour, dash = line_style(i)
        common = {"x": xs, "y": ys, "name": name, "error_y": errors, "customdata": custom,
                  "marker_color": colour, "hovertemplate": _hover(x_title, y_title, extra=extra)}
        if categorical:
            fig.add_trace(go.Bar(**common))
        else:
            fig.add_trace(go.Scatter(mode="lines+markers", line={"color": colour, "dash": dash}, **common))
    fig.update_layout(showlegend=color is not None, barmode="group")
    fig.update_yaxes(rangemode="tozero")
    if log_x:
        _log_axis(fig, "x", [df[x]])
    if categorical:
        fig.update_xaxes(type="category")
    return fig


def _one_row_per_point(df: pd.DataFrame, x: str, color: str | None) -> None:
    """Raise ConfigError when rows repeat an (x, color) pair, naming what differs between them."""
    keys = [x] if color is None else [x, color]
    text = df[keys].map(_key)
    repeated = text.duplicated(keep=False)
    if not repeated.any():
        return
    first = text[repeated].iloc[0]
    rows = df[(text == first).all(axis=1)]
    differ = [c for c in df.columns if c not in keys and str(c).startswith(_SETTING_PREFIXES)
              and rows[c].map(_key).nunique() > 1]
    at = ", ".join(f"{k}={first[k]}" for k in keys)
    how = (f"they differ in {', '.join(differ)}: " if differ else "")
    raise ConfigError(
        f"{len(rows)} rows share the point {at}, so plotly would stack or zig-zag them; {how}"
        f"aggregate first, e.g. sweep.summarize(rows, {keys!r}) for the median per point, "
        "or pass color= the setting that tells them apart")


def throughput_over_time(timeseries: pd.DataFrame, *, title: str | None = None,
                         faults: pd.DataFrame | None = None,
                         x_range: tuple[float, float] | None = None) -> go.Figure:
    """Messages produced, delivered and consumed per second, with the backlog on a second axis.

    Args:
        timeseries: `RunResult.timeseries` (index t; columns produced, delivered, consumed,
            failed, backlog).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        x_range: the time axis' range (default `run_x_range`), to line figures up exactly.

    Returns:
        The figure: a line per rate column present, and a shaded backlog line on the right
        axis; when some failed, a row below with the failures per second (a few failures
        would lie flat on the rates' axis).
    """
    t = _time_index(timeseries)
    failed = "failed" in timeseries and bool((_num(timeseries["failed"]) > 0).any())
    fig = make_subplots(rows=2 if failed else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        specs=[[{"secondary_y": True}]] + ([[{}]] if failed else []),
                        row_heights=[0.75, 0.25] if failed else None)
    fig.update_layout(template=TEMPLATE, title=title or "throughput over time", hovermode="x unified")
    columns = [c for c in ("produced", "delivered", "consumed") if c in timeseries]
    for i, column in enumerate(columns):
        x, y = _gapped(t, timeseries[column])
        fig.add_trace(go.Scatter(x=x, y=y, name=column, mode="lines", connectgaps=False,
                                 line={"color": COLORS[i], "dash": DASHES[i]}, meta=_scale("msg/s"),
                                 hovertemplate="%{y:,.0f} msg/s"), row=1, col=1, secondary_y=False)
    if "backlog" in timeseries:
        x, y = _gapped(t, timeseries["backlog"])
        fig.add_trace(go.Scatter(x=x, y=y, name="backlog", mode="lines", connectgaps=False,
                                 line={"color": COLORS[6], "width": 1}, fill="tozeroy",
                                 fillcolor="rgba(153,153,153,0.15)", hovertemplate="%{y:,.0f} messages"),
                      row=1, col=1, secondary_y=True)
    if failed:
        x, y = _gapped(t, timeseries["failed"])
        fig.add_trace(go.Scatter(x=x, y=y, name="failed", mode="lines", connectgaps=False,
                                 line={"color": COLORS[3]}, hovertemplate="%{y:,.0f} msg/s"), row=2, col=1)
        fig.update_yaxes(title_text=axis_title("failed"), rangemode="nonnegative", row=2, col=1)
    fig.update_xaxes(title_text=axis_title("t"), row=2 if failed else 1, col=1)
    fig.update_yaxes(title_text="messages per second (msg/s)", row=1, col=1, secondary_y=False,
                     rangemode="nonnegative")
    _backlog_axis(fig, timeseries)
    if not len(t):
        _empty(fig, "no time series recorded")
    return _run_time_axes(fig, faults, x_range or run_x_range(t, faults))


def _backlog_axis(fig: go.Figure, timeseries: pd.DataFrame) -> None:
    """The right axis of the backlog, with its own round ticks."""
    # Plotly syncs an overlaying axis' ticks to the main grid (0, 247, 494, ...): ask for its
    # own round ticks. A backlog of 0 throughout would get a -1..1 range: show 0 alone.
    backlog = _num(timeseries["backlog"]) if "backlog" in timeseries else np.array([])
    fig.update_yaxes(title_text=axis_title("backlog"), row=1, col=1, secondary_y=True, showgrid=False,
                     rangemode="nonnegative", tickmode="auto", tickformat=",~r")
    if not (backlog > 0).any():
        fig.update_yaxes(row=1, col=1, secondary_y=True, range=[0, 1], tickmode="array", tickvals=[0])


def users_over_time(timeseries: pd.DataFrame, planned: pd.DataFrame | None = None, *,
                    title: str | None = None, faults: pd.DataFrame | None = None,
                    x_range: tuple[float, float] | None = None) -> go.Figure:
    """Locust users over time, with the load shape's planned users if given.

    Args:
        timeseries: `locust_results.locust_timeseries` / a Locust run's `RunResult.timeseries`
            (index t, column users).
        planned: `loadshapes.planned_users` (index t, column users).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        x_range: the time axis' range (default `run_x_range` of the running users).

    Returns:
        The figure: running users as steps, planned users dashed.
    """
    fig = _figure(title or "Locust users", hovermode="x unified",
                  xaxis_title=axis_title("t"), yaxis_title="users")
    frames = ([("planned", planned, COLORS[1], "dash")] if planned is not None else []) \
        + [("running", timeseries, COLORS[0], "solid")]
    for name, frame, colour, dash in frames:
        x, y = _gapped(_time_index(frame), frame["users"])
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", connectgaps=False,
                                 line={"shape": "hv", "color": colour, "dash": dash}, meta=_scale("users")))
    fig.update_yaxes(rangemode="tozero")
    if not len(timeseries):
        _empty(fig, "no users recorded")
    return _run_time_axes(fig, faults, x_range or run_x_range(_time_index(timeseries), faults))
