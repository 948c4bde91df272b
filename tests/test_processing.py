"""The processing stage: injected failures, retries inline and through retry topics, dead
letters byte for byte, filtering and output, counted exactly against a real broker."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections import Counter

import pytest

from kafkabench.cluster.admin import delete_topics, list_topics
from kafkabench.core.errors import ConfigError
from kafkabench.patterns.observer import read_records
from kafkabench.results.store import load
from kafkabench.runner import run_workload
from kafkabench.spec.processing import (
    FILTERED,
    OK,
    POISON,
    TRANSIENT,
    Backoff,
    Processing,
    dlq_topic,
    output_topic,
    processing_from_spec,
    retry_topic,
)
from kafkabench.spec.workload import Workload

# ----------------------------------------------------------------------------- pure logic


@pytest.mark.parametrize(("spec", "says"), [
    ({"poison_fraction": 1.5}, "processing.poison_fraction=1.5"),
    ({"transient_fraction": -0.1}, "processing.transient_fraction=-0.1"),
    ({"transient_fraction": 0.6, "poison_fraction": 0.5}, "is more than 1"),
    ({"backoff": {"initial_ms": 500, "max_ms": 100}}, "processing.backoff.max_ms=100.0 is less than initial_ms=500.0"),
    ({"backoff": {"multiplier": 0.5}}, "processing.backoff.multiplier=0.5"),
    ({"backoff": {"max_attempts": 0}}, "processing.backoff.max_attempts=0"),
    ({"backoff": {"initial": 5}}, "processing.backoff: unknown keys ['initial']"),
    ({"retry": "later"}, "processing.retry='later'"),
    ({"time_ms": "fast"}, "processing.time_ms='fast'"),
    ({"time_ms": {"uniform": [5, 1]}}, "processing.time_ms.uniform[1]=1"),
    ({"transient_fraction": 0.1, "transient_failures": 3, "backoff": {"max_attempts": 3}},
     "needs backoff.max_attempts > 3"),
    ({"filter_header": {"a": 1}}, "processing.filter_header="),
    ({"poison": 0.1}, "processing: unknown keys ['poison']"),
])
def test_bad_processing_is_refused_naming_the_setting(spec, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        processing_from_spec(spec)
    with pytest.raises(ConfigError, match=re.escape(says)):
        Workload(processing=spec)


def test_fates_are_deterministic_and_match_the_fractions():
    p = Processing(poison_fraction=0.01, transient_fraction=0.05, filter_fraction=0.1, seed=7)
    fates = Counter(p.fate(part, off) for part in range(4) for off in range(25_000))
    n = 100_000
    assert abs(fates[FILTERED] / n - 0.10) < 0.005
    # Failures are drawn among the messages the filter kept.
    assert abs(fates[POISON] / (n - fates[FILTERED]) - 0.01) < 0.002
    assert abs(fates[TRANSIENT] / (n - fates[FILTERED]) - 0.05) < 0.004
    assert fates == p.expected({part: (0, 25_000) for part in range(4)})
    assert [p.fate(1, o) for o in range(500)] == [Processing(**{**p.to_dict()}).fate(1, o) for o in range(500)]
    other = Processing(poison_fraction=0.01, transient_fraction=0.05, filter_fraction=0.1, seed=8)
    assert [p.fate(0, o) for o in range(2000)] != [other.fate(0, o) for o in range(2000)]


def test_attempts_fail_as_injected():
    p = Processing(transient_fraction=0.5, transient_failures=2, backoff={"max_attempts": 4})
    assert [p.fails(TRANSIENT, a) for a in (1, 2, 3)] == [True, True, False]
    assert all(p.fails(POISON, a) for a in range(1, 10))
    assert not p.fails(OK, 1)


def test_backoff_grows_caps_and_jitters_within_bounds():
    b = Backoff(initial_ms=100, multiplier=3, max_ms=1000, max_attempts=5)
    assert [b.delay_ms(a) for a in (1, 2, 3, 4)] == [100, 300, 900, 1000]
    j = Backoff(initial_ms=100, multiplier=2, max_ms=1000, jitter=0.2)
    rng = random.Random(1)
    draws = [j.delay_ms(2, rng) for _ in range(1000)]
    assert min(draws) >= 160 and max(draws) <= 240 and max(draws) - min(draws) > 60


def test_processing_round_trips_through_workload_yaml(tmp_path):
    w = Workload(processing={"time_ms": {"exponential": 2}, "poison_fraction": 0.01, "retry": "topics",
                             "backoff": {"initial_ms": 50, "max_attempts": 4}, "output": True,
                             "filter_header": {"event-type": "OrderCancelled"}},
                 transaction_messages=10)
    back = Workload.from_yaml(w.to_yaml(tmp_path / "w.yaml"))
    assert back.processing == w.processing and back.transaction_messages == 10
    assert back.processing.extra_topics("t") == ["t.retry.1", "t.retry.2", "t.retry.3", "t.dlq", "t.out"]
    assert json.loads(w.as_flat_dict()["workload.processing"])["retry"] == "topics"


# ----------------------------------------------------------------------------- real broker

HEADERS = {"event-type": "OrderCreated", "version": "1"}


def _input(bootstrap: str, topic: str) -> dict[tuple[int, int], object]:
    """The input topic's records by (partition, offset)."""
    return {(m.partition(), m.offset()): m for m in read_records(bootstrap, [topic], limit=10**6)}


def _watermarks(records) -> dict[int, tuple[int, int]]:
    parts: dict[int, list[int]] = {}
    for p, o in records:
        parts.setdefault(p, []).append(o)
    return {p: (min(os), max(os) + 1) for p, os in parts.items()}


def _cleanup(bootstrap: str, result) -> None:
    """Delete a kept run's input topic and the stage's topics."""
    topic = result.summary["topics"]
    names = [n for n in list_topics(bootstrap) if n == topic or n.startswith(f"{topic}.")]
    if names:
        delete_topics(bootstrap, names, timeout_s=10)


@pytest.mark.parametrize("retry", ["inline", "topics"])
def test_dead_letters_equal_the_injected_poison_byte_for_byte(bootstrap, retry):
    attempts = 3
    w = Workload(name=f"stage-{retry}", partitions=2, message_count=3000, duration_s=0, message_size=120,
                 key_distribution="round-robin", key_count=50, headers=HEADERS, verify=True,
                 processing={"poison_fraction": 0.02, "transient_fraction": 0.05, "transient_failures": 1,
                             "retry": retry, "output": True,
                             "backoff": {"initial_ms": 400 if retry == "topics" else 2, "max_attempts": attempts}})
    started = time.time()
    result = run_workload(w, None, bootstrap=bootstrap, mode="thread", keep_topics=True, progress=False)
    try:
        topic = result.summary["topics"]
        s = result.summary
        assert s["delivered"] == 3000 and s["failed"] == 0
        inputs = _input(bootstrap, topic)
        assert len(inputs) == 3000
        expected = w.processing.expected(_watermarks(inputs))
        # Exact: every injected poison message is dead-lettered once, nothing else is.
        assert s["processing_failed"] == s["processing_dead_lettered"] == expected[POISON] > 0
        assert s["processing_processed"] == expected[OK] + expected[TRANSIENT]
        assert s["processing_output"] == s["processing_processed"]
        assert json.loads(s["processing_attempts"]) == {
            "1": expected[OK], "2": expected[TRANSIENT], str(attempts): expected[POISON]}
        assert s["processing_retried"] == expected[TRANSIENT] + (attempts - 1) * expected[POISON]
        if retry == "topics":
            assert s["processing_forwarded"] == s["processing_retried"]
            # A retry record read before its backoff ended paused its partition. 400 ms (not
            # 20) so that a busy machine still reads some retry record early: at 20 ms, CI
            # under four workers read every one after it was due (0 delayed).
            assert s["processing_delayed"] > 0
        else:
            assert s["processing_forwarded"] == 0
        assert s["processing_stage_errors"] == 0 and s["processing_unflushed"] == 0

        dead = read_records(bootstrap, [dlq_topic(topic)])
        assert len(dead) == expected[POISON]
        seen = set()
        for d in dead:
            h = dict(d.headers())
            where = (int(h["original_partition"]), int(h["original_offset"]))
            seen.add(where)
            original = inputs[where]
            assert w.processing.fate(*where) == POISON
            assert d.key() == original.key() and d.value() == original.value()
            # The original headers first, byte for byte, then the dead-letter headers.
            assert d.headers()[:len(original.headers())] == original.headers()
            assert h["error"] == b"injected poison failure"
            assert h["retry_count"] == str(attempts - 1).encode()
            assert h["original_topic"] == topic.encode()
            assert started * 1000 <= int(h["failed_at"]) <= time.time() * 1000
            assert [k for k, _ in d.headers()[len(original.headers()):]] == [
                "error", "retry_count", "original_topic", "original_partition", "original_offset",
                "failed_at"]
        assert len(seen) == len(dead)  # no message dead-lettered twice
        frame = result.dead_letters
        assert len(frame) == expected[POISON]
        assert set(zip(frame["original_partition"], frame["original_offset"])) == seen
        assert (frame["retry_count"] == attempts - 1).all()
        out = read_records(bootstrap, [output_topic(topic)], limit=10**6)
        assert len(out) == s["processing_output"]
        # Each output record is its input's value reversed, with the input's key, headers and
        # timestamp; the verifier's kb-seq header tells which input it was made from.
        by_seq = {dict(m.headers())["kb-seq"]: m for m in inputs.values()}
        assert len({dict(m.headers())["kb-seq"] for m in out}) == len(out)
        for m in out:
            original = by_seq[dict(m.headers())["kb-seq"]]
            assert m.value() == original.value()[::-1] and m.key() == original.key()
            assert m.headers() == [*original.headers(),
                                   ("kb-src", f"{original.partition()}:{original.offset()}".encode())]
            assert m.timestamp()[1] == original.timestamp()[1]
            assert w.processing.fate(original.partition(), original.offset()) in (OK, TRANSIENT)
        assert s["verify_lost"] == 0 and s["verify_duplicated"] == 0
        assert s["processing_output_read"] == s["processing_output_inputs"] == len(out)
        assert s["processing_output_duplicated"] == 0
        # A downstream consumer read every output record live: end-to-end through the stage.
        assert s["processing_output_e2e_read"] == len(out)
        assert 0 < s["processing_output_e2e_latency_ms_p50"] <= s["processing_output_e2e_latency_ms_p99"]
        assert result.processing["output_e2e_latency_ms_p99"].notna().any()
        if retry == "topics":
            retried = read_records(bootstrap, [retry_topic(topic, 1), retry_topic(topic, 2)], limit=10**6)
            assert len(retried) == s["processing_forwarded"]
        assert result.processing["processed"].sum() == s["processing_processed"]
        assert result.processing["dead_lettered"].sum() == expected[POISON]
    finally:
        _cleanup(bootstrap, result)


def test_filters_drop_by_header_and_by_fraction(bootstrap):
    by_header = run_workload(
        Workload(name="filter-h", message_count=500, duration_s=0, message_size=50, headers=HEADERS,
                 processing={"filter_header": {"event-type": "OrderCreated"}, "poison_fraction": 0.5}),
        None, bootstrap=bootstrap, mode="thread", progress=False)
    s = by_header.summary
    assert s["processing_filtered"] == 500 and s["processing_processed"] == 0
    assert s["processing_dead_lettered"] == 0 and by_header.dead_letters.empty
    w = Workload(name="filter-f", partitions=2, message_count=2000, duration_s=0, message_size=50,
                 processing={"filter_fraction": 0.3, "seed": 3})
    result = run_workload(w, None, bootstrap=bootstrap, mode="thread", keep_topics=True, progress=False)
    try:
        inputs = _input(bootstrap, result.summary["topics"])
        expected = w.processing.expected(_watermarks(inputs))
        assert result.summary["processing_filtered"] == expected[FILTERED]
        assert result.summary["processing_processed"] == 2000 - expected[FILTERED]
    finally:
        _cleanup(bootstrap, result)


def test_processing_time_is_spent_and_results_are_saved(bootstrap, tmp_path):
    result = run_workload(
        Workload(name="slow", partitions=2, message_count=300, duration_s=0, message_size=50,
                 consumers_per_group=2, processing={"time_ms": 3}),
        None, bootstrap=bootstrap, mode="process", out=tmp_path, progress=False)
    s = result.summary
    assert s["processing_processed"] == 300
    assert s["processing_latency_ms_p50"] >= 3.0  # a sleep is never shorter
    loaded = load(tmp_path / result.run_id)
    assert loaded.processing["processed"].sum() == 300
    assert loaded.summary["processing_attempts"] == '{"1": 300}'
    assert loaded.dead_letters.empty  # no poison: no file, an empty frame


def test_a_bad_stage_is_refused_before_any_topic_exists(bootstrap):
    name = f"refused-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigError, match=r"processing\.backoff\.max_ms"):
        run_workload({"name": name, "message_count": 10, "duration_s": 0,
                      "processing": {"backoff": {"initial_ms": 10, "max_ms": 1}}},
                     None, bootstrap=bootstrap, progress=False)
    assert not any(name in t for t in list_topics(bootstrap))


# ----------------------------------------------------------------------------- crashes

FAST_SESSION = {"name": "fast-session",
                "consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}}
CRASH = [{"at_s": 4, "action": "crash", "member": 0}, {"at_s": 6, "action": "restart", "member": 0}]


def _crash_run(bootstrap, processing: dict, commit: str = "auto"):
    w = Workload(name="crash", partitions=4, producer_rate=500, duration_s=10, message_size=80,
                 consumers_per_group=2, processing={"output": True, **processing}, membership=CRASH)
    result = run_workload(w, FAST_SESSION, bootstrap=bootstrap, mode="process", commit=commit,
                          keep_topics=True, progress=False)
    inputs = _input(bootstrap, result.summary["topics"])
    return w, result, w.processing.expected(_watermarks(inputs))


@pytest.mark.parametrize("commit", ["sync-message", "auto"])
def test_a_crashed_member_redelivers_per_commit_strategy(bootstrap, commit):
    w, result, expected = _crash_run(bootstrap, {"time_ms": 0.2}, commit)
    try:
        s = result.summary
        m = result.membership
        assert list(m["action"]) == ["crash", "restart"] and (m["outcome"] == "ok").all(), m
        assert m["pid"].notna().iloc[0]
        # Every input has its output (at least once), none is lost by the crash ...
        assert s["processing_output_inputs"] == s["delivered"] == expected[OK]
        # ... and the inputs processed twice are counted from the output topic.
        if commit == "sync-message":
            assert s["processing_output_duplicated"] <= 1  # the one in hand when it died
        else:  # auto-commit every 5 s: what was processed since the last commit comes again
            assert s["processing_output_duplicated"] > 0
        assert s["processing_output_read"] == s["processing_output_inputs"] + s["processing_output_duplicated"]
        assert s["complete"], s["incomplete"]
    finally:
        _cleanup(bootstrap, result)


def test_exactly_once_output_survives_a_crash_and_aborts(bootstrap):
    w, result, expected = _crash_run(bootstrap, {
        "exactly_once": True, "transient_fraction": 0.02, "poison_fraction": 0.01,
        "backoff": {"initial_ms": 5, "max_attempts": 3}, "transaction_messages": 50, "transaction_ms": 200})
    try:
        s = result.summary
        assert (result.membership["outcome"] == "ok").all()
        # read_committed: every processed input exactly once, the poison ones dead-lettered.
        assert s["processing_output_inputs"] == expected[OK] + expected[TRANSIENT]
        assert s["processing_output_duplicated"] == 0
        dead = read_records(bootstrap, [dlq_topic(result.summary["topics"])], limit=10**6)
        assert len(dead) == expected[POISON]
        # read_uncommitted also sees what aborted transactions wrote: each transient failure
        # aborted one.
        assert s["processing_transactions_aborted"] >= expected[TRANSIENT] > 0
        assert s["processing_output_read_uncommitted"] > s["processing_output_read"]
        # The live read_committed reader saw what the read-back did, never an aborted record.
        assert s["processing_output_e2e_read"] == s["processing_output_read"]
        assert s["processing_transactions_committed"] > 0
        assert s["errors"] == {}, s["errors"]
    finally:
        _cleanup(bootstrap, result)


def test_bad_exactly_once_and_membership_are_refused(bootstrap):
    with pytest.raises(ConfigError, match="processing.exactly_once needs acks=all"):
        run_workload(Workload(message_count=10, duration_s=0, processing={"exactly_once": True}),
                     {"name": "acks1", "producer": {"acks": 1}}, bootstrap=bootstrap, progress=False)
    with pytest.raises(ConfigError, match="retry=topics"):
        Workload(processing={"exactly_once": True, "retry": "topics"})
    with pytest.raises(ConfigError, match=r"needs its own process"):
        run_workload(Workload(consumers_per_group=1, membership=[{"at_s": 1, "action": "crash"}]),
                     None, bootstrap=bootstrap, mode="thread", progress=False)
    with pytest.raises(ConfigError, match=r"membership\[0\]: member=3 but the workload has 2"):
        Workload(consumers_per_group=2, membership=[{"at_s": 1, "action": "crash", "member": 3}])
    with pytest.raises(ConfigError, match=r"membership action='explode'"):
        Workload(membership=[{"at_s": 1, "action": "explode"}])
