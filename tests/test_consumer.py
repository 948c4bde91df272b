"""Consumer plumbing that needs no broker: the one commit-mode check, and the parts a member's
loop is composed of (meter, rebalance listener, batch handlers)."""

import time
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, Message

from kafkabench.core.errors import ConfigError
from kafkabench.engine.batches import ExactlyOnceBatches, PlainBatches, StageBatches
from kafkabench.engine.commits import commit_policy
from kafkabench.engine.consumer import (
    COMMIT_MODES,
    ConsumerSpec,
    ConsumptionTrace,
    _without_errors,
    check_commit_mode,
)
from kafkabench.engine.meter import ConsumerMeter
from kafkabench.engine.rebalance import RebalanceListener
from kafkabench.engine.stage import Stage
from kafkabench.engine.workers import ErrorCounts
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.spec.processing import OK, TRANSIENT, Processing


@pytest.mark.parametrize("mode", COMMIT_MODES)
def test_every_commit_mode_passes(mode):
    assert check_commit_mode(mode) == mode


def test_a_bad_commit_mode_is_named_with_the_modes_allowed():
    with pytest.raises(ConfigError, match=r"run\.commit='manual' .* auto, sync, async"):
        check_commit_mode("manual", "run.commit")


def test_a_spec_with_a_bad_commit_mode_is_refused_before_any_worker_starts():
    # It used to run: any mode but "auto" turned auto-commit off and committed on close only.
    with pytest.raises(ConfigError, match=r"consumer 'g0-consumer-0': commit='Sync'"):
        ConsumerSpec(worker="g0-consumer-0", group="g0", config={}, topics=("t",), commit="Sync")


# ----------------------------------------------------------------------------- the member's parts


def test_the_meter_counts_keys_and_values_and_each_latency_once():
    now_ms = time.time() * 1000.0
    msgs = [Message(topic="t", partition=0, offset=i, key=b"key" if i % 2 else None, value=b"x" * 10,
                    timestamp=(1, int(now_ms) - 5)) for i in range(4)]
    meter = ConsumerMeter(record_latency=True)
    meter.batch(msgs, now_ms)
    meter.batch([], now_ms)  # a batch of errors only
    counts, histograms = meter.take_interval()
    assert counts == {"consumed": 4, "bytes": 4 * 10 + 2 * 3}
    e2e = LatencyRecorder.decode(histograms["e2e_latency_us"])
    assert e2e.count == 4 and 4.0 <= e2e.value_at(50, "ms") <= 6.0
    assert meter.take_interval()[0] == {"consumed": 0, "bytes": 0}  # reset
    meter.batch(msgs[:1], now_ms)
    assert meter.totals() == {"consumed": 5, "bytes": 56} and meter.total_consumed == 5
    quiet = ConsumerMeter(record_latency=False)
    quiet.batch(msgs, now_ms)
    assert LatencyRecorder.decode(quiet.take_interval()[1]["e2e_latency_us"]).count == 0


def test_the_meter_writes_non_empty_batches_to_the_trace(tmp_path):
    path = tmp_path / "trace.csv"
    meter = ConsumerMeter(record_latency=False, trace=ConsumptionTrace(str(path)))
    meter.batch([Message(topic="t", partition=1, offset=o, value=b"v") for o in (7, 8, 9)], 1000_000.0)
    meter.batch([], 2000_000.0)
    meter.close()
    assert path.read_text() == "1000.000000,t,1,7,9,3\n"


def test_error_events_are_counted_and_left_out_except_partition_eof():
    good = Message(topic="t", partition=0, offset=1, value=b"v")
    eof = Message(topic="t", partition=0, offset=2, error=KafkaError(KafkaError._PARTITION_EOF))
    bad = Message(topic="t", error=KafkaError(KafkaError._TRANSPORT))
    errors = ErrorCounts()
    batch = [good]
    assert _without_errors(batch, errors) is batch  # the usual case: the batch as it is
    assert _without_errors([eof, good, bad], errors) == [good]
    assert dict(errors.counts) == {"_TRANSPORT": 1}


class Calls(list):
    """Records the calls made to any of its methods, in order."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.append(name)


def test_the_rebalance_listener_lets_go_commits_then_reports():
    calls, reports = Calls(), []
    ctl = SimpleNamespace(report=reports.append)
    listener = RebalanceListener("g0-consumer-1", "g0", ctl, policy=calls, handler=calls)
    parts = [SimpleNamespace(topic="t", partition=p) for p in (1, 0)]
    listener.on_assign(None, parts)
    listener.on_revoke(None, parts)
    listener.on_lost(None, parts[:1])
    # On revoke the handler lets go first (a stage aborts its transaction), then the policy
    # commits; a lost partition is another member's already: nothing is committed.
    assert calls == ["revoked", "revoked", "revoked"]
    assert [(e["event"], e["partitions"], e["count"]) for e in listener.events] == [
        ("assign", "t:0,t:1", 2), ("revoke", "t:0,t:1", 2), ("lost", "t:1", 1)]
    assert [r.kind for r in reports] == ["rebalance"] * 3
    assert reports[1].events == [listener.events[1]] and listener.events[0]["member"] == "g0-consumer-1"


class StoringConsumer:
    """A consumer's store_offsets and seek, recorded."""

    def __init__(self) -> None:
        self.stored: list[tuple] = []
        self.seeks: list[tuple] = []

    def store_offsets(self, offsets):
        self.stored.extend((o.topic, o.partition, o.offset) for o in offsets)

    def seek(self, tp):
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def pause(self, tps):
        pass

    def commit(self, offsets=None, asynchronous=True):
        self.stored.append(("commit", *[(o.topic, o.partition, o.offset) for o in offsets]))


def offsets_with(p: Processing, fate: str, n: int, partition: int = 0) -> list[int]:
    return [o for o in range(10_000) if p.fate(partition, o) == fate][:n]


def test_plain_batches_leave_commits_to_the_policy():
    consumer = StoringConsumer()
    policy = commit_policy("sync-message", ErrorCounts(), interval_s=1.0)
    policy.bind(consumer, lambda t: 0, now=0.0)
    handler = PlainBatches(("t",), policy)
    assert handler.handle([Message(topic="t", partition=0, offset=4)])
    assert consumer.stored == [("commit", ("t", 0, 5))]
    assert handler.take_interval() == ({}, {}) and handler.totals == {}


def test_stage_batches_store_only_what_the_stage_settled():
    p = Processing(time_ms=1)
    consumer = StoringConsumer()
    sleeps = iter([True, True, False])  # the run stops during the third message
    stage = Stage(p, ("t",), producer=None, consumer=consumer, sleep=lambda s: next(sleeps),
                  on_error=print)
    policy = commit_policy("sync-message", ErrorCounts(), interval_s=1.0)
    policy.bind(consumer, stage.flush, now=0.0)
    handler = StageBatches(stage, consumer, policy, sleep=lambda s: True)
    msgs = [Message(topic="t", partition=p, offset=o, value=b"v", timestamp=(1, 1)) for p, o in
            ((0, 10), (1, 20), (0, 11))]
    assert handler.handle(msgs) is False
    # Each settled message committed at once (sync-message), then the batch's offsets stored.
    assert consumer.stored == [("commit", ("t", 0, 11)), ("commit", ("t", 1, 21)), ("t", 0, 11), ("t", 1, 21)]
    counts, histograms = handler.take_interval()
    assert counts["processed"] == 2 and set(histograms) == {"processing_latency_us",
                                                            "processing_done_latency_us"}
    handler.close()
    assert handler.totals == {"processed": 2, "stage_unflushed": 0, "attempts_1": 2}


class TxnProducer:
    """An exactly-once stage's producer: its transaction calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append(name) or 0


def test_exactly_once_batches_abort_skip_the_partition_and_wait():
    p = Processing(transient_fraction=0.5, backoff={"initial_ms": 7, "max_attempts": 3},
                   exactly_once=True, transaction_messages=1000)
    producer, consumer, waits = TxnProducer(), StoringConsumer(), []
    stage = Stage(p, ("t",), producer=producer, consumer=consumer, sleep=lambda s: True, on_error=print)
    handler = ExactlyOnceBatches(stage, consumer, commit_policy("transaction", ErrorCounts(), interval_s=1.0),
                                 sleep=lambda s: waits.append(s) or True)
    # Partition 0: an OK record, then a transient one and the record after it; partition 1:
    # an OK record read in between.
    first = offsets_with(p, OK, 1)[0]
    later = next(o for o in range(first + 1, 10_000) if p.fate(0, o) == TRANSIENT)
    other = offsets_with(p, OK, 1, partition=1)[0]
    msgs = [Message(topic="t", partition=part, offset=o, timestamp=(1, 1))
            for part, o in ((0, first), (1, other), (0, later), (0, later + 1))]
    assert handler.handle(msgs)
    # The transient one aborted the transaction: every partition it read was rewound to where
    # it began, and partition 0's later records in the batch were skipped (they come again).
    assert producer.calls[:2] == ["init_transactions", "begin_transaction"]
    assert "abort_transaction" in producer.calls and waits == [pytest.approx(0.007)]
    assert set(consumer.seeks) == {("t", 0, first), ("t", 1, other)}
    assert stage.skip == set() and consumer.stored == []
    counts, _ = handler.take_interval()
    assert counts["transactions_aborted"] == 1 and counts["retried"] == 1
