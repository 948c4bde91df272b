"""TODO: docstring of kafkabench.run.tally."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkabench.engine.workers import ErrorCounts, Report
from kafkabench.measure.stats import LatencyRecorder, SecondHistograms

if TYPE_CHECKING:
    pass


#: A processing stage's counts of messages it is done with (`kafkabench.processing`).
STAGE_FINISHED = ("processed", "failed", "filtered")


class AckTimeline:
    """Which 10 ms buckets had acknowledgements, per (topic, partition): one byte a bucket
    (acknowledgements in it, up to 255), so a 30-minute run over 6 partitions keeps ~1 MB,
    not a dict entry per bucket. `items()` gives ((topic, partition, centisecond), n) for
    the buckets with acknowledgements, as `kafkabench.recovery` reads it."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, int], tuple[int, bytearray]] = {}

    def update(self, acks: dict[tuple[str, int, int], int]) -> None:
        """Add a producer report's {(topic, partition, centisecond): n}."""
        for (topic, partition, cs), n in acks.items():
            base, counts = self._buckets.get((topic, partition)) or (cs, bytearray())
            if cs < base:  # an earlier bucket than any so far: shift
                counts[:0] = bytes(base - cs)
                base = cs
            i = cs - base
            if i >= len(counts):
                counts.extend(bytes(i + 1 - len(counts)))
            counts[i] = min(255, counts[i] + n)
            self._buckets[(topic, partition)] = (base, counts)

    def items(self) -> Iterator[tuple[tuple[str, int, int], int]]:
        """((topic, partition, centisecond), acknowledgements) of every non-empty bucket."""
        for (topic, partition), (base, counts) in self._buckets.items():
            for i in _nonzero(counts):
                yield (topic, partition, base + i), counts[i]

    def __len__(self) -> int:
        return sum(len(c) for _, c in self._buckets.values())


def _nonzero(counts: bytearray) -> Iterator[int]:
    import numpy as np

    return iter(np.flatnonzero(np.frombuffer(bytes(counts), np.uint8)).tolist())


@dataclass(slots=True)
class Tally:
    """Merges workers' reports: per-second counts and histograms, totals, events."""

    topic_of: dict[str, str] = field(default_factory=dict)
    group_of: dict[str, str] = field(default_factory=dict)
    t0_wall: float = 0.0
    elapsed: dict[str, float] = field(default_factory=dict)
    counts: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    histograms: SecondHistograms = field(default_factory=SecondHistograms)
    totals: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    cpu_s: Counter = field(default_factory=Counter)
    stats: list[tuple[str, list]] = field(default_factory=list)
    rebalances: list[dict] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    assigned: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    consumed_by_group: Counter = field(default_factory=Counter)
    finished_by_group: Counter = field(default_factory=Counter)
    caught_up_by_offsets: set = field(default_factory=set)
    transactional: bool = False
    staged: bool = False
    delivered_by_topic: Counter = field(default_factory=Counter)
    failed_by_topic: Counter = field(default_factory=Counter)
    # Opt-in extras of producer reports (see `kafkabench.producer.ProducerSpec`).
    acks: AckTimeline = field(default_factory=lambda: AckTimeline())
    error_timeline: Counter = field(default_factory=Counter)
    verify_parts: list[dict] = field(default_factory=list)

    def t(self, wall: float) -> int:
        """The whole second of the run a report sent at `wall` closes."""
        # A report closes the second before it; 0.5 s of slack absorbs scheduling jitter.
        return max(0, math.floor(wall - self.t0_wall - 0.5)) if self.t0_wall else 0

    def add(self, r: Report) -> None:
        """Merge one report."""
        handler = {"interval": self._interval, "rebalance": self._rebalance, "done": self._done,
                   "error": self._error}.get(r.kind)
        if handler is not None:
            handler(r)

    def _interval(self, r: Report) -> None:
        t = self.t(r.wall)
        for k, v in r.counts.items():
            # Consumers' "bytes" must not add to the producers' column of the same name.
            key = k if r.role == "producer" or k == "consumed" else f"consumed_{k}"
            self.counts[t][key] += v
        if r.role == "producer":
            self.delivered_by_topic[self.topic_of[r.worker]] += r.counts.get("delivered", 0)
            self.failed_by_topic[self.topic_of[r.worker]] += r.counts.get("failed", 0)
            if r.extras:
                self.acks.update(r.extras.get("acks", {}))
                self.error_timeline.update(r.extras.get("errors", {}))
        else:
            group = self.group_of[r.worker]
            self.consumed_by_group[group] += r.counts.get("consumed", 0)
            # A processing stage reads retry-topic records, and some twice (not yet due):
            # what it is done with is what counts for catching up.
            finished = sum(r.counts.get(k, 0) for k in STAGE_FINISHED)
            if finished:
                self.finished_by_group[group] += finished
        for name, encoded in r.histograms.items():
            h = LatencyRecorder.decode(encoded)
            if not h.count:
                continue
            # Assigned back: older seconds are stored encoded (see `SecondHistograms`).
            self.histograms[(t, name)] = (self.histograms[(t, name)].merge(h)
                                          if (t, name) in self.histograms else h)

    def _rebalance(self, r: Report) -> None:
        for ev in r.events:
            self.rebalances.append({**ev, "t": ev["wall"] - self.t0_wall if self.t0_wall else 0.0})
            parts = set(filter(None, ev["partitions"].split(",")))
            if ev["event"] == "assign":
                self.assigned[r.worker] |= parts
            else:
                self.assigned[r.worker] -= parts

    def _done(self, r: Report) -> None:
        counts = dict(r.counts)
        # Workers run side by side: the run's time is the longest, not the sum.
        for key in ("elapsed_s", "drained_s"):
            if key in counts:
                name = f"{r.role}_{key}"
                self.elapsed[name] = max(self.elapsed.get(name, 0.0), counts.pop(key))
        # A worker process's own CPU (librdkafka's threads included); a thread's is part of
        # the parent process's, counted there.
        cpu_s, in_process = counts.pop("cpu_s", 0.0), counts.pop("in_process", 0)
        if in_process:
            self.cpu_s[r.role] += cpu_s
        self.totals[r.role].update(counts)
        self.errors.merge(r.errors, r.error_messages)
        if r.stats:
            self.stats.append((r.worker, r.stats))
        if "verify" in r.extras:
            self.verify_parts.append(r.extras["verify"])

    def _error(self, r: Report) -> None:
        self.worker_errors.append(f"{r.worker} failed: {r.message.strip().splitlines()[0]}")
        self.errors.add("worker_failed", f"{r.worker}: {r.message.strip()}")

    def merged(self, name: str, since_t: float = 0.0) -> LatencyRecorder:
        """One histogram of `name` over every second from `since_t` on."""
        total = LatencyRecorder()
        for key in self.histograms:
            if key[1] == name and key[0] >= since_t:
                total.merge(self.histograms[key])
        return total

    def behind(self, topic_of_group: dict[str, str]) -> list[str]:
        """Groups that consumed fewer messages than were delivered to their topic (with a
        processing stage: that it finished, processed, failed or filtered)."""
        done = self.finished_by_group if self.staged else self.consumed_by_group
        return [g for g, t in topic_of_group.items() if done[g] < self.delivered_by_topic[t]]


