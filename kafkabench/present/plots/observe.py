"""The client's and the brokers' view of one run on one time axis (`client_and_broker`): what
the client measured beside the brokers' own metrics (JMX exporter scrapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kafkabench.analysis.broker_series import broker_series
from kafkabench.present.plots._common import (
    COLORS,
    DASHES,
    TEMPLATE,
    _empty,
    _num,
    _time_index,
    axis_title,
)
from kafkabench.present.plots.faults import mark_faults


@dataclass(frozen=True, slots=True)
class _BrokerLine:
    """One broker metric drawn in a row of `client_and_broker`."""

    row: int
    metric: str
    name: str
    colour: str
    labels: str | None = None
    across: str | None = "sum"  # None: a line per broker
    scale: float = 1.0
    unit: str = ""
    dash: str = "solid"


_BROKER_LINES = (
    _BrokerLine(1, "kafka_server_brokertopicmetrics_messagesin_total", "messages in", COLORS[1],
                labels="", unit="msg/s"),
    _BrokerLine(2, "kafka_network_requestmetrics_totaltimems", "Produce total time p99", COLORS[1],
                labels="quantile=0.99,request=Produce", across="max", unit="ms"),
    _BrokerLine(2, "kafka_network_requestmetrics_requestqueuetimems", "Produce queue time p99", COLORS[2],
                labels="quantile=0.99,request=Produce", across="max", unit="ms", dash="dot"),
    _BrokerLine(3, "jvm_gc_collection_seconds_sum", "GC time ms/s", COLORS[3], across=None, scale=1000.0,
                unit="ms/s"),
    _BrokerLine(3, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "handler idle %",
                COLORS[4], across=None, scale=100.0, unit="%"),
)


def client_and_broker(timeseries: pd.DataFrame, broker_metrics: pd.DataFrame, *,
                      faults: pd.DataFrame | None = None, title: str | None = None) -> go.Figure:
    """The client's and the brokers' view of one run on one time axis.

    Args:
        timeseries: `RunResult.timeseries` (delivered, publish_latency_ms_p99).
        broker_metrics: `RunResult.broker_metrics` (`kafkabench.brokermetrics`).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.

    Returns:
        Three rows: messages per second delivered (client) and taken in (brokers, all
        topics); publish p99 (client) beside the brokers' Produce request total and queue
        time p99 (Kafka's decaying histograms, worst broker); each broker's JVM GC time per
        second and request-handler idle share. A broker that did not answer a scrape (paused,
        down) leaves a gap.
    """
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("throughput", "latency", "broker JVM and request handlers"))
    fig.update_layout(template=TEMPLATE, title=title or "client and brokers", hovermode="x unified",
                      height=760)
    t = _time_index(timeseries)
    if "delivered" in timeseries:
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries["delivered"]), name="delivered (client)",
                                 mode="lines", line={"color": COLORS[0]}, hovertemplate="%{y:,.0f} msg/s"),
                      row=1, col=1)
    if "publish_latency_ms_p99" in timeseries:
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries["publish_latency_ms_p99"]), name="publish p99 (client)",
                                 mode="lines", line={"color": COLORS[0]}, hovertemplate="%{y:,.1f} ms"),
                      row=2, col=1)

    for line in _BROKER_LINES:
        _add_broker_line(fig, broker_metrics, line)
    fig.update_yaxes(title_text="msg/s", rangemode="nonnegative", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="nonnegative", row=2, col=1)
    fig.update_yaxes(title_text="ms/s, %", rangemode="nonnegative", row=3, col=1)
    fig.update_xaxes(title_text=axis_title("t"), row=3, col=1)
    if not len(t) and broker_metrics.empty:
        _empty(fig, "no client time series and no broker metrics")
    return mark_faults(fig, faults)



def _add_broker_line(fig: go.Figure, broker_metrics: pd.DataFrame, line: _BrokerLine) -> None:
    """The line across the brokers, or a line per broker (dashes in turn), of one metric."""
    series = broker_series(broker_metrics, line.metric, labels=line.labels, across=line.across)
    for i, column in enumerate(series.columns):
        per_broker = line.across is None
        fig.add_trace(go.Scatter(
            x=series.index.to_numpy(), y=_num(series[column]) * line.scale,
            name=f"{line.name} (broker {column})" if per_broker else f"{line.name} (brokers)",
            mode="lines", connectgaps=False,
            line={"color": line.colour, "dash": DASHES[i % len(DASHES)] if per_broker else line.dash},
            hovertemplate=f"%{{y:,.1f}} {line.unit}"), row=line.row, col=1)
