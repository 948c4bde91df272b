"""What became of a producer's messages: its delivery callbacks, their counters, and the
delivery ledger of a verified producer.

`DeliveryRecorder` is the producer's one delivery-report sink. Its callbacks are methods,
chosen once (`callback`): the plain one, the same without publish latency, the traced one
(10 ms acknowledgement and per-second error timelines) and, per verified message, the one
that also fills the `DeliveryLedger`. Callbacks record failures as data and never raise.

May import: `kafkabench.measure`, `kafkabench.engine.workers`.
"""

from __future__ import annotations

import array
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import KafkaError

from kafkabench.engine.workers import ErrorCounts
from kafkabench.measure.stats import LatencyRecorder

#: The header that carries a verified message's producer id and sequence number:
#: the 12-byte `ProducerSpec.verify_id`, then the sequence, 8 bytes big-endian.
VERIFY_HEADER = "kb-seq"
VERIFY_ID_BYTES = 12
# Delivery outcome of each verified message (`DeliveryLedger.status`).
NO_OUTCOME, ACKED, FAILED = 0, 1, 2


class DeliveryLedger:
    """What became of every message of one verified producer: acked or failed, where.

    Arrays indexed by sequence number (3 bytes a message: 30 MB for 10 million), grown by
    doubling; a bytearray and an `array` because a delivery callback sets one item at a time
    (a numpy item assignment costs several times more).
    """

    __slots__ = ("partition", "status")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.status = bytearray(capacity)
        self.partition = array.array("h", [-1]) * capacity

    def reserve(self, n: int) -> None:
        """Make room for sequence numbers below `n` (the arrays grow in place)."""
        size = len(self.status)
        if n <= size:
            return
        more = max(n, size * 2) - size
        self.status.extend(bytes(more))
        self.partition.extend(array.array("h", [-1]) * more)

    def record(self, seq: int, ok: bool, partition: int) -> None:
        """One delivery report (or a refusal: `ok` False, partition -1)."""
        self.status[seq] = ACKED if ok else FAILED
        self.partition[seq] = partition

    def part(self, worker: str, verify_id: bytes, topics: tuple[str, ...], sent: int) -> dict[str, Any]:
        """The ledger as it travels to the parent: arrays zlib-compressed, cut to `sent`."""
        status = np.frombuffer(self.status, np.uint8)[:sent]
        partition = np.frombuffer(self.partition, np.int16)[:sent]
        return {"producer": worker, "id": verify_id, "topics": topics, "sent": sent,
                "status": zlib.compress(status.tobytes(), 1),
                "partition": zlib.compress(partition.tobytes(), 1)}


def verify_header(verify_id: bytes, seq: int) -> tuple[str, bytes]:
    """The `VERIFY_HEADER` of message `seq` of producer `verify_id`."""
    return VERIFY_HEADER, verify_id + seq.to_bytes(8, "big")


class DeliveryRecorder:
    """A producer's delivery reports, counted: delivered, failed, bytes, errors, latency.

    Args:
        record_latency: keep each delivered message's publish latency.
        timeline: also count acknowledgements per 10 ms and (topic, partition), and delivery
            errors per second and error name (`timeline_extras`).
        ledger: a verified producer's ledger, filled by `on_verified`.

    Attributes:
        delivered, failed, bytes: running totals (a refused message counts as failed).
        errors: errors by Kafka error name (delivery, client and refusals).
        latency: publish latencies binned so far (`bin_latencies`), in microseconds.
        latencies: raw publish latencies in seconds, waiting to be binned.
        ledger: the ledger given, or None.
    """

    __slots__ = ("_keep_latency", "_outcome", "acks", "bytes", "delivered", "error_times",
                 "errors", "failed", "latencies", "latency", "ledger")

    def __init__(self, record_latency: bool = True, timeline: bool = False,
                 ledger: DeliveryLedger | None = None) -> None:
        self.delivered = self.failed = self.bytes = 0
        self.errors = ErrorCounts()
        self.latency = LatencyRecorder()
        self.latencies: list[float] = []
        self.ledger = ledger
        # (topic, partition, centisecond) -> n and (second, error name) -> n, until reported.
        self.acks: Counter | None = Counter() if timeline else None
        self.error_times: Counter | None = Counter() if timeline else None
        # The traced callback's latency sink: a zero-length deque drops what it is given.
        self._keep_latency = self.latencies.append if record_latency else deque(maxlen=0).append
        if timeline:
            self._outcome = self.on_delivery_traced
        elif record_latency:
            self._outcome = self.on_delivery
        else:
            self._outcome = self.on_delivery_unmeasured

    @property
    def callback(self) -> Callable[[KafkaError | None, Any], None]:
        """The producer-wide delivery callback (`on_delivery` in the producer's config)."""
        return self._outcome

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """A delivery report: counted, with its publish latency."""
        if err is None:
            self.delivered += 1
            self.bytes += len(msg)
            # msg.latency(): seconds from produce() to this report, measured by librdkafka.
            self.latencies.append(msg.latency())
        else:
            self.failed += 1
            self.errors.add_kafka(err, "delivery")

    def on_delivery_unmeasured(self, err: KafkaError | None, msg: Any) -> None:
        """A delivery report: counted, latency not kept (to measure what keeping it costs)."""
        if err is None:
            self.delivered += 1
            self.bytes += len(msg)
        else:
            self.failed += 1
            self.errors.add_kafka(err, "delivery")

    def on_delivery_traced(self, err: KafkaError | None, msg: Any) -> None:
        """A delivery report: counted, and added to the acknowledgement or error timeline."""
        now = time.time()
        if err is None:
            self.delivered += 1
            self.bytes += len(msg)
            self._keep_latency(msg.latency())
            self.acks[(msg.topic(), msg.partition(), int(now * 100))] += 1
        else:
            self.failed += 1
            self.errors.add_kafka(err, "delivery")
            self.error_times[(int(now), err.name())] += 1

    def on_verified(self, seq: int, err: KafkaError | None, msg: Any) -> None:
        """A verified message's report, as `functools.partial(on_verified, seq)`: delivery
        reports carry no headers to read the sequence number back from."""
        ledger = self.ledger
        ledger.status[seq] = ACKED if err is None else FAILED
        try:
            ledger.partition[seq] = msg.partition()
        except TypeError:  # purged before librdkafka chose its partition: partition() is None
            ledger.partition[seq] = -1
        self._outcome(err, msg)

    def on_client_error(self, err: KafkaError) -> None:
        """The producer's `error_cb`: a client-level error (e.g. all brokers down)."""
        self.errors.add_kafka(err, "client")

    def refused(self, seq: int, size: int, exc: Exception) -> None:
        """produce() refused message `seq` of `size` bytes before queueing it: failed."""
        self.failed += 1
        self.errors.add_kafka(exc, f"produce() refused a {size:,} B message")
        if self.ledger is not None:
            self.ledger.record(seq, False, -1)

    def bin_latencies(self) -> None:
        """Turn the raw publish latencies into histogram counts (one numpy pass)."""
        self.latency.record_many(self.latencies, scale=1e6)
        self.latencies.clear()

    def timeline_extras(self) -> dict[str, Any]:
        """The interval's acknowledgement and error timelines (then cleared), if traced."""
        if self.acks is None:
            return {}
        extras = {"acks": dict(self.acks), "errors": dict(self.error_times)}
        self.acks.clear()
        self.error_times.clear()
        return extras
