"""Prometheus metrics out, against the real broker: a run's endpoint, the lag exporter, scrape."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkabench.cluster.admin import create_topic, delete_topics, list_topics
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.observe.metrics import (
    LAG_METRICS,
    RUN_METRICS,
    Buckets,
    MetricsEndpoint,
    RelayCollector,
    RunMetrics,
    _errors_family,
    metric_names,
    parse_metrics,
    sample_value,
    scrape,
    serve_lag,
)
from kafkabench.run.session import RunObserver
from kafkabench.runner import run_workload


class Scraper(RunObserver):
    """Scrapes an endpoint every second of the run (from the session's thread)."""

    def __init__(self, metrics: RunMetrics):
        self.metrics, self.scrapes = metrics, []

    def on_second(self, session) -> None:
        self.scrapes.append(scrape(self.metrics.url, timeout_s=5))


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def test_run_endpoint_counts_what_the_run_counts(bootstrap):
    metrics = RunMetrics(0)
    scraper = Scraper(metrics)
    result = run_workload({"name": "metrics", "partitions": 3, "message_size": 200, "duration_s": 4,
                           "producer_rate": 2000, "consumer_groups": 1},
                          bootstrap=bootstrap, progress=False, mode="thread", broker_metrics=False,
                          observers=[metrics, scraper])
    s = result.summary
    # Counters grow during the run.
    during = [x for x in scraper.scrapes if sample_value(x, "kafkabench_messages_sent_total") > 0]
    assert len(during) >= 2, [sample_value(x, "kafkabench_messages_sent_total") for x in scraper.scrapes]
    first, last = during[0], during[-1]
    for name in ("kafka_messages_produced_total", "kafka_messages_consumed_total",
                 "kafkabench_e2e_latency_seconds_count"):
        assert sample_value(last, name) > sample_value(first, name), name
    # Served until the end of the run, then closed.
    with pytest.raises(ClusterError, match=metrics.url.split("/metrics")[0]):
        scrape(metrics.url, timeout_s=2)
    # The last snapshot is the run's counts.
    final = parse_metrics(metrics.text())
    topic = s["topics"]
    group = next(iter(s["consumed_by_group"]))
    assert sample_value(final, "kafkabench_messages_sent_total") == s["produced"]
    assert sample_value(final, "kafka_messages_produced_total", topic=topic, status="success") == s["delivered"]
    assert sample_value(final, "kafka_messages_produced_total", status="failed") == s["failed"] == 0
    assert sample_value(final, "kafka_messages_consumed_total", topic=topic, group=group) == s["consumed"]
    # Histograms come from the run's HdrHistograms: as many values, cumulative buckets.
    for name, key in (("kafkabench_publish_latency_seconds", "publish_latency_us"),
                      ("kafkabench_e2e_latency_seconds", "e2e_latency_us")):
        assert sample_value(final, f"{name}_count") == result.histograms[key].count
        buckets = [v for labels, v in final[f"{name}_bucket"]]
        assert buckets == sorted(buckets) and buckets[-1] == result.histograms[key].count
        assert sample_value(final, f"{name}_sum") > 0
    assert sample_value(final, "kafka_message_processing_duration_seconds_count") == s["consumed"]
    # The lag gauges are the run's LagSampler's latest sample.
    latest = metrics.lag.latest()
    latest = latest[latest["partition"] >= 0]
    assert len(latest) == 3
    for r in latest.itertuples():
        labels = {"group": r.group, "topic": r.topic, "partition": str(r.partition)}
        assert sample_value(final, "kafka_consumergroup_group_lag", **labels) == r.lag_msgs
        assert sample_value(final, "kafka_consumer_lag", **labels) == r.lag_msgs
    assert sample_value(final, "kafka_consumergroup_group_sum_lag", group=group) == latest["lag_msgs"].sum()
    assert sample_value(final, "kafkabench_consumergroup_status", group=group, status="OK") == 1
    # Every advertised name is exposed (histograms by their base name).
    names = metric_names(metrics.text())
    assert [n for n in (*RUN_METRICS, *LAG_METRICS) if not {n, f"{n}_bucket"} & names] == []


def test_failures_are_counted_on_the_topic_that_refused_them(bootstrap):
    # Two topics; the second refuses every batch (lz4 of random 5,000 B values against
    # max.message.bytes 2000), the first takes everything.
    ok, small = (f"metrics-{name}-{uuid.uuid4().hex[:8]}" for name in ("ok", "small"))
    create_topic(bootstrap, ok, partitions=1)
    create_topic(bootstrap, small, partitions=1, config={"max.message.bytes": 2000})
    metrics = RunMetrics(0)
    try:
        s = run_workload({"name": "metrics-failed", "topics": 2, "producers": 1, "message_size": 5000,
                          "message_count": 40, "duration_s": 0, "consumer_groups": 0},
                         {"producer": {"compression.type": "lz4"}}, bootstrap=bootstrap, topics=[ok, small],
                         progress=False, mode="thread", broker_metrics=False, observers=[metrics]).summary
    finally:
        delete_topics(bootstrap, [ok, small])
    final = parse_metrics(metrics.text())
    assert s["failed"] > 0 and s["delivered"] > 0, s["errors"]
    assert sample_value(final, "kafka_messages_produced_total", topic=small, status="failed") == s["failed"]
    assert sample_value(final, "kafka_messages_produced_total", topic=ok, status="failed") == 0
    assert sample_value(final, "kafka_messages_produced_total", topic=ok, status="success") == s["delivered"]
    assert sample_value(final, "kafka_messages_produced_total", topic=small, status="success") == 0


def test_port_in_use_is_refused_before_any_topic_exists(bootstrap, busy_port):
    with pytest.raises(ConfigError, match=f"{busy_port}.*another port"):
        RunMetrics(busy_port)
    run_id = f"busy-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError, match=str(busy_port)):
        run_workload({"name": "busy", "message_count": 10, "duration_s": 0, "consumer_groups": 0},
                     bootstrap=bootstrap, progress=False, mode="thread", run_id=run_id,
                     metrics_port=busy_port, broker_metrics=False)
    assert not [t for t in list_topics(bootstrap) if run_id in t]


def test_scraping_nothing_fails_within_the_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"127.0.0.1:{port}"):
        scrape(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
    # A listener that never answers: bounded by the timeout as well.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
        with pytest.raises(ClusterError, match="within 1 s"):
            scrape(url, timeout_s=1)
    assert time.monotonic() - started < 30  # generous: never a hang


def test_buckets_from_a_recorder_are_cumulative_and_complete():
    rec = LatencyRecorder()
    rec.record_many([300, 900, 1_000, 40_000, 40_000, 70_000_000])  # us; the last above 60 s
    fam = Buckets.from_recorder(rec).family("x_seconds", "x")
    samples = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
    assert samples[("x_seconds_bucket", "0.0005")] == 1
    assert samples[("x_seconds_bucket", "0.001")] == 3
    assert samples[("x_seconds_bucket", "0.05")] == 5
    assert samples[("x_seconds_bucket", "60.0")] == 5
    assert samples[("x_seconds_bucket", "+Inf")] == samples[("x_seconds_count", None)] == 6
    assert samples[("x_seconds_sum", None)] == pytest.approx(70.0822, rel=1e-3)


def _backlog(bootstrap: str, topic: str, group: str, produced: int, consumed: int) -> None:
    """`produced` messages on a 1-partition topic; `group` committed after `consumed` of them."""
    create_topic(bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(produced):
        p.produce(topic, b"x%d" % i)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got, deadline = 0, time.monotonic() + 30
        while got < consumed and time.monotonic() < deadline:
            got += len([m for m in c.consume(consumed - got, 1.0) if m.error() is None])
        assert got == consumed
        c.commit(offsets=[TopicPartition(topic, 0, consumed)], asynchronous=False)
    finally:
        c.close()


def test_lag_exporter_reports_a_groups_lag(bootstrap):
    topic, group = f"kb-lagexp-{uuid.uuid4().hex[:8]}", f"kb-lagexp-g-{uuid.uuid4().hex[:8]}"
    _backlog(bootstrap, topic, group, produced=100, consumed=40)
    try:
        with serve_lag(bootstrap, groups=[group], port=0, interval_s=0.5) as exporter:
            got = scrape(exporter.url)
        labels = {"cluster_name": "kafkabench", "group": group}
        assert sample_value(got, "kafka_consumergroup_group_lag", topic=topic, partition="0", **labels) == 60
        assert sample_value(got, "kafka_consumergroup_group_max_lag", **labels) == 60
        assert sample_value(got, "kafka_consumergroup_group_sum_lag", **labels) == 60
        assert sample_value(got, "kafka_consumergroup_group_offset", **labels) == 40
        assert sample_value(got, "kafka_partition_latest_offset", topic=topic) == 100
        assert sample_value(got, "kafka_consumergroup_group_max_lag_seconds", **labels) >= 0
        statuses = {lab["status"]: v for lab, v in got["kafkabench_consumergroup_status"]
                    if lab["group"] == group}
        assert statuses["OK"] == 1 and sum(statuses.values()) == 1
        # All groups: a group that appears later is picked up.
        with serve_lag(bootstrap, all_groups=True, port=0, interval_s=0.5) as exporter:
            assert group in exporter.groups
            later = f"kb-lagexp-g-{uuid.uuid4().hex[:8]}"
            _commit(bootstrap, topic, later, 10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not sample_value(
                    scrape(exporter.url), "kafka_consumergroup_group_lag", group=later):
                time.sleep(0.3)
            assert sample_value(scrape(exporter.url), "kafka_consumergroup_group_lag", group=later) == 90
    finally:
        delete_topics(bootstrap, [topic])


def _commit(bootstrap: str, topic: str, group: str, offset: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_lag_exporter_of_an_unreachable_cluster_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=f"127.0.0.1:{port}"):
        serve_lag(f"127.0.0.1:{port}", groups=["g"], port=0, timeout_s=2)


def test_lag_exporter_wants_groups_or_all_groups(bootstrap):
    with pytest.raises(ConfigError, match="--all-groups"):
        serve_lag(bootstrap, port=0)


def test_relay_serves_another_endpoints_metrics_unchanged():
    rec = LatencyRecorder()
    rec.record_many([1_000, 20_000])
    source = MetricsEndpoint(0, host="127.0.0.1", collectors=[
        lambda: [_errors_family({"_MSG_TIMED_OUT": 3}),
                 Buckets.from_recorder(rec).family("kafkabench_e2e_latency_seconds", "e2e")]])
    with source, MetricsEndpoint(0, collectors=[RelayCollector(source.url)]) as relay:
        assert scrape(relay.url) == scrape(source.url)
        source.close()
        assert scrape(relay.url) == {}  # the source is gone: nothing, not an error
