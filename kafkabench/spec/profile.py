"""How the clients are tuned: `ClientProfile`, presets mirroring OMB's driver files, validation.

librdkafka settings pass through unchanged as dotted keys (`"linger.ms": 5`). They are checked
against librdkafka itself by building a client without brokers, so a typo or an ill-typed value
is a `ConfigError` at load time instead of a failed run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaException, Producer

from kafkabench.core.checks import check_fields, integer, optional
from kafkabench.core.errors import ConfigError

log = logging.getLogger(__name__)

# librdkafka's default of 300000 lets a dead broker stall a flush for five minutes; at 30 s the
# undeliverable messages fail with _MSG_TIMED_OUT and the run reports them as errors.
PRODUCER_DEFAULTS: Mapping[str, Any] = {"message.timeout.ms": 30000}
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": True,
    # When a partition's local queue is over queued.min.messages (or queued.max.messages.kbytes),
    # librdkafka postpones that partition's next fetch by fetch.queue.backoff.ms, 1000 ms by
    # default: a fast loop drains the queue long before, then waits up to a second for data.
    # Measured with 100 B messages on this machine: 250-430k msgs/s with librdkafka's
    # defaults, 1.0-1.2M with a 10 ms backoff.
    "fetch.queue.backoff.ms": 10,
}

# Set by kafkabench per run, never by a profile.
_RESERVED = {
    "bootstrap.servers": "the cluster comes from --bootstrap, KAFKABENCH_BOOTSTRAP "
    "or the embedded cluster",
    "group.id": "kafkabench names a consumer group per subscription",
}
_SECTIONS = ("common", "producer", "consumer")
# librdkafka settings whose values are secrets: never in results, reports or error messages.
_SECRET_KEY = re.compile(r"password|secret|passphrase|private\.key|^ssl\.key\.pem$|^ssl_key$"
                         r"|^sasl\.oauthbearer\.config$")
REDACTED = "<redacted>"


def redact(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with secret values (passwords, private keys, client secrets) as "<redacted>".

    Results, reports and error messages show what a run used; secrets stay in the profile.
    """
    return {k: REDACTED if _SECRET_KEY.search(str(k)) else v for k, v in settings.items()}

_ROLE_WARNING = re.compile(r"is a (producer|consumer) property and will be ignored")


class FrozenDict(dict):
    """A read-only, hashable dict that still pickles (MappingProxyType does not)."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """librdkafka settings for a run, split as OMB's driver files split them.

    Args:
        name: Label stored with results.
        common: Settings for both producers and consumers (security, client.id, ...).
        producer: Producer-only settings.
        consumer: Consumer-only settings.
        replication_factor: Replicas per partition of the topics a run creates; must agree with
            the workload's when both set one (see `workload.effective_replication_factor`).
        topic_config: Topic-level configs for the topics the run creates.
    """

    name: str
    common: Mapping[str, Any] = field(default_factory=FrozenDict)
    producer: Mapping[str, Any] = field(default_factory=FrozenDict)
    consumer: Mapping[str, Any] = field(default_factory=FrozenDict)
    replication_factor: int | None = None
    topic_config: Mapping[str, str] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        check_fields(self, _FIELDS, "")

    def producer_config(self, bootstrap: str, **overrides: Any) -> dict[str, Any]:
        """Settings for `confluent_kafka.Producer`.

        Args:
            bootstrap: The cluster's bootstrap servers.
            **overrides: Settings applied last, e.g. callbacks (`stats_cb`, `error_cb`).
                Dotted keys need a dict: `producer_config(b, **{"client.id": "p1"})`.

        Returns:
            kafkabench defaults, then `common`, then `producer`, then overrides.
        """
        conf = _client_conf(_quiet_logs(), PRODUCER_DEFAULTS, self.common, self.producer, overrides)
        conf["bootstrap.servers"] = bootstrap
        return conf

    def consumer_config(self, bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
        """Settings for `confluent_kafka.Consumer`.

        Args:
            bootstrap: The cluster's bootstrap servers.
            group_id: The consumer group.
            **overrides: Settings applied last, e.g. callbacks (`stats_cb`, `on_commit`).

        Returns:
            kafkabench defaults, then `common`, then `consumer`, then overrides.
        """
        conf = _client_conf(_quiet_logs(), CONSUMER_DEFAULTS, self.common, self.consumer, overrides)
        conf["bootstrap.servers"] = bootstrap
        conf["group.id"] = group_id
        return conf

    def validate(self) -> ClientProfile:
        """Check every setting against librdkafka, without contacting any broker.

        Returns:
            The profile itself, so loaders can chain it.

        Raises:
            ConfigError: Naming the section, the key and the value librdkafka rejects, or a
                producer setting placed where a consumer would ignore it (and vice versa).
        """
        for role, defaults in (("producer", PRODUCER_DEFAULTS), ("consumer", CONSUMER_DEFAULTS)):
            sections = {"defaults": defaults, "common": self.common, role: getattr(self, role)}
            _validate_role(self.name, role, sections)
        return self

    def as_flat_dict(self) -> dict[str, Any]:
        """One flat row for results: `common.<key>`, `producer.<key>`, `consumer.<key>`, ...

        Returns:
            Producer and consumer entries include the kafkabench defaults that apply.
        """
        row: dict[str, Any] = {
            "profile.name": self.name,
            "profile.replication_factor": self.replication_factor,
        }
        row.update({f"common.{k}": v for k, v in redact(self.common).items()})
        row.update({f"producer.{k}": v
                    for k, v in redact({**PRODUCER_DEFAULTS, **self.producer}).items()})
        row.update({f"consumer.{k}": v
                    for k, v in redact({**CONSUMER_DEFAULTS, **self.consumer}).items()})
        row.update({f"profile.topic_config.{k}": v for k, v in self.topic_config.items()})
        return row

    def to_dict(self, *, redact_secrets: bool = False) -> dict[str, Any]:
        """The kafkabench profile format, as written by `to_yaml` and read by `from_dict`.

        Args:
            redact_secrets: replace secret values by "<redacted>" (for results and reports).
        """
        shown = redact if redact_secrets else dict
        return {
            "name": self.name,
            "common": shown(self.common),
            "producer": shown(self.producer),
            "consumer": shown(self.consumer),
            "replication_factor": self.replication_factor,
            "topic_config": dict(self.topic_config),
        }

    def to_yaml(self, path: str | Path) -> Path:
        """Write the profile as kafkabench YAML.

        Args:
            path: File to write.

        Returns:
            The path written.
        """
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "custom") -> ClientProfile:
        """Build and validate a profile from the kafkabench format or an OMB driver mapping.

        Args:
            data: Keys `name, common, producer, consumer, replication_factor, topic_config`,
                or OMB's `name, driverClass, replicationFactor, reset, topicConfig,
                commonConfig, producerConfig, consumerConfig`.
            name: Used when `data` has no name (and always for OMB, whose files all say "Kafka").

        Returns:
            The validated profile.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a client profile must be a mapping, got {data!r}")
        if _OMB_DRIVER_KEYS.intersection(data) - {"name"}:
            return _from_omb_driver(data, name).validate()
        unknown = sorted(set(data) - {"name", "replication_factor", "topic_config", *_SECTIONS})
        if unknown:
            raise ConfigError(
                f"unknown client profile keys {unknown}; expected name, common, producer, "
                "consumer, replication_factor, topic_config (librdkafka settings go inside "
                "common/producer/consumer)"
            )
        sections = {s: data.get(s) or {} for s in _SECTIONS}
        return cls(
            name=str(data.get("name", name)),
            replication_factor=data.get("replication_factor"),
            topic_config=data.get("topic_config") or {},
            **sections,
        ).validate()

    def with_settings(self, common: Mapping[str, Any] | None = None,
                      producer: Mapping[str, Any] | None = None,
                      consumer: Mapping[str, Any] | None = None) -> ClientProfile:
        """This profile with settings laid over it: the one way the CLI, sweeps and Locust
        apply `k=v` settings to a profile.

        Args:
            common: Settings for both roles, replacing this profile's values of the same keys.
            producer: Producer settings, likewise.
            consumer: Consumer settings, likewise.

        Returns:
            A new, validated profile with the same name; this one when nothing is laid over.

        Raises:
            ConfigError: A setting librdkafka refuses, named with its value.
        """
        layers = {"common": common or {}, "producer": producer or {}, "consumer": consumer or {}}
        if not any(layers.values()):
            return self
        return ClientProfile(
            name=self.name, replication_factor=self.replication_factor,
            topic_config=self.topic_config,
            **{s: {**getattr(self, s), **layers[s]} for s in _SECTIONS}).validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> ClientProfile:
        """Load a kafkabench profile YAML or an OMB `driver-kafka/*.yaml` file as it is.

        Args:
            path: The YAML file.

        Returns:
            The validated profile, named after the file unless it names itself
            (OMB files are always named after the file).
        """
        return cls.from_dict(read_yaml(path, "client profile"), name=Path(path).stem)


def parse_kv(text: str, option: str = "") -> tuple[str, str]:
    """"key=value" -> (key, value), both stripped: the one `k=v` parser of kafkabench.

    Args:
        text: The argument, e.g. "linger.ms=5".
        option: The option it came from, named in the error (e.g. "--producer-props").

    Raises:
        ConfigError: No "=" or an empty key, quoting the argument.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        where = f"{option} " if option else ""
        raise ConfigError(f"{where}{text!r}: expected key=value")
    return key.strip(), value.strip()


#: Settings that say how to reach the cluster (security, SASL, TLS): every client needs them.
CONNECTION_PREFIXES = ("security.", "sasl.", "ssl.", "ssl_", "enable.ssl.", "enable.sasl.")
_ROLES = ("producer", "consumer")


def route_settings(pairs: Mapping[str, Any],
                   default_role: str | None = None) -> dict[str, dict[str, Any]]:
    """Client settings given as `key=value` -> the layers of `ClientProfile.with_settings`:
    the one rule of every command's `--command-property`/`--command-config` and Locust's
    `--kafka-conf`.

    - `producer.KEY` / `consumer.KEY`: KEY for that role only.
    - Connection settings (`CONNECTION_PREFIXES`: `security.*`, `sasl.*`, `ssl.*`): every client.
    - Any other key: `default_role`, the command's own client (`produce`: the producer);
      without one (`run`, `sweep`, Locust), the one role librdkafka accepts the key for
      (`linger.ms`: producer, `fetch.min.bytes`: consumer), else every client (`client.id`).

    Args:
        pairs: setting -> value, values as given (a profile's validation checks them).
        default_role: "producer", "consumer" or None.

    Returns:
        `{"common": {...}, "producer": {...}, "consumer": {...}}`, keys without their role prefix.
    """
    if default_role not in (None, *_ROLES):
        raise ValueError(f"default_role={default_role!r}: expected None, 'producer' or 'consumer'")
    layers: dict[str, dict[str, Any]] = {"common": {}, "producer": {}, "consumer": {}}
    for key, value in pairs.items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix in _ROLES:
            layers[prefix][rest] = value
        elif key.startswith(CONNECTION_PREFIXES):
            layers["common"][key] = value
        else:
            layers[default_role or _only_role(key, value) or "common"][key] = value
    return layers


def _only_role(key: str, value: Any) -> str | None:
    """The one role librdkafka accepts `key` for (a client of the other role says it ignores
    it), or None: both roles, or a key or value librdkafka refuses."""
    for other in _ROLES:
        _, warnings = _probe(other, {key: value})
        for warning in warnings:
            match = _ROLE_WARNING.search(warning)
            if match:
                return match.group(1)
    return None


def _settings(section: str, settings: Any) -> FrozenDict:
    """Check the shape of one settings section and freeze it."""
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{section} must be a mapping of librdkafka settings, got {settings!r}")
    for key, value in settings.items():
        if not isinstance(key, str):
            raise ConfigError(f"{section}: setting name {key!r} must be a string")
        if key in _RESERVED:
            raise ConfigError(
                f"{section}: {key}={value!r} cannot be set in a profile: {_RESERVED[key]}"
            )
        if not isinstance(value, (str, int, float)):
            raise ConfigError(
                f"{section}: {key}={value!r}: librdkafka settings are strings, numbers or booleans"
            )
    return FrozenDict(settings)


def _topic_config(label: str, value: Any) -> FrozenDict:
    """Topic configs, frozen, their values as strings."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{label} must be a mapping, got {value!r}")
    return FrozenDict({str(k): _topic_value(v) for k, v in value.items()})


#: Each field's check, in the order they run (`core.checks`).
_FIELDS = {"common": _settings, "producer": _settings, "consumer": _settings,
           "topic_config": _topic_config, "replication_factor": optional(integer(1))}


def _topic_value(value: Any) -> str:
    """Topic configs travel to the broker as strings."""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"topic_config value {value!r} must be a string or a number")
    return str(value)


def _client_value(value: Any) -> Any:
    """YAML booleans as librdkafka spells them; everything else as it is (callbacks too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _quiet_logs() -> dict[str, Any]:
    """librdkafka's log lines go to the `kafkabench.librdkafka` logger (shown with -v), not
    raw to stderr; a profile's own `logger` wins. Kept out of the defaults that results
    record."""
    from kafkabench.core.log import librdkafka_logger

    return {"logger": librdkafka_logger()}


def _client_conf(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge settings layers, later ones winning, ready for a confluent_kafka client."""
    return {k: _client_value(v) for layer in layers for k, v in layer.items()}


#: Kafka's server-side assignors for `group.protocol=consumer` (KIP-848).
SERVER_ASSIGNORS = ("uniform", "range")


class _LogCapture:
    """A confluent_kafka `logger`: librdkafka's configuration warnings land here."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def log(self, level: int, fmt: str, *args: Any) -> None:
        message = fmt % args
        if "bootstrap.servers" not in message:  # expected: the probe has no cluster
            self.messages.append(message.split("]: ", 1)[-1])


def _probe(role: str, conf: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """Build a brokerless client from conf and close it.

    With no bootstrap.servers librdkafka has nothing to connect to, so this never leaves the
    process; it takes a few milliseconds.

    Returns:
        librdkafka's error (None if accepted) and its configuration warnings.
    """
    capture = _LogCapture()
    conf = {**_client_conf(conf), "logger": capture}
    try:
        if role == "producer":
            client = Producer(conf)
            client.poll(0)  # a producer hands its queued log lines to `logger` only in poll()
        else:
            client = Consumer({**conf, "group.id": "kafkabench-validate"})
            client.close()
    except KafkaException as e:
        return e.args[0].str(), capture.messages
    except (TypeError, ValueError) as e:
        return str(e), capture.messages
    return None, capture.messages


def _validate_role(name: str, role: str, sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError if librdkafka rejects, or a `role` client would ignore, any setting."""
    merged = {k: v for settings in sections.values() for k, v in settings.items()}
    assignor = str(merged.get("group.remote.assignor", "uniform"))
    if role == "consumer" and assignor not in SERVER_ASSIGNORS:
        # librdkafka passes any name on; the broker refuses it only when the member joins.
        raise ConfigError(f"profile {name!r}, consumer: group.remote.assignor={assignor!r}: "
                          f"expected one of the broker's assignors {', '.join(SERVER_ASSIGNORS)} "
                          "(Kafka's group.consumer.assignors)")
    error, warnings = _probe(role, merged)
    if error is None and not any(_ROLE_WARNING.search(w) for w in warnings):
        for warning in warnings:
            log.warning("profile %r, %s: librdkafka: %s", name, role, warning)
        return
    # Find the culprit one key at a time: librdkafka names aliases by their canonical name
    # (linger.ms -> queue.buffering.max.ms) and does not quote the value.
    owner = {k: section for section, settings in sections.items() for k in settings}
    for key, value in merged.items():
        _check_alone(f"profile {name!r}, {owner[key]}", role, key, value, error)
    # Settings that are fine one by one and wrong together (TLS/SASL, mostly).
    raise ConfigError(
        f"profile {name!r}: librdkafka rejects these {role} settings together: "
        f"{redact(merged)!r}: {error}"
    )


def _check_alone(where: str, role: str, key: str, value: Any, error: str | None) -> None:
    """Raise ConfigError if `key=value` alone fails as the whole profile did, or belongs to the
    other role.

    A key is the culprit only if it fails alone with the same error: security.protocol=SASL_SSL
    alone fails for want of a sasl.mechanism the profile does set, which is not the profile's
    problem.
    """
    alone_error, alone_warnings = _probe(role, {key: value})
    shown = f"{key}={redact({key: value})[key]!r}"
    if alone_error is not None and alone_error == error:
        raise ConfigError(f"{where}: {shown}: {alone_error}")
    if any(_ROLE_WARNING.search(w) for w in alone_warnings):
        other = "producer" if role == "consumer" else "consumer"
        raise ConfigError(f"{where}: {shown} is a {other} setting that a {role} ignores; "
                          f"put it under {other}:")


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Parse a YAML file; a missing, unreadable or bad file is a ConfigError naming the path.

    Args:
        path: The file.
        what: What the file should hold, for the messages ("workload", "client profile", ...).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder; give the path of a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a text file; give a YAML file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {e}") from None



# --- YAML files that ship inside the package ----------------------------------------------

#: kafkabench's own YAML files, installed with the package (the repo root links `workloads/`
#: here): kafkabench workloads and client profiles, OMB workloads and driver files under omb/.
WORKLOADS_DIR = Path(str(resources.files("kafkabench") / "workloads"))
_PROFILE_KEYS = {"name", "common", "producer", "consumer", "replication_factor", "topic_config"}


def _packaged_kind(path: Path) -> str:
    """"client profile" or "workload", from a packaged YAML file's keys."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "unreadable"
    if isinstance(data, Mapping) and set(data) <= _PROFILE_KEYS | _OMB_DRIVER_KEYS:
        return "client profile"
    return "workload"


def packaged_files(kind: str) -> list[str]:
    """Names of the YAML files of one kind that ship with kafkabench.

    Args:
        kind: "workload" or "client profile".

    Returns:
        Paths relative to `WORKLOADS_DIR` without ".yaml", e.g. "quickstart" or
        "omb/driver-kafka/kafka-latency": each is a name `load_workload` / `load_profile` take.
    """
    return sorted(str(p.relative_to(WORKLOADS_DIR).with_suffix(""))
                  for p in WORKLOADS_DIR.rglob("*.yaml") if _packaged_kind(p) == kind)


def packaged_file(spec: str | Path, kind: str) -> Path | None:
    """The packaged YAML file a relative path or a name stands for, when there is one.

    So that `workloads/quickstart.yaml`, `quickstart.yaml` and `quickstart` name the same file
    from any folder, installed or not. Callers try the path as given first: a file of that
    name in the current folder wins.

    Args:
        spec: "workloads/<path>", "<path>" (relative to `WORKLOADS_DIR`, ".yaml" optional) or a
            bare name, also looked up in the subfolders (OMB's files).
        kind: "workload" or "client profile": a file of the other kind is not returned.

    Returns:
        The file inside the installed package, or None.
    """
    path = Path(spec)
    parts = path.parts[1:] if path.parts[:1] == ("workloads",) else path.parts
    if path.is_absolute() or not parts or ".." in parts:
        return None
    rel = Path(*parts)
    names = [rel] if rel.suffix in (".yaml", ".yml") else [rel.with_name(f"{rel.name}.yaml"), rel]
    candidates = [WORKLOADS_DIR / name for name in names]
    if len(path.parts) == 1:
        candidates += sorted(WORKLOADS_DIR.rglob(names[0].name))
    return next((c for c in candidates if c.is_file() and _packaged_kind(c) == kind), None)


def resolve_yaml(spec: str | Path, kind: str) -> Path:
    """A YAML path as given when it exists, else the packaged file it names (`packaged_file`).

    Args:
        spec: A path, or the name of a file that ships with kafkabench.
        kind: "workload" or "client profile", for the lookup and the message.

    Returns:
        The path to read (`read_yaml` reports a folder or an unreadable file).

    Raises:
        ConfigError: Neither exists; the message lists kafkabench's files of that kind.
    """
    path = Path(spec)
    found = path if path.exists() else packaged_file(path, kind)
    if found is None:
        raise ConfigError(
            f"{kind} {str(spec)!r}: no such file; give a YAML path, or one of kafkabench's "
            f"{kind} files by name (e.g. workloads/NAME.yaml or NAME): "
            f"{', '.join(packaged_files(kind))}")
    return found


# --- OpenMessaging Benchmark driver-kafka/*.yaml -------------------------------------------

_OMB_DRIVER_KEYS = {
    "name", "driverClass", "replicationFactor", "reset",
    "topicConfig", "commonConfig", "producerConfig", "consumerConfig",
}  # fmt: skip
_OMB_DRIVER_CLASS = "io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver"

# Java client properties that mean nothing to librdkafka: dropped, with the reason logged.
_JAVA_ONLY = {
    "key.serializer": "kafkabench sends bytes",
    "value.serializer": "kafkabench sends bytes",
    "key.deserializer": "kafkabench receives bytes",
    "value.deserializer": "kafkabench receives bytes",
    "default.api.timeout.ms": "every kafkabench call passes its own timeout",
    "max.poll.records": "the consumer runner sets the batch size of consume()",
}

# Java property -> librdkafka property and value, where the names or units differ.
_JAVA_RENAMED = {
    "buffer.memory": ("queue.buffering.max.kbytes", lambda v: max(1, int(v) // 1024)),
    "max.request.size": ("message.max.bytes", int),
    "fetch.max.wait.ms": ("fetch.wait.max.ms", int),
    # Java's -1 (OS default) is librdkafka's 0.
    "send.buffer.bytes": ("socket.send.buffer.bytes", lambda v: max(0, int(v))),
    "receive.buffer.bytes": ("socket.receive.buffer.bytes", lambda v: max(0, int(v))),
    # Java has no upper bound; librdkafka allows at most 900000 (OMB's throughput file has 1200000).
    "request.timeout.ms": ("request.timeout.ms", lambda v: min(int(v), 900_000)),
}


def _from_omb_driver(data: Mapping[str, Any], name: str) -> ClientProfile:
    """Map an OMB Kafka driver file (Java client properties) to a librdkafka profile."""
    unknown = sorted(set(data) - _OMB_DRIVER_KEYS)
    if unknown:
        raise ConfigError(f"OMB driver {name!r}: unknown keys {unknown}")
    driver = data.get("driverClass", _OMB_DRIVER_CLASS)
    if driver != _OMB_DRIVER_CLASS:
        raise ConfigError(f"OMB driver {name!r}: driverClass={driver!r} is not {_OMB_DRIVER_CLASS}")
    if "reset" in data:
        log.info("OMB driver %r: reset is ignored; every kafkabench run creates new topics", name)
    sections = {
        s: _librdkafka_settings(name, s, data.get(f"{s}Config") or "") for s in _SECTIONS
    }
    # OMB's commonConfig goes to Java producers and consumers alike, which accept and ignore
    # each other's settings; librdkafka warns, so each role-specific key moves to its role.
    for key, value in list(sections["common"].items()):
        role = _only_role(key, value)
        if role is not None:
            sections[role].setdefault(key, sections["common"].pop(key))
    return ClientProfile(
        name=name,
        replication_factor=data.get("replicationFactor"),
        topic_config=_properties(name, "topicConfig", data.get("topicConfig") or ""),
        **sections,
    )


def _librdkafka_settings(name: str, section: str, text: str) -> dict[str, Any]:
    """Java client properties text -> librdkafka settings."""
    settings = {}
    for key, value in _properties(name, f"{section}Config", text).items():
        where = f"OMB driver {name!r}, {section}Config: {key}={value!r}"
        if key == "bootstrap.servers":
            # OMB connects to it; kafkabench never does, so a user may expect the wrong cluster.
            log.warning("%s is ignored: kafkabench connects to --bootstrap, KAFKABENCH_BOOTSTRAP "
                        "or the running embedded cluster", where)
            continue
        if key in _JAVA_ONLY:
            log.info("%s dropped: %s", where, _JAVA_ONLY[key])
            continue
        if key in _JAVA_RENAMED:
            new_key, convert = _JAVA_RENAMED[key]
            try:
                new_value = convert(value)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer") from None
            if (new_key, new_value) != (key, value):
                log.info("%s maps to librdkafka %s=%r", where, new_key, new_value)
            key, value = new_key, new_value
        error, _ = _probe("producer", {key: value})
        if error is not None and error.startswith("No such configuration property"):
            raise ConfigError(f"{where}: the Java client property has no librdkafka equivalent")
        settings[key] = value
    return settings


def _properties(name: str, section: str, text: Any) -> dict[str, Any]:
    """Parse Java .properties text; numbers and true/false become YAML-like scalars."""
    if not isinstance(text, str):
        raise ConfigError(f"OMB driver {name!r}: {section} must be properties text, got {text!r}")
    result: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        parts = re.split(r"\s*[=:]\s*", line, maxsplit=1)
        if len(parts) != 2:
            raise ConfigError(f"OMB driver {name!r}, {section}: {line!r} is not key=value")
        key, value = parts
        result[key] = yaml.safe_load(value) if re.fullmatch(r"-?\d+|true|false", value) else value
    return result


# --- Presets: the producer and consumer settings of OMB's driver-kafka/kafka-<name>.yaml ------
# OMB's replicationFactor: 3 and min.insync.replicas=2 are left to the workload, so that every
# preset also runs on the one-broker embedded cluster; load the OMB file itself to get them.

_OMB_CONSUMER = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "max.partition.fetch.bytes": 10485760,
}
_OMB_PRODUCER = {"acks": "all", "linger.ms": 1, "batch.size": 1048576}


def _preset(name: str, **producer: Any) -> ClientProfile:
    return ClientProfile(name=name, producer=producer, consumer=_OMB_CONSUMER)


PRESETS: dict[str, ClientProfile] = {
    "default": ClientProfile(name="default"),
    "throughput": _preset("throughput", **_OMB_PRODUCER, **{"request.timeout.ms": 900_000}),
    "latency": _preset("latency", **{**_OMB_PRODUCER, "batch.size": 131072}),
    **{
        f"compression-{codec}": _preset(
            f"compression-{codec}", **_OMB_PRODUCER, **{"compression.type": codec}
        )
        for codec in ("gzip", "lz4", "snappy", "zstd")
    },
    "big-batches": _preset(
        "big-batches", **{**_OMB_PRODUCER, "linger.ms": 100, "message.max.bytes": 4194304}
    ),
    "exactly-once": _preset(
        "exactly-once",
        **{
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 1,
            "retries": 2147483647,
            **_OMB_PRODUCER,
        },
    ),
}


def load_profile(
    spec: ClientProfile | Mapping[str, Any] | str | Path | None = None,
) -> ClientProfile:
    """The one way to get a validated `ClientProfile`.

    Args:
        spec: None for the default preset, a preset name (see `PRESETS`), a kafkabench or
            OMB driver YAML path, a mapping (see `ClientProfile.from_dict`) or a profile.
            A path or name that does not exist here is looked up among the files that ship
            with kafkabench (`packaged_file`): `workloads/omb/driver-kafka/kafka-latency.yaml`
            and `kafka-latency` work from any folder.

    Returns:
        The profile, checked against librdkafka.

    Raises:
        ConfigError: For an unknown preset, a missing file or a setting librdkafka rejects.
    """
    if spec is None:
        return PRESETS["default"].validate()
    if isinstance(spec, ClientProfile):
        return spec.validate()
    if isinstance(spec, Mapping):
        return ClientProfile.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec].validate()
    if isinstance(spec, Path) or (isinstance(spec, str) and re.search(r"[/\\.]", spec)):
        return ClientProfile.from_yaml(resolve_yaml(spec, "client profile"))
    if isinstance(spec, str):
        found = Path(spec) if Path(spec).exists() else packaged_file(spec, "client profile")
        if found is not None:
            return ClientProfile.from_yaml(found)
    raise ConfigError(f"unknown client profile {spec!r}; presets are {', '.join(PRESETS)}, "
                      f"kafkabench's profile files {', '.join(packaged_files('client profile'))}, "
                      "or give a YAML file path")
