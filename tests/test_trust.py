"""Verified and faulted runs through `run_workload`: what the verifier catches, what a fault
schedule leaves in the result, and the schedules refused before anything runs (real broker)."""

from __future__ import annotations

import os
import sys
import uuid

import pytest
from confluent_kafka import TopicPartition

from conftest import embedded_cluster, run_child
from kafkabench.cluster.admin import admin_client
from kafkabench.core.errors import ConfigError
from kafkabench.run.session import RunObserver
from kafkabench.runner import run_workload
from kafkabench.spec.profile import load_profile


def _topics_named(bootstrap: str, prefix: str) -> list[str]:
    return [t for t in admin_client(bootstrap).list_topics(timeout=10).topics if t.startswith(prefix)]


def _local_cluster_or_skip():
    if os.environ.get("KAFKABENCH_TEST_BOOTSTRAP"):
        pytest.skip("needs the embedded cluster's node control")
    return embedded_cluster(1)


class _DeleteRecords(RunObserver):
    """Deletes partition 0's records up to its high watermark once, `at_s` into the run."""

    def __init__(self, bootstrap: str, at_s: float):
        self.bootstrap, self.at_s = bootstrap, at_s
        self.deleted_before: int | None = None
        self._t_go = None

    def on_go(self, session) -> None:
        import time

        self._t_go = time.monotonic()

    def on_second(self, session) -> None:
        import time

        if self.deleted_before is not None or self._t_go is None or time.monotonic() - self._t_go < self.at_s:
            return
        admin = admin_client(self.bootstrap)
        topic = session.plan.topics[0]
        tp = TopicPartition(topic, 0, -1)  # -1: up to the high watermark
        result = admin.delete_records([tp], request_timeout=10)[tp].result(timeout=15)
        self.deleted_before = result.low_watermark


def test_a_verified_run_counts_records_deleted_under_it_as_lost_exactly(bootstrap):
    deleter = _DeleteRecords(bootstrap, at_s=2.0)
    result = run_workload({"name": "verify-delete", "partitions": 3, "message_size": 100,
                           "producer_rate": 2000, "duration_s": 5, "verify": True},
                          bootstrap=bootstrap, progress=False, observers=[deleter])
    s = result.summary
    assert deleter.deleted_before and deleter.deleted_before > 0
    assert s["verify_complete"] is True, s["verify_error"]
    assert s["verify_acked"] == s["delivered"] == s["produced"]
    assert s["verify_lost"] == deleter.deleted_before
    assert (s["verify_duplicated"], s["verify_reordered"], s["verify_failed_but_present"]) == (0, 0, 0)
    assert s["verify_read"] == s["verify_acked"] - deleter.deleted_before
    lost = result.verify.groupby("partition")["lost"].sum().to_dict()
    assert lost == {0: deleter.deleted_before, 1: 0, 2: 0}


def test_a_node_the_cluster_does_not_have_is_refused_before_any_topic_exists(bootstrap):
    cluster = _local_cluster_or_skip()
    prefix = f"kbnode{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigError, match=r"faults\[0\].*7"):
        run_workload({"name": "bad-node", "topic_prefix": prefix, "duration_s": 5,
                      "faults": [{"at_s": 1, "action": "kill", "target": 7}]},
                     bootstrap=bootstrap, progress=False, cluster=cluster)
    assert _topics_named(bootstrap, prefix) == []


def test_an_external_cluster_without_fault_commands_is_refused_before_any_topic_exists(
        bootstrap, tmp_path, monkeypatch):
    # No embedded cluster is known under this KAFKABENCH_HOME: the cluster is someone else's.
    monkeypatch.setenv("KAFKABENCH_HOME", str(tmp_path))
    prefix = f"kbext{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigError, match="command") as info:
        run_workload({"name": "external", "topic_prefix": prefix, "duration_s": 5,
                      "faults": [{"at_s": 1, "action": "pause", "target": "leader", "duration_s": 2}]},
                     bootstrap=bootstrap, progress=False)
    assert "fault_commands" in str(info.value)
    assert _topics_named(bootstrap, prefix) == []


def test_cli_refuses_a_fault_after_the_run_and_an_unknown_action_before_contacting_a_cluster(tmp_path):
    env = {**os.environ, "KAFKABENCH_BOOTSTRAP": "127.0.0.1:1"}  # nothing listens there
    for fault, words in (("at_s=30,action=kill,target=1", ["faults[0]", "at_s=30", "after the run"]),
                         ("at_s=1,action=explode,target=1", ["faults[0].action='explode'", "kill"])):
        proc = run_child([sys.executable, "-m", "kafkabench.cli", "run", "quickstart", "--set",
                          "duration_s=5", "--fault", fault, "--out", str(tmp_path)], timeout=120, env=env)
        assert proc.returncode == 2, proc.stderr
        for word in words:
            assert word in proc.stderr
        assert "127.0.0.1:1" not in proc.stderr  # refused before any connection


@pytest.mark.cluster3
def test_a_pause_and_a_kill_show_in_faults_cluster_state_and_recovery(cluster3):
    profile = load_profile(None).with_settings(producer={"acks": "all", "enable.idempotence": True})
    result = run_workload(
        {"name": "pause-kill", "partitions": 3, "replication_factor": 3,
         "topic_config": {"min.insync.replicas": "2"}, "message_size": 100, "producer_rate": 1000,
         "duration_s": 18, "verify": True,
         "faults": [{"at_s": 2, "action": "pause", "target": "leader", "duration_s": 3},
                    {"at_s": 7, "action": "kill", "target": "leader:1", "duration_s": 6}]},
        profile, bootstrap=cluster3.bootstrap_servers, progress=False, cluster=cluster3)
    faults = result.faults
    done = faults[faults["outcome"] == "ok"]
    assert list(done["action"]) == ["pause", "resume", "kill", "start"], faults.to_string()
    assert done["node"].notna().all()
    assert (done["started_s"] >= done["scheduled_s"] - 0.01).all()
    assert result.summary["faults"] == 4 and result.summary["faults_failed"] == 0
    state = result.cluster_state
    assert state["leader_changed"].any(), "no leader change seen after killing a leader"
    assert state.loc[state["t"] > 7, "under_replicated"].any()
    assert result.summary["leader_changes"] >= 1
    assert list(result.recovery["action"]) == ["pause", "kill"]
    assert (result.recovery["outage_s"] > 0).all()
    s = result.summary
    assert s["verify_complete"] is True, s["verify_error"]
    assert (s["verify_lost"], s["verify_duplicated"], s["verify_reordered"]) == (0, 0, 0)
    assert s["verify_acked"] == s["delivered"]
    # Every node is back: the cleanup leaves nothing down.
    assert all(n.alive and not n.paused for n in cluster3.status())
