"""Lag in seconds, Burrow-style status (pure, hand-computed) and LagSampler on a real broker,
checked against Kafka's own ConsumerGroupCommand."""

import math
import os
import subprocess
import sys
import time
import uuid
from collections import deque

import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewPartitions

from conftest import explain, run_child
from kafkabench.cluster.admin import admin_client, create_topic, delete_topics
from kafkabench.cluster.install import install_kafka
from kafkabench.cluster.lag import LagSampler, OldestReader
from kafkabench.core.errors import ConfigError
from kafkabench.measure.lagmath import (
    LAG_COLUMNS,
    LagTable,
    Observation,
    group_status,
    lag_frame,
    partition_status,
)

# ------------------------------------------------------------------ LagTable

def _table(points):
    table = LagTable()
    for offset, t in points:
        table.add(offset, t)
    return table


def test_lag_seconds_interpolates_between_bracketing_points():
    table = _table([(0, 0.0), (100, 10.0), (300, 20.0)])
    # offset 200 lies halfway between (100, 10 s) and (300, 20 s): produced at 15 s
    assert table.produce_time(200) == 15.0
    assert table.lag_seconds(200, now=22.0) == 7.0
    assert table.lag_seconds(50, now=22.0) == 17.0  # 5 s
    assert table.lag_seconds(100, now=22.0) == 12.0  # exactly a point


def test_lag_seconds_caught_up_is_zero():
    table = _table([(0, 0.0), (100, 10.0)])
    assert table.lag_seconds(100, now=50.0) == 0.0
    assert table.lag_seconds(150, now=50.0) == 0.0


def test_lag_seconds_flat_log_end_uses_last_time_seen():
    # Nothing produced between 10 s and 30 s: offsets >= 100 were produced after 30 s.
    table = _table([(0, 0.0), (100, 10.0), (100, 20.0), (100, 30.0), (200, 40.0)])
    assert len(table) == 3
    assert table.produce_time(150) == 35.0
    # offsets below 100 still use the first time 100 was seen
    assert table.produce_time(50) == 5.0


def test_lag_seconds_older_than_a_full_table_is_lower_bound():
    table = LagTable(max_points=2)
    for offset, t in [(0, 0.0), (100, 10.0), (200, 20.0)]:
        table.add(offset, t)
    assert len(table) == 2
    # offset 50 is older than the oldest kept point (100 at 10 s): it existed by 10 s
    assert not table.covers(50) and table.covers(100)
    assert table.lag_seconds(50, now=25.0) == 15.0


def test_lag_seconds_before_the_first_point_is_unknown_not_zero():
    # First sample: a partition 6,108 messages behind. One point cannot place offset 0.
    assert math.isnan(_table([(6108, 5.0)]).lag_seconds(0, now=5.0))
    # A young table: "produced before 1.09 s ago" says nothing about a group stopped for minutes.
    assert math.isnan(_table([(180_000, 0.0), (180_100, 1.09)]).lag_seconds(0, now=1.09))


def test_lag_seconds_unknown():
    assert math.isnan(LagTable().lag_seconds(5, now=1.0))
    assert math.isnan(_table([(10, 0.0)]).lag_seconds(None, now=1.0))
    assert math.isnan(_table([(10, 0.0)]).lag_seconds(float("nan"), now=1.0))


def test_log_end_going_back_resets_the_table():
    table = _table([(0, 0.0), (100, 10.0), (5, 20.0)])
    assert len(table) == 1
    assert math.isnan(table.lag_seconds(0, now=30.0))  # older than the new topic's table
    table.add(15, 30.0)
    assert table.lag_seconds(10, now=40.0) == 15.0


# ------------------------------------------------------------------ Burrow status

def _window(*triples):
    return [Observation(t, c, lag) for t, c, lag in triples]


def test_status_ok_when_lag_is_zero_somewhere():
    w = _window((0, 10, 5), (1, 10, 0), (2, 10, 7))
    assert partition_status(w) == "OK"


def test_status_ok_when_lag_shrinks():
    w = _window((0, 10, 50), (1, 20, 60), (2, 40, 45))
    assert partition_status(w) == "OK"


def test_status_warn_when_offsets_advance_but_lag_never_shrinks():
    w = _window((0, 10, 50), (1, 20, 60), (2, 30, 60), (3, 40, 70))
    assert partition_status(w) == "WARN"


def test_status_rewind_when_offset_goes_back():
    w = _window((0, 100, 5), (1, 120, 6), (2, 90, 40))
    assert partition_status(w) == "REWIND"


def test_status_stall_and_stop_by_ownership():
    w = _window((0, 10, 5), (1, 10, 8), (2, 10, 9))
    assert partition_status(w, owned=True) == "STALL"
    assert partition_status(w, owned=False) == "STOP"


def test_status_stop_by_time_when_ownership_unknown():
    w = _window((10, 10, 5), (11, 10, 8), (12, 10, 9))
    # changed at the window's start: stood still for exactly the window's span
    assert partition_status(w, last_change_t=10) == "STALL"
    # stood still since long before the window
    assert partition_status(w, last_change_t=2) == "STOP"
    assert partition_status(w, now=20) == "STOP"


def test_status_of_a_deque_window():
    # The sampler keeps its window in a deque, which cannot be sliced.
    assert partition_status(deque(_window((0, 10, 5), (1, 10, 8), (2, 10, 9))), owned=False) == "STOP"
    assert partition_status(deque(_window((0, 10, 50), (1, 20, 60), (2, 30, 60)))) == "WARN"
    assert partition_status(deque(_window((0, 100, 5), (1, 90, 40)))) == "REWIND"
    assert partition_status(deque(_window((0, 10, 50), (1, 40, 45)))) == "OK"


def test_status_needs_enough_observations():
    w = _window((0, 10, 5), (1, 10, 8))
    assert partition_status(w[:1]) == "OK"
    assert partition_status(w, owned=True) == "STALL"
    assert partition_status(w, owned=True, min_observations=3) == "OK"


def test_group_status_is_worst_partition():
    assert group_status(["OK", "WARN", "OK"]) == "WARN"
    assert group_status(["STALL", "REWIND", "WARN"]) == "REWIND"
    assert group_status(["OK", "ERR", "STOP"]) == "ERR"
    assert group_status([]) == "OK"
    # a deleted topic ends its lag; any live partition says more
    assert group_status(["DELETED"]) == "DELETED"
    assert group_status(["DELETED", "OK"]) == "OK"


def test_empty_lag_frame_has_contract_columns():
    frame = lag_frame()
    assert list(frame.columns) == LAG_COLUMNS
    assert str(frame["lag_msgs"].dtype) == "Int64"
    # columns are only appended: rows of the first ten columns still make a frame
    assert LAG_COLUMNS[:10] == ["t", "group", "topic", "partition", "committed", "log_end",
                                "lag_msgs", "lag_s", "status", "time"]
    wall = pd.Timestamp("2026-01-01", tz="UTC")
    old = lag_frame([(0.0, "g", "tp", 0, 10, 15, 5, 0.5, "OK", wall)])
    assert math.isnan(old["oldest_age_s"].iloc[0]) and old["error"].iloc[0] == ""


def test_sampler_settings_are_checked():
    with pytest.raises(ConfigError, match="window=1"):
        LagSampler("127.0.0.1:1", ["g"], window=1)
    with pytest.raises(ConfigError, match="'sometimes'"):
        LagSampler("127.0.0.1:1", ["g"], missing_committed="sometimes")


def test_dead_broker_is_an_err_sample_with_its_reason():
    sampler = LagSampler("127.0.0.1:1", ["g"], request_timeout_s=0.5)
    frame = sampler.sample_once()
    assert list(frame["status"]) == ["ERR"]
    assert "TIMED_OUT" in frame["error"].iloc[0] or "TRANSPORT" in frame["error"].iloc[0]
    assert sampler.error_count == len(sampler.errors()) >= 1
    assert frame["error"].iloc[0] in set(sampler.errors()["error"])
    assert sampler.group_status() == {"g": "ERR"}
    assert sampler.latest().equals(frame)
    sampler.close()


# ------------------------------------------------------------------ real broker

def test_sampler_lag_equals_log_end_minus_committed(bootstrap):
    topic = f"kb-lag-{uuid.uuid4().hex[:8]}"
    group = f"kb-lag-g-{uuid.uuid4().hex[:8]}"
    n, partitions, consumed_target = 3000, 3, 1000
    create_topic(bootstrap, topic, partitions=partitions)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
        for i in range(n):
            producer.produce(topic, value=b"x" * 10, partition=i % partitions)
        assert producer.flush(15) == 0

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        consumed, deadline = 0, time.monotonic() + 30
        while consumed < consumed_target and time.monotonic() < deadline:
            msgs = consumer.consume(min(100, consumed_target - consumed), timeout=1.0)
            consumed += sum(1 for m in msgs if m.error() is None)
        consumer.commit(asynchronous=False)
        consumer.close()
        assert consumed == consumed_target

        # A partition the consumer never read from has no committed offset: NA by default,
        # counted from the log start with missing_committed="earliest".
        plain = LagSampler(bootstrap, [group]).sample_once()
        assert sorted(plain["partition"]) == list(range(partitions))
        read = plain[plain["committed"].notna()]
        assert not read.empty
        assert (read["lag_msgs"] == read["log_end"] - read["committed"]).all()
        assert plain.loc[plain["committed"].isna(), "lag_msgs"].isna().all()

        with LagSampler(bootstrap, [group], interval_s=0.2, missing_committed="earliest") as sampler:
            time.sleep(0.7)
        frame = sampler.frame()
        assert list(frame.columns) == LAG_COLUMNS
        assert frame["t"].nunique() >= 2
        last = frame[frame["t"] == frame["t"].max()]
        assert sorted(last["partition"]) == list(range(partitions))
        assert (last["topic"] == topic).all()
        assert (last["log_end"] == n // partitions).all()
        assert last["committed"].notna().all()
        assert (last["lag_msgs"] == last["log_end"] - last["committed"]).all()
        assert last["lag_msgs"].sum() == n - consumed
        assert (last["lag_s"] >= 0).all()
        # the consumer is gone and the offsets stand still: not OK once the window is full
        assert set(last["status"]) <= {"OK", "STOP"}
        assert sampler.errors().empty and sampler.error_count == 0
    finally:
        delete_topics(bootstrap, [topic])


def _produce(bootstrap: str, topic: str, n: int, partitions: int, timestamp_ms: int = 0) -> None:
    """n one-byte messages round-robin over the partitions; timestamp 0 means now."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "message.timeout.ms": 10000})
    for i in range(n):
        while True:
            try:
                producer.produce(topic, b"m", partition=i % partitions, timestamp=timestamp_ms)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(15) == 0


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit {partition: offset} for a group without joining it (the group has no members)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def _consumer_group_command(bootstrap: str, *groups: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """Kafka's `kafka-consumer-groups.sh --describe`: {(group, partition): (CURRENT-OFFSET,
    LOG-END-OFFSET, LAG)}."""
    out = run_child(install_kafka().java_command(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap,
        "--describe", *(a for g in groups for a in ("--group", g))), timeout=120)
    rows = {}
    for line in out.stdout.splitlines():
        # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        cols = line.split()
        if len(cols) >= 6 and cols[0] in groups:
            rows[(cols[0], int(cols[2]))] = (int(cols[3]), int(cols[4]), int(cols[5]))
    assert rows, explain(out)
    return rows


def _statuses(frame: pd.DataFrame) -> dict[str, set[str]]:
    return {g: set(rows["status"]) for g, rows in frame.groupby("group")}


def test_groups_far_behind_match_kafka_consumer_group_command(bootstrap):
    """A 100k-message backlog produced ten minutes ago. One group stopped (no members), one
    alive but stuck, one consuming slower than the producer and then catching up."""
    topic = f"kb-lag-far-{uuid.uuid4().hex[:8]}"
    stopped, stuck, slow = (f"kb-lag-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("stop", "stall", "slow"))
    partitions, n = 4, 100_000
    create_topic(bootstrap, topic, partitions=partitions)
    member = sampler = None
    try:
        _produce(bootstrap, topic, n, partitions, int((time.time() - 600) * 1000))
        _commit(bootstrap, stopped, topic, {p: 100 * (p + 1) for p in range(partitions)})
        member = Consumer({"bootstrap.servers": bootstrap, "group.id": stuck, "enable.auto.commit": False,
                           "auto.offset.reset": "earliest"})
        member.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(member.assignment()) < partitions and time.monotonic() < deadline:
            member.poll(0.2)
        assert len(member.assignment()) == partitions
        member.commit(offsets=[TopicPartition(topic, p, 50) for p in range(partitions)],
                      asynchronous=False)
        slow_at = {p: 1000 for p in range(partitions)}
        _commit(bootstrap, slow, topic, slow_at)

        sampler = LagSampler(bootstrap, [stopped, stuck, slow], window=3)
        frames = []
        for i in range(5):
            if i:  # 500 new messages per partition, the slow group reads 200
                _produce(bootstrap, topic, 2000, partitions)
                slow_at = {p: o + 200 for p, o in slow_at.items()}
                _commit(bootstrap, slow, topic, slow_at)
            frames.append(sampler.sample_once())

        for frame in frames:
            assert len(frame) == 3 * partitions
            assert (frame["status"] != "ERR").all(), frame
            assert (frame["lag_msgs"] == frame["log_end"] - frame["committed"]).all()
            # The committed offsets lie in the backlog, before the sampler's first log end:
            # the age of the record there, not 0 s (first sample) or the sampler's age.
            assert frame["oldest_age_s"].between(599, 1200).all(), frame
            assert (frame["lag_s"] == frame["oldest_age_s"]).all()
        assert frames[0]["lag_msgs"].sum() == 3 * n - partitions * (250 + 50 + 1000)
        for frame in frames[:2]:  # the window is not full yet
            assert set(frame["status"]) == {"OK"}
        for frame in frames[2:]:
            assert _statuses(frame) == {stopped: {"STOP"}, stuck: {"STALL"}, slow: {"WARN"}}

        # The slow group catches up, then falls a little behind within the sampler's memory.
        end = n // partitions + 4 * 500
        _commit(bootstrap, slow, topic, {p: end for p in range(partitions)})
        caught_up = sampler.sample_once()
        rows = caught_up[caught_up["group"] == slow]
        assert (rows["status"] == "OK").all() and (rows["lag_msgs"] == 0).all()
        assert (rows["lag_s"] == 0).all() and (rows["oldest_age_s"] == 0).all()
        _produce(bootstrap, topic, 2000, partitions)
        _commit(bootstrap, slow, topic, {p: end + 100 for p in range(partitions)})
        final = sampler.sample_once()
        assert sampler.latest().equals(final)
        rows = final[final["group"] == slow]
        assert (rows["status"] == "OK").all() and (rows["lag_msgs"] == 400).all()
        assert rows["oldest_age_s"].between(0, 60).all() and rows["lag_s"].between(0, 60).all()
        assert _statuses(final)[stopped] == {"STOP"} and _statuses(final)[stuck] == {"STALL"}
        assert sampler.error_count == 0, sampler.errors()

        theirs = _consumer_group_command(bootstrap, stopped, stuck, slow)
        ours = {(r.group, r.partition): (r.committed, r.log_end, r.lag_msgs) for r in final.itertuples()}
        assert ours == theirs
    finally:
        if member is not None:
            member.close()
        if sampler is not None:
            sampler.close()
        delete_topics(bootstrap, [topic])


def test_deleted_topic_ends_with_deleted_not_err(bootstrap):
    topic, group = f"kb-lag-del-{uuid.uuid4().hex[:8]}", f"kb-lag-del-g-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions=2)
    sampler = LagSampler(bootstrap, [group], window=2)
    try:
        _produce(bootstrap, topic, 100, 2)
        _commit(bootstrap, group, topic, {0: 10, 1: 20})
        assert list(sampler.sample_once()["lag_msgs"]) == [40, 30]
        delete_topics(bootstrap, [topic])
        frame = sampler.sample_once()
        assert list(frame["status"]) == ["DELETED", "DELETED"] and set(frame["topic"]) == {topic}
        assert sampler.sample_once().empty  # reported once, then forgotten
        assert sampler.group_status() == {group: "DELETED"}
        assert sampler.error_count == 0, sampler.errors()
    finally:
        sampler.close()
        delete_topics(bootstrap, [topic])


def _sample_until(sampler: LagSampler, done, timeout_s: float = 15) -> pd.DataFrame:
    """Sample until `done(frame)` or the deadline; the last frame."""
    deadline = time.monotonic() + timeout_s
    frame = sampler.sample_once()
    while not done(frame) and time.monotonic() < deadline:
        time.sleep(0.2)
        frame = sampler.sample_once()
    return frame


def test_sampler_follows_added_partitions_and_a_recreated_topic(bootstrap):
    # Partitions come from the metadata of the group's topics only: new ones show up, a deleted
    # topic is DELETED once, and the same name created again is sampled again.
    topic, group = f"kb-lag-grow-{uuid.uuid4().hex[:8]}", f"kb-lag-grow-g-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions=2)
    sampler = LagSampler(bootstrap, [group], window=2)
    try:
        _produce(bootstrap, topic, 40, 2)
        _commit(bootstrap, group, topic, {0: 5})
        assert sorted(sampler.sample_once()["partition"]) == [0, 1]
        admin = admin_client(bootstrap)  # kept: its futures fail once it is destroyed
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(15)
        frame = _sample_until(sampler, lambda f: sorted(f["partition"]) == [0, 1, 2]
                              and (f["status"] != "ERR").all())
        assert sorted(frame["partition"]) == [0, 1, 2] and (frame["status"] != "ERR").all(), frame

        delete_topics(bootstrap, [topic])
        frame = _sample_until(sampler, lambda f: (f["status"] == "DELETED").any())
        assert set(frame["status"]) == {"DELETED"}, frame
        create_topic(bootstrap, topic, partitions=1)
        _produce(bootstrap, topic, 10, 1)
        _commit(bootstrap, group, topic, {0: 3})
        frame = _sample_until(sampler, lambda f: list(f["lag_msgs"]) == [7])
        assert list(frame["partition"]) == [0] and list(frame["lag_msgs"]) == [7], frame
        assert list(frame["status"]) == ["OK"]
    finally:
        sampler.close()
        delete_topics(bootstrap, [topic])


def test_oldest_reader_reads_one_record_per_partition(bootstrap):
    topic = f"kb-lag-old-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=3)
    reader = OldestReader(bootstrap, timeout_s=5)
    try:
        for p, ts in enumerate((1_000_000_000_000, 1_500_000_000_000, 0)):
            producer = Producer({"bootstrap.servers": bootstrap})
            for i in range(200):
                producer.produce(topic, b"m", partition=p, timestamp=ts + i * 1000 if ts else 0)
            assert producer.flush(10) == 0
        before = time.time()
        read, error = reader.read({(topic, 0): 5, (topic, 1): 199, (topic, 2): 0})
        assert error is None
        assert read[(topic, 0)] == 1_000_000_005.0 and read[(topic, 1)] == 1_500_000_199.0
        assert before - 60 < read[(topic, 2)] <= time.time()
        # beyond the log end nothing comes: left out, and said so
        read, error = OldestReader(bootstrap, timeout_s=0.5).read({(topic, 0): 500})
        assert read == {} and "not read within 0.5 s" in error
    finally:
        reader.close()
        delete_topics(bootstrap, [topic])


# ------------------------------------------------------------------ CLI

def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_child([sys.executable, "-m", "kafkabench.cli", *args], timeout=120, env=os.environ)


def test_cli_lag_of_a_stopped_group_says_stop(bootstrap):
    topic, group = f"kb-lag-cli-{uuid.uuid4().hex[:8]}", f"kb-lag-cli-g-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions=2)
    try:
        _produce(bootstrap, topic, 1000, 2)
        _commit(bootstrap, group, topic, {0: 100, 1: 200})
        out = _cli("lag", "--bootstrap", bootstrap, "--group", group, "--interval", "0.05",
                   "--window", "3", "--samples", "4")
        assert out.returncode == 0, explain(out)
        assert "ERR" not in out.stdout, explain(out)
        assert out.stdout.count("group status:") == 4, explain(out)
        assert out.stdout.strip().splitlines()[-1] == f"group status: {group} STOP", explain(out)
    finally:
        delete_topics(bootstrap, [topic])


def test_cli_lag_unreachable_cluster_exits_2_with_the_reason():
    out = _cli("lag", "--bootstrap", "127.0.0.1:1", "--group", "g", "--once", "--timeout", "0.5")
    assert out.returncode == 2, explain(out)
    # One line naming the cluster and librdkafka's reason, before any sampling.
    assert "cannot reach Kafka at '127.0.0.1:1'" in out.stderr, explain(out)
    assert "Connection refused" in out.stderr, explain(out)


def test_sampler_without_coordinator_admin_requests_reads_the_same_committed_offsets(bootstrap):
    # Fault runs pass group_topics: committed offsets come from Consumer.committed instead of
    # the Admin API's OffsetFetch (librdkafka aborts the process when that request's
    # coordinator connection drops). Both must give the same lag.
    topic = f"kb-lag-{uuid.uuid4().hex[:8]}"
    group = f"kb-lag-g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=3)
    try:
        _produce(bootstrap, topic, 300, 3)
        _commit(bootstrap, group, topic, {0: 40, 1: 100})
        admin = LagSampler(bootstrap, [group], missing_committed="earliest")
        direct = LagSampler(bootstrap, [group], missing_committed="earliest",
                            group_topics={group: [topic]})
        try:
            a, d = admin.sample_once(), direct.sample_once()
        finally:
            admin.close()
            direct.close()
        cols = ["topic", "partition", "committed", "log_end", "lag_msgs"]
        pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), d[cols].reset_index(drop=True))
        assert dict(zip(d["partition"], d["lag_msgs"], strict=True)) == {0: 60, 1: 0, 2: 100}
        assert direct.errors().empty
    finally:
        delete_topics(bootstrap, [topic])
