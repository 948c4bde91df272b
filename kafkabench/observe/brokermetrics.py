"""Broker metrics in: the brokers' Prometheus JMX exporters scraped each second during a run.

The embedded brokers serve their metrics through the JMX exporter java agent with the rules
in `kafkabench/jmx/kafka.yml` (`LocalCluster.metrics_urls()`); an external cluster's
exporter URLs are the user's to give. `BrokerMetrics` is a `RunObserver`: a background
thread scrapes every broker in parallel each interval, keeps the selected metrics and adds
the `broker_metrics` frame (long format: t, broker, metric, labels, value) and a few summary
figures to the result. An exporter that does not answer is a warning and missing rows,
never an exception or a hang.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pandas as pd

# Names of the flat module `kafkabench.brokermetrics`, which now points here.
from kafkabench.analysis.broker_metrics import is_counter as is_counter
from kafkabench.analysis.broker_metrics import to_wide as to_wide
from kafkabench.core.errors import ClusterError
from kafkabench.core.threads import Periodic
from kafkabench.run.session import RunObserver

if TYPE_CHECKING:
    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
COLUMNS = ("t", "broker", "metric", "labels", "value")

#: The metrics kept from each scrape (names as `kafkabench/jmx/kafka.yml` exports them).
#: `*_total`, `*_count` and `*_sum` are running totals (see `is_counter`); `*timems` are
#: milliseconds, with a `quantile` label; `*_percent` are idle fractions 0..1.
DEFAULT_METRICS: tuple[str, ...] = (
    # Throughput: per topic (`topic=...`) and for all topics (no labels).
    "kafka_server_brokertopicmetrics_bytesin_total",
    "kafka_server_brokertopicmetrics_bytesout_total",
    "kafka_server_brokertopicmetrics_messagesin_total",
    # Requests: counts by request (`request=Produce|FetchConsumer|FetchFollower`, `version`),
    # total and queue time percentiles.
    "kafka_network_requestmetrics_requests_total",
    "kafka_network_requestmetrics_totaltimems",
    "kafka_network_requestmetrics_totaltimems_count",
    "kafka_network_requestmetrics_requestqueuetimems",
    # Thread pools: idle ratios (the rate of the seconds counter is the idle ratio).
    "kafka_server_kafkarequesthandlerpool_requesthandleridle_seconds_total",
    "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
    "kafka_network_socketserver_networkprocessoravgidle_percent",
    # Partition health and the controller.
    "kafka_server_replicamanager_underreplicatedpartitions",
    "kafka_server_replicamanager_underminisrpartitioncount",
    "kafka_server_replicamanager_isrshrinks_total",
    "kafka_server_replicamanager_isrexpands_total",
    "kafka_controller_kafkacontroller_offlinepartitionscount",
    "kafka_controller_kafkacontroller_activecontrollercount",
    # Log flushes (ms).
    "kafka_log_logflushstats_logflushrateandtimems",
    "kafka_log_logflushstats_logflushrateandtimems_count",
    # The JVM (exported by the agent itself): GC time and count per collector, memory by area.
    "jvm_gc_collection_seconds_sum",
    "jvm_gc_collection_seconds_count",
    "jvm_memory_used_bytes",
)

BYTES_IN = "kafka_server_brokertopicmetrics_bytesin_total"
MESSAGES_IN = "kafka_server_brokertopicmetrics_messagesin_total"
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"


def format_labels(labels: Mapping[str, str]) -> str:
    """Labels as one canonical string: `name=value` sorted by name, comma-separated ("" for none)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(text: str) -> dict[str, str]:
    """The labels of a `format_labels` string."""
    return dict(part.split("=", 1) for part in text.split(",")) if text else {}


def parse_scrape(text: str, metrics: Iterable[str] = DEFAULT_METRICS) -> list[tuple[str, str, float]]:
    """The samples of a Prometheus text exposition whose names are in `metrics`.

    Args:
        text: what an exporter's /metrics returned.
        metrics: sample names to keep (`_total`, `_count` included, as exposed).

    Returns:
        [(metric, labels as `format_labels`, value)].
    """
    from prometheus_client.parser import text_string_to_metric_families

    wanted = frozenset(metrics)
    # Parse only the wanted lines: a scrape has ~250 samples, most of them not kept.
    lines = [line for line in text.splitlines()
             if line and line[0] != "#" and line.partition("{")[0].partition(" ")[0] in wanted]
    return [(s.name, format_labels(s.labels), float(s.value))
            for family in text_string_to_metric_families("\n".join(lines) + "\n")
            for s in family.samples if s.name in wanted]


def _get(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read().decode("utf-8", errors="replace")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    return str(exc) or type(exc).__name__


class BrokerMetrics(RunObserver):
    """Scrapes every broker's Prometheus endpoint each `interval_s` while a run goes on.

    Adds the `broker_metrics` frame (t since the producers started, broker, metric, labels,
    value) and the figures `broker_bytes_in_total`, `broker_messages_in_total` (what the
    brokers took in over the run, all topics, summed over brokers),
    `broker_under_replicated_max` and `broker_scrape_errors`. A scrape before the workers
    start and one after they stopped bound the run, so the totals cover all of it.

    Example:
        urls = LocalCluster.attach().metrics_urls()
        run_workload(workload, observers=[BrokerMetrics(urls)])
    """

    def __init__(self, urls: Mapping[str | int, str], *, interval_s: float = 1.0,
                 metrics: Iterable[str] | None = None, timeout_s: float = SCRAPE_TIMEOUT_S):
        """Describe the scrapes; nothing runs before `on_start`.

        Args:
            urls: {broker (node id or a name): its exporter's URL, e.g. http://host:7071/metrics}.
            interval_s: seconds between the starts of two scrapes of every broker.
            metrics: sample names to keep (default `DEFAULT_METRICS`).
            timeout_s: per scrape of one broker; an exporter slower than that counts as failed.
        """
        self.urls = {str(k): v for k, v in urls.items()}
        self.interval_s = interval_s
        self.metrics = frozenset(DEFAULT_METRICS if metrics is None else metrics)
        self.timeout_s = timeout_s
        self.errors = 0
        self.warnings: list[str] = []
        self._rows: list[tuple[float, str, str, str, float]] = []
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._thread: Periodic | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._t0_wall = 0.0

    # --- RunObserver hooks ---------------------------------------------------------------

    def on_start(self, session: RunSession) -> None:
        self.start()

    def on_end(self, session: RunSession) -> None:
        self._t0_wall = session.tally.t0_wall
        self.stop()
        session.warnings.extend(self.warnings)

    def contribute(self, result: RunResult) -> None:
        frame = self.frame(self._t0_wall)
        result.broker_metrics = frame
        result.summary.update(self.figures(frame))

    # --- scraping ------------------------------------------------------------------------

    def start(self) -> None:
        """Scrape once now (the baseline), then every `interval_s` in a background thread."""
        if self._thread is not None or not self.urls:
            return
        self._pool = ThreadPoolExecutor(max_workers=len(self.urls), thread_name_prefix="kb-scrape")
        self.scrape_once()
        self._thread = Periodic(self.scrape_once, self.interval_s, name="kb-broker-metrics",
                                first_now=False).start()

    def stop(self) -> None:
        """Stop the thread and scrape once more, so the last rows follow the run's end."""
        if self._pool is None:
            return
        if self._thread is not None:
            self._thread.stop(self.timeout_s + 5)
        self.scrape_once()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def scrape_once(self) -> None:
        """Scrape every broker in parallel; rows for those that answered, a warning (once per
        broker) and an error count for those that did not."""
        if self._pool is None:
            return
        wall = time.time()
        futures = {b: self._pool.submit(self._scrape, url) for b, url in self.urls.items()}
        for broker, fut in futures.items():
            try:
                samples = fut.result(timeout=self.timeout_s + 1)
            except Exception as exc:  # noqa: BLE001 - any failure is one missed scrape
                self._failed(broker, exc)
                continue
            with self._lock:
                self._rows.extend((wall, broker, m, labels, v) for m, labels, v in samples)

    def _scrape(self, url: str) -> list[tuple[str, str, float]]:
        return parse_scrape(_get(url, self.timeout_s), self.metrics)

    def _failed(self, broker: str, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            if broker in self._warned:
                return
            self._warned.add(broker)
        where = (f"the exporter at {broker}" if broker == self.urls[broker]
                 else f"broker {broker}'s exporter at {self.urls[broker]}")
        message = (f"broker metrics: {where} did not answer ({_reason(exc)}); the seconds until it "
                   "answers again have no rows of that broker")
        log.warning("%s", message)
        self.warnings.append(message)

    # --- results -------------------------------------------------------------------------

    def frame(self, t0_wall: float = 0.0) -> pd.DataFrame:
        """The rows so far, `t` in seconds since `t0_wall` (epoch s; negative: before it)."""
        with self._lock:
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["t"] = frame["t"].astype("float64") - t0_wall
        return frame.astype({"broker": "str", "metric": "str", "labels": "str", "value": "float64"})

    def figures(self, frame: pd.DataFrame) -> dict[str, float | int]:
        """The summary figures of a `frame` (NaN where no broker answered)."""
        return {"broker_bytes_in_total": _increase_all_topics(frame, BYTES_IN),
                "broker_messages_in_total": _increase_all_topics(frame, MESSAGES_IN),
                "broker_under_replicated_max": _max(frame, UNDER_REPLICATED),
                "broker_scrape_errors": self.errors}


def _increase(values: pd.Series) -> float:
    """How much a counter grew over its samples, across resets (a restarted broker starts at 0)."""
    diff = values.diff().iloc[1:]
    return float(diff.where(diff >= 0, values.iloc[1:]).sum())


def _increase_all_topics(frame: pd.DataFrame, metric: str) -> float:
    rows = frame[(frame["metric"] == metric) & (frame["labels"] == "")]
    if rows.empty:
        return float("nan")
    # Stable: rows that share a t keep their scrape order. (Under a saturated load generator the
    # total has twice read a fall, taken as a reset, whose cause is not found yet: see
    # tests/test_broker_metrics.py's quiet test.)
    return float(sum(_increase(g.sort_values("t", kind="stable")["value"]) for _, g in rows.groupby("broker")))


def _max(frame: pd.DataFrame, metric: str) -> float:
    values = frame.loc[frame["metric"] == metric, "value"]
    return float(values.max()) if len(values) else float("nan")


def broker_metrics_urls(bootstrap: str) -> dict[int, str] | None:
    """The exporter URLs of the embedded cluster these bootstrap servers belong to.

    Args:
        bootstrap: bootstrap servers of the run.

    Returns:
        {node id: URL} of a running named embedded cluster (empty when it was started
        without the JMX exporter agent); None when the servers are no embedded cluster's.
    """
    from kafkabench.cluster.nodes import find_local_cluster

    cluster = find_local_cluster(bootstrap)
    return None if cluster is None else cluster.metrics_urls()


def check_urls(urls: Mapping[str | int, str] | Iterable[str], timeout_s: float = 3.0,
               metrics: Iterable[str] | None = None) -> None:
    """Fail with one clear message unless every exporter URL answers with broker metrics.

    Args:
        urls: {broker: URL} or URLs, e.g. "http://broker-1:7071/metrics".
        timeout_s: per URL (they are tried in parallel).
        metrics: sample names of which at least one must be there (default `DEFAULT_METRICS`;
            empty: any answer will do).

    Raises:
        ClusterError: the first URL (in the given order) that did not answer, or answered
            without any of `metrics`.
    """
    items = [(str(k), v) for k, v in urls.items()] if isinstance(urls, Mapping) else \
        [(u, u) for u in urls]
    if not items:
        return
    wanted = frozenset(DEFAULT_METRICS if metrics is None else metrics)
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [(b, u, pool.submit(_get, u, timeout_s)) for b, u in items]
        for broker, url, fut in futures:
            name = "" if broker == url else f" (broker {broker})"
            try:
                text = fut.result(timeout=timeout_s + 1)
            except Exception as exc:  # noqa: BLE001 - reported as the user's input
                raise ClusterError(
                    f"cannot scrape broker metrics at {url!r}{name} within {timeout_s:g} s: "
                    f"{_reason(exc)}. Give each broker's Prometheus JMX exporter URL, e.g. "
                    "http://broker-1:7071/metrics, or run without broker metrics") from None
            if wanted and not parse_scrape(text, wanted):
                raise ClusterError(
                    f"{url!r}{name} answers, but with none of kafkabench's broker metrics (e.g. "
                    f"{DEFAULT_METRICS[0]}): run the broker's JMX exporter with the rules in "
                    "kafkabench/jmx/kafka.yml")

