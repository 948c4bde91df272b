"""Consumer group offsets against a real broker: show, reset (checked against Kafka's own
ConsumerGroupCommand), seek to a time, replay; classic and KIP-848 groups."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from conftest import explain, run_child
from kafkabench.cluster.admin import create_topic
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.experiments import offsets  # the offset commands and the replay experiment

ROOT = Path(__file__).parent.parent
# A fixed time, so record timestamps and reset times are exact. Recent: retention (7 days by
# default) deletes only closed segments, but a record that old would still look odd.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
BASE_MS = int(BASE.timestamp() * 1000)


def _topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"offsets-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, partitions, 1)
    return name


def _group() -> str:
    return f"offsets-g-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, stamps: dict[int, list[int]]) -> None:
    """Records with these timestamps (ms) on these partitions, in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for partition, times in stamps.items():
        for ts in times:
            producer.produce(topic, b"x", partition=partition, timestamp=ts)
    assert producer.flush(15) == 0


def _timed_topic(bootstrap: str) -> tuple[str, dict[int, list[int]]]:
    """3 partitions of 10 records: 0 and 1 one second apart from BASE, 2 all within BASE's
    first second (so a later time finds no record there: Kafka then goes to the log end)."""
    topic = _topic(bootstrap)
    stamps = {0: [BASE_MS + j * 1000 for j in range(10)], 1: [BASE_MS + 500 + j * 1000 for j in range(10)],
              2: [BASE_MS + j * 10 for j in range(10)]}
    _produce(bootstrap, topic, stamps)
    return topic, stamps


def _consumer(bootstrap: str, group: str, protocol: str = "classic", **extra) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "group.protocol": protocol, **extra})


def _consume(consumer: Consumer, topic: str, n: int, timeout_s: float = 30) -> None:
    """Subscribe, read `n` records, commit them."""
    consumer.subscribe([topic])
    got, deadline = 0, time.monotonic() + timeout_s
    while got < n:
        assert time.monotonic() < deadline, f"only {got} of {n} records within {timeout_s} s"
        msg = consumer.poll(0.5)
        got += msg is not None and msg.error() is None
    consumer.commit(asynchronous=False)


def _commit(bootstrap: str, group: str, positions: dict[tuple[str, int], int]) -> None:
    """Committed offsets for a group without members (AlterConsumerGroupOffsets)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in positions.items()])
    admin.alter_consumer_group_offsets([request], request_timeout=10)[group].result(timeout=15)


def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)[group].result(timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


def _offsets_for_times(bootstrap: str, topic: str, partitions: int, ms: int) -> dict[int, int]:
    """Consumer.offsets_for_times, with Kafka's rule: no record at or after -> the log end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": _group()})
    try:
        found = c.offsets_for_times([TopicPartition(topic, p, ms) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset if tp.offset >= 0 else c.get_watermark_offsets(
            TopicPartition(topic, tp.partition), timeout=10)[1] for tp in found}
    finally:
        c.close()


def _kafka_tool(bootstrap: str, *args: str) -> dict[int, int]:
    """Kafka's ConsumerGroupCommand; {partition: the offset column} of its table: CURRENT-OFFSET
    of --describe, NEW-OFFSET of --reset-offsets."""
    from kafkabench.cluster.install import install_kafka

    proc = run_child(install_kafka(quiet=True).java_command(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap,
        *args, heap="256m"), timeout=90)
    assert proc.returncode == 0, explain(proc)
    lines = proc.stdout.splitlines()
    header = next(line.split() for line in lines if line.startswith("GROUP "))
    column = header.index("NEW-OFFSET" if "NEW-OFFSET" in header else "CURRENT-OFFSET")
    group = args[args.index("--group") + 1]
    rows = [line.split() for line in lines if line.startswith(group + " ")]
    assert rows, explain(proc)
    return {int(r[2]): int(r[column]) for r in rows}


def _cli(*args: str, timeout: float = 60):
    """`python -m kafkabench ARGS` in a child process (as tests/test_cli.py runs it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_child([sys.executable, "-m", "kafkabench", *args], timeout=timeout, env=env)


def test_reset_to_datetime_lands_where_offsets_for_times_says_and_kafka_agrees(bootstrap):
    topic, stamps = _timed_topic(bootstrap)
    group = _group()
    consumer = _consumer(bootstrap, group)
    _consume(consumer, topic, 30)
    consumer.close()
    when = BASE + timedelta(milliseconds=4700)  # between records: 0 -> offset 5, 1 -> 5, 2 -> end
    iso = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    plan = offsets.plan_reset(group, {"to_datetime": iso}, bootstrap=bootstrap)
    ours = dict(zip(plan["partition"], plan["new"]))
    kafka_plan = _kafka_tool(bootstrap, "--reset-offsets", "--group", group, "--topic", topic,
                             "--to-datetime", iso, "--dry-run")
    assert ours == kafka_plan == {0: 5, 1: 5, 2: 10}

    offsets.reset(group, {"to_datetime": iso}, bootstrap=bootstrap, execute=True)
    expected = _offsets_for_times(bootstrap, topic, 3, int(when.timestamp() * 1000))
    shown = offsets.show(group, bootstrap=bootstrap)
    assert dict(zip(shown["partition"], shown["committed"])) == expected
    assert _kafka_tool(bootstrap, "--describe", "--group", group) == expected
    assert list(shown["lag"]) == [5, 5, 0] and set(shown["state"]) == {"Empty"}
    assert list(shown["member"]) == ["", "", ""]

    # A time after every record: the log end everywhere, as Kafka does.
    plan = offsets.plan_reset(group, {"to_datetime": BASE + timedelta(minutes=5)}, bootstrap=bootstrap)
    assert list(plan["new"]) == list(plan["log_end"]) == [10, 10, 10]


def test_dry_run_changes_nothing_and_the_cli_prints_the_plan(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    group = _group()
    _commit(bootstrap, group, {(topic, p): 8 for p in range(3)})
    before = _committed(bootstrap, group)

    plan = offsets.reset(group, "to_earliest", bootstrap=bootstrap)
    assert list(plan["new"]) == [0, 0, 0] and plan.attrs["executed"] is False
    result = _cli("offsets", "reset", "--bootstrap-server", bootstrap, "--group", group,
                  "--to-latest", "--topic", f"{topic}:1")
    assert result.returncode == 0, explain(result)
    assert re.search(r"^\s*GROUP\s+TOPIC\s+PARTITION\s+CURRENT-OFFSET\s+NEW-OFFSET\s*$", result.stdout, re.M)
    assert re.search(rf"^\s*{group}\s+{topic}\s+1\s+8\s+10\s*$", result.stdout, re.M), explain(result)
    assert "nothing changed" in result.stdout and "--execute" in result.stdout, explain(result)
    assert _committed(bootstrap, group) == before

    # --to-offset 0 is a value, not a missing option (0 == False).
    result = _cli("offsets", "reset", "--bootstrap-server", bootstrap, "--group", group,
                  "--to-offset", "0", "--json")
    assert result.returncode == 0, explain(result)
    assert [p["new"] for p in json.loads(result.stdout)["partitions"]] == [0, 0, 0], explain(result)
    assert "nothing changed" in result.stderr, explain(result)

    result = _cli("offsets", "reset", "--bootstrap-server", bootstrap, "--group", group,
                  "--to-latest", "--topic", f"{topic}:1", "--execute")
    assert result.returncode == 0, explain(result)
    assert _committed(bootstrap, group) == {**before, (topic, 1): 10}
    result = _cli("offsets", "show", "--bootstrap-server", bootstrap, "--group", group)
    assert result.returncode == 0, explain(result)
    assert re.search(rf"^\s*{group}\s+{topic}\s+0\s+8\s+0\s+10\s+2\s", result.stdout, re.M), explain(result)


def test_reset_of_a_group_with_an_active_member_is_refused(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    group = _group()
    consumer = _consumer(bootstrap, group)
    _consume(consumer, topic, 30)
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [consumer.poll(0.2) for _ in iter(stop.is_set, True)])
    poller.start()
    try:
        before = _committed(bootstrap, group)
        shown = offsets.show(group, bootstrap=bootstrap)
        assert set(shown["state"]) == {"Stable"} and (shown["client_id"] == "rdkafka").all()
        with pytest.raises(ConfigError, match=rf"group '{group}' has 1 active member.*stop them first"):
            offsets.reset(group, "to_earliest", bootstrap=bootstrap, execute=True)
        # The dry run still shows the plan.
        assert list(offsets.reset(group, "to_earliest", bootstrap=bootstrap)["new"]) == [0, 0, 0]
        assert _committed(bootstrap, group) == before
    finally:
        stop.set()
        poller.join(10)
        consumer.close()


def test_shift_by_and_to_offset_clamp_to_the_log(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    group = _group()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, 0, 3)
    admin.delete_records([tp], request_timeout=10)[tp].result(timeout=15)  # log start 3 on partition 0
    _commit(bootstrap, group, {(topic, 0): 6, (topic, 1): 6, (topic, 2): 6})

    def new(spec, topics=None):
        return list(offsets.plan_reset(group, spec, topics=topics, bootstrap=bootstrap)["new"])

    assert new({"shift_by": -2}) == [4, 4, 4]
    assert new({"shift_by": -5}) == [3, 1, 1]
    assert new({"shift_by": 100}) == [10, 10, 10]
    assert new({"to_offset": 0}) == [3, 0, 0]
    assert new({"to_offset": 99}) == [10, 10, 10]
    assert new("to_earliest") == [3, 0, 0]
    assert new("to_latest", topics=[f"{topic}:0,2"]) == [10, 10]
    plan = offsets.reset(group, {"shift_by": -100}, bootstrap=bootstrap, topics=[topic], execute=True)
    assert plan.attrs["executed"] is True
    assert _committed(bootstrap, group) == {(topic, 0): 3, (topic, 1): 0, (topic, 2): 0}


def test_by_duration_goes_back_from_now(bootstrap):
    topic = _topic(bootstrap, 1)
    now = int(time.time() * 1000)
    # Records 10 s apart, from 600 s to 310 s ago: 415 s ago lies between two of them.
    _produce(bootstrap, topic, {0: [now - 600_000 + j * 10_000 for j in range(30)]})
    group = _group()
    _commit(bootstrap, group, {(topic, 0): 30})
    plan = offsets.plan_reset(group, {"by_duration": "6m55s"}, bootstrap=bootstrap)
    assert list(plan["new"]) == [19]
    assert plan.attrs["timestamp_ms"] == pytest.approx(now - 415_000, abs=30_000)


def test_bad_input_is_a_config_error_naming_it(bootstrap):
    with pytest.raises(ConfigError, match=r"'2026-03-01T12:00:00' has no time zone.*\+00:00.*Z"):
        offsets.parse_spec({"to_datetime": "2026-03-01T12:00:00"})
    with pytest.raises(ConfigError, match="exactly one of.*got shift_by, to_offset"):
        offsets.parse_spec({"shift_by": 1, "to_offset": 2})
    with pytest.raises(ConfigError, match="'to_middle' is unknown"):
        offsets.parse_spec("to_middle")
    with pytest.raises(ConfigError, match="shift_by 'ten'"):
        offsets.parse_spec({"shift_by": "ten"})
    with pytest.raises(ConfigError, match="topic 'orders:x'"):
        offsets.parse_topics(["orders:x"])
    assert offsets.parse_topics(["a", "b:1", "b:0,2"]) == {"a": None, "b": (0, 1, 2)}

    topic, _ = _timed_topic(bootstrap)
    other = _topic(bootstrap, 1)
    group = _group()
    _commit(bootstrap, group, {(topic, 0): 1})
    with pytest.raises(ConfigError, match=rf"does not consume topic '{other}'.*its topics: {topic}"):
        offsets.plan_reset(group, "to_earliest", topics=[other], bootstrap=bootstrap)
    with pytest.raises(ConfigError, match=rf"topic '{topic}' has no partition 7"):
        offsets.plan_reset(group, "to_earliest", topics=[f"{topic}:7"], bootstrap=bootstrap)
    with pytest.raises(ConfigError, match=rf"no committed offset on {topic}:1 to shift from"):
        offsets.plan_reset(group, {"shift_by": 1}, topics=[topic], bootstrap=bootstrap)
    missing = _group()
    with pytest.raises(ConfigError, match=rf"consumer group '{missing}' is unknown.*no committed offsets and no members"):
        offsets.show(missing, bootstrap=bootstrap)
    with pytest.raises(ClusterError, match="cannot reach Kafka at '127.0.0.1:1'"):
        offsets.show(group, bootstrap="127.0.0.1:1", timeout_s=1)

    result = _cli("offsets", "reset", "--bootstrap-server", bootstrap, "--group", group,
                  "--to-datetime", "2026-03-01T12:00:00")
    assert result.returncode == 2, explain(result)
    assert "--to-datetime '2026-03-01T12:00:00' has no time zone" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_seek_to_timestamp_moves_each_assigned_partition(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": _group(), "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        consumer.poll(1.0)  # starts the fetchers: librdkafka seeks only partitions it fetches
        when = BASE + timedelta(milliseconds=2600)  # 0: +3000 is offset 3, 1: +3500 too, 2: none
        targets = offsets.seek_to_timestamp(consumer, when.isoformat())
        assert {tp.partition: tp.offset for tp in targets} == {0: 3, 1: 3, 2: -1}
        first: dict[int, int] = {}
        deadline = time.monotonic() + 15
        while len(first) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
        assert first == {0: 3, 1: 3}
    finally:
        consumer.close()
    with pytest.raises(ConfigError, match="has no time zone"):
        offsets.seek_to_timestamp(consumer, "2026-03-01T12:00:00")


def test_replay_reads_exactly_the_lag_the_reset_made(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    group = _group()
    _commit(bootstrap, group, {(topic, p): 10 for p in range(3)})
    out = offsets.replay(group, topic, to_datetime=BASE + timedelta(milliseconds=6700), bootstrap=bootstrap,
                         timeout_s=20)
    # Partitions 0 and 1 back to offset 7 (3 records each), partition 2 stays at its end.
    assert out["lag_before"] == 6 and out["messages"] == 6 and out["lag_after"] == 0, out
    assert out["seconds"] > 0 and out["rate"] > 0, out
    assert _committed(bootstrap, group) == {(topic, p): 10 for p in range(3)}
    with pytest.raises(ConfigError, match="exactly one of to_datetime and by_duration"):
        offsets.replay(group, topic, bootstrap=bootstrap)


def test_kip848_consumer_group_shows_and_resets_once_it_has_left(bootstrap):
    topic, _ = _timed_topic(bootstrap)
    group = _group()
    try:
        consumer = _consumer(bootstrap, group, protocol="consumer")
        _consume(consumer, topic, 30)
    except KafkaException as exc:
        pytest.skip(f"librdkafka refused group.protocol=consumer: {exc}")
    try:
        shown = offsets.show(group, bootstrap=bootstrap)
        assert shown.attrs["protocol"] == "consumer" and shown.attrs["members"] == 1
        assert list(shown["committed"]) == [10, 10, 10] and set(shown["state"]) == {"Stable"}
        assert (shown["member"] != "").all() and (shown["client_id"] == "rdkafka").all()
        with pytest.raises(ConfigError, match="1 active member.*stop them first"):
            offsets.reset(group, "to_earliest", bootstrap=bootstrap, execute=True)
    finally:
        consumer.close()
    offsets.reset(group, {"to_datetime": BASE + timedelta(milliseconds=1700)}, bootstrap=bootstrap,
                  execute=True)
    shown = offsets.show(group, bootstrap=bootstrap)
    assert list(shown["committed"]) == [2, 2, 10] and set(shown["state"]) == {"Empty"}
    assert shown.attrs["protocol"] == "consumer"
