"""The consumer runner: one member of a consumer group, with the batch consume API.

Each member reports once a second: messages and bytes (keys + values) consumed and the
interval's end-to-end latency histogram (receive time minus the message's Kafka timestamp,
which the producer sets to the intended send time in rate-controlled runs), plus every
rebalance it sees.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from kafkabench.errors import ConfigError
from kafkabench.stats import LatencyRecorder, StatsCollector
from kafkabench.workers import Control, ErrorCounts, Report, cpu_seconds

COMMIT_MODES = ("auto", "sync", "async")
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
            auto-commit off), "sync" (after each consume batch) or "async" (every
            `commit_interval_s`); "sync" and "async" also commit on revoke and close.
        record_latency: record end-to-end latency per message.
        max_messages: stop after consuming this many (None: until stopped).
        commit_interval_s: seconds between "async" commits.
    """

    worker: str
    group: str
    config: dict[str, Any]
    topics: tuple[str, ...]
    commit: str = "auto"
    record_latency: bool = True
    max_messages: int | None = None
    commit_interval_s: float = COMMIT_INTERVAL_S

    def __post_init__(self) -> None:
        check_commit_mode(self.commit, f"consumer {self.worker!r}: commit")


def effective_commit_mode(commit: str, config: dict[str, Any]) -> str:
    """The commit mode a member runs with: profiles such as OMB's turn auto-commit off and
    commit themselves, so "auto" with `enable.auto.commit=false` becomes "async" (otherwise
    committed offsets never move and the lag looks endless)."""
    if commit == "auto" and str(config.get("enable.auto.commit", "true")).lower() == "false":
        return "async"
    return commit


def _commit(consumer: Consumer, errors: ErrorCounts, asynchronous: bool, context: str) -> int:
    """Commit the consumed offsets; nothing to commit (_NO_OFFSET) is not an error.

    Returns:
        1 when a commit was sent, else 0.
    """
    try:
        consumer.commit(asynchronous=asynchronous)
        return 1
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            errors.add_kafka(exc, context)
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

    def rebalance(event: str):
        def callback(c: Consumer, partitions) -> None:
            if event == "revoke" and commit != "auto":
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

    def on_commit(err: KafkaError | None, partitions) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            errors.add_kafka(err, "offset commit")
        for p in partitions or ():
            if p.error is not None:
                errors.add_kafka(p.error, f"offset commit {p.topic}:{p.partition}")

    if commit != "auto":
        conf["enable.auto.commit"] = False
    conf["on_commit"] = on_commit
    conf.setdefault("error_cb", lambda err: errors.add_kafka(err, "client"))
    if "statistics.interval.ms" in conf:
        conf["stats_cb"] = stats
    cpu0 = cpu_seconds(ctl.in_process)
    consumer = Consumer(conf)
    consumer.subscribe(list(spec.topics), on_assign=rebalance("assign"),
                       on_revoke=rebalance("revoke"), on_lost=rebalance("lost"))
    consume = consumer.consume
    limit = spec.max_messages or float("inf")
    start = last_message = time.monotonic()
    next_report = time.monotonic() + 1.0
    next_commit = start + spec.commit_interval_s
    uncommitted = 0

    def report() -> None:
        ctl.report(Report(kind="interval", worker=spec.worker, role="consumer", wall=time.time(),
                          counts=dict(interval), histograms={"e2e_latency_us": e2e.encode()}))
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
                last_message = time.monotonic()
                if totals["consumed"] + interval["consumed"] >= limit:
                    break
                if commit == "sync" and n:
                    totals["commits"] += _commit(consumer, errors, False, "offset commit")
                    uncommitted = 0
            now = time.monotonic()
            if commit == "async" and uncommitted and now >= next_commit:
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
        report()
        if commit != "auto":
            totals["commits"] += _commit(consumer, errors, False, "final offset commit")
        try:
            consumer.close()  # commits auto-commit offsets and leaves the group
        except Exception as exc:  # noqa: BLE001 - recorded; the report must still go out
            errors.add_kafka(exc, "close")
        cpu_s = cpu_seconds(ctl.in_process) - cpu0
        ctl.report(Report(kind="done", worker=spec.worker, role="consumer", wall=time.time(),
                          counts={**totals, "elapsed_s": last_message - start, "cpu_s": cpu_s,
                                  "in_process": int(ctl.in_process)},
                          errors=dict(errors.counts), error_messages=errors.messages,
                          stats=list(stats.samples), events=events))
