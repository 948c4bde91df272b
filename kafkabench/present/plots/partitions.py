"""How messages spread over partitions: each partition's share against the even share
(`partition_share`), and a per-partition figure across strategies as a heatmap
(`partition_heatmap`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kafkabench.present.plots._common import COLORS, _figure, _key, _num, axis_title


def partition_share(per_partition: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Share of messages per partition, against the even share.

    Args:
        per_partition: `PartitionAnalysis.per_partition` (columns partition, messages,
            share in [0, 1]); with a `strategy` column (several analyses concatenated), one
            bar group per strategy.
        title: figure title.

    Returns:
        The figure: a bar trace per strategy (one without a `strategy` column) and a dashed
        line at 1 / partitions, the share of a perfectly even spread.
    """
    fig = _figure(title or "share of messages per partition", xaxis_title=axis_title("partition"),
                  yaxis_title=axis_title("share"), barmode="group", bargap=0.15)
    groups = list(per_partition.groupby("strategy", sort=False)) if "strategy" in per_partition \
        else [(None, per_partition)]
    for i, (strategy, part) in enumerate(groups):
        name = _key(strategy[0] if isinstance(strategy, tuple) else strategy) or "share"
        fig.add_trace(go.Bar(
            x=_num(part["partition"]), y=_num(part["share"]), name=name,
            marker_color=COLORS[i % len(COLORS)],
            customdata=_num(part["messages"]) if "messages" in part else None,
            hovertemplate=(f"<b>{name}</b><br>partition %{{x}}: %{{y:.2%}}"
                           + ("<br>%{customdata:,.0f} messages" if "messages" in part else "")
                           + "<extra></extra>")))
    partitions = per_partition["partition"].nunique() if len(per_partition) else 0
    if partitions:
        fig.add_hline(y=1.0 / partitions, line={"color": COLORS[6], "dash": "dash", "width": 1},
                      annotation_text="even share", annotation_position="top right")
    fig.update_layout(showlegend=len(groups) > 1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(dtick=1 if partitions <= 32 else None)
    return fig


def partition_heatmap(df: pd.DataFrame, x: str = "partition", y: str = "strategy",
                      z: str = "share", *, title: str | None = None) -> go.Figure:
    """A heatmap of a per-partition figure across strategies (or key kinds, partition counts).

    Args:
        df: long format, one row per (y, x) cell, e.g. per_partition frames of several
            strategies concatenated with a `strategy` column.
        x: column along the x axis.
        y: column along the y axis.
        z: value column.
        title: figure title.

    Returns:
        The figure: one Heatmap trace; cells without a row are blank.
    """
    grid = df.pivot_table(index=y, columns=x, values=z, aggfunc="first", sort=False)
    is_share = z == "share"
    fig = _figure(title or f"{axis_title(z)} by {axis_title(x)} and {axis_title(y)}",
                  xaxis_title=axis_title(x), yaxis_title=axis_title(y))
    fig.add_trace(go.Heatmap(
        z=grid.to_numpy(dtype="float64", na_value=np.nan),
        x=[str(c) for c in grid.columns], y=[str(i) for i in grid.index],
        colorscale="Blues", colorbar={"title": {"text": axis_title(z)},
                                      "tickformat": ".0%" if is_share else None},
        hovertemplate=(f"{axis_title(y)} %{{y}}<br>{axis_title(x)} %{{x}}<br>{axis_title(z)}: "
                       f"%{{z:{'.2%' if is_share else ',.4~r'}}}<extra></extra>")))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig

