"""The tally: every worker's reports merged into the run's counts, histograms and events.

`Tally` merges what every worker sends: per-second counts and histograms, totals, errors,
rebalance events, CPU. What a feature adds to a worker's report (a producer's acknowledgement
timeline, its delivery ledger, a processing stage's counts) is the feature's own: it registers
a `TallyPart` (a name and `merge(report, tally)`, as OpenMessaging Benchmark's `PeriodStats` is
a typed report of its own) and reads its figures from it; the tally merges every report into
every registered part and knows none of their names. A registered part is also an attribute of
its name: `tally.acks` is the part registered as "acks".

A part that redefines when a consumer group is done (a processing stage is done with what it
processed, failed or filtered, not with what it read) is a `GroupProgress` too.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from kafkabench.engine.workers import ErrorCounts, Report
from kafkabench.measure.stats import LatencyRecorder, SecondHistograms

# Names of the flat module `kafkabench.session` (and of this module before the parts moved out).
from kafkabench.run.timeline import AckTimeline as AckTimeline
from kafkabench.spec.processing import STAGE_FINISHED as STAGE_FINISHED


class TallyPart(Protocol):
    """What a feature adds to workers' reports, and how to merge it.

    Attributes:
        name: The part's name, unique in a tally (`Tally.parts`, `tally.<name>`).
    """

    name: str

    def merge(self, report: Report, tally: Tally) -> None:
        """Merge one report (any kind, any role: a part takes what is its own and ignores
        the rest). Runs after the tally merged the report's counts, so `tally.t(report.wall)`
        and `tally.group_of` are there to use; never raises for a report it cannot read."""


@runtime_checkable
class GroupProgress(Protocol):
    """A tally part that says what each consumer group is done with, when that is not what
    it consumed (`Tally.behind`).

    Attributes:
        done_by_group: Messages each group is done with, by group id.
        offsets_only: Only committed offsets at the log end can say a group is done (the
            counts cannot: e.g. messages read again after an aborted transaction).
    """

    done_by_group: Mapping[str, int]
    offsets_only: bool


P = TypeVar("P", bound=TallyPart)


@dataclass(slots=True)
class Tally:
    """Merges workers' reports: per-second counts and histograms, totals, events, and the
    registered parts (`register`)."""

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
    caught_up_by_offsets: set = field(default_factory=set)
    delivered_by_topic: Counter = field(default_factory=Counter)
    failed_by_topic: Counter = field(default_factory=Counter)
    #: Features' parts by name, in the order they were registered.
    parts: dict[str, TallyPart] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # Only for names that are not fields: a registered part by its name.
        if name != "parts" and not name.startswith("__"):
            try:
                return self.parts[name]
            except (KeyError, AttributeError):
                pass
        raise AttributeError(f"{type(self).__name__!r} has no attribute or registered part {name!r}")

    def register(self, part: P) -> P:
        """Merge every report from now on into `part` as well.

        Args:
            part: A `TallyPart`.

        Returns:
            The part registered under `part.name`: `part`, or the one registered before it
            under that name (two features that read the same part share it).
        """
        return self.parts.setdefault(part.name, part)  # type: ignore[return-value]

    def t(self, wall: float) -> int:
        """The whole second of the run a report sent at `wall` closes."""
        # A report closes the second before it; 0.5 s of slack absorbs scheduling jitter.
        return max(0, math.floor(wall - self.t0_wall - 0.5)) if self.t0_wall else 0

    def add(self, r: Report) -> None:
        """Merge one report, then give it to every registered part."""
        handler = {"interval": self._interval, "rebalance": self._rebalance, "done": self._done,
                   "error": self._error}.get(r.kind)
        if handler is not None:
            handler(r)
        for part in self.parts.values():
            part.merge(r, self)

    def _interval(self, r: Report) -> None:
        t = self.t(r.wall)
        for k, v in r.counts.items():
            # Consumers' "bytes" must not add to the producers' column of the same name.
            key = k if r.role == "producer" or k == "consumed" else f"consumed_{k}"
            self.counts[t][key] += v
        if r.role == "producer":
            self.delivered_by_topic[self.topic_of[r.worker]] += r.counts.get("delivered", 0)
            self.failed_by_topic[self.topic_of[r.worker]] += r.counts.get("failed", 0)
        else:
            self.consumed_by_group[self.group_of[r.worker]] += r.counts.get("consumed", 0)
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

    @property
    def progress(self) -> GroupProgress | None:
        """The registered part that says what groups are done with (None: what they consumed)."""
        return next((p for p in self.parts.values() if isinstance(p, GroupProgress)), None)

    @property
    def offsets_only(self) -> bool:
        """Whether only committed offsets at the log end can say a group is done
        (`GroupProgress.offsets_only`)."""
        progress = self.progress
        return progress is not None and progress.offsets_only

    def behind(self, topic_of_group: dict[str, str]) -> list[str]:
        """Groups that are done with fewer messages than were delivered to their topic: that
        consumed fewer, or, with a `GroupProgress` part, that it counts done with fewer."""
        progress = self.progress
        done = self.consumed_by_group if progress is None else progress.done_by_group
        return [g for g, t in topic_of_group.items() if done.get(g, 0) < self.delivered_by_topic[t]]
