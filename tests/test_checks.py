"""Shared checks of user input: what each accepts and returns, how each quotes a bad value, and
the field tables and cross-field rules the specs are built from."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from kafkabench.core.checks import (
    check_fields,
    check_rules,
    duration,
    flag,
    fraction,
    integer,
    known_keys,
    mapping,
    number,
    one_of,
    optional,
    parsed_by,
    safe_name,
    str_mapping,
    text,
)
from kafkabench.core.errors import ConfigError


@pytest.mark.parametrize(("check", "value", "expected"), [
    (integer(1), 3, 3),
    (integer(0), 0, 0),
    (integer(), -5, -5),
    (integer(1, 10), 10, 10),
    (number(0), 2, 2.0),
    (number(0), math.inf, math.inf),
    (number(above=0), 0.5, 0.5),
    (fraction, 1, 1.0),
    (fraction, 0, 0.0),
    (flag, False, False),
    (one_of(("a", "b")), "b", "b"),
    (text, "x", "x"),
    (safe_name, "kb.run_1-a", "kb.run_1-a"),
    (duration, "1h30m", 5400.0),
    (duration, 90, 90.0),
    (duration, "250ms", 0.25),
    (mapping, {"a": 1}, {"a": 1}),
    (str_mapping("text"), {"a": ""}, {"a": ""}),
    (optional(integer(1)), None, None),
    (optional(integer(1)), 2, 2),
    (parsed_by(str.upper), "a", "A"),
])
def test_a_check_returns_the_value_normalized(check, value, expected):
    result = check("label", value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("check", "value", "says"), [
    (integer(1), 0, "expected an integer >= 1"),
    (integer(1), True, "expected an integer >= 1"),
    (integer(1), 1.0, "expected an integer >= 1"),
    (integer(1), "3", "expected an integer >= 1"),
    (integer(1, 10), 11, "expected an integer between 1 and 10"),
    (integer(), None, "expected an integer"),
    (integer(0, noun="an index"), -1, "expected an index >= 0"),
    (integer(1, note="attempts in all"), 0, "expected an integer >= 1 (attempts in all)"),
    (number(0), -0.5, "expected a number >= 0"),
    (number(0), math.nan, "expected a number >= 0"),
    (number(0), False, "expected a number >= 0"),
    (number(1.5), 1, "expected a number >= 1.5"),
    (number(above=0), 0, "expected a number > 0"),
    (number(0, finite=True, noun="seconds"), math.inf, "expected seconds >= 0"),
    (number(noun="a number of seconds"), "soon", "expected a number of seconds"),
    (fraction, 1.5, "expected a number between 0 and 1"),
    (flag, 1, "expected true or false"),
    (flag, "yes", "expected true or false"),
    (one_of(("a", "b")), "c", "expected one of a, b"),
    (text, "", "expected a non-empty string"),
    (text, 3, "expected a non-empty string"),
    (safe_name, "a b", "use letters, digits, '.', '_' and '-'"),
    (safe_name, "a:b", "use letters, digits, '.', '_' and '-'"),
    (duration, "5q", "expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"),
    (duration, "-1m", "expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"),
    (duration, -1, "expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"),
    (duration, True, "expected seconds >= 0 or a duration such as 90s, 5m, 1h30m"),
    (mapping, [("a", 1)], "expected a mapping"),
    (str_mapping("names to texts"), {"a": 1}, "expected names to texts"),
    (str_mapping("names to texts"), {1: "a"}, "expected names to texts"),
    (str_mapping("names to texts", nonempty_keys=True), {"": "a"}, "expected names to texts"),
    (str_mapping("names to texts", nonempty_values=True), {"a": ""}, "expected names to texts"),
    (str_mapping("one name", size=1), {"a": "b", "c": "d"}, "expected one name"),
    (optional(integer(1)), 0, "expected an integer >= 1"),
])
def test_a_bad_value_is_quoted_with_its_label(check, value, says):
    with pytest.raises(ConfigError) as err:
        check("workload field", value)
    assert str(err.value) == f"workload field={value!r}: {says}"


def test_known_keys_names_the_unknown_ones_sorted():
    known_keys("processing", {"seed": 1}, ["seed", "retry"])
    with pytest.raises(ConfigError) as err:
        known_keys("processing", {"zz": 1, "poison": 2, "seed": 3}, ("seed", "retry"))
    assert str(err.value) == ("processing: unknown keys ['poison', 'zz']; "
                              "expected some of ['seed', 'retry']")


@dataclass(frozen=True, slots=True)
class _Range:
    low: float = 0.0
    high: float = 1.0
    run_options: tuple = ()

    def __post_init__(self) -> None:
        check_fields(self, {"low": number(0), "high": number(0),
                            "run_options": parsed_by(tuple)}, "range ", labels={"run_options": "run"})
        check_rules(self, [(lambda r: r.low <= r.high, "range low={low!r} is more than high={high!r}"),
                           _not_both_zero])


def _not_both_zero(r: _Range) -> None:
    if r.low == r.high == 0:
        raise ConfigError("range: an empty range")


def test_fields_are_checked_in_table_order_and_stored_normalized():
    r = _Range(low=1, high=2, run_options=[1])
    assert (r.low, r.high, r.run_options) == (1.0, 2.0, (1,))
    assert type(r.low) is float
    with pytest.raises(ConfigError, match=r"^range low=-1: expected a number >= 0$"):
        _Range(low=-1, high=-2)  # low is checked first


def test_a_field_is_named_by_its_label():
    @dataclass(frozen=True, slots=True)
    class Options:
        run_options: int = 0

        def __post_init__(self) -> None:
            check_fields(self, {"run_options": integer(0)}, "sweep 's': ", labels={"run_options": "run"})

    with pytest.raises(ConfigError, match=r"^sweep 's': run=-1: expected an integer >= 0$"):
        Options(-1)


def test_rules_run_in_order_after_the_fields_with_their_messages_formatted():
    with pytest.raises(ConfigError, match=r"^range low=3.0 is more than high=2.0$"):
        _Range(low=3, high=2)
    with pytest.raises(ConfigError, match=r"^range: an empty range$"):
        _Range(low=0, high=0)

