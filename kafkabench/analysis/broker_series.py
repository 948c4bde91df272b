"""One broker metric of a run as the series a chart draws (`broker_series`): a column per
broker, or one column across brokers (their sum, or the worst broker), with a row of NaN
wherever the brokers missed scrapes (`with_gaps`), so that a line breaks there instead of
bridging the silence.

Frames in, frames out; built on `kafkabench.analysis.broker_metrics.to_wide` (counters as
per-second rates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kafkabench.analysis.broker_metrics import to_wide

#: How `broker_series` combines the brokers' columns: None keeps a column per broker.
ACROSS = ("sum", "max", None)


def broker_series(broker_metrics: pd.DataFrame, metric: str, *, labels: str | None = None,
                  agg: str = "sum", across: str | None = "sum") -> pd.DataFrame:
    """One metric of a `broker_metrics` frame, per broker or across the brokers, gaps kept.

    Args:
        broker_metrics: A run's `broker_metrics` frame (may be empty).
        metric: e.g. "kafka_server_brokertopicmetrics_messagesin_total" (counters become
            per-second rates).
        labels: Keep only the series with exactly these labels (see `to_wide`).
        agg: How series of one broker falling into one cell are combined (see `to_wide`).
        across: "sum": one column "brokers", their total (NaN when no broker answered);
            "max": one column "brokers", the worst broker; None: a column per broker.

    Returns:
        Index `t` (s), float columns as `across` says, and a NaN row in each gap (see
        `with_gaps`); an empty frame when the metric has no samples.

    Raises:
        ValueError: `across` is not one of `ACROSS`.
    """
    if across not in ACROSS:
        raise ValueError(f"across must be 'sum', 'max' or None, got {across!r}")
    wide = to_wide(broker_metrics, metric, labels=labels, agg=agg) if len(broker_metrics) else pd.DataFrame()
    if wide.empty:
        return wide
    wide = with_gaps(wide)
    if across is None:
        return wide
    combined = wide.sum(axis=1, min_count=1) if across == "sum" else wide.max(axis=1)
    return combined.to_frame("brokers")


def with_gaps(wide: pd.DataFrame) -> pd.DataFrame:
    """A NaN row in each gap longer than 1.5 scrape intervals (the median one).

    Args:
        wide: Index `t` (s), sorted; at least three rows for a gap to be found.

    Returns:
        The frame with a NaN row one interval after the start of each gap, sorted by `t`.
    """
    t = wide.index.to_numpy(dtype=float)
    if len(t) < 3:
        return wide
    step = np.median(np.diff(t))
    gaps = t[:-1][np.diff(t) > 1.5 * step] + step
    if not len(gaps):
        return wide
    return pd.concat([wide, pd.DataFrame(np.nan, index=pd.Index(gaps, name=wide.index.name),
                                         columns=wide.columns)]).sort_index()
