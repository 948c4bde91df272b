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
"""

from __future__ import annotations

import array
import functools
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Producer

from kafkabench.engine.workers import Control, ErrorCounts, Report, cpu_seconds
from kafkabench.measure.stats import LatencyRecorder, StatsCollector

# How often (messages) the max-rate loop looks at the clock and the stop flag: often enough
# for 1 s intervals at 1M msgs/s, rare enough to cost nothing.
CHECK_EVERY = 256
# The max-rate loop serves delivery reports every this many sends (poll(0)). A report's
# publish latency is taken when it is served, so this adds at most POLL_EVERY sends' time
# (~50 us) to it; polling after every send cost ~0.35 us per message (measured 2.12 vs
# 1.78 us of Python time per 100 B message).
POLL_EVERY = 32
# Raw publish latencies are turned into histogram counts once a second, or sooner when this
# many are waiting: at ~800k msgs/s a second's worth of Python floats held ~25 MB more.
RECORD_EVERY = 65536
# Rate-controlled sends: the shortest and longest sleep between due messages (poll() counts
# whole milliseconds), and the most messages sent at once when the loop is behind.
MIN_WAIT_S = 0.001
MAX_WAIT_S = 0.05
MAX_BURST = 1024
# After the last send, how long delivery reports may take: the producer's message.timeout.ms
# bounds it; this is the extra allowance for the final flush.
FLUSH_MARGIN_S = 5.0
# init_transactions() and abort_transaction(): at most this long (a dead coordinator is an
# error, never a hang); commit_transaction() flushes, so it gets the final flush's timeout.
TXN_TIMEOUT_S = 30.0
# A commit that fails with a retriable error (a timeout) is tried this many times in all.
COMMIT_ATTEMPTS = 3
#: The header that carries a verified message's producer id and sequence number:
#: the 12-byte `ProducerSpec.verify_id`, then the sequence, 8 bytes big-endian.
VERIFY_HEADER = "kb-seq"
VERIFY_ID_BYTES = 12
# Delivery outcome of each verified message (`DeliveryLedger.status`).
NO_OUTCOME, ACKED, FAILED = 0, 1, 2


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


class DeliveryLedger:
    """What became of every message of one verified producer: acked or failed, where.

    Arrays indexed by sequence number (3 bytes a message: 30 MB for 10 million), grown by
    doubling; a bytearray and an `array` because a delivery callback sets one item at a time
    (a numpy item assignment costs several times more).
    """

    __slots__ = ("partition", "status")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.status = bytearray(capacity)
        self.partition = array.array("h", [-1]) * capacity

    def reserve(self, n: int) -> None:
        """Make room for sequence numbers below `n`."""
        size = len(self.status)
        if n <= size:
            return
        more = max(n, size * 2) - size
        self.status.extend(bytes(more))
        self.partition.extend(array.array("h", [-1]) * more)

    def record(self, seq: int, ok: bool, partition: int) -> None:
        """One delivery report (or a refusal: `ok` False, partition -1)."""
        self.status[seq] = ACKED if ok else FAILED
        self.partition[seq] = partition

    def part(self, worker: str, verify_id: bytes, topics: tuple[str, ...], sent: int) -> dict[str, Any]:
        """The ledger as it travels to the parent: arrays zlib-compressed, cut to `sent`."""
        status = np.frombuffer(self.status, np.uint8)[:sent]
        partition = np.frombuffer(self.partition, np.int16)[:sent]
        return {"producer": worker, "id": verify_id, "topics": topics, "sent": sent,
                "status": zlib.compress(status.tobytes(), 1),
                "partition": zlib.compress(partition.tobytes(), 1)}


def verify_header(verify_id: bytes, seq: int) -> tuple[str, bytes]:
    """The `VERIFY_HEADER` of message `seq` of producer `verify_id`."""
    return VERIFY_HEADER, verify_id + seq.to_bytes(8, "big")


@dataclass(slots=True)
class _Tally:
    """Counters the delivery callback updates (callbacks record failures and never raise)."""

    delivered: int = 0
    failed: int = 0
    bytes: int = 0
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    latencies: list = field(default_factory=list)  # seconds, until the next report
    delay: LatencyRecorder = field(default_factory=LatencyRecorder)
    ledger: DeliveryLedger | None = None
    acks: Counter | None = None  # (topic, partition, centisecond) -> n, until the next report
    error_times: Counter | None = None  # (second, error name) -> n, until the next report


def _delivery_callback(tally: _Tally, record_latency: bool):
    append = tally.latencies.append
    if tally.acks is not None and tally.ledger is None:
        return _traced_delivery_callback(tally, record_latency)

    def on_delivery(err: KafkaError | None, msg) -> None:
        if err is None:
            tally.delivered += 1
            tally.bytes += len(msg)
            if record_latency:
                # msg.latency(): seconds from produce() to this report, measured by librdkafka.
                append(msg.latency())
        else:
            tally.failed += 1
            tally.errors.add_kafka(err, "delivery")

    return on_delivery


def _traced_delivery_callback(tally: _Tally, record_latency: bool):
    """The delivery callback of a verified or timed run: also the ledger and the timelines.

    A verified message's callback is `functools.partial(on_delivery, seq)` (delivery
    reports carry no headers to read the sequence number back from); otherwise seq is None.
    """
    append, ledger, acks, error_times = (tally.latencies.append, tally.ledger, tally.acks,
                                         tally.error_times)

    def on_delivery(seq: int | None, err: KafkaError | None, msg) -> None:
        if seq is not None:
            ledger.record(seq, err is None, msg.partition())
        now = time.time()
        if err is None:
            tally.delivered += 1
            tally.bytes += len(msg)
            if record_latency:
                append(msg.latency())
            if acks is not None:
                acks[(msg.topic(), msg.partition(), int(now * 100))] += 1
        else:
            tally.failed += 1
            tally.errors.add_kafka(err, "delivery")
            if error_times is not None:
                error_times[(int(now), err.name())] += 1

    if ledger is not None:
        return on_delivery
    return functools.partial(on_delivery, None)


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
    """
    stats = StatsCollector(client=spec.worker)
    conf = dict(spec.config)
    if "statistics.interval.ms" in conf:
        conf["stats_cb"] = stats
    tally = _Tally()
    if spec.verify_id is not None:
        tally.ledger = DeliveryLedger(_expected_messages(spec))
    if spec.timeline:
        tally.acks, tally.error_times = Counter(), Counter()
    # The producer-wide delivery callback, not a per-message on_delivery= argument: with
    # no keyword arguments at all, produce() costs ~0.5 us less per message (measured).
    conf["on_delivery"] = _delivery_callback(tally, spec.record_latency)
    # Verified messages each get their own callback that knows their sequence number.
    verified_cb = (_traced_delivery_callback(tally, spec.record_latency)
                   if tally.ledger is not None else None)
    conf.setdefault("error_cb", lambda err: tally.errors.add_kafka(err, "client"))
    producer = Producer(conf)
    produce, poll = producer.produce, producer.poll
    txn = (_Transactions(producer, spec.transaction_messages, _flush_timeout(spec.config), tally)
           if spec.transaction_messages > 0 else None)
    if txn is not None:
        txn.init()
    topics, payloads, keys = spec.topics, spec.payloads, spec.keys
    n_topics, n_payloads = len(topics), len(payloads)
    n_keys = len(keys) if keys else 0
    partition_fn = spec.partitioner.partition if spec.partitioner is not None else None
    rate = spec.rate
    limit = spec.max_messages if spec.max_messages is not None else float("inf")
    buffer_full = 0
    sent = 0
    last_reported = {"sent": 0, "delivered": 0, "failed": 0, "bytes": 0}

    headers = list(spec.headers) if spec.headers else None
    verify_id, ledger = spec.verify_id, tally.ledger
    # Max rate, no headers, no partitioner: produce(topic, value, key) will do.
    bare = partition_fn is None and headers is None and rate <= 0 and verify_id is None
    ctl.wait_start(spec.worker, "producer")
    cpu0 = cpu_seconds(ctl.in_process)
    start, wall_start = time.monotonic(), time.time()
    end = start + spec.duration_s
    next_report = start + 1.0
    interval_s = 1.0 / rate if rate > 0 else 0.0

    pending = tally.latencies
    # Rate-controlled sends, per burst: (seconds since start when the burst was out, first
    # message index, end index). Message i was due at i * interval_s, so its publish delay
    # is the burst's time minus that (an upper bound, by the burst's own few microseconds),
    # turned into histogram counts in one numpy pass instead of ~1.5 us per message.
    bursts: list[tuple[float, int, int]] = []

    def bin_pending() -> None:
        tally.latency.record_many(pending, scale=1e6)
        pending.clear()
        if bursts:
            rows = np.array(bursts, dtype=np.float64)
            counts = (rows[:, 2] - rows[:, 1]).astype(np.int64)
            first, end = int(rows[0, 1]), int(rows[-1, 2])
            delays = np.repeat(rows[:, 0], counts) - np.arange(first, end) * interval_s
            np.maximum(delays, 1e-6, out=delays)  # on time: recorded as 1 us
            tally.delay.record_many(delays, scale=1e6)
            bursts.clear()

    def report(kind: str, now: float) -> None:
        bin_pending()
        row = {"sent": sent, "delivered": tally.delivered, "failed": tally.failed,
               "bytes": tally.bytes}
        histograms = {"publish_latency_us": tally.latency.encode(),
                      "publish_delay_us": tally.delay.encode()}
        if txn is not None:
            row.update(txn.counts())
            histograms["transaction_latency_us"] = txn.latency.encode()
            txn.latency.reset()
        ctl.report(Report(kind=kind, worker=spec.worker, role="producer", wall=time.time(),
                          counts={k: row[k] - last_reported.get(k, 0) for k in row},
                          histograms=histograms, extras=_timeline_extras(tally)))
        last_reported.update(row)
        tally.latency.reset()
        tally.delay.reset()

    stopped_by_error = True
    try:
        while sent < limit and not ctl.stopped():
            now = time.monotonic()
            if len(pending) >= RECORD_EVERY or len(bursts) >= RECORD_EVERY:
                bin_pending()
            if now >= next_report:
                report("interval", now)
                next_report += 1.0
            if now >= end:
                break
            if rate > 0:
                # Every message whose intended send time has come goes now; then sleep in
                # poll() (which serves delivery reports) until the next one is due. poll()'s
                # timeout has millisecond resolution and a shorter one is 0: waiting in
                # sub-millisecond steps spun a whole core at 20,000 msgs/s.
                due = min(limit, int((now - start) * rate) + 1)
                if due <= sent:
                    poll(min(max(start + sent * interval_s - now, MIN_WAIT_S), MAX_WAIT_S))
                    continue
                burst = min(due - sent, MAX_BURST)
            else:
                burst = CHECK_EVERY
            if txn is not None:
                # A burst never crosses a transaction's end: no per-message check.
                if not txn.is_open:
                    txn.begin(sent)
                burst = min(burst, txn.first + txn.size - sent)
            first = sent
            if ledger is not None:
                ledger.reserve(sent + burst)
            for _ in range(burst):
                key = keys[sent % n_keys] if n_keys else None
                try:
                    if verify_id is not None:
                        produce(topics[sent % n_topics], payloads[sent % n_payloads], key,
                                partition=partition_fn(key) if partition_fn else -1,
                                timestamp=(int((wall_start + sent * interval_s) * 1000)
                                           if rate > 0 else 0),
                                headers=[*(spec.headers or ()), verify_header(verify_id, sent)],
                                on_delivery=functools.partial(verified_cb, sent))
                    elif bare:
                        produce(topics[sent % n_topics], payloads[sent % n_payloads], key)
                    elif rate > 0:
                        # The Kafka timestamp is the intended send time: consumers'
                        # end-to-end latency then includes any time the producer fell
                        # behind its schedule (the coordinated-omission correction).
                        produce(topics[sent % n_topics], payloads[sent % n_payloads], key,
                                partition=partition_fn(key) if partition_fn else -1,
                                timestamp=int((wall_start + sent * interval_s) * 1000),
                                headers=headers)
                    else:
                        produce(topics[sent % n_topics], payloads[sent % n_payloads], key,
                                partition=partition_fn(key) if partition_fn else -1,
                                headers=headers)
                except BufferError:
                    # Local queue full (queue.buffering.max.messages/kbytes): wait for
                    # deliveries to free room, then retry the same message.
                    buffer_full += 1
                    poll(0.005)
                    continue
                except KafkaException as exc:
                    # Refused before it was queued: count it (produced == delivered + failed)
                    # and stop; the runner reports the error code and message.
                    tally.failed += 1
                    tally.errors.add_kafka(
                        exc, f"produce() refused a {len(payloads[sent % n_payloads]):,} B message")
                    if ledger is not None:
                        ledger.record(sent, False, -1)
                    sent += 1
                    raise _Refused() from exc
                sent += 1
                if not sent % POLL_EVERY:
                    poll(0)  # serve delivery reports without ever waiting
                if sent >= limit:
                    break
            if rate > 0:
                bursts.append((time.monotonic() - start, first, sent))
                poll(0)
            if txn is not None and sent - txn.first >= txn.size:
                txn.commit(sent)
        stopped_by_error = False
    except _Refused:
        pass
    finally:
        elapsed = time.monotonic() - start
        failure = txn.finish(sent, ok=not stopped_by_error) if txn is not None else None
        remaining = producer.flush(_flush_timeout(spec.config))
        if remaining:
            # Still queued after message.timeout.ms: a dead broker. Purge, so every message
            # is accounted for as delivered or failed, never left in limbo.
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(5)
        drained = time.monotonic() - start
        cpu_s = cpu_seconds(ctl.in_process) - cpu0
        report("interval", time.monotonic())
        ctl.report(Report(kind="done", worker=spec.worker, role="producer", wall=time.time(),
                          counts={"sent": sent, "delivered": tally.delivered,
                                  "failed": tally.failed, "bytes": tally.bytes,
                                  "buffer_full": buffer_full, "elapsed_s": elapsed,
                                  "drained_s": drained, "cpu_s": cpu_s,
                                  "in_process": int(ctl.in_process),
                                  **(txn.counts() if txn is not None else {})},
                          errors=dict(tally.errors.counts),
                          error_messages=tally.errors.messages, stats=list(stats.samples),
                          extras=({"verify": ledger.part(spec.worker, verify_id, topics, sent)}
                                  if ledger is not None else {})))
    if failure is not None:  # the final commit or abort (an error in the loop is raised as is)
        raise failure


def _expected_messages(spec: ProducerSpec) -> int:
    """How many messages the ledger should first make room for (it grows if need be)."""
    if spec.max_messages is not None:
        return max(1, min(spec.max_messages, 1 << 24))
    if spec.rate > 0:
        return max(1 << 10, min(int(spec.rate * min(spec.duration_s, 3600)) + 1, 1 << 24))
    return 1 << 16


def _timeline_extras(tally: _Tally) -> dict[str, Any]:
    """The interval's acknowledgement and error timelines (then cleared), if recorded."""
    if tally.acks is None:
        return {}
    extras = {"acks": dict(tally.acks), "errors": dict(tally.error_times)}
    tally.acks.clear()
    tally.error_times.clear()
    return extras


class _Refused(Exception):
    """produce() refused a message: the send loop ends."""


class _TransactionFailed(Exception):
    """A transaction could be neither committed nor aborted: the producer stops, and fails."""


class _Transactions:
    """A transactional producer's transactions: one per `size` sends, committed or aborted.

    Errors go to the tally (recorded, never lost); what cannot be recovered from raises
    `_TransactionFailed`: the producer ends its run cleanly (final reports), then fails.
    """

    __slots__ = ("aborted", "aborted_messages", "committed", "commit_timeout_s", "first",
                 "is_open", "latency", "producer", "size", "tally")

    def __init__(self, producer: Producer, size: int, commit_timeout_s: float, tally: _Tally) -> None:
        self.producer, self.size, self.tally = producer, size, tally
        self.commit_timeout_s = commit_timeout_s
        self.committed = self.aborted = self.aborted_messages = 0
        self.first = 0  # the send count when the open transaction began
        self.is_open = False
        self.latency = LatencyRecorder()

    def init(self) -> None:
        """Register the transactional.id with its coordinator (fencing an older producer)."""
        self.producer.init_transactions(TXN_TIMEOUT_S)

    def begin(self, sent: int) -> None:
        """Open a transaction; its first message is the next one sent."""
        self.producer.begin_transaction()
        self.first, self.is_open = sent, True

    def commit(self, sent: int) -> None:
        """Commit the open transaction (flushing its messages), or abort it when it must be.

        Raises:
            _TransactionFailed: a fatal error, or retriable ones `COMMIT_ATTEMPTS` times.
        """
        t0 = time.perf_counter()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self.producer.commit_transaction(self.commit_timeout_s)
            except KafkaException as exc:
                err = exc.args[0]
                self.tally.errors.add_kafka(exc, f"commit_transaction() (attempt {attempt})")
                if err.txn_requires_abort():
                    self.abort(sent)
                    return
                if err.retriable() and attempt < COMMIT_ATTEMPTS:
                    continue
                raise _TransactionFailed(f"commit_transaction() failed: {err.name()}: "
                                         f"{err.str()}") from exc
            self.latency.record((time.perf_counter() - t0) * 1e6)
            self.committed += sent > self.first  # an empty one (nothing sent) is not counted
            self.is_open = False
            return

    def abort(self, sent: int) -> None:
        """Abort the open transaction: its queued messages are purged (failed), the rest stay
        in the log, marked aborted.

        Raises:
            _TransactionFailed: the abort itself failed.
        """
        try:
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:
            self.tally.errors.add_kafka(exc, "abort_transaction()")
            err = exc.args[0]
            raise _TransactionFailed(f"abort_transaction() failed: {err.name()}: "
                                     f"{err.str()}") from exc
        self.aborted += 1
        self.aborted_messages += sent - self.first
        self.is_open = False

    def finish(self, sent: int, ok: bool) -> _TransactionFailed | None:
        """At the end: commit the open transaction, or abort it when the run stopped on an
        error. Never raises: what fails is recorded, and returned."""
        if not self.is_open:
            return None
        try:
            if ok:
                self.commit(sent)
            else:
                self.abort(sent)
        except _TransactionFailed as exc:
            return exc
        return None

    def counts(self) -> dict[str, int]:
        """The running totals reported."""
        return {"transactions_committed": self.committed, "transactions_aborted": self.aborted,
                "aborted_messages": self.aborted_messages}


def _flush_timeout(config: dict[str, Any]) -> float:
    return float(config.get("message.timeout.ms", 300_000)) / 1000.0 + FLUSH_MARGIN_S
