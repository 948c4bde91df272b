"""The design source's service patterns as a consumer-group processing stage.

A `Processing` (the `processing` section of a workload) says what a consumer member does with
each message: spend `time_ms` on it, drop it (filtering), fail on it (injected transient or
poison failures), retry it inline with exponential backoff or through retry topics, send it to a
dead-letter topic after the last attempt, and optionally produce a record per processed message
to an output topic.

Which messages fail is decided from the message's place in the log, `(partition, offset)` of
the input topic, hashed with `seed`: runs are repeatable, and a test can count the injected
failures exactly by asking `fate()` about every offset it produced. A record moved to a retry
topic carries its original partition and offset in headers, so its fate follows it.

Topics (per input topic `T`): `T.retry.1` .. `T.retry.N` (retry-topic mode, N = attempts - 1),
`T.dlq` (dead letters), `T.out` (output).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kafkabench.errors import ConfigError
from kafkabench.session import RunObserver

RETRY_MODES = ("inline", "topics", "none")
TIME_DISTRIBUTIONS = ("fixed", "uniform", "exponential")
# What a message is to the stage (see `Processing.fate`).
OK, TRANSIENT, POISON, FILTERED = "ok", "transient", "poison", "filtered"
# Dead-letter headers, as the design source's DLQ handler writes them (plus where and when).
DLQ_HEADERS = ("error", "retry_count", "original_topic", "original_partition", "original_offset",
               "failed_at")
#: Header names the stage adds to the records it forwards to retry topics.
#: The header of an output record naming its input: b"<partition>:<offset>".
SOURCE_HEADER = "kb-src"
RETRY_HEADERS = ("retry_count", "original_topic", "original_partition", "original_offset",
                 "error", "failed_at")
_UNIT = 2.0 ** -64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between attempts: initial_ms * multiplier**(attempt-1), at most
    max_ms, then +-jitter (a fraction of the delay, drawn uniformly).

    Args:
        initial_ms: delay before the 2nd attempt.
        multiplier: growth per attempt (>= 1).
        max_ms: the longest delay (>= initial_ms).
        jitter: 0..1, the delay is drawn from [d*(1-jitter), d*(1+jitter)].
        max_attempts: attempts in all, the first included (>= 1); then the message is dead.
    """

    initial_ms: float = 100.0
    multiplier: float = 2.0
    max_ms: float = 10_000.0
    jitter: float = 0.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        for name, minimum in (("initial_ms", 0.0), ("multiplier", 1.0), ("max_ms", 0.0)):
            _check_number(f"processing.backoff.{name}", getattr(self, name), minimum)
            object.__setattr__(self, name, float(getattr(self, name)))
        _check_number("processing.backoff.jitter", self.jitter, 0.0, 1.0)
        object.__setattr__(self, "jitter", float(self.jitter))
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 1:
            raise ConfigError(f"processing.backoff.max_attempts={self.max_attempts!r}: expected "
                              "an integer >= 1 (attempts in all, the first included)")
        if self.max_ms < self.initial_ms:
            raise ConfigError(f"processing.backoff.max_ms={self.max_ms!r} is less than "
                              f"initial_ms={self.initial_ms!r}: the longest delay must be at "
                              "least the first")

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt `attempt` (1-based), jitter drawn from `rng`."""
        base = min(self.max_ms, self.initial_ms * self.multiplier ** (attempt - 1))
        if self.jitter and rng is not None:
            base *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return base


@dataclass(frozen=True, slots=True)
class Processing:
    """What each consumer member does with a message (a workload's `processing` section).

    Args:
        time_ms: processing time per attempt: a number (fixed), or `{"uniform": [lo, hi]}`
            or `{"exponential": mean}` (ms).
        transient_fraction: share of messages that fail `transient_failures` times, then succeed.
        transient_failures: failures of each transient message before it succeeds.
        poison_fraction: share of messages that always fail (they end in the dead-letter topic).
        retry: "inline" (blocking retries with `backoff` in the consuming member), "topics"
            (failed messages go to `<topic>.retry.N`, read with a delay of `backoff.delay_ms(N)`)
            or "none" (a failed message goes straight to the dead-letter topic).
        backoff: a `Backoff` or its mapping.
        dead_letter: send messages that failed their last attempt to `<topic>.dlq` (else
            they are counted as dropped).
        filter_fraction: share of messages dropped before processing.
        filter_header: drop messages whose header `name` has this text value, `{name: value}`.
        output: produce one record per processed message to `<topic>.out` (the same key and
            headers plus `kb-src` = "<partition>:<offset>" of the input, the value reversed,
            the input's timestamp: a consumer of the output topic measures end-to-end latency
            through the stage, and the run counts inputs processed more than once).
        seed: salts the choice of failing and filtered messages.
        exactly_once: consume-transform-produce in transactions: the output and dead-letter
            records and the input offsets commit together (`send_offsets_to_transaction`), a
            `transactional.id` per member; a failed attempt aborts the transaction and the
            member reads its messages again (after `backoff`), up to `backoff.max_attempts`.
            Needs retry "inline" or "none", and a profile with acks=all and idempotence.
        transaction_messages: exactly-once: commit after this many messages ...
        transaction_ms: ... or this many ms since the transaction began, whichever first.
    """

    time_ms: Any = 0.0
    transient_fraction: float = 0.0
    transient_failures: int = 1
    poison_fraction: float = 0.0
    retry: str = "inline"
    backoff: Any = field(default_factory=Backoff)
    dead_letter: bool = True
    filter_fraction: float = 0.0
    filter_header: Mapping[str, str] | None = None
    output: bool = False
    seed: int = 0
    exactly_once: bool = False
    transaction_messages: int = 100
    transaction_ms: float = 100.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "time_ms", _time_spec(self.time_ms))
        for name in ("transient_fraction", "poison_fraction", "filter_fraction"):
            _check_number(f"processing.{name}", getattr(self, name), 0.0, 1.0)
            set_(self, name, float(getattr(self, name)))
        if self.transient_fraction + self.poison_fraction > 1.0:
            raise ConfigError(f"processing.transient_fraction={self.transient_fraction!r} plus "
                              f"poison_fraction={self.poison_fraction!r} is more than 1")
        if isinstance(self.transient_failures, bool) or not isinstance(self.transient_failures, int) \
                or self.transient_failures < 1:
            raise ConfigError(f"processing.transient_failures={self.transient_failures!r}: "
                              "expected an integer >= 1")
        if self.retry not in RETRY_MODES:
            raise ConfigError(f"processing.retry={self.retry!r}: expected one of "
                              f"{', '.join(RETRY_MODES)}")
        if isinstance(self.backoff, Mapping):
            unknown = sorted(set(self.backoff) - {f.name for f in fields(Backoff)})
            if unknown:
                raise ConfigError(f"processing.backoff: unknown keys {unknown}; expected some of "
                                  f"{[f.name for f in fields(Backoff)]}")
            set_(self, "backoff", Backoff(**self.backoff))
        elif not isinstance(self.backoff, Backoff):
            raise ConfigError(f"processing.backoff={self.backoff!r}: expected a mapping such as "
                              "{initial_ms: 100, multiplier: 2, max_ms: 10000, max_attempts: 3}")
        for name in ("dead_letter", "output"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"processing.{name}={getattr(self, name)!r}: expected true or false")
        if self.filter_header is not None:
            fh = self.filter_header
            if not isinstance(fh, Mapping) or len(fh) != 1 or not all(
                    isinstance(k, str) and k and isinstance(v, str) for k, v in fh.items()):
                raise ConfigError(f"processing.filter_header={fh!r}: expected one header name "
                                  "and its text value, e.g. {event-type: OrderCancelled}")
            set_(self, "filter_header", dict(fh))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"processing.seed={self.seed!r}: expected an integer")
        if not isinstance(self.exactly_once, bool):
            raise ConfigError(f"processing.exactly_once={self.exactly_once!r}: expected true or false")
        if isinstance(self.transaction_messages, bool) or not isinstance(self.transaction_messages, int) \
                or self.transaction_messages < 1:
            raise ConfigError(f"processing.transaction_messages={self.transaction_messages!r}: "
                              "expected an integer >= 1")
        _check_number("processing.transaction_ms", self.transaction_ms, 1.0)
        set_(self, "transaction_ms", float(self.transaction_ms))
        if self.exactly_once and self.retry == "topics":
            raise ConfigError("processing.exactly_once with retry=topics: a failed attempt aborts "
                              "the transaction and is read again; use retry: inline or none")
        if self.transient_fraction and self.transient_failures >= self.backoff.max_attempts \
                and self.retry != "none":
            raise ConfigError(
                f"processing.transient_failures={self.transient_failures} needs backoff."
                f"max_attempts > {self.transient_failures} (it is {self.backoff.max_attempts}): "
                "otherwise no transient message ever succeeds")

    # ------------------------------------------------------------------ the injection

    def fate(self, partition: int, offset: int) -> str:
        """What the input record at (partition, offset) is: FILTERED, POISON, TRANSIENT or OK
        (the header filter is applied by the stage, not here)."""
        u_filter, u_fail = self._uniforms(partition, offset)
        if u_filter < self.filter_fraction:
            return FILTERED
        if u_fail < self.poison_fraction:
            return POISON
        if u_fail < self.poison_fraction + self.transient_fraction:
            return TRANSIENT
        return OK

    def fails(self, fate: str, attempt: int) -> bool:
        """Whether attempt `attempt` (1-based) of a message of this fate fails."""
        return fate == POISON or (fate == TRANSIENT and attempt <= self.transient_failures)

    def _uniforms(self, partition: int, offset: int) -> tuple[float, float]:
        digest = hashlib.blake2b(struct.pack(">qqq", self.seed, partition, offset),
                                 digest_size=16).digest()
        a, b = struct.unpack(">QQ", digest)
        return a * _UNIT, b * _UNIT

    def expected(self, offsets: Mapping[int, tuple[int, int]]) -> Counter:
        """The injected fates of every input record (exact): {fate: count}.

        Args:
            offsets: partition -> (low, high) watermarks of the input topic.
        """
        out: Counter = Counter()
        for p, (low, high) in offsets.items():
            for o in range(low, high):
                out[self.fate(p, o)] += 1
        return out

    # ------------------------------------------------------------------ the rest

    def processing_ms(self, rng: random.Random) -> float:
        """One attempt's processing time (ms), drawn from `time_ms`."""
        kind, a, b = self.time_ms
        if kind == "fixed":
            return a
        if kind == "uniform":
            return rng.uniform(a, b)
        return rng.expovariate(1.0 / a) if a > 0 else 0.0

    @property
    def attempts(self) -> int:
        """Attempts a message gets in all (1 without retries)."""
        return 1 if self.retry == "none" else self.backoff.max_attempts

    @property
    def retry_levels(self) -> int:
        """Retry topics per input topic (retry="topics"), else 0."""
        return self.attempts - 1 if self.retry == "topics" else 0

    def extra_topics(self, topic: str) -> list[str]:
        """The topics the stage writes for input `topic`: retry levels, dead letters, output."""
        names = [retry_topic(topic, n) for n in range(1, self.retry_levels + 1)]
        if self.dead_letter:
            names.append(dlq_topic(topic))
        if self.output:
            names.append(output_topic(topic))
        return names

    def to_dict(self) -> dict[str, Any]:
        """The workload-file form (`from_spec` reads it back)."""
        data = asdict(self)
        kind, a, b = self.time_ms
        data["time_ms"] = a if kind == "fixed" else ({"uniform": [a, b]} if kind == "uniform"
                                                     else {"exponential": a})
        return data


def processing_from_spec(spec: Processing | Mapping[str, Any] | None) -> Processing | None:
    """A workload's `processing` value as a `Processing` (None: the members only consume).

    Raises:
        ConfigError: an unknown key or a bad value, named.
    """
    if spec is None or isinstance(spec, Processing):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"workload processing={spec!r}: expected a mapping such as "
                          "{time_ms: 1, poison_fraction: 0.01, retry: inline}")
    known = [f.name for f in fields(Processing)]
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ConfigError(f"processing: unknown keys {unknown}; expected some of {known}")
    return Processing(**spec)


def load_processing_file(path: str | os.PathLike, what: str) -> Processing:
    """A YAML file of `Processing` fields, checked by its constructor.

    Args:
        path: the file.
        what: how the user gave it, for the messages (e.g. "--kafka-processing").

    Raises:
        ConfigError: a missing, empty or bad file, an unknown key or a bad value, named
            with `what` and the path.
    """
    from kafkabench.config import read_yaml

    spec = read_yaml(path, what)
    if spec is None:
        raise ConfigError(f"{what} {str(path)!r} is empty: expected a mapping such as "
                          "{time_ms: 1, poison_fraction: 0.01, retry: topics}")
    try:
        return processing_from_spec(spec)
    except ConfigError as exc:
        raise ConfigError(f"{what} {str(path)!r}: {exc}") from None


def retry_topic(topic: str, level: int) -> str:
    """The retry topic of `topic` at `level` (1-based)."""
    return f"{topic}.retry.{level}"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"


def output_topic(topic: str) -> str:
    """The output topic of `topic`."""
    return f"{topic}.out"


def _time_spec(value: Any) -> tuple[str, float, float]:
    """`time_ms` as (kind, a, b)."""
    if isinstance(value, tuple) and len(value) == 3 and value[0] in TIME_DISTRIBUTIONS:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number("processing.time_ms", value, 0.0)
        return ("fixed", float(value), 0.0)
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, arg), = value.items()
        if kind == "uniform" and isinstance(arg, (list, tuple)) and len(arg) == 2:
            lo, hi = arg
            _check_number("processing.time_ms.uniform[0]", lo, 0.0)
            _check_number("processing.time_ms.uniform[1]", hi, float(lo))
            return ("uniform", float(lo), float(hi))
        if kind == "exponential":
            _check_number("processing.time_ms.exponential", arg, 0.0)
            return ("exponential", float(arg), 0.0)
    raise ConfigError(f"processing.time_ms={value!r}: expected milliseconds (a number), "
                      "{uniform: [lo, hi]} or {exponential: mean}")


def _check_number(name: str, value: Any, minimum: float, maximum: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not minimum <= value <= maximum:
        bound = f"between {minimum:g} and {maximum:g}" if maximum < math.inf else f">= {minimum:g}"
        raise ConfigError(f"{name}={value!r}: expected a number {bound}")


def now_ms() -> int:
    """Wall-clock time in whole milliseconds (the `failed_at` header)."""
    return int(time.time() * 1000)


class Stage:
    """One consumer member's processing stage (built by `run_consumer` from a `Processing`).

    `handle(msg)` processes one message and says whether its offset may be stored: False when
    a retry-topic record is not due yet (its partition is then paused and rewound to it, and
    resumed by `resume_due` when it is). The member stores offsets itself
    (`enable.auto.offset.store=false`), so a message is committed only once it is processed,
    forwarded to a retry topic, dead-lettered or filtered (at least once).

    Args:
        processing: what to do.
        inputs: the member's input topics (not its retry topics).
        producer: a confluent-kafka Producer for retry, dead-letter and output records
            (None when the stage writes none).
        consumer: the member's consumer (pause, seek, resume).
        sleep: `Control.sleep`: waits that end early when the run stops.
        on_error: records a produce error (`ErrorCounts.add_kafka`).
        seed: the member's jitter and processing-time draws.
    """

    def __init__(self, processing: Processing, inputs: tuple[str, ...], *, producer: Any,
                 consumer: Any, sleep: Any, on_error: Any, seed: int = 0):
        from kafkabench.stats import LatencyRecorder

        self.p, self.producer, self.consumer = processing, producer, consumer
        self._sleep, self._on_error = sleep, on_error
        self.rng = random.Random(seed)
        # topic -> (input topic, retry level); level 0 is the input itself.
        self.level_of = {t: (t, 0) for t in inputs}
        for t in inputs:
            for n in range(1, processing.retry_levels + 1):
                self.level_of[retry_topic(t, n)] = (t, n)
        self.counts: Counter = Counter()
        self.attempts: Counter = Counter()
        self.latency = LatencyRecorder()       # receipt to done, this member's attempts
        self.done_latency = LatencyRecorder()  # the input record's timestamp to done
        self.paused: dict[tuple[str, int], float] = {}
        fh = processing.filter_header or {}
        self._filter = next(iter(fh.items())) if fh else None
        # Exactly-once: the open transaction's first offset and next offset per partition.
        self._txn_open = False
        self._txn_began = 0.0
        self._txn_messages = 0
        self._txn_first: dict[tuple[str, int], int] = {}
        self._txn_next: dict[tuple[str, int], int] = {}
        self._eos_attempts: dict[tuple[str, int, int], int] = {}
        self.skip: set[tuple[str, int]] = set()
        if processing.exactly_once and producer is not None:
            producer.init_transactions(TXN_TIMEOUT_S)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the member subscribes to: inputs, then retry levels."""
        return tuple(self.level_of)

    def handle(self, msg: Any) -> bool:
        """Process `msg`; False: not due yet, do not store its offset (see the class)."""
        topic, level = self.level_of.get(msg.topic(), (msg.topic(), 0))
        headers = msg.headers() or []
        if level:
            meta = _header_dict(headers)
            due_ms = int(meta.get("failed_at", b"0")) + self.p.backoff.delay_ms(level)
            wait_ms = due_ms - time.time() * 1000.0
            if wait_ms > 0:
                self._pause(msg, time.monotonic() + wait_ms / 1000.0)
                return False
            # A record some other writer put in a retry topic has no origin headers: it is
            # judged by its own place in the log.
            partition = int(meta.get("original_partition", msg.partition()))
            offset = int(meta.get("original_offset", msg.offset()))
            original_ts = float(meta.get("original_timestamp", msg.timestamp()[1]))
            headers = [(k, v) for k, v in headers if k not in _STAGE_HEADERS]
        else:
            partition, offset = msg.partition(), msg.offset()
            original_ts = float(msg.timestamp()[1])
        received = time.monotonic()
        if self.p.exactly_once:
            self._begin()
            self._txn_first.setdefault((msg.topic(), msg.partition()), msg.offset())
        if self._filter is not None and self._filter_match(headers):
            self.counts["filtered"] += 1
            return True
        fate = self.p.fate(partition, offset)
        if fate == FILTERED:
            self.counts["filtered"] += 1
            return True
        attempt = level + 1
        last = self.p.attempts
        if self.p.exactly_once:
            attempt = self._eos_attempts.get((topic, partition, offset), 0) + 1
        while True:
            if not self._work():
                raise _Stopped
            if not self.p.fails(fate, attempt):
                self._done(msg, topic, headers, attempt, received, original_ts, (partition, offset))
                self._eos_attempts.pop((topic, partition, offset), None)
                return True
            error = f"injected {fate} failure"
            if self.p.exactly_once and attempt < last:
                # Abort: the transaction's records vanish for read_committed readers, and the
                # member reads its messages again from where the transaction began.
                self._eos_attempts[(topic, partition, offset)] = attempt
                self.counts["retried"] += 1
                raise Abort(error, self.p.backoff.delay_ms(attempt, self.rng) / 1000.0)
            if attempt >= last:
                self._dead_letter(msg, topic, headers, partition, offset, attempt, error)
                break
            self.counts["retried"] += 1
            if self.p.retry == "topics":
                self._forward(msg, topic, headers, partition, offset, attempt, error, original_ts)
                break
            if not self._sleep(self.p.backoff.delay_ms(attempt, self.rng) / 1000.0):
                raise _Stopped
            attempt += 1
        self._finished(received, original_ts, attempt if attempt >= last else None)
        return True

    # ------------------------------------------------------------------ exactly-once

    def handled(self, msg: Any) -> None:
        """Exactly-once: `msg` is done; its next offset commits with the transaction."""
        self._txn_next[(msg.topic(), msg.partition())] = msg.offset() + 1
        self._txn_messages += 1

    def due(self) -> bool:
        """Exactly-once: whether the open transaction is big or old enough to commit."""
        return self._txn_open and (self._txn_messages >= self.p.transaction_messages or
                                   time.monotonic() - self._txn_began >= self.p.transaction_ms / 1000.0)

    def commit(self, consumer: Any) -> None:
        """Exactly-once: commit the open transaction with its input offsets (a commit that
        needs an abort aborts and rewinds instead)."""
        if not self._txn_open:
            return
        from confluent_kafka import KafkaException, TopicPartition

        producer = self.producer
        try:
            if self._txn_next:
                producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, o) for (t, p), o in self._txn_next.items()],
                    consumer.consumer_group_metadata(), TXN_TIMEOUT_S)
            producer.commit_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0]
            self._on_error(err, "commit_transaction()")
            if not err.txn_requires_abort():
                raise
            self.abort(consumer)
            return
        self.counts["transactions_committed"] += 1
        self._txn_reset()

    def abort(self, consumer: Any, *, rewind: bool = True) -> None:
        """Exactly-once: abort the open transaction and (`rewind`) seek every partition it
        read back to where it began; `skip` then holds them for the rest of the batch."""
        if not self._txn_open:
            return
        try:
            # Wait for the transaction's records first: an EndTxn(abort) racing the
            # AddPartitionsToTxn of records still in flight fails with a fatal
            # INVALID_TXN_STATE (librdkafka issue #4849; seen here on Kafka 4.4).
            self.producer.flush(TXN_TIMEOUT_S)
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        finally:
            self.counts["transactions_aborted"] += 1
            self.counts["aborted_messages"] += self._txn_messages
            if rewind and self._txn_first:
                from confluent_kafka import TopicPartition

                for (t, p), first in self._txn_first.items():
                    consumer.seek(TopicPartition(t, p, first))
                self.skip |= set(self._txn_first)
            self._txn_reset()

    def revoked(self, consumer: Any) -> None:
        """Exactly-once: partitions are leaving: the open transaction is aborted (the next
        owner reads its messages from the committed offsets)."""
        try:
            self.abort(consumer, rewind=False)
        except Exception as exc:  # noqa: BLE001 - recorded; the rebalance must go on
            self._on_error(exc, "abort_transaction() on revoke")

    def _begin(self) -> None:
        if not self._txn_open:
            self.producer.begin_transaction()
            self._txn_open, self._txn_began = True, time.monotonic()

    def _txn_reset(self) -> None:
        self._txn_open, self._txn_messages = False, 0
        self._txn_first.clear()
        self._txn_next.clear()

    def resume_due(self) -> None:
        """Resume the paused retry partitions whose next record is due."""
        if not self.paused:
            return
        now = time.monotonic()
        due = [tp for tp, at in self.paused.items() if at <= now]
        if due:
            from confluent_kafka import TopicPartition

            for tp in due:
                del self.paused[tp]
            self.consumer.resume([TopicPartition(t, p) for t, p in due])

    def forget(self, partitions: Any) -> None:
        """Partitions revoked: they are not this member's to resume."""
        for tp in partitions or ():
            self.paused.pop((tp.topic, tp.partition), None)

    def is_paused(self, msg: Any) -> bool:
        """Whether `msg`'s partition was paused earlier in this batch (skip it: it is read
        again from the rewound offset)."""
        return (msg.topic(), msg.partition()) in self.paused

    def take_interval(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """The interval's counts and encoded histograms, then reset them."""
        counts = dict(self.counts)
        self.counts.clear()
        hists = {"processing_latency_us": self.latency.encode(),
                 "processing_done_latency_us": self.done_latency.encode()}
        self.latency.reset()
        self.done_latency.reset()
        return counts, hists

    def flush(self, timeout_s: float) -> int:
        """Wait for the stage's records to be acknowledged; returns those still queued."""
        return self.producer.flush(timeout_s) if self.producer is not None else 0

    # ------------------------------------------------------------------ steps

    def _work(self) -> bool:
        ms = self.p.processing_ms(self.rng)
        return self._sleep(ms / 1000.0) if ms > 0 else True

    def _done(self, msg: Any, topic: str, headers: list, attempt: int, received: float,
              original_ts: float, source: tuple[int, int]) -> None:
        self.counts["processed"] += 1
        if self.p.output:
            value = msg.value()
            self._produce(output_topic(topic), key=msg.key(),
                          value=value[::-1] if value is not None else None,
                          headers=[*headers, (SOURCE_HEADER, f"{source[0]}:{source[1]}".encode())],
                          timestamp=int(original_ts) if original_ts > 0 else 0)
            self.counts["output"] += 1
        self._finished(received, original_ts, attempt)

    def _finished(self, received: float, original_ts: float, attempts: int | None) -> None:
        if attempts is None:  # forwarded to a retry topic: not done yet
            return
        self.attempts[attempts] += 1
        self.latency.record((time.monotonic() - received) * 1e6)
        if original_ts > 0:
            self.done_latency.record((time.time() * 1000.0 - original_ts) * 1000.0)

    def _forward(self, msg: Any, topic: str, headers: list, partition: int, offset: int,
                 attempt: int, error: str, original_ts: float) -> None:
        extra = _stage_headers(error, attempt, topic, partition, offset)
        extra.append(("original_timestamp", str(int(original_ts)).encode()))
        self._produce(retry_topic(topic, attempt), key=msg.key(), value=msg.value(),
                      headers=headers + extra)
        self.counts["forwarded"] += 1

    def _dead_letter(self, msg: Any, topic: str, headers: list, partition: int, offset: int,
                     attempt: int, error: str) -> None:
        self.counts["failed"] += 1
        if not self.p.dead_letter:
            return
        self._produce(dlq_topic(topic), key=msg.key(), value=msg.value(),
                      headers=headers + _stage_headers(error, attempt, topic, partition, offset))
        self.counts["dead_lettered"] += 1

    def _produce(self, topic: str, **kwargs: Any) -> None:
        producer = self.producer
        while True:
            try:
                producer.produce(topic, on_delivery=self._delivered, **kwargs)
                break
            except BufferError:  # queue full: serve delivery reports, wait (gevent-friendly), again
                producer.poll(0)
                if not self._sleep(0.05):
                    raise _Stopped from None
        producer.poll(0)

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.counts["stage_produce_errors"] += 1
            self._on_error(err, "processing stage produce")

    def _filter_match(self, headers: list) -> bool:
        name, value = self._filter
        return any(k == name and v is not None and v.decode(errors="replace") == value
                   for k, v in headers)

    def _pause(self, msg: Any, until: float) -> None:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.consumer.pause([tp])
        self.consumer.seek(tp)
        self.paused[(msg.topic(), msg.partition())] = until
        self.counts["delayed"] += 1


class _Stopped(Exception):
    """The run stopped in the middle of a message: it is neither done nor stored."""


class Abort(Exception):
    """Exactly-once: an attempt failed; abort the transaction, wait `wait_s`, read again."""

    def __init__(self, error: str, wait_s: float):
        super().__init__(error)
        self.wait_s = wait_s


#: init_transactions(), send_offsets_to_transaction(), commit and abort: at most this long.
TXN_TIMEOUT_S = 30.0


Stopped = _Stopped
# Headers the stage adds; removed again before a record is forwarded or dead-lettered, so
# the dead letter carries the input record's own headers byte for byte.
_STAGE_HEADERS = frozenset(RETRY_HEADERS) | {"original_timestamp"}


def _stage_headers(error: str, attempts: int, topic: str, partition: int, offset: int) -> list:
    """The design source's DLQ headers; retry_count = retries made (attempts - 1)."""
    return [("error", error.encode()), ("retry_count", str(attempts - 1).encode()),
            ("original_topic", topic.encode()), ("original_partition", str(partition).encode()),
            ("original_offset", str(offset).encode()), ("failed_at", str(now_ms()).encode())]


def _header_dict(headers: list) -> dict[str, bytes]:
    """The last value of each header name."""
    return {k: v for k, v in headers if v is not None}


# ----------------------------------------------------------------------------- after the run

#: Dead letters a run's result keeps (the topic holds them all).
DEAD_LETTERS_MAX = 10_000


def read_records(bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                 limit: int = DEAD_LETTERS_MAX, timeout_s: float = 30.0,
                 isolation_level: str = "read_committed", keep: Any = None) -> list[Any]:
    """Every record of `topics` from their low to their high watermarks, read once.

    Args:
        bootstrap: bootstrap servers.
        topics: topics to read (a missing one reads as empty).
        conf: extra client settings (security).
        limit: stop after this many records.
        timeout_s: time budget; what is not read by then is left out.
        isolation_level: "read_committed" or "read_uncommitted".
        keep: what to keep of each record, e.g. a function returning one header (None:
            the Message itself).

    Returns:
        What `keep` kept of each record, per partition in offset order.
    """
    from confluent_kafka import Consumer, TopicPartition

    settings = {**dict(conf or {}), "bootstrap.servers": bootstrap, "group.id": "kafkabench-read",
                "enable.auto.commit": False, "enable.partition.eof": True,
                "auto.offset.reset": "earliest", "isolation.level": isolation_level}
    from kafkabench.cluster import librdkafka_logger

    settings.setdefault("logger", librdkafka_logger())
    consumer = Consumer(settings)
    deadline = time.monotonic() + timeout_s
    out: list[Any] = []
    try:
        meta = consumer.list_topics(timeout=min(10.0, timeout_s))
        assign, pending = [], set()
        for t in topics:
            tm = meta.topics.get(t)
            if tm is None or tm.error is not None:
                continue
            for p in tm.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10.0)
                if high > low:
                    assign.append(TopicPartition(t, p, low))
                    pending.add((t, p, high))
        if not assign:
            return out
        high_of = {(t, p): h for t, p, h in pending}
        consumer.assign(assign)
        left = set(high_of)
        while left and len(out) < limit and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                err = m.error()
                tp = (m.topic(), m.partition())
                if err is not None:
                    if err.code() == -191:  # _PARTITION_EOF
                        left.discard(tp)
                    continue
                if m.offset() < high_of.get(tp, 0):
                    out.append(m if keep is None else keep(m))
                if m.offset() + 1 >= high_of.get(tp, 0):
                    left.discard(tp)
    finally:
        consumer.close()
    return out[:limit]


def dead_letters_frame(messages: list[Any]) -> Any:
    """The `dead_letters` frame of dead-letter records (`kafkabench.contract`)."""
    import json

    import pandas as pd

    from kafkabench.contract import empty_frame

    rows = []
    for m in messages:
        headers = _header_dict(m.headers() or [])
        text = {k: v.decode(errors="replace") for k, v in headers.items()}
        rows.append({
            "topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "key": m.key(),
            "value_bytes": len(m.value() or b""), "error": text.get("error", ""),
            "retry_count": int(text.get("retry_count", -1)),
            "original_topic": text.get("original_topic", ""),
            "original_partition": int(text.get("original_partition", -1)),
            "original_offset": int(text.get("original_offset", -1)),
            "failed_at": pd.to_datetime(int(text.get("failed_at", 0)), unit="ms", utc=True),
            "headers": json.dumps({k: v for k, v in text.items() if k not in DLQ_HEADERS}),
        })
    empty = empty_frame("dead_letters")
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())


_STAGE_COUNTS = ("processed", "filtered", "retried", "forwarded", "failed", "dead_lettered", "output")


class OutputLatency:
    """A downstream consumer of the output topics during a run (read_committed, like a real
    one): end-to-end latency from the input record's timestamp (the output carries it) to
    the moment the output record reached this reader, overall and per second of the run.

    Runs in a thread of the parent process; `stop` reads what is left, up to the topics'
    ends, within a time budget.

    Args:
        bootstrap: bootstrap servers.
        topics: the output topics.
        conf: extra client settings (security).
        second: the run's whole second of a wall-clock time.
    """

    IDLE_S = 2.0

    def __init__(self, bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                 second: Any = None):
        from kafkabench.stats import LatencyRecorder

        self.bootstrap, self.topics, self.conf = bootstrap, list(topics), dict(conf or {})
        self.second = second or (lambda wall: 0)
        self.latency = LatencyRecorder()
        self.by_second: dict[int, Any] = {}
        self.read = 0
        self.error = ""
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="kb-output-latency", daemon=True)

    def start(self) -> None:
        """Start reading (from each output partition's beginning)."""
        self._thread.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Read on until the reader has been idle for IDLE_S or `timeout_s` passed; then stop."""
        self._drain_until = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(timeout_s + 15.0)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from kafkabench.cluster import librdkafka_logger
        from kafkabench.stats import LatencyRecorder

        settings = {**self.conf, "bootstrap.servers": self.bootstrap, "group.id": "kafkabench-output-e2e",
                    "enable.auto.commit": False, "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10}
        settings.setdefault("logger", librdkafka_logger())
        try:
            consumer = Consumer(settings)
        except Exception as exc:  # noqa: BLE001 - the result says why the figure is missing
            self.error = f"output latency reader: {exc}"
            return
        try:
            meta = consumer.list_topics(timeout=10.0)
            consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in self.topics
                             if t in meta.topics for p in meta.topics[t].partitions])
            last = time.monotonic()
            while True:
                now = time.monotonic()
                if self._stop.is_set() and (now - last > self.IDLE_S or now > self._drain_until):
                    break
                msgs = consumer.consume(1000, 0.2)
                wall = time.time()
                if not msgs:
                    continue
                last = time.monotonic()
                lat = [wall * 1e6 - m.timestamp()[1] * 1e3 for m in msgs
                       if m.error() is None and m.timestamp()[1] > 0]
                self.read += len(lat)
                self.latency.record_many(lat)
                t = self.second(wall)
                rec = self.by_second.get(t)
                if rec is None:
                    rec = self.by_second[t] = LatencyRecorder()
                rec.record_many(lat)
        except Exception as exc:  # noqa: BLE001
            self.error = f"output latency reader: {exc}"
        finally:
            consumer.close()


class ProcessingObserver(RunObserver):
    """Adds the processing stage's figures to a run: the `processing` frame (per second), the
    processing_* summary keys and the `dead_letters` frame (read before the topics go).

    Args:
        processing: the run's stage.
        bootstrap: bootstrap servers.
        topics: the run's input topics.
        conf: extra client settings (security).
    """

    def __init__(self, processing: Processing, bootstrap: str, topics: list[str], *,
                 conf: Mapping[str, Any] | None = None):
        self.p, self.bootstrap, self.topics, self.conf = processing, bootstrap, list(topics), conf
        self.session: Any = None
        self.dead: list[Any] = []
        self.output: dict[str, int] = {}
        self.error = ""
        self.reader: OutputLatency | None = None

    def on_start(self, session: Any) -> None:
        self.session = session
        if self.p.output:
            tally = session.tally  # its clock (t0_wall) restarts when the producers start
            self.reader = OutputLatency(self.bootstrap, [output_topic(t) for t in self.topics], conf=self.conf,
                                        second=lambda wall: max(0, math.floor(wall - tally.t0_wall)))
            self.reader.start()

    def on_end(self, session: Any) -> None:
        self.session = session
        if self.reader is not None:
            self.reader.stop()
        try:
            if self.p.dead_letter:
                self.dead = read_records(self.bootstrap, [dlq_topic(t) for t in self.topics],
                                         conf=self.conf, timeout_s=30.0)
            if self.p.output:
                outputs = [output_topic(t) for t in self.topics]
                self.output = output_counts(self.bootstrap, outputs, conf=self.conf, timeout_s=60.0)
                if self.p.exactly_once:  # what aborted transactions left in the log too
                    self.output["read_uncommitted"] = output_counts(
                        self.bootstrap, outputs, conf=self.conf, timeout_s=60.0,
                        isolation_level="read_uncommitted")["read"]
        except Exception as exc:  # noqa: BLE001 - the result says why the figures are missing
            self.error = f"could not read the stage's dead-letter or output topics: {exc}"

    def contribute(self, result: Any) -> None:
        import json

        tally = self.session.tally if self.session is not None else None
        if tally is None:
            return
        reader = self.reader
        result.processing = processing_frame(tally, reader.by_second if reader is not None else None)
        result.dead_letters = dead_letters_frame(self.dead)
        totals = tally.totals["consumer"]
        # Per-second counts: a member killed on purpose sent no final report.
        per_second = Counter()
        for counts in tally.counts.values():
            per_second.update({k: v for k, v in counts.items() if k.startswith("consumed_")})
        summary = {f"processing_{k}": max(int(totals.get(k, 0)), per_second[f"consumed_{k}"])
                   for k in _STAGE_COUNTS}
        summary.update({f"processing_output_{k}": v for k, v in self.output.items()})
        summary["processing_delayed"] = int(totals.get("delayed", 0))
        if self.p.exactly_once:
            for k in ("transactions_committed", "transactions_aborted", "aborted_messages"):
                summary[f"processing_{k}"] = max(int(totals.get(k, 0)), per_second[f"consumed_{k}"])
        summary["processing_stage_errors"] = int(totals.get("stage_produce_errors", 0))
        summary["processing_unflushed"] = int(totals.get("stage_unflushed", 0))
        attempts = {int(k.split("_", 1)[1]): int(v) for k, v in totals.items() if k.startswith("attempts_")}
        summary["processing_attempts"] = json.dumps(dict(sorted(attempts.items())))
        for name, prefix in (("processing_latency_us", "processing_latency_ms"),
                             ("processing_done_latency_us", "processing_done_latency_ms")):
            values = tally.merged(name).percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"{prefix}_{k}": v for k, v in values.items()})
        if reader is not None:
            summary["processing_output_e2e_read"] = reader.read
            values = reader.latency.percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"processing_output_e2e_latency_ms_{k}": v for k, v in values.items()})
        result.summary.update(summary)
        for error in (self.error, reader.error if reader is not None else ""):
            if error:
                result.summary.setdefault("warnings", []).append(error)


def output_counts(bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                  timeout_s: float = 60.0, isolation_level: str = "read_committed") -> dict[str, int]:
    """Read the output topics once and count their records by input (`SOURCE_HEADER`).

    Returns:
        {"read": records, "inputs": distinct inputs, "duplicated": records beyond the first
        of their input (an input processed more than once)}.
    """
    def source(m: Any) -> bytes | None:
        for k, v in m.headers() or ():
            if k == SOURCE_HEADER:
                return v
        return None

    sources = Counter(read_records(bootstrap, topics, conf=conf, limit=10**9, timeout_s=timeout_s,
                                   isolation_level=isolation_level, keep=source))
    read = sum(sources.values())
    return {"read": read, "inputs": len(sources), "duplicated": read - len(sources)}


def processing_frame(tally: Any, output_latency: Mapping[int, Any] | None = None) -> Any:
    """The `processing` frame from a run's tally (consumer counts are kept as `consumed_<k>`)
    and `OutputLatency.by_second` (None: no output topic)."""
    import pandas as pd

    from kafkabench.contract import empty_frame

    empty = empty_frame("processing")
    seconds = sorted(t for t, c in tally.counts.items()
                     if any(c.get(f"consumed_{k}") for k in _STAGE_COUNTS))
    if not seconds:
        return empty
    rows = []
    for t in seconds:
        c = tally.counts[t]
        row = {"t": t, **{k: int(c.get(f"consumed_{k}", 0)) for k in _STAGE_COUNTS}}
        for name, column, key in (("processing_latency_us", "processing_latency_ms_p99", "p99"),
                                  ("processing_done_latency_us", "done_latency_ms_p50", "p50"),
                                  ("processing_done_latency_us", "done_latency_ms_p99", "p99")):
            rec = tally.histograms.get((t, name))
            row[column] = rec.percentiles("ms", (key,))[key] if rec is not None and rec.count else math.nan
        out = (output_latency or {}).get(t)
        for key in ("p50", "p99"):
            row[f"output_e2e_latency_ms_{key}"] = (out.percentiles("ms", (key,))[key]
                                                   if out is not None and out.count else math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())
