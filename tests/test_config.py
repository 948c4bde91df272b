"""ClientProfile: librdkafka validation, presets against OMB's driver files, OMB driver YAML."""

import logging
import pickle
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from kafkabench.core.errors import ConfigError
from kafkabench.core.log import librdkafka_logger
from kafkabench.spec.profile import PRESETS, ClientProfile, load_profile

OMB_DRIVERS = Path(__file__).parent.parent / "workloads" / "omb" / "driver-kafka"


@pytest.mark.parametrize(
    ("data", "quoted"),
    [
        ({"producer": {"foo.bar": 1}}, ["producer", "foo.bar=1", "No such configuration property"]),
        ({"producer": {"linger.ms": "abc"}}, ["producer", "linger.ms='abc'"]),
        ({"consumer": {"fetch.wait.max.ms": -5}}, ["consumer", "fetch.wait.max.ms=-5"]),
        ({"producer": {"compression.type": "brotli"}}, ["compression.type='brotli'"]),
        ({"common": {"security.protocol": "carrier-pigeon"}}, ["common", "'carrier-pigeon'"]),
        ({"consumer": {"linger.ms": 5}}, ["consumer", "linger.ms=5", "put it under producer:"]),
        ({"producer": {"auto.offset.reset": "earliest"}}, ["auto.offset.reset='earliest'", "under consumer:"]),
        ({"common": {"acks": "all"}}, ["common", "acks='all'", "under producer:"]),
        ({"producer": {"acks": None}}, ["acks=None"]),
        ({"common": {"bootstrap.servers": "h:9092"}}, ["bootstrap.servers='h:9092'"]),
        ({"consumer": {"group.id": "g"}}, ["group.id='g'"]),
        ({"producer": {"enable.idempotence": True, "acks": 1}}, ["enable.idempotence", "acks"]),
        ({"replication_factor": 0}, ["replication_factor", "0"]),
    ],
)
def test_bad_settings_name_key_and_value(data, quoted):
    with pytest.raises(ConfigError) as err:
        ClientProfile.from_dict(data)
    for text in quoted:
        assert text in str(err.value)


def test_unknown_top_level_keys_are_named():
    with pytest.raises(ConfigError, match=r"\['lingerMs', 'zzz'\]"):
        ClientProfile.from_dict({"producer": {}, "lingerMs": 5, "zzz": 1})


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        load_profile("fastest")
    assert "'fastest'" in str(err.value)
    for name in PRESETS:
        assert name in str(err.value)


def test_missing_yaml_names_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml.*no such file"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="nope.yaml.*no such file"):
        load_profile(str(tmp_path / "nope.yaml"))


def test_profile_given_a_folder_is_a_config_error(tmp_path, monkeypatch):
    for spec in (tmp_path, str(tmp_path), f"{tmp_path}/"):
        with pytest.raises(ConfigError, match="client profile .* is a folder; give the path of a YAML"):
            load_profile(spec)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    with pytest.raises(ConfigError, match="'profiles' is a folder"):
        load_profile("profiles")


def test_unreadable_profile_files_name_the_path(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="bin.yaml' is not a text file"):
        load_profile(tmp_path / "bin.yaml")
    (tmp_path / "bad.yaml").write_text("producer: {linger.ms: [\n")
    with pytest.raises(ConfigError, match="bad.yaml' is not valid YAML"):
        load_profile(tmp_path / "bad.yaml")


def test_merged_client_configs_layer_defaults_common_role_overrides():
    profile = ClientProfile(
        name="t",
        common={"client.id": "kb", "socket.keepalive.enable": True},
        producer={"linger.ms": 5, "message.timeout.ms": 10000},
        consumer={"enable.auto.commit": False},
    )
    conf = profile.producer_config("b:9092", **{"linger.ms": 7})
    assert conf == {
        "message.timeout.ms": 10000,
        "client.id": "kb",
        "socket.keepalive.enable": "true",
        "linger.ms": 7,
        "bootstrap.servers": "b:9092",
        # librdkafka's log lines go to a Python logger (shown with -v), never raw to stderr.
        "logger": librdkafka_logger(),
    }
    assert profile.producer_config("b:1", logger="mine")["logger"] == "mine"
    conf = profile.consumer_config("b:9092", "g1")
    assert conf["logger"] is librdkafka_logger()
    assert conf["auto.offset.reset"] == "earliest"
    assert conf["enable.auto.commit"] == "false"
    assert conf["group.id"] == "g1" and conf["bootstrap.servers"] == "b:9092"
    assert "linger.ms" not in conf


def test_default_message_timeout_is_short():
    assert load_profile(None).producer_config("b:1")["message.timeout.ms"] == 30000


def test_configs_are_accepted_by_confluent_kafka():
    # Built and closed without ever polling a broker: only checks librdkafka takes the dicts.
    for profile in PRESETS.values():
        Producer({**profile.producer_config("127.0.0.1:1"), "log_level": 0})
        Consumer({**profile.consumer_config("127.0.0.1:1", "g"), "log_level": 0}).close()


def test_all_presets_validate():
    for profile in PRESETS.values():
        assert load_profile(profile.name) is profile


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "default"])
def test_presets_equal_omb_driver_files(preset):
    omb = ClientProfile.from_yaml(OMB_DRIVERS / f"kafka-{preset}.yaml")
    assert dict(PRESETS[preset].producer) == dict(omb.producer)
    assert dict(PRESETS[preset].consumer) == dict(omb.consumer)
    assert omb.common == {}


def test_preset_values():
    assert PRESETS["default"].producer == {} and PRESETS["default"].consumer == {}
    throughput = PRESETS["throughput"].producer
    assert (throughput["acks"], throughput["linger.ms"], throughput["batch.size"]) == ("all", 1, 1048576)
    assert PRESETS["exactly-once"].producer["enable.idempotence"] is True
    assert PRESETS["compression-zstd"].producer["compression.type"] == "zstd"
    assert PRESETS["big-batches"].producer["linger.ms"] == 100


def test_omb_driver_file_loads_as_is(caplog):
    with caplog.at_level(logging.INFO, logger="kafkabench.spec.profile"):
        profile = load_profile(OMB_DRIVERS / "kafka-throughput.yaml")
    assert profile.name == "kafka-throughput"
    assert profile.replication_factor == 3
    assert profile.topic_config == {"min.insync.replicas": "2"}
    # librdkafka's request.timeout.ms is producer-only and capped at 900000.
    assert profile.producer["request.timeout.ms"] == 900000
    assert profile.consumer == {
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "max.partition.fetch.bytes": 10485760,
    }
    assert "bootstrap.servers" not in {**profile.common, **profile.producer}
    # OMB would connect there; kafkabench does not, and says so where the user sees it.
    [ignored] = [r for r in caplog.records if "bootstrap.servers='localhost:9092'" in r.getMessage()]
    assert ignored.levelno == logging.WARNING and "is ignored" in ignored.getMessage()
    assert "default.api.timeout.ms=1200000 dropped" in caplog.text
    assert profile.producer_config("real:9092")["bootstrap.servers"] == "real:9092"


def test_omb_java_names_are_mapped():
    profile = ClientProfile.from_dict(
        {
            "driverClass": "io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver",
            "commonConfig": "bootstrap.servers=localhost:9092\nclient.id=omb\n",
            "producerConfig": (
                "key.serializer=org.apache.kafka.common.serialization.StringSerializer\n"
                "buffer.memory=33554432\nmax.request.size = 2097152\n# a comment\n"
            ),
            "consumerConfig": "fetch.max.wait.ms: 50\nmax.poll.records=500\n",
        },
        name="omb",
    )
    assert profile.common == {"client.id": "omb"}
    assert profile.producer == {"queue.buffering.max.kbytes": 32768, "message.max.bytes": 2097152}
    assert profile.consumer == {"fetch.wait.max.ms": 50}


def test_unmappable_omb_java_key_is_named():
    with pytest.raises(ConfigError) as err:
        ClientProfile.from_dict({"producerConfig": "partitioner.class=com.example.MyPartitioner"})
    message = str(err.value)
    assert "partitioner.class='com.example.MyPartitioner'" in message
    assert "no librdkafka equivalent" in message


def test_omb_unknown_driver_class_is_rejected():
    with pytest.raises(ConfigError, match="PulsarBenchmarkDriver"):
        ClientProfile.from_dict({"driverClass": "io.openmessaging.benchmark.driver.pulsar.PulsarBenchmarkDriver"})


def test_yaml_round_trip(tmp_path):
    profile = ClientProfile(
        name="rt",
        common={"client.id": "x"},
        producer={"linger.ms": 5, "enable.idempotence": True},
        consumer={"fetch.min.bytes": 1024},
        replication_factor=3,
        topic_config={"min.insync.replicas": 2},
    )
    assert load_profile(profile.to_yaml(tmp_path / "p.yaml")) == profile
    assert load_profile(str(tmp_path / "p.yaml")) == profile


def test_profiles_are_read_only_hashable_and_picklable():
    profile = PRESETS["throughput"]
    with pytest.raises(TypeError):
        profile.producer["linger.ms"] = 1000
    assert pickle.loads(pickle.dumps(profile)) == profile
    assert hash(profile) == hash(pickle.loads(pickle.dumps(profile)))


def test_flat_dict_for_result_rows():
    row = PRESETS["latency"].as_flat_dict()
    assert row["producer.batch.size"] == 131072
    assert row["producer.message.timeout.ms"] == 30000
    assert row["consumer.enable.auto.commit"] is False
    assert row["profile.name"] == "latency"


SASL = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "bench",
        "sasl.password": "hunter2", "ssl.key.password": "s3cret"}


def test_secrets_stay_out_of_result_rows_and_recorded_configs():
    profile = ClientProfile(name="sasl", common=SASL).validate()
    row = profile.as_flat_dict()
    assert row["common.sasl.password"] == row["common.ssl.key.password"] == "<redacted>"
    assert row["common.sasl.username"] == "bench"
    recorded = profile.to_dict(redact_secrets=True)
    assert "hunter2" not in repr(recorded) and "s3cret" not in repr(recorded)
    assert recorded["common"]["sasl.mechanism"] == "PLAIN"
    assert profile.to_dict()["common"]["sasl.password"] == "hunter2"  # the profile file keeps it


def test_settings_wrong_only_together_are_named_together_without_secrets():
    # Fine one by one (security.protocol alone fails for another reason: no mechanism set),
    # rejected together: PLAIN needs a username. Neither key alone is to blame.
    common = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
              "sasl.password": "hunter2"}
    with pytest.raises(ConfigError) as err:
        ClientProfile(name="sasl", common=common).validate()
    text = str(err.value)
    assert "together" in text and "sasl.username" in text
    assert "'security.protocol': 'SASL_PLAINTEXT'" in text and "hunter2" not in text


def test_a_bad_secret_value_is_named_not_shown():
    with pytest.raises(ConfigError) as err:
        ClientProfile(name="x", common={"ssl.key.password": "hunter2", "linger.ms": "soon"}).validate()
    assert "linger.ms='soon'" in str(err.value) and "hunter2" not in str(err.value)


def test_route_settings_is_one_rule_for_commands_and_locust():
    from kafkabench.spec.profile import route_settings

    pairs = {"producer.acks": "all", "consumer.fetch.max.bytes": 1000, "security.protocol": "SASL_SSL",
             "sasl.mechanism": "SCRAM-SHA-512", "ssl.ca.location": "/ca.pem", "linger.ms": 5,
             "fetch.min.bytes": 1, "auto.offset.reset": "latest", "client.id": "kb"}
    # A command's own client (produce) takes every bare key but the connection settings.
    assert route_settings(pairs, "producer") == {
        "common": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                   "ssl.ca.location": "/ca.pem"},
        "producer": {"acks": "all", "linger.ms": 5, "fetch.min.bytes": 1, "auto.offset.reset": "latest",
                     "client.id": "kb"},
        "consumer": {"fetch.max.bytes": 1000}}
    # No role (run, sweep, Locust): librdkafka says which role a bare key belongs to; keys
    # both roles take, and connection settings (SASL_SSL alone is refused), go to both.
    assert route_settings(pairs, None) == {
        "common": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                   "ssl.ca.location": "/ca.pem", "client.id": "kb"},
        "producer": {"acks": "all", "linger.ms": 5},
        "consumer": {"fetch.max.bytes": 1000, "fetch.min.bytes": 1, "auto.offset.reset": "latest"}}
    # What it routes lays over a profile as it is.
    profile = PRESETS["default"].with_settings(**route_settings(
        {"linger.ms": 5, "fetch.min.bytes": 1, "security.protocol": "SASL_PLAINTEXT",
         "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"}, None))
    assert profile.producer == {"linger.ms": 5} and profile.consumer == {"fetch.min.bytes": 1}
    # A key or value librdkafka refuses goes to both roles, where validation names it.
    assert route_settings({"linger.ms": "soon", "no.such.key": 1}, None)["common"] == {
        "linger.ms": "soon", "no.such.key": 1}
    with pytest.raises(ConfigError, match="linger.ms='soon'"):
        PRESETS["default"].with_settings(**route_settings({"linger.ms": "soon"}, None))
