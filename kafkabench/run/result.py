"""`RunResult`, what a run returns and `kafkabench.results` saves: the summary, the per-second
timeseries, lag, rebalances, librdkafka statistics, the merged latency histograms and every
feature's frames; `make_run_id`; the empty frames of each kind (`empty_timeseries`, ...), typed
by `kafkabench.core.contract`.

May import: `kafkabench.core`, `kafkabench.measure`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from kafkabench.core.contract import columns, empty_frame
from kafkabench.measure.stats import LatencyRecorder, spectrum

#: A run's timeseries and rebalances columns (see `kafkabench.contract`).
TIMESERIES_COLUMNS = columns("timeseries")


REBALANCE_COLUMNS = columns("rebalances")


def empty_timeseries() -> pd.DataFrame:
    """A timeseries frame with no rows: index t, the contract's columns and dtypes."""
    return empty_frame("timeseries")


def empty_lag() -> pd.DataFrame:
    """A lag frame with no rows: `LagSampler.frame()`'s columns and dtypes."""
    return empty_frame("lag")


def empty_rebalances() -> pd.DataFrame:
    """A rebalances frame with no rows: the contract's columns and dtypes."""
    return empty_frame("rebalances")


def _empty(kind: str):
    return lambda: empty_frame(kind)


def empty_librdkafka() -> pd.DataFrame:
    """A librdkafka statistics frame with no rows (see `stats.parse_statistics`)."""
    return empty_frame("librdkafka")


@dataclass(slots=True)
class RunResult:
    """Everything one run measured. Filled by the runner, so not frozen.

    Attributes:
        summary: the flat row of `load_results` (keys: `kafkabench.contract.SUMMARY`).
        timeseries: index t (whole seconds), per-second counts and latency percentiles.
        lag: `LagSampler.frame()` of the run's consumer groups.
        rebalances: t, group, member, event ('assign'|'revoke'|'lost'), partitions, count, wall.
        librdkafka: `stats.parse_statistics` output of every client.
        faults: the fault schedule as carried out (`kafkabench.faults`).
        cluster_state: leader and ISR of every partition, each second (`kafkabench.clusterstate`).
        verify: delivery verification per topic, partition and producer (`kafkabench.verify`).
        recovery: recovery figures per fault (`kafkabench.recovery`).
        processing: the processing stage per second (`kafkabench.processing`).
        dead_letters: the dead-letter topics' records (`kafkabench.processing`).
        membership: the consumer-group membership events carried out (`kafkabench.membership`).
        broker_metrics: the brokers' JMX exporter metrics scraped each second, long format
            (`kafkabench.brokermetrics`).
        (Frame columns, dtypes and units: `kafkabench.contract.FRAMES`.)
        histograms: {"publish_latency_us", "publish_delay_us", "e2e_latency_us": LatencyRecorder}.
        config: {"workload": {...}, "profile": {...}} to reproduce the run.
        intervals: {(second t, histogram name): that second's LatencyRecorder}, as measured;
            `save` writes them as HdrHistogram interval logs (`intervals/<name>.hlog`, read
            with `kafkabench.hdrlog.read_interval_log`); `load` leaves this empty.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    timeseries: pd.DataFrame = field(default_factory=empty_timeseries)
    lag: pd.DataFrame = field(default_factory=empty_lag)
    rebalances: pd.DataFrame = field(default_factory=empty_rebalances)
    librdkafka: pd.DataFrame = field(default_factory=empty_librdkafka)
    faults: pd.DataFrame = field(default_factory=_empty("faults"))
    cluster_state: pd.DataFrame = field(default_factory=_empty("cluster_state"))
    verify: pd.DataFrame = field(default_factory=_empty("verify"))
    recovery: pd.DataFrame = field(default_factory=_empty("recovery"))
    processing: pd.DataFrame = field(default_factory=_empty("processing"))
    dead_letters: pd.DataFrame = field(default_factory=_empty("dead_letters"))
    membership: pd.DataFrame = field(default_factory=_empty("membership"))
    broker_metrics: pd.DataFrame = field(default_factory=_empty("broker_metrics"))
    histograms: dict[str, LatencyRecorder] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    intervals: Mapping[tuple[int, str], LatencyRecorder] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        """The summary's run_id (set by `save` when missing)."""
        return self.summary.get("run_id")

    @property
    def name(self) -> str | None:
        """The run's (workload's) name."""
        return self.summary.get("name")

    def as_dict(self) -> dict[str, Any]:
        """The flat summary row (a copy)."""
        return dict(self.summary)

    def spectrum(self) -> pd.DataFrame:
        """Latency by percentile of every histogram: columns metric, percentile, value_ms."""
        return spectrum(self.histograms)


def make_run_id(name: str, started_at: datetime | None = None) -> str:
    """A sortable, unique folder name: "20261126-213700-quickstart-3f2a".

    Args:
        name: run name; characters other than letters, digits, '_' and '-' become '-'.
        started_at: start time (default now); naive times are taken as local time.
    """
    started_at = started_at or datetime.now()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower() or "run"
    return f"{started_at:%Y%m%d-%H%M%S}-{slug}-{uuid.uuid4().hex[:4]}"


