"""Cluster state: the frame and its per-second counts from hand-made samples; the observer on an
unreachable cluster, on the 1-broker cluster, and through a leader kill on 3 brokers."""

import math
import os
import signal
import time
import uuid
from types import SimpleNamespace

import pandas as pd
import pytest

from kafkabench.analysis.cluster_state import (
    CLUSTER_STATE_DTYPES,
    cluster_state_figures,
    cluster_state_frame,
    cluster_state_per_second,
)
from kafkabench.cluster.admin import create_topic, delete_topics, describe_topic
from kafkabench.cluster.local import LocalCluster
from kafkabench.cluster.metadata import MetadataProbe
from kafkabench.core import contract
from kafkabench.core.errors import ClusterError
from kafkabench.faults.clusterstate import ClusterStateObserver


def _topic() -> str:
    return f"kb-cs-{uuid.uuid4().hex[:8]}"


def _session(t0_wall: float = 0.0) -> SimpleNamespace:
    """What the observer reads of a RunSession: the run's t = 0."""
    return SimpleNamespace(tally=SimpleNamespace(t0_wall=t0_wall))


def _samples():
    """Two partitions: steady, the leader of p0 dies (p1 loses its leader), a failed sample,
    then new leaders."""
    rows = []
    for wall, leaders, isr in ((100.0, (1, 2), (3, 3)), (100.5, (1, 2), (3, 3)),
                               (101.2, (3, -1), (2, 0))):
        rows += [(wall, "t", p, leaders[p], 3, isr[p], "") for p in (0, 1)]
    rows.append((102.0, "", -1, -1, 0, 0, "no metadata: timed out"))
    rows += [(103.0, "t", p, leader, 3, 2, "") for p, leader in ((0, 3), (1, 3))]
    return rows


def test_frame_has_the_contract_columns_and_marks_changes():
    frame = cluster_state_frame(_samples(), t0_wall=100.5)
    assert list(frame.columns) == list(CLUSTER_STATE_DTYPES)
    assert {c: str(d) for c, d in frame.dtypes.items()} == CLUSTER_STATE_DTYPES
    assert contract.check_frame("cluster_state", frame) == []
    assert list(frame["t"]) == [-0.5, -0.5, 0.0, 0.0, pytest.approx(0.7), pytest.approx(0.7),
                                1.5, 2.5, 2.5]
    assert frame["time"].iloc[0] == pd.Timestamp(100.0, unit="s", tz="UTC")
    p0, p1 = frame[frame["partition"] == 0], frame[frame["partition"] == 1]
    assert list(p0["leader_changed"]) == [False, False, True, False]
    # Losing the leader is a change, and so is electing one; the failed sample in between
    # is skipped.
    assert list(p1["leader_changed"]) == [False, False, True, True]
    assert list(p1["offline"]) == [False, False, True, False]
    assert list(p0["under_replicated"]) == [False, False, True, True]
    failed = frame[frame["error"] != ""]
    assert list(failed[["topic", "partition"]].itertuples(index=False, name=None)) == [("", -1)]
    assert not failed["under_replicated"].any() and not failed["leader_changed"].any()


def test_per_second_counts_and_figures():
    frame = cluster_state_frame(_samples(), t0_wall=100.0)
    per_second = cluster_state_per_second(frame)
    assert list(per_second.columns) == ["t", "under_replicated", "offline", "leader_changes",
                                        "min_isr_size"]
    assert list(per_second["t"]) == [0, 1, 2, 3]
    assert per_second["under_replicated"].tolist() == [0, 2, pd.NA, 2]
    assert per_second["offline"].tolist() == [0, 1, pd.NA, 0]
    assert per_second["leader_changes"].tolist() == [0, 2, pd.NA, 1]
    assert per_second["min_isr_size"].tolist() == [3, 0, pd.NA, 2]
    assert cluster_state_figures(frame) == {"leader_changes": 3, "under_replicated_max": 2,
                                            "offline_max": 1}


def test_per_second_takes_the_worst_sample_of_a_second():
    rows = [(10.2, "t", 0, 1, 3, 1, ""), (10.7, "t", 0, 2, 3, 3, "")]
    per_second = cluster_state_per_second(cluster_state_frame(rows, t0_wall=10.0))
    assert per_second.to_dict("records") == [
        {"t": 0, "under_replicated": 1, "offline": 0, "leader_changes": 1, "min_isr_size": 1}]


def test_empty_frame_and_figures():
    frame = cluster_state_frame([], t0_wall=0.0)
    assert frame.empty and {c: str(d) for c, d in frame.dtypes.items()} == CLUSTER_STATE_DTYPES
    assert cluster_state_per_second(frame).empty
    assert cluster_state_figures(frame) == {"leader_changes": 0, "under_replicated_max": 0,
                                            "offline_max": 0}


def test_unreachable_cluster_gives_error_rows_not_exceptions():
    observer = ClusterStateObserver("127.0.0.1:1", ["t"], interval_s=0.2, timeout_s=0.5)
    session = _session()
    observer.on_start(session)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(observer.frame()) < 2:
            time.sleep(0.1)
    finally:
        observer.on_end(session)
    assert observer._sidecar._proc.poll() is not None  # the sampler's process ended
    frame = observer.frame()
    assert len(frame) >= 3  # two from the sampler and the final one
    assert (frame["error"].str.contains("127.0.0.1:1")).all()
    assert (frame["topic"] == "").all() and (frame["partition"] == -1).all()
    result = SimpleNamespace(summary={})
    observer.contribute(result)
    assert result.cluster_state is not None and len(result.cluster_state) == len(frame)
    assert result.summary == {"leader_changes": 0, "under_replicated_max": 0, "offline_max": 0,
                              "sampler_restarts": 0, "warnings": []}


def test_a_failed_probe_sample_makes_its_client_anew():
    probe = MetadataProbe("127.0.0.1:1", ["t"], timeout_s=0.5)
    rows = probe.sample()
    assert [r[1:6] for r in rows] == [("", -1, -1, 0, 0)] and "127.0.0.1:1" in rows[0][6]
    assert probe._admin is None  # made anew for the next sample: a stuck client stays stuck


def test_a_sampler_process_that_dies_is_restarted_and_the_gap_is_a_row(bootstrap):
    topic = _topic()
    create_topic(bootstrap, topic, partitions=1, replication_factor=1, timeout_s=30)
    observer = ClusterStateObserver(bootstrap, [topic], interval_s=0.2)
    session = _session(time.time())
    try:
        observer.on_start(session)
        assert _wait(observer, lambda f: (f["topic"] == topic).sum() >= 2, 30)["topic"].eq(topic).sum() >= 2
        os.kill(observer._sidecar.pid, signal.SIGABRT)  # as librdkafka's abort() does
        killed_at = time.time()
        frame = _wait(observer, lambda f: (f[f["topic"] == topic]["time"]
                                           > pd.Timestamp(killed_at + 0.5, unit="s", tz="UTC")).any(), 30)
        observer.on_end(session)
    finally:
        delete_topics(bootstrap, [topic])
    gap = frame[frame["error"].str.contains("SIGABRT")]
    assert len(gap) == 1 and gap["partition"].iloc[0] == -1, _show(frame)
    after = frame[(frame["topic"] == topic) & (frame["time"] > gap["time"].iloc[0])]
    assert len(after) >= 1 and (after["error"] == "").all(), _show(frame)
    result = SimpleNamespace(summary={"warnings": []})
    observer.contribute(result)
    assert result.summary["sampler_restarts"] == 1
    assert any("cluster-state sampler's process was killed by SIGABRT" in w for w in result.summary["warnings"])


def test_samples_the_topics_of_a_run(bootstrap):
    topic = _topic()
    create_topic(bootstrap, topic, partitions=2, replication_factor=1, timeout_s=30)
    observer = ClusterStateObserver(bootstrap, [topic, f"{topic}-missing"], interval_s=0.2)
    session = _session()
    try:
        observer.on_start(session)
        _wait(observer, lambda f: len(f) > 0, 30)  # the sampler's process has started
        session.tally.t0_wall = time.time()  # the producers go after the observers start
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and observer.frame()["time"].nunique() < 3:
            time.sleep(0.1)
        observer.on_end(session)
    finally:
        observer._sidecar.stop()
        delete_topics(bootstrap, [topic])
    frame = observer.frame()
    ok = frame[frame["topic"] == topic]
    assert ok["time"].nunique() >= 3
    assert sorted(set(ok["partition"])) == [0, 1]
    assert (ok["error"] == "").all() and (ok["leader"] >= 0).all()
    assert not ok[["under_replicated", "offline", "leader_changed"]].any().any()
    assert (ok["replicas"] == 1).all() and (ok["isr_size"] == 1).all()
    # A topic the cluster does not have: a row naming it in every sample, never created.
    missing = frame[frame["topic"] == f"{topic}-missing"]
    assert len(missing) == frame["time"].nunique() and (missing["partition"] == -1).all()
    assert missing["error"].str.contains("nknown").all()
    # t counts from the producers' release: the first sample came before it.
    assert ok["t"].iloc[0] <= 0 < ok["t"].iloc[-1] < 30
    expected = (frame["time"] - pd.Timestamp(session.tally.t0_wall, unit="s", tz="UTC")).dt.total_seconds()
    assert ((frame["t"] - expected).abs() < 1e-3).all()


def _wait(observer: ClusterStateObserver, condition, timeout_s: float) -> pd.DataFrame:
    """The observer's frame once `condition(frame)` holds (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame = observer.frame()
        if condition(frame) or time.monotonic() > deadline:
            return frame
        time.sleep(0.25)


def _show(frame: pd.DataFrame) -> str:
    """The last samples, for an assertion message."""
    return "\n" + frame.drop(columns="time").tail(30).to_string()


def _wait_quiet(cluster: LocalCluster, bootstrap: str, topic: str, timeout_s: float) -> None:
    """Wait until every node runs unpaused and partition 0 of `topic` has its 3 replicas in
    sync (or the timeout passed), keeping the nodes' pids up to date.

    Another test may kill, pause and restart nodes of a shared cluster (KAFKABENCH_TEST_CLUSTER3)
    at the same time: its restarts give nodes new pids, which only the state file knows.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = LocalCluster.attach(cluster.name, cluster.base_dir)
        for node, now in zip(cluster.nodes, state.nodes, strict=True):
            node.pid = now.pid
        running = all(n.alive and not n.paused for n in cluster.nodes)
        isr = describe_topic(bootstrap, topic).set_index("partition").loc[0, "isr"]
        if (running and len(isr) == 3) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


@pytest.mark.cluster3
def test_a_leader_kill_shows_as_a_leader_change_and_under_replication(cluster3):
    bootstrap = cluster3.bootstrap_servers
    topic = _topic()
    create_topic(bootstrap, topic, partitions=2, replication_factor=3, timeout_s=30)
    observer = ClusterStateObserver(bootstrap, [topic], interval_s=0.5)
    session = _session()
    killed = None
    p0 = lambda f: f[(f["partition"] == 0) & (f["topic"] == topic)]
    try:
        _wait_quiet(cluster3, bootstrap, topic, 60)
        leader = int(describe_topic(bootstrap, topic).set_index("partition").loc[0, "leader"])
        observer.on_start(session)
        session.tally.t0_wall = time.time()
        answered = lambda f: f[f["error"] == ""]["time"].nunique()
        steady = _wait(observer, lambda f: answered(f) >= 2, 20)
        assert answered(steady) >= 2, _show(steady)

        cluster3.kill(leader)
        killed = leader
        t_kill = time.time() - session.tally.t0_wall
        # The controller moves leadership once the dead broker's session times out (~9 s).
        frame = _wait(observer, lambda f: (p0(f)["leader_changed"] & p0(f)["under_replicated"]).any(), 60)
        changed = p0(frame)[p0(frame)["leader_changed"]]
        assert len(changed), f"no leader change of partition 0 after killing node {leader}: {_show(frame)}"
        assert changed["t"].iloc[0] > t_kill and changed["leader"].iloc[0] != leader, _show(frame)
        assert p0(frame)["under_replicated"].any(), _show(frame)

        cluster3.start(leader)
        killed = None
        t_back = time.time() - session.tally.t0_wall
        frame = _wait(observer, lambda f: (p0(f)[p0(f)["t"] > t_back]["isr_size"] == 3).any(), 60)
        assert (p0(frame)[p0(frame)["t"] > t_back]["isr_size"] == 3).any(), \
            f"node {leader} did not rejoin the ISR of partition 0: {_show(frame)}"
        observer.on_end(session)
    finally:
        observer._sidecar.stop()
        if killed is not None and not cluster3.node(killed).alive:
            cluster3.start(killed)  # another test uses this cluster: leave every node running
        try:
            delete_topics(bootstrap, [topic], timeout_s=10)
        except ClusterError:
            pass  # a topic left on a test cluster harms nothing; the test's own error matters

    result = SimpleNamespace(summary={})
    observer.contribute(result)
    assert result.summary["leader_changes"] >= 1
    assert result.summary["under_replicated_max"] >= 1
    assert result.summary["offline_max"] >= 0
    frame = result.cluster_state
    assert frame["t"].is_monotonic_increasing and not math.isnan(frame["t"].iloc[-1])
    # Failed samples (a broker that just died may not answer in time) are rows, never gaps.
    failed = frame[frame["error"] != ""]
    assert (failed["partition"] == -1).all()
