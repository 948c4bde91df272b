"""Delivery verification: the ledger's counts (no broker) and the read-back on a real broker."""

from __future__ import annotations

import functools
import random
import time
import uuid
import zlib
from collections import Counter

import numpy as np
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.core import contract
from kafkabench.core.errors import ConfigError
from kafkabench.engine.producer import ACKED, FAILED, NO_OUTCOME, DeliveryLedger, verify_header
from kafkabench.runner import run_workload
from kafkabench.verify.ledger import COLUMNS, Ledger, seq_value
from kafkabench.verify.observer import VerifyObserver
from kafkabench.verify.readback import _consumer, _ReadBack, verify_delivery

ID_A, ID_B = b"run-nonce"[:8] + bytes(4), b"run-nonce"[:8] + (1).to_bytes(4, "big")


def make_part(name: str, vid: bytes, status, partition, topics=("t",), width: int = 2) -> dict:
    """A ledger part as a producer sends it (partition int16, or int32 with width=4)."""
    status, partition = np.asarray(status, np.uint8), np.asarray(partition, f"=i{width}")
    return {"producer": name, "id": vid, "topics": tuple(topics), "sent": len(status),
            "status": zlib.compress(status.tobytes()), "partition": zlib.compress(partition.tobytes())}


def value(vid: bytes, seq: int) -> bytes:
    return verify_header(vid, seq)[1]


def read(ledger: Ledger, records, batch: int = 1000) -> None:
    """Feed (topic, partition, header value) records to the ledger in batches."""
    records = list(records)
    for lo in range(0, len(records), batch):
        chunk = records[lo:lo + batch]
        ledger.add([ledger.tp(t, p) for t, p, _ in chunk], [v for _, _, v in chunk])


def rows(ledger: Ledger) -> dict[tuple[str, int, str], dict[str, int]]:
    frame = ledger.frame()
    return {(r.topic, r.partition, r.producer): {c: getattr(r, c) for c in COLUMNS[3:]}
            for r in frame.itertuples()}


def counts(**kw: int) -> dict[str, int]:
    return {c: kw.get(c, 0) for c in COLUMNS[3:]}


# --- the ledger, no broker ------------------------------------------------------------------


def test_everything_read_once_in_order_counts_nothing_wrong():
    ledger = Ledger([make_part("p0", ID_A, [ACKED] * 6, [0, 1, 0, 1, 0, 1])])
    read(ledger, [("t", s % 2, value(ID_A, s)) for s in range(6)])
    assert rows(ledger) == {("t", 0, "p0"): counts(acked=3, read=3),
                            ("t", 1, "p0"): counts(acked=3, read=3)}
    frame = ledger.frame()
    assert list(frame.columns) == list(COLUMNS)
    assert contract.check_frame("verify", frame) == []
    assert ledger.summary() == {"verify_acked": 6, "verify_lost": 0, "verify_duplicated": 0,
                                "verify_reordered": 0, "verify_failed_but_present": 0,
                                "verify_read": 6, "verify_foreign": 0}


def test_lost_counts_acked_messages_never_read_where_they_were_acked():
    # Two topics: message s went to topics[s % 2]; s=4 failed and is not lost.
    status = [ACKED, ACKED, ACKED, ACKED, FAILED, ACKED, NO_OUTCOME]
    ledger = Ledger([make_part("p0", ID_A, status, [0, 0, 1, 1, -1, 2, -1], topics=("a", "b"),
                               width=4)])
    read(ledger, [("a", 0, value(ID_A, 0)), ("b", 2, value(ID_A, 5))])
    assert rows(ledger) == {("a", 0, "p0"): counts(acked=1, read=1),
                            ("b", 0, "p0"): counts(acked=1, lost=1),
                            ("a", 1, "p0"): counts(acked=1, lost=1),
                            ("b", 1, "p0"): counts(acked=1, lost=1),
                            ("a", -1, "p0"): counts(failed=1),
                            ("b", 2, "p0"): counts(acked=1, read=1)}


def test_duplicates_are_extra_reads_within_and_across_batches():
    ledger = Ledger([make_part("p0", ID_A, [ACKED] * 4, [0] * 4)])
    records = [("t", 0, value(ID_A, s)) for s in (0, 1, 1, 2, 3, 1)]
    read(ledger, records, batch=3)
    read(ledger, records[:1])
    assert rows(ledger) == {("t", 0, "p0"): counts(acked=4, read=7, duplicated=3)}


def test_read_counts_saturate_but_duplicates_stay_exact():
    ledger = Ledger([make_part("p0", ID_A, [ACKED], [0])])
    read(ledger, [("t", 0, value(ID_A, 0))] * 300, batch=128)
    assert rows(ledger)[("t", 0, "p0")] == counts(acked=1, read=300, duplicated=299)
    assert ledger.seen[0] == 255


def test_reordered_is_a_first_read_below_the_highest_sequence_read_in_the_partition():
    ledger = Ledger([make_part("p0", ID_A, [ACKED] * 10, [0] * 8 + [1] * 2)])
    # 0 and 1 come after 5 and 6: reordered; the repeat of 5 is a duplicate, not a reorder;
    # partition 1 keeps its own order (8 after 9 is reordered there).
    read(ledger, [("t", 0, value(ID_A, s)) for s in (5, 6, 0, 1, 5, 7, 2, 3, 4)]
         + [("t", 1, value(ID_A, s)) for s in (9, 8)], batch=4)
    assert rows(ledger) == {("t", 0, "p0"): counts(acked=8, read=9, duplicated=1, reordered=5),
                            ("t", 1, "p0"): counts(acked=2, read=2, reordered=1)}


def test_failed_but_present_counts_each_failed_message_read_once():
    ledger = Ledger([make_part("p0", ID_A, [FAILED, ACKED, FAILED], [0, 0, 0])])
    read(ledger, [("t", 0, value(ID_A, s)) for s in (0, 1, 0)])
    assert rows(ledger) == {("t", 0, "p0"): counts(acked=1, failed=2, read=3, duplicated=1,
                                                   failed_but_present=1)}


def test_foreign_records_are_counted_apart():
    ledger = Ledger([make_part("p0", ID_A, [ACKED] * 2, [0, 0])])
    other_run = b"othernon" + bytes(4)
    read(ledger, [("t", 0, None), ("t", 0, value(other_run, 0)), ("t", 0, value(ID_A, 2)),
                  ("t", 0, b"short"), ("t", 0, value(ID_A, 1))])
    assert rows(ledger) == {("t", 0, "p0"): counts(acked=2, read=1, lost=1)}
    assert ledger.summary()["verify_foreign"] == 4


def test_seq_value_finds_the_header_last_or_anywhere():
    v = value(ID_A, 7)
    assert seq_value([("x", b"1"), ("kb-seq", v)]) == v
    assert seq_value([("kb-seq", v), ("x", b"1")]) == v
    assert seq_value([("x", b"1")]) is None
    assert seq_value(None) is None


def test_bad_parts_are_refused():
    with pytest.raises(ValueError, match="share producer ids"):
        Ledger([make_part("p0", ID_A, [ACKED], [0]), make_part("p1", ID_A, [ACKED], [0])])
    part = make_part("p0", ID_A, [ACKED] * 3, [0] * 3)
    with pytest.raises(ValueError, match="'p0': partition has 3 bytes for 2 messages"):
        Ledger([{**part, "sent": 2, "status": zlib.compress(bytes(2)),
                 "partition": zlib.compress(bytes(3))}])
    with pytest.raises(ValueError, match="'p0': status has 3 bytes for 1 messages"):
        Ledger([{**part, "sent": 1}])


def reference(parts_spec, records) -> dict[tuple[str, int, str], dict[str, int]]:
    """The counts, one record at a time with Python dicts: what the ledger must match."""
    out: dict = {}
    ids = {vid: (name, status) for name, vid, status, _ in parts_spec}
    seen: Counter = Counter()
    highest: dict = {}
    for t, p, v in records:
        name, status = ids[v[:12]]
        s = int.from_bytes(v[12:], "big")
        r = out.setdefault((t, p, name), counts())
        r["read"] += 1
        r["duplicated"] += seen[(name, s)] > 0
        r["reordered"] += not seen[(name, s)] and s < highest.get((p, name), -1)
        r["failed_but_present"] += not seen[(name, s)] and status[s] == FAILED
        seen[(name, s)] += 1
        highest[(p, name)] = max(highest.get((p, name), -1), s)
    for name, _vid, status, partition in parts_spec:
        for s, st in enumerate(status):
            r = out.setdefault(("t", partition[s], name), counts()) if st != NO_OUTCOME else {}
            outcomes = {ACKED: ("acked",) if seen[(name, s)] else ("acked", "lost"),
                        FAILED: ("failed",), NO_OUTCOME: ()}[st]
            for key in outcomes:
                r[key] += 1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_batched_counts_match_a_message_by_message_reference(seed):
    rng = random.Random(seed)
    spec = []
    for name, vid in (("p0", ID_A), ("p1", ID_B)):
        n = rng.randint(50, 300)
        spec.append((name, vid, [rng.choice([ACKED] * 8 + [FAILED, NO_OUTCOME]) for _ in range(n)],
                     [rng.randrange(3) for _ in range(n)]))
    # Each partition gets its messages in sequence order, with some swapped, skipped, repeated.
    records = []
    for _name, vid, status, partition in spec:
        for s in range(len(status)):
            if rng.random() < 0.9:
                records.extend([("t", partition[s], value(vid, s))] * rng.choice([1] * 9 + [2, 3]))
    for _ in range(len(records) // 10):
        i, j = rng.randrange(len(records)), rng.randrange(len(records))
        records[i], records[j] = records[j], records[i]
    ledger = Ledger(make_part(name, vid, st, pa) for name, vid, st, pa in spec)
    read(ledger, records, batch=rng.choice([1, 7, 64, 10_000]))
    assert rows(ledger) == reference(spec, records)


# --- on the broker --------------------------------------------------------------------------


@pytest.fixture
def topic(bootstrap):
    name = f"kb-verify-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, partitions=2)
    yield name
    delete_topics(bootstrap, [name], timeout_s=10)


def produce(bootstrap: str, topic: str, vid: bytes, sends, ledger: DeliveryLedger | None = None,
            **conf) -> None:
    """Send message `seq` to `partition` for each (seq, partition) of `sends`, in order,
    with the `kb-seq` header of `vid`; record delivery reports in `ledger`."""
    def delivered(seq, err, msg):
        # Delivery reports carry no headers (confluent-kafka-python #574): the seq is bound.
        if ledger is not None:
            ledger.record(seq, err is None, msg.partition())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    for seq, partition in sends:
        producer.produce(topic, b"x", partition=partition, headers=[verify_header(vid, seq)],
                         on_delivery=functools.partial(delivered, seq))
        producer.poll(0)
    assert producer.flush(30) == 0


def test_records_deleted_after_their_ack_are_lost_exactly(bootstrap, topic):
    sends = [(s, s % 2) for s in range(200)]
    ledger = DeliveryLedger(len(sends))
    produce(bootstrap, topic, ID_A, sends, ledger)
    part = ledger.part("producer-0", ID_A, (topic,), len(sends))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(topic, 0, 30)], request_timeout=10)
    for f in futures.values():
        assert f.result(timeout=15).low_watermark == 30

    report = verify_delivery(bootstrap, [topic], [part], timeout_s=30)

    assert report.summary["verify_error"] == ""
    assert report.summary["verify_complete"] is True
    assert {k: v for k, v in report.summary.items() if k not in ("verify_read_s", "verify_error",
                                                                  "verify_complete")} == {
        "verify_acked": 200, "verify_lost": 30, "verify_duplicated": 0, "verify_reordered": 0,
        "verify_failed_but_present": 0, "verify_read": 170, "verify_foreign": 0}
    by_partition = report.frame.set_index("partition")
    assert by_partition.loc[0, "lost"] == 30 and by_partition.loc[1, "lost"] == 0
    assert contract.check_frame("verify", report.frame) == []


def test_a_second_producer_reusing_an_id_shows_as_duplicates_and_reorders(bootstrap, topic):
    # Sequences 50..59 go first, then 0..49 (reordered: 50 first reads below 59), then 60..99.
    sends = [(s, 0) for s in [*range(50, 60), *range(50), *range(60, 100)]]
    ledger = DeliveryLedger(100)
    produce(bootstrap, topic, ID_A, sends, ledger)
    part = ledger.part("producer-0", ID_A, (topic,), 100)
    # Another producer with the same id repeats 10..19 (duplicates; not reorders: not first reads).
    produce(bootstrap, topic, ID_A, [(s, 0) for s in range(10, 20)])
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, b"no header", partition=1)
    assert p.flush(30) == 0

    report = verify_delivery(bootstrap, [topic], [part], isolation_level="read_uncommitted",
                             timeout_s=30)

    s = report.summary
    assert s["verify_complete"] is True, s["verify_error"]
    assert (s["verify_acked"], s["verify_read"], s["verify_lost"]) == (100, 110, 0)
    assert (s["verify_duplicated"], s["verify_reordered"], s["verify_foreign"]) == (10, 50, 1)
    assert s["verify_failed_but_present"] == 0


def test_an_unreachable_cluster_is_reported_not_raised(bootstrap):
    part = make_part("producer-0", ID_A, [ACKED] * 3, [0] * 3)
    started = time.monotonic()
    report = verify_delivery("127.0.0.1:1", ["kb-verify-none"], [part], timeout_s=2)
    s = report.summary
    assert s["verify_complete"] is False
    assert s["verify_error"].startswith("verification read from '127.0.0.1:1' failed (time budget 2 s)")
    assert s["verify_lost"] == 3 and s["verify_acked"] == 3
    assert s["verify_read_s"] <= time.monotonic() - started


def test_read_committed_reads_to_the_last_stable_offset_and_skips_an_open_transaction(
        bootstrap, topic):
    ledger = DeliveryLedger(4)
    produce(bootstrap, topic, ID_A, [(s, 0) for s in range(4)], ledger)
    part = ledger.part("producer-0", ID_A, (topic,), 4)
    tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"kb-verify-{uuid.uuid4().hex}"})
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(topic, b"open", partition=0)
    assert tx.flush(30) == 0
    try:
        committed = verify_delivery(bootstrap, [topic], [part], timeout_s=30)
        uncommitted = verify_delivery(bootstrap, [topic], [part], isolation_level="read_uncommitted",
                                      timeout_s=30)
    finally:
        tx.abort_transaction(30)
    for report, foreign in ((committed, 0), (uncommitted, 1)):
        s = report.summary
        assert s["verify_complete"] is True, s["verify_error"]
        assert (s["verify_read"], s["verify_lost"], s["verify_foreign"]) == (4, 0, foreign)


def test_a_read_out_of_time_is_incomplete_not_a_hang(bootstrap, topic):
    ledger = DeliveryLedger(50)
    produce(bootstrap, topic, ID_A, [(s, s % 2) for s in range(50)], ledger)
    report = verify_delivery(bootstrap, [topic], [ledger.part("producer-0", ID_A, (topic,), 50)],
                             timeout_s=0)
    s = report.summary
    assert s["verify_complete"] is False
    # Out of time finding the partitions, or reading them: either is said.
    assert "time budget 0 s" in s["verify_error"] or "time budget of 0 s" in s["verify_error"]
    assert s["verify_read"] + s["verify_lost"] == 50


class _Tally:
    def __init__(self, parts):
        self.verify_parts = parts


class _Session:
    def __init__(self, parts):
        self.tally = _Tally(parts)


class _Result:
    def __init__(self):
        self.summary: dict = {}
        self.verify = None


def test_the_observer_adds_the_frame_and_the_figures(bootstrap, topic):
    ledger = DeliveryLedger(10)
    produce(bootstrap, topic, ID_A, [(s, s % 2) for s in range(10)], ledger)
    observer = VerifyObserver(bootstrap, [topic], timeout_s=30)
    observer.on_end(_Session([ledger.part("producer-0", ID_A, (topic,), 10)]))
    result = _Result()
    observer.contribute(result)
    assert result.summary["verify_complete"] is True
    assert result.summary["verify_acked"] == result.summary["verify_read"] == 10
    assert list(result.verify["partition"]) == [0, 1]

    never_ended = _Result()
    VerifyObserver(bootstrap, [topic]).contribute(never_ended)
    assert never_ended.summary["verify_complete"] is False
    assert "did not run" in never_ended.summary["verify_error"]


def test_bad_client_settings_are_a_config_error_the_observer_records():
    part = make_part("producer-0", ID_A, [ACKED], [0])
    with pytest.raises(ConfigError, match="no.such.setting"):
        verify_delivery("127.0.0.1:1", ["t"], [part], conf={"no.such.setting": 1}, timeout_s=1)
    observer = VerifyObserver("127.0.0.1:1", ["t"], conf={"no.such.setting": 1}, timeout_s=1)
    observer.on_end(_Session([part]))
    result = _Result()
    observer.contribute(result)
    assert result.summary["verify_complete"] is False
    assert "verification did not run" in result.summary["verify_error"]
    assert "no.such.setting" in result.summary["verify_error"]


def test_partitions_short_of_their_high_watermark_are_named(bootstrap, topic):
    ledger = DeliveryLedger(6)
    produce(bootstrap, topic, ID_A, [(s, s % 2) for s in range(6)], ledger)
    consumer = _consumer(bootstrap, None, None)
    try:
        reader = _ReadBack(consumer, Ledger([ledger.part("producer-0", ID_A, (topic,), 6)]),
                           time.monotonic() + 30)
        reader.start([topic])  # the watermarks, nothing read yet
        text = reader.shortfall(7)
    finally:
        consumer.close()
    assert text.startswith("2 of 2 partition(s) not read to their high watermark within the "
                           f"time budget of 7 s ({topic}:0 at 0 of 3, {topic}:1 at 0 of 3)")


def test_a_verified_workload_reads_back_everything_it_acked(bootstrap):
    result = run_workload({"name": "verify", "topics": 2, "partitions": 2, "producers": 2,
                           "message_count": 4000, "duration_s": 0, "consumer_groups": 1,
                           "verify": True}, None, bootstrap=bootstrap, mode="thread",
                          progress=False)
    s = result.summary
    assert s["verify_complete"] is True, s["verify_error"]
    assert s["verify_acked"] == s["verify_read"] == s["delivered"] == 4000
    assert (s["verify_lost"], s["verify_duplicated"], s["verify_foreign"]) == (0, 0, 0)
    assert result.verify["topic"].nunique() == 2
    assert contract.check_frame("verify", result.verify) == []
