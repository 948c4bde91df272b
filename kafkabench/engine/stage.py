"""The processing stage a consumer-group member runs over what it reads: the design source's
service patterns (processing time, injected transient and poison failures, retries, dead
letters, filtering, output records), as `kafkabench.spec.processing.Processing` describes it.

`Stage.handle(msg)` returns an `Outcome`: what became of the message (`Handled`), after how
many attempts and how long. The stage composes its parts, each chosen once: the retry topics
it reads and pauses until due (`kafkabench.engine.retry`), the exactly-once transactions and
their attempts (`kafkabench.engine.exactly_once`, or its null object), and the way a failed
attempt is retried (inline in the member, through a retry topic, or by aborting and reading
again). The member runs it over its batches (`kafkabench.engine.batches`; Locust users:
`kafkabench.loadtest.locust_user`).

May import: `kafkabench.spec`, `kafkabench.measure`, `kafkabench.engine.retry`,
`kafkabench.engine.exactly_once`.
"""

from __future__ import annotations

import enum
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kafkabench.engine.exactly_once import TXN_TIMEOUT_S, NoStageTransactions, StageTransactions
from kafkabench.engine.retry import RetryTopics, failure_headers, header_dict, now_ms
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.spec.processing import FILTERED, SOURCE_HEADER, Processing, dlq_topic, output_topic

__all__ = ["TXN_TIMEOUT_S", "Abort", "Handled", "Outcome", "Stage", "Stopped", "now_ms"]

#: `kafkabench.patterns.observer` reads dead letters' headers with it.
_header_dict = header_dict


class Handled(enum.Enum):
    """What became of a message the stage handled (`Outcome.kind`)."""

    #: Processed on its first attempt here.
    PROCESSED = "processed"
    #: Processed after failed attempts retried inline (with backoff, in the member).
    RETRIED_INLINE = "retried_inline"
    #: Dropped by the filter (its header or the filtered fraction).
    FILTERED = "filtered"
    #: Failed an attempt and sent to its next retry topic (not done yet).
    FORWARDED = "forwarded"
    #: Failed its last attempt, and dropped (`dead_letter` is false).
    FAILED = "failed"
    #: Failed its last attempt, and sent to the dead-letter topic.
    DEAD_LETTERED = "dead_lettered"
    #: A retry record not due yet: its partition is paused and rewound to it.
    DELAYED = "delayed"
    #: Exactly-once: an attempt failed; abort the transaction, wait `wait_s`, read it again.
    ABORTED = "aborted"


_UNSETTLED = (Handled.DELAYED, Handled.ABORTED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `Stage.handle` did with a message.

    Attributes:
        kind: what became of it.
        attempts: the attempt it ended with, counted from its first in the input topic
            (0: filtered or delayed, no attempt made).
        latency_s: seconds from `handle()` to the outcome: processing time, inline retries
            and their backoff included.
        error: the failure of its last attempt (forwarded, failed, dead-lettered, aborted),
            as the dead letter's `error` header says it.
        wait_s: aborted: the backoff before reading it again.
    """

    kind: Handled
    attempts: int = 0
    latency_s: float = 0.0
    error: str = ""
    wait_s: float = 0.0

    @property
    def settled(self) -> bool:
        """The stage is done with the record read (processed, filtered, failed,
        dead-lettered or forwarded to a retry topic): its offset may be stored and
        committed. False for delayed and aborted ones: they are read again."""
        return self.kind not in _UNSETTLED


_DELAYED = Outcome(Handled.DELAYED)


class Stage:
    """One consumer member's processing stage (built by the member from a `Processing`).

    `handle(msg)` processes one message and returns its `Outcome`. The member stores offsets
    itself (`enable.auto.offset.store=false`), so a message is committed only once its
    outcome is settled: processed, forwarded to a retry topic, dead-lettered or filtered
    (at least once). A retry-topic record that is not due yet is `DELAYED` (its partition
    paused and rewound to it, and resumed by `resume_due` when it is).

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
        self.p, self.producer, self.consumer = processing, producer, consumer
        self._sleep, self._on_error = sleep, on_error
        self.rng = random.Random(seed)
        self.retries = RetryTopics(processing, inputs, consumer)
        self.level_of = self.retries.level_of
        self.transactions: StageTransactions | NoStageTransactions = (
            StageTransactions(producer, processing, on_error) if processing.exactly_once
            else NoStageTransactions())
        self.counts: Counter = Counter()
        self.attempts: Counter = Counter()
        self.latency = LatencyRecorder()       # receipt to done, this member's attempts
        self.done_latency = LatencyRecorder()  # the input record's timestamp to done
        fh = processing.filter_header or {}
        self._filter = next(iter(fh.items())) if fh else None
        # How an attempt that failed, and was not the last, is retried.
        self._retry = (self._abort if processing.exactly_once else
                       self._forward if processing.retry == "topics" else self._retry_inline)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the member subscribes to: inputs, then retry levels."""
        return self.retries.topics

    def handle(self, msg: Any) -> Outcome:
        """Process `msg`: its `Outcome` says what became of it (see the class).

        Raises:
            Stopped: the run stopped in the middle of it (it is neither done nor stored).
        """
        received = time.monotonic()
        topic, level = self.level_of.get(msg.topic(), (msg.topic(), 0))
        headers = msg.headers() or []
        if level:
            origin = self.retries.origin(msg, headers, level)
            if origin is None:
                self.counts["delayed"] += 1
                return _DELAYED
        else:
            origin = (msg.partition(), msg.offset(), float(msg.timestamp()[1]), headers)
        self.transactions.read(msg)
        if self._filter is not None and self._filter_match(origin[3]):
            fate = FILTERED
        else:
            fate = self.p.fate(origin[0], origin[1])
        if fate == FILTERED:
            self.counts["filtered"] += 1
            return Outcome(Handled.FILTERED, 0, time.monotonic() - received)
        return self._attempts(msg, topic, level, fate, origin, received)

    def _attempts(self, msg: Any, topic: str, level: int, fate: str, origin: tuple,
                  received: float) -> Outcome:
        """Attempt `msg` until it is processed, its last attempt failed, or its retry is
        elsewhere (a retry topic, a read after an abort)."""
        key = (topic, origin[0], origin[1])
        first = attempt = self.transactions.next_attempt(key, level + 1)
        last = self.p.attempts
        while True:
            if not self._work():
                raise _Stopped
            if not self.p.fails(fate, attempt):
                outcome = self._processed(msg, topic, origin, attempt, first, received)
                self.transactions.done(key)
                return outcome
            error = f"injected {fate} failure"
            if attempt >= last:
                return self._failed(msg, topic, origin, attempt, error, received)
            self.counts["retried"] += 1
            outcome = self._retry(msg, topic, origin, attempt, error, received)
            if outcome is not None:
                return outcome
            attempt += 1

    # ------------------------------------------------------------------ exactly-once

    @property
    def skip(self) -> set[tuple[str, int]] | frozenset:
        """Exactly-once: partitions an abort rewound, to skip for the rest of the batch."""
        return self.transactions.skip

    def handled(self, msg: Any) -> None:
        """Exactly-once: `msg` is done; its next offset commits with the transaction."""
        self.transactions.handled(msg)

    def due(self) -> bool:
        """Exactly-once: whether the open transaction is big or old enough to commit."""
        return self.transactions.due()

    def commit(self, consumer: Any) -> None:
        """Exactly-once: commit the open transaction with its input offsets (a commit that
        needs an abort aborts and rewinds instead)."""
        self.transactions.commit(consumer)

    def abort(self, consumer: Any, *, rewind: bool = True) -> None:
        """Exactly-once: abort the open transaction and (`rewind`) seek every partition it
        read back to where it began; `skip` then holds them for the rest of the batch."""
        self.transactions.abort(consumer, rewind=rewind)

    def revoked(self, consumer: Any) -> None:
        """Exactly-once: partitions are leaving: the open transaction is aborted (the next
        owner reads its messages from the committed offsets)."""
        self.transactions.revoked(consumer)

    # ------------------------------------------------------------------ retry topics

    def resume_due(self) -> None:
        """Resume the paused retry partitions whose next record is due."""
        self.retries.resume_due()

    def forget(self, partitions: Any) -> None:
        """Partitions revoked: they are not this member's to resume."""
        self.retries.forget(partitions)

    def is_paused(self, msg: Any) -> bool:
        """Whether `msg`'s partition was paused earlier in this batch (skip it: it is read
        again from the rewound offset)."""
        return self.retries.is_paused(msg)

    # ------------------------------------------------------------------ the member's report

    def take_interval(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """The interval's counts and encoded histograms, then reset them."""
        counts = dict(self.counts)
        counts.update(self.transactions.take_counts())
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

    def _processed(self, msg: Any, topic: str, origin: tuple, attempt: int, first: int,
                   received: float) -> Outcome:
        self.counts["processed"] += 1
        if self.p.output:
            partition, offset, original_ts, headers = origin
            value = msg.value()
            self._produce(output_topic(topic), key=msg.key(),
                          value=value[::-1] if value is not None else None,
                          headers=[*headers, (SOURCE_HEADER, f"{partition}:{offset}".encode())],
                          timestamp=int(original_ts) if original_ts > 0 else 0)
            self.counts["output"] += 1
        latency_s = self._finished(received, origin[2], attempt)
        return Outcome(Handled.PROCESSED if attempt == first else Handled.RETRIED_INLINE,
                       attempt, latency_s)

    def _failed(self, msg: Any, topic: str, origin: tuple, attempt: int, error: str,
                received: float) -> Outcome:
        """The last attempt failed: the dead-letter topic, or dropped."""
        self.counts["failed"] += 1
        kind = Handled.FAILED
        if self.p.dead_letter:
            partition, offset, _, headers = origin
            self._produce(dlq_topic(topic), key=msg.key(), value=msg.value(),
                          headers=headers + failure_headers(error, attempt, topic, partition, offset))
            self.counts["dead_lettered"] += 1
            kind = Handled.DEAD_LETTERED
        return Outcome(kind, attempt, self._finished(received, origin[2], attempt), error)

    def _finished(self, received: float, original_ts: float, attempts: int) -> float:
        """Count a message done after `attempts`; returns the seconds since `received`."""
        self.attempts[attempts] += 1
        latency_s = time.monotonic() - received
        self.latency.record(latency_s * 1e6)
        if original_ts > 0:
            self.done_latency.record((time.time() * 1000.0 - original_ts) * 1000.0)
        return latency_s

    # How a failed attempt that is not the last is retried (`_retry`, chosen once): None
    # attempts again at once; an Outcome ends the message's handling here.

    def _retry_inline(self, msg: Any, topic: str, origin: tuple, attempt: int, error: str,
                      received: float) -> None:
        """Wait the backoff in the member, then attempt again."""
        if not self._sleep(self.p.backoff.delay_ms(attempt, self.rng) / 1000.0):
            raise _Stopped

    def _forward(self, msg: Any, topic: str, origin: tuple, attempt: int, error: str,
                 received: float) -> Outcome:
        """Send it to the next retry topic: a member attempts it again when it is due."""
        self.retries.forward(self._produce, msg, topic, origin, attempt, error)
        self.counts["forwarded"] += 1
        return Outcome(Handled.FORWARDED, attempt, time.monotonic() - received, error)

    def _abort(self, msg: Any, topic: str, origin: tuple, attempt: int, error: str,
               received: float) -> Outcome:
        """Exactly-once: the member aborts the transaction and reads it again after the
        backoff (the transaction's records vanish for read_committed readers)."""
        self.transactions.attempt_failed((topic, origin[0], origin[1]), attempt)
        return Outcome(Handled.ABORTED, attempt, time.monotonic() - received, error,
                       self.p.backoff.delay_ms(attempt, self.rng) / 1000.0)

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


class _Stopped(Exception):
    """The run stopped in the middle of a message: it is neither done nor stored."""


class Abort(Exception):
    """Exactly-once: an attempt failed; abort the transaction, wait `wait_s`, read again.

    The stage returns this as an `Outcome` (`Handled.ABORTED`) now; the exception stays for
    code that catches it (`kafkabench.processing` re-exports it).
    """

    def __init__(self, error: str, wait_s: float):
        super().__init__(error)
        self.wait_s = wait_s


Stopped = _Stopped
