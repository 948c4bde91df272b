"""TODO: docstring of kafkabench.spec.membership."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kafkabench.core.errors import ConfigError

ACTIONS = ("crash", "restart", "join", "leave")


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


