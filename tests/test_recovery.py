"""Recovery figures on hand-made timelines whose answers are known exactly (no broker)."""

import math
from collections import Counter

import pandas as pd
import pytest

from kafkabench.analysis.recovery import COLUMNS, recovery_figures, recovery_summary
from kafkabench.core import contract
from kafkabench.core.errors import ConfigError
from kafkabench.measure.stats import LatencyRecorder

T0 = 1_700_000_000.25  # a t=0 that is not on a whole second
T0_CS = 170_000_000_025
END_S = 30


def fault_rows(*rows):
    """A faults frame; each row is (fault, action, origin, node, started_s)."""
    return pd.DataFrame({
        "fault": pd.Series([r[0] for r in rows], dtype="int64"),
        "action": pd.Series([r[1] for r in rows], dtype="str"),
        "origin": pd.Series([r[2] for r in rows], dtype="str"),
        "target": pd.Series([str(r[3]) for r in rows], dtype="str"),
        "node": pd.array([r[3] for r in rows], dtype="Int64"),
        "scheduled_s": pd.Series([r[4] for r in rows], dtype="float64"),
        "started_s": pd.Series([r[4] for r in rows], dtype="float64"),
        "ended_s": pd.Series([r[4] for r in rows], dtype="float64"),
        "outcome": pd.Series(["ok"] * len(rows), dtype="str"),
        "error": pd.Series([""] * len(rows), dtype="str"),
        "command": pd.Series([""] * len(rows), dtype="str"),
    })


def steady_acks(partitions=3, silent=None, until_s=END_S):
    """An ack in every 10 ms bucket of [0, until_s) on each partition, except the
    {partition: [(from_s, to_s), ...]} silent stretches."""
    acks = Counter()
    silent = silent or {}
    for p in range(partitions):
        for k in range(until_s * 100):
            if not any(lo * 100 <= k < hi * 100 for lo, hi in silent.get(p, [])):
                acks[("t", p, T0_CS + k)] += 2
    return acks


def timeseries(delivered):
    """{t: delivered} for every second of the run (100 where not given)."""
    t = range(END_S)
    return pd.DataFrame({"delivered": [delivered.get(s, 100) for s in t]},
                        index=pd.Index(t, dtype="int64", name="t"))


def recorder(value_us, count=1):
    r = LatencyRecorder()
    r.record(value_us, count)
    return r


def figures(faults, acks=None, ts=None, intervals=None, errors=None, **kw):
    return recovery_figures(faults, steady_acks() if acks is None else acks,
                            timeseries({}) if ts is None else ts, intervals or {}, errors or {},
                            t0_wall=T0, **kw)


def test_gap_on_one_partition_of_three_is_the_outage():
    silent = {1: [(10.0, 12.5), (15.0, 16.2)],  # the outage, and a shorter gap later
              0: [(6.0, 9.0)]}  # before the fault: not part of its outage
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)), steady_acks(silent=silent))
    assert len(rec) == 1
    row = rec.iloc[0]
    assert row["first_ack_s"] == pytest.approx(2.5)
    assert row["outage_s"] == pytest.approx(2.5)
    assert row["t_s"] == 10.0 and row["action"] == "kill" and row["node"] == 1


def test_outage_between_acks_after_the_first_one():
    # Acks resume 0.3 s after the fault, then stop for 4 s: the outage is the longer gap.
    rec = figures(fault_rows((0, "pause", "schedule", 2, 10.0)),
                  steady_acks(silent={2: [(10.0, 10.3), (11.0, 15.0)]}))
    assert rec.iloc[0]["first_ack_s"] == pytest.approx(0.3)
    assert rec.iloc[0]["outage_s"] == pytest.approx(4.0)


def test_partitions_idle_before_the_fault_do_not_count():
    acks = steady_acks()
    acks.update(("idle", 0, T0_CS + k) for k in range(300))  # acked in [0, 3) s only
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)), acks)
    assert rec.iloc[0]["first_ack_s"] == pytest.approx(0.0)
    assert rec.iloc[0]["outage_s"] == pytest.approx(0.0)


def test_nothing_acknowledged_before_the_fault_gives_nan():
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)), steady_acks(silent={
        p: [(0, 10.0)] for p in range(3)}))
    assert math.isnan(rec.iloc[0]["first_ack_s"]) and math.isnan(rec.iloc[0]["outage_s"])


def test_recovery_at_the_first_second_back_to_90_percent():
    # Seconds 0-4 (1000/s) are more than 5 s before the fault: not part of the pre-fault rate.
    delivered = {**{s: 1000 for s in range(5)}, 5: 90, 6: 110, 10: 0, 11: 50, 12: 89, 13: 95}
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)), ts=timeseries(delivered))
    assert rec.iloc[0]["pre_rate"] == pytest.approx(100.0)
    assert rec.iloc[0]["recovery_s"] == pytest.approx(3.0)


def test_recovery_of_a_fault_within_a_second_starts_at_the_next_whole_second():
    # Second 10 holds acks from before the fault at 10.5: it cannot show a recovery.
    delivered = {10: 100, 11: 10, 12: 100}
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.5)), ts=timeseries(delivered))
    assert rec.iloc[0]["recovery_s"] == pytest.approx(1.5)


def test_latency_from_the_seconds_of_the_window_only():
    intervals = {(t, "publish_latency_us"): recorder(5_000) for t in range(END_S)}
    intervals[(9, "publish_latency_us")] = recorder(500_000)  # before the fault
    intervals[(15, "publish_latency_us")] = recorder(600_000)  # after the 5 s window
    intervals[(12, "publish_latency_us")] = recorder(40_000)
    intervals[(11, "e2e_latency_us")] = recorder(20_000, 1000)
    intervals[(16, "e2e_latency_us")] = recorder(800_000, 1000)
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)), intervals=intervals, window_s=5.0)
    assert rec.iloc[0]["publish_latency_ms_max"] == pytest.approx(40.0, rel=1e-3)
    assert rec.iloc[0]["e2e_latency_ms_p99"] == pytest.approx(20.0, rel=1e-3)
    assert intervals[(12, "publish_latency_us")].count == 1  # inputs are not merged into


def test_no_latency_recorded_gives_nan():
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0)))
    assert math.isnan(rec.iloc[0]["publish_latency_ms_max"])
    assert math.isnan(rec.iloc[0]["e2e_latency_ms_p99"])


def test_windows_are_cut_by_the_next_disruptive_fault():
    faults = fault_rows(
        (0, "kill", "schedule", 1, 10.0),
        (0, "start", "duration", 1, 12.0),  # the undo: part of the recovery, cuts nothing
        (1, "resume", "schedule", 2, 13.0),  # not disruptive: no row, cuts nothing
        (2, "pause", "schedule", 2, 14.0),
    )
    acks = steady_acks(silent={0: [(10.0, 11.0), (14.0, 17.0)]})
    intervals = {(t, "publish_latency_us"): recorder(2_000) for t in range(END_S)}
    intervals[(15, "publish_latency_us")] = recorder(300_000)
    errors = {(int(T0) + 11, "NOT_ENOUGH_REPLICAS"): 3, (int(T0) + 12, "REQUEST_TIMED_OUT"): 5,
              (int(T0) + 16, "MSG_TIMED_OUT"): 2}
    ts = timeseries({10: 0, 11: 100, 14: 0, 15: 0, 16: 0, 17: 100})
    rec = figures(faults, acks, ts, intervals, errors)
    assert list(rec["fault"]) == [0, 2] and list(rec["action"]) == ["kill", "pause"]
    first, second = rec.iloc[0], rec.iloc[1]
    assert first["outage_s"] == pytest.approx(1.0) and second["outage_s"] == pytest.approx(3.0)
    assert first["recovery_s"] == pytest.approx(1.0) and second["recovery_s"] == pytest.approx(3.0)
    assert first["publish_latency_ms_max"] == pytest.approx(2.0, rel=1e-3)
    assert second["publish_latency_ms_max"] == pytest.approx(300.0, rel=1e-3)
    # Error seconds are Unix seconds: run second 11 is [10.75, 11.75), in the first window.
    assert first["failed"] == 8 and first["errors"] == "REQUEST_TIMED_OUT:5, NOT_ENOUGH_REPLICAS:3"
    assert second["failed"] == 2 and second["errors"] == "MSG_TIMED_OUT:2"


def test_no_acks_after_the_fault_is_inf():
    acks = steady_acks(silent={1: [(10.0, END_S)]})
    ts = timeseries({s: 0 for s in range(10, END_S)})
    rec = figures(fault_rows((0, "stop", "schedule", 1, 10.0)), acks, ts)
    row = rec.iloc[0]
    assert row["first_ack_s"] == math.inf and row["outage_s"] == math.inf
    assert row["recovery_s"] == math.inf
    assert recovery_summary(rec) == {"outage_s": math.inf, "recovery_s": math.inf,
                                     "first_ack_s": math.inf}


def test_summary_is_the_worst_fault():
    faults = fault_rows((0, "kill", "schedule", 1, 10.0), (1, "kill", "schedule", 2, 20.0))
    acks = steady_acks(silent={0: [(10.0, 11.0)], 2: [(20.0, 22.0)]})
    ts = timeseries({10: 0, 20: 0, 21: 0, 22: 0})
    summary = recovery_summary(figures(faults, acks, ts))
    assert summary == pytest.approx({"outage_s": 2.0, "recovery_s": 3.0, "first_ack_s": 2.0})


def test_skipped_fault_has_a_row_without_figures():
    rec = figures(fault_rows((0, "kill", "schedule", 9, math.nan)))
    row = rec.iloc[0]
    assert math.isnan(row["t_s"]) and math.isnan(row["outage_s"]) and math.isnan(row["recovery_s"])
    assert row["failed"] == 0 and row["errors"] == ""


@pytest.mark.parametrize("faults", [
    fault_rows(),
    fault_rows((0, "start", "schedule", 1, 5.0), (1, "kill", "rolling_restart", 1, 6.0)),
])
def test_no_disruptive_fault_gives_an_empty_frame(faults):
    rec = figures(faults)
    assert rec.empty
    assert {c: str(t) for c, t in rec.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in COLUMNS.items()}
    assert all(math.isnan(v) for v in recovery_summary(rec).values())


def test_frame_has_the_contract_columns_and_dtypes():
    rec = figures(fault_rows((0, "kill", "schedule", 1, 10.0), (1, "rolling_restart", "schedule",
                                                                 None, 20.0)))
    assert list(rec.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in rec.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in COLUMNS.items()}
    assert rec["node"].isna().tolist() == [False, True]


@pytest.mark.skipif("recovery" not in contract.FRAMES, reason="contract has no recovery frame yet")
def test_columns_are_the_contract():
    assert COLUMNS == contract.dtypes("recovery")


@pytest.mark.parametrize("window_s", [0, -1.0, math.nan])
def test_bad_window_is_a_config_error(window_s):
    with pytest.raises(ConfigError, match="window_s"):
        figures(fault_rows((0, "kill", "schedule", 1, 10.0)), window_s=window_s)


def test_faults_scheduled_together_are_one_disruption_and_do_not_cut_each_others_windows():
    # isr-below-min kills two nodes at the same at_s: they start 0.15 s apart. The first
    # one's window was cut to those 0.15 s, and its figures came out inf.
    faults = fault_rows((0, "kill", "schedule", 1, 10.0), (1, "kill", "schedule", 3, 10.15))
    faults["scheduled_s"] = 10.0
    acks = steady_acks(silent={0: [(10.0, 14.0)], 1: [(10.0, 14.0)]})
    rec = figures(faults, acks, timeseries({10: 0, 11: 0, 12: 0, 13: 0}))
    assert list(rec["first_ack_s"]) == pytest.approx([4.0, 3.85])
    assert list(rec["outage_s"]) == pytest.approx([4.0, 3.85])
    assert list(rec["recovery_s"]) == pytest.approx([4.0, 3.85])


def test_time_to_recover_is_not_capped_by_the_latency_window():
    # isr-below-min: two brokers down for 30 s came back after more than the 60 s window,
    # and first_ack_s / outage_s / recovery_s said inf although production resumed.
    faults = fault_rows((0, "kill", "schedule", 1, 10.0))
    acks = steady_acks(silent={0: [(10.0, 18.0)]})
    rec = figures(faults, acks, timeseries({s: 0 for s in range(10, 18)}), window_s=5.0).iloc[0]
    assert rec["first_ack_s"] == pytest.approx(8.0)
    assert rec["outage_s"] == pytest.approx(8.0)
    assert rec["recovery_s"] == pytest.approx(8.0)
