"""The producers' opt-in timelines (`ProducerSpec.timeline`) as parts of the tally.

A producer that records its timeline adds two extras to every interval report: its
acknowledgements per 10 ms bucket (`Report.extras["acks"]`) and its delivery errors per second
and code (`["errors"]`). `AckTimeline` and `ErrorTimeline` are the `kafkabench.run.tally`
parts that merge them: the plan registers both for every run with producers
(`RunPlan.tally_parts`), so fault recovery (`kafkabench.analysis.recovery`) and the live
metrics read them as `tally.acks` and `tally.error_timeline`, empty when no producer records
a timeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from kafkabench.engine.workers import Report


class AckTimeline:
    """Which 10 ms buckets had acknowledgements, per (topic, partition): one byte a bucket
    (acknowledgements in it, up to 255), so a 30-minute run over 6 partitions keeps ~1 MB,
    not a dict entry per bucket. `items()` gives ((topic, partition, centisecond), n) for
    the buckets with acknowledgements, as `kafkabench.analysis.recovery` reads it.

    A tally part (`kafkabench.run.tally.TallyPart`) named "acks": it merges the "acks" extra
    of producers' interval reports.
    """

    name = "acks"

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, int], tuple[int, bytearray]] = {}

    def merge(self, report: Report, tally: Any) -> None:
        """Add a producer interval report's acknowledgements (`update`)."""
        if report.kind == "interval" and report.role == "producer" and report.extras:
            self.update(report.extras.get("acks", {}))

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
    import numpy as np  # deferred: a heavy import only timelines need

    return iter(np.flatnonzero(np.frombuffer(bytes(counts), np.uint8)).tolist())


class ErrorTimeline(Counter):
    """Producers' delivery errors by (Unix second, error code name): {(second, code): n}.

    A tally part (`kafkabench.run.tally.TallyPart`) named "error_timeline": it merges the
    "errors" extra of producers' interval reports.
    """

    name = "error_timeline"

    def merge(self, report: Report, tally: Any) -> None:
        """Add a producer interval report's errors by second and code."""
        if report.kind == "interval" and report.role == "producer" and report.extras:
            self.update(report.extras.get("errors", {}))
