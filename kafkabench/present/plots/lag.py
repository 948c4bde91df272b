"""Consumer lag over a run, in messages and in seconds, with the group's rebalances marked
(`lag_over_time`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.present.plots._common import (
    COLORS,
    TEMPLATE,
    _empty,
    _gapped,
    _key,
    _num,
    _scale,
    axis_title,
    line_style,
)
from kafkabench.present.plots.faults import _run_time_axes, run_x_range

_EVENT_COLORS = {"assign": COLORS[2], "revoke": COLORS[3]}


def lag_over_time(lag: pd.DataFrame, rebalances: pd.DataFrame | None = None, *,
                  by: str = "partition", title: str | None = None,
                  faults: pd.DataFrame | None = None,
                  x_range: tuple[float, float] | None = None) -> go.Figure:
    """Consumer lag over time, in messages (top) and seconds (bottom), with rebalances marked.

    Args:
        lag: `LagSampler.frame()` / `RunResult.lag` (t, group, topic, partition, lag_msgs, lag_s).
        rebalances: `RunResult.rebalances` (t, group, member, event, partitions): a vertical
            line per event (green assign, red revoke), with its details on hover.
        by: "partition": one legend entry per group/topic/partition; "group": one colour and
            legend entry per group (its partitions still get their own line).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        x_range: the time axis' range (default `run_x_range`), to line figures up exactly.

    Returns:
        The figure: two rows sharing the time axis; a line per partition in each, broken
        where the sampler has no samples for a while (a paused broker can stall it).
    """
    if by not in ("partition", "group"):
        raise ValueError(f"by must be 'partition' or 'group', not {by!r}")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.update_layout(template=TEMPLATE, title=title or "consumer lag", hovermode="closest", height=560)
    fig.update_yaxes(title_text=axis_title("lag_msgs"), row=1, col=1, rangemode="nonnegative")
    fig.update_yaxes(title_text=axis_title("lag_s"), row=2, col=1, rangemode="nonnegative")
    fig.update_xaxes(title_text=axis_title("t"), row=2, col=1)
    lag = lag[lag["partition"] >= 0] if "partition" in lag else lag  # -1: a group-level error row
    x_range = x_range or run_x_range(lag["t"], faults)
    if lag.empty:
        return _run_time_axes(_empty(fig, "no lag sampled (no consumer groups)"), faults, x_range)
    groups = list(dict.fromkeys(lag["group"]))
    in_legend: set[Any] = set()
    several_topics = lag["topic"].nunique() > 1
    for i, ((group, topic, partition), part) in enumerate(
            lag.groupby(["group", "topic", "partition"], sort=True)):
        gi = groups.index(group)
        label = f"p{partition}" if not several_topics else f"{topic}:{partition}"
        name = label if len(groups) == 1 and by == "partition" else f"{group} {label}"
        if by == "group":
            (colour, dash), legend, show = line_style(gi), str(group), group not in in_legend
            in_legend.add(group)
        else:
            (colour, dash), legend, show = line_style(i), f"{group}/{topic}/{partition}", True
        _add_partition(fig, part, name=name, shown=str(group) if by == "group" else name,
                       legend=legend, show=show, colour=colour, dash=dash)
    if rebalances is not None and not rebalances.empty:
        _mark_rebalances(fig, rebalances)
    return _run_time_axes(fig, faults, x_range)


def _add_partition(fig: go.Figure, part: pd.DataFrame, *, name: str, shown: str, legend: str,
                   show: bool, colour: str, dash: str) -> None:
    """A partition's lag in messages (top row) and seconds (bottom), broken where unsampled."""
    status = [_key(s) for s in part["status"]] if "status" in part else None
    for row, column in ((1, "lag_msgs"), (2, "lag_s")):
        unit = "messages" if column == "lag_msgs" else "s"
        t, y, custom = _gapped(part["t"], part[column], status)
        fig.add_trace(go.Scatter(
            x=t, y=y, mode="lines", line={"color": colour, "dash": dash, "width": 1.5},
            name=shown, legendgroup=legend, showlegend=row == 1 and show, connectgaps=False,
            meta=_scale(column), customdata=custom,
            hovertemplate=(f"<b>{name}</b><br>t %{{x:.1f}} s: %{{y:,.4~r}} {unit}"
                           + ("<br>status %{customdata}" if status else "") + "<extra></extra>")),
            row=row, col=1)


def _mark_rebalances(fig: go.Figure, rebalances: pd.DataFrame) -> None:
    """Dotted vertical lines over both rows, and hoverable markers along the top edge."""
    t = _num(rebalances["t"])
    events = [_key(e) for e in rebalances["event"]]
    for x, event in zip(t, events):
        if not math.isnan(x):
            fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                          line={"color": _EVENT_COLORS.get(event, COLORS[6]), "width": 1, "dash": "dot"})
    # Markers on a hidden [0, 1] axis overlaying the top row: hover needs a trace, not a shape.
    fig.update_layout(yaxis3={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})
    details = np.array([[_key(rebalances[c].iloc[i]) if c in rebalances else ""
                         for c in ("group", "member", "partitions")] for i in range(len(rebalances))],
                       dtype=object)
    fig.add_trace(go.Scatter(
        x=t, y=np.full(len(t), 0.98), yaxis="y3", xaxis="x", mode="markers", name="rebalance",
        marker={"symbol": "triangle-down", "size": 9,
                "color": [_EVENT_COLORS.get(e, COLORS[6]) for e in events]},
        text=events, customdata=details,
        hovertemplate=("<b>%{text}</b> at %{x:.2f} s<br>group %{customdata[0]}<br>member "
                       "%{customdata[1]}<br>partitions %{customdata[2]}<extra></extra>")))

