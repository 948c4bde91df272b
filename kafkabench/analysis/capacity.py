"""Capacity planning: partitions, storage, network and brokers for a target load.

Pure functions over plain numbers, and `plan(CapacityInputs) -> CapacityPlan` that applies
them all. Units are in the names: `mb_s` (MB/s, 10**6 bytes), `gb` (10**9 bytes), `days`.
Per-partition throughputs should be measured on the target hardware with
`per_partition_throughput(load_results(...))`, not guessed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kafkabench.core.errors import ConfigError

__all__ = [
    "CapacityInputs",
    "CapacityPlan",
    "StorageNeed",
    "NetworkNeed",
    "BrokerNeed",
    "PartitionThroughput",
    "partitions_needed",
    "rule_of_thumb_partitions",
    "storage_needed",
    "network_needed",
    "brokers_needed",
    "plan",
    "sensitivity",
    "per_partition_throughput",
    "RULE_OF_THUMB_MB_S_PER_PARTITION",
]

#: The design source's rule of thumb: one partition per 10 MB/s.
RULE_OF_THUMB_MB_S_PER_PARTITION = 10.0
_SECONDS_PER_DAY = 86_400
_MB_PER_GB = 1_000


def _ceil(x: float) -> int:
    # 1.1 / 0.1 is 11.000000000000002 in floating point: round off such noise before ceil.
    return math.ceil(round(x, 9))


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return value


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _utilisation(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"utilisation_target must be in (0, 1], got {value!r}")
    return value


def partitions_needed(
    target_mb_s: float,
    produce_mb_s_per_partition: float,
    consume_mb_s_per_partition: float,
    consumers: int,
) -> int:
    """Partitions for a topic, per Confluent's "How to choose the number of partitions".

    `ceil(max(target / produce_per_partition, target / consume_per_partition, consumers))`:
    enough partitions for producers and for consumers to reach the target, and at least
    one per consumer of the largest group (extra consumers would sit idle).

    Args:
        target_mb_s: peak throughput the topic must carry.
        produce_mb_s_per_partition: measured produce throughput of one partition.
        consume_mb_s_per_partition: measured consume throughput of one partition.
        consumers: consumers in the largest consumer group.

    Returns:
        The partition count.

    Raises:
        ConfigError: a non-positive throughput or a negative consumer count.
    """
    _non_negative("target_mb_s", target_mb_s)
    _positive("produce_mb_s_per_partition", produce_mb_s_per_partition)
    _positive("consume_mb_s_per_partition", consume_mb_s_per_partition)
    _count("consumers", consumers, 0)
    return max(
        1,
        _ceil(
            max(
                target_mb_s / produce_mb_s_per_partition,
                target_mb_s / consume_mb_s_per_partition,
                consumers,
            )
        ),
    )


def rule_of_thumb_partitions(target_mb_s: float, consumers: int) -> int:
    """The design source's rule of thumb: `max(ceil(target_mb_s / 10), consumers)`.

    Args:
        target_mb_s: peak throughput the topic must carry.
        consumers: consumers in the largest consumer group.

    Returns:
        The partition count (at least 1).
    """
    _non_negative("target_mb_s", target_mb_s)
    _count("consumers", consumers, 0)
    return max(1, _ceil(target_mb_s / RULE_OF_THUMB_MB_S_PER_PARTITION), consumers)


@dataclass(frozen=True, slots=True)
class StorageNeed:
    """Disk needed for retained data.

    Attributes:
        raw_gb: retained bytes with replicas: daily ingress x retention days x RF.
        total_gb: `raw_gb / utilisation_target`: disk to provision, headroom included.
        per_broker_gb: `total_gb / brokers`.
    """

    raw_gb: float
    total_gb: float
    per_broker_gb: float


def storage_needed(
    daily_ingress_gb: float,
    retention_days: float,
    replication_factor: int,
    brokers: int,
    utilisation_target: float = 0.7,
) -> StorageNeed:
    """Storage = daily ingress x retention days x RF / utilisation target, spread over brokers.

    Ignores compression (measure it: ingress here is bytes on disk) and index and
    segment overheads (a few percent), and assumes partitions spread evenly.

    Args:
        daily_ingress_gb: bytes produced per day (one copy).
        retention_days: `retention.ms` in days.
        replication_factor: copies of each partition.
        brokers: brokers sharing the data.
        utilisation_target: fraction of each disk to fill, in (0, 1]; 0.6-0.7 is usual.

    Returns:
        Raw, provisioned total and per-broker GB.

    Raises:
        ConfigError: a bad value, named with the parameter.
    """
    _non_negative("daily_ingress_gb", daily_ingress_gb)
    _non_negative("retention_days", retention_days)
    _count("replication_factor", replication_factor, 1)
    _count("brokers", brokers, 1)
    _utilisation(utilisation_target)
    raw = daily_ingress_gb * retention_days * replication_factor
    total = raw / utilisation_target
    return StorageNeed(raw_gb=raw, total_gb=total, per_broker_gb=total / brokers)


@dataclass(frozen=True, slots=True)
class NetworkNeed:
    """Cluster-wide network traffic for a produce rate.

    Attributes:
        ingress_mb_s: producer traffic into the cluster (leaders).
        replication_mb_s: leader -> follower traffic, `ingress x (RF - 1)`; it leaves one
            broker and enters another, so it counts on both sides.
        consumer_egress_mb_s: traffic to consumers, `ingress x consumer fan-out`.
        egress_mb_s: all traffic out of brokers, `replication + consumer egress`.
        cluster_in_mb_s: all traffic into brokers, `ingress + replication`.
    """

    ingress_mb_s: float
    replication_mb_s: float
    consumer_egress_mb_s: float
    egress_mb_s: float
    cluster_in_mb_s: float


def network_needed(
    ingress_mb_s: float, replication_factor: int, consumer_fanout: float
) -> NetworkNeed:
    """Network egress = ingress x (RF - 1) + ingress x consumer fan-out.

    Args:
        ingress_mb_s: produce throughput (one copy).
        replication_factor: copies of each partition.
        consumer_fanout: how many times each message is read, i.e. the number of
            consumer groups reading the whole topic (0 = nobody reads).

    Returns:
        The traffic breakdown.

    Raises:
        ConfigError: a bad value, named with the parameter.
    """
    _non_negative("ingress_mb_s", ingress_mb_s)
    _count("replication_factor", replication_factor, 1)
    _non_negative("consumer_fanout", consumer_fanout)
    replication = ingress_mb_s * (replication_factor - 1)
    consumers = ingress_mb_s * consumer_fanout
    return NetworkNeed(
        ingress_mb_s=ingress_mb_s,
        replication_mb_s=replication,
        consumer_egress_mb_s=consumers,
        egress_mb_s=replication + consumers,
        cluster_in_mb_s=ingress_mb_s + replication,
    )


@dataclass(frozen=True, slots=True)
class BrokerNeed:
    """Brokers needed, per constraint.

    Attributes:
        brokers: the answer: the largest of the constraints below.
        for_storage: `ceil(storage total / (broker_storage_gb))` (headroom is in the total).
        for_network: `ceil(max(cluster in, egress) / (broker_network_mb_s x utilisation))`.
        for_partitions: `ceil(partitions x RF / max_partitions_per_broker)`.
        for_replication: `replication_factor` (each replica on its own broker).
        bottleneck: name of the binding constraint (`storage`, `network`, `partitions`,
            `replication`; the first of them on a tie).
    """

    brokers: int
    for_storage: int
    for_network: int
    for_partitions: int
    for_replication: int
    bottleneck: str


def brokers_needed(
    storage: StorageNeed,
    network: NetworkNeed,
    partitions: int,
    replication_factor: int,
    *,
    broker_storage_gb: float,
    broker_network_mb_s: float,
    max_partitions_per_broker: int = 4000,
    utilisation_target: float = 0.7,
) -> BrokerNeed:
    """Brokers = max(storage, network, partition-count and replication constraints).

    - storage: `ceil(storage.total_gb / broker_storage_gb)`; `total_gb` already holds
      the utilisation headroom.
    - network: NICs are full duplex, so the busier direction binds:
      `ceil(max(cluster_in_mb_s, egress_mb_s) / (broker_network_mb_s x utilisation_target))`.
      Assumes leaders and consumers spread evenly; consumers reading from followers
      (KIP-392) do not change the total.
    - partitions: `ceil(partitions x RF / max_partitions_per_broker)`, counting replicas;
      4000 replicas per broker is Confluent's guidance ("Apache Kafka supports 200K
      partitions per cluster", KIP-578 era; KRaft raises the cluster limit, not the
      per-broker one).
    - replication: at least `replication_factor` brokers.

    Args:
        storage: from `storage_needed` (its `per_broker_gb` is ignored).
        network: from `network_needed`.
        partitions: partitions of all planned topics.
        replication_factor: copies of each partition.
        broker_storage_gb: usable disk per broker.
        broker_network_mb_s: NIC bandwidth per broker, each direction (10 Gbit/s = 1250).
        max_partitions_per_broker: partition replicas one broker should host.
        utilisation_target: fraction of each NIC to use, in (0, 1].

    Returns:
        The count per constraint and the binding one.

    Raises:
        ConfigError: a bad value, named with the parameter.
    """
    _positive("broker_storage_gb", broker_storage_gb)
    _positive("broker_network_mb_s", broker_network_mb_s)
    _count("max_partitions_per_broker", max_partitions_per_broker, 1)
    _count("partitions", partitions, 0)
    _count("replication_factor", replication_factor, 1)
    _utilisation(utilisation_target)
    need = {
        "storage": _ceil(storage.total_gb / broker_storage_gb),
        "network": _ceil(
            max(network.cluster_in_mb_s, network.egress_mb_s)
            / (broker_network_mb_s * utilisation_target)
        ),
        "partitions": _ceil(partitions * replication_factor / max_partitions_per_broker),
        "replication": replication_factor,
    }
    bottleneck = max(need, key=need.__getitem__)
    return BrokerNeed(
        brokers=need[bottleneck],
        for_storage=need["storage"],
        for_network=need["network"],
        for_partitions=need["partitions"],
        for_replication=need["replication"],
        bottleneck=bottleneck,
    )


@dataclass(frozen=True, slots=True)
class CapacityInputs:
    """Everything `plan` needs.

    Attributes:
        target_mb_s: peak produce throughput (one copy).
        produce_mb_s_per_partition: measured produce throughput of one partition.
        consume_mb_s_per_partition: measured consume throughput of one partition.
        consumers: consumers in the largest consumer group.
        retention_days: how long data is kept.
        replication_factor: copies of each partition.
        consumer_fanout: consumer groups reading the whole stream.
        daily_ingress_gb: bytes produced per day; None = `target_mb_s` all day long
            (`target_mb_s x 86400 / 1000`), an upper bound when the target is a peak.
        broker_storage_gb: usable disk per broker.
        broker_network_mb_s: NIC bandwidth per broker, each direction (10 Gbit/s = 1250).
        max_partitions_per_broker: partition replicas one broker should host.
        utilisation_target: fraction of disk and NIC to use, in (0, 1].
    """

    target_mb_s: float
    produce_mb_s_per_partition: float
    consume_mb_s_per_partition: float
    consumers: int = 1
    retention_days: float = 7.0
    replication_factor: int = 3
    consumer_fanout: float = 1.0
    daily_ingress_gb: float | None = None
    broker_storage_gb: float = 2000.0
    broker_network_mb_s: float = 1250.0
    max_partitions_per_broker: int = 4000
    utilisation_target: float = 0.7

    @property
    def effective_daily_ingress_gb(self) -> float:
        """`daily_ingress_gb`, or `target_mb_s` sustained for a day."""
        if self.daily_ingress_gb is not None:
            return self.daily_ingress_gb
        return self.target_mb_s * _SECONDS_PER_DAY / _MB_PER_GB


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    """What `plan` computed; `as_dict()` is one flat row.

    Attributes:
        partitions: from `partitions_needed`.
        rule_of_thumb_partitions: from `rule_of_thumb_partitions`, for comparison.
        daily_ingress_gb: the daily ingress used.
        storage: from `storage_needed` with `brokers`.
        network: from `network_needed`.
        brokers: from `brokers_needed`.
    """

    partitions: int
    rule_of_thumb_partitions: int
    daily_ingress_gb: float
    storage: StorageNeed
    network: NetworkNeed
    brokers: BrokerNeed

    @property
    def partitions_per_broker(self) -> float:
        """Partition replicas per broker: `partitions x RF / brokers`."""
        return self.partitions * self.brokers.for_replication / self.brokers.brokers

    def as_dict(self) -> dict[str, Any]:
        """Flat dict: `partitions`, `storage_total_gb`, `network_egress_mb_s`, `brokers`, ..."""
        row: dict[str, Any] = {
            "partitions": self.partitions,
            "rule_of_thumb_partitions": self.rule_of_thumb_partitions,
            "daily_ingress_gb": self.daily_ingress_gb,
        }
        for prefix, part in (("storage", self.storage), ("network", self.network)):
            for field in dataclasses.fields(part):
                row[f"{prefix}_{field.name}"] = getattr(part, field.name)
        row["brokers"] = self.brokers.brokers
        for field in dataclasses.fields(self.brokers):
            if field.name != "brokers":
                row[f"brokers_{field.name}"] = getattr(self.brokers, field.name)
        row["partitions_per_broker"] = self.partitions_per_broker
        return row


def plan(inputs: CapacityInputs) -> CapacityPlan:
    """Partitions, storage, network and brokers for `inputs`.

    Storage per broker is computed for the planned broker count, so it is the disk each
    broker will actually fill.

    Args:
        inputs: the planning inputs.

    Returns:
        The plan.

    Raises:
        ConfigError: a bad input, named with its value.
    """
    if inputs.daily_ingress_gb is None:
        _non_negative("target_mb_s", inputs.target_mb_s)
    partitions = partitions_needed(
        inputs.target_mb_s,
        inputs.produce_mb_s_per_partition,
        inputs.consume_mb_s_per_partition,
        inputs.consumers,
    )
    daily = inputs.effective_daily_ingress_gb
    storage = storage_needed(
        daily, inputs.retention_days, inputs.replication_factor, 1, inputs.utilisation_target
    )
    network = network_needed(
        inputs.target_mb_s, inputs.replication_factor, inputs.consumer_fanout
    )
    brokers = brokers_needed(
        storage,
        network,
        partitions,
        inputs.replication_factor,
        broker_storage_gb=inputs.broker_storage_gb,
        broker_network_mb_s=inputs.broker_network_mb_s,
        max_partitions_per_broker=inputs.max_partitions_per_broker,
        utilisation_target=inputs.utilisation_target,
    )
    return CapacityPlan(
        partitions=partitions,
        rule_of_thumb_partitions=rule_of_thumb_partitions(inputs.target_mb_s, inputs.consumers),
        daily_ingress_gb=daily,
        storage=dataclasses.replace(storage, per_broker_gb=storage.total_gb / brokers.brokers),
        network=network,
        brokers=brokers,
    )


_INT_INPUTS = frozenset({"consumers", "replication_factor", "max_partitions_per_broker"})


def sensitivity(
    inputs: CapacityInputs, factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
) -> pd.DataFrame:
    """Vary each input by each factor, one at a time, and plan again.

    Integer inputs are rounded (at least 1); `utilisation_target` is capped at 1.0;
    `daily_ingress_gb` is varied only when it is set.

    Args:
        inputs: the base inputs.
        factors: multipliers applied to each input in turn.

    Returns:
        DataFrame with columns `input, factor, value` and the `CapacityPlan.as_dict()`
        columns; one row per (varied input, factor), in field order.

    Raises:
        ConfigError: a bad base input or a non-positive factor.
    """
    for factor in factors:
        _positive("factor", factor)
    rows = []
    for field in dataclasses.fields(CapacityInputs):
        base = getattr(inputs, field.name)
        if base is None:
            continue
        for factor in factors:
            value: float = base * factor
            if field.name in _INT_INPUTS:
                value = max(1, int(value + 0.5))  # half up: round() would take 4.5 to 4
            elif field.name == "utilisation_target":
                value = min(1.0, value)
            varied = dataclasses.replace(inputs, **{field.name: value})
            rows.append(
                {"input": field.name, "factor": factor, "value": value, **plan(varied).as_dict()}
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True, slots=True)
class PartitionThroughput:
    """Per-partition throughput derived from measured runs.

    Attributes:
        produce_mb_s_per_partition: median `publish_mb_s` at `produce_partitions` / that count
            (both figures to 4 significant digits).
        consume_mb_s_per_partition: median `consume_mb_s` at `consume_partitions` / that count
            (NaN when no run consumed).
        produce_partitions: the partition count with the highest median publish MB/s.
        consume_partitions: the partition count with the highest median consume MB/s.
        runs: rows used.
    """

    produce_mb_s_per_partition: float
    consume_mb_s_per_partition: float
    produce_partitions: int
    consume_partitions: int
    runs: int


def per_partition_throughput(
    results: pd.DataFrame, *, partitions_column: str = "workload.partitions"
) -> PartitionThroughput:
    """Produce and consume MB/s per partition from measured results (`load_results()` rows).

    Runs are grouped by partition count and each group's median `publish_mb_s` taken;
    the group with the highest median is the best partition count, and its median divided
    by that count is the produce figure. The consume figure is found the same way from
    `consume_mb_s`, independently. Using the best total (not the best ratio, which a
    1-partition run always wins) keeps the figure honest when the cluster or the client
    saturates: it is what one partition delivers when the topic runs at full speed.
    Runs should be max-rate runs (`target_rate` 0); rate-limited runs measure the limit.
    The figures are rounded to 4 significant digits: a measurement is not more precise, and
    a plan (and the planner's controls) then show 176.6 MB/s, not 176.62524663.

    Args:
        results: one row per run with `publish_mb_s`, `consume_mb_s` and the partition
            count per topic.
        partitions_column: the partition count column.

    Returns:
        The per-partition figures and the partition counts they came from.

    Raises:
        ConfigError: missing columns, no usable rows, or no positive publish rate.
    """
    missing = [c for c in (partitions_column, "publish_mb_s", "consume_mb_s") if c not in results]
    if missing:
        raise ConfigError(f"results lack column(s) {missing!r}; have {list(results.columns)!r}")
    frame = results[[partitions_column, "publish_mb_s", "consume_mb_s"]].apply(
        pd.to_numeric, errors="coerce"
    )
    frame = frame[frame[partitions_column] >= 1]
    if frame.empty:
        raise ConfigError(f"results have no row with {partitions_column} >= 1")
    medians = frame.groupby(partitions_column).median()

    def best(column: str) -> tuple[float, int]:
        series = medians[column].dropna()
        series = series[series > 0]
        if series.empty:
            return math.nan, 0
        count = series.idxmax()
        return float(f"{series[count] / count:.4g}"), int(count)

    produce, produce_partitions = best("publish_mb_s")
    if produce_partitions == 0:
        raise ConfigError("results have no run with publish_mb_s > 0")
    consume, consume_partitions = best("consume_mb_s")
    return PartitionThroughput(
        produce_mb_s_per_partition=produce,
        consume_mb_s_per_partition=consume,
        produce_partitions=produce_partitions,
        consume_partitions=consume_partitions,
        runs=len(frame),
    )
