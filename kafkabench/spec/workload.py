"""What load to apply: `Workload`, message sizes, key sequences, payload pools, OMB workload YAML.

Keys and payloads are generated before a run, never in the producer's hot loop: the producer
indexes into `key_sequence()` and `payload_pool()` lists.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from kafkabench.core.checks import (
    Check,
    Rule,
    check_fields,
    check_rules,
    duration,
    flag,
    fraction,
    integer,
    is_int,
    number,
    one_of,
    optional,
    parsed_by,
    refuse,
    safe_name,
    str_mapping,
    text,
)
from kafkabench.core.errors import ConfigError
from kafkabench.spec.faults import FaultSchedule, parse_faults
from kafkabench.spec.membership import parse_member_events
from kafkabench.spec.processing import processing_from_spec
from kafkabench.spec.profile import ClientProfile, FrozenDict, read_yaml, resolve_yaml

log = logging.getLogger(__name__)

KEY_DISTRIBUTIONS = ("none", "round-robin", "random", "zipf")
PAYLOAD_KINDS = ("random", "text")
# A payload pool holds at most this many bytes, so 10 MB messages do not take 10 GB.
POOL_BYTES_MAX = 64 * 1024 * 1024
# random and zipf keys repeat after this many draws (or 4 per key, if more).
KEY_SEQUENCE_MIN = 1 << 16
KEY_COUNT_MAX = 1_000_000
#: Fields in seconds that also take a duration text: 90, "90s", "5m", "1h30m".
DURATION_FIELDS = ("duration_s", "warmup_s")


@dataclass(frozen=True, slots=True)
class UniformSize:
    """Message sizes drawn uniformly from [min, max] bytes."""

    min: int
    max: int

    @property
    def mean(self) -> float:
        return (self.min + self.max) / 2

    def sample(self, rng: random.Random, k: int) -> list[int]:
        """Draw k sizes."""
        return [rng.randint(self.min, self.max) for _ in range(k)]

    def to_spec(self) -> dict[str, Any]:
        """The YAML form."""
        return {"distribution": "uniform", "min": self.min, "max": self.max}


@dataclass(frozen=True, slots=True)
class WeightedSizes:
    """Message sizes drawn from a few choices with relative weights."""

    choices: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(c * w for c, w in zip(self.choices, self.weights)) / sum(self.weights)

    def sample(self, rng: random.Random, k: int) -> list[int]:
        """Draw k sizes."""
        return rng.choices(self.choices, weights=self.weights, k=k)

    def to_spec(self) -> dict[str, Any]:
        """The YAML form."""
        return {"choices": list(self.choices), "weights": list(self.weights)}


MessageSize = int | UniformSize | WeightedSizes


def message_size_from_spec(spec: Any) -> MessageSize:
    """Parse a message size.

    Args:
        spec: Bytes as an int, `{"distribution": "uniform", "min": 100, "max": 2000}`,
            `{"choices": [100, 1000], "weights": [0.8, 0.2]}` (weights default to equal),
            or an already parsed size.

    Returns:
        An int, `UniformSize` or `WeightedSizes`, each size >= 1.
    """
    parsed = isinstance(spec, (UniformSize, WeightedSizes))
    size = _size(spec.to_spec() if parsed else spec)
    if size is None:
        raise ConfigError(f"message_size={spec!r}: expected bytes >= 1, {{distribution: uniform, "
                          "min, max} or {choices: [...], weights: [...]}")
    return size


def _size(spec: Any) -> MessageSize | None:
    """A message size from its YAML form; None if it is not one."""
    if not isinstance(spec, Mapping):
        return spec if _is_bytes(spec) else None
    if spec.get("distribution") == "uniform" and len(spec) == 3:
        lo, hi = spec.get("min"), spec.get("max")
        return UniformSize(lo, hi) if _is_bytes(lo) and _is_bytes(hi) and lo <= hi else None
    if set(spec) in ({"choices"}, {"choices", "weights"}):
        return _weighted(spec)
    return None


def _weighted(spec: Mapping[str, Any]) -> WeightedSizes | None:
    """`{choices: [...], weights: [...]}` as `WeightedSizes`; None if it is not one."""
    try:
        choices = tuple(spec["choices"] or ())
        weights = tuple(spec.get("weights") or [1.0] * len(choices))
    except TypeError:  # not lists
        return None
    if not choices or len(weights) != len(choices) or not all(map(_is_bytes, choices)) \
            or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
        return None
    return WeightedSizes(choices, tuple(float(w) for w in weights))


def _is_bytes(value: Any) -> bool:
    """A size in bytes: an int >= 1."""
    return is_int(value) and value >= 1


@dataclass(frozen=True, slots=True)
class Workload:
    """The load to apply, independent of client tuning (OMB's `workloads/*.yaml`).

    Args:
        name: Label stored with results.
        topics: Number of topics.
        partitions: Partitions per topic.
        replication_factor: Replicas per partition; None takes the profile's, else the
            cluster's default.replication.factor. See `effective_replication_factor`.
        topic_config: Topic-level configs, e.g. `{"min.insync.replicas": "2"}`.
        message_size: Bytes per message, or a distribution (see `message_size_from_spec`).
        payload: "random" (incompressible bytes), "text" (JSON order events, compress ~4x)
            or a file whose bytes are every message (OMB's payloadFile).
        random_bytes_ratio: For "random": the random share of each message; the rest is
            zeros, as OMB's randomBytesRatio (to tune compressibility).
        payload_pool_size: Distinct payloads generated before the run.
        key_distribution: "none" (key None: librdkafka's sticky partitioner fills one batch
            at a time), "round-robin" over key_count keys, "random" (uniform) or "zipf".
        key_count: Distinct keys (OMB uses 10000).
        key_skew: Zipf exponent s: key of rank r is drawn with probability ∝ 1 / r**s.
        producers: Producers per topic.
        producer_rate: Messages/s in total across all producers; 0 = as fast as possible.
        consumer_groups: Consumer groups per topic (OMB subscriptions); 0 = produce only.
        consumers_per_group: Consumers in each group.
        duration_s: Measured time after warm-up: seconds, or a duration such as "90s", "5m".
        warmup_s: Time before measuring starts: seconds, or a duration such as "30s".
        backlog_messages: Messages (all topics) produced before consumers start;
            then the drain is measured. 0 = consumers run from the start.
        topic_prefix: Topic names are `<prefix>-<run_id>-<index>`.
        message_count: Stop after this many messages in total (then duration_s may be 0).
        headers: Headers sent with every message, name -> text value, e.g.
            `{"event-type": "OrderCreated", "version": "1"}` as the design source's events
            carry (headers cost producer and broker time: measure them).
        verify: Check delivery: every message carries its producer and sequence number
            (header `kb-seq`, 20 bytes), and after the run a fresh consumer reads the topics
            back and counts what was lost, duplicated, reordered or delivered though it
            failed (`kafkabench.verify`).
        faults: A fault schedule: entries `{at_s, action, target, duration_s, command}`
            (`kafkabench.faults.parse_faults`), e.g. `{"at_s": 10, "action": "kill",
            "target": "leader", "duration_s": 10}`. Kept parsed, as a `FaultSchedule`: a run
            checks it against its cluster with `parse_faults(workload.faults, node_ids=...)`,
            which does not parse it again.
        fault_commands: For a cluster kafkabench did not start: the shell command of each
            fault action, e.g. `{"kill": "ssh kafka{node} pkill -9 java"}` (`{node}` and
            `{action}` are filled in).
        processing: What each consumer member does with a message: processing time,
            injected failures, retries, dead letters, filtering, output
            (`kafkabench.processing.Processing` or its mapping); None: consume only.
        membership: Consumer-group membership events: entries `{at_s, action, member,
            group, topic}` with action crash, restart or join (`kafkabench.membership`).
        transaction_messages: Producers send in transactions of this many messages
            (a `transactional.id` per producer; needs acks=all and idempotence); 0: no
            transactions.
    """

    name: str = "workload"
    topics: int = 1
    partitions: int = 1
    replication_factor: int | None = None
    topic_config: Mapping[str, str] = field(default_factory=FrozenDict)
    message_size: MessageSize = 1024
    payload: str = "random"
    random_bytes_ratio: float = 1.0
    payload_pool_size: int = 1000
    key_distribution: str = "none"
    key_count: int = 10_000
    key_skew: float = 1.0
    producers: int = 1
    producer_rate: float = 0.0
    consumer_groups: int = 1
    consumers_per_group: int = 1
    duration_s: float = 10.0
    warmup_s: float = 0.0
    backlog_messages: int = 0
    topic_prefix: str = "kb"
    message_count: int | None = None
    headers: Mapping[str, str] = field(default_factory=FrozenDict)
    verify: bool = False
    faults: tuple = ()
    fault_commands: Mapping[str, str] = field(default_factory=FrozenDict)
    processing: Any = None
    transaction_messages: int = 0
    membership: tuple = ()

    def __post_init__(self) -> None:
        check_fields(self, _FIELDS, "workload ")
        check_rules(self, _RULES)
        # The schedules are checked against the counts and the run's length checked above; a
        # run that stops after message_count messages has no length to check them against.
        run_s = self.run_s if self.message_count is None else None
        object.__setattr__(self, "membership", parse_member_events(
            self.membership, members=self.consumers_per_group, groups=self.consumer_groups,
            topics=self.topics, run_s=run_s))
        parse_faults(self.faults, run_s=run_s)

    @property
    def run_s(self) -> float:
        """Warm-up plus measured time: the span a fault schedule's `at_s` must fall in."""
        return self.warmup_s + self.duration_s

    @property
    def total_producers(self) -> int:
        """Producers across all topics."""
        return self.topics * self.producers

    @property
    def total_consumers(self) -> int:
        """Consumers across all topics and groups."""
        return self.topics * self.consumer_groups * self.consumers_per_group

    @property
    def total_partitions(self) -> int:
        """Partitions across all topics."""
        return self.topics * self.partitions

    @property
    def rate_per_producer(self) -> float:
        """Messages/s each producer sends; 0 = as fast as possible."""
        return self.producer_rate / self.total_producers

    @property
    def mean_message_size(self) -> float:
        """Expected bytes per message."""
        size = self.message_size
        return float(size) if isinstance(size, int) else size.mean

    def topic_names(self, run_id: str) -> list[str]:
        """Names of the run's topics.

        Args:
            run_id: The run's id; letters, digits, '.', '_' and '-'.

        Returns:
            `<prefix>-<run_id>-<index>`, the index zero-padded so names sort in order.
        """
        width = len(str(self.topics - 1))
        return [f"{self.topic_prefix}-{run_id}-{i:0{width}d}" for i in range(self.topics)]

    def to_dict(self) -> dict[str, Any]:
        """The kafkabench workload format, as written by `to_yaml` and read by `from_dict`."""
        data = asdict(self)
        data["topic_config"] = dict(self.topic_config)
        data["headers"] = dict(self.headers)
        data["faults"] = [fault_dict(f) for f in self.faults]
        data["fault_commands"] = dict(self.fault_commands)
        data["processing"] = None if self.processing is None else self.processing.to_dict()
        data["membership"] = [asdict(e) for e in self.membership]
        size = self.message_size
        data["message_size"] = size if isinstance(size, int) else size.to_spec()
        return data

    def to_yaml(self, path: str | Path) -> Path:
        """Write the workload as kafkabench YAML.

        Args:
            path: File to write.

        Returns:
            The path written.
        """
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    def as_flat_dict(self) -> dict[str, Any]:
        """One flat row for results: `workload.<field>`.

        Returns:
            `workload.message_size` is the mean in whole bytes (one numeric column across
            runs); `workload.message_size_distribution` says how sizes were drawn.
        """
        row = {f"workload.{k}": v for k, v in self.to_dict().items()
               if k not in ("topic_config", "headers", "faults", "fault_commands", "processing",
                            "membership")}
        if self.membership:
            row["workload.membership"] = json.dumps(self.to_dict()["membership"])
        if self.faults:
            row["workload.faults"] = json.dumps(self.to_dict()["faults"])
        if self.processing is not None:
            row["workload.processing"] = json.dumps(self.to_dict()["processing"])
        row.update({f"workload.topic_config.{k}": v for k, v in self.topic_config.items()})
        row.update({f"workload.headers.{k}": v for k, v in self.headers.items()})
        size = self.message_size
        row["workload.message_size"] = round(self.mean_message_size)
        row["workload.message_size_distribution"] = (
            "fixed" if isinstance(size, int) else json.dumps(size.to_spec())
        )
        return row

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Workload:
        """Build a workload from the kafkabench format or an OMB workload mapping.

        Args:
            data: `Workload` field names, or OMB's workload keys (`partitionsPerTopic`, ...).
            base_dir: Folder that relative payload file paths are resolved against.
            overrides: `Workload` fields that replace what `data` gives (the CLI's `--set`),
                also over an OMB mapping; what is said about the workload (OMB's warm-up,
                say) is said about the result.

        Returns:
            The validated workload.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a workload must be a mapping, got {data!r}")
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown workload keys {unknown}; expected some of {sorted(known)}")
        if set(data) & (_OMB_WORKLOAD_KEYS - {"name", "topics"}):
            return _from_omb_workload(data, Path(base_dir or "."), overrides)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown workload keys {unknown}; expected some of {sorted(known)}")
        data = dict(data)
        payload = data.get("payload")
        if base_dir is not None and isinstance(payload, str) and payload not in PAYLOAD_KINDS:
            data["payload"] = str(Path(base_dir) / payload)
        return cls(**{**data, **overrides})

    @classmethod
    def from_yaml(cls, path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> Workload:
        """Load a kafkabench workload YAML or an OMB `workloads/*.yaml` file as it is.

        Args:
            path: The YAML file; relative payload paths resolve against its folder.
            overrides: `Workload` fields replacing the file's (see `from_dict`).

        Returns:
            The validated workload.
        """
        return cls.from_dict(read_yaml(path, "workload"), base_dir=Path(path).parent,
                             overrides=overrides)


def fault_dict(fault: Any) -> dict[str, Any]:
    """A `Fault` as the mapping a workload file holds (unset fields left out)."""
    return {k: v for k, v in asdict(fault).items() if v is not None}


def _frozen(check: Check) -> Check:
    """`check`, its mapping frozen (a workload is hashable)."""
    return lambda label, value: FrozenDict(check(label, value))


def _topic_config(label: str, value: Any) -> FrozenDict:
    """Topic configs travel to the broker as strings."""
    if not isinstance(value, Mapping):
        refuse(label, value, "expected a mapping")
    return FrozenDict({str(k): str(v) for k, v in value.items()})


def _faults(label: str, value: Any) -> FaultSchedule:
    """The schedule parsed (once: a `FaultSchedule` is kept as it is)."""
    if value is None:
        return FaultSchedule()
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        refuse(label, value, "expected a list of faults, e.g. [{at_s: 10, action: kill, "
                             "target: leader}]")
    return parse_faults(value)


def _payload(label: str, value: Any) -> str:
    """"random", "text" or a file path, as a string."""
    value = str(value) if isinstance(value, Path) else value
    if not isinstance(value, str) or not value:
        refuse(label, value, "expected 'random', 'text' or a file path")
    return value


def _payload_file_fits(workload: Workload) -> None:
    """A payload file exists and message_size is its size (every message is the file)."""
    if workload.payload in PAYLOAD_KINDS:
        return
    file = Path(workload.payload)
    if not file.is_file():
        raise ConfigError(f"workload payload={workload.payload!r}: no such file "
                          f"(or use 'random' or 'text')")
    size = file.stat().st_size
    if workload.message_size != size:
        raise ConfigError(f"workload payload={workload.payload!r} is {size} bytes but "
                          f"message_size={workload.message_size!r}; set message_size: {size}")


_POSITIVE, _COUNT = integer(1), integer(0)
#: Each field's check, in the order they run (`core.checks`).
_FIELDS: dict[str, Check] = {
    "verify": flag,
    "fault_commands": _frozen(str_mapping("a mapping of fault actions to shell commands",
                                          nonempty_values=True)),
    "faults": _faults,
    "processing": parsed_by(processing_from_spec),
    "message_size": parsed_by(message_size_from_spec),
    "topic_config": _topic_config,
    "headers": _frozen(str_mapping("a mapping of non-empty header names to text values",
                                   nonempty_keys=True)),
    "name": text,
    "topics": _POSITIVE,
    "partitions": _POSITIVE,
    "payload_pool_size": _POSITIVE,
    "key_count": integer(1, KEY_COUNT_MAX),
    "producers": _POSITIVE,
    "consumer_groups": _COUNT,
    "consumers_per_group": _COUNT,
    "backlog_messages": _COUNT,
    "transaction_messages": _COUNT,
    "replication_factor": optional(_POSITIVE),
    **{name: duration for name in DURATION_FIELDS},
    "producer_rate": number(0),
    "random_bytes_ratio": fraction,
    "key_skew": number(above=0),
    "message_count": optional(_POSITIVE),
    "key_distribution": one_of(KEY_DISTRIBUTIONS),
    "topic_prefix": safe_name,
    "payload": _payload,
}
#: Rules across fields, checked after `_FIELDS`.
_RULES: list[Rule] = [
    (lambda w: w.message_count is not None or w.duration_s > 0,
     "workload duration_s={duration_s!r}: must be > 0 unless message_count is set"),
    _payload_file_fits,
]


def load_workload(spec: Workload | Mapping[str, Any] | str | Path | None = None, *,
                  overrides: Mapping[str, Any] | None = None) -> Workload:
    """The one way to get a validated `Workload`.

    Args:
        spec: None for the defaults (a short local run), a workload, a mapping
            (see `Workload.from_dict`) or a kafkabench or OMB workload YAML path. A path or
            name that does not exist here is looked up among the workloads that ship with
            kafkabench (`config.packaged_file`): `workloads/quickstart.yaml` and `quickstart`
            work from any folder.
        overrides: `Workload` fields that replace the spec's (the CLI's `--set`).

    Returns:
        The workload.

    Raises:
        ConfigError: An invalid workload, or a missing file (listing kafkabench's workloads).
    """
    if spec is None:
        spec = Workload()
    if isinstance(spec, Workload):
        return Workload.from_dict(spec.to_dict(), overrides=overrides) if overrides else spec
    if isinstance(spec, Mapping):
        return Workload.from_dict(spec, overrides=overrides)
    if isinstance(spec, (str, Path)):
        return Workload.from_yaml(resolve_yaml(spec, "workload"), overrides=overrides)
    raise ConfigError(f"workload {spec!r}: expected a Workload, a mapping or a YAML path")


def effective_replication_factor(workload: Workload, profile: ClientProfile, *,
                                 override: int | None = None) -> int | None:
    """The replication factor of the topics a run creates: the one rule every caller applies.

    An explicit `override` (the CLI's `--set replication_factor=N`) wins, with a logged
    warning when the workload or the profile says otherwise. Without one, the workload's and
    the profile's value (OMB driver files carry `replicationFactor`) must agree when both are set.

    Args:
        workload: Its replication_factor; None when it does not set one.
        profile: Its replication_factor; None when it does not set one.
        override: A replication factor chosen explicitly for this run.

    Returns:
        The override, else the profile's, else the workload's; None when nothing sets one:
        the cluster's default.replication.factor (create the topics with -1).

    Raises:
        ConfigError: `override` is not an integer >= 1, or the workload and the profile
            set different values and there is no override.
    """
    (w_source, w), (p_source, p) = sources = [
        (f"workload {workload.name!r}", workload.replication_factor),
        (f"client profile {profile.name!r}", profile.replication_factor)]
    if override is not None:
        integer(1)("replication_factor", override)
        for source, value in sources:
            if value is not None and value != override:
                log.warning("replication_factor=%d as set explicitly, not the %d of %s",
                            override, value, source)
        rf = override
    elif w is not None and p is not None and w != p:
        raise ConfigError(
            f"{w_source} sets replication_factor={w} but {p_source} sets {p}: remove one of "
            "them, or choose explicitly with `--set replication_factor=N` (kafkabench run) or "
            "run_workload(..., replication_factor=N)")
    else:
        rf = p if p is not None else w
    # Topic creation accepts this, then every acks=all send fails with NOT_ENOUGH_REPLICAS.
    min_isr = str({**workload.topic_config, **profile.topic_config}.get("min.insync.replicas", ""))
    if rf is not None and min_isr.isdigit() and int(min_isr) > rf:
        log.warning("min.insync.replicas=%s is more than replication_factor=%d: producers with "
                    "acks=all will fail with NOT_ENOUGH_REPLICAS", min_isr, rf)
    return rf


# --- keys and payloads, built before the run ------------------------------------------------


def key_sequence(workload: Workload, seed: int | None = None) -> list[bytes | None]:
    """Keys for the producer hot loop: message n gets `keys[n % len(keys)]`.

    Args:
        workload: Supplies key_distribution, key_count and key_skew.
        seed: Seed for random and zipf draws; give each producer its own.

    Returns:
        `[None]` for "none"; the key_count keys in order for "round-robin"; otherwise
        max(65536, 4 * key_count) draws. Keys are `key-<n>`; for zipf `key-0` is the hottest.
    """
    if workload.key_distribution == "none":
        return [None]
    keys = [f"key-{i}".encode() for i in range(workload.key_count)]
    if workload.key_distribution == "round-robin":
        return keys
    rng = random.Random(seed)
    draws = max(KEY_SEQUENCE_MIN, 4 * workload.key_count)
    if workload.key_distribution == "random":
        return rng.choices(keys, k=draws)
    weights = (1 / rank**workload.key_skew for rank in range(1, workload.key_count + 1))
    return rng.choices(keys, cum_weights=list(itertools.accumulate(weights)), k=draws)


def payload_pool(workload: Workload, seed: int | None = None) -> list[bytes]:
    """Message values for the producer hot loop: message n gets `pool[n % len(pool)]`.

    Args:
        workload: Supplies payload, message_size, random_bytes_ratio and payload_pool_size.
        seed: Seed for sizes and contents.

    Returns:
        For a payload file, `[its bytes]`. Otherwise payload_pool_size payloads with sizes
        drawn from message_size (fewer if they would exceed POOL_BYTES_MAX in total).
    """
    if workload.payload not in PAYLOAD_KINDS:
        return [Path(workload.payload).read_bytes()]
    rng = random.Random(seed)
    fitting = max(1, int(POOL_BYTES_MAX // workload.mean_message_size))
    count = min(workload.payload_pool_size, fitting)
    size = workload.message_size
    sizes = [size] * count if isinstance(size, int) else size.sample(rng, count)
    if workload.payload == "text":
        return [_text_payload(rng, n) for n in sizes]
    ratio = workload.random_bytes_ratio
    return [rng.randbytes(int(n * ratio)) + bytes(n - int(n * ratio)) for n in sizes]


_STATUSES = ("CREATED", "PAID", "PACKED", "SHIPPED", "DELIVERED", "CANCELLED")
_COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "JP")
_CURRENCIES = ("EUR", "USD", "GBP")


def _text_payload(rng: random.Random, size: int) -> bytes:
    """JSON lines of order events, cut to size: compresses about as well as real event data."""
    parts, length = [], 0
    while length < size:
        event = (
            f'{{"order_id":{rng.randrange(10**8)},"customer":"c-{rng.randrange(50_000):05d}",'
            f'"sku":"SKU-{rng.randrange(5_000):04d}","qty":{rng.randint(1, 9)},'
            f'"price":{rng.randrange(100, 50_000) / 100},"currency":"{rng.choice(_CURRENCIES)}",'
            f'"status":"{rng.choice(_STATUSES)}","country":"{rng.choice(_COUNTRIES)}",'
            f'"ts":"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T'
            f'{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"}}\n'
        )
        parts.append(event)
        length += len(event)
    return "".join(parts).encode()[:size]


# --- OpenMessaging Benchmark workloads/*.yaml -----------------------------------------------

_OMB_WORKLOAD_KEYS = {
    "name", "topics", "partitionsPerTopic", "keyDistributor", "messageSize", "payloadFile",
    "useRandomizedPayloads", "randomBytesRatio", "randomizedPayloadPoolSize",
    "subscriptionsPerTopic", "producersPerTopic", "consumerPerSubscription", "producerRate",
    "consumerBacklogSizeGB", "backlogDrainRatio", "testDurationMinutes", "warmupDurationMinutes",
}  # fmt: skip
_OMB_KEY_DISTRIBUTORS = {
    "NO_KEY": "none", "KEY_ROUND_ROBIN": "round-robin", "RANDOM_NANO": "random",
}  # fmt: skip


def _from_omb_workload(data: Mapping[str, Any], base_dir: Path,
                       overrides: Mapping[str, Any]) -> Workload:
    """Map an OMB workload file to a Workload, with OMB's defaults for absent keys, then
    `overrides`; warn about the workload that results."""
    name = data.get("name", "omb")
    where = f"OMB workload {name!r}"
    unknown = sorted(set(data) - _OMB_WORKLOAD_KEYS)
    if unknown:
        raise ConfigError(f"{where}: keys {unknown} are not supported")
    distributor = data.get("keyDistributor", "NO_KEY")
    if distributor not in _OMB_KEY_DISTRIBUTORS:
        raise ConfigError(f"{where}: keyDistributor={distributor!r}: expected one of "
                          f"{', '.join(_OMB_KEY_DISTRIBUTORS)}")
    if data.get("backlogDrainRatio", 1.0) != 1.0:
        raise ConfigError(f"{where}: backlogDrainRatio={data['backlogDrainRatio']!r}: kafkabench "
                          "always drains the whole backlog; remove it or set 1.0")
    message_size = integer(1)("workload messageSize", data.get("messageSize"))
    payload: dict[str, Any] = {}
    if data.get("useRandomizedPayloads"):
        # OMB ignores payloadFile when payloads are randomized.
        payload["payload"] = "random"
        payload["random_bytes_ratio"] = data.get("randomBytesRatio", 0.0)
        payload["payload_pool_size"] = data.get("randomizedPayloadPoolSize", 1000)
    elif "payloadFile" in data:
        file = _omb_payload_file(where, data["payloadFile"], base_dir)
        payload["payload"] = str(file)
        if file.stat().st_size != message_size:
            log.warning("%s: messageSize=%r but %s is %d bytes; OMB sends the file, so does "
                        "kafkabench", where, message_size, file, file.stat().st_size)
            message_size = file.stat().st_size
    else:
        raise ConfigError(f"{where}: needs payloadFile or useRandomizedPayloads: true")
    subscriptions = data.get("subscriptionsPerTopic", 0)
    producer_rate = data.get("producerRate", 0)
    test_min = data.get("testDurationMinutes", 0)
    warmup_min = data.get("warmupDurationMinutes", 1)  # OMB's default: 1 minute
    for key, value in (("testDurationMinutes", test_min), ("warmupDurationMinutes", warmup_min)):
        number(0)(f"workload {key}", value)
    # OMB builds the backlog until subscriptions * sent messages * messageSize reaches it.
    backlog_bytes = data.get("consumerBacklogSizeGB", 0) * 1024**3
    backlog = math.ceil(backlog_bytes / (message_size * max(subscriptions, 1)))
    converted = dict(
        name=name,
        topics=data.get("topics"),
        partitions=data.get("partitionsPerTopic"),
        message_size=message_size,
        key_distribution=_OMB_KEY_DISTRIBUTORS[distributor],
        producers=data.get("producersPerTopic"),
        producer_rate=producer_rate,
        consumer_groups=subscriptions,
        consumers_per_group=data.get("consumerPerSubscription", 0),
        duration_s=60.0 * test_min,
        warmup_s=60.0 * warmup_min,
        backlog_messages=backlog,
        **payload,
    )
    workload = Workload(**{**converted, **overrides})
    if "producer_rate" not in overrides and workload.producer_rate == 0:
        log.warning("%s: producerRate=0 makes OMB search for the highest sustainable rate; "
                    "kafkabench sends as fast as it can", where)
    if "warmup_s" not in overrides and workload.warmup_s:
        # OMB runs the warm-up, discards its figures, then runs the test: warmup_s is exactly that.
        measured = (f"{workload.duration_s:g} s (duration_s)" if "duration_s" in overrides
                    else f"testDurationMinutes={test_min:g} ({workload.duration_s:g} s)")
        log.warning("%s: warmupDurationMinutes=%g%s: the run warms up for %g s (not measured), "
                    "then measures %s: %g s in all",
                    where, warmup_min, "" if "warmupDurationMinutes" in data else " (OMB's default)",
                    workload.warmup_s, measured, workload.warmup_s + workload.duration_s)
    return workload


def _omb_payload_file(where: str, payload_file: Any, base_dir: Path) -> Path:
    """Find payloadFile next to the YAML, or one folder up as in OMB's repo layout."""
    if not isinstance(payload_file, str):
        raise ConfigError(f"{where}: payloadFile={payload_file!r}: expected a path")
    candidates = [Path(payload_file)] if Path(payload_file).is_absolute() else [
        base_dir / payload_file, base_dir.parent / payload_file
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(repr(str(c)) for c in candidates)
    raise ConfigError(f"{where}: payloadFile={payload_file!r} not found (looked for {tried})")
