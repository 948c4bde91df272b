"""Tests for kafkabench.partitioning: hash vectors, strategies, analysis, real-client check."""

import math
import uuid
import zlib

import pandas as pd
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkabench.core.errors import ConfigError
from kafkabench.spec import partitioning
from kafkabench.spec.partitioning import (
    BUILTIN_STRATEGIES,
    KEY_KINDS,
    STRATEGIES,
    Partitioner,
    analyze,
    compare_strategies,
    crc32,
    fnv1a,
    get_strategy,
    java_murmur2,
    key_sample,
    keys_moved,
    murmur2,
)

# Apache Kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka src/rdfnv1a.c, unittest_fnv1a (values from Go's hash/fnv, as int32).
RDKAFKA_FNV1A = {
    b"kafka": 0xD33C4E1,
    b"giberish123456789": 0x77A58295,
    b"1234": 0x23BDD03,
    b"234": 0x2DEA3CD2,
    b"34": 0x740FA83E,
    b"4": 0x310CA263,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x65CBD69C,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 0x6E49C79A,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": 0x69EED356,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 0x6ABCC023,
    b"": 0x7EE3623B,
}

CUSTOM = ("fnv1a-rr", "priority")


# --- hash functions -------------------------------------------------------------------------


@pytest.mark.parametrize("key, expected", JAVA_MURMUR2.items())
def test_murmur2_matches_java_utils_murmur2(key, expected):
    assert java_murmur2(key) == expected
    assert murmur2(key) == expected & 0xFFFFFFFF


@pytest.mark.parametrize("key, expected", RDKAFKA_FNV1A.items())
def test_fnv1a_matches_librdkafka_unittest(key, expected):
    assert fnv1a(key) == expected


def test_fnv1a_takes_abs_not_mask():
    # b"kafka" hashes to a positive int32 already; find a key whose raw FNV-1a is negative:
    # abs() and `& 0x7fffffff` disagree on it, and librdkafka uses abs().
    raw = 0x811C9DC5
    for byte in b"a":
        raw = ((raw ^ byte) * 0x01000193) & 0xFFFFFFFF
    assert raw & 0x80000000  # FNV-1a(b"a") = 0xe40c292c is negative as int32
    assert fnv1a(b"a") == (1 << 32) - raw == 0x1BF3D6D4
    assert fnv1a(b"a") != raw & 0x7FFFFFFF


def test_crc32_is_the_standard_crc():
    assert crc32(b"123456789") == 0xCBF43926 == zlib.crc32(b"123456789")


# --- built-in models ------------------------------------------------------------------------


def test_builtin_attribute_is_the_librdkafka_partitioner_value():
    assert set(BUILTIN_STRATEGIES) == {
        "random", "consistent", "consistent_random",
        "murmur2", "murmur2_random", "fnv1a", "fnv1a_random",
    }
    for name in BUILTIN_STRATEGIES:
        assert get_strategy(name, 3).builtin == name
    for name in CUSTOM:
        assert get_strategy(name, 3).builtin is None


def test_java_default_partition_for_known_keys():
    # Java: Utils.toPositive(Utils.murmur2(key)) % n, with toPositive = & 0x7fffffff.
    # murmur2("foobar") = -790332482 -> & 0x7fffffff = -790332482 + 2**31 = 1357151166;
    # 1357151166 % 7 = 1357151166 - 7 * 193878738 = 0
    part = get_strategy("murmur2_random", 7)
    assert part.partition(b"foobar") == 1357151166 % 7 == 0
    for key, h in JAVA_MURMUR2.items():
        assert part.partition(key) == (h & 0x7FFFFFFF) % 7


def test_keyless_deterministic_builtins_hash_the_empty_key():
    assert get_strategy("consistent", 5).partition(None) == 0  # crc32(b"") == 0
    assert get_strategy("murmur2", 5).partition(None) == (murmur2(b"") & 0x7FFFFFFF) % 5
    assert get_strategy("fnv1a", 5).partition(None) == 0x7EE3623B % 5


def test_empty_key_is_keyless_only_for_consistent_random():
    seen = {get_strategy("consistent_random", 16, seed=s).partition(b"") for s in range(50)}
    assert len(seen) > 1
    for name in ("murmur2_random", "fnv1a_random"):
        seen = {get_strategy(name, 16, seed=s).partition(b"") for s in range(50)}
        assert len(seen) == 1


def test_random_strategies_spread_keyless_and_keep_range():
    for name in BUILTIN_STRATEGIES:
        part = get_strategy(name, 4, seed=1)
        got = [part.partition(None) for _ in range(200)]
        assert all(0 <= p < 4 for p in got)
    part = get_strategy("random", 4, seed=1)
    assert len({part.partition(b"same") for _ in range(100)}) == 4


def test_str_and_bytes_keys_agree_and_cache_is_consistent():
    part = get_strategy("murmur2_random", 9)
    first = [part.partition(b"k-%d" % i) for i in range(100)]
    again = [part.partition(b"k-%d" % i) for i in range(100)]
    as_str = [part.partition(f"k-{i}") for i in range(100)]
    fresh = get_strategy("murmur2_random", 9)
    assert first == again == as_str == [fresh.partition(bytearray(b"k-%d" % i)) for i in range(100)]


def test_cache_limit_keeps_results_stable(monkeypatch):
    monkeypatch.setattr(partitioning, "_CACHE_LIMIT", 3)
    part = get_strategy("murmur2", 5)
    fresh = get_strategy("murmur2", 5)
    keys = [b"k-%d" % i for i in range(20)] + [None]
    assert [part.partition(k) for k in keys * 2] == [fresh.partition(k) for k in keys * 2]
    assert len(part._cache) <= 3


# --- custom strategies ----------------------------------------------------------------------


def test_fnv1a_rr_keyed_like_fnv1a_and_keyless_round_robin():
    rr = get_strategy("fnv1a-rr", 5, seed=3)
    builtin = get_strategy("fnv1a", 5)
    keys = [b"order-%d" % i for i in range(200)]
    assert [rr.partition(k) for k in keys] == [builtin.partition(k) for k in keys]
    cycle = [rr.partition(None) for _ in range(10)]
    assert sorted(cycle) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert all((b - a) % 5 == 1 for a, b in zip(cycle, cycle[1:]))


@pytest.mark.parametrize(
    "headers",
    [{"priority": b"high"}, [("priority", b"high")], [("x", b"1"), ("priority", "high")]],
)
def test_priority_high_goes_to_dedicated_partition(headers):
    part = get_strategy("priority", 6)
    assert part.partition(b"user-1", headers) == 0
    assert part.partition(None, headers) == 0
    assert get_strategy("priority", 6, priority_partition=4).partition(b"user-1", headers) == 4


def test_priority_rest_hashed_over_other_partitions():
    part = get_strategy("priority", 6, priority_partition=2)
    others = [0, 1, 3, 4, 5]
    for i in range(300):
        key = b"user-%d" % i
        expected = others[(murmur2(key) & 0x7FFFFFFF) % 5]
        assert part.partition(key) == expected
        assert part.partition(key, {"priority": b"low"}) == expected
        assert part.partition(key, [("priority", None)]) == expected
    keyless = [part.partition(None) for _ in range(10)]
    assert sorted(keyless) == sorted(others * 2)


def test_priority_bad_options():
    with pytest.raises(ConfigError, match="partitions >= 2"):
        get_strategy("priority", 1)
    with pytest.raises(ConfigError, match=r"priority_partition .* got 6"):
        get_strategy("priority", 6, priority_partition=6)


def test_get_strategy_errors_name_the_value():
    with pytest.raises(ConfigError) as exc:
        get_strategy("murmur3", 4)
    message = str(exc.value)
    assert "'murmur3'" in message
    assert all(name in message for name in STRATEGIES)
    with pytest.raises(ConfigError, match="partitions .* got 0"):
        get_strategy("murmur2", 0)
    with pytest.raises(ConfigError, match="bad options"):
        get_strategy("murmur2", 4, priority_partition=1)


def test_get_strategy_rebuilds_a_partitioner_for_another_count():
    part = get_strategy("priority", 4, priority_partition=3, seed=1)
    assert get_strategy(part, 4) is part
    with pytest.raises(ConfigError, match="need a strategy name"):
        get_strategy(part, 4, seed=2)
    bigger = get_strategy(part, 8)
    assert isinstance(bigger, Partitioner)
    assert (bigger.partitions, bigger.priority_partition) == (8, 3)


# --- offline analysis -----------------------------------------------------------------------


def test_analyze_hand_computed_all_keyless_consistent():
    # consistent sends every keyless message to partition 0: counts [4, 0, 0], mean 4/3.
    # skew = 4 / (4/3) = 3; std = sqrt(((8/3)^2 + 2 * (4/3)^2) / 3) = sqrt(32/9) = 4*sqrt(2)/3,
    # cv = (4*sqrt(2)/3) / (4/3) = sqrt(2); two partitions empty.
    result = analyze("consistent", [None] * 4, 3)
    assert result.per_partition["messages"].tolist() == [4, 0, 0]
    assert result.per_partition["share"].tolist() == [1.0, 0.0, 0.0]
    assert result.skew == pytest.approx(3.0)
    assert result.cv == pytest.approx(math.sqrt(2))
    assert result.empty == 2
    assert (result.messages, result.keyless, result.distinct_keys) == (4, 4, 0)
    assert result.ordering_kept


def test_analyze_uniform_keys_is_balanced():
    keys = key_sample("uniform", 20_000, n_keys=5_000, seed=1)
    result = analyze("murmur2_random", keys, 12)
    frame = result.per_partition
    assert list(frame.columns) == ["partition", "messages", "share"]
    assert frame["partition"].tolist() == list(range(12))
    assert frame["share"].sum() == pytest.approx(1.0)
    assert result.skew < 1.15 and result.cv < 0.1 and result.empty == 0
    assert result.ordering_kept
    assert result.as_dict()["strategy"] == "murmur2_random"


def test_analyze_ordering_and_empty_partitions():
    few = [b"a", b"b"] * 50
    assert analyze("murmur2", few, 7).empty >= 5
    assert not analyze("random", few, 7).ordering_kept
    # One key at both priorities is split over two partitions.
    mixed = analyze("priority", [b"a", b"a"], 4, headers=[{"priority": b"high"}, None])
    assert not mixed.ordering_kept
    assert analyze("priority", [b"a", b"a"], 4, headers=[None, None]).ordering_kept


def test_analyze_rejects_empty_sample():
    with pytest.raises(ConfigError, match="empty"):
        analyze("murmur2", [], 3)


def test_keys_moved():
    keys = key_sample("uniform", 5_000, n_keys=2_000, seed=2)
    assert keys_moved("murmur2_random", keys, 6, 6) == 0.0
    # hash % n -> hash % 2n keeps a key iff hash % 2n < n: about half move.
    assert keys_moved("murmur2_random", keys, 6, 12) == pytest.approx(0.5, abs=0.05)
    # n -> n+1: a key stays iff hash % n == hash % (n+1): about 1/(n+1) stay.
    assert keys_moved("consistent", keys, 6, 7) == pytest.approx(1 - 1 / 7, abs=0.05)
    assert math.isnan(keys_moved("random", keys, 6, 12))
    assert math.isnan(keys_moved("murmur2", [None, None], 6, 12))
    # Hand case: crc32(b"123456789") = 3421780262; % 2 = 0 and % 4 = 2: it moves.
    assert keys_moved("consistent", [b"123456789"], 2, 4) == 1.0


def test_compare_strategies_one_row_each():
    keys = key_sample("zipf", 5_000, n_keys=500, seed=3) + [None] * 100
    table = compare_strategies(list(STRATEGIES), keys, 8, grow_to=10)
    assert isinstance(table, pd.DataFrame)
    assert table["strategy"].tolist() == list(STRATEGIES)
    assert {"skew", "cv", "empty", "ordering_kept", "keys_moved", "builtin"} <= set(table.columns)
    assert (table["messages"] == 5_100).all() and (table["keyless"] == 100).all()
    by_name = table.set_index("strategy")
    assert not by_name.loc["random", "ordering_kept"]
    assert by_name.loc["murmur2_random", "ordering_kept"]
    assert math.isnan(by_name.loc["random", "keys_moved"])


def test_key_sample_kinds():
    for kind in KEY_KINDS:
        sample = key_sample(kind, 1_000, n_keys=100, seed=4)
        assert len(sample) == 1_000
        assert sample == key_sample(kind, 1_000, n_keys=100, seed=4)
    assert key_sample("none", 3) == [None] * 3
    assert all(k.startswith(b"user-") for k in key_sample("user_ids", 10))

    def top_share(sample):
        return pd.Series(sample).value_counts().iloc[0] / len(sample)

    uniform = top_share(key_sample("uniform", 20_000, 1_000))
    zipf = top_share(key_sample("zipf", 20_000, 1_000))
    users = top_share(key_sample("user_ids", 20_000, 1_000))
    assert zipf > users > uniform
    with pytest.raises(ConfigError, match="'gauss'"):
        key_sample("gauss", 10)
    with pytest.raises(ConfigError, match="count .* got 0"):
        key_sample("uniform", 0)


# --- real client check ----------------------------------------------------------------------


@pytest.fixture
def topic7(bootstrap):
    """A fresh 7-partition topic, deleted afterwards."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"kb-test-partitioning-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, num_partitions=7, replication_factor=1)])[name].result(
        timeout=30
    )
    yield name
    admin.delete_topics([name], operation_timeout=10)[name].result(timeout=30)


def _produce_and_collect(bootstrap, topic, partitioner, keys):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": partitioner,
            # Fail within seconds if the broker is gone, not after librdkafka's 5 minutes.
            "message.timeout.ms": 15000,
        }
    )
    reports = {}

    def on_delivery(err, msg, index):
        reports[index] = (err, msg.partition())

    for index, key in enumerate(keys):
        producer.produce(
            topic, b"v", key=key, on_delivery=lambda e, m, i=index: on_delivery(e, m, i)
        )
    assert producer.flush(30) == 0
    assert all(err is None for err, _ in reports.values()), reports
    return [reports[i][1] for i in range(len(keys))]


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_models_match_librdkafka(bootstrap, topic7, name):
    keys = [b"user-%d" % i for i in range(300)] + [b"\x00\xff\x80", "caf\u00e9", b"x" * 33]
    if name not in ("random", "consistent_random"):
        keys.append(b"")  # consistent_random treats an empty key as no key
    if name in ("murmur2", "consistent", "fnv1a"):
        keys.append(None)  # these hash a missing key as b""; the others pick a sticky partition
    real = _produce_and_collect(bootstrap, topic7, name, keys)
    if name == "random":
        assert len(set(real)) > 3  # nothing to predict: just check it spreads
        return
    model = get_strategy(name, 7)
    expected = [model.partition(k) for k in keys]
    mismatches = [(k, r, e) for k, r, e in zip(keys, real, expected) if r != e]
    assert not mismatches
