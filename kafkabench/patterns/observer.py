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
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kafkabench.engine.stage import _header_dict
from kafkabench.run.session import RunObserver
from kafkabench.spec.processing import (
    DLQ_HEADERS,
    SOURCE_HEADER,
    Processing,
    dlq_topic,
    output_topic,
)

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
    import json

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

    def on_start(self, session: Any) -> None:
        self.session = session
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
        import json

        tally = self.session.tally if self.session is not None else None
        if tally is None:
            return
        reader = self.reader
        result.processing = processing_frame(tally, reader.by_second if reader is not None else None)
        result.dead_letters = dead_letters_frame(self.dead)
        totals = tally.totals["consumer"]
        # Per-second counts: a member killed on purpose sent no final report.
        per_second = Counter()
        for counts in tally.counts.values():
            per_second.update({k: v for k, v in counts.items() if k.startswith("consumed_")})
        summary = {f"processing_{k}": max(int(totals.get(k, 0)), per_second[f"consumed_{k}"])
                   for k in _STAGE_COUNTS}
        summary.update({f"processing_output_{k}": v for k, v in self.output.items()})
        summary["processing_delayed"] = int(totals.get("delayed", 0))
        if self.p.exactly_once:
            for k in ("transactions_committed", "transactions_aborted", "aborted_messages"):
                summary[f"processing_{k}"] = max(int(totals.get(k, 0)), per_second[f"consumed_{k}"])
        summary["processing_stage_errors"] = int(totals.get("stage_produce_errors", 0))
        summary["processing_unflushed"] = int(totals.get("stage_unflushed", 0))
        attempts = {int(k.split("_", 1)[1]): int(v) for k, v in totals.items() if k.startswith("attempts_")}
        summary["processing_attempts"] = json.dumps(dict(sorted(attempts.items())))
        for name, prefix in (("processing_latency_us", "processing_latency_ms"),
                             ("processing_done_latency_us", "processing_done_latency_ms")):
            values = tally.merged(name).percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"{prefix}_{k}": v for k, v in values.items()})
        if reader is not None:
            summary["processing_output_e2e_read"] = reader.read
            values = reader.latency.percentiles("ms", ("p50", "p99", "max"))
            summary.update({f"processing_output_e2e_latency_ms_{k}": v for k, v in values.items()})
        result.summary.update(summary)
        for error in (self.error, reader.error if reader is not None else ""):
            if error:
                result.summary.setdefault("warnings", []).append(error)


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
    """The `processing` frame from a run's tally (consumer counts are kept as `consumed_<k>`)
    and `OutputLatency.by_second` (None: no output topic)."""
    import pandas as pd

    from kafkabench.core.contract import empty_frame

    empty = empty_frame("processing")
    seconds = sorted(t for t, c in tally.counts.items()
                     if any(c.get(f"consumed_{k}") for k in _STAGE_COUNTS))
    if not seconds:
        return empty
    rows = []
    for t in seconds:
        c = tally.counts[t]
        row = {"t": t, **{k: int(c.get(f"consumed_{k}", 0)) for k in _STAGE_COUNTS}}
        for name, column, key in (("processing_latency_us", "processing_latency_ms_p99", "p99"),
                                  ("processing_done_latency_us", "done_latency_ms_p50", "p50"),
                                  ("processing_done_latency_us", "done_latency_ms_p99", "p99")):
            rec = tally.histograms.get((t, name))
            row[column] = rec.percentiles("ms", (key,))[key] if rec is not None and rec.count else math.nan
        out = (output_latency or {}).get(t)
        for key in ("p50", "p99"):
            row[f"output_e2e_latency_ms_{key}"] = (out.percentiles("ms", (key,))[key]
                                                   if out is not None and out.count else math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())
