"""The tally: generic merging of workers' reports, and the parts features register with it."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from kafkabench.engine.workers import Report
from kafkabench.faults.observer import RecoveryObserver
from kafkabench.patterns.observer import ProcessingObserver, StageTally, processing_frame
from kafkabench.run.plan import RunPlan, plan_run
from kafkabench.run.result import RunResult
from kafkabench.run.session import RunSession
from kafkabench.run.tally import GroupProgress, Tally
from kafkabench.run.timeline import AckTimeline, ErrorTimeline
from kafkabench.spec.processing import Processing
from kafkabench.spec.profile import ClientProfile
from kafkabench.spec.workload import Workload
from kafkabench.verify.observer import DeliveryLedgers, VerifyObserver

T0 = 1_700_000_000.0
BOOT = "203.0.113.1:9092"  # never contacted


def _tally() -> Tally:
    return Tally(topic_of={"p0": "t", "c0": "t", "c1": "t"}, group_of={"c0": "g", "c1": "g"},
                 t0_wall=T0)


def _interval(worker: str, role: str, second: int, counts: dict, **extra) -> Report:
    # A report closes the second before it (`Tally.t`): sent just after that second ended.
    return Report(kind="interval", worker=worker, role=role, wall=T0 + second + 1.2, counts=counts,
                  **extra)


def _done(worker: str, role: str, counts: dict, **extra) -> Report:
    return Report(kind="done", worker=worker, role=role, wall=T0 + 30, counts=counts, **extra)


class _Seen:
    """A part that keeps the kinds of the reports it was given."""

    name = "seen"

    def __init__(self):
        self.kinds: list[tuple[str, int]] = []

    def merge(self, report, tally):
        self.kinds.append((report.kind, tally.t(report.wall)))


class _Progress:
    """A part that counts a group done with what its interval reports say in "finished"."""

    name = "progress"

    def __init__(self, offsets_only=False):
        self.done_by_group: dict[str, int] = {}
        self.offsets_only = offsets_only

    def merge(self, report, tally):
        if report.kind == "interval" and report.role == "consumer":
            group = tally.group_of[report.worker]
            self.done_by_group[group] = self.done_by_group.get(group, 0) + report.counts.get("finished", 0)


# ------------------------------------------------------------------------------ the tally

def test_the_tally_merges_every_worker_and_gives_every_report_to_every_part():
    tally = _tally()
    seen = tally.register(_Seen())
    tally.add(_interval("p0", "producer", 2, {"sent": 10, "delivered": 9, "failed": 1, "bytes": 900}))
    tally.add(_interval("c0", "consumer", 2, {"consumed": 9, "bytes": 900}))
    tally.add(_done("p0", "producer", {"sent": 10, "delivered": 9, "elapsed_s": 3.0}))
    assert dict(tally.counts[2]) == {"sent": 10, "delivered": 9, "failed": 1, "bytes": 900,
                                     "consumed": 9, "consumed_bytes": 900}
    assert tally.delivered_by_topic["t"] == 9 and tally.failed_by_topic["t"] == 1
    assert tally.consumed_by_group["g"] == 9
    assert tally.totals["producer"] == {"sent": 10, "delivered": 9}
    assert tally.elapsed == {"producer_elapsed_s": 3.0}
    assert seen.kinds == [("interval", 2), ("interval", 2), ("done", 29)]


def test_a_registered_part_is_an_attribute_of_its_name_and_registering_twice_shares_it():
    tally = _tally()
    first = tally.register(_Seen())
    assert tally.register(_Seen()) is first
    assert tally.seen is first and list(tally.parts) == ["seen"]
    with pytest.raises(AttributeError, match="no attribute or registered part 'acks'"):
        tally.acks  # noqa: B018 - nothing registered it
    assert not hasattr(tally, "acks")


def test_groups_are_behind_by_what_they_consumed_unless_a_part_counts_them_done():
    tally = _tally()
    tally.add(_interval("p0", "producer", 1, {"delivered": 10}))
    tally.add(_interval("c0", "consumer", 1, {"consumed": 12, "finished": 7}))
    assert tally.behind({"g": "t"}) == [] and tally.progress is None and not tally.offsets_only

    progress = _tally_with(_Progress())
    assert isinstance(progress.progress, GroupProgress)
    assert progress.behind({"g": "t"}) == ["g"]  # done with 7 of 10
    progress.add(_interval("c1", "consumer", 2, {"consumed": 3, "finished": 3}))
    assert progress.behind({"g": "t"}) == [] and not progress.offsets_only
    assert _tally_with(_Progress(offsets_only=True)).offsets_only


def _tally_with(part) -> Tally:
    tally = _tally()
    tally.register(part)
    tally.add(_interval("p0", "producer", 1, {"delivered": 10}))
    tally.add(_interval("c0", "consumer", 1, {"consumed": 12, "finished": 7}))
    return tally


# ------------------------------------------------------------- the producers' timelines

def test_the_plan_registers_the_producers_timelines_and_they_merge_their_extras():
    plan = plan_run(Workload(name="t", partitions=2, faults=[{"at_s": 1, "action": "kill", "target": 1}]),
                    ClientProfile(name="default"), bootstrap=BOOT, run_id="r1", mode="thread")
    assert all(s.timeline for s in plan.producers)
    tally = RunSession(plan).tally
    assert isinstance(tally.acks, AckTimeline) and isinstance(tally.error_timeline, ErrorTimeline)
    worker = plan.producers[0].worker
    tally.t0_wall = T0
    tally.add(_interval(worker, "producer", 0, {"delivered": 3},
                        extras={"acks": {("t", 0, 100): 2, ("t", 1, 101): 1},
                                "errors": {(1_700_000_000, "_MSG_TIMED_OUT"): 4}}))
    tally.add(_interval(worker, "producer", 1, {"delivered": 1}, extras={"acks": {("t", 0, 100): 1}}))
    assert sorted(tally.acks.items()) == [(("t", 0, 100), 3), (("t", 1, 101), 1)]
    assert tally.error_timeline == {(1_700_000_000, "_MSG_TIMED_OUT"): 4}


def test_a_plan_without_producers_registers_no_part():
    plan = RunPlan(run_id="r1", topics=("t",), created=False, mode="thread")
    assert plan.tally_parts() == [] and RunSession(plan).tally.parts == {}


def test_recovery_reads_the_timelines_it_shares_with_the_plan():
    plan = plan_run(Workload(name="t", partitions=1), ClientProfile(name="default"), bootstrap=BOOT,
                    run_id="r1", mode="thread")
    session = RunSession(plan)
    observer = RecoveryObserver()
    observer.on_start(session)
    assert set(session.tally.parts) == {"acks", "error_timeline"}  # the plan's, shared
    result = RunResult(summary={})
    observer.contribute(result)  # no fault carried out: no rows, the figures NaN
    assert result.recovery.empty
    assert set(result.summary) == {"outage_s", "recovery_s", "first_ack_s"}
    assert all(math.isnan(v) for v in result.summary.values())


# ------------------------------------------------------------------ the features' parts

def test_the_verifier_keeps_the_producers_ledgers_from_their_final_reports():
    tally = _tally()
    observer = VerifyObserver(BOOT, ["t"])
    observer.on_start(SimpleNamespace(tally=tally))
    tally.add(_interval("p0", "producer", 0, {"sent": 1}))
    tally.add(_done("p0", "producer", {"sent": 1}, extras={"verify": {"worker": "p0"}}))
    tally.add(_done("c0", "consumer", {"consumed": 1}))
    assert isinstance(tally.verify_parts, DeliveryLedgers)
    assert list(tally.verify_parts) == [{"worker": "p0"}] and len(tally.verify_parts) == 1


def test_the_stage_counts_its_seconds_totals_attempts_and_what_groups_finished():
    tally = _tally()
    observer = ProcessingObserver(Processing(), BOOT, ["t"])
    observer.on_start(SimpleNamespace(tally=tally))
    stage = tally.processing
    assert isinstance(stage, StageTally) and isinstance(tally.progress, StageTally)
    assert not tally.offsets_only
    tally.add(_interval("p0", "producer", 1, {"delivered": 10, "failed": 0}))
    tally.add(_interval("c0", "consumer", 1, {"consumed": 6, "processed": 4, "retried": 2,
                                              "filtered": 1}))
    tally.add(_interval("c1", "consumer", 2, {"consumed": 5, "processed": 3, "failed": 1,
                                              "transactions_committed": 2}))
    # Members read retry-topic records too: consumed 11 of 10, finished 9 of 10.
    assert tally.consumed_by_group["g"] == 11 and stage.done_by_group == {"g": 9}
    assert tally.behind({"g": "t"}) == ["g"]
    tally.add(_done("c0", "consumer", {"consumed": 6, "processed": 4, "retried": 2, "filtered": 1,
                                       "attempts_1": 3, "attempts_2": 1, "delayed": 2,
                                       "stage_unflushed": 1}))
    # c1 was killed: no final report, its seconds count.
    assert stage.count("processed") == 7 and stage.count("failed") == 1 and stage.count("retried") == 2
    assert stage.attempts == {1: 3, 2: 1} and stage.totals["delayed"] == 2

    frame = processing_frame(tally)
    assert list(frame["t"]) == [1, 2]
    assert list(frame["processed"]) == [4, 3] and list(frame["failed"]) == [0, 1]

    result = RunResult(summary={})
    observer.session = SimpleNamespace(tally=tally)
    observer.contribute(result)
    s = result.summary
    assert s["processing_processed"] == 7 and s["processing_filtered"] == 1
    assert s["processing_delayed"] == 2 and s["processing_unflushed"] == 1
    assert json.loads(s["processing_attempts"]) == {"1": 3, "2": 1}
    assert "processing_transactions_committed" not in s  # not an exactly-once stage
    assert len(result.processing) == 2


def test_an_exactly_once_stage_is_judged_by_committed_offsets():
    tally = _tally()
    ProcessingObserver(Processing(exactly_once=True), BOOT, ["t"]).on_start(SimpleNamespace(tally=tally))
    assert tally.offsets_only


def test_a_tally_without_a_stage_has_an_empty_processing_frame():
    tally = _tally()
    tally.add(_interval("c0", "consumer", 1, {"consumed": 6, "processed": 4}))
    assert processing_frame(tally).empty
