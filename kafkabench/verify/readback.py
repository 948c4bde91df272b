"""Delivery verification: what became of every message a verified run sent.

A verified producer puts `VERIFY_HEADER` (its 12-byte id, then the message's sequence number)
on every message and hands over a ledger part: the outcome (acked, failed) and the partition of
each sequence number. After the run, `verify_delivery` reads every partition of the run's topics
once, from the low to the high watermark, with a fresh consumer that joins no group, and counts
per (topic, partition, producer): read, lost, duplicated, reordered, failed-but-present.

Counts are exact and memory is bounded: numpy arrays indexed by sequence number (two bytes a
message while reading: the outcome and a saturating read count), never sets of ints.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kafkabench.core.errors import ConfigError
from kafkabench.core.log import librdkafka_logger
from kafkabench.engine.producer import VERIFY_HEADER
from kafkabench.engine.workers import fewer_gc_pauses
from kafkabench.verify.ledger import Ledger, VerifyReport, seq_value

if TYPE_CHECKING:
    from confluent_kafka import Message


# Records one `consume()` call returns at most.
BATCH = 10_000
# Longest single wait of the read loop, so the deadline is kept.
_POLL_S = 0.5


class _ReadBack:
    """Reads every partition of some topics once, low to high watermark, into a ledger."""

    def __init__(self, consumer: Consumer, ledger: Ledger, deadline: float):
        self.consumer, self.ledger, self.deadline = consumer, ledger, deadline
        self.high: list[int] = []
        self.position: list[int] = []
        self.pending: set[int] = set()
        self.error = ""

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, topics: Iterable[str]) -> None:
        """Find every partition and its watermarks; assign those with records."""
        assign = []
        for topic in topics:
            for p, lo, hi in self._partitions(topic):
                i = self.ledger.tp(topic, p)
                self.high.append(hi)
                self.position.append(lo)
                if hi > lo:
                    self.pending.add(i)
                    assign.append(TopicPartition(topic, p, lo))
        self.consumer.assign(assign)

    def _partitions(self, topic: str) -> list[tuple[int, int, int]]:
        md = self.consumer.list_topics(topic, timeout=max(self.left(), 0.001)).topics.get(topic)
        if md is None or md.error is not None:
            raise KafkaException(f"topic {topic!r}: {md.error.str() if md is not None else 'not found'}")
        out = []
        for p in sorted(md.partitions):
            lo, hi = self.consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=max(self.left(), 0.001), cached=False)
            out.append((p, lo, hi))
        return out

    def run(self) -> None:
        """Read until every partition reached its high watermark or the deadline passed."""
        while self.pending and (left := self.left()) > 0:
            self.take(self.consumer.consume(num_messages=BATCH, timeout=min(left, _POLL_S)))

    def take(self, messages: list[Message]) -> None:
        """Count one batch."""
        tps: list[int] = []
        values: list[bytes | None] = []
        index, high, position = self.ledger.tp_index, self.high, self.position
        for m in messages:
            if m.error() is not None:
                self._event(m)
                continue
            i, offset = index[m.topic(), m.partition()], m.offset()
            if offset >= high[i]:
                continue  # written after the read started
            position[i] = offset + 1
            tps.append(i)
            headers = m.headers()
            # The producer puts the header last: look there first (the hot path).
            values.append(headers[-1][1] if headers and headers[-1][0] == VERIFY_HEADER
                          else seq_value(headers))
        self.ledger.add(tps, values)
        self.pending = {i for i in self.pending if position[i] < high[i]}

    def _event(self, m: Message) -> None:
        err = m.error()
        if err.code() != KafkaError._PARTITION_EOF:
            self.error = f"{err.name()}: {err.str()}"
            return
        # The end of what this consumer may read: under read_committed the last stable
        # offset, which an open transaction holds below the high watermark.
        i = self.ledger.tp_index.get((m.topic(), m.partition()))
        if i is not None:
            self.position[i] = max(self.position[i], m.offset())

    def shortfall(self, timeout_s: float) -> str:
        """Why the read is incomplete ("" when it is not)."""
        if not self.pending:
            return ""
        tps = self.ledger.tps
        some = ", ".join(f"{tps[i][0]}:{tps[i][1]} at {self.position[i]} of {self.high[i]}"
                         for i in sorted(self.pending)[:3])
        text = (f"{len(self.pending)} of {len(self.high)} partition(s) not read to their high "
                f"watermark within the time budget of {timeout_s:g} s ({some}); "
                "lost counts include unread messages")
        return text + (f"; last error {self.error}" if self.error else "")


def _consumer(bootstrap: str, conf: Mapping[str, Any] | None, isolation_level: str | None) -> Consumer:
    conf = dict(conf or {})
    level = isolation_level or conf.get("isolation.level") or "read_committed"
    settings = {"logger": librdkafka_logger(), **conf, "bootstrap.servers": bootstrap,
                # Never used: partitions are assigned, nothing is committed.
                "group.id": "kafkabench-verify", "enable.auto.commit": False,
                "enable.auto.offset.store": False, "enable.partition.eof": True,
                # Records deleted (retention, delete_records) while reading: go on from the new start.
                "auto.offset.reset": "earliest", "isolation.level": level}
    try:
        return Consumer(settings)
    except (KafkaException, TypeError, ValueError) as exc:
        raise ConfigError(f"verification consumer settings for {bootstrap!r} rejected: {exc}") from exc


def verify_delivery(bootstrap: str, topics: Iterable[str], parts: Iterable[Mapping[str, Any]], *,
                    conf: Mapping[str, Any] | None = None, isolation_level: str | None = None,
                    timeout_s: float = 60.0) -> VerifyReport:
    """Read the run's topics back once and count what became of every verified message.

    Args:
        bootstrap: bootstrap servers.
        topics: the run's topics; every partition is read from its low to its high watermark
            as measured when the read starts.
        parts: the producers' ledger parts (`session.tally.verify_parts`).
        conf: extra client settings (security; `isolation.level` is taken from here unless
            `isolation_level` is given).
        isolation_level: "read_committed" (librdkafka's default) or "read_uncommitted".
        timeout_s: time budget of the whole read; what is not read by then counts as lost,
            and the summary says `verify_complete` False with the reason in `verify_error`.

    Returns:
        The `verify` frame and the verify_* summary figures. A cluster problem (unreachable,
        a topic missing, the deadline) is reported there, never raised.

    Raises:
        ConfigError: `conf` holds a setting librdkafka rejects.
        ValueError: a malformed ledger part.
    """
    ledger = Ledger(parts)
    started = time.monotonic()
    consumer = _consumer(bootstrap, conf, isolation_level)
    reader = _ReadBack(consumer, ledger, started + timeout_s)
    error = ""
    try:
        with fewer_gc_pauses():
            reader.start(topics)
            reader.run()
        error = reader.shortfall(timeout_s)
    except KafkaException as exc:
        error = f"verification read from {bootstrap!r} failed (time budget {timeout_s:g} s): {_text(exc)}"
    finally:
        consumer.close()
    read_s = time.monotonic() - started
    frame = ledger.frame()
    summary = {**ledger.summary(frame), "verify_complete": not error, "verify_read_s": read_s,
               "verify_error": error}
    return VerifyReport(frame=frame, summary=summary)


def _text(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else exc
    return err.str() if isinstance(err, KafkaError) else str(err)


