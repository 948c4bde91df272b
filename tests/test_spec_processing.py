"""The processing spec (`kafkabench.spec.processing`): its field table and cross-field rules,
offline. The stage that runs it is tested against a broker in tests/test_processing.py."""

from __future__ import annotations

import re

import pytest

from kafkabench.core.errors import ConfigError
from kafkabench.spec.processing import Backoff, Processing, load_processing_file, processing_from_spec


def test_values_are_normalized_and_round_trip():
    p = Processing(time_ms={"uniform": [1, 3]}, transient_fraction=0, poison_fraction=1,
                   backoff={"initial_ms": 5, "max_attempts": 4}, filter_header={"a": "b"},
                   transaction_ms=250)
    assert p.time_ms == ("uniform", 1.0, 3.0)
    assert (p.transient_fraction, p.poison_fraction, p.transaction_ms) == (0.0, 1.0, 250.0)
    assert p.backoff == Backoff(initial_ms=5.0, max_attempts=4) and type(p.backoff.initial_ms) is float
    assert p.filter_header == {"a": "b"} and type(p.filter_header) is dict
    assert Processing(**p.to_dict()) == p
    assert Processing(time_ms=2).to_dict()["time_ms"] == 2.0
    assert Processing(time_ms={"exponential": 4}).to_dict()["time_ms"] == {"exponential": 4.0}


@pytest.mark.parametrize(("spec", "says"), [
    ({"time_ms": -1}, "processing.time_ms=-1: expected a number >= 0"),
    ({"time_ms": {"uniform": [5, 1]}}, "processing.time_ms.uniform[1]=1: expected a number >= 5"),
    ({"time_ms": {"uniform": [-1, 1]}}, "processing.time_ms.uniform[0]=-1: expected a number >= 0"),
    ({"time_ms": {"exponential": "x"}}, "processing.time_ms.exponential='x': expected a number >= 0"),
    ({"time_ms": {"normal": 3}}, "processing.time_ms={'normal': 3}: expected milliseconds (a number), "
                                 "{uniform: [lo, hi]} or {exponential: mean}"),
    ({"filter_fraction": float("nan")}, "processing.filter_fraction=nan: expected a number between 0 and 1"),
    ({"transient_failures": 0}, "processing.transient_failures=0: expected an integer >= 1"),
    ({"transient_failures": True}, "processing.transient_failures=True: expected an integer >= 1"),
    ({"retry": "later"}, "processing.retry='later': expected one of inline, topics, none"),
    ({"backoff": 3}, "processing.backoff=3: expected a mapping such as {initial_ms: 100"),
    ({"backoff": {"jitter": 2}}, "processing.backoff.jitter=2: expected a number between 0 and 1"),
    ({"backoff": {"max_attempts": 0}},
     "processing.backoff.max_attempts=0: expected an integer >= 1 (attempts in all, the first included)"),
    ({"backoff": {"initial": 5}}, "processing.backoff: unknown keys ['initial']; expected some of "
                                  "['initial_ms', 'multiplier', 'max_ms', 'jitter', 'max_attempts']"),
    ({"dead_letter": "yes"}, "processing.dead_letter='yes': expected true or false"),
    ({"output": 1}, "processing.output=1: expected true or false"),
    ({"filter_header": {"a": "b", "c": "d"}}, "processing.filter_header={'a': 'b', 'c': 'd'}: expected one "
                                              "header name and its text value"),
    ({"filter_header": {"": "b"}}, "processing.filter_header={'': 'b'}: expected one header name"),
    ({"seed": 1.5}, "processing.seed=1.5: expected an integer"),
    ({"exactly_once": 1}, "processing.exactly_once=1: expected true or false"),
    ({"transaction_messages": 0}, "processing.transaction_messages=0: expected an integer >= 1"),
    ({"transaction_ms": 0.5}, "processing.transaction_ms=0.5: expected a number >= 1"),
    ({"transient_fraction": 0.6, "poison_fraction": 0.5},
     "processing.transient_fraction=0.6 plus poison_fraction=0.5 is more than 1"),
    ({"exactly_once": True, "retry": "topics"}, "processing.exactly_once with retry=topics"),
    ({"transient_fraction": 0.1, "transient_failures": 2, "backoff": {"max_attempts": 2}},
     "processing.transient_failures=2 needs backoff.max_attempts > 2 (it is 2)"),
    ({"poison": 1}, "processing: unknown keys ['poison']"),
    ([1], "workload processing=[1]: expected a mapping such as"),
])
def test_a_bad_stage_is_refused_naming_the_setting_and_value(spec, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        processing_from_spec(spec)


def test_backoff_alone_checks_its_fields_then_its_rule():
    assert Backoff(initial_ms=5, max_ms=5).delay_ms(3) == 5.0
    with pytest.raises(ConfigError, match=re.escape("processing.backoff.multiplier=0.5: expected a number >= 1")):
        Backoff(multiplier=0.5, max_ms=1)  # the field first, then the rule
    with pytest.raises(ConfigError, match=re.escape("processing.backoff.max_ms=1.0 is less than initial_ms=5.0")):
        Backoff(initial_ms=5, max_ms=1)


def test_the_fields_are_checked_before_the_rules():
    with pytest.raises(ConfigError, match=re.escape("processing.poison_fraction=2")):
        Processing(transient_fraction=0.5, poison_fraction=2)


def test_transient_failures_need_no_retries_without_retries():
    p = Processing(transient_fraction=0.1, transient_failures=5, retry="none")
    assert p.attempts == 1
    assert Processing(exactly_once=True, retry="none").exactly_once


def test_a_bad_file_is_named(tmp_path):
    path = tmp_path / "stage.yaml"
    path.write_text("poison_fraction: 2\n")
    with pytest.raises(ConfigError, match=re.escape(f"--stage {str(path)!r}: processing.poison_fraction=2: "
                                                    "expected a number between 0 and 1")):
        load_processing_file(path, "--stage")
    path.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_processing_file(path, "--stage")
    path.write_text("time_ms: 2\nretry: none\n")
    assert load_processing_file(path, "--stage") == Processing(time_ms=2, retry="none")
