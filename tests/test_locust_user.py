"""Locust users against the real broker: each locustfile headless, failures, distributed mode.

Locust runs as a subprocess (importing it here would monkey-patch the test process).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkabench.cluster.admin import create_topic
from kafkabench.loadtest.locust_results import locustfile_path, read_failures, read_stats, run_locust

RUN_S = 10
# Startup, the final flush and Locust's CSV settle, with plenty of slack on 2 shared cores.
TIMEOUT_S = RUN_S + 90


def locust(*args: str, timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """`locust --headless --only-summary ARGS`, as a user types it."""
    return subprocess.run([sys.executable, "-m", "locust", "--headless", "--only-summary", *args],
                          capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def messages_on(bootstrap: str, topic: str) -> int:
    """Messages in a topic, from a consumer's view of its partitions' offsets."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def row(stats, request_type: str, name: str | None = None):
    rows = stats[stats["Type"] == request_type]
    if name is not None:
        rows = rows[rows["Name"] == name]
    return rows


def total(stats, request_type: str, column: str = "Request Count") -> int:
    return int(row(stats, request_type)[column].sum())


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_producer_load(bootstrap, tmp_path):
    topic = topic_name("lt-producer")
    proc = locust("-f", str(locustfile_path("producer_load")), "-u", "3", "-r", "3",
                  "-t", f"{RUN_S}s", "--kafka-bootstrap", bootstrap, "--kafka-topic", topic,
                  "--csv", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = read_stats(tmp_path / "run")
    produced = total(stats, "produce")
    assert produced > 0
    assert int(stats["Failure Count"].sum()) == 0
    assert row(stats, "produce")["Name"].tolist() == [topic]
    # Order events: a mix of sizes, on average a few hundred bytes.
    assert 200 < float(row(stats, "produce")["Average Content Size"].iloc[0]) < 5000
    # Every delivery report Locust counted is a message on the topic, and nothing more.
    assert messages_on(bootstrap, topic) == produced


def test_consumer_load(bootstrap, tmp_path):
    topic = topic_name("lt-consumer")
    backlog = 5000
    create_topic(bootstrap, topic, partitions=4)
    from kafkabench.runner import run_workload

    run_workload({"name": "backlog", "message_count": backlog, "duration_s": 0,
                  "consumer_groups": 0}, topics=[topic], bootstrap=bootstrap, progress=False,
                 stats_interval_ms=None)
    # 1 feeder + 3 group members joining one a second: every join rebalances the group.
    proc = locust("-f", str(locustfile_path("consumer_load")), "-u", "4", "-r", "1",
                  "-t", f"{RUN_S}s", "--kafka-bootstrap", bootstrap, "--kafka-topic", topic,
                  "--kafka-rate", "500", "--csv", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = read_stats(tmp_path / "run")
    assert int(stats["Failure Count"].sum()) == 0
    produced, consumed = total(stats, "produce"), total(stats, "consume")
    assert produced > 0
    assert messages_on(bootstrap, topic) == backlog + produced
    # The group read the backlog (from the earliest offset) and what the feeder sent.
    assert consumed > backlog
    assert int(row(stats, "rebalance", "assign")["Request Count"].sum()) >= 2
    # End-to-end latency of the backlog is its age: seconds, not microseconds.
    assert float(row(stats, "consume")["Max Response Time"].iloc[0]) > 100


def test_mixed_with_step_shape(bootstrap, tmp_path):
    topic = topic_name("lt-mixed")
    proc = locust("-f", str(locustfile_path("mixed")), "-u", "4", "-r", "4", "-t", f"{RUN_S}s",
                  "--kafka-bootstrap", bootstrap, "--kafka-topic", topic, "--kafka-steps", "2",
                  "--csv", str(tmp_path / "run"), "--csv-full-history")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = read_stats(tmp_path / "run")
    assert int(stats["Failure Count"].sum()) == 0
    produced, consumed = total(stats, "produce"), total(stats, "consume")
    assert produced > 0 and consumed > 0
    assert messages_on(bootstrap, topic) == produced
    from kafkabench.loadtest.locust_results import read_history

    users = read_history(tmp_path / "run").query("Name == 'Aggregated'")["User Count"]
    # Two steps: 2 users, then 4; the shape ends the run itself.
    assert {2, 4} <= set(users)


def test_delivery_errors_are_failures(bootstrap, tmp_path):
    # The broker refuses batches over 1000 bytes; most order events are bigger.
    topic = topic_name("lt-small")
    create_topic(bootstrap, topic, partitions=2, config={"max.message.bytes": 1000})
    proc = locust("-f", str(locustfile_path("producer_load")), "-u", "2", "-r", "2", "-t", "5s",
                  "--kafka-bootstrap", bootstrap, "--kafka-topic", topic, "--kafka-rate", "200",
                  "--csv", str(tmp_path / "run"))
    assert proc.returncode == 1, proc.stderr[-3000:]  # Locust's --exit-code-on-error
    stats = read_stats(tmp_path / "run")
    assert total(stats, "produce", "Failure Count") > 0
    failures = read_failures(tmp_path / "run")
    assert failures["Error"].str.contains("MSG_SIZE_TOO_LARGE").all()
    assert int(failures["Occurrences"].sum()) == total(stats, "produce", "Failure Count")


def test_unknown_partition_is_a_failure(bootstrap, tmp_path):
    topic = topic_name("lt-partition")
    create_topic(bootstrap, topic, partitions=1)
    file = tmp_path / "bad_partition.py"
    file.write_text(textwrap.dedent("""
        from locust import task
        from kafkabench.loadtest.locust_user import KafkaUser

        class WrongPartition(KafkaUser):
            rate = 50

            @task
            def send(self):
                self.client.produce(self.topic, b"order", b"user-1", partition=7)
    """))
    proc = locust("-f", str(file), "-u", "1", "-r", "1", "-t", "4s", "--kafka-bootstrap",
                  bootstrap, "--kafka-topic", topic, "--csv", str(tmp_path / "run"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    stats = read_stats(tmp_path / "run")
    assert total(stats, "produce") == total(stats, "produce", "Failure Count") > 0
    assert read_failures(tmp_path / "run")["Error"].str.contains("UNKNOWN_PARTITION").all()
    assert messages_on(bootstrap, topic) == 0


def test_master_and_two_workers(bootstrap, tmp_path):
    topic = topic_name("lt-distributed")
    run = run_locust("producer_load", users=4, spawn_rate=4, run_time_s=RUN_S, workers=2,
                     rate=300, bootstrap=bootstrap, topic=topic, out_dir=tmp_path, lag=False,
                     timeout_s=TIMEOUT_S)
    assert run.exit_code == 0, run.log[-3000:]
    workers = run.frames.workers
    assert len(workers) == 2
    assert (workers["Request Count"] > 0).all()
    aggregated = run.frames.stats.query("Name == 'Aggregated'")["Request Count"].iloc[0]
    assert workers["Request Count"].sum() == aggregated == run.summary["produced"]
    assert messages_on(bootstrap, topic) == run.summary["produced"]
    assert run.summary["workers"] == 2


def test_metrics_port_serves_what_locust_counts(bootstrap, tmp_path):
    from kafkabench.core.errors import ClusterError
    from kafkabench.observe.metrics import free_port, sample_value, scrape

    topic, port = topic_name("lt-metrics"), free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "--headless", "--only-summary",
             "-f", str(locustfile_path("consumer_load")), "-u", "2", "-r", "2", "-t", "6s",
             "--kafka-bootstrap", bootstrap, "--kafka-topic", topic, "--kafka-rate", "500",
             "--kafka-metrics-port", str(port), "--csv", str(tmp_path / "run")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        scrapes = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    scrapes.append(scrape(url, timeout_s=2))
                except ClusterError:
                    pass  # not serving yet, or already stopped
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "log").read_text()[-3000:]
    produced = [sample_value(x, "kafka_messages_produced_total", topic=topic, status="success")
                for x in scrapes]
    consumed = [sample_value(x, "kafka_messages_consumed_total", topic=topic,
                             group=f"kb-locust-{topic}") for x in scrapes]
    # The counters grew while Locust ran (gevent served the scrapes between the users' tasks).
    assert any(0 < a < b for a, b in zip(produced, produced[1:])), produced
    assert any(0 < a < b for a, b in zip(consumed, consumed[1:])), consumed
    last = scrapes[-1]
    assert sample_value(last, "kafkabench_publish_latency_seconds_count") == produced[-1]
    assert sample_value(last, "kafkabench_e2e_latency_seconds_count") == consumed[-1]
    # Never more than Locust's own statistics counted in the end.
    stats = read_stats(tmp_path / "run")
    assert produced[-1] <= total(stats, "produce") and consumed[-1] <= total(stats, "consume")


def test_unreachable_cluster_fails_fast():
    proc = locust("-f", str(locustfile_path("producer_load")), "-t", "30s",
                  "--kafka-bootstrap", "127.0.0.1:1", timeout_s=60)
    assert proc.returncode == 1
    assert "cannot reach Kafka at '127.0.0.1:1'" in proc.stderr
    assert "Connection refused" in proc.stderr and "kafkabench cluster status" in proc.stderr
    # Locust's start line and the error; librdkafka's own lines only with --loglevel DEBUG.
    assert "[thrd:" not in proc.stderr and len(proc.stderr.splitlines()) <= 4, proc.stderr[:3000]


def test_bad_setting_fails_fast(bootstrap):
    proc = locust("-f", str(locustfile_path("producer_load")), "-t", "30s",
                  "--kafka-bootstrap", bootstrap, "--kafka-conf", "linger.ms=soon", timeout_s=60)
    assert proc.returncode == 1
    assert "linger.ms='soon'" in proc.stderr


@pytest.mark.parametrize("name", ["producer_load", "consumer_load", "mixed", "service_consumer"])
def test_locustfiles_only_subclass(name):
    source = Path(locustfile_path(name)).read_text()
    assert "confluent_kafka" not in source and "def __init__" not in source


def test_settings_pass_tls_and_sasl_through(tmp_path):
    # Locust is imported in a subprocess only: the settings as a worker would build them.
    profile = tmp_path / "secure.yaml"
    profile.write_text("name: secure\ncommon:\n  security.protocol: SASL_SSL\n"
                       "  sasl.mechanism: SCRAM-SHA-512\n  sasl.username: loadtest\n"
                       "  sasl.password: secret\nproducer:\n  acks: all\n")
    script = textwrap.dedent(f"""
        import argparse, json
        from kafkabench.loadtest.locust_user import KafkaSettings
        options = argparse.Namespace(
            kafka_bootstrap="kafka-1.example.com:9093", kafka_profile={str(profile)!r},
            kafka_conf=["linger.ms=7", "consumer.fetch.min.bytes=1024",
                        "ssl.endpoint.identification.algorithm=none"],
            kafka_topic=None, kafka_partitions=6, kafka_rate=None, kafka_group=None,
            kafka_flush_timeout=10.0, kafka_producer_per_user=False)
        s = KafkaSettings.from_options(options)
        # default=repr: the librdkafka `logger` is an object, not a setting.
        print(json.dumps({{"producer": s.producer_config(),
                          "consumer": s.consumer_config("g")}}, default=repr))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    conf = json.loads(proc.stdout.strip().splitlines()[-1])
    for role in ("producer", "consumer"):
        assert conf[role]["bootstrap.servers"] == "kafka-1.example.com:9093"
        assert conf[role]["security.protocol"] == "SASL_SSL"
        assert conf[role]["sasl.mechanism"] == "SCRAM-SHA-512"
        assert conf[role]["ssl.endpoint.identification.algorithm"] == "none"
    # A producer-only key goes to the producer by itself; prefixed keys go where they say.
    assert conf["producer"]["linger.ms"] == "7" and "linger.ms" not in conf["consumer"]
    assert conf["producer"]["acks"] == "all"
    assert conf["consumer"]["fetch.min.bytes"] == "1024" and "fetch.min.bytes" not in conf["producer"]
    assert conf["consumer"]["group.id"] == "g"


def test_kafka_conf_is_parsed_as_kafkabench_parses_k_v():
    # parse_conf in a subprocess (importing locust_user imports locust): config.parse_kv's
    # error naming --kafka-conf, roles by prefix or by the one role librdkafka accepts.
    script = textwrap.dedent("""
        import json
        from kafkabench.core.errors import ConfigError
        from kafkabench.loadtest.locust_user import KafkaSettings, parse_conf
        out = {"sections": parse_conf([" linger.ms = 5", "consumer.fetch.min.bytes=1",
                                       "client.id=kb", "producer.acks=all"])}
        for bad in (["linger.ms"], ["=5"]):
            try:
                parse_conf(bad)
            except ConfigError as exc:
                out.setdefault("errors", []).append(str(exc))
        # Nothing laid over: the profile as loaded.
        s = KafkaSettings.from_options(None, resolve=False)
        out["plain"] = s.profile.name
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sections"] == {"common": {"client.id": "kb"},
                               "producer": {"linger.ms": "5", "acks": "all"},
                               "consumer": {"fetch.min.bytes": "1"}}
    assert out["errors"] == ["--kafka-conf 'linger.ms': expected key=value",
                             "--kafka-conf '=5': expected key=value"]
    assert out["plain"] == "default"


def test_kafka_conf_routes_settings_as_the_cli_does():
    # config.route_settings without a role: connection settings are laid over the profile
    # together (SASL_SSL alone is refused, which stopped --kafka-conf before), bare keys go
    # to the one role librdkafka accepts them for.
    script = textwrap.dedent("""
        import argparse, json
        from kafkabench.spec.profile import route_settings
        from kafkabench.loadtest.locust_user import KafkaSettings, parse_conf
        pairs = ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", "sasl.username=u",
                 "sasl.password=p", "linger.ms=5", "fetch.min.bytes=10", "client.id=kb"]
        sections = parse_conf(pairs)
        same = sections == route_settings(dict(p.split("=", 1) for p in pairs), None)
        options = argparse.Namespace(kafka_conf=pairs, kafka_profile=None, kafka_bootstrap="b:9093")
        profile = KafkaSettings.from_options(options).profile
        print(json.dumps({"sections": sections, "same": same,
                          "profile": [dict(profile.common), dict(profile.producer), dict(profile.consumer)]}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    common = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
              "sasl.password": "p", "client.id": "kb"}
    assert out["sections"] == {"common": common, "producer": {"linger.ms": "5"},
                               "consumer": {"fetch.min.bytes": "10"}}
    assert out["same"] is True
    assert out["profile"] == [common, {"linger.ms": "5"}, {"fetch.min.bytes": "10"}]


# ----------------------------------------------------------------------------- processing stage


def class_attribute(path: Path, class_name: str, attribute: str):
    """A literal class attribute of a locustfile, read without importing it (that imports locust)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == attribute for t in stmt.targets):
                    return ast.literal_eval(stmt.value)
    raise AssertionError(f"no {class_name}.{attribute} in {path}")


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (0: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offset = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        return max(offset, 0)
    finally:
        consumer.close()


def test_service_consumer_processes_retries_and_dead_letters(bootstrap, tmp_path):
    from kafkabench.patterns.observer import read_records
    from kafkabench.spec.processing import POISON, Processing, dlq_topic

    topic = topic_name("lt-service")
    path = Path(locustfile_path("service_consumer"))
    # 1 feeder at 50 msgs/s + 2 members of the service's group. The poison share is 1%, but
    # which records are poison is fixed by (partition, offset): offsets 3 and 13 of partition
    # 3 and 8 of partition 5 are, so a few hundred messages always include some.
    proc = locust("-f", str(path), "-u", "3", "-r", "3", "-t", "8s", "--kafka-bootstrap",
                  bootstrap, "--kafka-topic", topic, "--kafka-rate", "50",
                  "--exit-code-on-error", "0", "--csv", str(tmp_path / "run"), timeout_s=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = read_stats(tmp_path / "run")
    assert total(stats, "process") > 0
    assert total(stats, "retry") > 0  # 5% transient + the poison, through retry topics
    failed = total(stats, "process", "Failure Count")
    assert failed > 0
    # Only dead letters failed, each with its error header; no produce or consume failed.
    assert int(stats.query("Name != 'Aggregated'")["Failure Count"].sum()) == failed
    failures = read_failures(tmp_path / "run")
    assert failures["Error"].str.contains("injected poison failure").all(), failures
    assert set(failures["Name"]) == {f"{topic}.retry.2"}  # the third attempt
    # Each failure is a record on the dead-letter topic (flushed before the consumer left),
    # and each dead letter is a record the stage's settings make poison.
    assert messages_on(bootstrap, dlq_topic(topic)) == failed
    processing = Processing(**class_attribute(path, "OrderService", "processing"))
    dead = read_records(bootstrap, [dlq_topic(topic)], timeout_s=20)
    assert len(dead) == failed
    for m in dead:
        headers = {k: v.decode() for k, v in m.headers()}
        assert headers["original_topic"] == topic and headers["retry_count"] == "2"
        assert processing.fate(int(headers["original_partition"]),
                               int(headers["original_offset"])) == POISON


@pytest.mark.quiet  # 1 s per message in a 4 s Locust run: runs alone (make test)
@pytest.mark.parametrize("stop_timeout", [None, "10"])
def test_stopping_consumer_commits_only_what_it_processed(bootstrap, tmp_path, stop_timeout):
    # 1 s of processing per message: the run ends while a message is in hand. Killed
    # (no --stop-timeout) or asked to stop (the stage's wait ends at once), the member commits
    # exactly the messages it processed; asked to stop, it is not killed after the timeout.
    topic = topic_name("lt-slow")
    create_topic(bootstrap, topic, partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        producer.produce(topic, b"order-%d" % i)
    assert producer.flush(10) == 0
    file = tmp_path / "slow_service.py"
    file.write_text(textwrap.dedent("""
        from locust import task
        from kafkabench.loadtest.locust_user import KafkaConsumerUser

        class SlowService(KafkaConsumerUser):
            processing = {"time_ms": 1000, "dead_letter": False}

            @task
            def handle(self):
                self.client.consume(self.batch)
    """))
    extra = ["--stop-timeout", stop_timeout] if stop_timeout else []
    proc = locust("-f", str(file), "-u", "1", "-r", "1", "-t", "4s", "--kafka-bootstrap",
                  bootstrap, "--kafka-topic", topic, "--csv", str(tmp_path / "run"), *extra,
                  timeout_s=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Not all users finished" not in proc.stderr
    stats = read_stats(tmp_path / "run")
    processed = total(stats, "process")
    assert 0 < processed < 20
    assert total(stats, "consume") == processed  # the message in hand is not counted
    assert committed_offset(bootstrap, f"kb-locust-{topic}", topic) == processed


@pytest.mark.parametrize(("processing", "says"), [
    ("--kafka-processing", "--kafka-processing '{file}': processing.poison_fraction=2: "
                           "expected a number between 0 and 1"),
    ("class", "BadService.processing: processing.retry='later'"),
])
def test_bad_processing_fails_fast(bootstrap, tmp_path, processing, says):
    settings = tmp_path / "stage.yaml"
    settings.write_text("time_ms: 1\npoison_fraction: 2\n")
    file = tmp_path / "bad_service.py"
    file.write_text(textwrap.dedent("""
        from locust import task
        from kafkabench.loadtest.locust_user import KafkaConsumerUser

        class BadService(KafkaConsumerUser):
            processing = {"retry": "later"}

            @task
            def handle(self):
                self.client.consume(self.batch)
    """))
    if processing == "class":
        args = ["-f", str(file)]
    else:
        args = ["-f", str(locustfile_path("service_consumer")), "--kafka-processing", str(settings)]
    proc = locust(*args, "-t", "30s", "--kafka-bootstrap", bootstrap, timeout_s=60)
    assert proc.returncode != 0
    assert says.format(file=settings) in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
