"""Broker metrics in: the brokers' JMX exporters, scraped during runs, against real brokers."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
import time
import uuid

import pandas as pd
import pytest

from kafkabench.analysis.broker_metrics import to_wide
from kafkabench.cluster.admin import create_topic
from kafkabench.cluster.local import LocalCluster
from kafkabench.core.errors import ClusterError
from kafkabench.observe.brokermetrics import (
    DEFAULT_METRICS,
    BrokerMetrics,
    broker_metrics_urls,
    check_urls,
    format_labels,
    parse_labels,
    parse_scrape,
)
from kafkabench.runner import run_workload

# ---------------------------------------------------------------------------- pure logic

SCRAPE = """# HELP kafka_server_brokertopicmetrics_bytesin_total Attribute exposed for management
# TYPE kafka_server_brokertopicmetrics_bytesin_total counter
kafka_server_brokertopicmetrics_bytesin_total 110057.0
kafka_server_brokertopicmetrics_bytesin_total{topic="t-1"} 110057.0
# TYPE kafka_network_requestmetrics_totaltimems gauge
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"} 58.0
# TYPE jvm_gc_collection_seconds summary
jvm_gc_collection_seconds_count{gc="G1 Young Generation"} 6
jvm_gc_collection_seconds_sum{gc="G1 Young Generation"} 0.045
jvm_threads_current 80
"""


def test_labels_are_one_sorted_string_and_parse_back():
    labels = {"request": "Produce", "quantile": "0.99", "gc": "G1 Young Generation"}
    text = format_labels(labels)
    assert text == "gc=G1 Young Generation,quantile=0.99,request=Produce"
    assert parse_labels(text) == labels
    assert format_labels({}) == "" and parse_labels("") == {}


def test_parse_scrape_keeps_only_the_selected_samples():
    rows = parse_scrape(SCRAPE, DEFAULT_METRICS)
    assert rows == [
        ("kafka_server_brokertopicmetrics_bytesin_total", "", 110057.0),
        ("kafka_server_brokertopicmetrics_bytesin_total", "topic=t-1", 110057.0),
        ("kafka_network_requestmetrics_totaltimems", "quantile=0.99,request=Produce", 58.0),
        ("jvm_gc_collection_seconds_count", "gc=G1 Young Generation", 6.0),
        ("jvm_gc_collection_seconds_sum", "gc=G1 Young Generation", 0.045),
    ]
    assert parse_scrape(SCRAPE, ["jvm_threads_current"]) == [("jvm_threads_current", "", 80.0)]


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["t", "broker", "metric", "labels", "value"])


def test_to_wide_counters_become_rates_and_resets_are_gaps():
    m = "kafka_server_brokertopicmetrics_bytesin_total"
    frame = _frame([
        (0.0, "1", m, "", 100.0), (0.0, "1", m, "topic=a", 100.0), (0.0, "2", m, "", 0.0),
        (1.0, "1", m, "", 300.0), (1.0, "1", m, "topic=a", 300.0), (1.0, "2", m, "", 50.0),
        (3.0, "1", m, "", 700.0), (3.0, "1", m, "topic=a", 700.0), (3.0, "2", m, "", 10.0),  # 2 restarted
    ])
    wide = to_wide(frame, m, labels="")
    assert list(wide.columns) == ["1", "2"] and wide.index.name == "t"
    assert wide["1"].tolist()[1:] == [200.0, 200.0]  # (700-300) over 2 s
    assert wide["2"].tolist()[1] == 50.0 and pd.isna(wide["2"].iloc[2])
    assert wide.iloc[0].isna().all()
    by_labels = to_wide(frame, m, by="labels")
    assert list(by_labels.columns) == ["", "topic=a"]
    assert by_labels["topic=a"].tolist()[1:] == [200.0, 200.0]


def test_to_wide_gauges_stay_and_bad_by_is_refused():
    m = "kafka_server_replicamanager_underreplicatedpartitions"
    frame = _frame([(0.0, "1", m, "", 0.0), (1.0, "1", m, "", 4.0), (1.0, "2", m, "", 2.0)])
    wide = to_wide(frame, m)
    assert wide["1"].tolist() == [0.0, 4.0]
    assert to_wide(frame, m, by="labels", agg="max")[""].tolist() == [0.0, 4.0]
    assert to_wide(frame, "no_such_metric").empty
    with pytest.raises(ValueError, match="by must be"):
        to_wide(frame, m, by="topic")


def test_figures_count_counter_increase_across_a_restart():
    m = "kafka_server_brokertopicmetrics_bytesin_total"
    frame = _frame([(0.0, "1", m, "", 100.0), (1.0, "1", m, "", 300.0), (2.0, "1", m, "", 50.0),
                    (0.0, "2", m, "", 10.0), (2.0, "2", m, "", 20.0),
                    (1.0, "1", m, "topic=a", 1e9)])
    figures = BrokerMetrics({}).figures(frame)
    assert figures["broker_bytes_in_total"] == 200 + 50 + 10
    assert pd.isna(figures["broker_messages_in_total"]) and figures["broker_scrape_errors"] == 0


# ---------------------------------------------------------------------------- exporter URLs

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_url():
    """An endpoint that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/metrics"


@pytest.fixture
def not_metrics_url():
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_check_urls_names_the_bad_url(silent_url, not_metrics_url):
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    with pytest.raises(ClusterError, match=rf"cannot scrape broker metrics at '{dead}' \(broker 2\).*refused"):
        check_urls({1: not_metrics_url, 2: dead}, timeout_s=1, metrics=())
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=rf"'{silent_url}'.*within 0.5 s"):
        check_urls([silent_url], timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    with pytest.raises(ClusterError, match="none of kafkabench's broker metrics"):
        check_urls([not_metrics_url])


def test_an_unanswering_exporter_is_one_warning_and_no_rows(silent_url):
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    bm = BrokerMetrics({"a": dead, "b": silent_url}, interval_s=0.2, timeout_s=0.3)
    t0 = time.monotonic()
    bm.start()
    time.sleep(1.0)
    bm.stop()
    assert time.monotonic() - t0 < 6
    assert bm.frame().empty and bm.errors >= 4
    assert len(bm.warnings) == 2 and "broker a's exporter" in bm.warnings[0] and dead in bm.warnings[0]


# ---------------------------------------------------------------------------- real brokers

@pytest.fixture(scope="module")
def metrics_cluster(bootstrap):
    """(bootstrap, {node: metrics URL}) of a cluster whose brokers run the JMX exporter: the
    test cluster, else (external, or started without the agent) one of this module's own."""
    urls = broker_metrics_urls(bootstrap)
    if urls:
        yield bootstrap, urls
        return
    cluster = LocalCluster(brokers=1, name=f"bm-{os.getpid()}", heap="512m")
    try:
        with cluster:
            yield cluster.bootstrap_servers, cluster.metrics_urls()
    finally:
        shutil.rmtree(cluster.base_dir, ignore_errors=True)


def _varint(n: int) -> int:
    """Bytes of a zigzag varint (Kafka record fields)."""
    z, size = (n << 1) ^ (n >> 63), 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def _record_bytes(value_size: int, delta_bytes: int) -> int:
    """One record of a v2 batch, null key, no headers: length, attributes, timestamp and offset
    deltas (`delta_bytes` each), key length -1, value length, value, header count."""
    body = 1 + 2 * delta_bytes + _varint(-1) + _varint(value_size) + value_size + _varint(0)
    return _varint(body) + body


RECORD_BATCH_HEADER = 61


def _increase_from_baseline(frame: pd.DataFrame, rows: pd.DataFrame) -> float:
    """Increase of counter `rows` since each broker's first scrape; a series missing from it
    (Kafka registers a request version's meter at its first request) started at 0."""
    first_t = frame.groupby("broker")["t"].min()
    total = 0.0
    for (broker, _), g in rows.groupby(["broker", "labels"]):
        g = g.sort_values("t")
        total += g["value"].iloc[-1] - (g["value"].iloc[0] if g["t"].iloc[0] == first_t[broker] else 0.0)
    return total


@pytest.mark.quiet  # its all-topics total read 1.8-2.3x high twice under 4 busy workers: runs alone
def test_broker_bytes_in_matches_what_was_produced(metrics_cluster):
    """Bytes in = N records of (S + record overhead) + one 61-byte batch header per batch.

    The record overhead (`_record_bytes`) is 7 bytes for S = 1000 plus two delta varints
    (1 or 2 bytes each); batches are counted as the broker's Produce requests during the
    run (one partition, so one batch a request)."""
    bootstrap, urls = metrics_cluster
    n, size = 3000, 1000
    bm = BrokerMetrics(urls, interval_s=0.5)
    prefix = f"bm{uuid.uuid4().hex[:6]}"
    result = run_workload({"name": "bm", "topic_prefix": prefix, "partitions": 1, "message_size": size,
                           "message_count": n, "duration_s": 0, "consumer_groups": 1},
                          None, bootstrap=bootstrap, observers=[bm], progress=False)
    assert result.summary["delivered"] == n
    frame = bm.frame()
    # Every metric kafkabench keeps is in a real scrape of a broker that took produce and fetch requests.
    assert set(DEFAULT_METRICS) <= set(frame["metric"]), set(DEFAULT_METRICS) - set(frame["metric"])
    m = "kafka_server_brokertopicmetrics_bytesin_total"
    topic_rows = frame[(frame["metric"] == m) & frame["labels"].str.startswith(f"topic={prefix}")]
    assert topic_rows["labels"].nunique() == 1
    # The topic's meter starts when its first record arrives: its increase is its last value.
    topic_bytes = topic_rows.groupby("broker")["value"].max().sum()
    requests = frame[(frame["metric"] == "kafka_network_requestmetrics_requests_total")
                     & frame["labels"].str.contains("request=Produce,")]
    produce_requests = _increase_from_baseline(frame, requests)
    expected = n * _record_bytes(size, 2) + RECORD_BATCH_HEADER * produce_requests
    lowest = n * _record_bytes(size, 1) + RECORD_BATCH_HEADER
    print(f"bytes in {topic_bytes:.0f}, expected {expected:.0f} ({produce_requests:.0f} requests), "
          f"payload {n * size}")
    assert abs(topic_bytes - expected) <= 0.10 * expected
    assert lowest <= topic_bytes <= expected
    figures = bm.figures(frame)
    assert topic_bytes <= figures["broker_bytes_in_total"] <= 1.10 * expected
    assert figures["broker_messages_in_total"] >= n
    assert figures["broker_scrape_errors"] == 0
    # contribute() put the frame and the figures into the result.
    assert result.broker_metrics is not None and len(result.broker_metrics)
    assert result.summary["broker_bytes_in_total"] >= topic_bytes


def test_an_unreachable_exporter_is_a_warning_and_the_run_completes(metrics_cluster):
    bootstrap, urls = metrics_cluster
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    bm = BrokerMetrics({**urls, "ghost": dead}, interval_s=0.5)
    result = run_workload({"name": "bm-dead", "partitions": 1, "message_size": 100,
                           "message_count": 2000, "duration_s": 0},
                          None, bootstrap=bootstrap, observers=[bm], progress=False)
    assert result.summary["delivered"] == 2000
    warnings = [w for w in result.summary["warnings"] if dead in w]
    assert len(warnings) == 1 and "broker ghost" in warnings[0], result.summary["warnings"]
    assert bm.errors >= 2 and set(bm.frame()["broker"]) == {str(b) for b in urls}


def _under_replicated(bm: BrokerMetrics, brokers: set[str], since: float) -> float | None:
    """Largest under-replicated count the `brokers` reported after `since` (epoch s)."""
    frame = bm.frame()
    rows = frame[(frame["metric"] == "kafka_server_replicamanager_underreplicatedpartitions")
                 & frame["broker"].isin(brokers) & (frame["t"] > since)]
    return None if rows.empty else float(rows.groupby("broker")["value"].last().max())


def _wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.cluster3
def test_under_replicated_gauge_follows_a_killed_and_restarted_node(cluster3):
    from kafkabench.cluster.nodes import start_node

    urls = cluster3.metrics_urls()
    assert sorted(urls) == [1, 2, 3], "the 3-broker test cluster runs without the JMX exporter agent"
    create_topic(cluster3.bootstrap_servers, f"bm-rf3-{uuid.uuid4().hex[:6]}", partitions=3,
                 replication_factor=3)
    victim = 3
    survivors = {str(n) for n in urls if n != victim}
    bm = BrokerMetrics(urls, interval_s=0.5)
    bm.start()
    try:
        t_kill = time.time()
        cluster3.kill(victim)
        # The controller fences the dead broker after its session timeout (~9 s): the
        # partitions its survivors lead lose it from their ISR.
        assert _wait(lambda: (_under_replicated(bm, survivors, t_kill) or 0) > 0, 60), bm.frame().tail()
        assert any(f"broker {victim}'s exporter" in w for w in bm.warnings), bm.warnings
        t_start = time.time()
        start_node(cluster3, victim)
        assert cluster3.node(victim).metrics_url == urls[victim]  # a restarted node keeps its port
        assert _wait(lambda: _under_replicated(bm, survivors | {str(victim)}, time.time() - 1) == 0
                     and _under_replicated(bm, {str(victim)}, t_start) is not None, 90), bm.frame().tail()
    finally:
        bm.stop()
        if not cluster3.node(victim).alive:
            start_node(cluster3, victim)
