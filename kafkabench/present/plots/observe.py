"""The client's and the brokers' view of one run on one time axis (`client_and_broker`): what
the client measured beside the brokers' own metrics (JMX exporter scrapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.analysis.broker_series import broker_series
from kafkabench.present.plots._common import (
    COLORS,
    DASHES,
    TEMPLATE,
    _empty,
    _gapped,
    _num,
    _scale,
    _time_index,
    axis_title,
)
from kafkabench.present.plots.faults import _run_time_axes, run_x_range


@dataclass(frozen=True, slots=True)
class _BrokerLine:
    """One broker metric drawn in a row of `client_and_broker`, on its left or right axis."""

    row: int
    metric: str
    name: str
    colour: str
    labels: str | None = None
    across: str | None = "sum"  # None: a line per broker
    scale: float = 1.0
    unit: str = ""
    dash: str = "solid"
    right: bool = False
    quantity: str = ""  # lines of one quantity (`rules.SCALE`) share their axis' scale on purpose


# Row 1 compares the client's rate with the brokers' (one quantity); each other row puts two
# quantities of different scales (the client's p99 of seconds during a pause, the brokers' of
# milliseconds) on their own axes, left and right.
_BROKER_LINES = (
    _BrokerLine(1, "kafka_server_brokertopicmetrics_messagesin_total", "messages in", COLORS[1],
                labels="", unit="msg/s", quantity="messages per second (msg/s)"),
    _BrokerLine(2, "kafka_network_requestmetrics_totaltimems", "Produce total time p99", COLORS[2],
                labels="quantile=0.99,request=Produce", across="max", unit="ms", right=True,
                quantity="Produce p99"),
    _BrokerLine(2, "kafka_network_requestmetrics_requestqueuetimems", "Produce queue time p99", COLORS[2],
                labels="quantile=0.99,request=Produce", across="max", unit="ms", dash="dot", right=True,
                quantity="Produce p99"),
    _BrokerLine(3, "jvm_gc_collection_seconds_sum", "GC time ms/s", COLORS[3], across=None, scale=1000.0,
                unit="ms/s", quantity="GC"),
    _BrokerLine(3, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "handler idle %",
                COLORS[4], across=None, scale=100.0, unit="%", right=True, quantity="idle"),
)
#: Axis titles, (row, right).
_AXIS_TITLES = {(1, False): "messages per second (msg/s)", (2, False): "client publish p99 (ms)",
                (2, True): "broker Produce p99 (ms)", (3, False): "GC time (ms/s)",
                (3, True): "handler idle (%)"}


def client_and_broker(timeseries: pd.DataFrame, broker_metrics: pd.DataFrame, *,
                      faults: pd.DataFrame | None = None, title: str | None = None,
                      x_range: tuple[float, float] | None = None) -> go.Figure:
    """The client's and the brokers' view of one run on one time axis.

    Args:
        timeseries: `RunResult.timeseries` (delivered, publish_latency_ms_p99).
        broker_metrics: `RunResult.broker_metrics` (`kafkabench.brokermetrics`).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.
        x_range: the time axis' range (default `run_x_range` of the client's seconds, else of
            the scrapes); scrapes before it are left out.

    Returns:
        Three rows: messages per second delivered (client) and taken in (brokers, all
        topics); publish p99 (client, left axis) beside the brokers' Produce request total
        and queue time p99 (Kafka's decaying histograms, worst broker; right axis); each
        broker's JVM GC time per second (left) and request-handler idle share (right). A
        broker that did not answer a scrape (paused, down) leaves a gap, as does a client
        second without a sample.
    """
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        specs=[[{}], [{"secondary_y": True}], [{"secondary_y": True}]],
                        subplot_titles=("throughput", "latency", "broker JVM and request handlers"))
    fig.update_layout(template=TEMPLATE, title=title or "client and brokers", hovermode="x unified",
                      height=760)
    t = _time_index(timeseries)
    x_range = x_range or run_x_range(t if len(t) else _num(broker_metrics.get("t", [])), faults)
    for column, name, colour, row, hover in (
            ("delivered", "delivered (client)", COLORS[0], 1, "%{y:,.0f} msg/s"),
            ("publish_latency_ms_p99", "publish p99 (client)", COLORS[5], 2, "%{y:,.1f} ms")):
        if column in timeseries:
            x, y = _gapped(t, timeseries[column])
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", connectgaps=False,
                                     line={"color": colour}, meta=_scale(_AXIS_TITLES[row, False]),
                                     hovertemplate=hover), row=row, col=1, secondary_y=False)
    start = x_range[0] if x_range is not None else -np.inf
    for line in _BROKER_LINES:
        _add_broker_line(fig, broker_metrics, line, start)
    for (row, right), text in _AXIS_TITLES.items():
        # The right axes get round ticks of their own (plotly syncs an overlaying axis' ticks
        # to the left grid otherwise: 17.7, 59.5, 101.3, ...).
        ticks = {"tickmode": "auto", "tickformat": ",~r"} if right else {}
        fig.update_yaxes(title_text=text, rangemode="nonnegative", row=row, col=1, secondary_y=right,
                         showgrid=not right, **ticks)
    fig.update_xaxes(title_text=axis_title("t"), row=3, col=1)
    if not len(t) and broker_metrics.empty:
        _empty(fig, "no client time series and no broker metrics")
    return _run_time_axes(fig, faults, x_range)


def _add_broker_line(fig: go.Figure, broker_metrics: pd.DataFrame, line: _BrokerLine, start: float) -> None:
    """The line across the brokers, or a line per broker (dashes in turn), of one metric, from
    `start` on."""
    series = broker_series(broker_metrics, line.metric, labels=line.labels, across=line.across)
    series = series[series.index.to_numpy(dtype="float64") >= start] if len(series) else series
    for i, column in enumerate(series.columns):
        per_broker = line.across is None
        x, y = _gapped(series.index.to_numpy(dtype="float64"), _num(series[column]) * line.scale)
        # Past six brokers the dashes come round again: the next six take colours no row uses.
        colour = COLORS[(COLORS.index(line.colour) + 6 * (i // len(DASHES))) % len(COLORS)] if per_broker \
            else line.colour
        fig.add_trace(go.Scatter(
            x=x, y=y, name=f"{line.name} (broker {column})" if per_broker else f"{line.name} (brokers)",
            mode="lines", connectgaps=False, meta=_scale(line.quantity),
            line={"color": colour, "dash": DASHES[i % len(DASHES)] if per_broker else line.dash},
            hovertemplate=f"%{{y:,.1f}} {line.unit}"),
            row=line.row, col=1, secondary_y=line.right)
