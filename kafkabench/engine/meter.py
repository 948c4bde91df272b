"""What a consumer-group member measures of what it consumes: messages, bytes (keys +
values) and the end-to-end latency histogram (receive time minus the message's Kafka
timestamp, which the producer sets to the intended send time in rate-controlled runs), per
interval and in all; and, optionally, the trace of the offsets it read.

May import: `kafkabench.measure`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from confluent_kafka import Message

from kafkabench.measure.stats import LatencyRecorder

_key = Message.key


class ConsumerMeter:
    """A member's consumption counts: one `batch` call per consume() batch.

    Args:
        record_latency: record each message's end-to-end latency.
        trace: a `ConsumptionTrace` each batch is also written to, or None.

    Attributes:
        total_consumed: messages consumed since the start (the interval's included).
        total_bytes: their key + value bytes.
    """

    __slots__ = ("bytes", "consumed", "e2e", "record_latency", "total_bytes", "total_consumed",
                 "trace")

    def __init__(self, record_latency: bool, trace: Any = None):
        self.record_latency, self.trace = record_latency, trace
        self.e2e = LatencyRecorder()
        self.consumed = self.bytes = 0
        self.total_consumed = self.total_bytes = 0

    def batch(self, msgs: list[Message], now_ms: float) -> None:
        """Count a batch of good messages, received at `now_ms` (time.time() in ms)."""
        n = len(msgs)
        if self.trace is not None and n:
            self.trace.batch(now_ms / 1000.0, msgs)
        # Key + value bytes, as Kafka's ConsumerPerformance counts them (len() of a
        # message is its value's). Measured: +25 ns/message unkeyed, +50 keyed.
        nbytes = sum(map(len, msgs)) + sum(map(len, filter(None, map(_key, msgs))))
        if self.record_latency:
            record = self.e2e.record
            # Kafka timestamps are whole ms, so a batch holds few distinct ones:
            # count them in C, then record each distinct latency once with its count.
            for (_, ts), count in Counter([m.timestamp() for m in msgs]).items():
                record((now_ms - ts) * 1000.0, count)
        self.consumed += n
        self.bytes += nbytes
        self.total_consumed += n
        self.total_bytes += nbytes

    def take_interval(self) -> tuple[dict[str, int], dict[str, str]]:
        """The interval's counts and encoded histogram, then reset them."""
        counts = {"consumed": self.consumed, "bytes": self.bytes}
        histograms = {"e2e_latency_us": self.e2e.encode()}
        self.consumed = self.bytes = 0
        self.e2e.reset()
        return counts, histograms

    def totals(self) -> dict[str, int]:
        """Messages and bytes consumed since the start."""
        return {"consumed": self.total_consumed, "bytes": self.total_bytes}

    def close(self) -> None:
        """Close the trace file, if any."""
        if self.trace is not None:
            self.trace.close()
