"""The consumer runner: one member of a consumer group, with the batch consume API.

Each member reports once a second: messages and bytes consumed and the interval's end-to-end
latency histogram (receive time minus the message's Kafka timestamp, which the producer sets
to the intended send time in rate-controlled runs), plus every rebalance it sees.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError

from kafkabench.stats import LatencyRecorder, StatsCollector
from kafkabench.workers import Control, Report

COMMIT_MODES = ("auto", "sync", "async")
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
        commit: "auto" (enable.auto.commit), "sync" or "async" (commit after each batch).
        record_latency: record end-to-end latency per message.
        max_messages: stop after consuming this many (None: until stopped).
    """

    worker: str
    group: str
    config: dict[str, Any]
    topics: tuple[str, ...]
    commit: str = "auto"
    record_latency: bool = True
    max_messages: int | None = None


def run_consumer(spec: ConsumerSpec, ctl: Control) -> None:
    """Consume until `ctl.stop` is set, then commit (per mode), leave the group and report."""
    stats = StatsCollector(client=spec.worker)
    e2e = LatencyRecorder()
    errors: Counter = Counter()
    totals = {"consumed": 0, "bytes": 0}
    interval = {"consumed": 0, "bytes": 0}
    events: list[dict[str, Any]] = []

    def rebalance(event: str):
        def callback(consumer: Consumer, partitions) -> None:
            parts = sorted(f"{p.topic}:{p.partition}" for p in partitions)
            row = {"wall": time.time(), "group": spec.group, "member": spec.worker,
                   "event": event, "partitions": ",".join(parts), "count": len(parts)}
            events.append(row)
            ctl.report(Report(kind="rebalance", worker=spec.worker, role="consumer",
                              wall=row["wall"], events=[row]))
        return callback

    conf = dict(spec.config)
    commit = spec.commit
    if commit == "auto" and str(conf.get("enable.auto.commit", "true")).lower() == "false":
        # Profiles such as OMB's turn auto-commit off and commit themselves: do the same,
        # or committed offsets never move and the lag looks endless.
        commit = "async"
    if commit != "auto":
        conf["enable.auto.commit"] = False
    if "statistics.interval.ms" in conf:
        conf["stats_cb"] = stats
    consumer = Consumer(conf)
    consumer.subscribe(list(spec.topics), on_assign=rebalance("assign"),
                       on_revoke=rebalance("revoke"), on_lost=rebalance("lost"))
    consume = consumer.consume
    limit = spec.max_messages or float("inf")
    start = last_message = time.monotonic()
    next_report = time.monotonic() + 1.0

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
                            errors[err.name()] += 1
                n = len(good)
                nbytes = sum(map(len, good))
                if spec.record_latency:
                    # Kafka timestamps are whole ms, so a batch holds few distinct ones:
                    # count them in C, then record each distinct latency once with its count.
                    for (_, ts), count in Counter([m.timestamp() for m in good]).items():
                        e2e.record((now_ms - ts) * 1000.0, count)
                interval["consumed"] += n
                interval["bytes"] += nbytes
                last_message = time.monotonic()
                if totals["consumed"] + interval["consumed"] >= limit:
                    break
                if commit == "sync" and n:
                    consumer.commit(asynchronous=False)
                elif commit == "async" and n:
                    consumer.commit(asynchronous=True)
            if time.monotonic() >= next_report:
                totals["consumed"] += interval["consumed"]
                totals["bytes"] += interval["bytes"]
                report()
                next_report += 1.0
    finally:
        totals["consumed"] += interval["consumed"]
        totals["bytes"] += interval["bytes"]
        report()
        try:
            if commit != "auto":
                consumer.commit(asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - nothing to commit, or broker gone: recorded
            errors[type(exc).__name__] += 1
        consumer.close()  # commits auto-commit offsets and leaves the group
        ctl.report(Report(kind="done", worker=spec.worker, role="consumer", wall=time.time(),
                          counts={**totals, "elapsed_s": last_message - start}, errors=dict(errors), stats=list(stats.samples),
                          events=events))
