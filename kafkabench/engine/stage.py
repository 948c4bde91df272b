"""TODO: docstring of kafkabench.engine.stage."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from kafkabench.spec.processing import (
    FILTERED,
    RETRY_HEADERS,
    SOURCE_HEADER,
    Processing,
    dlq_topic,
    output_topic,
    retry_topic,
)


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
        from kafkabench.measure.stats import LatencyRecorder

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


