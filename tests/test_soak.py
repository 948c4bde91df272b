"""benchmarks/soak.py's pure parts: the restart schedule, the slope, the process sampler.

The soak itself runs for minutes against a 3-broker cluster and is not run here.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from kafkabench.spec.faults import parse_faults
from kafkabench.spec.workload import Workload

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
_spec = importlib.util.spec_from_file_location("soak", SOAK)
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)


def test_slope_is_per_ten_minutes():
    t = [0, 60, 120, 180, 240]
    assert soak.slope_per_10min(t, [100 + 0.01 * x for x in t]) == pytest.approx(6.0)
    assert soak.slope_per_10min(t, [50.0] * 5) == pytest.approx(0.0)


def test_slope_is_least_squares_over_noise():
    t = [0, 10, 20, 30]
    # Exact least squares of (0, 1), (10, 3), (20, 2), (30, 4): slope 0.08 per s.
    assert soak.slope_per_10min(t, [1, 3, 2, 4]) == pytest.approx(0.08 * 600)


def test_slope_needs_two_distinct_times():
    assert math.isnan(soak.slope_per_10min([], []))
    assert math.isnan(soak.slope_per_10min([5], [1]))
    assert math.isnan(soak.slope_per_10min([5, 5], [1, 2]))
    assert soak.slope_per_10min([0, float("nan"), 600], [1, 7, 2]) == pytest.approx(1.0)


def test_slopes_leave_out_the_warm_up_and_the_end():
    # Workers start by t=10 and are gone at t=50 (the verifier reads on alone).
    samples = pd.DataFrame({"t_s": [0, 10, 20, 30, 40, 50], "processes": [1, 3, 3, 3, 3, 1],
                            "rss_mb": [10, 80, 100, 100, 100, 20], "parent_rss_mb": [5, 6, 7, 8, 9, 10],
                            "fds": [10, 20, 30, 30, 30, 10], "threads": [1, 9, 9, 9, 9, 1]})
    growth = soak.slopes(samples, 20, 40)
    assert growth["rss_mb"] == pytest.approx(0.0)
    assert growth["fds"] == pytest.approx(0.0)
    assert growth["threads"] == pytest.approx(0.0)
    assert growth["parent_rss_mb"] == pytest.approx(0.1 * 600)
    assert soak.slopes(samples, 20)["rss_mb"] < 0


def test_restarts_every_five_minutes_on_a_long_run():
    assert soak.restart_times(30 * 60) == [300, 600, 900, 1200, 1500]
    assert soak.restart_times(15 * 60) == [300, 600]


def test_a_short_run_still_restarts_twice():
    assert soak.restart_times(180) == [60, 120]
    assert soak.restart_times(120) == [40, 80]
    assert soak.restart_times(100, every_s=30) == [30, 60, 90]
    with pytest.raises(ValueError):
        soak.restart_times(100, every_s=0)


def test_schedule_rotates_nodes_and_is_a_valid_workload():
    faults = soak.restart_schedule([60, 120, 180, 240], [1, 2, 3])
    assert [f["target"] for f in faults] == [1, 2, 3, 1]
    assert {f["action"] for f in faults} == {"restart"}
    parsed = parse_faults(faults, run_s=300, node_ids=[1, 2, 3])
    assert [f.at_s for f in parsed] == [60, 120, 180, 240]
    Workload(name="soak", duration_s=300, warmup_s=0, verify=True, faults=faults)


def test_sampler_counts_children_but_not_java():
    # A python child is a kafkabench process; a process named java (a broker) is not.
    me = psutil.Process(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = {p.pid for p in soak.kafkabench_processes(me)}
        assert {os.getpid(), child.pid} <= pids
        row = soak.sample(me, t0=0.0)
        assert row["processes"] >= 2
        assert row["rss_mb"] > row["parent_rss_mb"] > 0
        assert row["fds"] > 0 and row["threads"] >= 1
    finally:
        child.kill()
        child.wait(timeout=10)


def test_sampler_thread_stops_with_a_frame():
    sampler = soak.Sampler(every_s=0.05, echo=False)
    sampler.start()
    frame = sampler.stop()
    assert list(frame.columns) == soak.SAMPLE_COLUMNS
    assert len(frame) >= 2 and not sampler.is_alive()
