"""What a consumer-group member does with each consume() batch, chosen once: nothing more
(`PlainBatches`), run a processing stage over it and store the offsets of what the stage
settled (`StageBatches`), or run an exactly-once stage in transactions
(`ExactlyOnceBatches`).

Every handler has the same calls: `handle(msgs)` per batch, `idle()` once per loop,
`revoked(...)` from the rebalance listener, `flush(timeout_s)` before a synchronous commit,
`take_interval()` for the interval report, and `finish(errors)` / `close()` at the end; its
counts in all are `totals`.

May import: `kafkabench.engine.commits`, `kafkabench.engine.stage`, `kafkabench.engine.workers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kafkabench.engine.commits import STAGE_FLUSH_S, CommitPolicy
from kafkabench.engine.stage import Handled, Stage, Stopped
from kafkabench.engine.workers import ErrorCounts


def store_offsets(consumer: Any, done: dict[tuple[str, int], int]) -> None:
    """Store the next offsets of what a stage settled, {(topic, partition): offset}; a
    partition revoked meanwhile is skipped (its offsets are not ours to store)."""
    if not done:
        return
    try:
        consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()])
    except KafkaException as exc:  # a partition revoked meanwhile: its offsets are not ours
        if exc.args[0].code() != KafkaError._STATE:
            raise


class PlainBatches:
    """No processing stage: a batch is consumed as it is (a "sync-message" policy commits
    each message).

    Args:
        topics: the topics to subscribe to.
        policy: the member's commit policy.
    """

    def __init__(self, topics: tuple[str, ...], policy: CommitPolicy):
        self.topics = tuple(topics)
        self._consumed = policy.consumed
        self.totals: dict[str, int] = {}

    def handle(self, msgs: list[Any]) -> bool:
        """A batch of good messages; False when the run stopped in the middle of one."""
        self._consumed(msgs)
        return True

    def idle(self) -> None:
        """Once per loop, with or without a batch."""

    def revoked(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions revoked or lost."""

    def flush(self, timeout_s: float) -> int:
        """No records of its own to wait for."""
        return 0

    def take_interval(self) -> tuple[dict[str, int], dict[str, str]]:
        """No counts of its own."""
        return {}, {}

    def finish(self, errors: ErrorCounts) -> None:
        """The loop ended: before the last interval report."""

    def close(self) -> None:
        """After the last interval report, before the final commit."""


class StageBatches(PlainBatches):
    """A processing stage over each batch: the offsets of the messages it settled are stored
    (`enable.auto.offset.store=false`), so only those are committed; a "sync-message" policy
    commits each one (its records acknowledged first).

    Args:
        stage: the member's stage.
        consumer: the member's consumer.
        policy: the member's commit policy.
        sleep: `Control.sleep`.

    Attributes:
        totals: the stage's counts in all, then `stage_unflushed` and `attempts_<n>`.
    """

    def __init__(self, stage: Stage, consumer: Any, policy: CommitPolicy,
                 sleep: Callable[[float], bool]):
        super().__init__(stage.topics, policy)
        self.stage, self.consumer, self._sleep = stage, consumer, sleep
        # "sync-message": a commit of each message the stage is done with.
        self._commit_each = policy.handled if policy.per_message else None

    def handle(self, msgs: list[Any]) -> bool:
        """Run the stage over a batch and store the offsets of what it settled.

        Returns:
            False when the run stopped in the middle of a message, whose offset is not stored.
        """
        stage, commit_each = self.stage, self._commit_each
        done: dict[tuple[str, int], int] = {}
        finished = True
        try:
            for m in msgs:
                if stage.is_paused(m):  # rewound earlier in this batch: read again later
                    continue
                if stage.handle(m).settled:
                    done[(m.topic(), m.partition())] = m.offset() + 1
                    if commit_each is not None:
                        commit_each(m.topic(), m.partition(), m.offset() + 1)
        except Stopped:
            finished = False
        store_offsets(self.consumer, done)
        return finished

    def idle(self) -> None:
        """Resume the retry partitions that are due."""
        self.stage.resume_due()

    def revoked(self, consumer: Any, partitions: list[Any]) -> None:
        """Their paused retry partitions are not this member's to resume."""
        self.stage.forget(partitions)

    def flush(self, timeout_s: float) -> int:
        """Wait for the stage's records; returns those still queued."""
        return self.stage.flush(timeout_s)

    def take_interval(self) -> tuple[dict[str, int], dict[str, str]]:
        """The stage's counts and histograms of the interval (added to `totals`)."""
        counts, histograms = self.stage.take_interval()
        for k, v in counts.items():
            self.totals[k] = self.totals.get(k, 0) + v
        return counts, histograms

    def close(self) -> None:
        """The stage's records are acknowledged before the offsets of their inputs are
        committed at close; what is still queued is reported, not waited for."""
        self.totals["stage_unflushed"] = self.stage.flush(STAGE_FLUSH_S)
        self.totals.update({f"attempts_{k}": v for k, v in self.stage.attempts.items()})


class ExactlyOnceBatches(StageBatches):
    """An exactly-once stage over each batch: handled messages join the open transaction,
    which commits with their offsets when it is due; a failed attempt aborts it and rewinds
    its partitions (their later messages in this batch are skipped: they come again)."""

    def handle(self, msgs: list[Any]) -> bool:
        """Run the stage over a batch in transactions.

        Returns:
            False when the run stopped in the middle of a message.
        """
        stage, consumer = self.stage, self.consumer
        skip = stage.skip
        try:
            for m in msgs:
                if (m.topic(), m.partition()) in skip:
                    continue
                outcome = stage.handle(m)
                if outcome.kind is Handled.ABORTED:
                    stage.abort(consumer)
                    if not self._sleep(outcome.wait_s):
                        return False
                elif outcome.settled:
                    stage.handled(m)
                if stage.due():
                    stage.commit(consumer)
        except Stopped:
            return False
        finally:
            skip.clear()
        return True

    def idle(self) -> None:
        """Commit the open transaction when it is due."""
        super().idle()
        if self.stage.due():
            self.stage.commit(self.consumer)

    def revoked(self, consumer: Any, partitions: list[Any]) -> None:
        """The open transaction is aborted: the next owner reads its messages again."""
        super().revoked(consumer, partitions)
        self.stage.revoked(consumer)

    def finish(self, errors: ErrorCounts) -> None:
        """Commit the open transaction: what was handled is done."""
        try:
            self.stage.commit(self.consumer)
        except Exception as exc:  # noqa: BLE001 - recorded; the report must still go out
            errors.add_kafka(exc, "final commit_transaction()")
