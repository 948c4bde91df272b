"""Fault schedules: kill, stop, pause and restart brokers at set times of a run.

`parse_faults` turns a workload's `faults` list into `Fault`s and refuses a bad schedule
before anything runs. `FaultObserver` carries the schedule out during a run, on a thread of
its own: on the embedded cluster through `LocalCluster`'s node control, on any other cluster
by running the shell command the user gave for the action. Every action is one row of the
`faults` frame, and the run never ends with a node the schedule took down still down.
`RecoveryObserver` then adds how long each fault held up acknowledgements and throughput.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from kafkabench.analysis.recovery import recovery_figures, recovery_summary
from kafkabench.cluster.local import LocalCluster
from kafkabench.cluster.nodes import _refresh, active_controller, find_local_cluster, run_command, start_node
from kafkabench.core.contract import dtypes
from kafkabench.core.errors import ClusterError
from kafkabench.run.session import RunObserver
from kafkabench.run.timeline import AckTimeline, ErrorTimeline
from kafkabench.spec.faults import (
    _TAKES_DOWN,
    UNDO,
    Fault,
    _check_commands,
    command_for,
    parse_faults,
    parse_target,
)

if TYPE_CHECKING:
    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession

log = logging.getLogger(__name__)


# How long a metadata request of the leader lookup or the ISR wait may take.
METADATA_TIMEOUT_S = 10.0
# At the end of a run: how long an action in progress may take to finish (a node's start
# waits up to LocalCluster.startup_timeout_s, 120 s, for the broker to be in the metadata).
JOIN_TIMEOUT_S = 180.0

#: The `faults` frame: one row per action carried out (`kafkabench.contract`).
COLUMNS: dict[str, str] = dtypes("faults")


# ---------------------------------------------------------------------------- node control


# ---------------------------------------------------------------------------- the observer

@dataclass(order=True, slots=True)
class _Step:
    """One action to carry out at `due_s` (seconds since t = 0)."""

    due_s: float
    seq: int
    index: int = field(compare=False)
    action: str = field(compare=False)
    origin: str = field(compare=False)
    fault: Fault = field(compare=False)
    node: int | None = field(default=None, compare=False)


class FaultObserver(RunObserver):
    """Carries out a fault schedule during a run and records every action.

    On `on_go` a daemon thread starts that runs each fault at its `at_s` (seconds since the
    producers were released), one at a time, without ever blocking the session. `on_end`
    cancels what is not yet due (rows with outcome 'skipped') and restores the cluster:
    every node the schedule paused is resumed and every one it took down is started again
    (rows with origin 'cleanup'). A failed action is a row with outcome 'failed', never an
    exception in the run.

    Example:
        observer = FaultObserver([{"at_s": 5, "action": "kill", "target": "leader",
                                   "duration_s": 10}], bootstrap=bootstrap, topics=[topic])
    """

    def __init__(self, faults: Iterable[Mapping[str, Any] | Fault], *, bootstrap: str,
                 topics: Sequence[str], cluster: LocalCluster | None = None,
                 commands: Mapping[str, str] | None = None, conf: Mapping[str, Any] | None = None,
                 isr_timeout_s: float = 120.0, seed: int = 0):
        """Check the schedule against the cluster; nothing runs until `on_go`.

        Args:
            faults: The schedule (see `parse_faults`).
            bootstrap: The cluster's bootstrap servers.
            topics: The run's topics (roles `leader...` and the rolling restart's ISR wait
                use them); empty: the session plan's topics.
            cluster: The embedded cluster to control; None: the one `bootstrap` belongs to
                (`find_local_cluster`), else the cluster is external and every action runs
                a shell command.
            commands: Shell command by action (`fault_commands`), needed on an external
                cluster; a command given for an action (here or in the fault) is run instead
                of node control on the embedded cluster too.
            conf: Extra client settings (security) for the metadata requests.
            isr_timeout_s: How long a rolling restart waits for the in-sync replicas of the
                run's topics to refill after each node.
            seed: Seeds the choice of the `any` target, so a schedule repeats.

        Raises:
            ConfigError: a bad schedule (see `parse_faults`).
        """
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.cluster = cluster if cluster is not None else find_local_cluster(bootstrap)
        self.commands = _check_commands(commands)
        self.conf = dict(conf or {})
        self.isr_timeout_s = isr_timeout_s
        node_ids = None if self.cluster is None else [n.id for n in self.cluster.nodes]
        self.faults = parse_faults(faults, node_ids=node_ids, external=self.cluster is None,
                                   commands=self.commands)
        self._rng = random.Random(seed)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[_Step] = []
        self._seq = itertools.count()
        self._t0_wall = 0.0
        # Nodes the schedule paused or took down (and the fault that did), for the cleanup.
        self._paused: dict[int, Fault] = {}
        self._down: dict[int, Fault] = {}
        # Role target -> the node its last kill/stop/pause hit (for a later start/resume).
        self._hit: dict[str, int] = {}

    # --- hooks -----------------------------------------------------------------------------

    def on_go(self, session: RunSession) -> None:
        self._t0_wall = session.tally.t0_wall or time.time()
        if not self.topics:
            self.topics = tuple(session.plan.topics)
        for i, f in enumerate(self.faults):
            self._push(_Step(f.at_s, next(self._seq), i, f.action, "schedule", f))
        self._thread = threading.Thread(target=self._run, name="kafkabench-faults", daemon=True)
        self._thread.start()

    def on_end(self, session: RunSession) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("a fault action still runs %g s after the run ended", JOIN_TIMEOUT_S)
        elif not self._t0_wall:
            self._t0_wall = session.tally.t0_wall or time.time()
            for i, f in enumerate(self.faults):
                self._skip(_Step(f.at_s, 0, i, f.action, "schedule", f), "the run ended before it started")
        self._skip_pending()
        self._restore()

    def contribute(self, result: RunResult) -> None:
        frame = self.frame()
        setattr(result, "faults", frame)  # noqa: B010 - a field the runner's RunResult declares
        done = frame[frame["outcome"] != "skipped"]
        result.summary.update(faults=len(done), faults_failed=int((done["outcome"] == "failed").sum()))

    def frame(self) -> pd.DataFrame:
        """The `faults` frame: one row per action, in the order they started (skipped last)."""
        with self._lock:
            rows = list(self._rows)
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        df = df.sort_values(["started_s", "scheduled_s"], kind="stable", na_position="last")
        return df.reset_index(drop=True).astype(COLUMNS)

    def resolve(self, fault: Fault, action: str | None = None) -> int | None:
        """The node a fault acts on now (None: a `controller` on an external cluster).

        Raises:
            ClusterError: the role cannot be resolved (no leader, no live node ...).
        """
        action = action or fault.action
        target = parse_target(fault.target)
        if target.kind == "node":
            return target.node
        if action in _TAKES_DOWN:
            if fault.target not in self._hit:
                raise ClusterError(f"no earlier {' or '.join(_TAKES_DOWN[action])} of "
                                   f"{fault.target!r} succeeded: nothing to {action}")
            return self._hit[fault.target]
        if target.kind == "controller":
            return active_controller(_refresh(self.cluster)) if self.cluster is not None else None
        if target.kind == "any":
            nodes = self._live_nodes()
            if not nodes:
                raise ClusterError("no live node to choose from")
            return self._rng.choice(nodes)
        return self._leader(target.topic, target.partition)

    # --- the thread --------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() - self._t0_wall

    def _push(self, step: _Step) -> None:
        with self._lock:
            heapq.heappush(self._pending, step)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                step = self._pending[0] if self._pending else None
            if step is None:
                return
            if self._stop.wait(max(0.0, step.due_s - self._now())):
                return
            with self._lock:
                heapq.heappop(self._pending)
            try:
                self._carry_out(step)
            except Exception:  # noqa: BLE001 - a bug here must not kill the schedule silently
                log.exception("fault %d (%s) failed unexpectedly", step.index, step.action)

    def _carry_out(self, step: _Step) -> None:
        row = self._row(step)
        node = step.node
        try:
            if step.action == "rolling_restart":
                self._rolling_restart(step)
            else:
                if node is None:
                    node = self.resolve(step.fault, step.action)
                row["node"] = node
                row["command"] = self._act(step.fault, step.action, node)
        except Exception as exc:  # noqa: BLE001 - a failed fault is a row, never a failed run
            self._finish(row, "failed", str(exc))
            return
        self._finish(row, "ok")
        self._book(step, node)

    def _book(self, step: _Step, node: int | None) -> None:
        """Remember what an action that went well left paused or down, and schedule its undo."""
        action, fault = step.action, step.fault
        if node is not None:
            if action in UNDO and isinstance(fault.target, str):
                self._hit[fault.target] = node
            if action == "pause":
                self._paused[node] = fault
            elif action == "resume":
                self._paused.pop(node, None)
            elif action in ("kill", "stop"):
                self._down[node] = fault
                self._paused.pop(node, None)
            elif action == "start":
                self._down.pop(node, None)
        if step.origin == "schedule" and fault.undo:
            self._push(_Step(fault.at_s + fault.duration_s, next(self._seq), step.index,
                             fault.undo, "duration", fault, node))

    def _act(self, fault: Fault, action: str, node: int | None) -> str:
        """Carry out one action on one node; the shell command run ("" for node control)."""
        command = command_for(fault, action, self.commands)
        if command is not None:
            log.info("fault: %s node %s: %s", action, node, command)
            return run_command(command, node=fault.target_text if node is None else node,
                               action=action)
        if self.cluster is None or node is None:
            raise ClusterError(f"no shell command for {action!r} on this cluster (not an "
                               "embedded one): give the fault a `command` or the workload a "
                               f"fault_commands entry for {action!r}")
        log.info("fault: %s node %d", action, node)
        cluster = _refresh(self.cluster)
        if action in ("start", "restart"):
            if action == "restart":
                self._down[node] = fault  # until it is back: the cleanup starts it otherwise
                cluster.stop(node)
            start_node(cluster, node, conf=self.conf)
            self._down.pop(node, None)
        else:
            getattr(cluster, action)(node)
        return ""

    def _rolling_restart(self, step: _Step) -> None:
        nodes = self._node_ids()
        for done, node in enumerate(nodes):
            if self._stop.is_set():
                raise ClusterError(f"the run ended after {done} of {len(nodes)} nodes were restarted")
            row = self._row(step, action="restart", origin="rolling_restart", node=node,
                            scheduled_s=self._now())
            try:
                row["command"] = self._act(step.fault, "restart", node)
                self._wait_replicated()
            except Exception as exc:
                self._finish(row, "failed", str(exc))
                raise ClusterError(f"node {node}: {exc}") from None
            self._finish(row, "ok")

    def _wait_replicated(self) -> None:
        """Wait until no partition of the run's topics is under-replicated (bounded)."""
        if not self.topics:
            return
        from kafkabench.cluster.admin import admin_client, describe_topics

        admin = admin_client(self.bootstrap, self.conf)
        deadline = time.monotonic() + self.isr_timeout_s
        under: list[str] = ["(no answer yet)"]
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                found = describe_topics(admin, self.topics, METADATA_TIMEOUT_S)
                under = [f"{t}-{p.partition} (isr {list(p.isr)} of {list(p.replicas)})"
                         for t, parts in found.items() if isinstance(parts, list)
                         for p in parts if len(p.isr) < len(p.replicas) or p.leader < 0]
                under += [f"{t} ({parts.str()})" for t, parts in found.items()
                          if not isinstance(parts, list)]
            except ClusterError as exc:
                under = [f"(metadata: {exc})"]
            if not under:
                return
            self._stop.wait(0.5)
        why = "the run ended" if self._stop.is_set() else f"after {self.isr_timeout_s:g} s"
        raise ClusterError(f"partitions still under-replicated when {why}: {', '.join(under[:5])}")

    # --- resolution ----------------------------------------------------------------------

    def _leader(self, topic: str | None, partition: int) -> int:
        from kafkabench.cluster.admin import admin_client, describe_topics

        if topic is None:
            if not self.topics:
                raise ClusterError("the run has no topic: name one as leader:TOPIC:PARTITION")
            topic = self.topics[0]
        admin = admin_client(self.bootstrap, self.conf)
        # Right after a broker died the partition may have no leader for a moment, and a broker
        # may not know a new topic yet: ask again until the deadline.
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            found = describe_topics(admin, [topic], METADATA_TIMEOUT_S)[topic]
            if not isinstance(found, list):
                why = f"cannot find the leader of {topic}-{partition}: {found.str()}"
            elif partition >= len(found):
                raise ClusterError(f"topic {topic!r} has no partition {partition} "
                                   f"(it has {len(found)})")
            elif found[partition].leader < 0:
                why = f"{topic}-{partition} has no leader now"
            else:
                return found[partition].leader
            if time.monotonic() >= deadline:
                raise ClusterError(why)
            time.sleep(0.2)

    def _node_ids(self) -> list[int]:
        if self.cluster is not None:
            return sorted(n.id for n in self.cluster.nodes)
        from kafkabench.cluster.admin import admin_client

        try:
            md = admin_client(self.bootstrap, self.conf).list_topics(timeout=METADATA_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - KafkaException: said as a failed fault
            raise ClusterError(f"cannot list the brokers of {self.bootstrap}: {exc}") from None
        return sorted(md.brokers)

    def _live_nodes(self) -> list[int]:
        if self.cluster is None:
            return self._node_ids()
        cluster = _refresh(self.cluster)
        return sorted(n.id for n in cluster.nodes if n.alive and not n.paused)

    # --- rows and cleanup ----------------------------------------------------------------

    def _row(self, step: _Step, **changes: Any) -> dict[str, Any]:
        row = {"fault": step.index, "action": step.action, "origin": step.origin,
               "target": step.fault.target_text, "scheduled_s": step.due_s,
               # A node id target is known before the fault runs (also on a skipped row).
               "node": step.node if step.node is not None or not isinstance(step.fault.target, int)
               else step.fault.target,
               "started_s": self._now(), "ended_s": float("nan"), "outcome": "", "error": "",
               "command": ""}
        row.update(changes)
        return row

    def _finish(self, row: dict[str, Any], outcome: str, error: str = "") -> None:
        row.update(ended_s=self._now(), outcome=outcome, error=error)
        if outcome == "failed":
            log.warning("fault %s (%s) failed: %s", row["fault"], row["action"], error)
        with self._lock:
            self._rows.append(row)

    def _skip(self, step: _Step, why: str) -> None:
        row = self._row(step, started_s=float("nan"))
        row.update(outcome="skipped", error=why)
        with self._lock:
            self._rows.append(row)

    def _skip_pending(self) -> None:
        with self._lock:
            pending, self._pending = sorted(self._pending), []
        for step in pending:
            self._skip(step, "the run ended first")

    def _restore(self) -> None:
        """Resume every node the schedule paused and start every one it took down.

        Only nodes this schedule left paused or down: on a cluster shared with other work, a
        node someone else stopped is theirs. Resumes first: a start waits for the brokers.
        """
        paused, down = sorted(self._paused.items()), sorted(self._down.items())
        if self.cluster is not None:
            cluster = _refresh(self.cluster)
            paused = [(node, f) for node, f in paused if cluster.node(node).paused]
            down = [(node, f) for node, f in down if not cluster.node(node).alive]
        for action, items in (("resume", paused), ("start", down)):
            for node, fault in items:
                self._carry_out(_Step(self._now(), 0, -1, action, "cleanup", fault, node))


class RecoveryObserver(RunObserver):
    """Adds the `recovery` frame and the worst recovery figures (outage_s, recovery_s,
    first_ack_s) of a faulted run: per disruptive fault, from the producers' 10 ms
    acknowledgement timeline (`kafkabench.analysis.recovery`).

    It reads the `faults` frame a `FaultObserver` contributed before it: give it after that
    observer. The producers must record their timelines (`ProducerSpec.timeline`, which
    `plan_run` turns on for a workload with faults).
    """

    def __init__(self) -> None:
        self._tally: Any = None
        self._acks: AckTimeline | None = None
        self._errors: ErrorTimeline | None = None

    def on_start(self, session: RunSession) -> None:
        self._tally = session.tally
        self._acks = session.tally.register(AckTimeline())
        self._errors = session.tally.register(ErrorTimeline())

    def contribute(self, result: RunResult) -> None:
        if self._tally is None:
            return
        result.recovery = recovery_figures(result.faults, self._acks,
                                           result.timeseries, result.intervals, self._errors,
                                           t0_wall=self._tally.t0_wall)
        result.summary.update(recovery_summary(result.recovery))
