"""TODO: docstring of kafkabench.spec.processing."""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kafkabench.core.errors import ConfigError

RETRY_MODES = ("inline", "topics", "none")

# What a message is to the stage (see `Processing.fate`).
OK, TRANSIENT, POISON, FILTERED = "ok", "transient", "poison", "filtered"



TIME_DISTRIBUTIONS = ("fixed", "uniform", "exponential")


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
    from kafkabench.spec.profile import read_yaml

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


