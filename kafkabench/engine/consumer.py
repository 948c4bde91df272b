"""The consumer runner: one member of a consumer group, with the batch consume API.

Each member reports once a second: messages and bytes (keys + values) consumed and the
interval's end-to-end latency histogram (receive time minus the message's Kafka timestamp,
which the producer sets to the intended send time in rate-controlled runs), plus every
rebalance it sees.

The member's loop is composed of parts chosen once before it (OpenMessaging Benchmark's
consumers; confluent-kafka's `tests/kafkatest/verifiable_consumer.py`): a meter
(`kafkabench.engine.meter`), a batch handler (`kafkabench.engine.batches`: plain, a
processing stage, an exactly-once stage), a commit policy per mode
(`kafkabench.engine.commits`) and a rebalance listener (`kafkabench.engine.rebalance`).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from kafkabench.engine.batches import ExactlyOnceBatches, PlainBatches, StageBatches
from kafkabench.engine.commits import (
    COMMIT_INTERVAL_S,
    COMMIT_MODES,
    CommitPolicy,
    check_commit_mode,
    commit_policy,
    effective_commit_mode,
)
from kafkabench.engine.meter import ConsumerMeter
from kafkabench.engine.rebalance import RebalanceListener
from kafkabench.engine.stage import Stage
from kafkabench.engine.workers import Control, ErrorCounts, Report, cpu_seconds
from kafkabench.measure.stats import StatsCollector

__all__ = ["BATCH", "COMMIT_INTERVAL_S", "COMMIT_MODES", "CONSUME_TIMEOUT_S", "ConsumerSpec",
           "ConsumptionTrace", "check_commit_mode", "effective_commit_mode", "run_consumer"]

BATCH = 1000
# consume() timeout: short, so the stop flag and the per-second report stay on time.
CONSUME_TIMEOUT_S = 0.1


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """Everything one consumer worker needs; picklable for a worker process.

    Attributes:
        worker: member name, e.g. "g0-consumer-1".
        group: consumer group id.
        config: confluent-kafka consumer config (bootstrap and group included).
        topics: topics to subscribe to.
        commit: "auto" (enable.auto.commit; becomes "async" when the profile turns
            auto-commit off), "sync" (after each consume batch), "async" (every
            `commit_interval_s`) or "sync-message" (a synchronous commit after each message);
            all but "auto" also commit on revoke and close.
        record_latency: record end-to-end latency per message.
        max_messages: stop after consuming this many (None: until stopped).
        commit_interval_s: seconds between "async" commits.
        processing: what the member does with each message (`kafkabench.processing`);
            None: nothing.
        stage_config: producer config of the processing stage's retry, dead-letter and
            output records.
        trace: a file the member appends its consumption to (`ConsumptionTrace`), or None.
        commit_on_revoke: "sync", "async" and "sync-message" commit what was consumed when
            partitions are revoked (the design source's rebalance listener); False leaves
            that to the next periodic commit, so the next owner reads it again.
    """

    worker: str
    group: str
    config: dict[str, Any]
    topics: tuple[str, ...]
    commit: str = "auto"
    record_latency: bool = True
    max_messages: int | None = None
    commit_interval_s: float = COMMIT_INTERVAL_S
    processing: Any = None
    stage_config: dict[str, Any] | None = None
    trace: str | None = None
    commit_on_revoke: bool = True

    def __post_init__(self) -> None:
        check_commit_mode(self.commit, f"consumer {self.worker!r}: commit")


class ConsumptionTrace:
    """What a member consumed, per partition per consume() batch, appended to a CSV file:
    `wall,topic,partition,first_offset,last_offset,count` (no header).

    Each batch is one os.write() to a file opened for appending, so a member SIGKILLed on
    purpose loses nothing it wrote: the trace is how a crash's redelivery is counted by
    offset (`kafkabench.membership`). About one write per batch, a few per second at low
    rates.
    """

    COLUMNS = ("wall", "topic", "partition", "first_offset", "last_offset", "count")

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def batch(self, wall: float, msgs: list[Message]) -> None:
        """Record one batch of good messages, read at `wall`."""
        seen: dict[tuple[str, int], list[int]] = {}
        for m in msgs:
            o = m.offset()
            row = seen.get((m.topic(), m.partition()))
            if row is None:
                seen[(m.topic(), m.partition())] = [o, o, 1]
            else:
                row[1], row[2] = o, row[2] + 1
        os.write(self._fd, "".join(f"{wall:.6f},{t},{p},{a},{b},{n}\n"
                                   for (t, p), (a, b, n) in seen.items()).encode())

    def close(self) -> None:
        os.close(self._fd)


def run_consumer(spec: ConsumerSpec, ctl: Control) -> None:
    """Consume until `ctl.stop` is set, then commit (per mode), leave the group and report.

    Args:
        spec: the member.
        ctl: its view of the pool: the stop flag and the report channel.
    """
    _Member(spec, ctl).run()


class _Member:
    """One consumer-group member: its parts, chosen once, and the loop that composes them."""

    def __init__(self, spec: ConsumerSpec, ctl: Control):
        self.spec, self.ctl = spec, ctl
        self.errors = errors = ErrorCounts()
        self.stats = StatsCollector(client=spec.worker)
        conf = dict(spec.config)
        self.policy = commit_policy(_commit_mode(spec, conf), errors,
                                    interval_s=spec.commit_interval_s,
                                    on_revoke=spec.commit_on_revoke)
        self.policy.configure(conf)
        conf.setdefault("error_cb", lambda err: errors.add_kafka(err, "client"))
        if "statistics.interval.ms" in conf:
            conf["stats_cb"] = self.stats
        if spec.processing is not None:
            # Offsets are stored once a message is handled, not when consume() returns it.
            conf["enable.auto.offset.store"] = False
        self.cpu0 = cpu_seconds(ctl.in_process)
        self.consumer = Consumer(conf)
        self.handler = _batch_handler(spec, self.consumer, ctl, errors, self.policy)
        self.listener = RebalanceListener(spec.worker, spec.group, ctl, self.policy, self.handler)
        self.consumer.subscribe(list(self.handler.topics), on_assign=self.listener.on_assign,
                                on_revoke=self.listener.on_revoke, on_lost=self.listener.on_lost)
        self.meter = ConsumerMeter(spec.record_latency,
                                   ConsumptionTrace(spec.trace) if spec.trace else None)
        self.start = self.last_message = time.monotonic()
        self.policy.bind(self.consumer, self.handler.flush, self.start)

    def run(self) -> None:
        """The loop, then the end: final commits, leaving the group, the final report."""
        try:
            self._loop()
        finally:
            self._finish()

    def _loop(self) -> None:
        consume, poll, stopped = self.consumer.consume, self.consumer.poll, self.ctl.stopped
        meter, handler, policy, errors = self.meter, self.handler, self.policy, self.errors
        limit = self.spec.max_messages or float("inf")
        next_report = time.monotonic() + 1.0
        while not stopped():
            # consume(n, timeout) waits until it has n messages or the timeout passes, which
            # would add up to the timeout to every end-to-end latency at low rates. So take
            # what is there (timeout 0) and block, when idle, on poll() for the next one.
            msgs = consume(BATCH, 0)
            if not msgs:
                first = poll(CONSUME_TIMEOUT_S)
                msgs = [first] if first is not None else msgs
            if msgs:
                now_ms = time.time() * 1000.0
                good = _without_errors(msgs, errors)
                meter.batch(good, now_ms)
                if not handler.handle(good):
                    break  # stopped in the middle of a message
                self.last_message = time.monotonic()
                if meter.total_consumed >= limit:
                    break
                policy.batch_done(len(good))
            handler.idle()
            now = time.monotonic()
            policy.tick(now)
            if now >= next_report:
                self._report()
                next_report += 1.0

    def _report(self) -> None:
        counts, histograms = self.meter.take_interval()
        stage_counts, stage_histograms = self.handler.take_interval()
        counts.update(stage_counts)
        histograms.update(stage_histograms)
        self.ctl.report(Report(kind="interval", worker=self.spec.worker, role="consumer",
                               wall=time.time(), counts=counts, histograms=histograms))

    def _finish(self) -> None:
        errors = self.errors
        self.handler.finish(errors)
        self._report()
        self.handler.close()
        self.policy.close()
        try:
            self.consumer.close()  # commits auto-commit offsets and leaves the group
        except Exception as exc:  # noqa: BLE001 - recorded; the report must still go out
            errors.add_kafka(exc, "close")
        self.meter.close()
        cpu_s = cpu_seconds(self.ctl.in_process) - self.cpu0
        counts = {**self.meter.totals(), "commits": self.policy.commits, **self.handler.totals,
                  "elapsed_s": self.last_message - self.start, "cpu_s": cpu_s,
                  "in_process": int(self.ctl.in_process)}
        self.ctl.report(Report(kind="done", worker=self.spec.worker, role="consumer",
                               wall=time.time(), counts=counts, errors=dict(errors.counts),
                               error_messages=errors.messages, stats=list(self.stats.samples),
                               events=self.listener.events))


def _commit_mode(spec: ConsumerSpec, conf: dict[str, Any]) -> str:
    """The member's commit mode: its own (`effective_commit_mode`), or "transaction"."""
    if spec.processing is not None and spec.processing.exactly_once:
        # Offsets commit with the stage's transactions, never by the consumer.
        return "transaction"
    return effective_commit_mode(spec.commit, conf)


def _without_errors(msgs: list[Message], errors: ErrorCounts) -> list[Message]:
    """The batch's messages without its error events (counted, partition EOF aside)."""
    # Comprehensions over the batch: faster than map(methodcaller(...)) on 3.11+.
    bad = [m for m in msgs if m.error() is not None]
    if not bad:
        return msgs
    for err in (m.error() for m in bad):  # rare
        if err.code() != KafkaError._PARTITION_EOF:
            errors.add_kafka(err, "consume")
    return [m for m in msgs if m.error() is None]


def _batch_handler(spec: ConsumerSpec, consumer: Consumer, ctl: Control, errors: ErrorCounts,
                   policy: CommitPolicy) -> PlainBatches:
    """What the member does with each batch: nothing more, or its processing stage."""
    p = spec.processing
    if p is None:
        return PlainBatches(spec.topics, policy)
    producer = None
    if p.exactly_once or p.retry == "topics" or p.dead_letter or p.output:
        conf = dict(spec.stage_config or {})
        conf.setdefault("error_cb", lambda err: errors.add_kafka(err, "processing stage client"))
        producer = Producer(conf)
    stage = Stage(p, spec.topics, producer=producer, consumer=consumer, sleep=ctl.sleep,
                  on_error=errors.add_kafka, seed=zlib.crc32(spec.worker.encode()))
    handler = ExactlyOnceBatches if p.exactly_once else StageBatches
    return handler(stage, consumer, policy, ctl.sleep)
