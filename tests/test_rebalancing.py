"""Consumer groups in motion against a real broker: a member crashes, leaves, joins or restarts
under each rebalance protocol, and each event's figures (pause, partitions moved, records
consumed twice, detection) are measured from the members' own traces and callbacks."""

from __future__ import annotations

import re
import uuid

import pandas as pd
import pytest

from kafkabench.analysis.rebalance import _duplicates, _longest_gap, member_identity, ownership
from kafkabench.cluster.admin import delete_topics, list_topics
from kafkabench.core.errors import ConfigError
from kafkabench.experiments.studies import REBALANCE_VARIANTS, rebalance_comparison, rebalance_profile
from kafkabench.groups.observer import GroupSettings
from kafkabench.results.store import load
from kafkabench.runner import run_workload
from kafkabench.spec.workload import Workload

SESSION_MS = 6000  # the broker's floor for both protocols (the embedded cluster's for KIP-848)

# ----------------------------------------------------------------------------- pure logic


def test_duplicates_are_offsets_read_again_in_time_order():
    trace = pd.DataFrame({"partition": [0, 0, 0, 1, 1], "wall": [1.0, 2.0, 5.0, 1.5, 6.0],
                          "first_offset": [0, 10, 15, 0, 3], "last_offset": [9, 19, 24, 4, 8]})
    # p0: 0-9, 10-19, then 15-24 re-reads 15-19 (5); p1: 0-4, then 3-8 re-reads 3-4 (2).
    assert _duplicates(trace, 4.0, 10.0) == 7
    assert _duplicates(trace, 0.0, 4.0) == 0  # nothing re-read before 4 s
    assert _duplicates(trace, 5.5, 10.0) == 2


def test_longest_gap_overlapping_the_window():
    walls = [1.0, 1.1, 1.2, 4.0, 4.1]
    assert _longest_gap(walls, 2.0, 5.0) == pytest.approx(2.8)  # 1.2 -> 4.0 spans 2.0
    assert _longest_gap(walls, 4.05, 5.0) == pytest.approx(0.9)  # 4.1 -> the window's end
    assert _longest_gap([], 0.0, 1.0) != _longest_gap([], 0.0, 1.0)  # NaN: nothing consumed


def test_ownership_follows_callbacks_and_ends_at_a_crash():
    rebalances = pd.DataFrame({
        "t": [0.0, 0.0, 5.0], "group": ["g"] * 3, "member": ["a", "b", "b"],
        "event": ["assign", "assign", "assign"], "partitions": ["t:0,t:1", "t:2", "t:0,t:1"]})
    membership = pd.DataFrame({"t_s": [3.0], "action": ["crash"], "group_id": ["g"], "worker": ["a"]})
    spans = ownership(rebalances, membership, end_t=10.0)
    a = spans[spans["member"] == "a"]
    assert list(a["end_t"]) == [3.0, 3.0]  # a owned 0 and 1 until it crashed
    b = spans[(spans["member"] == "b") & (spans["partition"] == 0)]
    assert list(zip(b["start_t"], b["end_t"])) == [(5.0, 10.0)]
    assert member_identity("kb-x-g0-c1-r2") == "kb-x-g0-c1" and member_identity("kb-x-g0-c1") == "kb-x-g0-c1"


def test_kip848_takes_its_timeouts_from_the_group_classic_from_the_client():
    profile, group = rebalance_profile(REBALANCE_VARIANTS["KIP-848 uniform"], session_timeout_ms=7000,
                                       heartbeat_interval_ms=1500, static=True)
    assert group == {"consumer.session.timeout.ms": 7000, "consumer.heartbeat.interval.ms": 1500}
    assert "session.timeout.ms" not in profile["consumer"] and profile["consumer"]["group.instance.id"]
    profile, group = rebalance_profile(REBALANCE_VARIANTS["range"], session_timeout_ms=7000,
                                       heartbeat_interval_ms=1500, static=False)
    assert group == {} and profile["consumer"]["session.timeout.ms"] == 7000


# ----------------------------------------------------------------------------- real broker


def _cleanup(bootstrap, topic):
    names = [n for n in list_topics(bootstrap) if n == topic or n.startswith(f"{topic}.")]
    if names:
        delete_topics(bootstrap, names, timeout_s=10)


def _run(bootstrap, variant, events, *, static=False, duration_s=16, processing=None, commit="sync"):
    profile, group = rebalance_profile(REBALANCE_VARIANTS[variant], session_timeout_ms=SESSION_MS,
                                       heartbeat_interval_ms=1000, static=static)
    w = Workload(name="rb", partitions=6, message_size=80, producer_rate=600, duration_s=duration_s,
                 consumers_per_group=3, membership=events, processing=processing)
    return run_workload(w, profile, bootstrap=bootstrap, mode="process", commit=commit, keep_topics=True,
                        progress=False, observers=[GroupSettings(group, bootstrap)] if group else None)


@pytest.mark.parametrize("variant", ["cooperative-sticky", "KIP-848 uniform"])
def test_a_crash_pauses_the_group_and_its_duplicates_are_counted(bootstrap, variant):
    # Auto-commit every 5 s: what the crashed member read since its last commit is read again.
    # A processing stage writes one output record per message it finished (header kb-src), an
    # independent count of inputs processed twice.
    result = _run(bootstrap, variant, [{"at_s": 4, "action": "crash", "member": 0}],
                  processing={"output": True}, commit="auto")
    topic = result.summary["topics"]
    try:
        crash = result.membership.iloc[0]
        assert crash["outcome"] == "ok", crash["error"]
        # Detected when the session timed out: the crashed member's partitions went unread meanwhile.
        assert SESSION_MS / 1000 - 1 < crash["detect_s"] < SESSION_MS / 1000 + 5
        assert crash["partition_pause_s"] >= crash["detect_s"] - 0.5
        assert crash["partitions_assigned"] >= 1 and crash["partitions_moved"] >= 1
        # Consumed twice (by offset, from the traces) includes every input processed twice
        # (from the output topic); at most what the member had in hand but not finished more.
        twice = result.summary["processing_output_duplicated"]
        assert twice > 0
        assert twice <= crash["duplicates"] <= twice + 50, (twice, crash["duplicates"])
        # The group recovered every partition: the survivors owned all 6 before the run ended
        # (at its end every member closes and gives its partitions back).
        spans = ownership(result.rebalances, result.membership)
        t = crash["t_s"] + crash["stable_s"] + 1
        final = spans[(spans["start_t"] <= t) & (spans["end_t"] > t)]
        assert sorted(final["partition"]) == list(range(6)), spans
        assert crash["worker"] not in set(final["member"])
        assert result.summary["complete"], result.summary["incomplete"]
    finally:
        _cleanup(bootstrap, topic)


def test_static_member_restarting_within_the_session_keeps_its_partitions(bootstrap):
    events = [{"at_s": 3, "action": "crash", "member": 0}, {"at_s": 4, "action": "restart", "member": 0}]
    result = _run(bootstrap, "cooperative-sticky", events, static=True, duration_s=12)
    try:
        crash, restart = result.membership.iloc[0], result.membership.iloc[1]
        assert (result.membership["outcome"] == "ok").all()
        # No other member was revoked or assigned anything until well after the session
        # would have timed out (and before the run's end, when every member closes): no
        # rebalance, the restarted static member took its own partitions back.
        r = result.rebalances
        after = r[(r["wall"] > crash["wall"]) & (r["t"] < crash["t_s"] + SESSION_MS / 1000 + 2)]
        others = after[after["member"].map(member_identity) != member_identity(crash["worker"])]
        assert (others["count"] == 0).all(), others
        assert restart["partitions_moved"] == 0 and crash["partitions_moved"] == 0
        assert result.summary["complete"], result.summary["incomplete"]
    finally:
        _cleanup(bootstrap, result.summary["topics"])


@pytest.mark.quiet  # asserts on timing: runs alone (make test)
def test_leave_and_join_move_partitions_at_once(bootstrap):
    events = [{"at_s": 3, "action": "leave", "member": 1}, {"at_s": 6, "action": "join"}]
    result = _run(bootstrap, "cooperative-sticky", events, duration_s=10)
    try:
        leave, join = result.membership.iloc[0], result.membership.iloc[1]
        assert (result.membership["outcome"] == "ok").all()
        # A clean leave is seen at once (LeaveGroup), not after a session timeout.
        assert leave["detect_s"] < 2 and leave["partitions_moved"] == 2
        assert join["partitions_moved"] >= 1 and join["partitions_assigned"] >= 1
        assert leave["duplicates"] == 0 and join["duplicates"] == 0  # commits on revoke
        assert result.summary["complete"], result.summary["incomplete"]
    finally:
        _cleanup(bootstrap, result.summary["topics"])


def test_the_rebalance_listener_commit_on_revoke_saves_the_redelivery(bootstrap, tmp_path):
    # An eager group: a join revokes every partition. Async commits every second; with the
    # listener the revoked partitions' offsets are committed first, without it the next owner
    # reads again what was consumed since the last periodic commit.
    table = rebalance_comparison(["range"], Workload(name="listener", partitions=6, message_size=80,
                                                     producer_rate=600, duration_s=9, consumers_per_group=2),
                                 [{"at_s": 3, "action": "join"}], commit="async", commit_on_revoke=True,
                                 bootstrap=bootstrap, progress=False, out=tmp_path)
    without = rebalance_comparison(["range"], Workload(name="listener", partitions=6, message_size=80,
                                                       producer_rate=600, duration_s=9, consumers_per_group=2),
                                   [{"at_s": 3, "action": "join"}], commit="async", commit_on_revoke=False,
                                   bootstrap=bootstrap, progress=False, out=tmp_path)
    assert table["partitions_revoked"].iloc[0] == 6 == without["partitions_revoked"].iloc[0]
    assert table["duplicates"].iloc[0] == 0
    assert without["duplicates"].iloc[0] > 0
    for frame in (table, without):
        run = load(frame["path"].iloc[0])
        assert run.summary["commit_on_revoke"] is (frame is table)


@pytest.mark.parametrize(("consumer", "says"), [
    ({"partition.assignment.strategy": "sticky-ish"}, "partition.assignment.strategy='sticky-ish'"),
    ({"group.protocol": "consumer", "group.remote.assignor": "sticky"}, "group.remote.assignor='sticky'"),
    ({"group.protocol": "kip848"}, "group.protocol='kip848'"),
    ({"group.protocol": "consumer", "session.timeout.ms": 6000}, "session.timeout.ms"),
])
def test_bad_protocol_or_assignor_is_refused_before_anything_runs(bootstrap, consumer, says):
    prefix = f"kbbad{uuid.uuid4().hex[:8]}"  # other tests create topics on this cluster meanwhile
    with pytest.raises(ConfigError, match=re.escape(says)):
        run_workload(Workload(name="bad", message_count=10, duration_s=0, topic_prefix=prefix),
                     {"consumer": consumer}, bootstrap=bootstrap, progress=False)
    assert not [t for t in list_topics(bootstrap) if t.startswith(prefix)]
    with pytest.raises(ConfigError, match="rebalance variants"):
        rebalance_comparison(["sticky"], Workload(consumers_per_group=2), [], bootstrap=bootstrap)
