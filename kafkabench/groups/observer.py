"""Consumer-group membership events during a run: crash, restart and join members.

A workload's `membership` schedule, e.g. `[{at_s: 5, action: crash, member: 0},
{at_s: 12, action: restart, member: 0}]`, is carried out by `MembershipObserver` while the
producers run:

- `crash`: SIGKILL the member's worker process (no commit, no LeaveGroup: the group notices
  when the member's session times out, `session.timeout.ms`).
- `restart`: start the member again (a new process, worker name `<name>-r<k>`, the same
  settings, so a `group.instance.id` is the same static member).
- `join`: start one more member of the group (worker name `<group>-c<n>` after the plan's).
- `leave`: stop the member cleanly: it commits (per the run's commit mode), and leaves the
  group at once (LeaveGroup); a static member (`group.instance.id`) does not send it, so
  the group waits for its session timeout as for a crash.

Every member appends what it consumed to a trace file (`kafkabench.consumer.ConsumptionTrace`),
which a SIGKILL cannot lose. From the traces, the members' rebalance events and the lag
samples, `event_figures` measures each event: how long until the group reacted (detection),
until its assignment was stable, the longest time a partition and the whole group consumed
nothing, partitions revoked, assigned and moved, records consumed twice (by offset), the lag
peak and the time to drain it. They are columns of the `membership` frame.

Members that must be killable run as processes: a schedule with `crash` needs the run's
workers to be processes (`mode="process"`, the default when a run has several workers).
Each event is a row of the `membership` frame.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from kafkabench.analysis.rebalance import event_figures, member_identity, read_traces
from kafkabench.core.contract import empty_frame
from kafkabench.core.errors import ConfigError, KafkabenchError
from kafkabench.run.session import RunObserver
from kafkabench.spec.membership import MemberEvent


class MembershipObserver(RunObserver):
    """Carries out a membership schedule during a run and records it (`membership` frame).

    Args:
        events: the schedule.
        plan: the run's plan (`kafkabench.plan.RunPlan`): the members' specs.
    """

    def __init__(self, events: Iterable[MemberEvent], plan: Any):
        self.events = list(events)
        self.trace_dir = tempfile.mkdtemp(prefix="kafkabench-trace-")
        #: The run's plan with every member tracing its consumption: run this one.
        self.plan = plan = replace(plan, consumers=tuple(
            replace(s, trace=self._trace_path(s.worker)) for s in plan.consumers))
        self.rows: list[dict[str, Any]] = []
        self._t0: float | None = None
        # (topic, group, member) -> the worker that is that member now.
        self._current: dict[tuple[int, int, int], Any] = {}
        self._groups: dict[tuple[int, int], list[Any]] = {}
        topics = list(plan.topics)
        for spec in plan.consumers:
            t = topics.index(spec.topics[0])
            g = int(spec.group.rsplit("-g", 1)[1])
            members = self._groups.setdefault((t, g), [])
            self._current[(t, g, len(members))] = spec
            members.append(spec)
        self._restarts = 0
        self._t0_wall: float | None = None

    def _trace_path(self, worker: str) -> str:
        return os.path.join(self.trace_dir, f"{worker}.csv")

    def on_go(self, session: Any) -> None:
        self._t0 = time.monotonic()
        self._t0_wall = time.time()

    def on_second(self, session: Any) -> None:
        if self._t0 is None:
            return
        now = time.monotonic() - self._t0
        while self.events and self.events[0].at_s <= now:
            self._apply(session, self.events.pop(0), now)

    def on_end(self, session: Any) -> None:
        for event in self.events:  # never reached: the run ended first
            self.rows.append(self._row(event, None, "", None, "skipped", "the run ended before at_s"))
        self.events = []

    def contribute(self, result: Any) -> None:
        try:
            trace = read_traces(self.trace_dir)
        finally:
            shutil.rmtree(self.trace_dir, ignore_errors=True)
        frame = membership_frame(self.rows)
        if len(frame):
            frame = event_figures(frame, result.rebalances, trace, result.lag,
                                  end_wall=(self._t0_wall or 0.0) + float(result.summary.get("duration_s") or 0.0))
        result.membership = frame

    # ------------------------------------------------------------------ actions

    def _apply(self, session: Any, event: MemberEvent, now: float) -> None:
        key = (event.topic, event.group, event.member)
        spec = self._current.get(key)
        try:
            if event.action == "join":
                members = self._groups[(event.topic, event.group)]
                base = members[0]
                name = f"{base.worker.rsplit('-c', 1)[0]}-c{len(members)}"
                config = dict(base.config)
                if "group.instance.id" in config:  # a static member of its own
                    config["group.instance.id"] = config["group.instance.id"].replace(base.worker, name)
                spec = replace(base, worker=name, config=config, trace=self._trace_path(name))
                self._current[(event.topic, event.group, len(members))] = spec
                members.append(spec)
                session.start_member(spec)
                self.rows.append(self._row(event, now, name, None, "ok", ""))
                return
            if spec is None:
                raise KafkabenchError(f"no member {event.member} of group {event.group}")
            if event.action == "crash":
                pid = session.pool.kill(spec.worker)
                self.rows.append(self._row(event, now, spec.worker, pid, "ok", ""))
            elif event.action == "leave":
                session.pool.stop_worker(spec.worker)
                self.rows.append(self._row(event, now, spec.worker, None, "ok", ""))
            else:  # restart
                self._restarts += 1
                name = f"{member_identity(spec.worker)}-r{self._restarts}"
                fresh = replace(spec, worker=name, trace=self._trace_path(name))
                self._current[key] = fresh
                session.start_member(fresh)
                self.rows.append(self._row(event, now, fresh.worker, None, "ok", ""))
        except KafkabenchError as exc:
            self.rows.append(self._row(event, now, spec.worker if spec else "", None, "failed", str(exc)))

    def _row(self, event: MemberEvent, now: float | None, worker: str, pid: int | None,
             outcome: str, error: str) -> dict[str, Any]:
        spec = self._current.get((event.topic, event.group, 0))
        return {"at_s": event.at_s, "t_s": math.nan if now is None else now, "action": event.action,
                "topic": event.topic, "group": event.group, "member": event.member,
                "worker": worker, "pid": pid, "outcome": outcome, "error": error,
                "wall": math.nan if now is None or self._t0_wall is None else self._t0_wall + now,
                "group_id": spec.group if spec else "", "topic_name": spec.topics[0] if spec else ""}


def membership_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The `membership` frame (`kafkabench.contract`)."""
    empty = empty_frame("membership")
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())


class GroupSettings(RunObserver):
    """Sets group configs on the run's consumer groups before their members join: KIP-848
    groups (`group.protocol=consumer`) take their session timeout and heartbeat interval
    from the broker (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`), not
    from the client.

    Args:
        settings: group config -> value, e.g. {"consumer.session.timeout.ms": 6000}.
        bootstrap: bootstrap servers.
        conf: extra client settings (security).
    """

    def __init__(self, settings: Mapping[str, Any], bootstrap: str, conf: Mapping[str, Any] | None = None):
        self.settings, self.bootstrap, self.conf = dict(settings), bootstrap, dict(conf or {})

    def on_start(self, session: Any) -> None:
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        from kafkabench.cluster.admin import admin_client

        admin = admin_client(self.bootstrap, self.conf)
        resources = [ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in self.settings.items()])
            for group in session.plan.groups]
        for resource, future in admin.incremental_alter_configs(resources).items():
            try:
                future.result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - the broker's reason, named
                raise ConfigError(f"group settings {self.settings} on {resource.name!r}: {exc}") from None


