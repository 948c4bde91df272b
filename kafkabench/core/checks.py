"""Shared checks of user input, so that each rule (what an integer >= 1 is, how a bad value is
quoted) is written once.

A *check* takes a label and a value and returns the value, normalized (numbers as float,
durations in seconds, mappings as dicts), or raises `ConfigError` quoting both: `label=value!r:
expected ...`. Specs list their fields in a table `{field: check}` that `check_fields` applies,
and their cross-field rules as `(holds, message)` pairs that `check_rules` applies:

    FIELDS = {"topics": integer(1), "ratio": fraction, "mode": one_of(("a", "b"))}
    RULES = [(lambda w: w.low <= w.high, "workload low={low!r} is more than high={high!r}")]

    def __post_init__(self):
        check_fields(self, FIELDS, "workload ")
        check_rules(self, RULES)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, NoReturn

from kafkabench.core.errors import ConfigError
from kafkabench.core.units import parse_duration

#: A check: (label, value) -> the value, normalized; raises `ConfigError` naming both.
Check = Callable[[str, Any], Any]
#: A cross-field rule: (a predicate that holds for a valid object, the message when it does
#: not), the message a `str.format` template over the object's fields, e.g. "{low!r}"; or,
#: where the message needs more than the fields, a function of the object that raises
#: `ConfigError` itself.
Rule = tuple[Callable[[Any], bool], str] | Callable[[Any], None]

#: What `safe_name` accepts, as Kafka topic names and folder names both do.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_NAME_HELP = "use letters, digits, '.', '_' and '-'"
_DURATION_HELP = "expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"


def refuse(label: str, value: Any, says: str) -> NoReturn:
    """Raise the `ConfigError` of every check: `label=value!r: says`.

    Args:
        label: What the value is, e.g. "workload topics" or "processing.retry".
        value: The bad value, quoted with `repr`.
        says: What was expected, e.g. "expected an integer >= 1".
    """
    raise ConfigError(f"{label}={value!r}: {says}")


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML's `true` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float that is not a bool and not NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _bounds(minimum: float | None, maximum: float | None, above: float | None = None) -> str:
    """" >= 1", " > 0", " between 0 and 1" or ""."""
    if above is not None:
        return f" > {_shown(above)}"
    if minimum is not None and maximum is not None:
        return f" between {_shown(minimum)} and {_shown(maximum)}"
    return "" if minimum is None else f" >= {_shown(minimum)}"


def _shown(bound: float) -> str:
    """1.0 as "1", 1000000 as "1000000"."""
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def integer(minimum: int | None = None, maximum: int | None = None, *, noun: str = "an integer",
            note: str = "") -> Check:
    """A check of an int (not a bool) in [minimum, maximum].

    Args:
        minimum: The least value allowed; None: no bound.
        maximum: The greatest value allowed; None: no bound.
        noun: What the message says was expected, e.g. "an index".
        note: Said in parentheses after the expectation, e.g. what the number counts.
    """
    says = f"expected {noun}{_bounds(minimum, maximum)}" + (f" ({note})" if note else "")

    def check(label: str, value: Any) -> int:
        if not is_int(value) or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum):
            refuse(label, value, says)
        return value

    return check


def number(minimum: float | None = None, maximum: float | None = None, *,
           above: float | None = None, finite: bool = False, noun: str = "a number") -> Check:
    """A check of an int or a float (not a bool, not NaN), returned as a float.

    Args:
        minimum: The least value allowed; None: no bound.
        maximum: The greatest value allowed; None: no bound.
        above: The value must be greater than this (instead of `minimum`).
        finite: Refuse infinity too.
        noun: What the message says was expected, e.g. "seconds".
    """
    says = f"expected {noun}{_bounds(minimum, maximum, above)}"

    def check(label: str, value: Any) -> float:
        if not is_number(value) or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum) \
                or (above is not None and value <= above) or (finite and not math.isfinite(value)):
            refuse(label, value, says)
        return float(value)

    return check


#: A share: a number between 0 and 1.
fraction = number(0, 1)


def flag(label: str, value: Any) -> bool:
    """A bool: YAML's true or false (not 1, not "yes")."""
    if not isinstance(value, bool):
        refuse(label, value, "expected true or false")
    return value


def one_of(choices: Sequence[str]) -> Check:
    """A check of a value that is one of `choices`.

    Args:
        choices: The values allowed, listed in the message in this order.
    """
    says = f"expected one of {', '.join(choices)}"

    def check(label: str, value: Any) -> Any:
        if value not in choices:
            refuse(label, value, says)
        return value

    return check


def text(label: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        refuse(label, value, "expected a non-empty string")
    return value


def safe_name(label: str, value: Any) -> str:
    """A string of letters, digits, '.', '_' and '-': part of a topic or a folder name."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        refuse(label, value, _NAME_HELP)
    return value


def duration(label: str, value: Any) -> float:
    """Seconds: a number >= 0, or a duration text such as "90s", "5m", "1h30m" (`core.units`)."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError:
            refuse(label, value, _DURATION_HELP)
    if not is_number(value) or value < 0:
        refuse(label, value, _DURATION_HELP)
    return float(value)


def mapping(label: str, value: Any) -> dict:
    """Any mapping, as a dict."""
    if not isinstance(value, Mapping):
        refuse(label, value, "expected a mapping")
    return dict(value)


def str_mapping(expected: str, *, nonempty_keys: bool = False, nonempty_values: bool = False,
                size: int | None = None) -> Check:
    """A check of a mapping of strings to strings, returned as a dict.

    Args:
        expected: What the message says was expected, e.g. "a mapping of header names to
            text values".
        nonempty_keys: Refuse "" as a key.
        nonempty_values: Refuse "" as a value.
        size: The number of entries required; None: any.
    """
    says = f"expected {expected}"

    def check(label: str, value: Any) -> dict[str, str]:
        if not isinstance(value, Mapping) or (size is not None and len(value) != size) or not all(
                isinstance(k, str) and isinstance(v, str)
                and (k or not nonempty_keys) and (v or not nonempty_values)
                for k, v in value.items()):
            refuse(label, value, says)
        return dict(value)

    return check


def optional(check: Check) -> Check:
    """`check`, letting None through (a setting left unset)."""

    def check_unless_none(label: str, value: Any) -> Any:
        return None if value is None else check(label, value)

    return check_unless_none


def parsed_by(parse: Callable[[Any], Any]) -> Check:
    """A check that is a parser naming the value in its own messages, e.g. `parse_faults`."""

    def check(label: str, value: Any) -> Any:
        return parse(value)

    return check


def known_keys(label: str, data: Mapping[str, Any], known: Sequence[str]) -> None:
    """Refuse keys of `data` not in `known`, naming them: `label: unknown keys [...]`."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{label}: unknown keys {unknown}; expected some of {list(known)}")


def check_fields(obj: Any, checks: Mapping[str, Check], prefix: str, *,
                 labels: Mapping[str, str] | None = None) -> None:
    """Check the fields of a frozen dataclass in table order, storing each normalized value.

    Args:
        obj: The dataclass, in its `__post_init__`.
        checks: Field name -> check.
        prefix: Put before a field's name in the messages, e.g. "workload " or "processing.".
        labels: The name the user knows a field by, where it is not the field's
            (e.g. `run_options` is `run` in a sweep file).
    """
    labels = labels or {}
    for name, check in checks.items():
        label = prefix + labels.get(name, name)
        object.__setattr__(obj, name, check(label, getattr(obj, name)))


def check_rules(obj: Any, rules: Iterable[Rule]) -> None:
    """Raise `ConfigError` with the message of the first rule that does not hold for `obj`.

    Args:
        obj: A dataclass whose fields have passed their checks.
        rules: `Rule`s, in the order to check them.
    """
    for rule in rules:
        if callable(rule):
            rule(obj)
            continue
        holds, message = rule
        if not holds(obj):
            values = {f.name: getattr(obj, f.name) for f in fields(obj)}
            raise ConfigError(message.format(**values))
