"""loadshapes: users over time of each shape, from arguments and from Locust's options."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from kafkabench.loadtest.shapes import options_tick, planned_users, shape_tick


def test_shapes():
    assert shape_tick("constant", 5, users=8, spawn_rate=2, run_time_s=60) == (8, 2)
    steps = [shape_tick("step", t, users=8, spawn_rate=2, run_time_s=60)[0] for t in (0, 15, 30, 59)]
    assert steps == [2, 4, 6, 8]
    spike = [shape_tick("spike", t, users=8, spawn_rate=2, run_time_s=60) for t in (0, 30, 40)]
    assert spike == [(2, 8.0), (8, 8.0), (2, 8.0)]
    assert shape_tick("step", 60, users=8, spawn_rate=2, run_time_s=60) is None
    with pytest.raises(ValueError, match="unknown shape 'ramp'; expected one of constant, step"):
        shape_tick("ramp", 0, users=1, spawn_rate=1, run_time_s=1)


def test_more_steps_than_users_step_one_user_at_a_time():
    counts = [shape_tick("step", t, users=2, spawn_rate=1, run_time_s=10, steps=4)[0]
              for t in range(10)]
    assert counts == [1] * 5 + [2] * 5


def test_planned_users():
    planned = planned_users("step", users=4, spawn_rate=4, run_time_s=10, steps=2)
    assert planned["users"].tolist() == [2] * 5 + [4] * 5
    assert planned.index.name == "t" and planned.index.dtype == "int64"
    assert set(planned_users("spike", users=8, spawn_rate=1, run_time_s=20)["users"]) == {2, 8}


def test_options_tick_reads_locusts_options():
    options = argparse.Namespace(kafka_shape="spike", num_users=8, spawn_rate=2.0, run_time=20,
                                 kafka_steps=4)
    assert options_tick(options, 9) == (8, 8.0)
    assert options_tick(options, 20) is None
    # Options Locust leaves at None (no -u, -r, -t): 1 user, 1/s, 60 s, the step shape.
    bare = argparse.Namespace(num_users=None, spawn_rate=None, run_time=None)
    assert options_tick(bare, 0) == (1, 1.0)
    assert options_tick(bare, 59.9) == (1, 1.0)
    assert options_tick(bare, 60) is None


def test_import_leaves_locust_out():
    # Importing locust monkey-patches the process with gevent: loadshapes must not pull it in.
    code = ("import sys, kafkabench.loadshapes; "
            "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
