"""Workload: validation, key sequences, payload pools, OMB workload YAML."""

import collections
import json
import logging
import zlib
from pathlib import Path

import pytest

from kafkabench.core.errors import ConfigError
from kafkabench.spec.profile import WORKLOADS_DIR, ClientProfile, load_profile, packaged_file
from kafkabench.spec.workload import (
    UniformSize,
    WeightedSizes,
    Workload,
    effective_replication_factor,
    key_sequence,
    load_workload,
    payload_pool,
)

OMB = WORKLOADS_DIR / "omb"


@pytest.mark.parametrize(
    ("fields", "quoted"),
    [
        ({"topics": 0}, "topics=0"),
        ({"topics": "3"}, "topics='3'"),
        ({"partitions": 0}, "partitions=0"),
        ({"producer_rate": -1}, "producer_rate=-1"),
        ({"key_distribution": "gaussian"}, "key_distribution='gaussian'"),
        ({"message_size": 0}, "message_size=0"),
        ({"message_size": {"distribution": "uniform", "min": 10, "max": 5}}, "'min': 10"),
        ({"message_size": {"choices": [100, 1000], "weights": [1]}}, "'choices': [100, 1000]"),
        ({"consumers_per_group": -1}, "consumers_per_group=-1"),
        ({"duration_s": 0}, "duration_s=0"),
        ({"random_bytes_ratio": 1.5}, "random_bytes_ratio=1.5"),
        ({"key_skew": 0}, "key_skew=0"),
        ({"topic_prefix": "a b"}, "topic_prefix='a b'"),
        ({"payload": "/no/such/file.data"}, "payload='/no/such/file.data'"),
        ({"replication_factor": True}, "replication_factor=True"),
        ({"replication_factor": 0}, "replication_factor=0"),
        ({"headers": {"version": 1}}, "headers={'version': 1}"),
        ({"headers": [("a", "b")]}, "headers=[('a', 'b')]"),
    ],
)
def test_bad_fields_name_field_and_value(fields, quoted):
    with pytest.raises(ConfigError) as err:
        Workload(**fields)
    assert quoted in str(err.value)


def test_duration_may_be_zero_with_message_count():
    assert Workload(duration_s=0, message_count=1000).message_count == 1000


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"\['partitons'\]"):
        Workload.from_dict({"partitons": 3})


def test_derived_values():
    w = Workload(topics=2, partitions=3, producers=2, producer_rate=1000, consumer_groups=2,
                 consumers_per_group=3)
    assert (w.total_producers, w.total_consumers, w.total_partitions) == (4, 12, 6)
    assert w.rate_per_producer == 250
    assert Workload(topics=12).topic_names("r1")[:2] == ["kb-r1-00", "kb-r1-01"]


def test_message_size_specs():
    uniform = {"distribution": "uniform", "min": 100, "max": 300}
    assert Workload(message_size=uniform).message_size == UniformSize(100, 300)
    w = Workload(message_size={"choices": [100, 1000], "weights": [0.8, 0.2]})
    assert w.message_size == WeightedSizes((100, 1000), (0.8, 0.2))
    assert w.mean_message_size == pytest.approx(280)


def test_yaml_round_trip(tmp_path):
    w = Workload(name="rt", topics=2, topic_config={"retention.ms": 60000},
                 message_size={"choices": [100, 1000]}, payload="text", key_distribution="zipf",
                 key_skew=1.2, producer_rate=500, message_count=10,
                 headers={"event-type": "OrderCreated", "version": "1"})
    assert load_workload(w.to_yaml(tmp_path / "w.yaml")) == w


def test_flat_dict_for_result_rows():
    row = Workload(message_size={"distribution": "uniform", "min": 100, "max": 300},
                   topic_config={"min.insync.replicas": "2"}, headers={"version": "1"}).as_flat_dict()
    assert row["workload.message_size"] == 200
    assert "uniform" in row["workload.message_size_distribution"]
    assert row["workload.topic_config.min.insync.replicas"] == "2"
    assert row["workload.headers.version"] == "1" and "workload.headers" not in row
    assert row["workload.partitions"] == 1


def test_no_keys():
    assert key_sequence(Workload()) == [None]


def test_round_robin_keys_are_uniform():
    keys = key_sequence(Workload(key_distribution="round-robin", key_count=7))
    assert len(keys) == 7 and len(set(keys)) == 7


def test_random_keys_are_roughly_uniform():
    counts = collections.Counter(key_sequence(Workload(key_distribution="random", key_count=16), seed=1))
    assert len(counts) == 16
    assert max(counts.values()) / min(counts.values()) < 1.2


def test_zipf_keys_are_skewed():
    keys = key_sequence(Workload(key_distribution="zipf", key_count=1000, key_skew=1.0), seed=1)
    counts = collections.Counter(keys)
    harmonic = sum(1 / r for r in range(1, 1001))
    assert counts[b"key-0"] / len(keys) == pytest.approx(1 / harmonic, rel=0.05)  # about 13 %
    assert counts[b"key-0"] / counts[b"key-1"] == pytest.approx(2, rel=0.1)


def test_key_sequences_are_seeded():
    w = Workload(key_distribution="random")
    assert key_sequence(w, seed=3) == key_sequence(w, seed=3) != key_sequence(w, seed=4)


def test_payload_sizes_follow_the_distribution():
    assert {len(p) for p in payload_pool(Workload(message_size=512))} == {512}
    sizes = [len(p) for p in payload_pool(Workload(
        message_size={"distribution": "uniform", "min": 100, "max": 2000}, payload_pool_size=2000), seed=1)]
    assert min(sizes) >= 100 and max(sizes) <= 2000
    assert sum(sizes) / len(sizes) == pytest.approx(1050, rel=0.05)
    sizes = [len(p) for p in payload_pool(Workload(
        message_size={"choices": [100, 1000], "weights": [0.8, 0.2]}, payload_pool_size=2000), seed=1)]
    assert set(sizes) == {100, 1000}
    assert sizes.count(100) / len(sizes) == pytest.approx(0.8, abs=0.04)


def test_pool_is_capped_in_bytes():
    pool = payload_pool(Workload(message_size=8 * 1024 * 1024, payload_pool_size=100))
    assert len(pool) == 8


def _ratio(pool):
    data = b"".join(pool)
    return len(data) / len(zlib.compress(data))


def test_text_payloads_compress_and_random_ones_do_not():
    assert _ratio(payload_pool(Workload(payload="text"), seed=1)) > 2
    assert _ratio(payload_pool(Workload(payload="random"), seed=1)) < 1.01
    half = payload_pool(Workload(payload="random", random_bytes_ratio=0.5), seed=1)
    assert all(p[-512:] == bytes(512) for p in half)
    assert 1.5 < _ratio(half) < 2.5


def test_payload_file(tmp_path):
    (tmp_path / "p.data").write_bytes(b"x" * 100)
    w = Workload.from_dict({"payload": "p.data", "message_size": 100}, base_dir=tmp_path)
    assert payload_pool(w) == [b"x" * 100]
    with pytest.raises(ConfigError, match="message_size: 100"):
        Workload(payload=str(tmp_path / "p.data"))


def test_workload_path_that_is_a_folder_or_missing_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="workload .* is a folder; give the path of a YAML file"):
        load_workload(tmp_path)
    with pytest.raises(ConfigError, match="workload .*nope.yaml': no such file"):
        load_workload(str(tmp_path / "nope.yaml"))


def test_omb_workload_with_payload_file(caplog):
    with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
        w = load_workload(OMB / "1-topic-16-partitions-1kb.yaml")
    assert (w.topics, w.partitions, w.message_size) == (1, 16, 1024)
    assert (w.producers, w.consumer_groups, w.consumers_per_group) == (1, 1, 1)
    assert w.producer_rate == 50000
    # OMB warms up (default 1 minute), discards it, then runs the test: warm-up is not measured.
    assert (w.duration_s, w.warmup_s) == (900, 60)
    [note] = [r.getMessage() for r in caplog.records if "warmupDurationMinutes" in r.getMessage()]
    assert "warmupDurationMinutes=1 (OMB's default)" in note
    assert "60 s (not measured)" in note and "900 s" in note and "960 s in all" in note
    assert Path(w.payload).name == "payload-1Kb.data"
    assert len(payload_pool(w)[0]) == 1024


def test_omb_backlog_workload_with_random_payloads():
    w = load_workload(OMB / "1-topic-100-partitions-1kb-4p-4c-200k-backlog.yaml")
    assert (w.payload, w.random_bytes_ratio, w.payload_pool_size) == ("random", 0.5, 1000)
    assert (w.producers, w.consumers_per_group) == (4, 4)
    assert w.backlog_messages == 512 * 1024**3 // 1024


def test_omb_key_distributors():
    base = {"topics": 1, "partitionsPerTopic": 1, "messageSize": 10, "useRandomizedPayloads": True,
            "producersPerTopic": 1, "testDurationMinutes": 1}
    assert Workload.from_dict({**base, "keyDistributor": "KEY_ROUND_ROBIN"}).key_distribution == "round-robin"
    assert Workload.from_dict({**base, "keyDistributor": "RANDOM_NANO"}).key_distribution == "random"
    with pytest.raises(ConfigError, match="keyDistributor='HASHED'"):
        Workload.from_dict({**base, "keyDistributor": "HASHED"})
    with pytest.raises(ConfigError, match="backlogDrainRatio=0.9"):
        Workload.from_dict({**base, "backlogDrainRatio": 0.9})
    with pytest.raises(ConfigError, match=r"\['producerStartRate'\]"):
        Workload.from_dict({**base, "producerStartRate": 10})


def test_omb_missing_payload_file_is_named(tmp_path):
    (tmp_path / "w.yaml").write_text(
        "topics: 1\npartitionsPerTopic: 1\nmessageSize: 1024\npayloadFile: payload/missing.data\n"
        "producersPerTopic: 1\ntestDurationMinutes: 1\n"
    )
    with pytest.raises(ConfigError, match="payloadFile='payload/missing.data'"):
        load_workload(tmp_path / "w.yaml")


def test_quickstart_example_loads():
    w = load_workload(WORKLOADS_DIR / "quickstart.yaml")
    assert w.key_distribution == "zipf" and w.payload == "text"


def test_omb_durations_must_be_numbers():
    base = {"topics": 1, "partitionsPerTopic": 1, "messageSize": 10, "useRandomizedPayloads": True,
            "producersPerTopic": 1, "testDurationMinutes": 1}
    with pytest.raises(ConfigError, match="warmupDurationMinutes='1m'"):
        Workload.from_dict({**base, "warmupDurationMinutes": "1m"})
    w = Workload.from_dict({**base, "warmupDurationMinutes": 0})
    assert (w.warmup_s, w.duration_s) == (0, 60)


def test_replication_factor_is_unset_by_default():
    # Unset, so that an OMB workload (which never sets one) takes its driver file's.
    assert Workload().replication_factor is None
    assert load_workload(OMB / "1-topic-16-partitions-1kb.yaml").replication_factor is None
    assert Workload.from_dict({"replication_factor": 2}).replication_factor == 2


RF3 = ClientProfile(name="rf3", replication_factor=3)
NO_RF = ClientProfile(name="plain")


@pytest.mark.parametrize(("workload_rf", "profile", "expected"), [
    (None, NO_RF, None),  # the cluster's default.replication.factor
    (2, NO_RF, 2),
    (None, RF3, 3),
    (3, RF3, 3),
])
def test_effective_replication_factor_without_override(workload_rf, profile, expected):
    assert effective_replication_factor(Workload(replication_factor=workload_rf), profile) == expected


def test_workload_and_profile_disagreeing_is_refused_with_both_values_and_the_fix():
    with pytest.raises(ConfigError) as err:
        effective_replication_factor(Workload(name="w", replication_factor=1), RF3)
    text = str(err.value)
    assert "workload 'w' sets replication_factor=1" in text and "'rf3' sets 3" in text
    assert "--set replication_factor=N" in text


def test_explicit_replication_factor_wins_with_a_note(caplog):
    with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
        assert effective_replication_factor(Workload(replication_factor=1), RF3, override=1) == 1
    assert "replication_factor=1 as set explicitly, not the 3 of client profile 'rf3'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
        assert effective_replication_factor(Workload(replication_factor=None), NO_RF, override=2) == 2
    assert caplog.text == ""
    for bad in (0, "1", True):
        with pytest.raises(ConfigError, match=f"replication_factor={bad!r}"):
            effective_replication_factor(Workload(), NO_RF, override=bad)


def test_omb_files_take_the_driver_replication_factor_and_warn_about_min_isr(caplog):
    workload = load_workload(OMB / "1-topic-16-partitions-1kb.yaml")
    profile = load_profile(OMB / "driver-kafka" / "kafka-throughput.yaml")
    assert effective_replication_factor(workload, profile) == 3
    with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
        assert effective_replication_factor(workload, profile, override=1) == 1
    assert "min.insync.replicas=2 is more than replication_factor=1" in caplog.text


def test_omb_six_partition_100b_workload_loads_as_omb_wrote_it():
    # The shape of benchmarks/fixed_rate_fidelity.py, copied unchanged from OMB.
    w = load_workload(OMB / "1-topic-6-partition-100b.yaml")
    assert (w.topics, w.partitions, w.message_size) == (1, 6, 100)
    assert w.producer_rate == 50_000


# --- files that ship with kafkabench, found from any folder -------------------------------


@pytest.mark.parametrize("spec", ["workloads/quickstart.yaml", "quickstart.yaml", "quickstart",
                                  Path("workloads/quickstart.yaml")])
def test_packaged_workload_loads_from_any_folder(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = load_workload(spec)
    assert w.name == "quickstart" and w.partitions == 6


@pytest.mark.parametrize("spec", ["workloads/omb/1-topic-6-partition-100b.yaml",
                                  "omb/1-topic-6-partition-100b", "1-topic-6-partition-100b"])
def test_packaged_omb_workload_finds_its_payload_file_from_any_folder(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = load_workload(spec)
    assert w.message_size == 100
    assert Path(w.payload).is_absolute() and Path(w.payload).is_file()
    assert Path(w.payload).is_relative_to(WORKLOADS_DIR)


def test_a_file_in_the_current_folder_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workloads").mkdir()
    Workload(name="mine", partitions=2).to_yaml(tmp_path / "workloads" / "quickstart.yaml")
    assert load_workload("workloads/quickstart.yaml").name == "mine"
    ClientProfile.from_dict({"producer": {"linger.ms": 7}}, name="mine").to_yaml(tmp_path / "kafka-latency")
    assert load_profile("kafka-latency").name == "mine"


def test_missing_workload_lists_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ["workloads/nope.yaml", "nope", "latency-profile"]:  # the last is a profile
        with pytest.raises(ConfigError, match=f"workload '{spec}': no such file") as err:
            load_workload(spec)
        assert "quickstart" in str(err.value) and "omb/1-topic-6-partition-100b" in str(err.value)
        assert "kafka-latency" not in str(err.value)


@pytest.mark.parametrize(("spec", "name"), [
    ("workloads/omb/driver-kafka/kafka-latency.yaml", "kafka-latency"),
    ("omb/driver-kafka/kafka-throughput", "kafka-throughput"),
    ("kafka-exactly-once", "kafka-exactly-once"),
    ("workloads/latency-profile.yaml", "low-latency"),
    ("latency-profile", "low-latency"),
])
def test_packaged_profile_loads_from_any_folder(spec, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_profile(spec).name == name


def test_missing_profile_lists_presets_and_packaged_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="client profile 'nope.yaml': no such file") as err:
        load_profile("nope.yaml")
    assert "omb/driver-kafka/kafka-latency" in str(err.value) and "quickstart" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown client profile 'quickstart'") as err:
        load_profile("quickstart")  # a workload, not a profile
    assert "throughput" in str(err.value) and "latency-profile" in str(err.value)


def test_packaged_lookup_stays_inside_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert packaged_file("workloads/../workloads/quickstart.yaml", "workload") is None
    assert packaged_file(tmp_path / "quickstart.yaml", "workload") is None
    assert packaged_file("quickstart", "workload") == WORKLOADS_DIR / "quickstart.yaml"


def test_durations_take_duration_text(tmp_path):
    assert (Workload(duration_s="5m", warmup_s="90s").duration_s, Workload(warmup_s="1m30s").warmup_s) == (300, 90)
    assert (Workload(duration_s=2).duration_s, Workload(warmup_s=0.5).warmup_s) == (2.0, 0.5)  # numbers as before
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nduration_s: 1h30m\nwarmup_s: 250ms\n")
    w = load_workload(path)
    assert (w.duration_s, w.warmup_s) == (5400, 0.25)
    assert Workload.from_yaml(path).to_dict()["duration_s"] == 5400  # saved as seconds
    for field, value in (("duration_s", "5q"), ("warmup_s", "soon"), ("duration_s", "-1m")):
        with pytest.raises(ConfigError) as err:
            Workload.from_dict({field: value})
        assert f"workload {field}={value!r}" in str(err.value) and "5m" in str(err.value)


def test_omb_warnings_describe_the_workload_after_overrides(caplog):
    path = OMB / "1-topic-16-partitions-1kb.yaml"

    def notes(**overrides):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
            w = load_workload(path, overrides=overrides)
        return w, [r.getMessage() for r in caplog.records]

    w, said = notes(duration_s=1, warmup_s=0)
    assert (w.duration_s, w.warmup_s, w.partitions) == (1, 0, 16) and said == []
    w, [note] = notes(duration_s="2m")  # the file's warm-up stays: said, with the duration that runs
    assert "warms up for 60 s" in note and "then measures 120 s (duration_s): 180 s in all" in note
    assert "960" not in note
    _, said = notes(warmup_s=5)
    assert said == []
    base = {"topics": 1, "partitionsPerTopic": 1, "messageSize": 10, "useRandomizedPayloads": True,
            "producersPerTopic": 1, "testDurationMinutes": 1, "warmupDurationMinutes": 0, "producerRate": 0}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafkabench.spec.workload"):
        assert Workload.from_dict(base, overrides={"producer_rate": 100}).producer_rate == 100
        assert caplog.records == []
        Workload.from_dict(base)
    assert "producerRate=0" in caplog.records[0].getMessage()
    with pytest.raises(ConfigError, match=r"unknown workload keys \['partitons'\]"):
        load_workload(path, overrides={"partitons": 2})
    assert load_workload(Workload(), overrides={"duration_s": "1m"}).duration_s == 60


@pytest.mark.parametrize(("fields", "says"), [
    ({"duration_s": -1}, "workload duration_s=-1: expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"),
    ({"key_count": 2_000_000}, "workload key_count=2000000: expected an integer between 1 and 1000000"),
    ({"key_skew": -1}, "workload key_skew=-1: expected a number > 0"),
    ({"random_bytes_ratio": float("nan")}, "workload random_bytes_ratio=nan: expected a number between 0 and 1"),
    ({"verify": "yes"}, "workload verify='yes': expected true or false"),
    ({"fault_commands": {"kill": ""}}, "workload fault_commands={'kill': ''}: expected a mapping of fault "
                                       "actions to shell commands"),
    ({"topic_config": ["a"]}, "workload topic_config=['a']: expected a mapping"),
    ({"name": ""}, "workload name='': expected a non-empty string"),
    ({"transaction_messages": -1}, "workload transaction_messages=-1: expected an integer >= 0"),
    ({"message_count": 0}, "workload message_count=0: expected an integer >= 1"),
    ({"payload": 3}, "workload payload=3: expected 'random', 'text' or a file path"),
    ({"message_size": {"choices": 3}}, "message_size={'choices': 3}: expected bytes >= 1"),
    ({"membership": [{"at_s": 10, "action": "crash"}]}, "membership[0]: at_s=10 is not within the run (10 s)"),
    ({"membership": [{"at_s": 1, "action": "crash", "group": 1}]},
     "membership[0]: group=1 but the workload has 1 group(s) per run"),
])
def test_each_field_is_refused_with_its_whole_message(fields, says):
    with pytest.raises(ConfigError) as err:
        Workload(**fields)
    assert str(err.value).startswith(says)


def test_fields_take_their_normal_form():
    w = Workload(producer_rate=5, key_skew=2, random_bytes_ratio=1, topic_config={"segment.ms": 1000},
                 headers={"a": ""}, payload=Path("text"), replication_factor=2, message_count=9)
    assert [type(v) for v in (w.producer_rate, w.key_skew, w.random_bytes_ratio)] == [float] * 3
    assert w.topic_config == {"segment.ms": "1000"} and w.payload == "text"
    assert hash(w) == hash(Workload(**{**w.to_dict(), "faults": [], "membership": []}))
    # a run capped by message count has no length to hold the membership schedule to
    assert Workload(duration_s=0, message_count=5, membership=[{"at_s": 99, "action": "crash"}]).membership


def test_saved_form_is_unchanged():
    # The mappings saved results and sweeps are keyed on (point ids hash `to_dict`).
    w = Workload(name="full", topics=2, topic_config={"retention.ms": 60000}, headers={"v": "1"},
                 message_size={"choices": [100, 300], "weights": [3, 1]}, consumers_per_group=2,
                 duration_s="1m", warmup_s=5, processing={"time_ms": {"uniform": [1, 2]}, "poison_fraction": 0.01},
                 faults=[{"at_s": 10, "action": "kill", "target": "leader", "duration_s": 5}],
                 fault_commands={"kill": "k {node}"},
                 membership=[{"at_s": 30, "action": "crash", "member": 1}, {"at_s": 3, "action": "join"}])
    data = w.to_dict()
    assert data == {
        "name": "full", "topics": 2, "partitions": 1, "replication_factor": None,
        "topic_config": {"retention.ms": "60000"}, "message_size": {"choices": [100, 300], "weights": [3.0, 1.0]},
        "payload": "random", "random_bytes_ratio": 1.0, "payload_pool_size": 1000, "key_distribution": "none",
        "key_count": 10000, "key_skew": 1.0, "producers": 1, "producer_rate": 0.0, "consumer_groups": 1,
        "consumers_per_group": 2, "duration_s": 60.0, "warmup_s": 5.0, "backlog_messages": 0,
        "topic_prefix": "kb", "message_count": None, "headers": {"v": "1"}, "verify": False,
        "faults": [{"at_s": 10.0, "action": "kill", "target": "leader", "duration_s": 5.0}],
        "fault_commands": {"kill": "k {node}"},
        "processing": {"time_ms": {"uniform": [1.0, 2.0]}, "transient_fraction": 0.0, "transient_failures": 1,
                       "poison_fraction": 0.01, "retry": "inline",
                       "backoff": {"initial_ms": 100.0, "multiplier": 2.0, "max_ms": 10000.0, "jitter": 0.0,
                                   "max_attempts": 3},
                       "dead_letter": True, "filter_fraction": 0.0, "filter_header": None, "output": False,
                       "seed": 0, "exactly_once": False, "transaction_messages": 100, "transaction_ms": 100.0},
        "transaction_messages": 0,
        "membership": [{"at_s": 3.0, "action": "join", "member": 0, "group": 0, "topic": 0},
                       {"at_s": 30.0, "action": "crash", "member": 1, "group": 0, "topic": 0}],
    }
    row = w.as_flat_dict()
    assert row["workload.message_size"] == 150 and row["workload.duration_s"] == 60.0
    assert row["workload.topic_config.retention.ms"] == "60000" and row["workload.headers.v"] == "1"
    assert row["workload.faults"] == json.dumps(data["faults"])
    assert row["workload.membership"] == json.dumps(data["membership"])
    assert row["workload.processing"] == json.dumps(data["processing"])
    assert load_workload(data) == w
