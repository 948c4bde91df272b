"""Tests for kafkabench.capacity: hand-computed formulas, sensitivity, measured inputs, errors."""

import dataclasses
import math

import pandas as pd
import pytest

from kafkabench.analysis.capacity import (
    CapacityInputs,
    CapacityPlan,
    NetworkNeed,
    StorageNeed,
    brokers_needed,
    network_needed,
    partitions_needed,
    per_partition_throughput,
    plan,
    rule_of_thumb_partitions,
    sensitivity,
    storage_needed,
)
from kafkabench.core.errors import ConfigError


def test_partitions_needed_hand_computed():
    # 100 / 20 = 5 (produce), 100 / 40 = 2.5 (consume), 3 consumers -> ceil(5) = 5
    assert partitions_needed(100, 20, 40, 3) == 5
    # 100 / 30 = 3.33.. (produce), 100 / 15 = 6.67 (consume) -> ceil(6.67) = 7
    assert partitions_needed(100, 30, 15, 3) == 7
    # 100 / 50 = 2, 100 / 50 = 2, 12 consumers -> 12
    assert partitions_needed(100, 50, 50, 12) == 12
    # 1.1 / 0.1 = 11.000000000000002 in floats; the answer is 11, not 12
    assert partitions_needed(1.1, 0.1, 1, 0) == 11
    # no load, no consumers: still one partition
    assert partitions_needed(0, 10, 10, 0) == 1


def test_rule_of_thumb_hand_computed():
    assert rule_of_thumb_partitions(95, 4) == 10  # max(ceil(95 / 10) = 10, 4)
    assert rule_of_thumb_partitions(95, 24) == 24  # max(10, 24)
    assert rule_of_thumb_partitions(100, 0) == 10  # 100 / 10 = 10 exactly
    assert rule_of_thumb_partitions(0, 0) == 1


def test_storage_needed_hand_computed():
    # 500 GB/day x 7 days x RF 3 = 10500 GB raw; / 0.7 = 15000 GB; / 5 brokers = 3000 GB
    need = storage_needed(500, 7, 3, 5, utilisation_target=0.7)
    assert need.raw_gb == 10500
    assert need.total_gb == pytest.approx(15000)
    assert need.per_broker_gb == pytest.approx(3000)
    # full utilisation: no headroom; 10 x 1 x 1 / 1 = 10 GB on 2 brokers = 5 GB each
    assert storage_needed(10, 1, 1, 2, utilisation_target=1.0) == StorageNeed(10, 10, 5)


def test_network_needed_hand_computed():
    # 100 MB/s in, RF 3: replication 100 x 2 = 200; fan-out 2: consumers 200; egress 400;
    # into brokers: 100 + 200 = 300
    assert network_needed(100, 3, 2) == NetworkNeed(
        ingress_mb_s=100,
        replication_mb_s=200,
        consumer_egress_mb_s=200,
        egress_mb_s=400,
        cluster_in_mb_s=300,
    )
    # RF 1, nobody reads: no egress at all
    assert network_needed(50, 1, 0).egress_mb_s == 0


def test_brokers_needed_each_constraint_can_bind():
    network = network_needed(100, 3, 2)  # egress 400, cluster in 300
    # storage: 15000 / 2000 = 7.5 -> 8; network: 400 / (1250 x 0.7 = 875) = 0.46 -> 1;
    # partitions: 100 x 3 / 4000 = 0.075 -> 1; replication 3 -> 8 brokers, storage binds
    need = brokers_needed(
        storage_needed(500, 7, 3, 1), network, 100, 3,
        broker_storage_gb=2000, broker_network_mb_s=1250,
    )
    assert (need.brokers, need.for_storage, need.for_network, need.for_partitions) == (8, 8, 1, 1)
    assert need.bottleneck == "storage"
    # network: 400 / (100 x 0.5 = 50) = 8; storage 15000 / 1e6 -> 1
    need = brokers_needed(
        storage_needed(500, 7, 3, 1), network, 100, 3,
        broker_storage_gb=1e6, broker_network_mb_s=100, utilisation_target=0.5,
    )
    assert (need.brokers, need.for_network, need.bottleneck) == (8, 8, "network")
    # partitions: 10000 x 3 / 4000 = 7.5 -> 8
    need = brokers_needed(
        storage_needed(1, 1, 3, 1), network, 10_000, 3,
        broker_storage_gb=1e6, broker_network_mb_s=1e6,
    )
    assert (need.brokers, need.for_partitions, need.bottleneck) == (8, 8, "partitions")
    # nothing else binds: RF 3 needs 3 brokers
    need = brokers_needed(
        storage_needed(1, 1, 3, 1), network_needed(1, 3, 1), 1, 3,
        broker_storage_gb=1e6, broker_network_mb_s=1e6,
    )
    assert (need.brokers, need.bottleneck) == (3, "replication")


def test_plan_hand_computed():
    inputs = CapacityInputs(
        target_mb_s=100,
        produce_mb_s_per_partition=20,
        consume_mb_s_per_partition=40,
        consumers=8,
        retention_days=7,
        replication_factor=3,
        consumer_fanout=2,
        daily_ingress_gb=500,
        broker_storage_gb=2000,
        broker_network_mb_s=1250,
        utilisation_target=0.7,
    )
    result = plan(inputs)
    assert isinstance(result, CapacityPlan)
    # partitions: max(100/20 = 5, 100/40 = 2.5, 8) = 8; rule of thumb max(100/10 = 10, 8) = 10
    assert (result.partitions, result.rule_of_thumb_partitions) == (8, 10)
    # storage 500 x 7 x 3 / 0.7 = 15000 -> 8 brokers -> 1875 GB each
    assert result.brokers.brokers == 8
    assert result.storage.per_broker_gb == pytest.approx(1875)
    assert result.network.egress_mb_s == 400
    # 8 partitions x RF 3 / 8 brokers = 3 replicas per broker
    assert result.partitions_per_broker == 3
    row = result.as_dict()
    assert row["storage_total_gb"] == pytest.approx(15000)
    assert row["network_egress_mb_s"] == 400
    assert row["brokers"] == 8 and row["brokers_bottleneck"] == "storage"
    assert all(not isinstance(v, (dict, list)) for v in row.values())


def test_plan_derives_daily_ingress_from_target():
    # 10 MB/s x 86400 s = 864000 MB = 864 GB per day
    inputs = CapacityInputs(
        target_mb_s=10, produce_mb_s_per_partition=5, consume_mb_s_per_partition=5
    )
    assert inputs.effective_daily_ingress_gb == 864
    assert plan(inputs).daily_ingress_gb == 864


BASE = CapacityInputs(
    target_mb_s=200, produce_mb_s_per_partition=20, consume_mb_s_per_partition=25, consumers=6,
    retention_days=3, daily_ingress_gb=4000, broker_storage_gb=4000, broker_network_mb_s=500,
)


def test_sensitivity_shape():
    table = sensitivity(BASE)
    varied = [f.name for f in dataclasses.fields(CapacityInputs)]
    assert len(table) == len(varied) * 5  # daily_ingress_gb is set, so every field varies
    assert list(table.columns[:3]) == ["input", "factor", "value"]
    assert set(plan(BASE).as_dict()) <= set(table.columns)
    assert table["input"].unique().tolist() == varied
    at_one = table[table["factor"] == 1.0]
    assert (at_one["brokers"] == plan(BASE).brokers.brokers).all()
    # without daily_ingress_gb that row group is skipped
    unset = dataclasses.replace(BASE, daily_ingress_gb=None)
    assert len(sensitivity(unset, factors=(0.5, 1.0))) == (len(varied) - 1) * 2


def test_sensitivity_monotonic():
    table = sensitivity(BASE)

    def outputs(name, column):
        return table[table["input"] == name].sort_values("factor")[column]

    assert outputs("retention_days", "storage_total_gb").is_monotonic_increasing
    assert outputs("daily_ingress_gb", "brokers").is_monotonic_increasing
    assert outputs("replication_factor", "network_egress_mb_s").is_monotonic_increasing
    assert outputs("target_mb_s", "partitions").is_monotonic_increasing
    assert outputs("consumers", "partitions").is_monotonic_increasing
    assert outputs("produce_mb_s_per_partition", "partitions").is_monotonic_decreasing
    assert outputs("broker_storage_gb", "brokers").is_monotonic_decreasing
    assert outputs("utilisation_target", "storage_total_gb").is_monotonic_decreasing
    # RF 3 x (0.5, 0.75, 1, 1.25, 1.5) rounds half up to 2, 2, 3, 4, 5; utilisation caps at 1
    assert outputs("replication_factor", "brokers_for_replication").tolist() == [2, 2, 3, 4, 5]
    assert table[table["input"] == "utilisation_target"]["value"].max() == 1.0


def test_per_partition_throughput_best_partition_count():
    results = pd.DataFrame(
        {
            "workload.partitions": [1, 1, 4, 4, 4, 8, 8],
            "publish_mb_s": [30, 32, 100, 120, 110, 100, 104],
            "consume_mb_s": [40, 40, 90, 90, 95, 150, None],
        }
    )
    got = per_partition_throughput(results)
    # publish medians: 1 -> 31, 4 -> 110, 8 -> 102; best is 4: 110 / 4 = 27.5 per partition
    assert (got.produce_partitions, got.produce_mb_s_per_partition) == (4, 27.5)
    # consume medians: 1 -> 40, 4 -> 90, 8 -> 150 (NaN skipped): 150 / 8 = 18.75
    assert (got.consume_partitions, got.consume_mb_s_per_partition) == (8, 18.75)
    assert got.runs == 7


def test_per_partition_throughput_errors_and_missing_consume():
    with pytest.raises(ConfigError, match="consume_mb_s"):
        per_partition_throughput(pd.DataFrame({"workload.partitions": [1], "publish_mb_s": [1]}))
    with pytest.raises(ConfigError, match="publish_mb_s > 0"):
        per_partition_throughput(
            pd.DataFrame({"workload.partitions": [2], "publish_mb_s": [0], "consume_mb_s": [0]})
        )
    got = per_partition_throughput(
        pd.DataFrame({"workload.partitions": [2], "publish_mb_s": [10], "consume_mb_s": [None]})
    )
    assert got.produce_mb_s_per_partition == 5 and math.isnan(got.consume_mb_s_per_partition)


@pytest.mark.parametrize(
    "call, param, value",
    [
        (lambda: partitions_needed(-1, 10, 10, 1), "target_mb_s", "-1"),
        (lambda: partitions_needed(10, 0, 10, 1), "produce_mb_s_per_partition", "0"),
        (lambda: partitions_needed(10, 10, math.nan, 1), "consume_mb_s_per_partition", "nan"),
        (lambda: partitions_needed(10, 10, 10, -2), "consumers", "-2"),
        (lambda: storage_needed(10, -1, 3, 3), "retention_days", "-1"),
        (lambda: storage_needed(10, 1, 0, 3), "replication_factor", "0"),
        (lambda: storage_needed(10, 1, 3, 0), "brokers", "0"),
        (lambda: storage_needed(10, 1, 3, 3, utilisation_target=0), "utilisation_target", "0"),
        (lambda: storage_needed(10, 1, 3, 3, utilisation_target=1.2), "utilisation_target", "1.2"),
        (lambda: network_needed(10, 3, -1), "consumer_fanout", "-1"),
        (lambda: network_needed(10, 2.5, 1), "replication_factor", "2.5"),
        (
            lambda: brokers_needed(
                storage_needed(1, 1, 1, 1), network_needed(1, 1, 1), 1, 1,
                broker_storage_gb=0, broker_network_mb_s=1,
            ),
            "broker_storage_gb",
            "0",
        ),
        (
            lambda: plan(dataclasses.replace(BASE, utilisation_target=-0.5)),
            "utilisation_target",
            "-0.5",
        ),
        (lambda: sensitivity(BASE, factors=(1.0, 0)), "factor", "0"),
    ],
)
def test_bad_inputs_name_parameter_and_value(call, param, value):
    with pytest.raises(ConfigError) as exc:
        call()
    assert param in str(exc.value) and value in str(exc.value)


def test_per_partition_throughput_keeps_4_significant_digits():
    # 04 printed 176.62524663 MB/s per partition: more digits than any measurement has.
    results = pd.DataFrame({"workload.partitions": [3], "publish_mb_s": [529.8757399],
                            "consume_mb_s": [1000.0 / 3 * 2]})
    got = per_partition_throughput(results)
    assert got.produce_mb_s_per_partition == 176.6 and got.consume_mb_s_per_partition == 222.2
    inputs = CapacityInputs(target_mb_s=100, produce_mb_s_per_partition=got.produce_mb_s_per_partition,
                            consume_mb_s_per_partition=got.consume_mb_s_per_partition)
    assert plan(inputs).partitions == 1
