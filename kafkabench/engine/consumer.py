"""The consumer runner: one member of a consumer group, with the batch consume API.

Each member reports once a second: messages and bytes (keys + values) consumed and the
interval's end-to-end latency histogram (receive time minus the message's Kafka timestamp,
which the producer sets to the intended send time in rate-controlled runs), plus every
rebalance it sees.
"""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from kafkabench.core.errors import ConfigError
from kafkabench.engine.workers import Control, ErrorCounts, Report, cpu_seconds
from kafkabench.measure.stats import LatencyRecorder, StatsCollector

COMMIT_MODES = ("auto", "sync", "async", "sync-message")
BATCH = 1000
# consume() timeout: short, so the stop flag and the per-second report stay on time.
CONSUME_TIMEOUT_S = 0.1
# "async" commits: at most one per member per interval (and on revoke and close), as
# auto-commit does. Committing after every consume batch flooded the group coordinator on
# 3 brokers (hundreds of OffsetCommit timeouts, a member lost its session).
COMMIT_INTERVAL_S = 1.0
_key = Message.key


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


def effective_commit_mode(commit: str, config: dict[str, Any]) -> str:
    """The commit mode a member runs with: profiles such as OMB's turn auto-commit off and
    commit themselves, so "auto" with `enable.auto.commit=false` becomes "async" (otherwise
    committed offsets never move and the lag looks endless)."""
    if commit == "auto" and str(config.get("enable.auto.commit", "true")).lower() == "false":
        return "async"
    return commit


def _commit(consumer: Consumer, errors: ErrorCounts, asynchronous: bool, context: str,
            failed: dict[str, bool] | None = None) -> int:
    """Commit the consumed offsets; nothing to commit (_NO_OFFSET) is not an error.

    A failed commit (e.g. REBALANCE_IN_PROGRESS while the group rebalances) sets
    `failed["commit"]`, so the member tries again even if no message comes after it.

    Returns:
        1 when a commit was sent, else 0.
    """
    try:
        consumer.commit(asynchronous=asynchronous)
        return 1
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            errors.add_kafka(exc, context)
            if failed is not None:
                failed["commit"] = True
    except RuntimeError as exc:  # consumer closed
        errors.add_kafka(exc, context)
    return 0


def run_consumer(spec: ConsumerSpec, ctl: Control) -> None:
    """Consume until `ctl.stop` is set, then commit (per mode), leave the group and report."""
    stats = StatsCollector(client=spec.worker)
    e2e = LatencyRecorder()
    errors = ErrorCounts()
    totals = {"consumed": 0, "bytes": 0, "commits": 0}
    interval = {"consumed": 0, "bytes": 0}
    events: list[dict[str, Any]] = []
    conf = dict(spec.config)
    commit = effective_commit_mode(spec.commit, conf)

    stage = None

    def rebalance(event: str):
        def callback(c: Consumer, partitions) -> None:
            if stage is not None and event != "assign":
                stage.forget(partitions)
                if stage.p.exactly_once:
                    stage.revoked(c)
            if event == "revoke" and commit not in ("auto", "transaction") and spec.commit_on_revoke:
                # Commit what was consumed before the partitions go to another member, or
                # that member reads it again (the rebalance listener of the design source).
                totals["commits"] += _commit(c, errors, False, "commit on revoke")
            parts = sorted(f"{p.topic}:{p.partition}" for p in partitions)
            row = {"wall": time.time(), "group": spec.group, "member": spec.worker,
                   "event": event, "partitions": ",".join(parts), "count": len(parts)}
            events.append(row)
            ctl.report(Report(kind="rebalance", worker=spec.worker, role="consumer",
                              wall=row["wall"], events=[row]))
        return callback

    failed = {"commit": False}  # a commit of ours failed: try again (see the loop)

    def on_commit(err: KafkaError | None, partitions) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            errors.add_kafka(err, "offset commit")
            failed["commit"] = commit in ("sync", "async")
        for p in partitions or ():
            if p.error is not None:
                errors.add_kafka(p.error, f"offset commit {p.topic}:{p.partition}")

    if commit != "auto":
        conf["enable.auto.commit"] = False
    conf["on_commit"] = on_commit
    conf.setdefault("error_cb", lambda err: errors.add_kafka(err, "client"))
    if "statistics.interval.ms" in conf:
        conf["stats_cb"] = stats
    if spec.processing is not None:
        # Offsets are stored once a message is handled, not when consume() returns it.
        conf["enable.auto.offset.store"] = False
        if spec.processing.exactly_once:
            # Offsets commit with the stage's transactions, never by the consumer.
            conf["enable.auto.commit"] = False
            commit = "transaction"
    cpu0 = cpu_seconds(ctl.in_process)
    consumer = Consumer(conf)
    topics = list(spec.topics)
    if spec.processing is not None:
        stage = _stage(spec, consumer, ctl, errors)
        topics = list(stage.topics)
    consumer.subscribe(topics, on_assign=rebalance("assign"),
                       on_revoke=rebalance("revoke"), on_lost=rebalance("lost"))
    consume = consumer.consume
    trace = ConsumptionTrace(spec.trace) if spec.trace else None
    limit = spec.max_messages or float("inf")
    start = last_message = time.monotonic()
    next_report = time.monotonic() + 1.0
    next_commit = start + spec.commit_interval_s
    uncommitted = 0

    def report() -> None:
        counts, histograms = dict(interval), {"e2e_latency_us": e2e.encode()}
        if stage is not None:
            stage_counts, stage_histograms = stage.take_interval()
            counts.update(stage_counts)
            histograms.update(stage_histograms)
            for k, v in stage_counts.items():
                totals[k] = totals.get(k, 0) + v
        ctl.report(Report(kind="interval", worker=spec.worker, role="consumer", wall=time.time(),
                          counts=counts, histograms=histograms))
        interval.update(consumed=0, bytes=0)
        e2e.reset()

    try:
        while not ctl.stopped():
            # consume(n, timeout) waits until it has n messages or the timeout passes, which
            # would add up to the timeout to every end-to-end latency at low rates. So take
            # what is there (timeout 0) and block, when idle, on poll() for the next one.
            msgs = consume(BATCH, 0)
            if not msgs:
                first = consumer.poll(CONSUME_TIMEOUT_S)
                msgs = [first] if first is not None else msgs
            if msgs:
                now_ms = time.time() * 1000.0
                # Comprehensions over the batch: faster than map(methodcaller(...)) on 3.11+.
                good = msgs
                bad = [m for m in msgs if m.error() is not None]
                if bad:  # rare
                    good = [m for m in msgs if m.error() is None]
                    for err in (m.error() for m in bad):
                        if err.code() != KafkaError._PARTITION_EOF:
                            errors.add_kafka(err, "consume")
                n = len(good)
                if trace is not None and n:
                    trace.batch(now_ms / 1000.0, good)
                # Key + value bytes, as Kafka's ConsumerPerformance counts them (len() of a
                # message is its value's). Measured: +25 ns/message unkeyed, +50 keyed.
                nbytes = sum(map(len, good)) + sum(map(len, filter(None, map(_key, good))))
                if spec.record_latency:
                    # Kafka timestamps are whole ms, so a batch holds few distinct ones:
                    # count them in C, then record each distinct latency once with its count.
                    for (_, ts), count in Counter([m.timestamp() for m in good]).items():
                        e2e.record((now_ms - ts) * 1000.0, count)
                interval["consumed"] += n
                interval["bytes"] += nbytes
                uncommitted += n
                if stage is not None:
                    finished, commits = _process(stage, consumer, good, errors,
                                                 per_message=commit == "sync-message")
                    totals["commits"] += commits
                    if not finished:
                        break  # stopped in the middle of a message
                elif commit == "sync-message":
                    for m in good:
                        totals["commits"] += _commit_offset(consumer, errors, m.topic(),
                                                            m.partition(), m.offset() + 1, failed)
                last_message = time.monotonic()
                if totals["consumed"] + interval["consumed"] >= limit:
                    break
                if commit == "sync" and n:
                    if stage is not None:  # the batch's records acknowledged before its offsets
                        stage.flush(10.0)
                    totals["commits"] += _commit(consumer, errors, False, "offset commit", failed)
                    uncommitted = 0
            if stage is not None:
                stage.resume_due()
                if stage.due():
                    stage.commit(consumer)
            now = time.monotonic()
            if failed["commit"] and now >= next_commit:
                # The last commit failed and nothing may come to trigger the next one: the
                # group's committed offsets would stay behind until the member closes.
                failed["commit"] = False
                if stage is not None and commit != "async":
                    stage.flush(10.0)  # as before any sync commit: the records before their offsets
                totals["commits"] += _commit(consumer, errors, commit == "async", "offset commit (again)",
                                             failed)
                next_commit = now + spec.commit_interval_s
            elif commit == "async" and uncommitted and now >= next_commit:
                totals["commits"] += _commit(consumer, errors, True, "offset commit")
                uncommitted, next_commit = 0, now + spec.commit_interval_s
            if now >= next_report:
                totals["consumed"] += interval["consumed"]
                totals["bytes"] += interval["bytes"]
                report()
                next_report += 1.0
    finally:
        totals["consumed"] += interval["consumed"]
        totals["bytes"] += interval["bytes"]
        if stage is not None and stage.p.exactly_once:
            try:
                stage.commit(consumer)  # the open transaction: what was handled is done
            except Exception as exc:  # noqa: BLE001 - recorded; the report must still go out
                errors.add_kafka(exc, "final commit_transaction()")
        report()
        if stage is not None:
            # The stage's records are acknowledged before the offsets of their inputs are
            # committed at close; what is still queued is reported, not waited for.
            totals["stage_unflushed"] = stage.flush(10.0)
            totals.update({f"attempts_{k}": v for k, v in stage.attempts.items()})
        if commit not in ("auto", "transaction"):
            totals["commits"] += _commit(consumer, errors, False, "final offset commit")
        try:
            consumer.close()  # commits auto-commit offsets and leaves the group
        except Exception as exc:  # noqa: BLE001 - recorded; the report must still go out
            errors.add_kafka(exc, "close")
        if trace is not None:
            trace.close()
        cpu_s = cpu_seconds(ctl.in_process) - cpu0
        ctl.report(Report(kind="done", worker=spec.worker, role="consumer", wall=time.time(),
                          counts={**totals, "elapsed_s": last_message - start, "cpu_s": cpu_s,
                                  "in_process": int(ctl.in_process)},
                          errors=dict(errors.counts), error_messages=errors.messages,
                          stats=list(stats.samples), events=events))


def _stage(spec: ConsumerSpec, consumer: Consumer, ctl: Control, errors: ErrorCounts) -> Any:
    """The member's processing stage, with a producer when it writes records."""
    from confluent_kafka import Producer

    from kafkabench.engine.stage import Stage

    p = spec.processing
    producer = None
    if p.exactly_once or p.retry == "topics" or p.dead_letter or p.output:
        conf = dict(spec.stage_config or {})
        conf.setdefault("error_cb", lambda err: errors.add_kafka(err, "processing stage client"))
        producer = Producer(conf)
    return Stage(p, spec.topics, producer=producer, consumer=consumer, sleep=ctl.sleep,
                 on_error=errors.add_kafka, seed=zlib.crc32(spec.worker.encode()))


def _process(stage: Any, consumer: Consumer, msgs: list[Message], errors: ErrorCounts, *,
             per_message: bool = False) -> tuple[bool, int]:
    """Run the stage over a batch and store the offsets of what it handled (`per_message`:
    commit each one synchronously as well).

    Returns:
        (False when the run stopped in the middle of a message, whose offset is not stored;
        the commits sent).
    """
    from confluent_kafka import TopicPartition

    from kafkabench.engine.stage import Stopped

    if stage.p.exactly_once:
        return _process_in_transactions(stage, consumer, msgs), 0
    done: dict[tuple[str, int], int] = {}
    finished, commits = True, 0
    try:
        for m in msgs:
            if stage.is_paused(m):  # rewound earlier in this batch: read again later
                continue
            if stage.handle(m):
                done[(m.topic(), m.partition())] = m.offset() + 1
                if per_message:
                    # Its records acknowledged first, or a crash after the commit loses them.
                    stage.flush(10.0)
                    commits += _commit_offset(consumer, errors, m.topic(), m.partition(), m.offset() + 1)
    except Stopped:
        finished = False
    if done:
        try:
            consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()])
        except KafkaException as exc:  # a partition revoked meanwhile: its offsets are not ours
            if exc.args[0].code() != KafkaError._STATE:
                raise
    return finished, commits


def _process_in_transactions(stage: Any, consumer: Consumer, msgs: list[Message]) -> bool:
    """The exactly-once stage over a batch: handled messages join the open transaction; a
    failed attempt aborts it and rewinds its partitions (their later messages in this batch
    are skipped: they come again). Returns False when the run stopped mid-message."""
    from kafkabench.engine.stage import Abort, Stopped

    try:
        for m in msgs:
            if (m.topic(), m.partition()) in stage.skip:
                continue
            try:
                if stage.handle(m):
                    stage.handled(m)
            except Abort as abort:
                stage.abort(consumer)
                if not stage._sleep(abort.wait_s):
                    return False
            if stage.due():
                stage.commit(consumer)
    except Stopped:
        return False
    finally:
        stage.skip.clear()
    return True


def _commit_offset(consumer: Consumer, errors: ErrorCounts, topic: str, partition: int,
                   offset: int, failed: dict[str, bool] | None = None) -> int:
    """Commit one partition's next offset synchronously; returns 1 when it was sent. A
    failure sets `failed["commit"]` (retried by the member's loop, as `_commit`'s)."""
    from confluent_kafka import TopicPartition

    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
        return 1
    except KafkaException as exc:
        errors.add_kafka(exc, "offset commit")
        if failed is not None:
            failed["commit"] = True
    except RuntimeError as exc:  # consumer closed
        errors.add_kafka(exc, "offset commit")
    return 0
