"""The producer runner: one producer's send loop, at a fixed rate or as fast as it can go.

A worker runs in a thread or a process (see `kafkabench.workers`) and reports once a second:
counts, bytes and the interval's HdrHistograms (encoded), so the parent merges exact
percentiles across producers. It records, as OpenMessaging Benchmark does:

- publish latency: produce() to delivery report (librdkafka's own `msg.latency()`);
- publish delay: intended send time to actual send time, for rate-controlled runs (the
  coordinated-omission correction: a producer that falls behind shows it here, instead of
  silently sending fewer messages).

In rate-controlled runs the Kafka timestamp of each message is its *intended* send time, so
the consumers' end-to-end latency is corrected for coordinated omission as well.

A transactional producer (`ProducerSpec.transaction_messages` > 0) commits after every that
many sends and records each commit_transaction() call's time (`transaction_latency_us`).
Its `delivered` and `failed` count delivery reports as for any producer: the messages of a
transaction it aborted were written to the log (and got successful delivery reports) unless
the abort purged them first (failed, `_PURGE_QUEUE`), so they count as delivered, although
read_committed consumers never see them; `aborted_messages` counts every message sent in an
aborted transaction, `transactions_committed` and `transactions_aborted` the transactions.

`run_producer` composes the loop, as OpenMessaging Benchmark's `MessageProducer` composes a
rate limiter, a sender and a stats recorder, of parts chosen once before it, each in its
module: a pacer (`pacing`), a send loop (`sending`), the transactions or their null object
(`transactions`), the delivery recorder (`delivery`) and the interval reporter
(`producer_reports`). The loop calls each once per burst and tests no feature per message.

May import: `kafkabench.measure`, the engine's `workers` and the producer's parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from kafkabench.engine.delivery import (
    ACKED,
    FAILED,
    NO_OUTCOME,
    VERIFY_HEADER,
    VERIFY_ID_BYTES,
    DeliveryLedger,
    DeliveryRecorder,
    verify_header,
)
from kafkabench.engine.pacing import (
    CHECK_EVERY,
    MAX_BURST,
    MAX_WAIT_S,
    MIN_WAIT_S,
    FixedRate,
    MaxRate,
    Pacer,
)
from kafkabench.engine.producer_reports import RECORD_EVERY, IntervalReporter
from kafkabench.engine.sending import POLL_EVERY, Refused, Sender, sender_for
from kafkabench.engine.transactions import COMMIT_ATTEMPTS, TXN_TIMEOUT_S, NoTransactions, Transactions
from kafkabench.engine.workers import Control, Report, cpu_seconds
from kafkabench.measure.stats import StatsCollector

__all__ = ["ACKED", "CHECK_EVERY", "COMMIT_ATTEMPTS", "FAILED", "FLUSH_MARGIN_S", "MAX_BURST",
           "MAX_WAIT_S", "MIN_WAIT_S", "NO_OUTCOME", "POLL_EVERY", "RECORD_EVERY", "TXN_TIMEOUT_S",
           "VERIFY_HEADER", "VERIFY_ID_BYTES", "DeliveryLedger", "ProducerSpec", "run_producer",
           "verify_header"]

# After the last send, how long delivery reports may take: the producer's message.timeout.ms
# bounds it; this is the extra allowance for the final flush.
FLUSH_MARGIN_S = 5.0


@dataclass(frozen=True, slots=True)
class ProducerSpec:
    """Everything one producer worker needs; picklable for a worker process.

    Attributes:
        worker: name of this producer, e.g. "producer-0".
        config: confluent-kafka producer config (bootstrap included).
        topics: topics this producer writes to (round-robin over them per message).
        payloads: payload pool; messages cycle through it.
        keys: key sequence (cycled), or None for keyless messages.
        rate: messages/s for this producer; 0 means as fast as possible.
        duration_s: how long to send (after `start_at`).
        max_messages: stop after this many sends (None: duration only).
        record_latency: record publish latency per message (off only to measure its cost).
        partitioner: a custom `kafkabench.partitioning` strategy choosing each partition in
            Python (None: librdkafka's `partitioner` setting decides).
        headers: headers sent with every message.
        verify_id: 12 bytes naming this producer in this run; when set, every message
            carries `VERIFY_HEADER` (the id and its sequence number) and the final report
            has the delivery ledger (`Report.extras["verify"]`, see `DeliveryLedger.part`).
        timeline: report acknowledgements per 10 ms and partition, and delivery errors per
            second and code (`Report.extras["acks"]`, `["errors"]`), for recovery figures.
        transaction_messages: send in transactions of this many messages (`config` then
            holds a `transactional.id`); 0: no transactions.
    """

    worker: str
    config: dict[str, Any]
    topics: tuple[str, ...]
    payloads: tuple[bytes, ...]
    keys: tuple[bytes, ...] | None = None
    rate: float = 0.0
    duration_s: float = 10.0
    max_messages: int | None = None
    record_latency: bool = True
    partitioner: Any = None
    headers: tuple[tuple[str, bytes], ...] | None = None
    verify_id: bytes | None = None
    timeline: bool = False
    transaction_messages: int = 0


def run_producer(spec: ProducerSpec, ctl: Control) -> None:
    """Run one producer until its duration, message cap or `ctl.stop` is reached.

    Reports go to `ctl.report`: an "interval" report each second and a final "done" report
    with the totals, error counts and the worker's CPU time. At the end produced ==
    delivered + failed: whatever is still queued after the flush is purged and counted as
    failed. A message that produce() itself refuses (too large, unknown partition) stops the
    producer: every later message would be refused the same way.

    With `spec.transaction_messages`, messages go in transactions of that many (the last may
    be shorter), each begun before its first message and committed after its last; at the
    end the open one is committed, or aborted when the producer stopped on an error. A commit
    that needs an abort is aborted (and the producer goes on), a retriable failure retried;
    a fatal one (e.g. fenced by another producer with the same transactional.id) is recorded
    and stops the producer, which then fails (after its final reports): the run is incomplete.

    Args:
        spec: what to send, how fast, with which features.
        ctl: the worker's start and stop flags and report channel.

    Raises:
        TransactionFailed: the final commit or abort failed (an error in the loop is raised
            as is).
    """
    stats = StatsCollector(client=spec.worker)
    recorder = DeliveryRecorder(spec.record_latency, spec.timeline, _ledger(spec))
    producer = Producer(_client_config(spec, stats, recorder))
    transactions = (Transactions(producer, spec.transaction_messages, _flush_timeout(spec.config),
                                 recorder.errors)
                    if spec.transaction_messages > 0 else NoTransactions())
    transactions.init()
    limit = spec.max_messages if spec.max_messages is not None else float("inf")
    pacer = (FixedRate(spec.rate, spec.duration_s, producer.poll, limit) if spec.rate > 0
             else MaxRate(spec.duration_s, limit))
    ctl.wait_start(spec.worker, "producer")
    cpu0 = cpu_seconds(ctl.in_process)
    start = pacer.start()
    sender = _sender(spec, producer, pacer, recorder)
    reporter = IntervalReporter(spec.worker, ctl, sender, recorder, pacer, transactions, start)
    ok = False
    try:
        _send_until_done(pacer, sender, transactions, reporter, ctl)
        ok = True
    except Refused:
        pass
    finally:
        elapsed = time.monotonic() - start
        failure = transactions.finish(sender.sent, ok=ok)
        _drain(producer, spec.config)
        drained = time.monotonic() - start
        cpu_s = cpu_seconds(ctl.in_process) - cpu0
        reporter.report()
        ctl.report(_final_report(spec, sender, recorder, transactions, stats,
                                 {"elapsed_s": elapsed, "drained_s": drained, "cpu_s": cpu_s,
                                  "in_process": int(ctl.in_process)}))
    if failure is not None:  # the final commit or abort (an error in the loop is raised as is)
        raise failure


def _send_until_done(pacer: Pacer, sender: Sender,
                     transactions: Transactions | NoTransactions, reporter: IntervalReporter,
                     ctl: Control) -> None:
    """The hot loop: per burst, one call to each part; the per-message loop is the sender's."""
    clock, stopped, limit = time.monotonic, ctl.stopped, pacer.limit
    while sender.sent < limit and not stopped():
        now = clock()
        reporter.tick(now)
        if now >= pacer.end_s:
            return
        burst = pacer.burst(now, sender.sent)
        if burst:
            first = sender.sent
            sender.send(transactions.room(first, burst))
            pacer.sent(first, sender.sent)
            transactions.after(sender.sent)


def _sender(spec: ProducerSpec, producer: Producer, pacer: Pacer,
            recorder: DeliveryRecorder) -> Sender:
    """The send loop for this spec's shape of message (chosen once, before the loop)."""
    return sender_for(producer, spec.topics, spec.payloads, spec.keys, recorder.refused,
                      origin_s=pacer.origin_s, interval_s=pacer.interval_s,
                      partitioner=spec.partitioner.partition if spec.partitioner is not None else None,
                      headers=list(spec.headers) if spec.headers else None,
                      verify=((spec.verify_id, recorder.ledger, recorder.on_verified)
                              if spec.verify_id is not None else None))


def _client_config(spec: ProducerSpec, stats: StatsCollector, recorder: DeliveryRecorder) -> dict[str, Any]:
    """The confluent-kafka config: the spec's, with the recorder's callbacks."""
    conf = dict(spec.config)
    if "statistics.interval.ms" in conf:
        conf["stats_cb"] = stats
    # The producer-wide delivery callback, not a per-message on_delivery= argument: with
    # no keyword arguments at all, produce() costs ~0.5 us less per message (measured).
    conf["on_delivery"] = recorder.callback
    conf.setdefault("error_cb", recorder.on_client_error)
    return conf


def _ledger(spec: ProducerSpec) -> DeliveryLedger | None:
    """A verified producer's delivery ledger (None: not verified)."""
    return DeliveryLedger(_expected_messages(spec)) if spec.verify_id is not None else None


def _expected_messages(spec: ProducerSpec) -> int:
    """How many messages the ledger should first make room for (it grows if need be)."""
    if spec.max_messages is not None:
        return max(1, min(spec.max_messages, 1 << 24))
    if spec.rate > 0:
        return max(1 << 10, min(int(spec.rate * min(spec.duration_s, 3600)) + 1, 1 << 24))
    return 1 << 16


def _drain(producer: Producer, config: dict[str, Any]) -> None:
    """Wait for the last delivery reports; purge what is still queued after that."""
    remaining = producer.flush(_flush_timeout(config))
    if remaining:
        # Still queued after message.timeout.ms: a dead broker. Purge, so every message
        # is accounted for as delivered or failed, never left in limbo.
        producer.purge(in_queue=True, in_flight=True)
        producer.flush(5)


def _final_report(spec: ProducerSpec, sender: Sender, recorder: DeliveryRecorder,
                  transactions: Transactions | NoTransactions, stats: StatsCollector,
                  times: dict[str, Any]) -> Report:
    """The "done" report: totals, the run's times and CPU, errors, and the ledger if verified."""
    ledger = recorder.ledger
    return Report(kind="done", worker=spec.worker, role="producer", wall=time.time(),
                  counts={"sent": sender.sent, "delivered": recorder.delivered,
                          "failed": recorder.failed, "bytes": recorder.bytes,
                          "buffer_full": sender.buffer_full, **times,
                          **transactions.counts()},
                  errors=dict(recorder.errors.counts), error_messages=recorder.errors.messages,
                  stats=list(stats.samples),
                  extras=({"verify": ledger.part(spec.worker, spec.verify_id, spec.topics, sender.sent)}
                          if ledger is not None else {}))


def _flush_timeout(config: dict[str, Any]) -> float:
    return float(config.get("message.timeout.ms", 300_000)) / 1000.0 + FLUSH_MARGIN_S
