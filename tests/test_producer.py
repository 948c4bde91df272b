"""The producer's parts and its reports: send loops against a real librdkafka client (a broker
that is not there, for a full queue and a refusal), and whole runs against the test broker."""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
import zlib

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.engine import producer as producer_module
from kafkabench.engine.delivery import ACKED, FAILED, VERIFY_HEADER, DeliveryLedger, DeliveryRecorder
from kafkabench.engine.pacing import FixedRate, MaxRate
from kafkabench.engine.producer import ProducerSpec, run_producer
from kafkabench.engine.sending import (
    BareSender,
    HeaderedSender,
    Refused,
    TimedHeaderedSender,
    TimedSender,
    VerifiedSender,
    sender_for,
)
from kafkabench.engine.workers import Control
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.spec.partitioning import get_strategy

NOWHERE = "127.0.0.1:9"  # nothing listens: messages stay queued until purged


def offline_producer(**conf) -> tuple[Producer, list]:
    """A producer without a broker, and the (error name, value) of its delivery reports."""
    reports: list = []
    producer = Producer({"bootstrap.servers": NOWHERE, "log_level": 0, "error_cb": lambda err: None,
                         "on_delivery": lambda err, msg: reports.append((err and err.name(), msg.value())),
                         **conf})
    return producer, reports


def purged(producer: Producer, reports: list) -> list[bytes]:
    """Purge the queue; the values of the messages it held, in order."""
    reports.clear()
    producer.purge()
    producer.poll(1)
    assert {err for err, _ in reports} <= {"_PURGE_QUEUE"}
    return [value for _, value in reports]


def test_a_full_queue_ends_the_burst_and_its_message_goes_first_next_time():
    producer, reports = offline_producer(**{"queue.buffering.max.messages": 10})
    payloads = tuple(b"%d" % i for i in range(100))
    recorder = DeliveryRecorder()
    sender = BareSender(producer, ("t",), payloads, None, recorder.refused)
    assert sender.send(64) == 10
    assert (sender.sent, sender.buffer_full) == (10, 1)
    assert sender.send(64) == 0  # still full
    assert purged(producer, reports) == list(payloads[:10])
    assert sender.send(64) == 10
    assert purged(producer, reports) == list(payloads[10:20])  # message 10 first, none lost
    assert (sender.sent, sender.buffer_full) == (20, 3)


def test_a_refused_message_counts_as_sent_and_failed_and_ends_the_loop():
    producer, _ = offline_producer(**{"message.max.bytes": 1000})
    ledger = DeliveryLedger(8)
    recorder = DeliveryRecorder(ledger=ledger)
    sender = sender_for(producer, ("t",), (b"x", b"y" * 2000), None, recorder.refused, origin_s=0.0,
                        interval_s=0.0, verify=(bytes(12), ledger, recorder.on_verified))
    with pytest.raises(Refused):
        sender.send(8)
    assert sender.sent == 2  # message 0 queued, message 1 refused
    assert recorder.failed == 1 and set(recorder.errors.counts) == {"MSG_SIZE_TOO_LARGE"}
    assert "refused a 2,000 B message" in recorder.errors.messages["MSG_SIZE_TOO_LARGE"][0]
    assert ledger.status[1] == FAILED and ledger.partition[1] == -1
    producer.purge()
    producer.poll(1)
    # Purged before it had a partition (no broker, no metadata): failed, partition -1.
    assert (ledger.status[0], ledger.partition[0]) == (FAILED, -1)
    assert recorder.failed == 2


def spec(**kw) -> ProducerSpec:
    return ProducerSpec(**{"worker": "producer-0", "config": {"bootstrap.servers": NOWHERE},
                           "topics": ("t",), "payloads": (b"x",), **kw})


@pytest.mark.parametrize(("kw", "sender"), [
    ({}, BareSender),
    ({"keys": (b"a", b"b")}, BareSender),
    ({"rate": 100.0}, TimedSender),
    ({"headers": (("h", b"v"),)}, HeaderedSender),
    ({"partitioner": get_strategy("murmur2", 3)}, HeaderedSender),
    ({"headers": (("h", b"v"),), "rate": 100.0}, TimedHeaderedSender),
    ({"partitioner": get_strategy("murmur2", 3), "rate": 100.0}, TimedHeaderedSender),
    ({"verify_id": bytes(12)}, VerifiedSender),
    ({"verify_id": bytes(12), "headers": (("h", b"v"),), "rate": 100.0}, VerifiedSender),
])
def test_the_send_loop_is_chosen_by_the_shape_of_the_messages(kw, sender):
    s = spec(**kw)
    producer, _ = offline_producer()
    pacer = FixedRate(s.rate, 1.0, producer.poll) if s.rate else MaxRate(1.0)
    recorder = DeliveryRecorder(ledger=DeliveryLedger(8) if s.verify_id else None)
    assert type(producer_module._sender(s, producer, pacer, recorder)) is sender


# ------------------------------------------------------------------ whole runs, real broker

@pytest.fixture
def topic(bootstrap):
    name = f"kb-test-producer-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, partitions=1)
    yield name
    delete_topics(bootstrap, [name])


def run(s: ProducerSpec) -> list:
    """Run a producer in this thread; its reports, "ready" to "done"."""
    started = threading.Event()
    started.set()
    reports: queue.Queue = queue.Queue()
    run_producer(s, Control(started, threading.Event(), reports))
    return [reports.get_nowait() for _ in range(reports.qsize())]


def read_back(bootstrap: str, topic: str, n: int) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"kb-test-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    msgs, deadline = [], time.monotonic() + 60
    while len(msgs) < n and time.monotonic() < deadline:
        msgs += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
    consumer.close()
    return msgs


def histogram_count(encoded: str) -> int:
    return LatencyRecorder.decode(encoded).count


def totals_of_intervals(reports: list) -> dict:
    totals: dict = {}
    for r in reports:
        if r.kind == "interval":
            for k, v in r.counts.items():
                totals[k] = totals.get(k, 0) + v
    return totals


def test_a_max_rate_run_reports_its_intervals_and_totals(bootstrap, topic):
    reports = run(spec(config={"bootstrap.servers": bootstrap}, topics=(topic,), payloads=(b"x" * 100,),
                       max_messages=20_000, duration_s=60))
    assert [r.kind for r in reports[:1] + reports[-1:]] == ["ready", "done"]
    intervals = [r for r in reports if r.kind == "interval"]
    assert intervals and {r.kind for r in reports[1:-1]} == {"interval"}
    for r in intervals:
        assert list(r.counts) == ["sent", "delivered", "failed", "bytes"]
        assert list(r.histograms) == ["publish_latency_us", "publish_delay_us"]
        assert r.extras == {}
    done = reports[-1].counts
    assert set(done) == {"sent", "delivered", "failed", "bytes", "buffer_full", "elapsed_s",
                         "drained_s", "cpu_s", "in_process"}
    assert done["sent"] == done["delivered"] == 20_000 and done["failed"] == 0
    assert done["bytes"] == 20_000 * 100
    assert totals_of_intervals(reports) == {k: done[k] for k in ("sent", "delivered", "failed", "bytes")}
    assert reports[-1].extras == {}


def test_a_fixed_rate_run_stamps_intended_send_times_and_records_publish_delay(bootstrap, topic):
    reports = run(spec(config={"bootstrap.servers": bootstrap, "linger.ms": 5}, topics=(topic,),
                       rate=500.0, duration_s=2.0))
    done = reports[-1].counts
    assert 0 < done["sent"] == done["delivered"] <= 1001
    delays = sum(histogram_count(r.histograms["publish_delay_us"]) for r in reports if r.kind == "interval")
    assert delays == done["sent"]  # one publish delay per message
    stamps = np.array([m.timestamp()[1] for m in read_back(bootstrap, topic, done["sent"])])
    assert len(stamps) == done["sent"]
    # Message i's timestamp is the run's start + i * 2 ms (whole ms, truncated), not when it went.
    assert set(np.diff(stamps)) <= {1, 2, 3}
    assert stamps[-1] - stamps[0] == pytest.approx((len(stamps) - 1) * 2, abs=1)


@pytest.mark.parametrize("rate", [0.0, 2000.0])
def test_a_partitioner_chooses_every_partition_and_headers_go_with_every_message(bootstrap, rate):
    topic = f"kb-test-producer-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=3)
    try:
        strategy = get_strategy("murmur2", 3)
        keys = tuple(b"key-%d" % i for i in range(50))
        reports = run(spec(config={"bootstrap.servers": bootstrap}, topics=(topic,), keys=keys,
                           partitioner=strategy, headers=(("h", b"v"),), max_messages=3000,
                           rate=rate, duration_s=60))
        assert reports[-1].counts["delivered"] == 3000
        msgs = read_back(bootstrap, topic, 3000)
    finally:
        delete_topics(bootstrap, [topic])
    assert len(msgs) == 3000
    assert all(m.partition() == strategy.partition(m.key()) for m in msgs)
    assert all(m.headers() == [("h", b"v")] for m in msgs)
    assert len({m.partition() for m in msgs}) == 3


def test_a_full_queue_loses_and_duplicates_no_verified_message(bootstrap, topic):
    n = 20_000
    reports = run(spec(config={"bootstrap.servers": bootstrap, "queue.buffering.max.messages": 20},
                       topics=(topic,), payloads=(b"x" * 100,), max_messages=n, duration_s=60,
                       verify_id=bytes(range(12)), timeline=True))
    done, part = reports[-1].counts, reports[-1].extras["verify"]
    assert done["buffer_full"] > 0, "the queue never filled: the test tested nothing"
    assert done["sent"] == done["delivered"] == n and done["failed"] == 0
    assert part["sent"] == n
    assert (np.frombuffer(zlib.decompress(part["status"]), np.uint8) == ACKED).all()
    acks = sum(sum(r.extras["acks"].values()) for r in reports if r.kind == "interval")
    assert acks == n
    seqs = [int.from_bytes(dict(m.headers())[VERIFY_HEADER][12:], "big")
            for m in read_back(bootstrap, topic, n)]
    assert seqs == list(range(n))  # one partition: each once, in order


def test_a_transactional_run_reports_its_transactions(bootstrap, topic):
    reports = run(spec(config={"bootstrap.servers": bootstrap, "transactional.id": f"kb-test-{uuid.uuid4().hex}"},
                       topics=(topic,), rate=1000.0, duration_s=2.0, transaction_messages=300,
                       timeline=True))
    intervals = [r for r in reports if r.kind == "interval"]
    for r in intervals:
        assert list(r.counts) == ["sent", "delivered", "failed", "bytes", "transactions_committed",
                                  "transactions_aborted", "aborted_messages"]
        assert list(r.histograms) == ["publish_latency_us", "publish_delay_us", "transaction_latency_us"]
        assert set(r.extras) == {"acks", "errors"}
    done = reports[-1].counts
    assert 300 < done["sent"] == done["delivered"] <= 2001  # commits may hold it up
    assert done["transactions_committed"] == math.ceil(done["sent"] / 300)
    assert done["transactions_aborted"] == done["aborted_messages"] == 0
    assert totals_of_intervals(reports)["transactions_committed"] == done["transactions_committed"]
    commits = sum(histogram_count(r.histograms["transaction_latency_us"]) for r in intervals)
    assert commits == done["transactions_committed"]
