"""Commit policies without a broker: which commits each mode sends, when, and how a failed one
is retried. (What Kafka does with them is tested against the real broker: test_offsets.py,
test_rebalancing.py, test_processing.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from kafkabench.engine.commits import (
    COMMIT_MODES,
    AsyncIntervalCommit,
    AutoCommit,
    SyncBatchCommit,
    SyncMessageCommit,
    TransactionalCommit,
    commit_policy,
)
from kafkabench.engine.workers import ErrorCounts

INTERVAL_S = 1.0


class Recorder:
    """A consumer's commit() as the policies call it: each call recorded; `fail` makes the
    next calls raise that error code."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail: int | None = None
        self.closed = False

    def commit(self, offsets=None, asynchronous=True):
        self.calls.append(("commit", asynchronous,
                           None if offsets is None else [(o.topic, o.partition, o.offset) for o in offsets]))
        if self.closed:
            raise RuntimeError("Consumer closed")
        if self.fail is not None:
            raise KafkaException(KafkaError(self.fail))

    def flush(self, timeout_s: float) -> int:
        self.calls.append(("flush",))
        return 0


def policy_for(mode: str, *, on_revoke: bool = True):
    errors = ErrorCounts()
    policy = commit_policy(mode, errors, interval_s=INTERVAL_S, on_revoke=on_revoke)
    consumer = Recorder()
    policy.bind(consumer, consumer.flush, now=100.0)
    return policy, consumer, errors


def commits(consumer: Recorder) -> list[tuple]:
    return [c for c in consumer.calls if c[0] == "commit"]


@pytest.mark.parametrize(("mode", "cls", "auto_commit"), [
    ("auto", AutoCommit, None), ("sync", SyncBatchCommit, False), ("async", AsyncIntervalCommit, False),
    ("sync-message", SyncMessageCommit, False), ("transaction", TransactionalCommit, False)])
def test_each_mode_has_its_policy_and_settings(mode, cls, auto_commit):
    policy = commit_policy(mode, ErrorCounts(), interval_s=INTERVAL_S)
    assert type(policy) is cls and policy.mode == mode
    conf: dict = {}
    policy.configure(conf)
    assert conf.get("enable.auto.commit") is auto_commit
    assert conf["on_commit"] == policy.on_commit


def test_every_commit_mode_is_a_policy():
    for mode in COMMIT_MODES:
        assert commit_policy(mode, ErrorCounts(), interval_s=INTERVAL_S).mode == mode


@pytest.mark.parametrize("mode", ["auto", "transaction"])
def test_auto_and_transaction_never_commit_themselves(mode):
    policy, consumer, _ = policy_for(mode)
    policy.consumed([Message(topic="t", partition=0, offset=1)])
    policy.handled("t", 0, 2)
    policy.batch_done(10)
    policy.tick(1e9)
    policy.revoked()
    policy.close()
    assert consumer.calls == [] and policy.commits == 0


def test_sync_commits_each_batch_after_the_stage_records():
    policy, consumer, _ = policy_for("sync")
    policy.batch_done(0)  # only errors in it: nothing to commit
    assert consumer.calls == []
    policy.batch_done(3)
    assert consumer.calls == [("flush",), ("commit", False, None)]
    assert policy.commits == 1


def test_a_failed_sync_commit_is_retried_even_if_no_message_comes():
    policy, consumer, errors = policy_for("sync")
    consumer.fail = KafkaError.REBALANCE_IN_PROGRESS
    policy.batch_done(5)
    assert policy.failed and policy.commits == 0
    assert errors.counts["REBALANCE_IN_PROGRESS"] == 1
    consumer.fail = None
    policy.tick(100.0 + INTERVAL_S / 2)  # not yet: at most once per interval
    assert len(commits(consumer)) == 1
    policy.tick(100.0 + INTERVAL_S)
    assert commits(consumer)[-1] == ("commit", False, None)
    assert consumer.calls[-2] == ("flush",)  # the stage's records before their offsets
    assert not policy.failed and policy.commits == 1
    policy.tick(1e9)  # nothing failed since
    assert policy.commits == 1
    assert "offset commit (again)" not in str(errors.messages)


def test_nothing_to_commit_is_not_an_error_and_not_retried():
    policy, consumer, errors = policy_for("sync")
    consumer.fail = KafkaError._NO_OFFSET
    policy.batch_done(1)
    assert not policy.failed and not errors.counts


def test_async_commits_at_most_once_per_interval_without_waiting():
    policy, consumer, _ = policy_for("async")
    policy.tick(200.0)  # nothing consumed: nothing to commit
    assert consumer.calls == []
    policy.batch_done(10)
    policy.tick(100.0 + INTERVAL_S / 2)
    assert consumer.calls == []
    policy.tick(100.0 + INTERVAL_S)
    assert consumer.calls == [("commit", True, None)]
    policy.batch_done(10)
    policy.tick(100.0 + INTERVAL_S * 1.5)  # the next interval is not over
    assert len(consumer.calls) == 1
    policy.tick(100.0 + INTERVAL_S * 2)
    assert consumer.calls == [("commit", True, None)] * 2 and policy.commits == 2


def test_a_failed_async_commit_reported_by_the_callback_is_retried_without_waiting():
    policy, consumer, errors = policy_for("async")
    policy.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), [])
    assert policy.failed and errors.counts["REQUEST_TIMED_OUT"] == 1
    policy.tick(100.0 + INTERVAL_S)
    assert consumer.calls == [("commit", True, None)]  # no flush: async never waits


@pytest.mark.parametrize(("mode", "retried"), [("sync", True), ("async", True), ("sync-message", False),
                                               ("auto", False), ("transaction", False)])
def test_which_modes_retry_a_commit_the_callback_reports_failed(mode, retried):
    policy, _, errors = policy_for(mode)
    policy.on_commit(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE), None)
    assert policy.failed is retried and errors.counts["COORDINATOR_NOT_AVAILABLE"] == 1
    policy.on_commit(KafkaError(KafkaError._NO_OFFSET), None)  # not an error
    assert sum(errors.counts.values()) == 1


def test_the_callback_records_a_partition_error():
    policy, _, errors = policy_for("auto")
    # A TopicPartition as the callback gets it (its `error` cannot be set from Python).
    tp = SimpleNamespace(topic="t", partition=3, offset=10,
                         error=KafkaError(KafkaError.OFFSET_METADATA_TOO_LARGE))
    policy.on_commit(None, [tp])
    assert errors.messages["OFFSET_METADATA_TOO_LARGE"][0].startswith("offset commit t:3")
    assert not policy.failed


def test_sync_message_commits_each_message_s_next_offset():
    policy, consumer, _ = policy_for("sync-message")
    policy.consumed([Message(topic="t", partition=p, offset=o) for p, o in ((0, 5), (1, 7))])
    assert consumer.calls == [("commit", False, [("t", 0, 6)]), ("commit", False, [("t", 1, 8)])]
    assert policy.commits == 2


def test_sync_message_with_a_stage_flushes_its_records_before_each_commit():
    policy, consumer, _ = policy_for("sync-message")
    policy.handled("t", 2, 11)
    assert consumer.calls == [("flush",), ("commit", False, [("t", 2, 11)])]


def test_a_failed_per_message_commit_is_retried_with_all_stored_offsets():
    policy, consumer, _ = policy_for("sync-message")
    consumer.fail = KafkaError.REBALANCE_IN_PROGRESS
    policy.consumed([Message(topic="t", partition=0, offset=5)])
    assert policy.failed
    consumer.fail = None
    policy.tick(100.0 + INTERVAL_S)
    assert commits(consumer)[-1] == ("commit", False, None) and policy.commits == 1
    # The stage's per-message commits are not retried (as before the policies): its stored
    # offsets go with the next commit of the partition, on revoke or at close.
    consumer.fail = KafkaError.REBALANCE_IN_PROGRESS
    policy.handled("t", 0, 7)
    assert not policy.failed


@pytest.mark.parametrize("mode", ["sync", "async", "sync-message"])
def test_manual_modes_commit_synchronously_on_revoke_and_at_close(mode):
    policy, consumer, _ = policy_for(mode)
    policy.revoked()
    policy.close()
    assert consumer.calls == [("commit", False, None)] * 2 and policy.commits == 2
    quiet, consumer, _ = policy_for(mode, on_revoke=False)
    quiet.revoked()
    assert consumer.calls == []


def test_a_commit_on_a_closed_consumer_is_recorded_not_raised():
    policy, consumer, errors = policy_for("sync")
    consumer.closed = True
    policy.revoked()
    assert errors.counts["RuntimeError"] == 1 and policy.commits == 0 and not policy.failed
