"""Lag in seconds, Burrow-style status (pure, hand-computed) and LagSampler on a real broker."""

import math
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from kafkabench.admin import create_topic, delete_topics
from kafkabench.lag import (
    LAG_COLUMNS, LagSampler, LagTable, Observation, group_status, lag_frame, partition_status,
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


def test_lag_seconds_older_than_table_is_lower_bound():
    table = LagTable(max_points=2)
    for offset, t in [(0, 0.0), (100, 10.0), (200, 20.0)]:
        table.add(offset, t)
    assert len(table) == 2
    # offset 50 is older than the oldest kept point (100 at 10 s): it existed by 10 s
    assert table.lag_seconds(50, now=25.0) == 15.0


def test_lag_seconds_unknown():
    assert math.isnan(LagTable().lag_seconds(5, now=1.0))
    assert math.isnan(_table([(10, 0.0)]).lag_seconds(None, now=1.0))
    assert math.isnan(_table([(10, 0.0)]).lag_seconds(float("nan"), now=1.0))


def test_log_end_going_back_resets_the_table():
    table = _table([(0, 0.0), (100, 10.0), (5, 20.0)])
    assert len(table) == 1
    assert table.lag_seconds(0, now=30.0) == 10.0


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


def test_empty_lag_frame_has_contract_columns():
    frame = lag_frame()
    assert list(frame.columns) == LAG_COLUMNS
    assert str(frame["lag_msgs"].dtype) == "Int64"


def test_dead_broker_is_an_err_sample_not_an_exception():
    sampler = LagSampler("127.0.0.1:1", ["g"], request_timeout_s=0.5)
    frame = sampler.sample_once()
    assert list(frame["status"]) == ["ERR"]
    assert len(sampler.errors()) >= 1
    assert sampler.group_status() == {"g": "ERR"}


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
        assert sampler.errors().empty
    finally:
        delete_topics(bootstrap, [topic])
