"""Topic administration on confluent-kafka's AdminClient: create, describe, delete.

`conf` arguments carry client security settings (TLS/SASL) for external clusters as
librdkafka keys; every call has a timeout, so a dead broker is an error within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kafkabench.cluster import librdkafka_logger
from kafkabench.errors import ClusterError

TIMEOUT_S = 30.0
NEW_TOPIC_GRACE_S = 5.0


def admin_client(bootstrap: str, conf: Mapping[str, Any] | None = None) -> AdminClient:
    """An AdminClient for `bootstrap` with extra librdkafka settings (security etc.).

    Its librdkafka log goes to `kafkabench.cluster.librdkafka_logger()` unless `conf` sets a
    `logger`: an AdminClient is never polled, so the lines are dropped, not printed.
    """
    return AdminClient({"logger": librdkafka_logger(), **(conf or {}), "bootstrap.servers": bootstrap})


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
        brokers = len(admin.list_topics(timeout=5).brokers)
    except KafkaException:
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
        md = admin.list_topics(topic=name, timeout=min(5.0, timeout_s))
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) >= partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise ClusterError(f"topic {name!r} has no leader for every partition after {timeout_s} s")


def describe_topic(bootstrap: str, name: str, *, conf: Mapping[str, Any] | None = None,
                   timeout_s: float = 10.0) -> pd.DataFrame:
    """Partitions of a topic with leader, replicas and in-sync replicas.

    Returns:
        DataFrame with columns topic, partition, leader, replicas, isr (lists of broker ids);
        leader -1 means the partition has no leader now.

    Raises:
        ClusterError: the topic does not exist or the cluster did not answer.
    """
    admin = admin_client(bootstrap, conf)
    # Brokers learn new topics from the controller one by one: a topic created a moment ago
    # through one broker may not be in another's metadata yet, so look again briefly.
    deadline = time.monotonic() + NEW_TOPIC_GRACE_S
    while True:
        try:
            # Metadata for all topics: asking for one by name auto-creates it on brokers
            # with auto.create.topics.enable=true (the default).
            md = admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise ClusterError(f"cannot describe topic {name!r} at {bootstrap}: {exc}") from exc
        t = md.topics.get(name)
        if (t is not None and t.error is None) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if t is None or t.error is not None:
        raise ClusterError(f"topic {name!r} not found at {bootstrap}"
                           + (f": {t.error.str()}" if t is not None and t.error else ""))
    rows = [{"topic": name, "partition": p.id, "leader": p.leader, "replicas": list(p.replicas),
             "isr": list(p.isrs)} for p in sorted(t.partitions.values(), key=lambda p: p.id)]
    return pd.DataFrame(rows, columns=["topic", "partition", "leader", "replicas", "isr"])


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
