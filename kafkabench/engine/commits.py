"""Offset commits of a consumer-group member: one policy per commit mode, chosen once.

A member's loop calls its policy at fixed points (`consumed` a batch, `handled` one message
of a processing stage, `batch_done`, `tick` once per loop, `revoked`, `close`), as
confluent-kafka's `tests/kafkatest/verifiable_consumer.py` and OpenMessaging Benchmark's
consumers commit: the policy owns its commit calls, their count, the retry of a failed
commit and the commit on revoke and at close. The modes (`COMMIT_MODES`):

    auto          librdkafka's enable.auto.commit (every auto.commit.interval.ms, in the
                  background; at close by `Consumer.close()`)
    sync          a synchronous commit after each consume() batch
    async         commit() without waiting, at most once per `interval_s`
    sync-message  a synchronous commit of each message's next offset
    transaction   exactly-once processing: offsets commit with the stage's transactions
                  (`kafkabench.engine.transactions`), never by the consumer

May import: `kafkabench.core`, `kafkabench.engine.workers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kafkabench.core.errors import ConfigError
from kafkabench.engine.workers import ErrorCounts

#: The commit modes a member can be given (`ConsumerSpec.commit`); "transaction" is not one:
#: an exactly-once processing stage chooses it.
COMMIT_MODES = ("auto", "sync", "async", "sync-message")

# "async" commits: at most one per member per interval (and on revoke and close), as
# auto-commit does. Committing after every consume batch flooded the group coordinator on
# 3 brokers (hundreds of OffsetCommit timeouts, a member lost its session).
COMMIT_INTERVAL_S = 1.0

#: How long a commit waits for the processing stage's records to be acknowledged first.
STAGE_FLUSH_S = 10.0


def check_commit_mode(value: Any, where: str = "commit") -> str:
    """The one check of a consumer commit mode, wherever one is given.

    Args:
        value: the mode as given (CLI option, sweep axis, `run_workload` argument, spec).
        where: how the error names the setting, e.g. "sweep point 3: run.commit".

    Returns:
        `value`, one of `COMMIT_MODES`.

    Raises:
        ConfigError: `value` is not one of `COMMIT_MODES`.
    """
    if value not in COMMIT_MODES:
        raise ConfigError(f"{where}={value!r} is not a commit mode: use one of "
                          f"{', '.join(COMMIT_MODES)}")
    return value


def effective_commit_mode(commit: str, config: dict[str, Any]) -> str:
    """The commit mode a member runs with: profiles such as OMB's turn auto-commit off and
    commit themselves, so "auto" with `enable.auto.commit=false` becomes "async" (otherwise
    committed offsets never move and the lag looks endless)."""
    if commit == "auto" and str(config.get("enable.auto.commit", "true")).lower() == "false":
        return "async"
    return commit


def _no_flush(_timeout_s: float) -> int:
    """No processing stage: no records to wait for."""
    return 0


class CommitPolicy:
    """How a member commits its offsets; the base does nothing (librdkafka commits, if at all).

    The member builds a policy with `commit_policy`, lets it `configure` the consumer's
    settings, `bind`s it to the consumer, then calls it from its loop and its rebalance
    listener. Errors are recorded in `errors`, never raised.

    Args:
        errors: the member's error counts.
        interval_s: the least time between an "async" commit and the next, and between a
            failed commit and its retry.
        on_revoke: commit what was consumed when partitions are revoked ("sync", "async",
            "sync-message"; see `ConsumerSpec.commit_on_revoke`).

    Attributes:
        commits: commits sent so far (the member's "commits" count).
        failed: a commit of ours failed: it is sent again at the next `tick` that is due.
    """

    mode = "auto"
    #: Whether `consumed` or `handled` commit per message (the stage then calls `handled`).
    per_message = False
    #: Whether an error in the offset commit callback makes the member commit again.
    retry_failed = False

    def __init__(self, errors: ErrorCounts, *, interval_s: float, on_revoke: bool = True):
        self.errors, self.interval_s, self.on_revoke = errors, interval_s, on_revoke
        self.commits = 0
        self.failed = False
        self.consumer: Any = None
        self._flush: Callable[[float], int] = _no_flush
        self.next_commit = 0.0

    def configure(self, conf: dict[str, Any]) -> None:
        """Set the consumer settings the mode needs (the commit callback, auto-commit)."""
        conf["on_commit"] = self.on_commit

    def bind(self, consumer: Any, flush: Callable[[float], int], now: float) -> None:
        """Commit `consumer`'s offsets from `now` on; `flush(timeout_s)` waits for the
        processing stage's records (acknowledged before the offsets of their inputs)."""
        self.consumer, self._flush = consumer, flush
        self.next_commit = now + self.interval_s

    def on_commit(self, err: KafkaError | None, partitions: Any) -> None:
        """librdkafka's offset commit callback: record errors; "sync" and "async" retry."""
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            self.errors.add_kafka(err, "offset commit")
            self.failed = self.retry_failed
        for p in partitions or ():
            if p.error is not None:
                self.errors.add_kafka(p.error, f"offset commit {p.topic}:{p.partition}")

    def consumed(self, msgs: list[Any]) -> None:
        """A batch without a processing stage was consumed."""

    def handled(self, topic: str, partition: int, offset: int) -> None:
        """The processing stage is done with a message; `offset` is the next one."""

    def batch_done(self, n: int) -> None:
        """A batch of `n` good messages is consumed (and handled) and the run goes on."""

    def tick(self, now: float) -> None:
        """Once per loop (`now`: time.monotonic()): commits that are due."""

    def revoked(self) -> None:
        """Partitions are about to be revoked."""

    def close(self) -> None:
        """The member is leaving: the final commit."""


class AutoCommit(CommitPolicy):
    """"auto": librdkafka commits the consumed (stored) offsets in the background and at
    `Consumer.close()`; the member sends none."""


class _ManualCommit(CommitPolicy):
    """The member commits itself: auto-commit off, a commit on revoke and at close, and a
    failed commit retried even if no message comes."""

    retry_failed = True

    def configure(self, conf: dict[str, Any]) -> None:
        """Turn auto-commit off; set the commit callback."""
        super().configure(conf)
        conf["enable.auto.commit"] = False

    def tick(self, now: float) -> None:
        """Retry a failed commit once `interval_s` has passed since the last (retry)."""
        if self.failed and now >= self.next_commit:
            self._again(now)

    def _again(self, now: float) -> None:
        # The last commit failed and nothing may come to trigger the next one: the group's
        # committed offsets would stay behind until the member closes.
        self.failed = False
        self._flush(STAGE_FLUSH_S)  # as before any sync commit: the records before their offsets
        self._commit(False, "offset commit (again)", retry=True)
        self.next_commit = now + self.interval_s

    def revoked(self) -> None:
        """Commit what was consumed before the partitions go to another member."""
        if self.on_revoke:
            # Commit what was consumed before the partitions go to another member, or
            # that member reads it again (the rebalance listener of the design source).
            self._commit(False, "commit on revoke")

    def close(self) -> None:
        """Commit what was consumed, synchronously."""
        self._commit(False, "final offset commit")

    def _commit(self, asynchronous: bool, context: str, *, retry: bool = False) -> None:
        """Commit the consumed offsets; nothing to commit (_NO_OFFSET) is not an error.

        A failed commit (e.g. REBALANCE_IN_PROGRESS while the group rebalances) sets
        `failed` when `retry`, so the member tries again even if no message comes after it.
        """
        try:
            self.consumer.commit(asynchronous=asynchronous)
            self.commits += 1
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                self.errors.add_kafka(exc, context)
                if retry:
                    self.failed = True
        except RuntimeError as exc:  # consumer closed
            self.errors.add_kafka(exc, context)


class SyncBatchCommit(_ManualCommit):
    """"sync": a synchronous commit after each consume() batch."""

    mode = "sync"

    def batch_done(self, n: int) -> None:
        """Commit the batch (its stage records acknowledged first)."""
        if n:
            self._flush(STAGE_FLUSH_S)  # the batch's records acknowledged before its offsets
            self._commit(False, "offset commit", retry=True)


class AsyncIntervalCommit(_ManualCommit):
    """"async": commit() without waiting, at most once per `interval_s` (and on revoke and
    at close, synchronously)."""

    mode = "async"

    def __init__(self, errors: ErrorCounts, *, interval_s: float, on_revoke: bool = True):
        super().__init__(errors, interval_s=interval_s, on_revoke=on_revoke)
        self.uncommitted = 0

    def batch_done(self, n: int) -> None:
        """Count what the next commit covers."""
        self.uncommitted += n

    def tick(self, now: float) -> None:
        """Retry a failed commit, or commit what came since the last, once per interval."""
        if now < self.next_commit:
            return
        if self.failed:
            self._again(now)
        elif self.uncommitted:
            self._commit(True, "offset commit")
            self.uncommitted, self.next_commit = 0, now + self.interval_s

    def _again(self, now: float) -> None:
        # As `_ManualCommit._again`, without waiting: for the stage's records or the commit.
        self.failed = False
        self._commit(True, "offset commit (again)", retry=True)
        self.next_commit = now + self.interval_s


class SyncMessageCommit(_ManualCommit):
    """"sync-message": a synchronous commit of each message's next offset."""

    mode = "sync-message"
    per_message = True
    # A commit of one offset that fails raises (and is retried); the callback's error is
    # recorded only.
    retry_failed = False

    def consumed(self, msgs: list[Any]) -> None:
        """Commit each message of the batch."""
        for m in msgs:
            self._commit_offset(m.topic(), m.partition(), m.offset() + 1, retry=True)

    def handled(self, topic: str, partition: int, offset: int) -> None:
        """Commit the message the stage is done with."""
        # Its records acknowledged first, or a crash after the commit loses them.
        self._flush(STAGE_FLUSH_S)
        # Not retried when it fails (as before the policies): the offsets the stage stores
        # are committed by the next commit of the partition, on revoke or at close.
        self._commit_offset(topic, partition, offset, retry=False)

    def _commit_offset(self, topic: str, partition: int, offset: int, *, retry: bool) -> None:
        """Commit one partition's next offset synchronously; a failure sets `failed` when
        `retry` (retried by `tick`, as `_commit`'s)."""
        try:
            self.consumer.commit(offsets=[TopicPartition(topic, partition, offset)],
                                 asynchronous=False)
            self.commits += 1
        except KafkaException as exc:
            self.errors.add_kafka(exc, "offset commit")
            if retry:
                self.failed = True
        except RuntimeError as exc:  # consumer closed
            self.errors.add_kafka(exc, "offset commit")


class TransactionalCommit(CommitPolicy):
    """"transaction": an exactly-once stage commits the offsets with its transactions (in
    the member's batch handler); the consumer commits none, not even on revoke or close."""

    mode = "transaction"

    def configure(self, conf: dict[str, Any]) -> None:
        """Turn auto-commit off: offsets commit with the stage's transactions only."""
        super().configure(conf)
        conf["enable.auto.commit"] = False


_POLICIES: dict[str, type[CommitPolicy]] = {
    p.mode: p for p in (AutoCommit, SyncBatchCommit, AsyncIntervalCommit, SyncMessageCommit,
                        TransactionalCommit)}


def commit_policy(mode: str, errors: ErrorCounts, *, interval_s: float,
                  on_revoke: bool = True) -> CommitPolicy:
    """The policy of commit `mode` (one of `COMMIT_MODES`, or "transaction").

    Args:
        mode: the member's effective mode (`effective_commit_mode`).
        errors: the member's error counts.
        interval_s: "async" commits at most this often; a failed commit is retried after it.
        on_revoke: commit on revoke (modes that commit themselves).

    Returns:
        A new `CommitPolicy` for one member.
    """
    return _POLICIES[mode](errors, interval_s=interval_s, on_revoke=on_revoke)
