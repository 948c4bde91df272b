"""A transactional producer's transactions (`Transactions`), and `NoTransactions`, the null
object a producer without them runs with: the send loop calls the same methods at the same
points (before and after each burst, at the end) and never asks whether there are any.

May import: `kafkabench.measure`, `kafkabench.engine.workers`.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaException

from kafkabench.engine.workers import ErrorCounts
from kafkabench.measure.stats import LatencyRecorder

# init_transactions() and abort_transaction(): at most this long (a dead coordinator is an
# error, never a hang); commit_transaction() flushes, so it gets the final flush's timeout.
TXN_TIMEOUT_S = 30.0
# A commit that fails with a retriable error (a timeout) is tried this many times in all.
COMMIT_ATTEMPTS = 3


class TransactionFailed(Exception):
    """A transaction could be neither committed nor aborted: the producer stops, and fails."""


class Transactions:
    """A transactional producer's transactions: one per `size` sends, committed or aborted.

    Errors go to `errors` (recorded, never lost); what cannot be recovered from raises
    `TransactionFailed`: the producer ends its run cleanly (final reports), then fails.

    Args:
        producer: a producer whose config has a `transactional.id`.
        size: messages per transaction.
        commit_timeout_s: how long commit_transaction() may take (it flushes).
        errors: where failed commits and aborts are counted.
    """

    __slots__ = ("aborted", "aborted_messages", "commit_timeout_s", "committed", "errors",
                 "first", "is_open", "latency", "producer", "size")

    def __init__(self, producer: Any, size: int, commit_timeout_s: float, errors: ErrorCounts) -> None:
        self.producer, self.size, self.errors = producer, size, errors
        self.commit_timeout_s = commit_timeout_s
        self.committed = self.aborted = self.aborted_messages = 0
        self.first = 0  # the send count when the open transaction began
        self.is_open = False
        self.latency = LatencyRecorder()

    def init(self) -> None:
        """Register the transactional.id with its coordinator (fencing an older producer)."""
        self.producer.init_transactions(TXN_TIMEOUT_S)

    def room(self, sent: int, burst: int) -> int:
        """Before a burst of `burst` messages: begin a transaction if none is open; returns
        how many of them fit in it (a burst never crosses a transaction's end)."""
        if not self.is_open:
            self.begin(sent)
        return min(burst, self.first + self.size - sent)

    def after(self, sent: int) -> None:
        """After a burst: commit the open transaction once it holds `size` messages."""
        if sent - self.first >= self.size:
            self.commit(sent)

    def begin(self, sent: int) -> None:
        """Open a transaction; its first message is the next one sent."""
        self.producer.begin_transaction()
        self.first, self.is_open = sent, True

    def commit(self, sent: int) -> None:
        """Commit the open transaction (flushing its messages), or abort it when it must be.

        Raises:
            TransactionFailed: a fatal error, or retriable ones `COMMIT_ATTEMPTS` times.
        """
        t0 = time.perf_counter()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self.producer.commit_transaction(self.commit_timeout_s)
            except KafkaException as exc:
                err = exc.args[0]
                self.errors.add_kafka(exc, f"commit_transaction() (attempt {attempt})")
                if err.txn_requires_abort():
                    self.abort(sent)
                    return
                if err.retriable() and attempt < COMMIT_ATTEMPTS:
                    continue
                raise TransactionFailed(f"commit_transaction() failed: {err.name()}: "
                                        f"{err.str()}") from exc
            self.latency.record((time.perf_counter() - t0) * 1e6)
            self.committed += sent > self.first  # an empty one (nothing sent) is not counted
            self.is_open = False
            return

    def abort(self, sent: int) -> None:
        """Abort the open transaction: its queued messages are purged (failed), the rest stay
        in the log, marked aborted.

        Raises:
            TransactionFailed: the abort itself failed.
        """
        try:
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:
            self.errors.add_kafka(exc, "abort_transaction()")
            err = exc.args[0]
            raise TransactionFailed(f"abort_transaction() failed: {err.name()}: "
                                    f"{err.str()}") from exc
        self.aborted += 1
        self.aborted_messages += sent - self.first
        self.is_open = False

    def finish(self, sent: int, ok: bool) -> TransactionFailed | None:
        """At the end: commit the open transaction, or abort it when the run stopped on an
        error. Never raises: what fails is recorded, and returned."""
        if not self.is_open:
            return None
        try:
            if ok:
                self.commit(sent)
            else:
                self.abort(sent)
        except TransactionFailed as exc:
            return exc
        return None

    def counts(self) -> dict[str, int]:
        """The running totals reported."""
        return {"transactions_committed": self.committed, "transactions_aborted": self.aborted,
                "aborted_messages": self.aborted_messages}

    def histograms(self) -> dict[str, str]:
        """The interval's commit_transaction() times, encoded (then forgotten)."""
        encoded = self.latency.encode()
        self.latency.reset()
        return {"transaction_latency_us": encoded}


class NoTransactions:
    """No transactions: every burst goes as it is, nothing to commit, nothing to report."""

    __slots__ = ()

    def init(self) -> None:
        """Nothing to register."""

    def room(self, sent: int, burst: int) -> int:
        """The whole burst."""
        return burst

    def after(self, sent: int) -> None:
        """Nothing to commit."""

    def finish(self, sent: int, ok: bool) -> None:
        """Nothing open."""
        return None

    def counts(self) -> dict[str, int]:
        """No transaction counts."""
        return {}

    def histograms(self) -> dict[str, str]:
        """No transaction histograms."""
        return {}
