"""Notebook experiments: sizing helpers and frame shaping offline, each experiment once on a real broker."""

from __future__ import annotations

import pandas as pd
import pytest

from kafkabench.analysis import capacity
from kafkabench.core.errors import ConfigError
from kafkabench.experiments import studies as experiments
from kafkabench.experiments.studies import (
    _owners,
    check_capacity_plan,
    compare_strategies_live,
    consumer_balance,
    group_ids,
    lag_status,
    live_summary,
    offline_shares,
    rate_latency_curve,
    run_watched,
    scaling_consumers,
    size,
)
from kafkabench.results.store import load

# Tiny live runs: about 1 s of load at a low rate, in threads (as CI mode runs them).
LIVE = {"name": "exp", "partitions": 3, "message_size": 100, "duration_s": 1, "producer_rate": 2000,
        "key_distribution": "zipf", "key_count": 100}


@pytest.fixture(autouse=True)
def _ci(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKABENCH_CI", "1")
    monkeypatch.setenv("KAFKABENCH_RESULTS", str(tmp_path))


def test_size_follows_ci_mode(monkeypatch):
    assert experiments.ci_mode() and size(ci=1, full=2) == 1 and experiments.run_options() == {"mode": "thread"}
    monkeypatch.setenv("KAFKABENCH_CI", "0")
    assert not experiments.ci_mode() and size(ci=1, full=2) == 2 and experiments.run_options() == {}


def test_group_ids_match_the_runner_names():
    assert group_ids({"topics": 2, "consumer_groups": 2}, "r1") == ["kb-r1-0-g0", "kb-r1-0-g1",
                                                                     "kb-r1-1-g0", "kb-r1-1-g1"]


def test_offline_shares_from_keys_and_from_a_workload():
    shares = offline_shares(["murmur2", "fnv1a-rr"], [b"a", b"b", b"c", None], partitions=2)
    assert list(shares.columns) == ["strategy", "partition", "messages", "share"]
    assert shares.groupby("strategy")["messages"].sum().tolist() == [4, 4]
    from_workload = offline_shares(["consistent_random"], LIVE)
    assert len(from_workload) == 3 and from_workload["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="partitions"):
        offline_shares(["murmur2"], [b"a"])


def test_owner_is_the_member_that_held_a_partition_longest():
    rebalances = pd.DataFrame({"t": [0.0, 0.0, 1.0, 1.0, 1.1], "member": ["a", "a", "a", "b", "a"],
                               "event": ["assign", "assign", "revoke", "assign", "assign"],
                               "partitions": ["t:0,t:1", "", "t:0,t:1", "t:1", "t:0"]})
    assert _owners(rebalances, end=10.0) == {0: "a", 1: "b"}


def test_consumer_balance_and_live_summary():
    per = pd.DataFrame({"strategy": ["s"] * 3, "partition": [0, 1, 2], "messages": [300, 100, 200],
                        "share": [0.5, 1 / 6, 1 / 3], "consumer": ["a", "b", "b"],
                        "lag_max_msgs": [5.0, 1.0, 2.0], "lag_mean_msgs": [2.0, 0.5, 1.0]})
    balance = consumer_balance(per)
    assert balance.set_index("consumer")["imbalance"].to_dict() == {"a": 1.0, "b": 1.0}
    summary = live_summary(per).iloc[0]
    assert summary["skew"] == pytest.approx(1.5) and summary["consumers"] == 2


def test_lag_status_takes_each_partitions_last_sample():
    lag = pd.DataFrame({"t": [1.0, 2.0, 2.0], "group": ["g"] * 3, "topic": ["t"] * 3, "partition": [0, 0, 1],
                        "committed": [0, 5, 5], "log_end": [5, 9, 5], "lag_msgs": [5, 4, 0],
                        "lag_s": [1.0, 0.5, 0.0], "status": ["OK", "WARN", "OK"]})
    table = lag_status(lag)
    assert table["status"].tolist() == ["WARN", "OK"] and set(table["group_status"]) == {"WARN"}


def test_rates_must_be_positive():
    with pytest.raises(ConfigError, match="positive"):
        rate_latency_curve([0, 100], LIVE, bootstrap="127.0.0.1:1")


@pytest.mark.quiet  # asserts on timing: runs alone (make test)
def test_live_strategies_scaling_and_capacity_check(bootstrap):
    live = compare_strategies_live(["murmur2_random", "fnv1a-rr"], LIVE, bootstrap=bootstrap, progress=False)
    assert len(live) == 6 and set(live["strategy"]) == {"murmur2_random", "fnv1a-rr"}
    assert live.groupby("strategy")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert live["consumer"].notna().all()

    scaling = scaling_consumers([1, 2], LIVE, bootstrap=bootstrap, progress=False)
    assert scaling["consumers"].tolist() == [1, 2]
    assert len(load(scaling["path"].iloc[-1]).rebalances) >= 1

    inputs = capacity.CapacityInputs(target_mb_s=0.2, produce_mb_s_per_partition=1.0,
                                     consume_mb_s_per_partition=1.0, consumers=2)
    check = check_capacity_plan(inputs, LIVE, bootstrap=bootstrap, progress=False).set_index("metric")
    assert list(check.index) == ["produce", "consume", "backlog", "partitions"]
    assert check.loc["partitions", "measured"] == 2  # the plan's, not the workload's 3
    assert check.loc["produce", "ok"]


def test_rate_latency_curve_rows_follow_the_rates(bootstrap):
    curve = rate_latency_curve([2000, 500], LIVE, bootstrap=bootstrap, progress=False)
    assert curve["target_rate"].tolist() == [500, 2000]
    assert curve["publish_delay_ms_p99"].notna().all()


def test_run_watched_monitor_sees_the_backlog_and_stops_before_the_topic_goes(bootstrap):
    # 02: the monitor showed no lag (no commit yet: NA) while the run measured 20-30k messages
    # behind, and ended on UNKNOWN_TOPIC_OR_PART errors because the run deleted its topic first.
    from kafkabench import widgets
    from kafkabench.cluster.admin import list_topics
    from kafkabench.run.result import make_run_id

    workload = {**LIVE, "consumer_groups": 1, "backlog_messages": 3000, "producer_rate": 1000}
    run_id = make_run_id("watched")
    monitor = widgets.lag_monitor(group_ids(workload, run_id), bootstrap=bootstrap, interval_s=0.25)
    run = run_watched(workload, monitor, run_id=run_id, bootstrap=bootstrap, progress=False)
    assert not monitor.running
    frame = monitor.frame()
    behind = frame.groupby("t")["lag_msgs"].sum(min_count=1)
    assert behind.max() > 0, frame  # uncommitted partitions count from the log start
    # Never ERR (a deleted topic used to end the monitor that way). STALL is a fair verdict
    # while auto-commit (every 5 s) has not moved an owned partition's offset for a window.
    assert set(frame["status"]) <= {"OK", "WARN", "STALL"} and monitor.sampler.errors().empty
    assert "error" not in monitor.status.value
    assert not [t for t in list_topics(bootstrap) if run_id in t]  # deleted after the monitor stopped
    assert run.summary["consumed"] >= 3000
