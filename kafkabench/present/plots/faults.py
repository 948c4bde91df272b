"""A run's faults on its time-series figures (`mark_faults`: a labelled line per action, a
shaded band while a node was down), and the cluster's state over the run: under-replicated
and offline partitions, leader changes, the smallest ISR (`cluster_state_over_time`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.analysis.cluster_state import cluster_state_per_second
from kafkabench.analysis.downtime import downtimes, started_s
from kafkabench.present.plots._common import (
    COLORS,
    TEMPLATE,
    _empty,
    _gapped,
    _key,
    _missing,
    _num,
    _scale,
    _time_index,
    axis_title,
)
from kafkabench.present.plots.rules import FAULT_LINE, FAULT_SPAN

_FAULT_COLOR = COLORS[3]
_UNDO_COLOR = COLORS[2]
_FAULT_BAND = "rgba(213,94,0,0.10)"
_COMING_BACK_BAND = "rgba(0,158,115,0.08)"
#: Margins of every run time-series figure: fixed sides (tick labels and axis titles fit in
#: them; an automatic margin would follow each figure's widest label), room above for the title
#: and the legend.
RUN_MARGIN = {"l": 90, "r": 90, "t": 110, "b": 60}
#: Name of the lighter band from the line of the action that brings a node back to its end.
COMING_BACK = "fault span: coming back"
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
            back, from the line of the action that took it away to the line of the one that
            brought it back (a restart, which brings its node back itself, gets a line where
            it ended), then a lighter band while that action ran (a started JVM is not
            answering yet: the node is back where the lighter band ends). None or an empty
            frame leaves the figure as it is.

    Returns:
        The same figure.
    """
    if faults is None or faults.empty:
        return fig
    rows = faults.to_dict("records")
    ends = []
    for down in downtimes(rows):
        fig.add_shape(type="rect", x0=down.start_s, x1=down.back_s, xref="x", y0=0, y1=1, yref="paper",
                      fillcolor=_FAULT_BAND, line={"width": 0}, layer="below", name=FAULT_SPAN)
        if down.end_s > down.back_s:
            fig.add_shape(type="rect", x0=down.back_s, x1=down.end_s, xref="x", y0=0, y1=1, yref="paper",
                          fillcolor=_COMING_BACK_BAND, line={"width": 0}, layer="below", name=COMING_BACK)
        if down.ended_by is None:
            ends.append((down.back_s, rows[down.began]))
    lines = [(started_s(row), row, False) for row in rows] + [(x, row, True) for x, row in ends]
    for drawn, (x, row, ended) in enumerate(line for line in lines if not math.isnan(line[0])):
        _fault_line(fig, x, row, drawn, ended=ended)
    return fig


def _fault_line(fig: go.Figure, x: float, row: dict, drawn: int, *, ended: bool) -> None:
    """A fault's dashed line at its start (at its end: `ended`) and its label, at the next of
    three heights, with its details on hover."""
    label = f"{_fault_label(row)} ended" if ended else _fault_label(row)
    colour = _UNDO_COLOR if ended or row.get("action") in ("start", "resume") else _FAULT_COLOR
    if row.get("origin") == "cleanup":
        colour = COLORS[6]
    fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                  line={"color": colour, "width": 1.5, "dash": "dash"}, name=FAULT_LINE)
    fig.add_annotation(x=x, xref="x", y=1 - 0.06 * (drawn % _LABEL_ROWS), yref="paper",
                       yanchor="top", xanchor="left", showarrow=False, text=label,
                       font={"size": 11, "color": colour}, bgcolor="rgba(255,255,255,0.7)",
                       hovertext=_fault_hover(row), name=FAULT_LINE)


def run_x_range(t: Any, faults: pd.DataFrame | None = None) -> tuple[float, float] | None:
    """The x range a run's time-series figures share by default: from 0 (or the first fault,
    if earlier) to the end of the last second with samples or fault actions.

    Args:
        t: the sample times drawn (seconds of the run).
        faults: `RunResult.faults`, or None.

    Returns:
        (start, end); None with neither samples nor faults.
    """
    times = _num(t)
    fault_times = np.array([])
    if faults is not None and not faults.empty:
        fault_times = _num(pd.concat([faults[c] for c in ("started_s", "ended_s") if c in faults]))
    times, fault_times = times[np.isfinite(times)], fault_times[np.isfinite(fault_times)]
    if not len(times) and not len(fault_times):
        return None
    start = min(0.0, float(fault_times.min())) if len(fault_times) else 0.0
    return start, math.floor(max(np.concatenate([times, fault_times]))) + 1.0


def _run_time_axes(fig: go.Figure, faults: pd.DataFrame | None,
                   x_range: tuple[float, float] | None) -> go.Figure:
    """Mark the faults, give every x axis of the figure the run's range, and lay it out as
    every run figure is (`RUN_MARGIN`): the legend above the plot, not beside it, and fixed
    side margins, so that figures of one run stacked in a notebook put the same second at the
    same place on the page."""
    mark_faults(fig, faults)
    if x_range is not None:
        fig.update_xaxes(range=[float(x_range[0]), float(x_range[1])])
    fig.update_layout(margin=RUN_MARGIN, legend={"orientation": "h", "yanchor": "bottom", "y": 1.02,
                                                 "xanchor": "left", "x": 0})
    # The whole width for the plot: a right-hand axis (make_subplots' secondary_y takes 6% of
    # the width for it) stands in the fixed right margin instead.
    fig.update_xaxes(domain=[0.0, 1.0])
    fig.update_yaxes(automargin=False)
    return fig


def cluster_state_over_time(cluster_state: pd.DataFrame, faults: pd.DataFrame | None = None, *,
                            title: str | None = None,
                            x_range: tuple[float, float] | None = None) -> go.Figure:
    """Under-replicated and offline partitions, leader changes and the smallest ISR over time.

    Args:
        cluster_state: `RunResult.cluster_state` (`ClusterStateObserver.frame()`), or its
            `kafkabench.clusterstate.cluster_state_per_second()` (t, under_replicated, offline,
            leader_changes, min_isr_size).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.
        x_range: the time axis' range (default `run_x_range`: from 0); seconds sampled before
            it (the sampler starts before the producers) are left out.

    Returns:
        The figure: partition counts as steps and leader changes as bars (top), the smallest
        in-sync replica set of any partition (bottom); seconds without an answer are gaps.
    """
    if "partition" in cluster_state.columns:
        cluster_state = cluster_state_per_second(cluster_state)
    x_range = x_range or run_x_range(_time_index(cluster_state), faults)
    if x_range is not None:
        cluster_state = cluster_state[_time_index(cluster_state) >= x_range[0]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35])
    fig.update_layout(template=TEMPLATE, title=title or "cluster state", hovermode="x unified",
                      height=520, barmode="overlay")
    t = _time_index(cluster_state)
    for column, name, colour in (("under_replicated", "under-replicated", COLORS[1]),
                                 ("offline", "offline", COLORS[3])):
        _step_line(fig, t, cluster_state[column], name, colour, "partitions", row=1)
    fig.add_trace(go.Bar(x=t, y=_num(cluster_state["leader_changes"]), name="leader changes",
                         marker_color=COLORS[0], opacity=0.6, hovertemplate="%{y:,.0f}"),
                  row=1, col=1)
    _step_line(fig, t, cluster_state["min_isr_size"], "min ISR size", COLORS[2], "replicas", row=2)
    counts = _num(pd.concat([cluster_state[c] for c in ("under_replicated", "offline", "leader_changes",
                                                        "min_isr_size")]))
    counts = counts[np.isfinite(counts)]
    whole = {"dtick": 1} if not len(counts) or counts.max() <= 10 else {}  # no 2.5-partition ticks
    fig.update_yaxes(title_text=axis_title("partitions"), rangemode="nonnegative", row=1, col=1, **whole)
    fig.update_yaxes(title_text="min ISR size (replicas)", rangemode="nonnegative", row=2, col=1, **whole)
    fig.update_xaxes(title_text=axis_title("t"), row=2, col=1)
    if not len(t):
        _empty(fig, "no cluster state sampled")
    return _run_time_axes(fig, faults, x_range)


def _step_line(fig: go.Figure, t: np.ndarray, values: pd.Series, name: str, colour: str, unit: str,
               *, row: int) -> None:
    """A count per second as steps, broken where seconds have no sample."""
    x, y = _gapped(t, values)
    fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", connectgaps=False,
                             line={"color": colour, "shape": "hv"}, meta=_scale(unit),
                             hovertemplate=f"%{{y:,.0f}} {unit}"), row=row, col=1)
