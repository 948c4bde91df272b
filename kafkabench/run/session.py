"""Carrying out a `RunPlan`: start workers, drain their reports, stop them, Ctrl-C.

`RunSession` owns the worker pools and the `Tally` that merges every worker's reports.
Its one loop is `drain(until=...)`: take reports, check for dead workers, and call the
observers once a second, until a condition holds or a timeout passes. What happens around a
run (lag sampling, a progress bar; later fault schedules, delivery checks, metrics exporters)
is a `RunObserver` the session calls at start, every second and at the end, and that adds
its frames and figures to the result: never another branch in the runner. What a feature adds
to the workers' reports is a part of the tally (`kafkabench.run.tally.TallyPart`) that its
observer registers in `on_start`, or the plan in `RunPlan.tally_parts`: the session and the
tally know no feature by name.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psutil

from kafkabench.engine.consumer import run_consumer
from kafkabench.engine.producer import ProducerSpec, run_producer
from kafkabench.engine.workers import Report, WorkerDied, WorkerPool

# Names of the flat module `kafkabench.session`, which now points here.
from kafkabench.run.tally import STAGE_FINISHED as STAGE_FINISHED
from kafkabench.run.tally import AckTimeline as AckTimeline
from kafkabench.run.tally import Tally

if TYPE_CHECKING:
    from kafkabench.run.plan import RunPlan
    from kafkabench.run.result import RunResult

# Consumers joining a group: the first rebalance takes a few seconds on a fresh group.
ASSIGN_TIMEOUT_S = 60.0
# After `stop()`: how long workers may take to flush and send their last report.
FINAL_REPORTS_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 10.0


class RunObserver:
    """Something that watches a run: the session calls it at fixed points.

    Subclasses override what they need. Hooks must not raise for a cluster problem they
    can record as data instead (a failed sample is a row, not an exception).
    """

    def on_start(self, session: RunSession) -> None:
        """Before any worker starts: where an observer registers the tally parts it reads
        (`session.tally.register(...)`)."""

    def on_go(self, session: RunSession) -> None:
        """When the producers are released (t = 0 of the measured run)."""

    def on_second(self, session: RunSession) -> None:
        """About once a second while the session drains reports."""

    def on_end(self, session: RunSession) -> None:
        """After every worker stopped and sent its last report (also after Ctrl-C or a
        dead worker)."""

    def contribute(self, result: RunResult) -> None:
        """Add this observer's frames and summary figures to the finished result."""


class RunSession:
    """One run of a plan: worker pools, the tally, observers, the run's clock.

    Attributes:
        plan: What runs.
        tally: Every report merged.
        warnings: Problems worth telling the user, in order.
        interrupted: Ctrl-C stopped the run.
        failure: Why a worker died, or None.
        t_go, t_end: Monotonic times the producers were released and finished.
    """

    def __init__(self, plan: RunPlan, observers: Iterable[RunObserver] = (), *, journal: Any = None):
        self.plan = plan
        #: The run's journal (`kafkabench.journal.Journal`): workers' reports on disk.
        self.journal = journal
        self.tally = Tally(topic_of=dict(plan.topic_of), group_of=dict(plan.group_of))
        for part in plan.tally_parts():
            self.tally.register(part)
        self.observers = list(observers)
        self.pool = WorkerPool(plan.mode, journal=journal)
        self.warnings: list[str] = []
        self.interrupted = False
        self.failure: str | None = None
        self.t_go = self.t_end = time.monotonic()
        self._pools = [self.pool]
        #: Consumer members started during the run (`start_member`), by worker name.
        self.extra_members: dict[str, Any] = {}
        self._last_tick = 0.0
        self._me = psutil.Process()
        self._cpu0 = 0.0

    # --- the one loop ------------------------------------------------------------------

    def drain(self, until: Callable[[], bool], *, timeout_s: float | None = None,
              pool: WorkerPool | None = None, wait_s: float = 0.5) -> bool:
        """Take reports until `until()` holds or `timeout_s` passes.

        Calls the observers' `on_second` about once a second.

        Returns:
            True when `until()` held, False on the timeout.

        Raises:
            WorkerDied: a worker ended without its final report.
        """
        pool = pool or self.pool
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not until():
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.take(pool.reports(wait_s))
            pool.check()
            self._tick()
        return True

    def take(self, reports: Iterator[Report]) -> None:
        """Merge reports into the tally."""
        for r in reports:
            self.tally.add(r)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            self._notify("on_second")

    def _notify(self, hook: str) -> None:
        for observer in self.observers:
            getattr(observer, hook)(self)

    # --- phases ------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[RunSession]:
        """Start the observers; on exit (normal, Ctrl-C or a dead worker) stop every worker,
        take their last reports and end the observers. Ctrl-C and `WorkerDied` are recorded
        (`interrupted`, `failure`), not raised."""
        self._cpu0 = sum(self._me.cpu_times()[:2])
        started = False
        try:
            self._notify("on_start")
            started = True
            yield self
        except KeyboardInterrupt:
            self.interrupted = True
            self.warnings.append("interrupted by the user (Ctrl-C): partial result")
            print("\nkafkabench: stopping workers, keeping the partial result ...", file=sys.stderr)
        except WorkerDied as exc:
            self.failure = str(exc)
            print(f"\nkafkabench: {self.failure}\nkafkabench: stopping the other workers ...",
                  file=sys.stderr)
        finally:
            self._stop_all()
            self.tally.cpu_s["parent"] = sum(self._me.cpu_times()[:2]) - self._cpu0
            if self.interrupted or self.t_end < self.t_go:
                # Stopped early (Ctrl-C, a dead worker): the run lasted until now.
                self.t_end = time.monotonic()
            self._notify("on_end")
        if not started:  # Ctrl-C while the observers started: nothing ran, nothing to return
            raise KeyboardInterrupt
        if self.failure is not None:
            self.tally.errors.add("worker_died", self.failure)

    def run_backlog(self, messages: int) -> None:
        """Produce `messages` (split over the producers) before the consumers start; the
        run's clock starts here, so the backlog phase is part of the time series."""
        specs = self.plan.backlog_producers(messages)
        pool = WorkerPool(self.plan.mode, journal=self.journal)
        self._pools.append(pool)
        self.tally.t0_wall = time.time()
        self._start(pool, run_producer, specs, "producer")
        self.wait_ready(pool=pool)
        self._set_clock(time.time())
        pool.go()
        names = {s.worker for s in specs}
        self.drain(lambda: names <= pool.done, pool=pool)
        self.take(pool.reports(0.1))  # whatever arrived as the last one exited
        pool.join(JOIN_TIMEOUT_S)

    def start_consumers(self) -> None:
        """Start every consumer-group member and wait until the groups own every partition."""
        if not self.plan.consumers:
            return
        self._start(self.pool, run_consumer, self.plan.consumers, "consumer")
        self.drain(lambda: self._groups_settled() or bool(self.pool.done),
                   timeout_s=ASSIGN_TIMEOUT_S, wait_s=0.2)
        if not self._groups_settled():
            self.warnings.append(
                f"consumer groups did not own every partition within {ASSIGN_TIMEOUT_S:.0f} s")

    def start_member(self, spec: Any) -> None:
        """Start one more consumer-group member while the run goes on (a join or a restart);
        it is stopped and waited for like the plan's members."""
        self.tally.group_of[spec.worker] = spec.group
        self.tally.topic_of[spec.worker] = spec.topics[0]
        self.extra_members[spec.worker] = spec
        self.pool.start(run_consumer, spec, spec.worker, "consumer")

    def start_producers(self, specs: Iterable[ProducerSpec] | None = None) -> None:
        """Start the producers and wait until each is set up and waiting for `go`."""
        self._start(self.pool, run_producer, self.plan.producers if specs is None else specs,
                    "producer")
        self.wait_ready()

    def wait_ready(self, pool: WorkerPool | None = None) -> None:
        """Wait (bounded) until every producer waits for go (see `Control.wait_start`)."""
        pool = pool or self.pool
        names = self.plan.producer_names
        self.drain(lambda: names <= pool.ready | pool.done, timeout_s=ASSIGN_TIMEOUT_S,
                   pool=pool, wait_s=0.2)

    def go(self, *, restart_clock: bool = True) -> None:
        """Release the producers: t = 0 of the measured run (unless a backlog started it)."""
        if restart_clock:
            self._set_clock(time.time())
        self.t_go = time.monotonic()
        self.pool.go()
        self._notify("on_go")

    def produce(self) -> None:
        """Drain reports until every producer finished (its duration or message count)."""
        names = self.plan.producer_names
        self.drain(lambda: names <= self.pool.done)
        self.t_end = time.monotonic()

    def catch_up(self, timeout_s: float) -> None:
        """Let consumers catch up with what was delivered; give up after `timeout_s`
        without progress, with a warning naming the groups behind."""
        topic_of_group = self.plan.topic_of_group
        if not topic_of_group:
            return
        progress = {"total": -1, "at": time.monotonic()}

        def caught_up_or_stuck() -> bool:
            behind = self.tally.behind(topic_of_group)
            if self.tally.offsets_only:
                # The counts cannot say a group is done (a part says so, e.g. an exactly-once
                # stage reads messages again after every abort): committed offsets at the log
                # end can.
                behind = [g for g in topic_of_group if not self._committed_to_end(g)]
            elif behind and self.pool.killed:
                # A member killed on purpose never sent its last second of counts: judge its
                # group by its committed offsets instead.
                settled = [g for g in behind if self._committed_to_end(g)]
                self.tally.caught_up_by_offsets.update(settled)
                behind = [g for g in behind if g not in settled]
            if not behind:
                return True
            total = sum(self.tally.consumed_by_group.values())
            if total != progress["total"]:
                progress.update(total=total, at=time.monotonic())
            elif time.monotonic() - progress["at"] > timeout_s:
                self.warnings.append(f"groups {behind} had not consumed everything "
                                     f"{timeout_s:.0f} s after the last progress")
                return True
            return False

        self.drain(caught_up_or_stuck)

    def _committed_to_end(self, group: str) -> bool:
        """Whether an observer saw `group`'s committed offsets at the log end after the
        producers finished (`LagObserver.caught_up`)."""
        since = time.time() - (time.monotonic() - self.t_end)
        return any(getattr(o, "caught_up", lambda g, s: False)(group, since) for o in self.observers)

    @property
    def elapsed(self) -> float:
        """Seconds the producers ran (their own clock when they reported it)."""
        if self.interrupted:
            return self.t_end - self.t_go
        return self.tally.elapsed.get("producer_elapsed_s") or (self.t_end - self.t_go)

    # --- internals ---------------------------------------------------------------------

    def _set_clock(self, t0_wall: float) -> None:
        """The run's t = 0, in the tally and the journal."""
        self.tally.t0_wall = t0_wall
        if self.journal is not None:
            self.journal.write_clock(t0_wall)

    def _start(self, pool: WorkerPool, fn: Callable, specs: Iterable[Any], role: str) -> None:
        for s in specs:
            pool.start(fn, s, s.worker, role)

    def _groups_settled(self) -> bool:
        """Every partition owned, and every member working when there are enough
        partitions (the first member to join takes everything until the group rebalances
        for the rest)."""
        members: dict[str, list[str]] = defaultdict(list)
        for s in self.plan.consumers:
            members[s.group].append(s.worker)
        partitions, assigned = self.plan.partitions, self.tally.assigned
        return all(sum(len(assigned[w]) for w in names) >= partitions
                   and (len(names) > partitions or all(assigned[w] for w in names))
                   for names in members.values())

    def _stop_all(self) -> None:
        for pool in self._pools[1:]:
            pool.stop()
            pool.join(JOIN_TIMEOUT_S)
        self.pool.stop()
        expected = ({s.worker for s in (*self.plan.producers, *self.plan.consumers)}
                    | set(self.extra_members)) - self.pool.killed
        deadline = time.monotonic() + FINAL_REPORTS_TIMEOUT_S
        # Every worker sent its last report, or died (dead workers send none).
        while not expected <= self.pool.done | set(self.pool.dead()) and time.monotonic() < deadline:
            self.take(self.pool.reports(0.5))
        self.take(self.pool.reports(0.1))
        self.pool.join(JOIN_TIMEOUT_S)
