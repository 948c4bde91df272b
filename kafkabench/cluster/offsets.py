"""Consumer group offsets: show them, reset them (a dry run unless asked), seek a consumer to a
time, and replay a group from a time.

What `kafka-consumer-groups --describe` and `--reset-offsets` do, on confluent-kafka's
AdminClient: committed offsets from OffsetFetch, log start and end from ListOffsets (the
`earliest`, `latest` and timestamp specs), owners from DescribeConsumerGroups, which answers
for classic groups and for KIP-848 `consumer` protocol groups alike. Every request has a
timeout, and an unreachable cluster is a `ClusterError` within seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafkabench.cluster.admin import admin_client, describe_topics, list_consumer_groups
from kafkabench.cluster.local import REACHABLE_TIMEOUT_S, check_reachable, resolve_bootstrap
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.core.units import parse_duration

#: Columns of `show()`: one row per partition.
SHOW_COLUMNS: list[str] = ["group", "topic", "partition", "committed", "log_start", "log_end", "lag",
                           "member", "client_id", "host", "state"]
#: Columns of `plan_reset()` and `reset()`: one row per partition.
PLAN_COLUMNS: list[str] = ["group", "topic", "partition", "current", "new", "log_start", "log_end"]
_OFFSET_COLUMNS = ("partition", "committed", "log_start", "log_end", "lag", "current", "new")

#: The reset specs, as `kafka-consumer-groups --reset-offsets` names them (with `_` for `-`).
SPEC_KINDS: tuple[str, ...] = ("to_earliest", "to_latest", "to_datetime", "by_duration", "shift_by",
                               "to_offset")
_NO_VALUE = ("to_earliest", "to_latest")

# Kafka's names of the group states (kafka-consumer-groups --describe --state).
_STATE_NAMES = {ConsumerGroupState.EMPTY: "Empty", ConsumerGroupState.STABLE: "Stable",
                ConsumerGroupState.DEAD: "Dead", ConsumerGroupState.UNKNOWN: "Unknown",
                ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
                ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance"}
_INACTIVE = ("Empty", "Dead")

TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """Where a reset moves each partition's committed offset.

    Attributes:
        kind: one of `SPEC_KINDS`.
        value: None (to_earliest, to_latest), an aware `datetime` (to_datetime), seconds
            (by_duration) or an offset count (shift_by, to_offset).
    """

    kind: str
    value: Any = None

    def timestamp_ms(self, now: datetime | None = None) -> int | None:
        """The time a to_datetime or by_duration spec points at, in ms since the epoch (else None)."""
        if self.kind == "to_datetime":
            return round(self.value.timestamp() * 1000)
        if self.kind == "by_duration":
            return round(((now or datetime.now(UTC)) - timedelta(seconds=self.value)).timestamp() * 1000)
        return None

    def describe(self) -> str:
        """The spec as the CLI option that gives it, e.g. `--shift-by -5`."""
        option = "--" + self.kind.replace("_", "-")
        if self.kind in _NO_VALUE:
            return option
        value = self.value.isoformat() if isinstance(self.value, datetime) else f"{self.value:g}"
        return f"{option} {value}"


def parse_datetime(value: str | datetime, option: str = "to_datetime") -> datetime:
    """An ISO 8601 date and time with its time zone.

    Args:
        value: e.g. "2026-03-01T12:00:00Z", "2026-03-01T13:00:00+01:00", or an aware datetime.
        option: the name the error calls the value by.

    Returns:
        The aware datetime.

    Raises:
        ConfigError: not ISO 8601, or without a time zone (a zone-less time would mean
            whatever the local zone of the machine is; Kafka's tool guesses it, we do not).
    """
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ConfigError(f"{option} {value!r} is not an ISO 8601 date and time; write e.g. "
                              "2026-03-01T12:00:00Z or 2026-03-01T13:00:00+01:00") from None
    if when.tzinfo is None or when.utcoffset() is None:
        text = value.isoformat() if isinstance(value, datetime) else str(value).strip()
        raise ConfigError(f"{option} {text!r} has no time zone: add one, e.g. {text}+00:00 or "
                          f"{text}Z for UTC")
    return when


def parse_spec(spec: ResetSpec | str | Mapping[str, Any]) -> ResetSpec:
    """A reset spec from its Python forms.

    Args:
        spec: a `ResetSpec`; "to_earliest" or "to_latest"; or a mapping with exactly one of
            `SPEC_KINDS` as key, e.g. {"to_datetime": "2026-03-01T12:00:00Z"},
            {"by_duration": "1h30m"}, {"shift_by": -100}, {"to_offset": 0}.

    Returns:
        The validated spec.

    Raises:
        ConfigError: an unknown kind, none or several kinds, or a bad value (named).
    """
    if isinstance(spec, ResetSpec):
        kind, value = spec.kind, spec.value
    elif isinstance(spec, str):
        kind, value = spec.strip().replace("-", "_").removeprefix("__"), None
    elif isinstance(spec, Mapping):
        given = {k.replace("-", "_"): v for k, v in spec.items()
                 if v is not None and v is not False}
        if len(given) != 1:
            raise ConfigError(f"reset spec {dict(spec)!r}: give exactly one of {', '.join(SPEC_KINDS)}"
                              f"{' (got ' + ', '.join(given) + ')' if given else ''}")
        ((kind, value),) = given.items()
        value = None if value is True else value
    else:
        raise ConfigError(f"reset spec {spec!r}: give a name (to_earliest, to_latest) or a "
                          "mapping such as {'to_datetime': '2026-03-01T12:00:00Z'}")
    if kind not in SPEC_KINDS:
        raise ConfigError(f"reset spec {kind!r} is unknown; use one of {', '.join(SPEC_KINDS)}")
    return ResetSpec(kind, _spec_value(kind, value))


def _spec_value(kind: str, value: Any) -> Any:
    if kind in _NO_VALUE:
        if value is not None:
            raise ConfigError(f"reset spec {kind} takes no value, got {value!r}")
        return None
    if value is None:
        raise ConfigError(f"reset spec {kind} needs a value")
    if kind == "to_datetime":
        return parse_datetime(value, kind)
    if kind == "by_duration":
        return parse_duration(value) if not isinstance(value, timedelta) else value.total_seconds()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", str(value).strip()):
        raise ConfigError(f"{kind} {value!r}: expected a whole number of offsets, e.g. "
                          f"{'-100' if kind == 'shift_by' else '0'}")
    number = int(str(value).strip())
    if kind == "to_offset" and number < 0:
        raise ConfigError(f"to_offset {value!r}: offsets start at 0")
    return number


def parse_topics(topics: str | Iterable[str] | None) -> dict[str, tuple[int, ...] | None]:
    """Topic selections as `kafka-consumer-groups --topic` takes them.

    Args:
        topics: entries "T" (every partition), "T:P" or "T:P1,P2"; one string or several.

    Returns:
        {topic: its partitions, or None for all of them}, in the order given.

    Raises:
        ConfigError: an entry that is not of these forms (quoted).
    """
    if topics is None:
        return {}
    out: dict[str, tuple[int, ...] | None] = {}
    for entry in [topics] if isinstance(topics, str) else topics:
        name, sep, parts = str(entry).strip().partition(":")
        if not name or (sep and not re.fullmatch(r"\d+(,\d+)*", parts.replace(" ", ""))):
            raise ConfigError(f"topic {entry!r}: write TOPIC, TOPIC:PARTITION or "
                              "TOPIC:PARTITION,PARTITION (e.g. orders:0,2)")
        if not sep:
            out[name] = None
        elif out.get(name, ()) is not None:
            out[name] = tuple(sorted({*out.get(name, ()), *map(int, parts.replace(" ", "").split(","))}))
    return out


# ---------------------------------------------------------------------- the group on the cluster


@dataclass(slots=True)
class _Group:
    """A group's state, members and committed offsets, as the coordinator answered."""

    name: str
    bootstrap: str
    state: str
    protocol: str
    members: list[Any]
    committed: dict[tuple[str, int], int | None]
    owner: dict[tuple[str, int], Any] = field(default_factory=dict)

    @property
    def topics(self) -> list[str]:
        return sorted({t for t, _ in self.committed} | {t for t, _ in self.owner})

    def member_list(self) -> str:
        return ", ".join(f"{m.client_id} at {m.host.lstrip('/')}" for m in self.members[:5]) + \
            (f", and {len(self.members) - 5} more" if len(self.members) > 5 else "")


class _Client:
    """An AdminClient with the timeouts and error messages of this module."""

    def __init__(self, bootstrap: str | None, conf: Mapping[str, Any] | None, timeout_s: float):
        self.bootstrap = resolve_bootstrap(bootstrap)
        self.conf = dict(conf or {})
        check_reachable(self.bootstrap, self.conf, timeout_s=min(timeout_s, REACHABLE_TIMEOUT_S))
        self.timeout_s = timeout_s
        self.admin: AdminClient = admin_client(self.bootstrap, self.conf)

    def result(self, future: Any, what: str) -> Any:
        try:
            return future.result(timeout=self.timeout_s + 1.0)
        except KafkaException as exc:
            raise ClusterError(f"{what} at {self.bootstrap} failed: {exc.args[0].str()}") from exc
        except TimeoutError as exc:
            raise ClusterError(f"{what} at {self.bootstrap}: no answer within {self.timeout_s:g} s") from exc

    def group(self, name: str) -> _Group:
        """The group; a ConfigError when it has neither committed offsets nor members."""
        if not name:
            raise ConfigError("consumer group '': name the group (--group G)")
        kw = {"request_timeout": self.timeout_s}
        desc = self.result(self.admin.describe_consumer_groups([name], **kw)[name],
                           f"describing consumer group {name!r}")
        listed = self.result(self.admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(name)], **kw)[name], f"fetching the offsets of group {name!r}")
        # A partition without a commit comes back with offset -1001 (OFFSET_INVALID).
        committed = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                     for tp in listed.topic_partitions or [] if tp.error is None}
        group = _Group(name, self.bootstrap, _STATE_NAMES.get(desc.state, str(desc.state)),
                       getattr(desc.type, "name", "UNKNOWN").lower(), list(desc.members or []),
                       committed)
        for m in group.members:
            for tp in (m.assignment.topic_partitions if m.assignment else []):
                group.owner[(tp.topic, tp.partition)] = m
        if not group.committed and not group.members:
            raise ConfigError(f"consumer group {name!r} is unknown at {self.bootstrap}: it has no "
                              f"committed offsets and no members{self._groups_there()}")
        return group

    def _groups_there(self) -> str:
        try:
            groups = list_consumer_groups(self.bootstrap, conf=self.conf, timeout_s=self.timeout_s)
        except ClusterError:
            return ""
        if not groups:
            return " (the cluster has no consumer groups)"
        return f" (groups there: {', '.join(groups[:10])}{', ...' if len(groups) > 10 else ''})"

    def partitions(self, group: _Group, topics: Mapping[str, tuple[int, ...] | None]
                   ) -> list[tuple[str, int]]:
        """The partitions selected by `topics` (all of the group's when empty), checked."""
        if not topics:
            return sorted(set(group.committed) | set(group.owner))
        consumed = group.topics
        for topic in topics:
            if topic not in consumed:
                raise ConfigError(
                    f"consumer group {group.name!r} does not consume topic {topic!r} (no committed "
                    f"offsets, no member assigned to it); its topics: {', '.join(consumed) or 'none'}")
        found = describe_topics(self.admin, topics, self.timeout_s)
        out = []
        for topic, chosen in topics.items():
            known = found[topic]
            if isinstance(known, KafkaError):
                raise ConfigError(f"topic {topic!r} of group {group.name!r} cannot be described at "
                                  f"{self.bootstrap}: {known.str()}")
            ids = [p.partition for p in known]
            missing = sorted(set(chosen or ()) - set(ids))
            if missing:
                raise ConfigError(f"topic {topic!r} has no partition {', '.join(map(str, missing))}; "
                                  f"its partitions are 0-{max(ids)}")
            out += [(topic, p) for p in (chosen if chosen is not None else ids)]
        return sorted(out)

    def offsets(self, partitions: Iterable[tuple[str, int]], spec: OffsetSpec, what: str
                ) -> dict[tuple[str, int], int]:
        """ListOffsets of `partitions` (-1: no record at or after a timestamp spec)."""
        partitions = list(partitions)
        if not partitions:
            return {}
        futures = self.admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions},
                                          request_timeout=self.timeout_s)
        return {(tp.topic, tp.partition): self.result(f, f"{what} of {tp.topic}:{tp.partition}").offset
                for tp, f in futures.items()}

    def log_bounds(self, partitions: Sequence[tuple[str, int]]
                   ) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        return (self.offsets(partitions, OffsetSpec.earliest(), "log start offset"),
                self.offsets(partitions, OffsetSpec.latest(), "log end offset"))


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for c in columns:
        frame[c] = frame[c].astype("Int64" if c in _OFFSET_COLUMNS else "str")
    return frame


# ---------------------------------------------------------------------- show


def show(group: str, *, bootstrap: str | None = None, conf: Mapping[str, Any] | None = None,
         topics: str | Iterable[str] | None = None, timeout_s: float = TIMEOUT_S) -> pd.DataFrame:
    """A group's offsets and lag per partition, as `kafka-consumer-groups --describe` shows them.

    Args:
        group: the consumer group (classic or KIP-848 `consumer` protocol).
        bootstrap: bootstrap servers (default: `cluster.resolve_bootstrap()`).
        conf: extra client settings (security).
        topics: only these ("T", "T:P", "T:P1,P2"), every partition of a "T" included even
            without a committed offset (default: each partition the group has committed
            offsets for or a member owns).
        timeout_s: time allowed for each request.

    Returns:
        `SHOW_COLUMNS`: committed <NA> where the group committed nothing (lag then too);
        member, client_id, host "" where no active member owns the partition; state is the
        group's (Empty, Stable, ...), the same on every row.

    Raises:
        ConfigError: unknown group, a topic it does not consume, a bad topic entry.
        ClusterError: the cluster is unreachable or did not answer.
    """
    chosen = parse_topics(topics)
    client = _Client(bootstrap, conf, timeout_s)
    g = client.group(group)
    partitions = client.partitions(g, chosen)
    start, end = client.log_bounds(partitions)
    rows = []
    for tp in partitions:
        committed, owner = g.committed.get(tp), g.owner.get(tp)
        rows.append({"group": group, "topic": tp[0], "partition": tp[1], "committed": committed,
                     "log_start": start[tp], "log_end": end[tp],
                     "lag": None if committed is None else max(end[tp] - committed, 0),
                     "member": owner.member_id if owner else "",
                     "client_id": owner.client_id if owner else "",
                     "host": owner.host.lstrip("/") if owner else "", "state": g.state})
    frame = _frame(rows, SHOW_COLUMNS)
    frame.attrs.update(state=g.state, protocol=g.protocol, members=len(g.members))
    return frame


# ---------------------------------------------------------------------- reset


def plan_reset(group: str, spec: ResetSpec | str | Mapping[str, Any], *,
               topics: str | Iterable[str] | None = None, bootstrap: str | None = None,
               conf: Mapping[str, Any] | None = None, timeout_s: float = TIMEOUT_S) -> pd.DataFrame:
    """Each partition's committed offset now and after a reset; changes nothing.

    Kafka's rules (`kafka-consumer-groups --reset-offsets`): to_datetime and by_duration go
    to the first offset whose record timestamp is at or after the time, or the log end when no
    record is; shift_by moves from the committed offset, and shift_by and to_offset are
    clamped to [log start, log end].

    Args:
        group: the consumer group.
        spec: see `parse_spec`, e.g. {"to_datetime": "2026-03-01T12:00:00Z"}, "to_earliest".
        topics: "T", "T:P" or "T:P1,P2" entries (default: every partition the group has
            committed offsets for or a member owns).
        bootstrap: bootstrap servers.
        conf: extra client settings (security).
        timeout_s: time allowed for each request.

    Returns:
        `PLAN_COLUMNS`, current <NA> where the group committed nothing; `attrs` hold the
        group's state, protocol, members and the spec's `timestamp_ms` (None unless by time).

    Raises:
        ConfigError: a bad spec or topic entry, an unknown group, a topic it does not consume,
            shift_by on a partition without a committed offset.
        ClusterError: the cluster is unreachable or did not answer.
    """
    return _plan(group, parse_spec(spec), parse_topics(topics), _Client(bootstrap, conf, timeout_s))[0]


def _plan(group: str, spec: ResetSpec, topics: Mapping[str, tuple[int, ...] | None],
          client: _Client) -> tuple[pd.DataFrame, _Group]:
    g = client.group(group)
    partitions = client.partitions(g, topics)
    start, end = client.log_bounds(partitions)
    ts = spec.timestamp_ms()
    at_time = (client.offsets(partitions, OffsetSpec.for_timestamp(ts), "offset for time")
               if ts is not None else {})
    rows = []
    for tp in partitions:
        current = g.committed.get(tp)
        rows.append({"group": group, "topic": tp[0], "partition": tp[1], "current": current,
                     "new": _new_offset(spec, tp, current, start[tp], end[tp], at_time.get(tp)),
                     "log_start": start[tp], "log_end": end[tp]})
    frame = _frame(rows, PLAN_COLUMNS)
    frame.attrs.update(state=g.state, protocol=g.protocol, members=len(g.members), timestamp_ms=ts,
                       spec=spec.describe())
    return frame, g


def _new_offset(spec: ResetSpec, tp: tuple[str, int], current: int | None, start: int, end: int,
                at_time: int | None) -> int:
    if spec.kind == "to_earliest":
        return start
    if spec.kind == "to_latest":
        return end
    if spec.kind in ("to_datetime", "by_duration"):
        # -1: no record at or after the time; Kafka's tool then goes to the log end.
        return end if at_time is None or at_time < 0 else at_time
    if spec.kind == "shift_by":
        if current is None:
            raise ConfigError(f"shift_by {spec.value}: the group has no committed offset on "
                              f"{tp[0]}:{tp[1]} to shift from; leave that partition out or use "
                              "to_offset, to_earliest or to_latest")
        return min(max(current + spec.value, start), end)
    return min(max(spec.value, start), end)


def reset(group: str, spec: ResetSpec | str | Mapping[str, Any], *,
          topics: str | Iterable[str] | None = None, bootstrap: str | None = None,
          conf: Mapping[str, Any] | None = None, execute: bool = False,
          timeout_s: float = TIMEOUT_S) -> pd.DataFrame:
    """Reset a group's committed offsets; a dry run (the plan only) unless `execute`.

    Args:
        group: the consumer group; with `execute` it must have no active members.
        spec: see `parse_spec`.
        topics: see `plan_reset`.
        bootstrap: bootstrap servers.
        conf: extra client settings (security).
        execute: commit the new offsets (AlterConsumerGroupOffsets); False changes nothing.
        timeout_s: time allowed for each request.

    Returns:
        The plan (`plan_reset`), `attrs["executed"]` saying whether it was applied.

    Raises:
        ConfigError: what `plan_reset` raises; with `execute`, a group that has active
            members (nothing is changed then).
        ClusterError: the cluster is unreachable, or refused the new offsets.
    """
    client = _Client(bootstrap, conf, timeout_s)
    plan, g = _plan(group, parse_spec(spec), parse_topics(topics), client)
    plan.attrs["executed"] = False
    if not execute:
        return plan
    if g.state not in _INACTIVE or g.members:
        raise ConfigError(
            f"consumer group {group!r} has {len(g.members)} active member(s) ({g.member_list() or 'none listed'}; "
            f"state {g.state}); stop them first, as kafka-consumer-groups does: offsets can only "
            "be reset while the group is Empty. Nothing was changed")
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, int(p), int(n)) for t, p, n in
                                                   zip(plan["topic"], plan["partition"], plan["new"])])
    done = client.result(client.admin.alter_consumer_group_offsets(
        [request], request_timeout=timeout_s)[group], f"resetting the offsets of group {group!r}")
    failed = [f"{tp.topic}:{tp.partition}: {tp.error.str()}" for tp in done.topic_partitions or []
              if tp.error is not None]
    if failed:
        raise ClusterError(f"the cluster refused new offsets of group {group!r}: {'; '.join(failed)}")
    plan.attrs["executed"] = True
    return plan


# ---------------------------------------------------------------------- a consumer's position


def seek_to_timestamp(consumer: Consumer, timestamp: datetime | str | float,
                      partitions: Iterable[TopicPartition] | None = None,
                      timeout_s: float = TIMEOUT_S) -> list[TopicPartition]:
    """Move a consumer to the first record at or after a time on each partition (the design
    source's offset manager), without committing anything.

    Call it once the assignment took effect (after `poll` delivered `on_assign`): librdkafka
    refuses to seek a partition it is not fetching yet. In an `on_assign` callback, give the
    returned offsets to `assign`/`incremental_assign` instead.

    Args:
        consumer: a confluent_kafka Consumer.
        timestamp: an aware datetime, an ISO 8601 text with its zone, or ms since the epoch.
        partitions: the partitions to move (default: the consumer's assignment).
        timeout_s: time allowed for the offsets_for_times request.

    Returns:
        The positions sought; OFFSET_END (-1) on a partition without a record at or after
        the time, as Kafka's tools do.

    Raises:
        ConfigError: a zone-less or malformed time, or no partitions to move.
        ClusterError: the cluster did not answer, or a seek failed.
    """
    ms = (int(timestamp) if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool)
          else round(parse_datetime(timestamp, "timestamp").timestamp() * 1000))
    chosen = list(partitions) if partitions is not None else consumer.assignment()
    if not chosen:
        raise ConfigError("seek_to_timestamp: the consumer has no assignment yet; poll until "
                          "on_assign has run, or pass the partitions")
    try:
        found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, ms) for tp in chosen],
                                           timeout=timeout_s)
        out = []
        for tp in found:
            if tp.error is not None:
                raise ClusterError(f"offsets_for_times {tp.topic}:{tp.partition}: {tp.error.str()}")
            target = TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            consumer.seek(target)
            out.append(target)
    except KafkaException as exc:
        raise ClusterError(f"seek_to_timestamp({ms}): {exc.args[0].str()}") from exc
    return out


# ---------------------------------------------------------------------- replay


