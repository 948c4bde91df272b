"""Retry topics of a processing stage: which topic is which retry level, and the partitions
paused until their next record is due.

With `retry="topics"` a failed message goes to `<topic>.retry.N` with the headers of
`failure_headers`; a member reads retry level N `backoff.delay_ms(N)` after the record
failed. A record that is not due yet is not handled: its partition is paused and rewound to
it (`RetryTopics.delay`), and resumed when it is due (`RetryTopics.resume_due`). Also the
headers the stage writes on retry and dead-letter records.

May import: `kafkabench.spec`.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import TopicPartition

from kafkabench.spec.processing import RETRY_HEADERS, Processing, retry_topic

# Headers the stage adds; removed again before a record is forwarded or dead-lettered, so
# the dead letter carries the input record's own headers byte for byte.
STAGE_HEADERS = frozenset(RETRY_HEADERS) | {"original_timestamp"}


def now_ms() -> int:
    """Wall-clock time in whole milliseconds (the `failed_at` header)."""
    return int(time.time() * 1000)


def header_dict(headers: list) -> dict[str, bytes]:
    """The last value of each header name."""
    return {k: v for k, v in headers if v is not None}


def failure_headers(error: str, attempts: int, topic: str, partition: int, offset: int) -> list:
    """The design source's DLQ headers; retry_count = retries made (attempts - 1)."""
    return [("error", error.encode()), ("retry_count", str(attempts - 1).encode()),
            ("original_topic", topic.encode()), ("original_partition", str(partition).encode()),
            ("original_offset", str(offset).encode()), ("failed_at", str(now_ms()).encode())]


class RetryTopics:
    """A stage's input and retry topics, and its retry partitions paused until due.

    Args:
        processing: the stage (`retry_levels`, `backoff`).
        inputs: the member's input topics.
        consumer: the member's consumer (pause, seek, resume).

    Attributes:
        level_of: topic -> (input topic, retry level); level 0 is the input itself.
        paused: (topic, partition) -> time.monotonic() when its next record is due.
    """

    def __init__(self, processing: Processing, inputs: tuple[str, ...], consumer: Any):
        self.backoff, self.consumer = processing.backoff, consumer
        self.level_of = {t: (t, 0) for t in inputs}
        for t in inputs:
            for n in range(1, processing.retry_levels + 1):
                self.level_of[retry_topic(t, n)] = (t, n)
        self.paused: dict[tuple[str, int], float] = {}

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the member subscribes to: inputs, then retry levels."""
        return tuple(self.level_of)

    def origin(self, msg: Any, headers: list, level: int) -> tuple[int, int, float, list] | None:
        """Where retry record `msg` (of retry level `level`) came from, or None when it is not
        due yet: its partition is then paused and rewound to it (see `delay`).

        Returns:
            (partition, offset, timestamp of the input record, its own headers).
        """
        meta = header_dict(headers)
        due_ms = int(meta.get("failed_at", b"0")) + self.backoff.delay_ms(level)
        wait_ms = due_ms - time.time() * 1000.0
        if wait_ms > 0:
            self.delay(msg, time.monotonic() + wait_ms / 1000.0)
            return None
        # A record some other writer put in a retry topic has no origin headers: it is
        # judged by its own place in the log.
        return (int(meta.get("original_partition", msg.partition())),
                int(meta.get("original_offset", msg.offset())),
                float(meta.get("original_timestamp", msg.timestamp()[1])),
                [(k, v) for k, v in headers if k not in STAGE_HEADERS])

    def delay(self, msg: Any, until: float) -> None:
        """Pause `msg`'s partition and rewind it to `msg` until `until` (time.monotonic())."""
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.consumer.pause([tp])
        self.consumer.seek(tp)
        self.paused[(msg.topic(), msg.partition())] = until

    def resume_due(self) -> None:
        """Resume the paused retry partitions whose next record is due."""
        if not self.paused:
            return
        now = time.monotonic()
        due = [tp for tp, at in self.paused.items() if at <= now]
        for tp in due:
            del self.paused[tp]
        if due:
            self.consumer.resume([TopicPartition(t, p) for t, p in due])

    def forget(self, partitions: Any) -> None:
        """Partitions revoked: they are not this member's to resume."""
        for tp in partitions or ():
            self.paused.pop((tp.topic, tp.partition), None)

    def is_paused(self, msg: Any) -> bool:
        """Whether `msg`'s partition was paused earlier in this batch (skip it: it is read
        again from the rewound offset)."""
        return (msg.topic(), msg.partition()) in self.paused

    def forward(self, produce: Any, msg: Any, topic: str, origin: tuple, attempt: int,
                error: str) -> None:
        """Send `msg`, which failed attempt `attempt`, to its next retry topic.

        Args:
            produce: the stage's `produce(topic, **kwargs)`.
            msg: the record read.
            topic: its input topic.
            origin: (partition, offset, timestamp, headers) of the input record (`origin`).
            attempt: the attempt that failed (the retry level it goes to).
            error: what failed.
        """
        partition, offset, original_ts, headers = origin
        extra = failure_headers(error, attempt, topic, partition, offset)
        extra.append(("original_timestamp", str(int(original_ts)).encode()))
        produce(retry_topic(topic, attempt), key=msg.key(), value=msg.value(),
                headers=headers + extra)
