"""What a consumer-group membership schedule is: `MemberEvent`s (a member crashes, restarts,
joins or leaves at a set time of the run) and `parse_member_events`, which refuses a bad
schedule before anything runs. `kafkabench.groups` carries a schedule out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kafkabench.core.checks import check_fields, integer, known_keys, number, one_of
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
        check_fields(self, _FIELDS, "membership ")


_INDEX = integer(0, noun="an index")
_FIELDS = {"at_s": number(0, noun="seconds"), "action": one_of(ACTIONS),
           "member": _INDEX, "group": _INDEX, "topic": _INDEX}
_KEYS = list(_FIELDS)


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
    limits = {"member": members, "group": groups, "topic": topics}
    events = []
    for i, item in enumerate(items):
        event = _event(i, item)
        _check_within(i, event, limits, run_s)
        events.append(event)
    return tuple(sorted(events, key=lambda e: e.at_s))


def _event(i: int, item: Any) -> MemberEvent:
    """Entry `i` of a schedule as a `MemberEvent`."""
    if isinstance(item, MemberEvent):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(f"membership[{i}]={item!r}: expected a mapping")
    known_keys(f"membership[{i}]", item, _KEYS)
    try:
        return MemberEvent(**item)
    except TypeError as exc:
        raise ConfigError(f"membership[{i}]={dict(item)!r}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"membership[{i}]: {exc}") from exc


def _check_within(i: int, event: MemberEvent, limits: Mapping[str, int | None],
                  run_s: float | None) -> None:
    """The event's indexes exist in the workload, and it happens within the run."""
    for name, limit in limits.items():
        if limit is None or (name == "member" and event.action == "join"):
            continue
        if getattr(event, name) >= limit:
            per = "group" if name == "member" else "run"
            raise ConfigError(f"membership[{i}]: {name}={getattr(event, name)} but the "
                              f"workload has {limit} {name}(s) per {per} (indexes from 0)")
    if run_s is not None and event.at_s >= run_s:
        raise ConfigError(f"membership[{i}]: at_s={event.at_s:g} is not within the run "
                          f"({run_s:g} s)")


def event_dict(event: MemberEvent) -> dict[str, Any]:
    """An event as the mapping a workload file holds."""
    return asdict(event)
