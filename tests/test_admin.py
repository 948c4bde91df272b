"""Topic and group administration: a dead cluster is a KafkabenchError without log spam; named
topics are described alone; consumer groups are listed."""

from __future__ import annotations

import socket
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from kafkabench.cluster import admin
from kafkabench.cluster.admin import (
    create_topic,
    delete_topics,
    describe_topic,
    list_consumer_groups,
    list_topics,
)
from kafkabench.core.errors import ClusterError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_a_cluster_error_without_librdkafka_on_stderr(capfd):
    dead = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError, match=f"cannot list topics at {dead}"):
        list_topics(dead, timeout_s=1.5)
    with pytest.raises(ClusterError, match=f"cannot describe topic 'x' at {dead}"):
        describe_topic(dead, "x", timeout_s=1.5)
    # librdkafka prints "Connection refused" lines to stderr itself unless given a logger.
    assert "[thrd:" not in capfd.readouterr().err



class _NoClusterMetadata(AdminClient):
    """An AdminClient that fails the test on a Metadata request for every topic of the cluster
    (list_topics without a topic) and on DescribeTopics, and counts the requests for one topic
    by name."""

    named: list[str] = []

    def describe_topics(self, *args, **kwargs):
        # DescribeTopics goes to the controller the client knows: with that broker just killed
        # (tests/test_cluster.py::test_leader_kill_failover_and_isr_rejoin, when the leader was
        # also it) every call timed out "waiting for controller" and describe_topic raised.
        raise AssertionError("DescribeTopics: a Metadata request for the topic answers mid-failover")

    def list_topics(self, topic=None, *args, **kwargs):
        if topic is None:
            raise AssertionError(f"list_topics({args}, {kwargs}): the whole cluster's metadata")
        _NoClusterMetadata.named.append(topic)
        return super().list_topics(topic, *args, **kwargs)


def test_named_topics_are_described_alone(bootstrap, monkeypatch):
    # describe_topic asked for the metadata of every topic of the cluster before; now only
    # the named topic's (a Metadata request any broker answers; never auto-creating it).
    monkeypatch.setattr(admin, "AdminClient", _NoClusterMetadata)
    topic = f"admin-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=3, replication_factor=1)  # waits for leaders
    try:
        described = describe_topic(bootstrap, topic)
        assert set(_NoClusterMetadata.named) == {topic}
        assert list(described["partition"]) == [0, 1, 2]
        assert (described["leader"] >= 0).all() and all(isr for isr in described["isr"])
    finally:
        delete_topics(bootstrap, [topic])


def test_a_missing_topic_is_named_and_not_created(bootstrap):
    topic = f"admin-missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClusterError, match=f"topic '{topic}' does not exist at {bootstrap}"):
        describe_topic(bootstrap, topic, timeout_s=5)
    assert topic not in list_topics(bootstrap)  # describing never auto-creates it


def test_list_consumer_groups_includes_a_group_with_committed_offsets(bootstrap):
    topic, group = f"admin-g-{uuid.uuid4().hex[:8]}", f"admin-group-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        assert group in list_consumer_groups(bootstrap, timeout_s=10)
    finally:
        consumer.close()
        delete_topics(bootstrap, [topic])


def test_listing_groups_of_an_unreachable_cluster_is_a_cluster_error():
    dead = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError, match=f"cannot list consumer groups at {dead}"):
        list_consumer_groups(dead, timeout_s=1.5)
