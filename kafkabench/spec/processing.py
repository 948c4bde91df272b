"""What a consumer-group processing stage is: `Processing` (a workload's `processing` section)
and its `Backoff`, data and validation; the stage that runs it is `kafkabench.engine`'s.

A `Processing` says what a consumer member does with each message: spend `time_ms` on it, drop
it (filtering), fail on it (injected transient or poison failures), retry it inline with
exponential backoff or through retry topics, send it to a dead-letter topic after the last
attempt, and optionally produce a record per processed message to an output topic.

Which messages fail is decided from the message's place in the log, `(partition, offset)` of
the input topic, hashed with `seed`: runs are repeatable, and a test can count the injected
failures exactly by asking `fate()` about every offset it produced.

Topics (per input topic `T`): `T.retry.1` .. `T.retry.N` (retry-topic mode, N = attempts - 1),
`T.dlq` (dead letters), `T.out` (output).
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kafkabench.core.checks import (
    Rule,
    check_fields,
    check_rules,
    flag,
    fraction,
    integer,
    known_keys,
    number,
    one_of,
    optional,
    refuse,
    str_mapping,
)
from kafkabench.core.errors import ConfigError
from kafkabench.spec.profile import read_yaml

RETRY_MODES = ("inline", "topics", "none")

#: A processing stage's counts of messages it is done with (`kafkabench.patterns`: its tally
#: part counts them as what a group finished).
STAGE_FINISHED = ("processed", "failed", "filtered")

# What a message is to the stage (see `Processing.fate`).
OK, TRANSIENT, POISON, FILTERED = "ok", "transient", "poison", "filtered"

TIME_DISTRIBUTIONS = ("fixed", "uniform", "exponential")

# Dead-letter headers, as the design source's DLQ handler writes them (plus where and when).
DLQ_HEADERS = ("error", "retry_count", "original_topic", "original_partition", "original_offset",
               "failed_at")

#: The header of an output record naming its input: b"<partition>:<offset>".
SOURCE_HEADER = "kb-src"

#: Header names the stage adds to the records it forwards to retry topics.
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
        check_fields(self, _BACKOFF_FIELDS, "processing.backoff.")
        check_rules(self, _BACKOFF_RULES)

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
        check_fields(self, _FIELDS, "processing.")
        check_rules(self, _RULES)

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
    known_keys("processing", spec, [f.name for f in fields(Processing)])
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


_MS = number(0)


def _time_spec(label: str, value: Any) -> tuple[str, float, float]:
    """`time_ms` as (kind, a, b)."""
    if isinstance(value, tuple) and len(value) == 3 and value[0] in TIME_DISTRIBUTIONS:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("fixed", _MS(label, value), 0.0)
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, arg), = value.items()
        if kind == "uniform" and isinstance(arg, (list, tuple)) and len(arg) == 2:
            lo = _MS(f"{label}.uniform[0]", arg[0])
            return ("uniform", lo, number(lo)(f"{label}.uniform[1]", arg[1]))
        if kind == "exponential":
            return ("exponential", _MS(f"{label}.exponential", arg), 0.0)
    refuse(label, value, "expected milliseconds (a number), {uniform: [lo, hi]} or "
                         "{exponential: mean}")


def _backoff(label: str, value: Any) -> Backoff:
    """`backoff` as a `Backoff`, from its mapping."""
    if isinstance(value, Mapping):
        known_keys(label, value, [f.name for f in fields(Backoff)])
        return Backoff(**value)
    if not isinstance(value, Backoff):
        refuse(label, value, "expected a mapping such as "
                             "{initial_ms: 100, multiplier: 2, max_ms: 10000, max_attempts: 3}")
    return value


_BACKOFF_FIELDS = {
    "initial_ms": number(0),
    "multiplier": number(1),
    "max_ms": number(0),
    "jitter": fraction,
    "max_attempts": integer(1, note="attempts in all, the first included"),
}
_BACKOFF_RULES: list[Rule] = [
    (lambda b: b.max_ms >= b.initial_ms,
     "processing.backoff.max_ms={max_ms!r} is less than initial_ms={initial_ms!r}: the longest "
     "delay must be at least the first"),
]
_FIELDS = {
    "time_ms": _time_spec,
    "transient_fraction": fraction,
    "poison_fraction": fraction,
    "filter_fraction": fraction,
    "transient_failures": integer(1),
    "retry": one_of(RETRY_MODES),
    "backoff": _backoff,
    "dead_letter": flag,
    "output": flag,
    "filter_header": optional(str_mapping(
        "one header name and its text value, e.g. {event-type: OrderCancelled}",
        nonempty_keys=True, size=1)),
    "seed": integer(),
    "exactly_once": flag,
    "transaction_messages": integer(1),
    "transaction_ms": number(1),
}
_RULES: list[Rule] = [
    (lambda p: p.transient_fraction + p.poison_fraction <= 1.0,
     "processing.transient_fraction={transient_fraction!r} plus "
     "poison_fraction={poison_fraction!r} is more than 1"),
    (lambda p: not (p.exactly_once and p.retry == "topics"),
     "processing.exactly_once with retry=topics: a failed attempt aborts the transaction and is "
     "read again; use retry: inline or none"),
    (lambda p: not p.transient_fraction or p.retry == "none"
     or p.transient_failures < p.backoff.max_attempts,
     "processing.transient_failures={transient_failures} needs backoff.max_attempts > "
     "{transient_failures} (it is {backoff.max_attempts}): otherwise no transient message "
     "ever succeeds"),
]
