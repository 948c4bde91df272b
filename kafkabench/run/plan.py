"""What a run will do, decided before it touches a cluster: `plan_run` -> `RunPlan`.

A plan names the topics, the consumer groups and every worker with its spec. It is pure
(no broker, no clock), so it is unit-tested on its own, and the run session only carries
it out. The message-size checks that need no broker live here too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from kafkabench.core.contract import group_name, member_name, producer_name
from kafkabench.core.errors import ConfigError
from kafkabench.engine.consumer import ConsumerSpec, check_commit_mode
from kafkabench.engine.producer import VERIFY_HEADER, VERIFY_ID_BYTES, ProducerSpec
from kafkabench.engine.workers import check_mode
from kafkabench.run.timeline import AckTimeline, ErrorTimeline
from kafkabench.spec.profile import ClientProfile
from kafkabench.spec.workload import Workload, key_sequence, payload_pool

# librdkafka's default message.max.bytes, and the most a one-record batch adds to a message
# on the wire (batch header 61 B, record header and varints); the broker's limit (topic
# max.message.bytes) applies to the whole batch.
CLIENT_MAX_MESSAGE_BYTES = 1_000_000
BATCH_OVERHEAD_BYTES = 128
# Producers bounded by a message count (and backlog producers) still need a finite duration.
UNBOUNDED_S = 1e9


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything a run starts, and how to name what it measures.

    Attributes:
        run_id: The run's id.
        topics: Topic names, in workload order.
        created: Whether the run creates (and later deletes) the topics.
        mode: "process" or "thread" (never "auto": resolved here).
        partitions: Partitions per topic.
        producers: One spec per producer worker.
        consumers: One spec per consumer-group member.
        topic_of: Worker name -> the topic it writes or reads.
        group_of: Consumer worker name -> its group.
        max_message_size: Largest message the producers send, key and headers included (B).
        compressed: Whether the producers compress (the broker's size limit then applies
            to compressed batches, which this plan cannot know).
        stage_topics: The processing stage's retry, dead-letter and output topics (created
            and deleted with the run's topics).
    """

    run_id: str
    topics: tuple[str, ...]
    created: bool
    mode: str
    partitions: int = 1
    producers: tuple[ProducerSpec, ...] = ()
    consumers: tuple[ConsumerSpec, ...] = ()
    topic_of: dict[str, str] = field(default_factory=dict)
    group_of: dict[str, str] = field(default_factory=dict)
    max_message_size: int = 0
    compressed: bool = False
    stage_topics: tuple[str, ...] = ()

    @property
    def groups(self) -> list[str]:
        """Consumer group ids, in workload order."""
        return list(dict.fromkeys(s.group for s in self.consumers))

    @property
    def topic_of_group(self) -> dict[str, str]:
        """Group id -> the topic it consumes."""
        return {g: self.topic_of[w] for w, g in self.group_of.items()}

    @property
    def producer_names(self) -> set[str]:
        """Names of the producer workers."""
        return {s.worker for s in self.producers}

    def tally_parts(self) -> list[Any]:
        """The tally parts (`kafkabench.run.tally.TallyPart`) for what this plan's workers add
        to their reports beyond every worker's counts: the producers' acknowledgement and error
        timelines (`kafkabench.run.timeline`), which fault recovery and the live metrics read;
        empty unless a producer records them (`ProducerSpec.timeline`: the plan turns it on for
        faults and verification)."""
        return [AckTimeline(), ErrorTimeline()] if self.producers else []

    def backlog_producers(self, messages: int) -> tuple[ProducerSpec, ...]:
        """The producers' specs for a backlog of `messages` sent before the consumers start
        (verified producers get ids of their own: their sequences start again at 0)."""
        each = max(1, messages // max(len(self.producers), 1))
        n = len(self.producers)
        return tuple(replace(s, max_messages=each, duration_s=UNBOUNDED_S,
                             verify_id=None if s.verify_id is None else verify_id(self.run_id, n + i))
                     for i, s in enumerate(self.producers))


def verify_id(run_id: str, index: int) -> bytes:
    """The 12-byte id of a run's producer `index` in its `kb-seq` headers: 8 bytes of the
    run id's hash (runs on the same topic tell their messages apart), then the index."""
    return hashlib.blake2b(run_id.encode(), digest_size=8).digest() + index.to_bytes(4, "big")


#: librdkafka's default transaction.timeout.ms.
LIBRDKAFKA_TXN_TIMEOUT_MS = 60_000


def plan_run(workload: Workload, profile: ClientProfile, *, bootstrap: str, run_id: str,
             topics: list[str] | None = None, mode: str = "auto", commit: str = "auto",
             partitioner: Any = None, record_latency: bool = True,
             stats_interval_ms: int | None = None, commit_on_revoke: bool = True) -> RunPlan:
    """Plan a run of `workload` with `profile`: names, specs and size checks, no broker.

    Args:
        workload: The load; its `topics` must equal `len(topics)` when topics are given.
        profile: Client settings.
        bootstrap: Bootstrap servers written into every client's config.
        run_id: The run's id (topic names include it).
        topics: Existing topics to use instead of creating the workload's.
        mode: "process", "thread" or "auto" (processes when there is more than one worker).
        commit: Consumer commit mode (`kafkabench.consumer.COMMIT_MODES`).
        partitioner: A `kafkabench.partitioning` strategy name or object.
        record_latency: Record per-message latencies.
        stats_interval_ms: librdkafka statistics interval; None turns statistics off.
        commit_on_revoke: Members commit when partitions are revoked (`ConsumerSpec`).

    Returns:
        The `RunPlan`.

    Raises:
        ConfigError: A bad mode, commit mode or partitioner, or messages larger than the
            producer's message.max.bytes.
    """
    check_commit_mode(commit)
    check_mode(mode)
    extra = {"statistics.interval.ms": stats_interval_ms} if stats_interval_ms else {}
    strategy, extra_p = _partitioning(partitioner, workload.partitions, extra)
    payloads = tuple(payload_pool(workload, seed=0))
    headers = tuple((k, v.encode()) for k, v in workload.headers.items()) or None
    producer_conf = profile.producer_config(bootstrap, **extra_p)
    size, compressed = _checked_message_size(workload, payloads, headers, producer_conf)
    shared = {"config": producer_conf, "payloads": payloads, "headers": headers,
              "partitioner": strategy, "record_latency": record_latency,
              "rate": workload.rate_per_producer, **_producer_bounds(workload),
              "timeline": workload.verify or bool(workload.faults),
              "transaction_messages": workload.transaction_messages}
    names = tuple(topics) if topics is not None else tuple(workload.topic_names(run_id))
    producers: list[ProducerSpec] = []
    consumers: list[ConsumerSpec] = []
    topic_of: dict[str, str] = {}
    for ti, topic in enumerate(names):
        made = [_producer(workload, run_id, topic, ti, p, len(producers) + p, shared)
                for p in range(workload.producers)]
        members = [spec if commit_on_revoke else replace(spec, commit_on_revoke=False)
                   for spec in _group_members(workload, profile, bootstrap, run_id, topic, commit,
                                              record_latency, extra)]
        producers += made
        consumers += members
        topic_of.update((spec.worker, topic) for spec in (*made, *members))
    return RunPlan(run_id=run_id, topics=names, created=topics is None,
                   mode=_resolved_mode(mode, workload), partitions=workload.partitions,
                   producers=tuple(producers), consumers=tuple(consumers), topic_of=topic_of,
                   group_of={spec.worker: spec.group for spec in consumers},
                   max_message_size=size, compressed=compressed,
                   stage_topics=_stage_topics(workload, names) if consumers else ())


def _checked_message_size(workload: Workload, payloads: tuple[bytes, ...], headers: Any,
                          producer_conf: dict[str, Any]) -> tuple[int, bool]:
    """(the largest message the producers send, whether they compress), after refusing
    messages the producer would refuse and transactions it cannot have."""
    size = max_message_size(payloads, key_sequence(workload, seed=0), headers)
    if workload.verify:
        size += len(VERIFY_HEADER) + VERIFY_ID_BYTES + 8
    compressed = str(producer_conf.get("compression.type",
                                       producer_conf.get("compression.codec", "none"))) != "none"
    check_message_size(size, producer_conf, {}, compressed)
    if workload.transaction_messages:
        check_transactional(producer_conf, "transaction_messages")
        check_transaction_span(workload.transaction_messages, workload.rate_per_producer, producer_conf)
    return size, compressed


def _producer_bounds(workload: Workload) -> dict[str, Any]:
    """Each producer's `duration_s` and `max_messages`: warm-up + duration, or its share of
    the message count (with a duration that never ends first)."""
    if workload.message_count is None:
        return {"duration_s": workload.warmup_s + workload.duration_s, "max_messages": None}
    return {"duration_s": UNBOUNDED_S,
            "max_messages": max(1, workload.message_count // workload.total_producers)}


def _producer(workload: Workload, run_id: str, topic: str, ti: int, p: int, index: int,
              shared: dict[str, Any]) -> ProducerSpec:
    """The spec of producer `p` of topic number `ti`, the run's producer number `index`."""
    keys = key_sequence(workload, seed=1000 * ti + p)
    spec = ProducerSpec(worker=producer_name(ti, p, workload.topics), topics=(topic,),
                        keys=None if keys == [None] else tuple(keys),
                        verify_id=verify_id(run_id, index) if workload.verify else None, **shared)
    if workload.transaction_messages:
        spec = replace(spec, config={**spec.config, "transactional.id": f"kb-{run_id}-{spec.worker}"})
    return spec


def _resolved_mode(mode: str, workload: Workload) -> str:
    """"process" or "thread": "auto" is processes when there is more than one worker."""
    if mode != "auto":
        return mode
    return "process" if workload.total_producers + workload.total_consumers > 1 else "thread"


def _stage_topics(workload: Workload, topics: tuple[str, ...]) -> tuple[str, ...]:
    """The processing stage's retry, dead-letter and output topics of every topic (none
    without a stage)."""
    if workload.processing is None:
        return ()
    return tuple(t for name in topics for t in workload.processing.extra_topics(name))


def _partitioning(partitioner: Any, partitions: int, extra: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(a Python strategy or None, the producer's extra settings): a built-in strategy is
    librdkafka's `partitioner` setting, a custom one chooses each partition in Python."""
    if partitioner is None:
        return None, extra
    from kafkabench.spec.partitioning import get_strategy

    strategy = get_strategy(partitioner, partitions)
    if strategy.builtin:
        return None, {**extra, "partitioner": strategy.builtin}
    return strategy, extra


def _group_members(workload: Workload, profile: ClientProfile, bootstrap: str, run_id: str,
                   topic: str, commit: str, record_latency: bool,
                   extra: dict[str, Any]) -> list[ConsumerSpec]:
    """The specs of every member of every consumer group of `topic`."""
    members = []
    # The processing stage's retry, dead-letter and output records: the profile's producer
    # settings, never a transactional.id of the plain producers.
    stage_config = (profile.producer_config(bootstrap) if workload.processing is not None else None)
    eos = workload.processing is not None and workload.processing.exactly_once
    if eos:
        check_transactional(stage_config, "processing.exactly_once")
        # A crashed member's open transaction holds back read_committed readers of the output
        # until the broker aborts it: after transaction.timeout.ms (librdkafka: 60 s).
        txn_ms = int(stage_config.setdefault("transaction.timeout.ms", 10_000))
        # librdkafka refuses a message.timeout.ms above transaction.timeout.ms.
        if int(stage_config.get("message.timeout.ms", 0)) > txn_ms:
            stage_config["message.timeout.ms"] = txn_ms
    for g in range(workload.consumer_groups):
        group = group_name(topic, g)
        for c in range(workload.consumers_per_group):
            worker = member_name(group, c, topic_prefix=workload.topic_prefix, run_id=run_id)
            config = profile.consumer_config(bootstrap, group, **extra)
            if "group.instance.id" in config:
                # Static membership: the profile's value names the members, one id each; a
                # restarted member keeps its id (kafkabench.membership).
                config["group.instance.id"] = f"{config['group.instance.id']}-{worker}"
            # A restarted member keeps its transactional.id: it fences its crashed self.
            members.append(ConsumerSpec(
                worker=worker, group=group, topics=(topic,), commit=commit,
                record_latency=record_latency, config=config,
                processing=workload.processing,
                stage_config={**stage_config, "transactional.id": f"kb-{run_id}-{worker}-stage"}
                if eos else stage_config))
    return members


def check_transaction_span(messages: int, rate: float, conf: dict[str, Any]) -> None:
    """Refuse transactions a rate-limited producer would keep open past transaction.timeout.ms:
    the broker would abort every one of them (PRODUCER_FENCED / INVALID_TXN_STATE errors).

    Raises:
        ConfigError: naming transaction_messages, the rate and the timeout.
    """
    timeout_ms = int(conf.get("transaction.timeout.ms", LIBRDKAFKA_TXN_TIMEOUT_MS))
    if rate > 0 and messages / rate * 1000 >= timeout_ms:
        raise ConfigError(
            f"transaction_messages={messages} at {rate:g} msgs/s per producer keeps each transaction "
            f"open {messages / rate:g} s, past transaction.timeout.ms={timeout_ms}: the broker would "
            "abort every one; send fewer messages per transaction, a higher producer_rate, or raise "
            "the producer's transaction.timeout.ms")


def check_transactional(conf: dict[str, Any], where: str) -> None:
    """Refuse producer settings a transactional producer cannot have (librdkafka requires
    idempotence, hence acks=all, with a `transactional.id`).

    Raises:
        ConfigError: naming the setting and `where` asked for transactions.
    """
    acks = str(conf.get("acks", conf.get("request.required.acks", "all"))).lower()
    if acks not in ("all", "-1"):
        raise ConfigError(f"{where} needs acks=all, but the profile sets acks={acks}: "
                          "transactions need idempotence, which needs acks=all")
    if str(conf.get("enable.idempotence", "true")).lower() == "false":
        raise ConfigError(f"{where} needs enable.idempotence=true, but the profile sets it "
                          "false: a transactional producer is idempotent")
    for key in ("max.in.flight.requests.per.connection", "max.in.flight"):
        if key in conf and int(conf[key]) > 5:
            raise ConfigError(f"{where} needs {key} <= 5 (idempotence), but the profile sets "
                              f"{conf[key]}")


def max_message_size(payloads: tuple[bytes, ...], keys: list, headers) -> int:
    """Largest message a run sends, key and headers included (bytes)."""
    key = max((len(k) for k in keys if k), default=0)
    head = sum(len(k) + len(v) for k, v in headers or ())
    return max(map(len, payloads)) + key + head


def needs_topic_limits(plan: RunPlan) -> bool:
    """Whether the topics' max.message.bytes must be read before producing: only large
    messages can meet the broker's default limit (1 MiB), and a user's own topic may set
    a smaller one."""
    return plan.max_message_size + BATCH_OVERHEAD_BYTES > CLIENT_MAX_MESSAGE_BYTES or not plan.created


def check_message_size(size: int, producer_conf: dict[str, Any], topic_limits: dict[str, int | None],
                       compressed: bool) -> None:
    """Refuse, before anything is produced, messages the producer or the broker would refuse.

    Raises:
        ConfigError: naming the size, both limits and the settings that raise them.
    """
    client = int(producer_conf.get("message.max.bytes", CLIENT_MAX_MESSAGE_BYTES))
    if size > client:
        raise ConfigError(
            f"messages of up to {size:,} B (payload, key and headers) are larger than the "
            f"producer's message.max.bytes ({client:,} B): librdkafka would refuse every one "
            "with MSG_SIZE_TOO_LARGE. Raise it in the profile (producer: {message.max.bytes: "
            f"{size + BATCH_OVERHEAD_BYTES}}}, or --producer-props message.max.bytes=...) and the "
            "topic's max.message.bytes to match, or send smaller messages")
    for topic, limit in topic_limits.items():
        if limit is not None and not compressed and size + BATCH_OVERHEAD_BYTES > limit:
            raise ConfigError(
                f"messages of up to {size:,} B do not fit topic {topic!r}'s max.message.bytes "
                f"({limit:,} B, the broker's message.max.bytes unless the topic sets it): the "
                "broker would refuse them with MSG_SIZE_TOO_LARGE. Raise it with the workload's "
                f"topic_config (max.message.bytes: {size + BATCH_OVERHEAD_BYTES}) or send "
                "smaller messages")
