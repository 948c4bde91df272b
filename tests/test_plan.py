"""The run plan: names, specs and size checks, decided without a broker."""

from __future__ import annotations

import pytest

from kafkabench.core.contract import group_name
from kafkabench.core.errors import ConfigError
from kafkabench.run.plan import plan_run
from kafkabench.spec.profile import ClientProfile
from kafkabench.spec.workload import Workload

BOOT = "203.0.113.1:9092"  # never contacted: a plan touches no broker


def _plan(profile: ClientProfile | None = None, **fields):
    workload = Workload(**{"name": "p", "partitions": 4, "message_size": 100, **fields})
    return plan_run(workload, profile or ClientProfile(name="default"), bootstrap=BOOT,
                    run_id="r1")


def test_names_specs_and_groups_follow_the_workload():
    plan = _plan(topics=2, producers=2, consumer_groups=2, consumers_per_group=3)
    assert plan.topics == ("kb-r1-0", "kb-r1-1")
    assert [s.worker for s in plan.producers] == ["producer-0-0", "producer-0-1",
                                                  "producer-1-0", "producer-1-1"]
    assert plan.groups == [group_name(t, g) for t in plan.topics for g in range(2)]
    assert len(plan.consumers) == 12
    assert plan.consumers[0].worker == "0-g0-c0"
    # Every worker knows its topic; every member its group and that group's topic.
    assert all(plan.topic_of[s.worker] == s.topics[0] for s in (*plan.producers, *plan.consumers))
    assert plan.topic_of_group == {g: g.rsplit("-g", 1)[0] for g in plan.groups}
    assert plan.mode == "process" and plan.created and plan.partitions == 4
    assert all(s.config["bootstrap.servers"] == BOOT for s in plan.producers)


def test_one_worker_runs_in_a_thread_and_existing_topics_are_not_created():
    workload = Workload(name="p", partitions=1, consumer_groups=0)
    plan = plan_run(workload, ClientProfile(name="default"), bootstrap=BOOT, run_id="r1",
                    topics=["mine"])
    assert plan.mode == "thread" and plan.topics == ("mine",) and not plan.created
    assert plan.producers[0].topics == ("mine",)


def test_message_count_is_split_and_backlog_specs_derive_from_the_producers():
    plan = _plan(producers=3, message_count=1000, duration_s=0)
    assert [s.max_messages for s in plan.producers] == [333, 333, 333]
    backlog = plan.backlog_producers(900)
    assert [s.max_messages for s in backlog] == [300, 300, 300]
    assert [s.worker for s in backlog] == [s.worker for s in plan.producers]


def test_statistics_and_builtin_partitioner_reach_the_client_settings():
    workload = Workload(name="p", partitions=4)
    plan = plan_run(workload, ClientProfile(name="default"), bootstrap=BOOT, run_id="r",
                    partitioner="murmur2_random", stats_interval_ms=1000)
    conf = plan.producers[0].config
    assert conf["statistics.interval.ms"] == 1000 and conf["partitioner"] == "murmur2_random"
    assert plan.producers[0].partitioner is None


@pytest.mark.parametrize("kwargs, named", [({"mode": "fork"}, "mode='fork'"),
                                           ({"commit": "never"}, "commit='never'")])
def test_bad_options_are_refused_by_name(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        plan_run(Workload(name="p"), ClientProfile(name="default"), bootstrap=BOOT, run_id="r",
                 **kwargs)


def test_messages_over_the_producers_limit_are_refused_before_anything_runs():
    with pytest.raises(ConfigError, match=r"message\.max\.bytes \(1,000,000 B\)"):
        _plan(message_size=2_000_000)
    big = ClientProfile(name="big", producer={"message.max.bytes": 3_000_000})
    assert _plan(big, message_size=2_000_000).max_message_size == 2_000_000
