"""Broker metrics scraped during a run, reshaped (pure): `is_counter` tells a counter family from
a gauge, `to_wide` turns the long `broker_metrics` frame into one column per broker (or label),
counters as per-second rates.

May import: pandas only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    pass


def is_counter(metric: str) -> bool:
    """Whether a metric is a running total (Prometheus naming: `_total`, `_count`, `_sum`)."""
    return metric.endswith(("_total", "_count", "_sum"))


def to_wide(frame: pd.DataFrame, metric: str, by: str = "broker", *, labels: str | None = None,
            agg: str = "sum") -> pd.DataFrame:
    """One metric of a `broker_metrics` frame as one column per broker (or label set), for charts.

    Counters (`is_counter`) become per-second rates: the increase between two scrapes
    divided by the time between them (NaN at the first scrape and across a reset). Gauges
    stay as they are.

    Args:
        frame: a `broker_metrics` frame.
        metric: e.g. "kafka_server_brokertopicmetrics_bytesin_total".
        by: "broker" (a column per broker) or "labels" (a column per label set).
        labels: keep only the series with exactly these labels (`format_labels`, "" for the
            unlabelled all-topics series); None keeps all, aggregated with `agg`.
        agg: how series falling into one cell are combined ("sum", "max", "mean"): e.g.
            several request versions of one request.

    Returns:
        Index `t` (s), one float column per broker or label set, sorted by time.

    Raises:
        ValueError: `by` is neither "broker" nor "labels".
    """
    if by not in ("broker", "labels"):
        raise ValueError(f"by must be 'broker' or 'labels', got {by!r}")
    rows = frame[frame["metric"] == metric]
    if labels is not None:
        rows = rows[rows["labels"] == labels]
    wide = rows.pivot_table(index="t", columns=by, values="value", aggfunc=agg).sort_index()
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.astype("float64")
    if is_counter(metric) and len(wide):
        dt = pd.Series(wide.index, index=wide.index).diff()
        diff = wide.diff()
        wide = diff.where(diff >= 0).div(dt, axis=0)
    wide.index.name = "t"
    return wide


