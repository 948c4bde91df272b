"""Partitioning strategies: librdkafka's built-ins modelled in Python, plus custom ones.

The built-in models reproduce librdkafka's `partitioner` setting bit for bit for keyed
messages (`src/rdkafka_msg.c`, `rd_kafka_msg_partitioner_*`):

| name | keyed message | key None (no key) |
| --- | --- | --- |
| `murmur2_random` | `(murmur2(key) & 0x7fffffff) % n` (Java client's default) | sticky random |
| `murmur2` | as above | `murmur2(b"")` |
| `consistent_random` (librdkafka's default) | `crc32(key) % n`; `b""` is keyless | sticky random |
| `consistent` | `crc32(key) % n` | `crc32(b"") % n` = 0 |
| `fnv1a_random` | `abs(int32 fnv1a(key)) % n` (Sarama's hash partitioner) | sticky random |
| `fnv1a` | as above | `fnv1a(b"")` |
| `random` | uniform random per message | sticky random |

"Sticky random" is librdkafka's sticky partitioner (`sticky.partitioning.linger.ms`, 10 ms by
default): all keyless messages go to one random partition until the linger expires. It
cannot be predicted, so the models draw a uniform random partition for each keyless message.

confluent-kafka has no Python partitioner callback, so custom strategies (`fnv1a-rr`,
`priority`) choose the partition in Python and the producer passes `partition=` to
`produce()`; for built-ins it sets `{"partitioner": strategy.builtin}` and lets librdkafka pick.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from kafkabench.core.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "BUILTIN_STRATEGIES",
    "Partitioner",
    "PartitionAnalysis",
    "murmur2",
    "fnv1a",
    "crc32",
    "java_murmur2",
    "get_strategy",
    "analyze",
    "keys_moved",
    "compare_strategies",
    "key_sample",
    "KEY_KINDS",
]

_MASK = 0xFFFFFFFF
_M = 0x5BD1E995
_MURMUR2_SEED = 0x9747B28C  # the Java client's seed; librdkafka uses the same one
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
# A key -> partition cache is cleared when it grows past this many keys, so a producer
# writing unbounded distinct keys (UUIDs) keeps bounded memory.
_CACHE_LIMIT = 1_000_000


def murmur2(data: bytes) -> int:
    """librdkafka's `rd_murmur2`: 32-bit MurmurHash2 with the Java client's seed.

    Args:
        data: the key bytes.

    Returns:
        The hash as an unsigned 32-bit int (`java_murmur2` gives Java's signed view).
    """
    length = len(data)
    h = _MURMUR2_SEED ^ length
    end = length & ~3
    for (k,) in struct.iter_unpack("<I", memoryview(data)[:end]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def java_murmur2(data: bytes) -> int:
    """`org.apache.kafka.common.utils.Utils.murmur2`: `murmur2` as a signed Java int.

    Args:
        data: the key bytes.

    Returns:
        The hash in [-2**31, 2**31).
    """
    h = murmur2(data)
    return h - (1 << 32) if h & 0x80000000 else h


def fnv1a(data: bytes) -> int:
    """librdkafka's `rd_fnv1a`: 32-bit FNV-1a, then the absolute value of it as an int32.

    The absolute value (not `& 0x7fffffff`) matches Sarama's `NewHashPartitioner`.
    int32 -2**31 has no absolute value and stays 2**31, as in C.

    Args:
        data: the key bytes.

    Returns:
        An unsigned 32-bit int.
    """
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    if h & 0x80000000:
        h = ((1 << 32) - h) & _MASK
    return h


def crc32(data: bytes) -> int:
    """librdkafka's `rd_crc32` (the zlib CRC-32), used by the `consistent` partitioners.

    Args:
        data: the key bytes.

    Returns:
        An unsigned 32-bit int.
    """
    return zlib.crc32(data)


def _murmur2_positive(key: bytes) -> int:
    """Java's `Utils.toPositive(Utils.murmur2(key))`: the hash with the sign bit cleared."""
    return murmur2(key) & 0x7FFFFFFF


def _as_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


class Partitioner:
    """Chooses a partition for each message, for a topic with `partitions` partitions.

    Subclasses set `name`, `builtin` (the librdkafka `partitioner` value, or None for a
    custom strategy whose partition the producer passes explicitly) and `key_stable`
    (True when a keyed message always goes to the same partition, so per-key order holds).

    Args:
        partitions: number of partitions of the topic.
        seed: seed of the random source for keyless and random choices.
    """

    name: ClassVar[str] = ""
    builtin: ClassVar[str | None] = None
    key_stable: ClassVar[bool] = True
    _empty_is_keyless: ClassVar[bool] = False  # True: b"" is treated as no key

    def __init__(self, partitions: int, *, seed: int | None = None) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ConfigError(f"partitions must be an int >= 1, got {partitions!r}")
        self.partitions = partitions
        self.seed = seed
        self._rng = random.Random(seed)
        self._random = self._rng.random
        self._cache: dict[Any, int] = {}

    def partition(self, key: bytes | str | None, headers: Any = None) -> int:
        """The partition for one message.

        Args:
            key: message key; None for a keyless message.
            headers: message headers as confluent-kafka takes them (dict or list of
                (name, value) pairs); only custom strategies read them.

        Returns:
            A partition number in [0, partitions).
        """
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError:  # unhashable key, e.g. bytearray
            key = _as_bytes(key)
            return self._keyless() if self._empty_is_keyless and not key else self._keyed(key)
        if key is None or (self._empty_is_keyless and not key):
            return self._keyless()
        p = self._keyed(_as_bytes(key))
        if self.key_stable:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = p
        return p

    def _keyed(self, key: bytes) -> int:
        raise NotImplementedError

    def _keyless(self) -> int:
        return int(self._random() * self.partitions)  # 3x faster than randrange

    def _options(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def with_partitions(self, partitions: int) -> Partitioner:
        """The same strategy and options for a topic with another partition count.

        Args:
            partitions: the new partition count.

        Returns:
            A new partitioner with an empty cache.
        """
        return type(self)(partitions, **self._options())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(partitions={self.partitions})"


class _Hashed(Partitioner):
    """A librdkafka built-in: hash % partitions; keyless is random or the empty-key hash."""

    _hash: ClassVar[Any]
    _keyless_hashes: ClassVar[bool] = False  # True: no key is hashed as b"" (not sticky)

    def __init__(self, partitions: int, *, seed: int | None = None) -> None:
        super().__init__(partitions, seed=seed)
        if self._keyless_hashes:
            self._cache[None] = self._keyed(b"")

    def _keyless(self) -> int:
        return self._keyed(b"") if self._keyless_hashes else super()._keyless()

    def _keyed(self, key: bytes) -> int:
        return type(self)._hash(key) % self.partitions


class Murmur2Random(_Hashed):
    """`murmur2_random`: the Java client's default partitioner (keyless: sticky random)."""

    name = builtin = "murmur2_random"
    _hash = staticmethod(_murmur2_positive)


class Murmur2(_Hashed):
    """`murmur2`: as `murmur2_random`, but a keyless message hashes as an empty key."""

    name = builtin = "murmur2"
    _hash = staticmethod(_murmur2_positive)
    _keyless_hashes = True


class ConsistentRandom(_Hashed):
    """`consistent_random`: librdkafka's default, CRC-32 of the key (empty/no key: sticky)."""

    name = builtin = "consistent_random"
    _hash = staticmethod(crc32)
    _empty_is_keyless = True


class Consistent(_Hashed):
    """`consistent`: CRC-32 of the key; a keyless message always goes to partition 0."""

    name = builtin = "consistent"
    _hash = staticmethod(crc32)
    _keyless_hashes = True


class Fnv1aRandom(_Hashed):
    """`fnv1a_random`: Sarama-compatible FNV-1a of the key (keyless: sticky random)."""

    name = builtin = "fnv1a_random"
    _hash = staticmethod(fnv1a)


class Fnv1a(_Hashed):
    """`fnv1a`: as `fnv1a_random`, but a keyless message hashes as an empty key."""

    name = builtin = "fnv1a"
    _hash = staticmethod(fnv1a)
    _keyless_hashes = True


class Random(Partitioner):
    """`random`: every keyed message to a uniformly random partition (no per-key order)."""

    name = builtin = "random"
    key_stable = False

    def partition(self, key: bytes | str | None, headers: Any = None) -> int:
        return int(self._random() * self.partitions)


class Fnv1aRoundRobin(Partitioner):
    """`fnv1a-rr`: FNV-1a key hash % partitions; keyless messages round-robin.

    The hash is librdkafka's `rd_fnv1a`, so keyed messages land exactly where the
    `fnv1a` built-in (and Sarama) put them; only keyless messages differ: they cycle
    0, 1, ..., n-1 instead of sticking to one partition, which evens out small batches.
    """

    name = "fnv1a-rr"

    def __init__(self, partitions: int, *, seed: int | None = None) -> None:
        super().__init__(partitions, seed=seed)
        self._next = itertools.count(self._rng.randrange(partitions)).__next__

    def _keyed(self, key: bytes) -> int:
        return fnv1a(key) % self.partitions

    def _keyless(self) -> int:
        return self._next() % self.partitions


class Priority(Partitioner):
    """`priority`: high-priority messages to a dedicated partition, the rest hashed over the others.

    A message whose header `header` equals `value` goes to `priority_partition`. Any other
    keyed message goes to `others[(murmur2(key) & 0x7fffffff) % (n - 1)]`, where `others`
    are the partitions except the dedicated one, in order; keyless ones round-robin over
    `others`. A key sent at both priorities is split over two partitions, so per-key order
    holds only within one priority.

    Args:
        partitions: number of partitions, at least 2.
        priority_partition: the dedicated partition.
        header: header name that marks priority.
        value: header value that means high priority (bytes or str; compared as bytes).
        seed: unused except for the round-robin starting point.
    """

    name = "priority"

    def __init__(
        self,
        partitions: int,
        *,
        priority_partition: int = 0,
        header: str = "priority",
        value: bytes | str = b"high",
        seed: int | None = None,
    ) -> None:
        super().__init__(partitions, seed=seed)
        if partitions < 2:
            raise ConfigError(f"priority strategy needs partitions >= 2, got {partitions!r}")
        if not isinstance(priority_partition, int) or not 0 <= priority_partition < partitions:
            raise ConfigError(
                f"priority_partition must be in [0, {partitions}), got {priority_partition!r}"
            )
        self.priority_partition = priority_partition
        self.header = header
        self.value = _as_bytes(value)
        self._others = [p for p in range(partitions) if p != priority_partition]
        self._next = itertools.count(self._rng.randrange(partitions - 1)).__next__

    def _options(self) -> dict[str, Any]:
        return {
            "priority_partition": self.priority_partition,
            "header": self.header,
            "value": self.value,
            "seed": self.seed,
        }

    def partition(self, key: bytes | str | None, headers: Any = None) -> int:
        if headers and self._is_high(headers):
            return self.priority_partition
        return super().partition(key)

    def _is_high(self, headers: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> bool:
        if isinstance(headers, Mapping):
            found = headers.get(self.header)
            return found is not None and _as_bytes(found) == self.value
        return any(
            name == self.header and v is not None and _as_bytes(v) == self.value
            for name, v in headers
        )

    def _keyed(self, key: bytes) -> int:
        return self._others[_murmur2_positive(key) % len(self._others)]

    def _keyless(self) -> int:
        return self._others[self._next() % len(self._others)]


STRATEGIES: dict[str, type[Partitioner]] = {
    cls.name: cls
    for cls in (
        Murmur2Random,
        Murmur2,
        ConsistentRandom,
        Consistent,
        Fnv1aRandom,
        Fnv1a,
        Random,
        Fnv1aRoundRobin,
        Priority,
    )
}
#: Names whose `builtin` is a librdkafka `partitioner` value.
BUILTIN_STRATEGIES = tuple(name for name, cls in STRATEGIES.items() if cls.builtin)


def get_strategy(name: str | Partitioner, partitions: int, **opts: Any) -> Partitioner:
    """A partitioner by strategy name.

    Args:
        name: a key of `STRATEGIES` (`murmur2_random`, ..., `fnv1a-rr`, `priority`), or a
            `Partitioner`, which is rebuilt for `partitions` if its count differs.
        partitions: number of partitions of the topic.
        **opts: strategy options, e.g. `seed`, or `priority_partition` for `priority`.

    Returns:
        A new partitioner.

    Raises:
        ConfigError: unknown name, bad partition count or bad option.
    """
    if isinstance(name, Partitioner):
        if opts:
            raise ConfigError(f"options {opts!r} need a strategy name, not a {name!r}")
        return name if name.partitions == partitions else name.with_partitions(partitions)
    try:
        cls = STRATEGIES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown partitioning strategy {name!r}; known: {', '.join(STRATEGIES)}"
        ) from None
    try:
        return cls(partitions, **opts)
    except TypeError as exc:  # an option the strategy does not take
        raise ConfigError(f"bad options for strategy {name!r}: {opts!r} ({exc})") from None


@dataclass(frozen=True, slots=True)
class PartitionAnalysis:
    """How one strategy spreads a key sample over partitions.

    Attributes:
        strategy: strategy name.
        partitions: partition count.
        messages: messages analysed.
        keyless: messages without a key.
        distinct_keys: distinct non-None keys.
        per_partition: DataFrame with columns `partition, messages, share` (share in [0, 1]).
        skew: busiest partition's messages / mean messages per partition (1.0 = even).
        cv: coefficient of variation of messages per partition (population std / mean).
        empty: partitions that got no message.
        ordering_kept: True when every key went to a single partition (per-key order holds).
    """

    strategy: str
    partitions: int
    messages: int
    keyless: int
    distinct_keys: int
    per_partition: pd.DataFrame
    skew: float
    cv: float
    empty: int
    ordering_kept: bool

    def as_dict(self) -> dict[str, Any]:
        """The scalar fields as a flat dict (without `per_partition`)."""
        return {
            "strategy": self.strategy,
            "partitions": self.partitions,
            "messages": self.messages,
            "keyless": self.keyless,
            "distinct_keys": self.distinct_keys,
            "skew": self.skew,
            "cv": self.cv,
            "empty": self.empty,
            "ordering_kept": self.ordering_kept,
        }


def analyze(
    strategy: str | Partitioner,
    keys: Iterable[bytes | str | None],
    partitions: int,
    *,
    headers: Iterable[Any] | None = None,
    **opts: Any,
) -> PartitionAnalysis:
    """Partition a key sample offline and measure the balance.

    Args:
        strategy: strategy name or partitioner.
        keys: one key per message (None = keyless), e.g. from `key_sample`.
        partitions: partition count.
        headers: optional headers per message, parallel to `keys` (for `priority`).
        **opts: strategy options for `get_strategy`.

    Returns:
        The analysis; `per_partition` lists every partition, empty ones included.
    """
    part = get_strategy(strategy, partitions, **opts)
    counts = [0] * partitions
    seen: dict[Any, int] = {}
    split = False
    keyless = 0
    pairs = zip(keys, headers, strict=True) if headers is not None else ((k, None) for k in keys)
    for key, hdrs in pairs:
        p = part.partition(key, hdrs)
        counts[p] += 1
        if key is None:
            keyless += 1
        elif seen.setdefault(key, p) != p:
            split = True
    messages = sum(counts)
    if messages == 0:
        raise ConfigError("keys is empty: nothing to analyse")
    arr = np.asarray(counts, dtype=float)
    mean = arr.mean()
    per_partition = pd.DataFrame(
        {"partition": range(partitions), "messages": counts, "share": arr / messages}
    )
    return PartitionAnalysis(
        strategy=part.name,
        partitions=partitions,
        messages=messages,
        keyless=keyless,
        distinct_keys=len(seen),
        per_partition=per_partition,
        skew=float(arr.max() / mean),
        cv=float(arr.std() / mean),
        empty=int((arr == 0).sum()),
        # A random strategy can look stable on a sample where each key occurs once.
        ordering_kept=part.key_stable and not split,
    )


def keys_moved(
    strategy: str | Partitioner,
    keys: Iterable[bytes | str | None],
    n_from: int,
    n_to: int,
    **opts: Any,
) -> float:
    """Fraction of distinct keys whose partition changes when a topic grows from n_from to n_to.

    Kafka never moves existing records: after the change, new records of a moved key go
    to another partition than its old ones, so per-key order breaks across the change.

    Args:
        strategy: strategy name or partitioner.
        keys: key sample; None keys are ignored.
        n_from: partition count before.
        n_to: partition count after.
        **opts: strategy options for `get_strategy`.

    Returns:
        A fraction in [0, 1]; NaN when the strategy has no stable key mapping
        (`random`) or the sample has no keys.
    """
    before = get_strategy(strategy, n_from, **opts)
    after = get_strategy(strategy, n_to, **opts)
    if not before.key_stable:
        return math.nan
    distinct = {k for k in keys if k is not None}
    if not distinct:
        return math.nan
    moved = sum(before.partition(k) != after.partition(k) for k in distinct)
    return moved / len(distinct)


def compare_strategies(
    strategies: Iterable[str | Partitioner],
    keys: Iterable[bytes | str | None],
    partitions: int,
    *,
    grow_to: int | None = None,
) -> pd.DataFrame:
    """One row per strategy: balance, per-key order and keys moved on growth.

    Args:
        strategies: strategy names or partitioners.
        keys: key sample (materialised once, reused for every strategy).
        partitions: partition count.
        grow_to: partition count for `keys_moved`; default `2 * partitions`.

    Returns:
        DataFrame with columns `strategy, builtin, partitions, messages, keyless,
        distinct_keys, skew, cv, empty, ordering_kept, grow_to, keys_moved`.
    """
    keys = list(keys)
    grow_to = 2 * partitions if grow_to is None else grow_to
    rows = []
    for strategy in strategies:
        part = get_strategy(strategy, partitions)
        row = analyze(part, keys, partitions).as_dict()
        row["builtin"] = part.builtin
        row["grow_to"] = grow_to
        row["keys_moved"] = keys_moved(part, keys, partitions, grow_to)
        rows.append(row)
    columns = [
        "strategy", "builtin", "partitions", "messages", "keyless", "distinct_keys",
        "skew", "cv", "empty", "ordering_kept", "grow_to", "keys_moved",
    ]
    return pd.DataFrame(rows, columns=columns)


#: Key sample kinds for `key_sample`.
KEY_KINDS = ("uniform", "zipf", "user_ids", "none")


def key_sample(
    kind: str,
    count: int,
    n_keys: int = 1000,
    seed: int = 0,
    *,
    s: float | None = None,
) -> list[bytes | None]:
    """A reproducible key sample for offline analysis (not for producing load).

    Args:
        kind: `uniform` (`b"key-<i>"`, each of `n_keys` equally likely), `zipf` (key of
            rank r has weight r**-s, default s=1.1: a few very hot keys), `user_ids`
            (order events keyed by `b"user-<id>"`: ids scattered over 1e6..1e7, activity
            Zipf with default s=0.8, a long tail of occasional buyers with a few heavy ones)
            or `none` (all keyless).
        count: messages in the sample.
        n_keys: distinct keys to draw from.
        seed: random seed.
        s: Zipf exponent for `zipf` and `user_ids`.

    Returns:
        `count` keys.

    Raises:
        ConfigError: unknown kind or non-positive count / n_keys.
    """
    if kind not in KEY_KINDS:
        raise ConfigError(f"unknown key kind {kind!r}; known: {', '.join(KEY_KINDS)}")
    for param, value in (("count", count), ("n_keys", n_keys)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{param} must be an int >= 1, got {value!r}")
    if kind == "none":
        return [None] * count
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return [b"key-%d" % i for i in rng.integers(0, n_keys, size=count)]
    exponent = s if s is not None else (1.1 if kind == "zipf" else 0.8)
    weights = np.arange(1, n_keys + 1, dtype=float) ** -exponent
    ranks = rng.choice(n_keys, size=count, p=weights / weights.sum())
    if kind == "zipf":
        return [b"key-%d" % r for r in ranks]
    # Real user ids are not ordered by activity: give each rank a random id.
    ids = rng.choice(np.arange(1_000_000, 10_000_000), size=n_keys, replace=False)
    return [b"user-%d" % ids[r] for r in ranks]

