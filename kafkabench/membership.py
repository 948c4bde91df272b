"""Consumer-group membership events during a run: crash, restart and join members.

A workload's `membership` schedule, e.g. `[{at_s: 5, action: crash, member: 0},
{at_s: 12, action: restart, member: 0}]`, is carried out by `MembershipObserver` while the
producers run:

- `crash`: SIGKILL the member's worker process (no commit, no LeaveGroup: the group notices
  when the member's session times out, `session.timeout.ms`).
- `restart`: start the member again (a new process, worker name `<name>-r<k>`, the same
  settings, so a `group.instance.id` is the same static member).
- `join`: start one more member of the group (worker name `<group>-c<n>` after the plan's).

Members that must be killable run as processes: a schedule with `crash` needs the run's
workers to be processes (`mode="process"`, the default when a run has several workers).
Each event is a row of the `membership` frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from kafkabench.contract import empty_frame
from kafkabench.errors import ConfigError, KafkabenchError
from kafkabench.session import RunObserver

ACTIONS = ("crash", "restart", "join")


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """One membership event.

    Args:
        at_s: seconds after the producers start.
        action: "crash", "restart" or "join".
        member: the member's index in its group (join: ignored).
        group: the group's index (of `topic`).
        topic: the topic's index.
    """

    at_s: float
    action: str
    member: int = 0
    group: int = 0
    topic: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.at_s, bool) or not isinstance(self.at_s, (int, float)) \
                or math.isnan(self.at_s) or self.at_s < 0:
            raise ConfigError(f"membership at_s={self.at_s!r}: expected seconds >= 0")
        object.__setattr__(self, "at_s", float(self.at_s))
        if self.action not in ACTIONS:
            raise ConfigError(f"membership action={self.action!r}: expected one of {', '.join(ACTIONS)}")
        for name in ("member", "group", "topic"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"membership {name}={value!r}: expected an index >= 0")


def parse_member_events(items: Iterable[Any] | None, *, members: int | None = None,
                        groups: int | None = None, topics: int | None = None,
                        run_s: float | None = None) -> tuple[MemberEvent, ...]:
    """A workload's `membership` list as `MemberEvent`s, sorted by time.

    Args:
        items: mappings (or `MemberEvent`s).
        members, groups, topics: the workload's counts, to refuse an index it does not have.
        run_s: the run's length, to refuse an event after its end.

    Raises:
        ConfigError: a bad entry, named by its position.
    """
    if items is None:
        return ()
    if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"workload membership={items!r}: expected a list of events, "
                          "e.g. [{at_s: 5, action: crash, member: 0}]")
    known = [f for f in MemberEvent.__dataclass_fields__]
    events = []
    for i, item in enumerate(items):
        if isinstance(item, MemberEvent):
            event = item
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - set(known))
            if unknown:
                raise ConfigError(f"membership[{i}]: unknown keys {unknown}; expected some of {known}")
            try:
                event = MemberEvent(**item)
            except TypeError as exc:
                raise ConfigError(f"membership[{i}]={dict(item)!r}: {exc}") from exc
            except ConfigError as exc:
                raise ConfigError(f"membership[{i}]: {exc}") from exc
        else:
            raise ConfigError(f"membership[{i}]={item!r}: expected a mapping")
        for name, limit in (("member", members), ("group", groups), ("topic", topics)):
            if limit is None or (name == "member" and event.action == "join"):
                continue
            if getattr(event, name) >= limit:
                raise ConfigError(f"membership[{i}]: {name}={getattr(event, name)} but the "
                                  f"workload has {limit} {name}(s) per {'group' if name == 'member' else 'run'} "
                                  "(indexes from 0)")
        if run_s is not None and event.at_s >= run_s:
            raise ConfigError(f"membership[{i}]: at_s={event.at_s:g} is not within the run "
                              f"({run_s:g} s)")
        events.append(event)
    return tuple(sorted(events, key=lambda e: e.at_s))


def event_dict(event: MemberEvent) -> dict[str, Any]:
    """An event as the mapping a workload file holds."""
    return asdict(event)


class MembershipObserver(RunObserver):
    """Carries out a membership schedule during a run and records it (`membership` frame).

    Args:
        events: the schedule.
        plan: the run's plan (`kafkabench.plan.RunPlan`): the members' specs.
    """

    def __init__(self, events: Iterable[MemberEvent], plan: Any):
        self.events = list(events)
        self.plan = plan
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

    def on_go(self, session: Any) -> None:
        self._t0 = time.monotonic()

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
        result.membership = membership_frame(self.rows)

    # ------------------------------------------------------------------ actions

    def _apply(self, session: Any, event: MemberEvent, now: float) -> None:
        key = (event.topic, event.group, event.member)
        spec = self._current.get(key)
        try:
            if event.action == "join":
                members = self._groups[(event.topic, event.group)]
                base = members[0]
                name = f"{base.worker.rsplit('-c', 1)[0]}-c{len(members)}"
                spec = replace(base, worker=name)
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
            else:  # restart
                self._restarts += 1
                fresh = replace(spec, worker=f"{spec.worker.split('-r', 1)[0]}-r{self._restarts}")
                self._current[key] = fresh
                session.start_member(fresh)
                self.rows.append(self._row(event, now, fresh.worker, None, "ok", ""))
        except KafkabenchError as exc:
            self.rows.append(self._row(event, now, spec.worker if spec else "", None, "failed", str(exc)))

    def _row(self, event: MemberEvent, now: float | None, worker: str, pid: int | None,
             outcome: str, error: str) -> dict[str, Any]:
        return {"at_s": event.at_s, "t_s": math.nan if now is None else now, "action": event.action,
                "topic": event.topic, "group": event.group, "member": event.member,
                "worker": worker, "pid": pid, "outcome": outcome, "error": error}


def membership_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The `membership` frame (`kafkabench.contract`)."""
    empty = empty_frame("membership")
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=list(empty.columns)).astype(empty.dtypes.to_dict())
