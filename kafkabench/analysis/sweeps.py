"""A sweep's runs as one row each (pure): `summarize` picks the swept parameters and the summary
metrics (`DEFAULT_METRICS`: publish rate and MB/s, latency percentiles, ...) out of every run.

May import: `kafkabench.core`.
"""

#: Metrics `summarize` aggregates by default.
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from kafkabench.core.contract import summary_names

DEFAULT_METRICS = summary_names("publish_rate", "publish_mb_s", "publish_latency_ms_p99",
                                "e2e_latency_ms_p99")


def summarize(df: pd.DataFrame, spec_or_params: Any,
              metrics: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """Median, min and max of each metric per sweep point.

    Args:
        df: Runs, one per row (`run_sweep` or `load_sweep`; or `load_results` rows with the
            parameter columns).
        spec_or_params: The sweep, or the parameter columns that identify a point.
        metrics: Summary columns to aggregate (missing ones give NaN).

    Returns:
        One row per point, in the order the points first appear: the parameter columns,
        `point` (when `df` has it), `runs`, then `<metric>_median`, `<metric>_min`, `<metric>_max`.
    """
    # A SweepSpec (its `params`) or the parameter names themselves.
    params = list(getattr(spec_or_params, "params", spec_or_params))
    metrics = list(metrics)
    stats = [f"{m}_{agg}" for m in metrics for agg in ("median", "min", "max")]
    lead = params + (["point"] if "point" in df else [])
    if df.empty:
        return pd.DataFrame(columns=[*lead, "runs", *stats])
    if "point" in df:
        keys = df["point"]
    else:
        # Parameter values may be unhashable (a message size distribution): key on their text.
        keys = df[params].map(lambda v: json.dumps(_json_value(v), sort_keys=True)).agg("|".join, axis=1)
    values = pd.DataFrame({m: pd.to_numeric(df[m], errors="coerce") if m in df else float("nan")
                           for m in metrics}, index=df.index)
    grouped = values.groupby(keys, sort=False)
    agg = grouped.agg(["median", "min", "max"])
    agg.columns = [f"{m}_{a}" for m, a in agg.columns]
    first = df.groupby(keys, sort=False)[[c for c in lead if c in df]].first() if lead else None
    table = pd.concat([first, grouped.size().rename("runs"), agg], axis=1)
    return table.reset_index(drop=True)[[*[c for c in lead if c in df], "runs", *stats]]


def _json_value(value: Any) -> Any:
    """A grid value as JSON-able data (tuples become lists), for ids and saved summaries."""
    return json.loads(json.dumps(value, default=str))


