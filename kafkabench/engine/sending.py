"""How a producer hands its messages to produce(): one send loop per shape of message, chosen
once before the run (`sender_for`), so that no loop asks per message which features are on.

- `BareSender`: produce(topic, value, key) and nothing else (max rate, no headers, no
  partitioner): the fastest;
- `TimedSender`: the Kafka timestamp is the intended send time (fixed rate);
- `HeaderedSender`, `TimedHeaderedSender`: headers, or a partition chosen in Python, or both;
- `VerifiedSender`: each message also carries its sequence number (`VERIFY_HEADER`) and has
  its own delivery callback, which fills the delivery ledger.

A sender cycles through the topics, payloads and keys (message i: topic `i % len(topics)`,
and so on) and counts what it sent. `send(n)` sends the next `n` messages, serving delivery
reports every `POLL_EVERY`; it returns early when librdkafka's queue is full (that message
goes first next time) and raises `Refused` when produce() refuses a message.

May import: `kafkabench.engine.delivery`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from itertools import chain, count, cycle, islice, repeat
from typing import Any

from confluent_kafka import KafkaException

from kafkabench.engine.delivery import VERIFY_HEADER, DeliveryLedger

# The send loops serve delivery reports every this many sends (poll(0)). A report's
# publish latency is taken when it is served, so this adds at most POLL_EVERY sends' time
# (~50 us) to it; polling after every send cost ~0.35 us per message (measured 2.12 vs
# 1.78 us of Python time per 100 B message).
POLL_EVERY = 32

Headers = list[tuple[str, bytes]]
Refusal = Callable[[int, int, Exception], None]


class Refused(Exception):
    """produce() refused a message (too large, unknown partition): the send loop ends."""


@functools.cache
def _runs(n: int) -> tuple[int, ...]:
    """A burst of `n` sends as runs of at most `POLL_EVERY`, each after a poll(0)."""
    return (POLL_EVERY,) * (n // POLL_EVERY) + ((n % POLL_EVERY,) if n % POLL_EVERY else ())


class Sender:
    """What every send loop shares: the messages, the count, a full queue and a refusal.

    Args:
        producer: the confluent-kafka producer.
        topics, payloads, keys: cycled through (keys None: keyless messages).
        refused: called as `refused(seq, size, exc)` when produce() refuses message `seq`.

    Attributes:
        sent: messages handed to produce() so far (a refused one included).
        buffer_full: times produce() found librdkafka's queue full.
    """

    def __init__(self, producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
                 keys: tuple[bytes, ...] | None, refused: Refusal) -> None:
        self._produce, self._poll, self._refused = producer.produce, producer.poll, refused
        self._source = zip(count(), cycle(topics), cycle(payloads), *self._key_fields(keys or (None,)))
        self._messages: Iterator[tuple] = self._source
        self.sent = self.buffer_full = 0

    def _key_fields(self, keys: tuple[bytes | None, ...]) -> tuple[Iterator, ...]:
        """What follows (i, topic, payload) in a message's tuple: its key."""
        return (cycle(keys),)

    def send(self, n: int) -> int:
        """Send the next `n` messages; returns how many went (fewer when the queue is full).

        Raises:
            Refused: produce() refused a message (counted as sent, and failed).
        """
        raise NotImplementedError

    def _queue_full(self, message: tuple) -> int:
        """`message` found librdkafka's queue full (queue.buffering.max.messages/kbytes): wait
        for deliveries to free room; it goes first in the next burst. Returns how many of the
        burst went before it."""
        self.buffer_full += 1
        self._poll(0.005)
        self._messages = chain((message,), self._source)
        went, self.sent = message[0] - self.sent, message[0]
        return went

    def _refusal(self, i: int, payload: bytes, exc: KafkaException) -> Refused:
        """Message i was refused before it was queued: recorded as failed (produced ==
        delivered + failed); the loop stops (the runner reports the error)."""
        self._refused(i, len(payload), exc)
        self.sent = i + 1
        return Refused()


class BareSender(Sender):
    """produce(topic, value, key) and nothing else. Args as `Sender`'s."""

    def send(self, n: int) -> int:
        """See `Sender.send`."""
        produce, poll, messages = self._produce, self._poll, self._messages
        try:
            for run in _runs(n):
                poll(0)  # serve delivery reports without ever waiting
                for i, topic, payload, key in islice(messages, run):  # noqa: B007 - see except
                    produce(topic, payload, key)
        except BufferError:
            return self._queue_full((i, topic, payload, key))
        except KafkaException as exc:
            raise self._refusal(i, payload, exc) from exc
        self.sent += n
        return n


class TimedSender(Sender):
    """A fixed rate: each message's Kafka timestamp is its intended send time, so consumers'
    end-to-end latency includes any time the producer fell behind its schedule (the
    coordinated-omission correction).

    Args:
        origin_s, interval_s: message i is due at `origin_s + i * interval_s` (wall clock).
        (the others as `Sender`'s.)
    """

    def __init__(self, producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
                 keys: tuple[bytes, ...] | None, refused: Refusal, origin_s: float,
                 interval_s: float) -> None:
        super().__init__(producer, topics, payloads, keys, refused)
        self._origin_s, self._interval_s = origin_s, interval_s

    def send(self, n: int) -> int:
        """See `Sender.send`."""
        produce, poll, messages = self._produce, self._poll, self._messages
        origin, interval = self._origin_s, self._interval_s
        try:
            for run in _runs(n):
                poll(0)
                for i, topic, payload, key in islice(messages, run):
                    produce(topic, payload, key, timestamp=int((origin + i * interval) * 1000))
        except BufferError:
            return self._queue_full((i, topic, payload, key))
        except KafkaException as exc:
            raise self._refusal(i, payload, exc) from exc
        self.sent += n
        return n


class HeaderedSender(Sender):
    """Messages with headers, or a partition chosen in Python, or both; at max rate.

    Args:
        partitioner: the partition of a key, e.g. a `kafkabench.partitioning` strategy's
            `partition`; None: -1 (RD_KAFKA_PARTITION_UA), librdkafka's `partitioner`
            setting chooses.
        headers: sent with every message, or None.
        (the others as `Sender`'s.)
    """

    def __init__(self, producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
                 keys: tuple[bytes, ...] | None, refused: Refusal,
                 partitioner: Callable[[Any], int] | None, headers: Headers | None) -> None:
        self._partitioner, self._headers = partitioner, headers
        super().__init__(producer, topics, payloads, keys, refused)

    def _key_fields(self, keys: tuple[bytes | None, ...]) -> tuple[Iterator, ...]:
        """The key, and its partition (chosen as the message comes up)."""
        if self._partitioner is None:
            return cycle(keys), repeat(-1)
        return cycle(keys), map(self._partitioner, cycle(keys))

    def send(self, n: int) -> int:
        """See `Sender.send`."""
        produce, poll, messages, headers = self._produce, self._poll, self._messages, self._headers
        try:
            for run in _runs(n):
                poll(0)
                for i, topic, payload, key, partition in islice(messages, run):  # noqa: B007
                    produce(topic, payload, key, partition=partition, headers=headers)
        except BufferError:
            return self._queue_full((i, topic, payload, key, partition))
        except KafkaException as exc:
            raise self._refusal(i, payload, exc) from exc
        self.sent += n
        return n


class TimedHeaderedSender(HeaderedSender):
    """`HeaderedSender`'s messages at a fixed rate, each stamped with its intended send time
    (as `TimedSender`'s).

    Args:
        origin_s, interval_s: message i is due at `origin_s + i * interval_s` (wall clock).
        (the others as `HeaderedSender`'s.)
    """

    def __init__(self, producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
                 keys: tuple[bytes, ...] | None, refused: Refusal,
                 partitioner: Callable[[Any], int] | None, headers: Headers | None,
                 origin_s: float, interval_s: float) -> None:
        super().__init__(producer, topics, payloads, keys, refused, partitioner, headers)
        self._origin_s, self._interval_s = origin_s, interval_s

    def send(self, n: int) -> int:
        """See `Sender.send`."""
        produce, poll, messages, headers = self._produce, self._poll, self._messages, self._headers
        origin, interval = self._origin_s, self._interval_s
        try:
            for run in _runs(n):
                poll(0)
                for i, topic, payload, key, partition in islice(messages, run):
                    produce(topic, payload, key, partition=partition,
                            timestamp=int((origin + i * interval) * 1000), headers=headers)
        except BufferError:
            return self._queue_full((i, topic, payload, key, partition))
        except KafkaException as exc:
            raise self._refusal(i, payload, exc) from exc
        self.sent += n
        return n


class VerifiedSender(TimedHeaderedSender):
    """Verified messages: `VERIFY_HEADER` (the producer's id and the message's sequence
    number) after the other headers, and a delivery callback of its own per message, that
    knows the sequence number (delivery reports carry no headers to read it back from).

    Args:
        verify_id: the producer's 12-byte id.
        ledger: the ledger the callbacks fill (made room for before each burst).
        on_delivery: called as `on_delivery(seq, err, msg)`.
        origin_s, interval_s: as `TimedHeaderedSender`'s; both 0 at max rate, where the
            timestamp 0 lets librdkafka stamp the message.
        (the others as `HeaderedSender`'s.)
    """

    def __init__(self, producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
                 keys: tuple[bytes, ...] | None, refused: Refusal,
                 partitioner: Callable[[Any], int] | None, headers: Headers | None,
                 origin_s: float, interval_s: float, verify_id: bytes, ledger: DeliveryLedger,
                 on_delivery: Callable[[int, Any, Any], None]) -> None:
        super().__init__(producer, topics, payloads, keys, refused, partitioner,
                         list(headers or ()), origin_s, interval_s)
        self._verify_id, self._ledger, self._on_delivery = verify_id, ledger, on_delivery

    def send(self, n: int) -> int:
        """See `Sender.send`."""
        self._ledger.reserve(self.sent + n)
        produce, poll, messages, headers = self._produce, self._poll, self._messages, self._headers
        origin, interval = self._origin_s, self._interval_s
        verify_id, on_delivery, partial = self._verify_id, self._on_delivery, functools.partial
        try:
            for run in _runs(n):
                poll(0)
                for i, topic, payload, key, partition in islice(messages, run):
                    produce(topic, payload, key, partition=partition,
                            timestamp=int((origin + i * interval) * 1000),
                            headers=[*headers, (VERIFY_HEADER, verify_id + i.to_bytes(8, "big"))],
                            on_delivery=partial(on_delivery, i))
        except BufferError:
            return self._queue_full((i, topic, payload, key, partition))
        except KafkaException as exc:
            raise self._refusal(i, payload, exc) from exc
        self.sent += n
        return n


def sender_for(producer: Any, topics: tuple[str, ...], payloads: tuple[bytes, ...],
               keys: tuple[bytes, ...] | None, refused: Refusal, *, origin_s: float,
               interval_s: float, partitioner: Callable[[Any], int] | None = None,
               headers: Headers | None = None, verify: tuple[bytes, DeliveryLedger, Callable] | None = None,
               ) -> Sender:
    """The send loop for one shape of message.

    Args:
        producer, topics, payloads, keys, refused: as `Sender`'s.
        origin_s, interval_s: the schedule of intended send times (message i at
            `origin_s + i * interval_s`, wall clock); `interval_s` 0: max rate, no schedule.
        partitioner: the partition of a key, or None (librdkafka's `partitioner` chooses).
        headers: sent with every message, or None.
        verify: (verify_id, ledger, on_delivery) of a verified producer, or None.

    Returns:
        The sender whose loop passes produce() exactly what these messages need.
    """
    common = (producer, topics, payloads, keys, refused)
    if verify is not None:
        return VerifiedSender(*common, partitioner, headers, origin_s, interval_s, *verify)
    if headers is None and partitioner is None:
        return TimedSender(*common, origin_s, interval_s) if interval_s else BareSender(*common)
    if interval_s:
        return TimedHeaderedSender(*common, partitioner, headers, origin_s, interval_s)
    return HeaderedSender(*common, partitioner, headers)
