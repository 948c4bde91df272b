"""Prometheus metrics out: a run's live metrics, a standalone lag exporter, Locust's metrics.

Every endpoint has its own `CollectorRegistry` (never prometheus_client's global one), so
several exporters live side by side in one process, and each registry holds one custom
collector that builds the metric families when Prometheus scrapes:

- `RunMetrics`: a `RunObserver` serving a `run_workload` run. It costs the produce and consume
  paths nothing: once a second (and at the end) it copies what it needs from the session's
  `Tally` into a snapshot, on the session's own thread, and the HTTP thread only reads
  snapshots. Lag comes from the run's `LagSampler` (`latest()`, replaced whole per sample).
- `serve_lag` / `LagExporter`: lag of any cluster's groups with kafka-lag-exporter's metric
  names (`LAG_METRICS`), plus the Burrow status as a 1/0 gauge per status.
- `LocustMetrics`: the same produced/consumed/latency names from a Locust process's statistics.
- `scrape(url)`: read an endpoint back with prometheus_client's text parser.

The names exposed are listed in `RUN_METRICS`, `LAG_METRICS` and `LOCUST_METRICS`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families

from kafkabench.cluster.lag import IsolatedLagSampler, LagHistory
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.core.threads import Periodic
from kafkabench.measure.lagmath import STATUSES, group_status
from kafkabench.run.session import RunObserver
from kafkabench.run.timeline import ErrorTimeline

if TYPE_CHECKING:
    from kafkabench.measure.stats import LatencyRecorder
    from kafkabench.run.session import RunSession
    from kafkabench.run.tally import Tally

log = logging.getLogger(__name__)

#: Upper bounds (s) of the latency histograms' buckets (+Inf is added).
LATENCY_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DEFAULT_CLUSTER_NAME = "kafkabench"
#: kafka-lag-exporter's names (its README), plus the design source's `kafka_consumer_lag`, the
#: Burrow status and the sampler's own errors.
LAG_METRICS: tuple[str, ...] = (
    "kafka_consumergroup_group_offset", "kafka_consumergroup_group_lag",
    "kafka_consumergroup_group_lag_seconds", "kafka_consumergroup_group_max_lag",
    "kafka_consumergroup_group_max_lag_seconds", "kafka_consumergroup_group_sum_lag",
    "kafka_consumergroup_group_topic_sum_lag", "kafka_partition_latest_offset",
    "kafka_consumer_lag", "kafkabench_consumergroup_status", "kafkabench_lag_sampler_errors_total")
#: What a run's endpoint exposes besides `LAG_METRICS` (histograms: `_bucket`, `_sum`, `_count`).
RUN_METRICS: tuple[str, ...] = (
    "kafka_messages_produced_total", "kafka_messages_consumed_total",
    "kafka_message_processing_duration_seconds", "kafkabench_messages_sent_total",
    "kafkabench_publish_latency_seconds", "kafkabench_publish_delay_seconds",
    "kafkabench_e2e_latency_seconds", "kafkabench_produce_rate_msgs",
    "kafkabench_delivery_rate_msgs", "kafkabench_consume_rate_msgs", "kafkabench_errors_total")
#: What `LocustMetrics` exposes (no publish delay: Locust does not measure it).
LOCUST_METRICS: tuple[str, ...] = tuple(n for n in RUN_METRICS if n != "kafkabench_publish_delay_seconds")
# How long the HTTP server may take to stop.
CLOSE_TIMEOUT_S = 5.0
# Seconds of a run older than the newest by this much are folded into the running totals once
# (a report closes its second up to ~1.5 s late; `SecondHistograms` keeps 5 s decoded).
FOLD_AFTER_S = 8

_HISTOGRAMS = {"publish_latency_us": ("kafkabench_publish_latency_seconds",
                                      "publish latency: produce() to delivery report"),
               "publish_delay_us": ("kafkabench_publish_delay_seconds",
                                    "publish delay: intended send time to actual send time"),
               "e2e_latency_us": ("kafkabench_e2e_latency_seconds",
                                  "end-to-end latency: producer timestamp to receipt by a consumer")}


# --- histograms ------------------------------------------------------------------------------


@dataclass(slots=True)
class Buckets:
    """A latency histogram in fixed Prometheus buckets: counts per bucket (not cumulative;
    the last one is +Inf) and the sum of the values in seconds."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(LATENCY_BUCKETS_S) + 1))
    sum_s: float = 0.0

    def add(self, other: Buckets) -> Buckets:
        """Add another histogram into this one; returns self."""
        self.counts += other.counts
        self.sum_s += other.sum_s
        return self

    def copy(self) -> Buckets:
        return Buckets(self.counts.copy(), self.sum_s)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def from_values(cls, values_s: np.ndarray, counts: np.ndarray) -> Buckets:
        """From values (s) and how often each was seen."""
        i = np.searchsorted(np.asarray(LATENCY_BUCKETS_S), values_s, side="left")
        return cls(np.bincount(i, weights=counts, minlength=len(LATENCY_BUCKETS_S) + 1).astype(float),
                   float(np.dot(values_s, counts)))

    @classmethod
    def from_recorder(cls, recorder: LatencyRecorder) -> Buckets:
        """From a `LatencyRecorder` (microseconds): each HdrHistogram bucket's count goes to the
        Prometheus bucket of its lowest equivalent value (3 significant digits)."""
        # The counts array itself: walking it with hdrhistogram's iterators is pure Python.
        hist = recorder._hist
        counts = np.ctypeslib.as_array(hist.counts)
        nz = np.flatnonzero(counts)
        return cls.from_values(_index_values_us(hist)[nz] / 1e6, counts[nz].astype(float))

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative = np.cumsum(self.counts)
        buckets = [(_bound(b), float(c)) for b, c in zip(LATENCY_BUCKETS_S, cumulative)]
        buckets.append(("+Inf", float(cumulative[-1])))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum_s)


_value_tables: dict[tuple, np.ndarray] = {}


def _index_values_us(hist: Any) -> np.ndarray:
    """The value (us) of every index of an HdrHistogram's counts array, per layout (cached)."""
    key = (hist.counts_len, hist.unit_magnitude, hist.sub_bucket_half_count_magnitude)
    table = _value_tables.get(key)
    if table is None:
        table = _value_tables[key] = np.array([hist.get_value_from_index(i)
                                               for i in range(hist.counts_len)], dtype=float)
    return table


def _bound(b: float) -> str:
    return repr(float(b))


# --- the HTTP endpoint -------------------------------------------------------------------------


class _Collect:
    """A collector calling a function that yields metric families."""

    def __init__(self, fn: Callable[[], Iterable[Metric]]):
        self._fn = fn

    def collect(self) -> Iterator[Metric]:
        yield from self._fn()


class MetricsEndpoint:
    """An HTTP endpoint serving collectors from its own registry, in a daemon thread.

    Args:
        port: TCP port; 0 picks a free one (see `port`).
        host: address to listen on ("0.0.0.0": every interface).
        collectors: objects with `collect()` yielding metric families, or functions yielding them.
        what: what serves there, for the error message.

    Raises:
        ConfigError: the port is in use or cannot be bound, naming it.
    """

    def __init__(self, port: int, *, host: str = "0.0.0.0", collectors: Iterable[Any] = (),
                 what: str = "metrics"):
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"metrics port {port!r}: expected an integer 0-65535 (0: a free one)")
        self.registry = CollectorRegistry(auto_describe=False)
        for c in collectors:
            self.registry.register(c if hasattr(c, "collect") else _Collect(c))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}. Pick another port "
                "(--metrics-port / metrics_port=), or 0 for a free one") from exc
        self.host = host
        self.port: int = self._server.server_port
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.url = f"http://{shown}:{self.port}/metrics"
        self._closed = False

    def text(self) -> str:
        """What a scrape returns now (the Prometheus text format)."""
        return generate_latest(self.registry).decode("utf-8")

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(CLOSE_TIMEOUT_S)

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (for a child process's endpoint; another process may take it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- lag -------------------------------------------------------------------------------------


class LagCollector:
    """Lag families from a `LagSampler`'s latest sample, built at scrape time.

    Args:
        sampler: the sampler, or a function returning the current one (None: nothing yet).
        cluster_name: kafka-lag-exporter's `cluster_name` label.
    """

    def __init__(self, sampler: LagHistory | Callable[[], LagHistory | None] | None,
                 cluster_name: str = DEFAULT_CLUSTER_NAME):
        self._sampler = sampler if callable(sampler) else (lambda: sampler)
        self.cluster_name = cluster_name

    def collect(self) -> Iterator[Metric]:
        sampler = self._sampler()
        if sampler is None:
            return
        yield from lag_families(sampler.latest(), self.cluster_name)
        yield CounterMetricFamily("kafkabench_lag_sampler_errors",
                                  "errors the lag sampler met (failed requests, unread partitions)",
                                  value=sampler.error_count)
        yield CounterMetricFamily("kafkabench_lag_sampler_restarts",
                                  "times the lag sampler's child process died and was restarted "
                                  "(a gap in the samples)", value=len(getattr(sampler, "restarts", ())))


def lag_families(latest: pd.DataFrame, cluster_name: str = DEFAULT_CLUSTER_NAME) -> list[Metric]:
    """kafka-lag-exporter's lag families (and kafkabench's Burrow status) from a lag sample.

    Partitions whose lag is unknown (no committed offset, a failed request, a deleted topic)
    are left out, as kafka-lag-exporter leaves them out: an unknown lag is no 0.

    Args:
        latest: a `LagSampler.latest()` frame.
        cluster_name: the `cluster_name` label.
    """
    part = ["cluster_name", "group", "topic", "partition"]
    fams = {
        "offset": GaugeMetricFamily("kafka_consumergroup_group_offset",
                                    "committed offset of the group on the partition", labels=part),
        "lag": GaugeMetricFamily("kafka_consumergroup_group_lag",
                                 "log-end offset minus committed offset (messages)", labels=part),
        "lag_s": GaugeMetricFamily("kafka_consumergroup_group_lag_seconds",
                                   "estimated lag in seconds (kafka-lag-exporter's interpolation, "
                                   "else the age of the oldest unconsumed record)", labels=part),
        "max": GaugeMetricFamily("kafka_consumergroup_group_max_lag",
                                 "highest partition lag of the group (messages)",
                                 labels=["cluster_name", "group", "is_simple_consumer"]),
        "max_s": GaugeMetricFamily("kafka_consumergroup_group_max_lag_seconds",
                                   "highest partition lag of the group (seconds)",
                                   labels=["cluster_name", "group", "is_simple_consumer"]),
        "sum": GaugeMetricFamily("kafka_consumergroup_group_sum_lag",
                                 "sum of the group's partition lags (messages)",
                                 labels=["cluster_name", "group"]),
        "topic_sum": GaugeMetricFamily("kafka_consumergroup_group_topic_sum_lag",
                                       "sum of the group's partition lags on one topic (messages)",
                                       labels=["cluster_name", "group", "topic"]),
        "end": GaugeMetricFamily("kafka_partition_latest_offset", "log-end offset of the partition",
                                 labels=["cluster_name", "topic", "partition"]),
        "design": GaugeMetricFamily("kafka_consumer_lag", "consumer lag in messages",
                                    labels=["group", "topic", "partition"]),
        "status": GaugeMetricFamily("kafkabench_consumergroup_status",
                                    "Burrow-style status of the group (its worst partition's): "
                                    "1 for the current status, 0 for the others",
                                    labels=["group", "status"]),
    }
    by_group: dict[str, dict[str, Any]] = {}
    ends: dict[tuple[str, int], int] = {}
    for r in latest.itertuples(index=False):
        g = by_group.setdefault(r.group, {"statuses": [], "lag": [], "lag_s": [], "topics": Counter()})
        g["statuses"].append(r.status)
        if r.partition < 0 or r.status == "DELETED":
            continue
        labels = [cluster_name, r.group, r.topic, str(r.partition)]
        if not _na(r.log_end):
            ends[(r.topic, int(r.partition))] = int(r.log_end)
        if not _na(r.committed):
            fams["offset"].add_metric(labels, float(r.committed))
        if not _na(r.lag_msgs):
            lag = int(r.lag_msgs)
            fams["lag"].add_metric(labels, lag)
            fams["design"].add_metric(labels[1:], lag)
            g["lag"].append(lag)
            g["topics"][r.topic] += lag
        if not _na(r.lag_s):
            fams["lag_s"].add_metric(labels, float(r.lag_s))
            g["lag_s"].append(float(r.lag_s))
    for (topic, p), end in sorted(ends.items()):
        fams["end"].add_metric([cluster_name, topic, str(p)], end)
    for group, g in by_group.items():
        if g["lag"]:
            fams["max"].add_metric([cluster_name, group, "false"], max(g["lag"]))
            fams["sum"].add_metric([cluster_name, group], sum(g["lag"]))
        if g["lag_s"]:
            fams["max_s"].add_metric([cluster_name, group, "false"], max(g["lag_s"]))
        for topic, total in g["topics"].items():
            fams["topic_sum"].add_metric([cluster_name, group, topic], total)
        current = group_status(g["statuses"])
        for status in STATUSES:
            fams["status"].add_metric([group, status], 1.0 if status == current else 0.0)
    return list(fams.values())


def _na(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


class LagExporter:
    """Samples consumer groups' lag every `interval_s` and serves it (`serve_lag` makes one).

    Attributes:
        port, url: where it serves.
        endpoint: the `MetricsEndpoint`.
    """

    def __init__(self, bootstrap: str, *, groups: list[str] | None, all_groups: bool, port: int,
                 host: str = "0.0.0.0", interval_s: float = 1.0, conf: Mapping[str, Any] | None = None,
                 cluster_name: str = DEFAULT_CLUSTER_NAME, request_timeout_s: float = 5.0):
        if all_groups == bool(groups):
            raise ConfigError(f"groups={groups!r}, all_groups={all_groups!r}: name the consumer "
                              "groups (--group) or ask for all of them (--all-groups), not both")
        if not interval_s > 0:
            raise ConfigError(f"interval {interval_s!r}: expected seconds > 0")
        self.bootstrap, self.interval_s, self.all_groups = bootstrap, interval_s, all_groups
        self._conf = dict(conf or {})
        self._timeout_s = request_timeout_s
        self._groups = list(dict.fromkeys(groups or []))
        self._sampler: IsolatedLagSampler | None = None
        self.endpoint = MetricsEndpoint(port, host=host, what="the lag exporter",
                                        collectors=[LagCollector(lambda: self._sampler, cluster_name)])
        self.port, self.url = self.endpoint.port, self.endpoint.url
        try:
            self._tick()  # the first scrape already has a sample
        except BaseException:
            self.endpoint.close()
            raise
        self._thread = Periodic(self._tick, self.interval_s, name="kafkabench-lag-exporter",
                                first_now=False).start()

    @property
    def groups(self) -> list[str]:
        """The groups sampled now."""
        return list(self._groups)

    def _tick(self) -> None:
        if self.all_groups:
            self._refresh_groups()
        if self._sampler is None and self._groups:
            # In a child process: a client-library abort costs a sample, not the exporter.
            self._sampler = IsolatedLagSampler(self.bootstrap, self._groups, interval_s=self.interval_s,
                                               conf=self._conf, request_timeout_s=self._timeout_s)
        if self._sampler is not None:
            self._sampler.sample_once()

    def _refresh_groups(self) -> None:
        from kafkabench.cluster.admin import list_consumer_groups

        try:
            found = list_consumer_groups(self.bootstrap, conf=self._conf, timeout_s=self._timeout_s)
        except ClusterError as exc:  # keep sampling the groups known so far
            log.warning("kafkabench: listing consumer groups failed: %s", exc)
            return
        if set(found) != set(self._groups):
            # LagSampler's groups are fixed: a new set takes a new sampler (its lag-in-seconds
            # tables start over; the oldest unconsumed record's age covers the gap).
            old, self._groups = self._sampler, found
            self._sampler = None
            if old is not None:
                old.close()

    def close(self) -> None:
        """Stop sampling and serving (idempotent)."""
        self._thread.stop(5 * self._timeout_s + 5)
        self.endpoint.close()
        if self._sampler is not None:
            self._sampler.close()

    def __enter__(self) -> LagExporter:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def serve_lag(bootstrap: str, *, groups: list[str] | None = None, all_groups: bool = False,
              port: int, host: str = "0.0.0.0", interval_s: float = 1.0,
              conf: Mapping[str, Any] | None = None,
              cluster_name: str = DEFAULT_CLUSTER_NAME, timeout_s: float = 10.0) -> LagExporter:
    """Serve the lag of consumer groups of any cluster for Prometheus (`LAG_METRICS`).

    Args:
        bootstrap: bootstrap servers.
        groups: the groups to watch.
        all_groups: watch every group, listed again every interval (new groups are picked up).
        port: TCP port (0: a free one).
        host: address to listen on.
        interval_s: seconds between samples.
        conf: client settings (security).
        cluster_name: the `cluster_name` label.
        timeout_s: how long the cluster may take to answer at start.

    Returns:
        The running `LagExporter` (first sample taken); `close()` it, or use it as a context
        manager.

    Raises:
        ClusterError: the cluster does not answer. ConfigError: the port is in use, or bad
            arguments.
    """
    from kafkabench.cluster.local import check_reachable

    check_reachable(bootstrap, conf, timeout_s)
    return LagExporter(bootstrap, groups=groups, all_groups=all_groups, port=port, host=host,
                       interval_s=interval_s, conf=conf, cluster_name=cluster_name)


# --- a run's metrics ---------------------------------------------------------------------------


@dataclass(slots=True)
class _RunSnapshot:
    """What the run's endpoint shows, copied from the tally on the session's thread."""

    sent: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    consumed: dict[tuple[str, str], int] = field(default_factory=dict)
    histograms: dict[str, Buckets] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class RunMetrics(RunObserver):
    """Serves a run's live metrics for Prometheus (`RUN_METRICS` and `LAG_METRICS`).

    The port is bound when the object is made, so a port in use fails before the run starts.
    Serves until `on_end` (or `close()`); `text()` still gives the last snapshot afterwards.

    Args:
        port: TCP port (0: a free one, see `port` and `url`).
        host: address to listen on.
        lag: the run's lag sampler; None finds the session's `LagObserver` at start.
        cluster_name: kafka-lag-exporter's `cluster_name` label.

    Raises:
        ConfigError: the port is in use.
    """

    def __init__(self, port: int, *, host: str = "0.0.0.0", lag: LagHistory | None = None,
                 cluster_name: str = DEFAULT_CLUSTER_NAME):
        self._lag = lag
        self._lock = threading.Lock()
        self._snapshot = _RunSnapshot()
        self._errors = ErrorTimeline()  # the run's, from on_start
        self._folded: dict[str, Buckets] = {}
        self._folded_keys: set[tuple[int, str]] = set()
        self._topics: list[str] = []
        self._topic_of_group: dict[str, str] = {}
        self.endpoint = MetricsEndpoint(port, host=host, what="the run's metrics",
                                        collectors=[self._collect,
                                                    LagCollector(lambda: self._lag, cluster_name)])
        self.port, self.url = self.endpoint.port, self.endpoint.url

    @property
    def lag(self) -> LagHistory | None:
        """The lag sampler the lag metrics come from."""
        return self._lag

    def on_start(self, session: RunSession) -> None:
        from kafkabench.run.observers import LagObserver

        if self._lag is None:
            self._lag = next((o.sampler for o in session.observers if isinstance(o, LagObserver)), None)
        self._topics = list(session.plan.topics)
        self._topic_of_group = dict(session.plan.topic_of_group)
        # The producers' errors by second (the plan registers the part in runs with producers).
        self._errors = session.tally.register(ErrorTimeline())
        self._take(session.tally, final=False)

    def on_second(self, session: RunSession) -> None:
        self._take(session.tally, final=False)

    def on_end(self, session: RunSession) -> None:
        self._take(session.tally, final=True)
        self.close()

    def contribute(self, result: Any) -> None:
        result.summary["metrics_url"] = self.url

    def close(self) -> None:
        """Stop serving (idempotent)."""
        self.endpoint.close()

    def text(self) -> str:
        """The endpoint's text now (after the run: its final values)."""
        return self.endpoint.text()

    def _take(self, tally: Tally, *, final: bool) -> None:
        """Copy the tally's figures into a new snapshot (on the session's thread)."""
        snap = _RunSnapshot()
        counts = tally.counts
        per_s = {k: sum(c.get(k, 0) for c in counts.values()) for k in ("sent", "delivered", "failed")}
        prod, cons = tally.totals.get("producer", Counter()), tally.totals.get("consumer", Counter())
        # As the summary counts: a worker's final report, else what its seconds added up to.
        snap.sent = max(per_s["sent"], int(prod.get("sent", 0)))
        delivered = max(per_s["delivered"], int(prod.get("delivered", 0)))
        failed = max(per_s["failed"], int(prod.get("failed", 0)))
        snap.delivered = {t: int(tally.delivered_by_topic.get(t, 0)) for t in self._topics}
        snap.delivered.update({t: int(n) for t, n in tally.delivered_by_topic.items()})
        if len(snap.delivered) == 1:
            snap.delivered = dict.fromkeys(snap.delivered, delivered)
        snap.failed = {t: int(tally.failed_by_topic.get(t, 0)) for t in self._topics}
        snap.failed.update({t: int(n) for t, n in tally.failed_by_topic.items()})
        if len(snap.failed) == 1:
            snap.failed = dict.fromkeys(snap.failed, failed)
        snap.consumed = {(self._topic_of_group.get(g, ""), g): int(n)
                         for g, n in {**dict.fromkeys(self._topic_of_group, 0),
                                      **tally.consumed_by_group}.items()}
        consumed = max(sum(c.get("consumed", 0) for c in counts.values()), int(cons.get("consumed", 0)))
        if len(snap.consumed) == 1:
            snap.consumed = dict.fromkeys(snap.consumed, consumed)
        last = counts.get(max(counts, default=0) - 1, Counter()) if counts else Counter()
        snap.rates = {k: int(last.get(k, 0)) for k in ("sent", "delivered", "consumed")}
        snap.errors = dict(tally.errors.counts)
        for (_, code), n in self._errors.items():
            snap.errors[code] = max(snap.errors.get(code, 0), int(n))
        snap.histograms = self._histograms(tally, final)
        with self._lock:
            self._snapshot = snap

    def _histograms(self, tally: Tally, final: bool) -> dict[str, Buckets]:
        """Every histogram of the run so far: old seconds folded once, recent ones added fresh;
        at the end, all of them from scratch (a late report may have reached an old second)."""
        hists = tally.histograms
        keys = list(hists.keys())
        if final:
            self._folded, self._folded_keys = {}, set()
            fresh = keys
        else:
            newest = max((k[0] for k in keys), default=0)
            for key in keys:
                if key[0] < newest - FOLD_AFTER_S and key not in self._folded_keys:
                    self._folded.setdefault(key[1], Buckets()).add(Buckets.from_recorder(hists[key]))
                    self._folded_keys.add(key)
            fresh = [k for k in keys if k not in self._folded_keys]
        out = {name: b.copy() for name, b in self._folded.items()}
        for key in fresh:
            out.setdefault(key[1], Buckets()).add(Buckets.from_recorder(hists[key]))
        return out

    def _collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snapshot
        produced = CounterMetricFamily("kafka_messages_produced",
                                       "messages produced, by topic and delivery outcome (status "
                                       "success: acknowledged; failed: delivery failed)",
                                       labels=["topic", "status"])
        for topic, n in snap.delivered.items():
            produced.add_metric([topic, "success"], n)
        for topic, n in snap.failed.items():
            produced.add_metric([topic, "failed"], n)
        yield produced
        yield CounterMetricFamily("kafkabench_messages_sent", "messages handed to produce()",
                                  value=snap.sent)
        consumed = CounterMetricFamily("kafka_messages_consumed", "messages consumed, per group",
                                       labels=["topic", "group"])
        for (topic, group), n in snap.consumed.items():
            consumed.add_metric([topic, group], n)
        yield consumed
        yield from _latency_families(snap.histograms)
        for key, name, doc in (("sent", "kafkabench_produce_rate_msgs", "messages produced (sent)"),
                               ("delivered", "kafkabench_delivery_rate_msgs", "messages acknowledged"),
                               ("consumed", "kafkabench_consume_rate_msgs", "messages consumed")):
            yield GaugeMetricFamily(name, f"{doc} in the last full second", value=snap.rates.get(key, 0))
        yield _errors_family(snap.errors)


def _latency_families(hists: Mapping[str, Buckets]) -> Iterator[Metric]:
    """The latency histograms, and the design source's processing duration."""
    for key, (name, doc) in _HISTOGRAMS.items():
        yield hists.get(key, Buckets()).family(name, f"{doc} (seconds)")
    stage = hists.get("processing_latency_us")
    if stage is not None and stage.count:
        yield stage.family("kafka_message_processing_duration_seconds",
                           "processing time of a message by the consumer's processing stage, "
                           "receipt to done, retries included (seconds)")
    else:
        yield hists.get("e2e_latency_us", Buckets()).family(
            "kafka_message_processing_duration_seconds",
            "no processing stage in this run: end-to-end latency, producer timestamp to "
            "receipt by a consumer (seconds)")


def _errors_family(errors: Mapping[str, int]) -> CounterMetricFamily:
    fam = CounterMetricFamily("kafkabench_errors",
                              "errors by code (Kafka error name); delivery failures are counted "
                              "live in kafka_messages_produced_total{status=\"failed\"}",
                              labels=["code"])
    for code, n in sorted(errors.items()):
        fam.add_metric([code], n)
    return fam


# --- Locust ------------------------------------------------------------------------------------


class LocustMetrics:
    """Serves a Locust process's Kafka statistics for Prometheus (`LOCUST_METRICS`).

    Reads the environment's request statistics when scraped, so the users pay nothing per
    request, and on the master of a distributed run the figures are every worker's. Locust's
    `request_type` maps to the metric: "produce" (name = topic) -> produced and publish
    latency, "consume" -> consumed and end-to-end latency, "process" -> processing duration.
    Latencies are Locust's response times (whole ms; rounded to 10 ms above 100 ms and to
    100 ms above 1 s). No lag here: `kafkabench.locust_results.run_locust` samples it.

    Start it from an `events.init` listener (it works under gevent: the server's thread is
    a greenlet there, and reading the statistics never races the users).

    Args:
        port: TCP port (0: a free one).
        environment: Locust's `Environment`.
        host: address to listen on.
        group: the consumer group label of consumed messages (None: kb-locust-<topic>,
            `KafkaConsumerUser`'s default).

    Raises:
        ConfigError: the port is in use.
    """

    def __init__(self, port: int, *, environment: Any, host: str = "0.0.0.0", group: str | None = None):
        self.environment, self.group = environment, group
        self.endpoint = MetricsEndpoint(port, host=host, what="Locust's metrics",
                                        collectors=[self._collect])
        self.port, self.url = self.endpoint.port, self.endpoint.url

    def close(self) -> None:
        """Stop serving (idempotent)."""
        self.endpoint.close()

    def _collect(self) -> Iterator[Metric]:
        stats = self.environment.stats
        entries = list(stats.entries.values())
        produced = CounterMetricFamily("kafka_messages_produced", "messages produced, by delivery "
                                       "outcome (Locust's produce requests)", labels=["topic", "status"])
        consumed = CounterMetricFamily("kafka_messages_consumed", "messages consumed (Locust's "
                                       "consume requests, errors included)", labels=["topic", "group"])
        sent = 0
        hists: dict[str, Buckets] = {}
        rates: Counter = Counter()
        second = int(time.time()) - 1
        for e in entries:
            kind = {"produce": "publish_latency_us", "consume": "e2e_latency_us",
                    "process": "processing_latency_us"}.get(e.method)
            if kind is None:
                continue
            if e.method == "produce":
                produced.add_metric([e.name, "success"], e.num_requests - e.num_failures)
                produced.add_metric([e.name, "failed"], e.num_failures)
                sent += e.num_requests
                rates["delivered"] += e.num_reqs_per_sec.get(second, 0) - e.num_fail_per_sec.get(second, 0)
            elif e.method == "consume":
                consumed.add_metric([e.name, self.group or f"kb-locust-{e.name}"], e.num_requests)
                rates["consumed"] += e.num_reqs_per_sec.get(second, 0)
            times = e.response_times
            if times:
                ms = np.fromiter(times.keys(), float, len(times))
                hists.setdefault(kind, Buckets()).add(
                    Buckets.from_values(ms / 1000.0, np.fromiter(times.values(), float, len(times))))
        yield produced
        yield CounterMetricFamily("kafkabench_messages_sent", "produce requests Locust counted "
                                  "(delivered or failed)", value=sent)
        yield consumed
        for fam in _latency_families(hists):
            if fam.name != "kafkabench_publish_delay_seconds":
                yield fam
        rates["sent"] = rates["delivered"]
        for key, name, doc in (("sent", "kafkabench_produce_rate_msgs", "delivery reports"),
                               ("delivered", "kafkabench_delivery_rate_msgs", "messages acknowledged"),
                               ("consumed", "kafkabench_consume_rate_msgs", "messages consumed")):
            yield GaugeMetricFamily(name, f"{doc} in the last full second", value=rates[key])
        errors: Counter = Counter()
        for err in stats.errors.values():
            errors[str(err.error).split(":", 1)[0].strip() or "error"] += err.occurrences
        yield _errors_family(errors)


class RelayCollector:
    """Re-serves another endpoint's metrics (scraped when this one is), e.g. a Locust child
    process's beside the lag its parent samples. An unreachable endpoint adds nothing."""

    def __init__(self, url: str, timeout_s: float = 2.0):
        self.url, self.timeout_s = url, timeout_s

    def collect(self) -> Iterator[Metric]:
        try:
            text = _fetch(self.url, self.timeout_s)
        except ClusterError as exc:
            log.debug("relay: %s", exc)
            return
        yield from text_string_to_metric_families(text)


# --- reading an endpoint -----------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a Prometheus text exposition by sample name (`..._total`, `..._bucket`).

    Returns:
        {sample name: [(labels, value), ...]}.
    """
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def metric_names(text: str) -> set[str]:
    """Every sample name an exposition declares, with or without samples now: a counter's
    `_total`, a histogram's `_bucket`, `_sum` and `_count`, a gauge's name."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def scrape(url: str, timeout_s: float = 5.0) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Scrape a Prometheus endpoint (`parse_metrics` of what it returns).

    Raises:
        ClusterError: no answer within `timeout_s`, or not an exposition, naming the URL.
    """
    text = _fetch(url, timeout_s)
    try:
        return parse_metrics(text)
    except ValueError as exc:
        raise ClusterError(f"{url} did not return Prometheus metrics: {exc}") from exc


def _fetch(url: str, timeout_s: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ClusterError(f"cannot scrape {url!r} within {timeout_s:g} s: {reason}. Is the "
                           "exporter running, and is the host and port right?") from exc


def sample_value(samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str,
                 **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


__all__ = ["RunMetrics", "LagExporter", "serve_lag", "LocustMetrics", "MetricsEndpoint",
           "LagCollector", "RelayCollector", "lag_families", "scrape", "parse_metrics",
           "sample_value", "metric_names", "free_port", "Buckets", "RUN_METRICS", "LAG_METRICS", "LOCUST_METRICS"]
