"""Topic and group administration on confluent-kafka's AdminClient: create, describe, delete
topics, list consumer groups.

`conf` arguments carry client security settings (TLS/SASL) for external clusters as
librdkafka keys; every call has a timeout, so a dead broker is an error within seconds.
Lookups of named topics ask for those topics only (`describe_topics`), never for the metadata
of the whole cluster, which is large on a cluster with thousands of topics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kafkabench.core.errors import ClusterError
from kafkabench.core.log import librdkafka_logger

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
NEW_TOPIC_GRACE_S = 5.0


def admin_client(bootstrap: str, conf: Mapping[str, Any] | None = None) -> AdminClient:
    """An AdminClient for `bootstrap` with extra librdkafka settings (security etc.).

    Its librdkafka log goes to `kafkabench.cluster.librdkafka_logger()` unless `conf` sets a
    `logger`: an AdminClient is never polled, so the lines are dropped, not printed.
    """
    # allow.auto.create.topics off: a metadata request for one topic must never create it
    # (librdkafka's AdminClient is a producer, for which the default is on).
    return AdminClient({"logger": librdkafka_logger(), "allow.auto.create.topics": False,
                        **(conf or {}), "bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, replication_factor: int = 1,
                 config: Mapping[str, Any] | None = None, *, conf: Mapping[str, Any] | None = None,
                 exist_ok: bool = False, timeout_s: float = TIMEOUT_S) -> None:
    """Create a topic and wait until every partition has a leader.

    Args:
        bootstrap: bootstrap servers.
        name: topic name.
        partitions: number of partitions.
        replication_factor: copies of each partition.
        config: topic configs, e.g. {"min.insync.replicas": 2}.
        conf: extra client settings (security).
        exist_ok: do not fail when the topic exists already.
        timeout_s: how long to wait for creation and leaders.

    Raises:
        ClusterError: creation refused (the broker's reason is quoted) or timed out.
    """
    admin = admin_client(bootstrap, conf)
    topic = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                     config={k: str(v) for k, v in (config or {}).items()})
    future = admin.create_topics([topic], operation_timeout=timeout_s, request_timeout=timeout_s)[name]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0]
        if err.code() == KafkaError.INVALID_REPLICATION_FACTOR:
            raise ClusterError(_too_few_brokers(admin, bootstrap, name, replication_factor,
                                                err.str())) from exc
        if not (exist_ok and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise ClusterError(f"cannot create topic {name!r} (partitions={partitions}, "
                               f"replication_factor={replication_factor}): {err.str()}") from exc
    except TimeoutError as exc:
        raise ClusterError(f"creating topic {name!r} timed out after {timeout_s} s") from exc
    _wait_for_leaders(admin, name, partitions, timeout_s)


def _too_few_brokers(admin: AdminClient, bootstrap: str, name: str, replication_factor: int,
                     reason: str) -> str:
    """The error for a replication factor above the broker count, saying how to run anyway."""
    try:
        brokers = len(admin.describe_cluster(request_timeout=5).result(timeout=10).nodes)
    except (KafkaException, TimeoutError):
        brokers = None
    why = (f"the cluster at {bootstrap} has {brokers} broker(s)" if brokers and brokers < replication_factor
           else reason)
    return (f"cannot create topic {name!r} with replication_factor={replication_factor}: {why}. "
            "Lower the replication factor: `--set replication_factor=1` for a workload, "
            "`replicationFactor: 1` in an OMB driver YAML (a profile's wins over the workload's), "
            "`--replication-factor 1` for `kafkabench topic create`; or start 3 brokers: "
            "`kafkabench cluster down && kafkabench cluster up --brokers 3`")


def _wait_for_leaders(admin: AdminClient, name: str, partitions: int, timeout_s: float) -> None:
    # Creation returns once the controller accepted it; brokers learn the leaders a little later,
    # and a producer that asks too early gets UNKNOWN_TOPIC_OR_PART.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = describe_topics(admin, [name], min(5.0, timeout_s))[name]
        except ClusterError:
            found = None  # a slow answer: ask again
        # An error (not known to the broker asked yet) or a partition without a leader: again.
        if isinstance(found, list) and len(found) >= partitions and all(p.leader >= 0 for p in found):
            return
        time.sleep(0.1)
    raise ClusterError(f"topic {name!r} has no leader for every partition after {timeout_s} s")


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition's placement: leader (-1: none now), replicas and in-sync replicas."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def describe_topics(admin: AdminClient, names: Iterable[str], timeout_s: float
                    ) -> dict[str, list[PartitionInfo] | KafkaError]:
    """The partitions of only these topics, or each topic's error (UNKNOWN_TOPIC_OR_PART ...).

    One Metadata request per topic, for that topic only; any broker answers it. Not the
    Admin API's DescribeTopics: that goes to the controller librdkafka knows, and right
    after that broker died (a failover, exactly when users look) it timed out "waiting for
    controller" for every call, and clients destroyed with such a request pending aborted the
    process in librdkafka (assertion in rd_kafka_enq_once_del_source_return, seen with
    confluent-kafka 2.x on a 3-broker KRaft cluster). `admin_client` turns topic
    auto-creation off, so asking never creates a topic.

    Raises:
        ClusterError: a request was not answered within `timeout_s` (the reason only: the
            caller names the topic and the cluster).
    """
    return {name: _metadata_partitions(admin, name, timeout_s) for name in sorted(set(names))}


def _metadata_partitions(admin: AdminClient, name: str, timeout_s: float
                         ) -> list[PartitionInfo] | KafkaError:
    """One topic's partitions from a Metadata request (never creates it: see `admin_client`)."""
    try:
        t = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
    except KafkaException as exc:
        raise ClusterError(exc.args[0].str()) from exc
    if t is None:
        return KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    if t.error is not None:
        return t.error
    return [PartitionInfo(p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
            for p in sorted(t.partitions.values(), key=lambda p: p.id)]


def describe_topic(bootstrap: str, name: str, *, conf: Mapping[str, Any] | None = None,
                   timeout_s: float = 10.0) -> pd.DataFrame:
    """Partitions of a topic with leader, replicas and in-sync replicas.

    Only this topic's metadata is requested (see `describe_topics`); it is never auto-created.

    Args:
        bootstrap: bootstrap servers.
        name: the topic.
        conf: extra client settings (security).
        timeout_s: how long the cluster may take to answer.

    Returns:
        DataFrame with columns topic, partition, leader, replicas, isr (lists of broker ids);
        leader -1 means the partition has no leader now.

    Raises:
        ClusterError: the topic does not exist (named) or the cluster did not answer.
    """
    admin = admin_client(bootstrap, conf)
    # Brokers learn new topics from the controller one by one: a topic created a moment ago
    # through one broker may not be in another's metadata yet, so look again briefly.
    deadline = time.monotonic() + NEW_TOPIC_GRACE_S
    while True:
        try:
            found = describe_topics(admin, [name], timeout_s)[name]
        except ClusterError as exc:
            raise ClusterError(f"cannot describe topic {name!r} at {bootstrap}: {exc}") from None
        if not isinstance(found, KafkaError):
            break
        if found.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ClusterError(f"cannot describe topic {name!r} at {bootstrap}: {found.str()}")
        if time.monotonic() >= deadline:
            raise ClusterError(f"topic {name!r} does not exist at {bootstrap}; "
                               "`kafkabench topic list` shows the topics there")
        time.sleep(0.2)
    rows = [{"topic": name, "partition": p.partition, "leader": p.leader,
             "replicas": list(p.replicas), "isr": list(p.isr)} for p in found]
    return pd.DataFrame(rows, columns=["topic", "partition", "leader", "replicas", "isr"])


def list_consumer_groups(bootstrap: str, *, conf: Mapping[str, Any] | None = None,
                         timeout_s: float = 10.0) -> list[str]:
    """Ids of every consumer group of the cluster (ListGroups), in any state.

    Args:
        bootstrap: bootstrap servers.
        conf: extra client settings (security).
        timeout_s: how long the cluster may take to answer.

    Returns:
        Sorted group ids, empty groups (committed offsets, no members) included.

    Raises:
        ClusterError: the cluster did not answer, or a broker refused the listing.
    """
    admin = admin_client(bootstrap, conf)
    try:
        listing = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s + 1.0)
    except KafkaException as exc:
        raise ClusterError(f"cannot list consumer groups at {bootstrap}: {exc.args[0].str()}") from exc
    except TimeoutError as exc:
        raise ClusterError(f"cannot list consumer groups at {bootstrap}: no answer within "
                           f"{timeout_s} s") from exc
    if listing.errors:
        reasons = "; ".join(_text(e) for e in listing.errors)
        if not listing.valid:
            raise ClusterError(f"cannot list consumer groups at {bootstrap}: {reasons}")
        log.warning("some brokers of %s did not list their consumer groups: %s", bootstrap, reasons)
    return sorted(g.group_id for g in listing.valid)


def _text(error: Any) -> str:
    """A KafkaException or KafkaError as its message."""
    err = error.args[0] if isinstance(error, KafkaException) and error.args else error
    return err.str() if hasattr(err, "str") else str(err)


def list_topics(bootstrap: str, *, conf: Mapping[str, Any] | None = None,
                timeout_s: float = 10.0) -> list[str]:
    """Names of the topics on the cluster, internal ones excluded.

    Raises:
        ClusterError: the cluster did not answer within `timeout_s`.
    """
    try:
        md = admin_client(bootstrap, conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ClusterError(f"cannot list topics at {bootstrap}: {exc.args[0].str()}") from exc
    return sorted(t for t in md.topics if not t.startswith("__"))


def delete_topics(bootstrap: str, names: Iterable[str], *, conf: Mapping[str, Any] | None = None,
                  timeout_s: float = TIMEOUT_S, missing_ok: bool = True) -> None:
    """Delete topics, waiting for the deletion to be accepted.

    Raises:
        ClusterError: a deletion was refused (other than a missing topic with `missing_ok`).
    """
    names = list(names)
    if not names:
        return
    admin = admin_client(bootstrap, conf)  # must outlive its futures
    futures = admin.delete_topics(
        names, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if not (missing_ok and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise ClusterError(f"cannot delete topic {name!r}: {err.str()}") from exc
        except TimeoutError as exc:
            raise ClusterError(f"deleting topic {name!r} timed out after {timeout_s} s") from exc
