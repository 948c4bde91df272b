"""Named fault scenarios: the table, fault-time scaling, expectations, bad input, and real
runs on the 3-broker cluster (`cluster3`; KAFKABENCH_TEST_CLUSTER3=NAME uses a running one)."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest

from conftest import explain, run_child
from kafkabench.cli import main
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.experiments import scenarios
from kafkabench.experiments.scenarios import (
    BASE_EXPECT,
    ROW_COLUMNS,
    SCENARIOS,
    check_expectations,
    get_scenario,
    list_scenarios,
    run_scenario,
    run_scenarios,
    scenario_row,
)
from kafkabench.results.store import load
from kafkabench.run.result import RunResult
from kafkabench.spec.profile import ClientProfile
from kafkabench.spec.workload import Workload

ISSUE_SCENARIOS = {"leader-kill-acks-all", "leader-kill-acks-1", "leader-pause", "isr-below-min",
                   "rolling-restart", "controller-kill"}
# Nothing listens here: a run that got as far as the cluster would fail with ClusterError.
NOWHERE = "127.0.0.1:9"


# ---------------------------------------------------------------------------- pure

def test_the_table_has_the_issue_scenarios_each_verified_with_faults_on_rf3():
    assert ISSUE_SCENARIOS <= set(SCENARIOS)
    for name, s in SCENARIOS.items():
        assert s.name == name and s.description
        assert s.workload["verify"] is True and s.workload["faults"], name
        assert s.workload["replication_factor"] == 3, name
        assert s.workload["topic_config"]["min.insync.replicas"] == 2, name
        assert s.workload["producer_rate"] > 0 and s.workload["consumer_groups"] == 1, name
        assert s.ci_s < s.full_s, name
        for key, value in BASE_EXPECT.items():
            assert s.expect[key] == value, name
        for size in ("full", "ci"):
            w = Workload.from_dict(s.workload_for(s.seconds(size)))
            assert w.verify and w.run_s == s.seconds(size), name
        assert isinstance(s.client_profile(), ClientProfile)

    table = list_scenarios()
    assert list(table.columns) == ["name", "description", "full_s", "ci_s", "expectations"]
    assert list(table["name"]) == list(SCENARIOS)
    row = table.set_index("name").loc["leader-kill-acks-all"]
    assert "verify_lost == 0" in row["expectations"] and "verify_complete == True" in row["expectations"]


def test_client_settings_under_test():
    all_ = SCENARIOS["leader-kill-acks-all"].client_profile().producer
    assert all_["acks"] == "all" and all_["enable.idempotence"] is True
    one = SCENARIOS["leader-kill-acks-1"].client_profile().producer
    assert str(one["acks"]) == "1" and one["enable.idempotence"] is False
    # isr-below-min: sends must fail within the outage, not after librdkafka's 30 s default.
    isr = SCENARIOS["isr-below-min"]
    outage_s = isr.workload_for(isr.ci_s)["faults"][0]["duration_s"]
    assert int(isr.client_profile().producer["message.timeout.ms"]) / 1000 < outage_s
    # Security settings ride along in `common`; the settings under test stay.
    secure = SCENARIOS["leader-kill-acks-all"].client_profile({"security.protocol": "ssl"})
    assert secure.common["security.protocol"] == "ssl" and secure.producer["acks"] == "all"


def test_fault_times_scale_with_the_run_length():
    s = SCENARIOS["leader-kill-acks-all"]
    assert s.workload_for(120)["faults"] == [
        {"at_s": 40.0, "action": "kill", "target": "leader", "duration_s": 40.0}]
    assert s.workload_for(30)["faults"] == [
        {"at_s": 10.0, "action": "kill", "target": "leader", "duration_s": 10.0}]
    assert s.workload_for(30)["duration_s"] == 30 and s.workload_for(30)["warmup_s"] == 0
    pause = SCENARIOS["leader-pause"]
    assert pause.workload_for(pause.full_s)["faults"][0]["duration_s"] == 10.0
    assert pause.workload_for(pause.ci_s)["faults"][0]["duration_s"] == 5.0
    rolling = SCENARIOS["rolling-restart"]
    assert rolling.workload_for(rolling.full_s / 4)["faults"] == [
        {"at_s": rolling.workload["faults"][0]["at_s"] / 4, "action": "rolling_restart"}]
    # The definition itself is not changed by scaling.
    assert s.workload["faults"][0]["at_s"] == 40


@pytest.mark.parametrize("seconds", [5, 0, -30, float("nan"), "30", True])
def test_a_run_too_short_or_not_a_number_is_refused(seconds):
    with pytest.raises(ConfigError, match="seconds="):
        SCENARIOS["leader-pause"].workload_for(seconds)


def test_unknown_names_and_sizes_fail_before_any_cluster():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*leader-kill-acks-all.*controller-kill"):
        get_scenario("nope")
    # ConfigError, not ClusterError: refused before the (unreachable) cluster is asked anything.
    with pytest.raises(ConfigError, match="unknown scenario"):
        run_scenario("nope", bootstrap=NOWHERE)
    with pytest.raises(ConfigError, match="unknown scenario 'nope'"):
        run_scenarios(["leader-pause", "nope"], bootstrap=NOWHERE)
    with pytest.raises(ConfigError, match="size='medium'"):
        run_scenario("leader-pause", size="medium", bootstrap=NOWHERE)
    with pytest.raises(ConfigError, match="seconds=3"):
        run_scenario("leader-pause", seconds=3, bootstrap=NOWHERE)


def test_an_external_cluster_needs_fault_commands_before_anything_runs():
    with pytest.raises(ConfigError, match="kill on a cluster kafkabench did not start needs a shell command"):
        run_scenario("leader-kill-acks-all", size="ci", bootstrap=NOWHERE, healthy_timeout_s=1)
    # kafkabench cannot find an external cluster's controller: the fault needs its own command.
    with pytest.raises(ConfigError, match="controller"):
        run_scenario("controller-kill", size="ci", bootstrap=NOWHERE, healthy_timeout_s=1,
                     fault_commands={"kill": "true", "start": "true"})
    # With the commands, the schedule passes and the (unreachable) cluster is what fails.
    with pytest.raises(ClusterError, match="not healthy after 1 s"):
        run_scenario("leader-kill-acks-all", size="ci", bootstrap=NOWHERE, healthy_timeout_s=1,
                     fault_commands={"kill": "true", "start": "true"})


def test_expectations_values_comparisons_and_missing_figures():
    figures = {"verify_lost": 0, "failed": 12, "verify_complete": True, "outage_s": math.nan,
               "errors_reported": False}
    checks = check_expectations({"verify_lost": 0, "failed": ">0", "verify_complete": True,
                                 "outage_s": "<10", "verify_duplicated": 0,
                                 "errors_reported": True, "faults_failed": "<= 0"}, figures)
    assert checks == {"verify_lost == 0": True, "failed > 0": True, "verify_complete == True": True,
                      "outage_s < 10": False, "verify_duplicated == 0": False,
                      "errors_reported == True": False, "faults_failed <= 0": False}
    assert check_expectations({"verify_complete": True}, {"verify_complete": False}) == {
        "verify_complete == True": False}
    with pytest.raises(ConfigError, match="expectation 'about 3'"):
        check_expectations({"failed": "about 3"}, figures)


def _result(faults_outcomes: list[str], **summary) -> RunResult:
    """A RunResult with a summary and a faults frame of these outcomes (row building only)."""
    base = {"verify_acked": 1000, "verify_lost": 0, "verify_duplicated": 0, "verify_reordered": 0,
            "verify_failed_but_present": 0, "verify_complete": True, "failed": 0, "faults": 2,
            "faults_failed": 0, "outage_s": 9.5, "recovery_s": math.inf, "first_ack_s": 9.6,
            "publish_latency_ms_max": 9700.0, "e2e_latency_ms_p99": 120.0, "leader_changes": 2,
            "under_replicated_max": 6, "errors": {"_TRANSPORT": 3, "_MSG_TIMED_OUT": 40}}
    result = RunResult(summary={**base, **summary})
    result.faults = pd.DataFrame({"outcome": faults_outcomes})
    return result


def test_a_scenario_row_passes_only_when_every_expectation_held():
    s = SCENARIOS["leader-kill-acks-all"]
    row, checks = scenario_row(s, 30, _result(["ok", "ok"]))
    assert list(row) == list(ROW_COLUMNS)
    assert row["passed"] is True and row["failed_checks"] == "" and all(checks.values())
    assert (row["acked"], row["lost"], row["seconds"]) == (1000, 0, 30.0)
    assert row["recovery_s"] == math.inf and row["errors"] == "_MSG_TIMED_OUT:40, _TRANSPORT:3"

    row, checks = scenario_row(s, 30, _result(["ok", "ok"], verify_lost=3, verify_complete=False))
    assert row["passed"] is False and row["lost"] == 3
    assert row["failed_checks"] == "verify_lost == 0 (was 3); verify_complete == True (was False)"
    # A fault the run ended before (skipped) means the scenario did not happen as written.
    row, _ = scenario_row(s, 30, _result(["ok", "skipped"]))
    assert row["passed"] is False and "faults_skipped == 0 (was 1)" in row["failed_checks"]


def test_errors_reported_counts_failures_or_isr_and_timeout_errors():
    s = SCENARIOS["isr-below-min"]
    _, checks = scenario_row(s, 30, _result(["ok"] * 4, failed=0, errors={"_TRANSPORT": 5}))
    assert checks["errors_reported == True"] is False
    _, checks = scenario_row(s, 30, _result(["ok"] * 4, failed=0, errors={"NOT_ENOUGH_REPLICAS": 1}))
    assert checks["errors_reported == True"] is True
    _, checks = scenario_row(s, 30, _result(["ok"] * 4, failed=7, errors={}))
    assert checks["errors_reported == True"] is True


def test_cli_list_and_an_unknown_name(capsys, monkeypatch):
    assert main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ISSUE_SCENARIOS) and "expectations" in out

    def no_cluster():
        raise AssertionError("a cluster was started for an unknown scenario")

    # Exit 2, the names listed, and no cluster started (no --bootstrap-server: it would start one).
    monkeypatch.setattr(scenarios, "_own_cluster", no_cluster)
    assert main(["scenario", "run", "leader-kil", "--size", "ci"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'leader-kil'" in err and "leader-kill-acks-all" in err


# ---------------------------------------------------------------------------- real runs

@pytest.fixture
def nodes_restored(cluster3):
    """Yields the cluster; afterwards every node this test's faults hit is running and unpaused
    (the fault schedule restores them; this is the safety net other tests rely on)."""
    hit: set[int] = set()
    yield cluster3, hit
    from kafkabench.cluster.local import LocalCluster

    current = LocalCluster.attach(cluster3.name, cluster3.base_dir)
    for node in sorted(hit):
        n = current.node(node)
        if n.alive and n.paused:
            current.resume(node)
        elif not n.alive:
            current.start(node)


def _hit(outcome, hit: set[int]) -> None:
    hit.update(int(n) for n in outcome.result.faults["node"].dropna())


@pytest.mark.cluster3
def test_leader_kill_acks_all_loses_and_duplicates_nothing(nodes_restored):
    cluster, hit = nodes_restored
    outcome = run_scenario("leader-kill-acks-all", size="ci", cluster=cluster, progress=False, out=None)
    _hit(outcome, hit)
    row, faults = outcome.row, outcome.result.faults
    assert ((faults["action"] == "kill") & (faults["outcome"] == "ok")).any(), faults.to_string()
    assert (row["lost"], row["duplicated"], row["reordered"]) == (0, 0, 0), row
    assert row["acked"] > 0 and outcome.result.summary["verify_complete"] is True, row
    assert outcome.passed, row


@pytest.mark.cluster3
def test_isr_below_min_reports_errors_and_loses_nothing(nodes_restored):
    cluster, hit = nodes_restored
    outcome = run_scenario("isr-below-min", size="ci", cluster=cluster, progress=False, out=None)
    _hit(outcome, hit)
    row, faults = outcome.row, outcome.result.faults
    kills = faults[(faults["action"] == "kill") & (faults["outcome"] == "ok")]
    assert kills["node"].nunique() == 2, faults.to_string()
    assert outcome.checks["errors_reported == True"], row
    assert row["failed"] > 0 or row["errors"], row
    assert row["lost"] == 0 and outcome.result.summary["verify_complete"] is True, row


@pytest.mark.cluster3
def test_cli_scenario_run_json_on_an_embedded_cluster(nodes_restored, tmp_path):
    cluster, hit = nodes_restored
    # Found by its bootstrap servers (kafkabench.faults.find_local_cluster): nodes controlled directly.
    proc = run_child([sys.executable, "-m", "kafkabench", "scenario", "run", "leader-kill-acks-all",
                      "--json", "--seconds", "24", "--bootstrap-server", cluster.bootstrap_servers,
                      "--out", str(tmp_path)], timeout=400)
    for run in tmp_path.glob("*/result.json"):
        hit.update(int(n) for n in load(run.parent).faults["node"].dropna())
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("scenario", "acked", "lost", "duplicated", "reordered", "outage_s", "recovery_s",
                "publish_latency_ms_max", "e2e_latency_ms_p99"):
        assert key in row, explain(proc)
    assert row["scenario"] == "leader-kill-acks-all" and row["seconds"] == 24, explain(proc)
    assert (row["lost"], row["duplicated"]) == (0, 0), explain(proc)
    assert proc.returncode == (0 if row["passed"] else 1), explain(proc)
    assert row["passed"], explain(proc)


def test_run_in_child_survives_a_process_abort_and_hands_back_values_and_errors():
    # Scenario runs go through it: librdkafka can abort a process while brokers die.
    import os
    import signal

    from kafkabench.experiments.scenarios import run_in_child

    code, value = run_in_child(os.abort, (), timeout_s=60)
    assert (code, value) == (-signal.SIGABRT, None)
    assert run_in_child(divmod, (7, 2), timeout_s=60) == (0, (3, 1))
    with pytest.raises(ValueError, match="invalid literal"):
        run_in_child(int, ("seven",), timeout_s=60)
