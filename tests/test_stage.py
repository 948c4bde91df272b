"""The processing stage's outcomes without a broker: what `Stage.handle` says became of each
message, for each fate and retry mode. (Against the real broker, counted exactly:
test_processing.py; in transactions: test_transactions.py.)"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Message

from kafkabench.engine.stage import Handled, Outcome, Stage, Stopped
from kafkabench.spec.processing import FILTERED, OK, POISON, TRANSIENT, Processing


class Producer:
    """The stage's producer: records what it is asked to write."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def produce(self, topic, **kwargs):
        self.records.append((topic, kwargs))

    def poll(self, timeout=0.0):
        return 0

    def flush(self, timeout=0.0):
        return 0

    def init_transactions(self, timeout):
        pass

    def begin_transaction(self):
        self.records.append(("<begin>", {}))


class Consumer:
    """The member's consumer as the stage uses it: pause, seek and resume, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def pause(self, tps):
        self.calls.append(("pause", [(t.topic, t.partition, t.offset) for t in tps]))

    def seek(self, tp):
        self.calls.append(("seek", (tp.topic, tp.partition, tp.offset)))

    def resume(self, tps):
        self.calls.append(("resume", [(t.topic, t.partition) for t in tps]))


def offset_of(p: Processing, fate: str, partition: int = 0) -> int:
    """The first offset of `partition` whose record has `fate`."""
    return next(o for o in range(100_000) if p.fate(partition, o) == fate)


def stage_for(p: Processing, sleep=lambda s: True) -> tuple[Stage, Producer, Consumer]:
    producer, consumer = Producer(), Consumer()
    stage = Stage(p, ("t",), producer=producer, consumer=consumer, sleep=sleep,
                  on_error=lambda *a: None, seed=1)
    return stage, producer, consumer


def record(offset: int, topic: str = "t", partition: int = 0, headers=None) -> Message:
    return Message(topic=topic, partition=partition, offset=offset, key=b"k", value=b"abc",
                   headers=headers, timestamp=(1, int(time.time() * 1000) - 5))


FAULTY = dict(transient_fraction=0.3, poison_fraction=0.2, transient_failures=1, output=True,
              backoff={"initial_ms": 1, "max_attempts": 3})


def test_a_processed_message_is_settled_after_one_attempt():
    p = Processing(**FAULTY)
    stage, producer, _ = stage_for(p)
    outcome = stage.handle(record(offset_of(p, OK)))
    assert outcome.kind is Handled.PROCESSED and outcome.attempts == 1 and outcome.settled
    assert outcome.latency_s >= 0 and outcome.error == ""
    assert [t for t, _ in producer.records] == ["t.out"]
    assert stage.counts == {"processed": 1, "output": 1} and stage.attempts == {1: 1}


def test_a_transient_failure_is_retried_inline_after_the_backoff():
    p = Processing(**FAULTY)
    waits = []
    stage, _, _ = stage_for(p, sleep=lambda s: waits.append(s) or True)
    outcome = stage.handle(record(offset_of(p, TRANSIENT)))
    assert outcome.kind is Handled.RETRIED_INLINE and outcome.attempts == 2 and outcome.settled
    assert waits == [pytest.approx(0.001)]
    assert stage.counts["retried"] == 1 and stage.counts["processed"] == 1


@pytest.mark.parametrize(("dead_letter", "kind"), [(True, Handled.DEAD_LETTERED), (False, Handled.FAILED)])
def test_poison_fails_its_last_attempt(dead_letter, kind):
    p = Processing(**{**FAULTY, "dead_letter": dead_letter})
    stage, producer, _ = stage_for(p)
    offset = offset_of(p, POISON)
    outcome = stage.handle(record(offset, headers=[("event-type", b"OrderCreated")]))
    assert outcome.kind is kind and outcome.attempts == 3 and outcome.settled
    assert outcome.error == "injected poison failure"
    assert stage.counts["failed"] == 1 and stage.counts["retried"] == 2
    if dead_letter:
        (topic, kwargs), = producer.records
        headers = dict(kwargs["headers"])
        assert topic == "t.dlq" and kwargs["headers"][0] == ("event-type", b"OrderCreated")
        assert headers["error"] == outcome.error.encode() and headers["retry_count"] == b"2"
        assert headers["original_offset"] == str(offset).encode()
    else:
        assert producer.records == []


def test_filtered_messages_take_no_attempt():
    p = Processing(filter_fraction=0.5, filter_header={"event-type": "OrderCancelled"})
    stage, _, _ = stage_for(p)
    by_header = stage.handle(record(offset_of(p, OK), headers=[("event-type", b"OrderCancelled")]))
    by_fraction = stage.handle(record(offset_of(p, FILTERED)))
    for outcome in (by_header, by_fraction):
        assert outcome.kind is Handled.FILTERED and outcome.attempts == 0 and outcome.settled
    assert stage.counts == {"filtered": 2} and not stage.attempts


def test_retry_topics_forward_then_delay_until_due():
    p = Processing(**{**FAULTY, "retry": "topics", "backoff": {"initial_ms": 60_000, "max_ms": 60_000, "max_attempts": 3}})
    stage, producer, consumer = stage_for(p)
    offset = offset_of(p, TRANSIENT)
    forwarded = stage.handle(record(offset))
    assert forwarded.kind is Handled.FORWARDED and forwarded.attempts == 1 and forwarded.settled
    assert forwarded.error == "injected transient failure"
    (topic, kwargs), = producer.records
    assert topic == "t.retry.1"
    # Read back from the retry topic at once: not due for a minute.
    retry = record(3, topic="t.retry.1", partition=1, headers=kwargs["headers"])
    delayed = stage.handle(retry)
    assert delayed.kind is Handled.DELAYED and not delayed.settled
    assert consumer.calls == [("pause", [("t.retry.1", 1, 3)]), ("seek", ("t.retry.1", 1, 3))]
    assert stage.is_paused(retry) and stage.counts["delayed"] == 1
    stage.resume_due()  # not due: stays paused
    assert len(consumer.calls) == 2
    stage.retries.paused[("t.retry.1", 1)] = time.monotonic()  # due now
    stage.resume_due()
    assert consumer.calls[-1] == ("resume", [("t.retry.1", 1)]) and not stage.is_paused(retry)


def test_a_due_retry_record_is_judged_by_its_origin():
    p = Processing(**{**FAULTY, "retry": "topics", "backoff": {"initial_ms": 1, "max_attempts": 3}})
    stage, producer, _ = stage_for(p)
    offset = offset_of(p, TRANSIENT)
    stage.handle(record(offset))
    (_, kwargs), = producer.records
    time.sleep(0.01)
    outcome = stage.handle(record(0, topic="t.retry.1", partition=1, headers=kwargs["headers"]))
    # Its second attempt, the transient record's first success; the output names the input.
    assert outcome.kind is Handled.PROCESSED and outcome.attempts == 2
    topic, out = producer.records[-1]
    assert topic == "t.out" and dict(out["headers"])["kb-src"] == f"0:{offset}".encode()


def test_exactly_once_aborts_and_counts_attempts_across_reads():
    p = Processing(**{**FAULTY, "exactly_once": True})
    stage, producer, _ = stage_for(p)
    offset = offset_of(p, TRANSIENT)
    aborted = stage.handle(record(offset))
    assert aborted.kind is Handled.ABORTED and not aborted.settled
    assert aborted.attempts == 1 and aborted.wait_s == pytest.approx(0.001)
    assert producer.records == [("<begin>", {})] and stage.skip == set()
    again = stage.handle(record(offset))  # read again after the abort
    assert again.kind is Handled.PROCESSED and again.attempts == 2
    assert stage.transactions.attempts == {}


def test_exactly_once_poison_is_dead_lettered_at_once_when_read_again():
    p = Processing(**{**FAULTY, "exactly_once": True})
    stage, _, _ = stage_for(p)
    poison = record(offset_of(p, POISON))
    assert [stage.handle(poison).kind for _ in range(3)] == [Handled.ABORTED, Handled.ABORTED,
                                                              Handled.DEAD_LETTERED]
    # Its transaction aborted for another message: read again, it is not retried again.
    assert stage.handle(poison).kind is Handled.DEAD_LETTERED


def test_a_stop_in_the_middle_of_a_message_raises_stopped():
    p = Processing(time_ms=5)
    stage, _, _ = stage_for(p, sleep=lambda s: False)
    with pytest.raises(Stopped):
        stage.handle(record(0))
    assert not stage.counts


def test_outcomes_are_values():
    a = Outcome(Handled.PROCESSED, 1, 0.5)
    assert a == Outcome(Handled.PROCESSED, 1, 0.5) and hash(a) == hash(Outcome(Handled.PROCESSED, 1, 0.5))
    with pytest.raises(AttributeError):
        a.attempts = 2  # frozen
