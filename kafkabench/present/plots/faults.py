"""A run's faults on its time-series figures (`mark_faults`: a labelled line per action, a
shaded band while a node was down), and the cluster's state over the run: under-replicated
and offline partitions, leader changes, the smallest ISR (`cluster_state_over_time`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.analysis.cluster_state import cluster_state_per_second
from kafkabench.analysis.downtime import down_spans, started_s
from kafkabench.present.plots._common import (
    COLORS,
    TEMPLATE,
    _empty,
    _key,
    _missing,
    _num,
    _time_index,
    axis_title,
)

_FAULT_COLOR = COLORS[3]
_UNDO_COLOR = COLORS[2]
_FAULT_BAND = "rgba(213,94,0,0.10)"
# Labels of faults close in time would overlap: three heights, in turn.
_LABEL_ROWS = 3


def _fault_label(row: dict) -> str:
    """A fault's short label: "kill node 2", "pause leader:orders:0 (failed)"."""
    node, target = row.get("node"), _key(row.get("target"))
    who = f"node {int(node)}" if not _missing(node) else target
    label = f"{_key(row.get('action'))} {who}".strip()
    if row.get("origin") == "cleanup":
        label = f"cleanup: {label}"
    outcome = _key(row.get("outcome"))
    return f"{label} ({outcome})" if outcome and outcome != "ok" else label


def _fault_hover(row: dict) -> str:
    def seconds(column: str) -> str:
        value = row.get(column)
        return "-" if _missing(value) or not math.isfinite(float(value)) else f"{float(value):.2f} s"

    lines = [f"<b>{_fault_label(row)}</b>", f"target {_key(row.get('target'))} ({_key(row.get('origin'))})",
             f"scheduled {seconds('scheduled_s')}, started {seconds('started_s')}, "
             f"ended {seconds('ended_s')}", f"outcome {_key(row.get('outcome'))}"]
    lines += [f"{c} {_key(row.get(c))}" for c in ("error", "command") if _key(row.get(c))]
    return "<br>".join(lines)


def mark_faults(fig: go.Figure, faults: pd.DataFrame | None) -> go.Figure:
    """Mark a run's faults on a time-series figure (its x axis: seconds of the run).

    Args:
        fig: a figure whose x axis is the run's t (seconds since the producers started).
        faults: `RunResult.faults` (`FaultObserver.frame()`): a dashed vertical line at each
            action's started_s (none for one that never started), labelled "kill node 2",
            with its details on hover; start/resume in green, the others in red; a shaded
            band over the time a node was down or paused, when the frame shows it coming
            back. None or an empty frame leaves the figure as it is.

    Returns:
        The same figure.
    """
    if faults is None or faults.empty:
        return fig
    rows = faults.to_dict("records")
    for x0, x1 in down_spans(rows):
        fig.add_shape(type="rect", x0=x0, x1=x1, xref="x", y0=0, y1=1, yref="paper",
                      fillcolor=_FAULT_BAND, line={"width": 0}, layer="below", name="fault span")
    drawn = 0
    for row in rows:
        x = started_s(row)
        if math.isnan(x):
            continue
        colour = _UNDO_COLOR if row.get("action") in ("start", "resume") else _FAULT_COLOR
        if row.get("origin") == "cleanup":
            colour = COLORS[6]
        fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                      line={"color": colour, "width": 1.5, "dash": "dash"}, name="fault")
        fig.add_annotation(x=x, xref="x", y=1 - 0.06 * (drawn % _LABEL_ROWS), yref="paper",
                           yanchor="top", xanchor="left", showarrow=False, text=_fault_label(row),
                           font={"size": 11, "color": colour}, bgcolor="rgba(255,255,255,0.7)",
                           hovertext=_fault_hover(row), name="fault")
        drawn += 1
    return fig


def cluster_state_over_time(cluster_state: pd.DataFrame, faults: pd.DataFrame | None = None, *,
                            title: str | None = None) -> go.Figure:
    """Under-replicated and offline partitions, leader changes and the smallest ISR over time.

    Args:
        cluster_state: `RunResult.cluster_state` (`ClusterStateObserver.frame()`), or its
            `kafkabench.clusterstate.cluster_state_per_second()` (t, under_replicated, offline,
            leader_changes, min_isr_size).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.

    Returns:
        The figure: partition counts as steps and leader changes as bars (top), the smallest
        in-sync replica set of any partition (bottom); seconds without an answer are gaps.
    """
    if "partition" in cluster_state.columns:
        cluster_state = cluster_state_per_second(cluster_state)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35])
    fig.update_layout(template=TEMPLATE, title=title or "cluster state", hovermode="x unified",
                      height=520, barmode="overlay")
    t = _time_index(cluster_state)
    for column, name, colour in (("under_replicated", "under-replicated", COLORS[1]),
                                 ("offline", "offline", COLORS[3])):
        fig.add_trace(go.Scatter(x=t, y=_num(cluster_state[column]), name=name, mode="lines",
                                 line={"color": colour, "shape": "hv"},
                                 hovertemplate="%{y:,.0f} partitions"), row=1, col=1)
    fig.add_trace(go.Bar(x=t, y=_num(cluster_state["leader_changes"]), name="leader changes",
                         marker_color=COLORS[0], opacity=0.6, hovertemplate="%{y:,.0f}"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=_num(cluster_state["min_isr_size"]), name="min ISR size",
                             mode="lines", line={"color": COLORS[2], "shape": "hv"},
                             hovertemplate="%{y:,.0f} replicas"), row=2, col=1)
    counts = _num(pd.concat([cluster_state[c] for c in ("under_replicated", "offline", "leader_changes",
                                                        "min_isr_size")]))
    counts = counts[np.isfinite(counts)]
    whole = {"dtick": 1} if not len(counts) or counts.max() <= 10 else {}  # no 2.5-partition ticks
    fig.update_yaxes(title_text=axis_title("partitions"), rangemode="nonnegative", row=1, col=1, **whole)
    fig.update_yaxes(title_text="min ISR size (replicas)", rangemode="nonnegative", row=2, col=1, **whole)
    fig.update_xaxes(title_text=axis_title("t"), row=2, col=1)
    if not len(t):
        _empty(fig, "no cluster state sampled")
    return mark_faults(fig, faults)

