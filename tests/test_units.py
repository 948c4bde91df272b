"""Durations as users write them on the command line."""

from __future__ import annotations

import pytest

from kafkabench.core.errors import ConfigError
from kafkabench.core.units import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("1.5s", 1.5), ("0.25", 0.25), ("250ms", 0.25), ("5m", 300.0),
    ("1h", 3600.0), ("1h30m", 5400.0), ("2m30s", 150.0), ("1h0m5s", 3605.0), (" 5M ", 300.0),
    ("0", 0.0), ("1m500ms", 60.5), (90, 90.0), (2.5, 2.5),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bare_number_takes_the_given_unit():
    assert parse_duration("1500", unit="ms") == pytest.approx(1.5)
    assert parse_duration("2s", unit="ms") == pytest.approx(2.0)  # units win


@pytest.mark.parametrize("text", ["", "abc", "5q", "-5", "1h30", "m", "30m1h", "1.2.3s", "5 m", "1d",
                                  "nan", -1])
def test_bad_durations_name_the_value(text):
    with pytest.raises(ConfigError, match="duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)
