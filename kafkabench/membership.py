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
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from kafkabench.contract import empty_frame
from kafkabench.errors import ConfigError, KafkabenchError
from kafkabench.session import RunObserver

ACTIONS = ("crash", "restart", "join", "leave")
#: Seconds of lag samples before an event that set the level its lag must drain back to.
DRAIN_BASELINE_S = 3.0


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """One membership event.

    Args:
        at_s: seconds after the producers start.
        action: "crash", "restart", "join" or "leave".
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

        from kafkabench.admin import admin_client

        admin = admin_client(self.bootstrap, self.conf)
        resources = [ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in self.settings.items()])
            for group in session.plan.groups]
        for resource, future in admin.incremental_alter_configs(resources).items():
            try:
                future.result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - the broker's reason, named
                raise ConfigError(f"group settings {self.settings} on {resource.name!r}: {exc}") from None


def ownership(rebalances: pd.DataFrame, membership: pd.DataFrame | None = None, *,
              group: str | None = None, end_t: float | None = None) -> pd.DataFrame:
    """Who owned which partition when, from the members' rebalance callbacks: one row per
    interval (group, topic, partition, member, start_t, end_t; t as in the run's frames).

    A member that crashed or left owns nothing from then on; an interval still open at the
    end closes at `end_t` (default: the last event).

    Args:
        rebalances: the run's `rebalances` frame.
        membership: the run's `membership` frame (crash and leave times), or None.
        group: one group (default: every group).
        end_t: where open intervals end.
    """
    columns = ["group", "topic", "partition", "member", "start_t", "end_t"]
    if rebalances is None or not len(rebalances):
        return pd.DataFrame(columns=columns)
    ev = rebalances if group is None else rebalances[rebalances["group"] == group]
    marks = [(t, "assign" if e == "assign" else "revoke", g, m, str(parts))
             for t, g, m, e, parts in zip(ev["t"], ev["group"], ev["member"], ev["event"], ev["partitions"].fillna(""))]
    if membership is not None and len(membership):
        for row in membership[membership["action"].isin(["crash", "leave"]) & membership["t_s"].notna()].itertuples():
            marks.append((row.t_s, "gone", row.group_id, row.worker, ""))
    marks.sort(key=lambda x: x[0])
    end = end_t if end_t is not None else (marks[-1][0] if marks else 0.0)
    open_: dict[tuple[str, str, int], tuple[str, float]] = {}
    rows = []

    def close(key: tuple[str, str, int], t: float) -> None:
        member, since = open_.pop(key)
        rows.append((*key, member, since, t))

    for t, kind, g, member, parts in marks:
        if kind == "gone":
            for key in [k for k, (m, _) in open_.items() if k[0] == g and m == member]:
                close(key, t)
            continue
        for text in filter(None, parts.split(",")):
            topic, _, partition = text.rpartition(":")
            key = (g, topic, int(partition))
            if key in open_ and (kind == "assign" or open_[key][0] == member):
                close(key, t)
            if kind == "assign":
                open_[key] = (member, t)
    for key in list(open_):
        close(key, max(end, open_[key][1]))
    return pd.DataFrame(rows, columns=columns).sort_values(["group", "topic", "partition", "start_t"],
                                                           ignore_index=True)


def member_identity(worker: str) -> str:
    """The member a worker is: a restarted member's workers (`<name>-r<k>`) are one member."""
    return re.sub(r"-r\d+$", "", worker)


def read_traces(folder: str | os.PathLike) -> pd.DataFrame:
    """Every member's consumption trace in `folder` (`<worker>.csv`, see
    `kafkabench.consumer.ConsumptionTrace`): columns member (the worker), wall, topic,
    partition, first_offset, last_offset, count, sorted by wall."""
    from kafkabench.consumer import ConsumptionTrace

    frames = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if not name.endswith(".csv") or os.path.getsize(path) == 0:
            continue
        # A member killed mid-write leaves at most one partial last line: skipped.
        frame = pd.read_csv(path, names=list(ConsumptionTrace.COLUMNS), on_bad_lines="skip",
                            dtype={"topic": str})
        frames.append(frame.dropna().assign(member=name[:-4]))
    if not frames:
        return pd.DataFrame(columns=["member", *ConsumptionTrace.COLUMNS])
    trace = pd.concat(frames, ignore_index=True)
    for column in ("partition", "first_offset", "last_offset", "count"):
        trace[column] = trace[column].astype("int64")
    return trace.sort_values("wall", kind="stable").reset_index(drop=True)


def event_figures(frame: pd.DataFrame, rebalances: pd.DataFrame, trace: pd.DataFrame,
                  lag: pd.DataFrame | None, *, end_wall: float) -> pd.DataFrame:
    """The `membership` frame with each carried-out event's figures (columns from
    `detect_s` on; NaN where an event had nothing to measure).

    An event's window runs from its wall time to the next event of its group (or the run's
    end). Partitions and members are those of the event's group and input topic.

    Args:
        frame: the `membership` frame (wall, group_id, topic_name filled).
        rebalances: the run's `rebalances` frame (wall, group, member, event, partitions).
        trace: `read_traces` of the run.
        lag: the run's `lag` frame (None: no lag figures).
        end_wall: the run's end, Unix time.
    """
    frame = frame.copy()
    for column in _FIGURES:
        frame[column] = math.nan
    ok = frame.index[(frame["outcome"] == "ok") & frame["wall"].notna()]
    for i in ok:
        row = frame.loc[i]
        group, topic, start = row["group_id"], row["topic_name"], float(row["wall"])
        later = frame.loc[ok][(frame.loc[ok, "group_id"] == group) & (frame.loc[ok, "wall"] > start)]
        end = float(later["wall"].min()) if len(later) else end_wall
        events = _group_events(rebalances, group, topic)
        during = events[(events["wall"] > start) & (events["wall"] < end)]
        if len(during):
            frame.loc[i, "detect_s"] = during["wall"].iloc[0] - start
            frame.loc[i, "stable_s"] = during["wall"].iloc[-1] - start
        frame.loc[i, "partitions_revoked"] = int(during.loc[during["event"] != "assign", "n"].sum())
        frame.loc[i, "partitions_assigned"] = int(during.loc[during["event"] == "assign", "n"].sum())
        gone = row["worker"] if row["action"] in ("crash", "leave") else None
        before = _owners(events[events["wall"] <= start], gone_at=None)
        after = _owners(events[events["wall"] < end], gone_at=(gone, start) if gone else None)
        # Moved: owned by another member than before (not: unowned until the window's end,
        # as a crashed static member's partitions are until it returns).
        frame.loc[i, "partitions_moved"] = sum(after[p] != before.get(p) for p in after)
        mine = trace[(trace["topic"] == topic) & trace["member"].isin(_members(rebalances, trace, group))]
        frame.loc[i, "partition_pause_s"] = max(
            (_longest_gap(part["wall"].to_numpy(), start, end) for _, part in mine.groupby("partition")),
            default=math.nan)
        frame.loc[i, "group_pause_s"] = _longest_gap(mine["wall"].to_numpy(), start, end)
        frame.loc[i, "duplicates"] = _duplicates(mine, start, end)
        if lag is not None and len(lag):
            peak, drain = _lag_peak(lag, group, start, end)
            frame.loc[i, "lag_peak_msgs"], frame.loc[i, "drain_s"] = peak, drain
    return frame


_FIGURES = ("detect_s", "stable_s", "partition_pause_s", "group_pause_s", "partitions_revoked",
            "partitions_assigned", "partitions_moved", "duplicates", "lag_peak_msgs", "drain_s")


def _group_events(rebalances: pd.DataFrame, group: str, topic: str) -> pd.DataFrame:
    """The group's rebalance events with `parts` (the topic's partitions) and `n`."""
    if rebalances is None or not len(rebalances):
        return pd.DataFrame(columns=["wall", "member", "event", "parts", "n"])
    ev = rebalances[rebalances["group"] == group].sort_values("wall", kind="stable").copy()
    prefix = f"{topic}:"
    ev["parts"] = [tuple(int(x[len(prefix):]) for x in str(text).split(",") if x.startswith(prefix))
                   for text in ev["partitions"].fillna("")]
    ev["n"] = [len(p) for p in ev["parts"]]
    return ev


def _owners(events: pd.DataFrame, gone_at: tuple[str, float] | None) -> dict[int, str]:
    """Partition -> owning member (identity) after `events`; `gone_at` (worker, wall): that
    worker owns nothing (it crashed or left)."""
    owner: dict[int, str] = {}
    for member, event, parts in zip(events["member"], events["event"], events["parts"]):
        who = member_identity(member)
        for p in parts:
            if event == "assign":
                owner[p] = who
            elif owner.get(p) == who:
                del owner[p]
    if gone_at is not None:
        gone = member_identity(gone_at[0])
        # Unless it came back (a restart) after going.
        came_back = any(member_identity(m) == gone and e == "assign" and w > gone_at[1]
                        for m, e, w in zip(events["member"], events["event"], events["wall"]))
        if not came_back:
            owner = {p: m for p, m in owner.items() if m != gone}
    return owner


def _members(rebalances: pd.DataFrame, trace: pd.DataFrame, group: str) -> set[str]:
    """Workers of `group` (from its rebalance events)."""
    if rebalances is None or not len(rebalances):
        return set(trace["member"])
    return set(rebalances.loc[rebalances["group"] == group, "member"])


def _longest_gap(walls: Any, start: float, end: float) -> float:
    """The longest time between consecutive consumption times that overlaps [start, end)
    (a gap open at `end` counts up to `end`); NaN without consumption."""
    import numpy as np

    walls = np.sort(np.asarray(walls, dtype=float))
    if not len(walls):
        return math.nan
    points = np.concatenate([walls[walls < end], [end]])
    gaps = np.diff(points)
    lo, hi = points[:-1], points[1:]
    overlap = (hi > start) & (lo < end)
    return float(gaps[overlap].max()) if overlap.any() else 0.0


def _duplicates(trace: pd.DataFrame, start: float, end: float) -> int:
    """Records consumed again within [start, end): per partition, in time order, offsets at
    or below the highest one any member had consumed before."""
    total = 0
    for _, part in trace.groupby("partition"):
        highest = -1
        for wall, first, last in zip(part["wall"], part["first_offset"], part["last_offset"]):
            if first <= highest and start <= wall < end:
                total += min(last, highest) - first + 1
            highest = max(highest, last)
    return total


def _lag_peak(lag: pd.DataFrame, group: str, start: float, end: float) -> tuple[float, float]:
    """(the group's highest lag in [start, end), seconds from `start` until its lag was back
    to the highest level of the DRAIN_BASELINE_S before `start`; NaN: never within the window)."""
    rows = lag[(lag["group"] == group) & (lag["partition"] >= 0) & lag["lag_msgs"].notna()]
    if not len(rows):
        return math.nan, math.nan
    total = rows.groupby("time")["lag_msgs"].sum().sort_index()  # the group's lag per sample
    walls = (total.index.asi8 / 1e6).astype(float) if total.index.unit == "us" else \
        total.index.map(lambda t: t.timestamp()).to_numpy(dtype=float)
    values = total.to_numpy(dtype=float)
    base = values[(walls >= start - DRAIN_BASELINE_S) & (walls < start)]
    window = (walls >= start) & (walls < end)
    if not window.any():
        return math.nan, math.nan
    peak_at = int(window.nonzero()[0][values[window].argmax()])
    level = base.max() if len(base) else 0.0
    for w, v in zip(walls[peak_at:], values[peak_at:]):
        if w >= end:
            break
        if v <= level:
            return float(values[peak_at]), float(w - start)
    return float(values[peak_at]), math.nan
