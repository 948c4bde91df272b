"""Consumer group membership: who owned which partition when, with members crashing,
leaving and joining marked (`rebalance_timeline`).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from kafkabench.analysis.rebalance import ownership
from kafkabench.present.plots._common import COLORS, _empty, _figure, _num, axis_title
from kafkabench.present.plots.faults import _FAULT_COLOR


def rebalance_timeline(rebalances: pd.DataFrame, membership: pd.DataFrame | None = None, *,
                       group: str | None = None, end_t: float | None = None,
                       title: str | None = None) -> go.Figure:
    """Who owned which partition when: a bar per ownership interval, a row per partition,
    a colour per member (`kafkabench.membership.ownership`), with the membership events
    as dashed lines.

    Args:
        rebalances: a run's `rebalances` frame.
        membership: its `membership` frame (crashes and leaves end ownership; events drawn).
        group: one group (default: the first).
        end_t: where intervals still open end (default: the last event).
        title: figure title.

    Returns:
        The figure.
    """
    if group is None and rebalances is not None and len(rebalances):
        group = str(rebalances["group"].iloc[0])
    spans = ownership(rebalances, membership, group=group, end_t=end_t)
    fig = _figure(title or "partition ownership over time", barmode="overlay")
    members = list(dict.fromkeys(spans["member"]))
    for i, member in enumerate(members):
        rows = spans[spans["member"] == member]
        fig.add_trace(go.Bar(base=_num(rows["start_t"]), x=_num(rows["end_t"] - rows["start_t"]),
                             y=[f"p{p}" for p in rows["partition"]],
                             orientation="h", name=member, marker={"color": COLORS[i % len(COLORS)]},
                             hovertemplate="%{y}: " + member + " from %{base:.2f} s for %{x:.2f} s<extra></extra>"))
    if membership is not None and len(membership):
        for row in membership[membership["t_s"].notna()].itertuples():
            fig.add_shape(type="line", x0=row.t_s, x1=row.t_s, xref="x", y0=0, y1=1, yref="paper",
                          line={"color": _FAULT_COLOR, "width": 1.5, "dash": "dash"})
            fig.add_annotation(x=row.t_s, xref="x", y=1.02, yref="paper", showarrow=False,
                               text=f"{row.action} {row.worker}", font={"size": 10})
    fig.update_xaxes(title_text=axis_title("t"))
    fig.update_yaxes(title_text="partition", categoryorder="category descending")
    if not len(spans):
        _empty(fig, "no assignments recorded")
    return fig
