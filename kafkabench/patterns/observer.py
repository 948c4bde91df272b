"""The design source's service patterns as a consumer-group processing stage.

A `Processing` (the `processing` section of a workload) says what a consumer member does with
each message: spend `time_ms` on it, drop it (filtering), fail on it (injected transient or
poison failures), retry it inline with exponential backoff or through retry topics, send it to a
dead-letter topic after the last attempt, and optionally produce a record per processed message
to an output topic.

Which messages fail is decided from the message's place in the log, `(partition, offset)` of
the input topic, hashed with `seed`: runs are repeatable, and a test can count the injected
failures exactly by asking `fate()` about every offset it produced. A record moved to a retry
topic carries its original partition and offset in headers, so its fate follows it.

Topics (per input topic `T`): `T.retry.1` .. `T.retry.N` (retry-topic mode, N = attempts - 1),
`T.dlq` (dead letters), `T.out` (output).

`ProcessingObserver` adds the stage's frames and figures to a run; what the members' stages
add to their reports is the stage's own part of the run's tally (`StageTally`), which the
observer registers and reads.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafkabench.engine.stage import _header_dict
from kafkabench.run.session import RunObserver
from kafkabench.spec.processing import (
    DLQ_HEADERS,
    SOURCE_HEADER,
    STAGE_FINISHED,
    Processing,
    dlq_topic,
    output_topic,
)

if TYPE_CHECKING:
    from kafkabench.engine.workers import Report
    from kafkabench.run.tally import Tally

# ----------------------------------------------------------------------------- after the run

#: Dead letters a run's result keeps (the topic holds them all).
DEAD_LETTERS_MAX = 10_000


def read_records(bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                 limit: int = DEAD_LETTERS_MAX, timeout_s: float = 30.0,
                 isolation_level: str = "read_committed", keep: Any = None) -> list[Any]:
    """Every record of `topics` from their low to their high watermarks, read once.

    Args:
        bootstrap: bootstrap servers.
        topics: topics to read (a missing one reads as empty).
        conf: extra client settings (security).
        limit: stop after this many records.
        timeout_s: time budget; what is not read by then is left out.
        isolation_level: "read_committed" or "read_uncommitted".
        keep: what to keep of each record, e.g. a function returning one header (None:
            the Message itself).

    Returns:
        What `keep` kept of each record, per partition in offset order.
    """
    from confluent_kafka import Consumer, TopicPartition

    settings = {**dict(conf or {}), "bootstrap.servers": bootstrap, "group.id": "kafkabench-read",
                "enable.auto.commit": False, "enable.partition.eof": True,
                "auto.offset.reset": "earliest", "isolation.level": isolation_level}
    from kafkabench.core.log import librdkafka_logger

    settings.setdefault("logger", librdkafka_logger())
    consumer = Consumer(settings)
    deadline = time.monotonic() + timeout_s
    out: list[Any] = []
    try:
        meta = consumer.list_topics(timeout=min(10.0, timeout_s))
        assign, pending = [], set()
        for t in topics:
            tm = meta.topics.get(t)
            if tm is None or tm.error is not None:
                continue
            for p in tm.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10.0)
                if high > low:
                    assign.append(TopicPartition(t, p, low))
                    pending.add((t, p, high))
        if not assign:
            return out
        high_of = {(t, p): h for t, p, h in pending}
        consumer.assign(assign)
        left = set(high_of)
        while left and len(out) < limit and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                err = m.error()
                tp = (m.topic(), m.partition())
                if err is not None:
                    if err.code() == -191:  # _PARTITION_EOF
                        left.discard(tp)
                    continue
                if m.offset() < high_of.get(tp, 0):
                    out.append(m if keep is None else keep(m))
                if m.offset() + 1 >= high_of.get(tp, 0):
                    left.discard(tp)
    finally:
        consumer.close()
    return out[:limit]


def dead_letters_frame(messages: list[Any]) -> Any:
    """The `dead_letters` frame of dead-letter records (`kafkabench.contract`)."""
    import pandas as pd

    from kafkabench.core.contract import empty_frame

    rows = []
    for m in messages:
        headers = _header_dict(m.headers() or [])
        text = {k: v.decode(errors="replace") for k, v in headers.items()}
        rows.append({
            "topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "key": m.key(),
            "value_bytes": len(m.value() or b""), "error": text.get("error", ""),
            "retry_count": int(text.get("retry_count", -1)),
            "original_topic": text.get("original_topic", ""),
            "original_partition": int(text.get("original_partition", -1)),
            "original_offset": int(text.get("original_offset", -1)),
            "failed_at": pd.to_datetime(int(text.get("failed_at", 0)), unit="ms", utc=True),
            "headers": json.dumps({k: v for k, v in text.items() if k not in DLQ_HEADERS}),
        })
    empty = empty_frame("dead_letters")
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())


_STAGE_COUNTS = ("processed", "filtered", "retried", "forwarded", "failed", "dead_lettered", "output")
#: What an exactly-once stage counts of its transactions.
_TRANSACTION_COUNTS = ("transactions_committed", "transactions_aborted", "aborted_messages")
#: What the summary takes from the members' final reports only.
_FINAL_COUNTS = ("delayed", "stage_produce_errors", "stage_unflushed")
#: A member's final report counts the messages that took n attempts as `attempts_<n>`.
_ATTEMPTS_PREFIX = "attempts_"


class StageTally:
    """The processing stage's part of a run's tally (`kafkabench.run.tally.TallyPart`): what
    the members' stages add to their reports, per second and in total, and what each group
    is done with (`GroupProgress`).

    Args:
        exactly_once: The stage runs in transactions: only committed offsets at the log end
            say a group is done (it reads messages again after every abort).

    Attributes:
        per_second: The stage's counts by whole second of the run.
        totals: The members' final counts (a member killed on purpose sent none).
        attempts: Messages done by the number of attempts they took.
        done_by_group: Messages each group processed, failed or filtered.
        offsets_only: `exactly_once`.
    """

    name = "processing"

    def __init__(self, *, exactly_once: bool = False):
        self.per_second: dict[int, Counter] = {}
        self.totals: Counter = Counter()
        self.attempts: Counter = Counter()
        self.done_by_group: Counter = Counter()
        self.offsets_only = exactly_once

    def merge(self, report: Report, tally: Tally) -> None:
        """Take the stage's counts of a member's interval or final report."""
        if report.role != "consumer":
            return
        if report.kind == "interval":
            self._interval(report, tally)
        elif report.kind == "done":
            self._done(report)

    def _interval(self, report: Report, tally: Tally) -> None:
        counts = {k: report.counts[k] for k in (*_STAGE_COUNTS, *_TRANSACTION_COUNTS)
                  if report.counts.get(k)}
        if not counts:
            return
        self.per_second.setdefault(tally.t(report.wall), Counter()).update(counts)
        # A processing stage reads retry-topic records, and some twice (not yet due): what it
        # is done with is what counts for catching up.
        finished = sum(counts.get(k, 0) for k in STAGE_FINISHED)
        if finished:
            self.done_by_group[tally.group_of[report.worker]] += finished

    def _done(self, report: Report) -> None:
        for k, v in report.counts.items():
            if k.startswith(_ATTEMPTS_PREFIX):
                self.attempts[int(k.removeprefix(_ATTEMPTS_PREFIX))] += int(v)
            elif k in _STAGE_COUNTS or k in _TRANSACTION_COUNTS or k in _FINAL_COUNTS:
                self.totals[k] += v

    def count(self, key: str) -> int:
        """A stage count over the run: the members' final counts, or what their seconds added
        up to when that is more (a member killed on purpose sent no final report)."""
        return max(int(self.totals.get(key, 0)),
                   sum(int(c.get(key, 0)) for c in self.per_second.values()))


class OutputLatency:
    """A downstream consumer of the output topics during a run (read_committed, like a real
    one): end-to-end latency from the input record's timestamp (the output carries it) to
    the moment the output record reached this reader, overall and per second of the run.

    Runs in a thread of the parent process; `stop` reads what is left, up to the topics'
    ends, within a time budget.

    Args:
        bootstrap: bootstrap servers.
        topics: the output topics.
        conf: extra client settings (security).
        second: the run's whole second of a wall-clock time.
    """

    IDLE_S = 2.0

    def __init__(self, bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                 second: Any = None):
        from kafkabench.measure.stats import LatencyRecorder

        self.bootstrap, self.topics, self.conf = bootstrap, list(topics), dict(conf or {})
        self.second = second or (lambda wall: 0)
        self.latency = LatencyRecorder()
        self.by_second: dict[int, Any] = {}
        self.read = 0
        self.error = ""
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="kb-output-latency", daemon=True)

    def start(self) -> None:
        """Start reading (from each output partition's beginning)."""
        self._thread.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Read on until the reader has been idle for IDLE_S or `timeout_s` passed; then stop."""
        self._drain_until = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(timeout_s + 15.0)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from kafkabench.core.log import librdkafka_logger
        from kafkabench.measure.stats import LatencyRecorder

        settings = {**self.conf, "bootstrap.servers": self.bootstrap, "group.id": "kafkabench-output-e2e",
                    "enable.auto.commit": False, "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10}
        settings.setdefault("logger", librdkafka_logger())
        try:
            consumer = Consumer(settings)
        except Exception as exc:  # noqa: BLE001 - the result says why the figure is missing
            self.error = f"output latency reader: {exc}"
            return
        try:
            meta = consumer.list_topics(timeout=10.0)
            consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in self.topics
                             if t in meta.topics for p in meta.topics[t].partitions])
            last = time.monotonic()
            while True:
                now = time.monotonic()
                if self._stop.is_set() and (now - last > self.IDLE_S or now > self._drain_until):
                    break
                msgs = consumer.consume(1000, 0.2)
                wall = time.time()
                if not msgs:
                    continue
                last = time.monotonic()
                lat = [wall * 1e6 - m.timestamp()[1] * 1e3 for m in msgs
                       if m.error() is None and m.timestamp()[1] > 0]
                self.read += len(lat)
                self.latency.record_many(lat)
                t = self.second(wall)
                rec = self.by_second.get(t)
                if rec is None:
                    rec = self.by_second[t] = LatencyRecorder()
                rec.record_many(lat)
        except Exception as exc:  # noqa: BLE001
            self.error = f"output latency reader: {exc}"
        finally:
            consumer.close()


class ProcessingObserver(RunObserver):
    """Adds the processing stage's figures to a run: the `processing` frame (per second), the
    processing_* summary keys and the `dead_letters` frame (read before the topics go).

    Args:
        processing: the run's stage.
        bootstrap: bootstrap servers.
        topics: the run's input topics.
        conf: extra client settings (security).
    """

    def __init__(self, processing: Processing, bootstrap: str, topics: list[str], *,
                 conf: Mapping[str, Any] | None = None):
        self.p, self.bootstrap, self.topics, self.conf = processing, bootstrap, list(topics), conf
        self.session: Any = None
        self.dead: list[Any] = []
        self.output: dict[str, int] = {}
        self.error = ""
        self.reader: OutputLatency | None = None
        self.stage: StageTally | None = None

    def on_start(self, session: Any) -> None:
        self.session = session
        self.stage = session.tally.register(StageTally(exactly_once=self.p.exactly_once))
        if self.p.output:
            tally = session.tally  # its clock (t0_wall) restarts when the producers start
            self.reader = OutputLatency(self.bootstrap, [output_topic(t) for t in self.topics], conf=self.conf,
                                        second=lambda wall: max(0, math.floor(wall - tally.t0_wall)))
            self.reader.start()

    def on_end(self, session: Any) -> None:
        self.session = session
        if self.reader is not None:
            self.reader.stop()
        try:
            if self.p.dead_letter:
                self.dead = read_records(self.bootstrap, [dlq_topic(t) for t in self.topics],
                                         conf=self.conf, timeout_s=30.0)
            if self.p.output:
                outputs = [output_topic(t) for t in self.topics]
                self.output = output_counts(self.bootstrap, outputs, conf=self.conf, timeout_s=60.0)
                if self.p.exactly_once:  # what aborted transactions left in the log too
                    self.output["read_uncommitted"] = output_counts(
                        self.bootstrap, outputs, conf=self.conf, timeout_s=60.0,
                        isolation_level="read_uncommitted")["read"]
        except Exception as exc:  # noqa: BLE001 - the result says why the figures are missing
            self.error = f"could not read the stage's dead-letter or output topics: {exc}"

    def contribute(self, result: Any) -> None:
        if self.session is None or self.stage is None:
            return
        tally, reader = self.session.tally, self.reader
        result.processing = processing_frame(tally, reader.by_second if reader is not None else None)
        result.dead_letters = dead_letters_frame(self.dead)
        result.summary.update(self._counts())
        result.summary.update(self._latencies(tally))
        for error in (self.error, reader.error if reader is not None else ""):
            if error:
                result.summary.setdefault("warnings", []).append(error)

    def _counts(self) -> dict[str, Any]:
        """The processing_* counts: what the stage did, read back from its topics, attempts."""
        stage = self.stage
        summary = {f"processing_{k}": stage.count(k) for k in _STAGE_COUNTS}
        summary.update({f"processing_output_{k}": v for k, v in self.output.items()})
        summary["processing_delayed"] = int(stage.totals["delayed"])
        if self.p.exactly_once:
            summary.update({f"processing_{k}": stage.count(k) for k in _TRANSACTION_COUNTS})
        summary["processing_stage_errors"] = int(stage.totals["stage_produce_errors"])
        summary["processing_unflushed"] = int(stage.totals["stage_unflushed"])
        summary["processing_attempts"] = json.dumps({n: int(stage.attempts[n]) for n in sorted(stage.attempts)})
        return summary

    def _latencies(self, tally: Any) -> dict[str, Any]:
        """Processing and done latencies in the members, and output end-to-end latency (ms)."""
        summary: dict[str, Any] = {}
        for name, prefix in (("processing_latency_us", "processing_latency_ms"),
                             ("processing_done_latency_us", "processing_done_latency_ms")):
            values = tally.merged(name).percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"{prefix}_{k}": v for k, v in values.items()})
        if self.reader is not None:
            summary["processing_output_e2e_read"] = self.reader.read
            values = self.reader.latency.percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"processing_output_e2e_latency_ms_{k}": v for k, v in values.items()})
        return summary


def output_counts(bootstrap: str, topics: list[str], *, conf: Mapping[str, Any] | None = None,
                  timeout_s: float = 60.0, isolation_level: str = "read_committed") -> dict[str, int]:
    """Read the output topics once and count their records by input (`SOURCE_HEADER`).

    Returns:
        {"read": records, "inputs": distinct inputs, "duplicated": records beyond the first
        of their input (an input processed more than once)}.
    """
    def source(m: Any) -> bytes | None:
        for k, v in m.headers() or ():
            if k == SOURCE_HEADER:
                return v
        return None

    sources = Counter(read_records(bootstrap, topics, conf=conf, limit=10**9, timeout_s=timeout_s,
                                   isolation_level=isolation_level, keep=source))
    read = sum(sources.values())
    return {"read": read, "inputs": len(sources), "duplicated": read - len(sources)}


def processing_frame(tally: Any, output_latency: Mapping[int, Any] | None = None) -> Any:
    """The `processing` frame from a run's tally (its `StageTally` part's counts, its
    histograms) and `OutputLatency.by_second` (None: no output topic); no rows when no
    `StageTally` was registered."""
    import pandas as pd

    from kafkabench.core.contract import empty_frame

    empty = empty_frame("processing")
    per_second = getattr(tally.parts.get(StageTally.name), "per_second", {})
    seconds = sorted(t for t, c in per_second.items() if any(c.get(k) for k in _STAGE_COUNTS))
    if not seconds:
        return empty
    rows = [_processing_row(t, per_second[t], tally.histograms, (output_latency or {}).get(t))
            for t in seconds]
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())


def _processing_row(t: int, counts: Mapping[str, int], histograms: Mapping[tuple[int, str], Any],
                    output_latency: Any) -> dict[str, Any]:
    """One second of the `processing` frame: the stage's counts, its latencies, the output's."""
    row: dict[str, Any] = {"t": t, **{k: int(counts.get(k, 0)) for k in _STAGE_COUNTS}}
    for name, column, key in (("processing_latency_us", "processing_latency_ms_p99", "p99"),
                              ("processing_done_latency_us", "done_latency_ms_p50", "p50"),
                              ("processing_done_latency_us", "done_latency_ms_p99", "p99")):
        rec = histograms.get((t, name))
        row[column] = rec.percentiles("ms", (key,))[key] if rec is not None and rec.count else math.nan
    for key in ("p50", "p99"):
        row[f"output_e2e_latency_ms_{key}"] = (output_latency.percentiles("ms", (key,))[key]
                                               if output_latency is not None and output_latency.count
                                               else math.nan)
    return row
