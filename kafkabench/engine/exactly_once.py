"""Exactly-once processing: a stage's transactions and the attempts of the records in them.

Consume-transform-produce: the records a stage writes for its inputs and the inputs' next
offsets commit together (`send_offsets_to_transaction`), one transaction per
`transaction_messages` inputs or `transaction_ms`. A failed attempt aborts the open
transaction and rewinds the partitions it read, so the member reads those records again;
`StageTransactions` remembers each record's attempts across those re-reads.
`NoStageTransactions` is the null object of a stage without exactly-once.

(A transactional producer's own transactions are `kafkabench.engine.transactions`.)

May import: `kafkabench.spec`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from kafkabench.spec.processing import Processing

#: init_transactions(), send_offsets_to_transaction(), commit and abort: at most this long.
TXN_TIMEOUT_S = 30.0


class NoStageTransactions:
    """A stage without exactly-once: no transaction, the first attempt is the retry level's."""

    #: Partitions to skip for the rest of a batch: never any.
    skip: frozenset = frozenset()

    def read(self, msg: Any) -> None:
        """A record is read: nothing to begin."""

    def next_attempt(self, key: tuple[str, int, int], first: int) -> int:
        """The attempt the record `key` is at: `first` (its retry level's)."""
        return first

    def done(self, key: tuple[str, int, int]) -> None:
        """The record is done: nothing to forget."""

    def handled(self, msg: Any) -> None:
        """No transaction: the member stores the offset itself."""

    def due(self) -> bool:
        """No transaction is ever due."""
        return False

    def commit(self, consumer: Any) -> None:
        """No transaction to commit."""

    def abort(self, consumer: Any, *, rewind: bool = True) -> None:
        """No transaction to abort."""

    def revoked(self, consumer: Any) -> None:
        """No transaction to abort."""

    def take_counts(self) -> dict[str, int]:
        """No transactions, no counts."""
        return {}


class StageTransactions:
    """The open transaction of an exactly-once stage: where it began and how far it got in
    each partition, the records' attempts across aborts, and the partitions to skip for the
    rest of a batch after an abort.

    Args:
        producer: the stage's transactional producer.
        processing: the stage (`transaction_messages`, `transaction_ms`).
        on_error: records an error (`ErrorCounts.add_kafka`).

    Attributes:
        counts: transactions committed and aborted, and the messages the aborted ones held.
        skip: (topic, partition) rewound by an abort: its later records in the batch being
            handled come again.
    """

    def __init__(self, producer: Any, processing: Processing, on_error: Any):
        self.producer, self._on_error = producer, on_error
        self.max_messages = processing.transaction_messages
        self.max_age_s = processing.transaction_ms / 1000.0
        self.counts: Counter = Counter()
        self.is_open = False
        self.began = 0.0
        self.messages = 0
        # The open transaction's first offset and next offset per partition.
        self.first: dict[tuple[str, int], int] = {}
        self.next: dict[tuple[str, int], int] = {}
        # (input topic, partition, offset) -> the attempts it failed, across aborts.
        self.attempts: dict[tuple[str, int, int], int] = {}
        self.skip: set[tuple[str, int]] = set()
        if producer is not None:
            producer.init_transactions(TXN_TIMEOUT_S)

    # ------------------------------------------------------------------ the stage's record

    def read(self, msg: Any) -> None:
        """`msg` is read: it belongs to the open transaction (begun if none is)."""
        if not self.is_open:
            self.producer.begin_transaction()
            self.is_open, self.began = True, time.monotonic()
        self.first.setdefault((msg.topic(), msg.partition()), msg.offset())

    def next_attempt(self, key: tuple[str, int, int], first: int) -> int:
        """The attempt record `key` is at: one more than it failed before an abort."""
        return self.attempts.get(key, 0) + 1

    def attempt_failed(self, key: tuple[str, int, int], attempt: int) -> None:
        """Attempt `attempt` of record `key` failed: the open transaction is to be aborted and
        the record read again, at its next attempt."""
        self.attempts[key] = attempt

    def done(self, key: tuple[str, int, int]) -> None:
        """Record `key` is processed: its attempts are forgotten. (A dead-lettered one keeps
        them: read again after an abort of its transaction, it is dead-lettered at once.)"""
        self.attempts.pop(key, None)

    # ------------------------------------------------------------------ the member's batch

    def handled(self, msg: Any) -> None:
        """`msg` is done; its next offset commits with the transaction."""
        self.next[(msg.topic(), msg.partition())] = msg.offset() + 1
        self.messages += 1

    def due(self) -> bool:
        """Whether the open transaction is big or old enough to commit."""
        return self.is_open and (self.messages >= self.max_messages or
                                 time.monotonic() - self.began >= self.max_age_s)

    def commit(self, consumer: Any) -> None:
        """Commit the open transaction with its input offsets (a commit that needs an abort
        aborts and rewinds instead).

        Raises:
            KafkaException: the commit failed and cannot be aborted either.
        """
        if not self.is_open:
            return
        producer = self.producer
        try:
            if self.next:
                producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, o) for (t, p), o in self.next.items()],
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
        self._reset()

    def abort(self, consumer: Any, *, rewind: bool = True) -> None:
        """Abort the open transaction and (`rewind`) seek every partition it read back to
        where it began; `skip` then holds them for the rest of the batch."""
        if not self.is_open:
            return
        try:
            # Wait for the transaction's records first: an EndTxn(abort) racing the
            # AddPartitionsToTxn of records still in flight fails with a fatal
            # INVALID_TXN_STATE (librdkafka issue #4849; seen here on Kafka 4.4).
            self.producer.flush(TXN_TIMEOUT_S)
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        finally:
            self.counts["transactions_aborted"] += 1
            self.counts["aborted_messages"] += self.messages
            if rewind and self.first:
                for (t, p), first in self.first.items():
                    consumer.seek(TopicPartition(t, p, first))
                self.skip |= set(self.first)
            self._reset()

    def revoked(self, consumer: Any) -> None:
        """Partitions are leaving: the open transaction is aborted (the next owner reads its
        messages from the committed offsets)."""
        try:
            self.abort(consumer, rewind=False)
        except Exception as exc:  # noqa: BLE001 - recorded; the rebalance must go on
            self._on_error(exc, "abort_transaction() on revoke")

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call, then reset them."""
        counts = dict(self.counts)
        self.counts.clear()
        return counts

    def _reset(self) -> None:
        self.is_open, self.messages = False, 0
        self.first.clear()
        self.next.clear()
