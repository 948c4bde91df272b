"""Capacity planning figures: how a plan's output responds to each input
(`capacity_sensitivity`: lines or a tornado), and a plan checked against a run
(`predicted_vs_measured`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.analysis.sensitivity import Tornado, tornado
from kafkabench.present.plots._common import (
    COLORS,
    TEMPLATE,
    _bare,
    _empty,
    _figure,
    _key,
    _num,
    axis_title,
    line_style,
)


def capacity_sensitivity(sens: pd.DataFrame, output: str = "partitions", *, kind: str = "line",
                         title: str | None = None) -> go.Figure:
    """How a capacity plan output responds to each input, from `capacity.sensitivity()`.

    Args:
        sens: columns input, factor, value and the `CapacityPlan.as_dict()` outputs.
        output: the output column to show (partitions, brokers, storage_total_gb, ...).
        kind: "line": output vs factor, a line per input; "tornado": per input, a bar from
            the output at factor 1 to the output at the smallest and at the largest factor
            (inputs that change nothing get no bar).
        title: figure title.

    Returns:
        The figure.
    """
    if kind not in ("line", "tornado"):
        raise ValueError(f"kind must be 'line' or 'tornado', not {kind!r}")
    out_title = axis_title(output)
    title = title or f"sensitivity of {_bare(out_title)}"
    if kind == "line":
        return _sensitivity_lines(sens, output, out_title, title)
    return _sensitivity_tornado(tornado(sens, output), output, out_title, title)


def _sensitivity_lines(sens: pd.DataFrame, output: str, out_title: str, title: str) -> go.Figure:
    """The output against the factor, a line per input."""
    fig = _figure(title, xaxis_title=axis_title("factor"), yaxis_title=out_title, hovermode="closest")
    for i, (name, part) in enumerate(sens.groupby("input", sort=False)):
        part = part.sort_values("factor", kind="stable")
        colour, dash = line_style(i)
        fig.add_trace(go.Scatter(
            x=_num(part["factor"]), y=_num(part[output]), name=str(name), mode="lines+markers",
            line={"color": colour, "dash": dash},
            customdata=_num(part["value"]),
            hovertemplate=(f"<b>{name}</b> = %{{customdata:,.4~r}} (×%{{x}})<br>"
                           f"{out_title}: %{{y:,.4~r}}<extra></extra>")))
    fig.update_xaxes(tickformat=".2~f", ticksuffix="×")
    values = _num(sens[output])
    values = values[np.isfinite(values)]
    if len(values) and (values == np.round(values)).all() and values.max() - values.min() <= 10:
        fig.update_yaxes(dtick=1)  # counts (partitions, brokers): no 2.5 partitions tick
    return fig


def _sensitivity_tornado(bars: Tornado, output: str, out_title: str, title: str) -> go.Figure:
    """Per input, a bar from the output at the plan to the output at the smallest factor,
    and one to the output at the largest."""
    fig = _figure(title, xaxis_title=out_title, yaxis_title="input", barmode="overlay")
    for i, f in enumerate((bars.low, bars.high)):
        rows = bars.bars[bars.bars["factor"] == f]
        fig.add_trace(go.Bar(
            y=rows["input"].tolist(), x=(rows["output"] - rows["base"]).tolist(), base=rows["base"].tolist(),
            orientation="h", name=f"input ×{f:g}",
            marker_color=COLORS[3] if i == 0 else COLORS[0], opacity=0.85,
            customdata=rows[["output", "value"]].to_numpy(dtype=float).reshape(-1, 2),
            hovertemplate=(f"<b>%{{y}}</b> ×{f:g} = %{{customdata[1]:,.4~r}}<br>"
                           f"{out_title}: %{{customdata[0]:,.4~r}}<extra></extra>")))
    if len(bars.bars):
        fig.add_vline(x=float(bars.bars["base"].iloc[0]), line={"color": COLORS[6], "dash": "dash", "width": 1},
                      annotation_text="plan", annotation_position="top")
    else:
        _empty(fig, f"no input changes {output}")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def predicted_vs_measured(df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """A capacity plan checked against a run: predicted and measured side by side per metric.

    Args:
        df: columns metric, predicted, measured (and optionally unit); one row per metric.
            Metrics differ in unit, so each gets its own panel and y axis.
        title: figure title.

    Returns:
        The figure: a "predicted" and a "measured" Bar trace per metric panel.
    """
    n = max(1, len(df))
    names = [_key(m) for m in df["metric"]] if len(df) else [""]
    fig = make_subplots(rows=1, cols=n, subplot_titles=names, horizontal_spacing=min(0.08, 0.5 / n))
    fig.update_layout(template=TEMPLATE, title=title or "predicted vs measured", barmode="group",
                      showlegend=True, bargap=0.3)
    units = [_key(u) for u in df["unit"]] if "unit" in df else [""] * len(df)
    for i, (metric, predicted, measured, unit) in enumerate(
            zip(names, _num(df["predicted"]), _num(df["measured"]), units)):
        suffix = f" {unit}" if unit else ""
        for j, (label, value) in enumerate((("predicted", predicted), ("measured", measured))):
            fig.add_trace(go.Bar(
                x=[label], y=[value], name=label, legendgroup=label, showlegend=i == 0,
                marker_color=COLORS[6] if j == 0 else COLORS[0],
                hovertemplate=f"<b>{metric}</b><br>{label}: %{{y:,.4~r}}{suffix}<extra></extra>"),
                row=1, col=i + 1)
        fig.update_yaxes(title_text=axis_title(metric) if not unit else f"{metric} ({unit})",
                         row=1, col=i + 1, rangemode="tozero")
    if not len(df):
        _empty(fig, "nothing to compare")
    return fig

