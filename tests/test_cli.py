"""The CLI against a real broker: perf-tool style produce/consume, lag, run, results."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kafkabench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ)


def test_produce_consume_lag_like_the_perf_tools(bootstrap):
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    produced = _cli("produce", "--bootstrap", bootstrap, "--topic", topic, "--num-records", "20000",
                    "--record-size", "100", "--partitions", "2", "--producer-props", "acks=all",
                    "--no-progress")
    assert produced.returncode == 0, produced.stderr
    assert "20000 records sent" in produced.stdout and "records/sec" in produced.stdout
    group = f"cli-g-{uuid.uuid4().hex[:6]}"
    consumed = _cli("consume", "--bootstrap", bootstrap, "--topic", topic, "--messages", "20000",
                    "--group", group, "--no-progress")
    assert consumed.returncode == 0, consumed.stderr
    row = consumed.stdout.strip().splitlines()[-1].split(", ")
    assert int(row[4]) >= 20000 and float(row[5]) > 0
    lag = _cli("lag", "--bootstrap", bootstrap, "--group", group, "--once")
    assert lag.returncode == 0, lag.stderr
    assert topic in lag.stdout and "group status" in lag.stdout


def test_run_and_results_commands(bootstrap, tmp_path):
    workload = tmp_path / "w.yaml"
    workload.write_text("name: clirun\npartitions: 2\nmessage_size: 100\nproducer_rate: 500\n"
                        "duration_s: 2\n")
    out = tmp_path / "res"
    run = _cli("run", str(workload), "--bootstrap", bootstrap, "--out", str(out), "--no-progress",
               "--set", "producer_rate=800")
    assert run.returncode == 0, run.stderr
    assert "target 800 msg/s, held: True" in run.stdout
    listed = _cli("results", "list", str(out))
    assert listed.returncode == 0 and "clirun" in listed.stdout
    run_dir = next(out.iterdir())
    shown = _cli("results", "show", str(run_dir))
    assert shown.returncode == 0 and run_dir.name in shown.stdout


def test_bad_input_is_one_clear_line(bootstrap, tmp_path):
    workload = tmp_path / "bad.yaml"
    workload.write_text("name: bad\npartitions: 0\n")
    result = _cli("run", str(workload), "--bootstrap", bootstrap)
    assert result.returncode == 2
    assert "partitions=0" in result.stderr and "Traceback" not in result.stderr
    result = _cli("produce", "--bootstrap", bootstrap, "--topic", "x", "--num-records", "10",
                  "--producer-props", "linger.ms=abc")
    assert result.returncode == 2
    assert "linger.ms" in result.stderr and "'abc'" in result.stderr
    result = _cli("run", str(tmp_path / "missing.yaml"), "--bootstrap", bootstrap)
    assert result.returncode == 2 and "missing.yaml" in result.stderr


def test_locust_command_saves_a_result_like_any_run(bootstrap, tmp_path):
    out = tmp_path / "results"
    ran = _cli("locust", "producer_load", "--bootstrap", bootstrap, "-u", "2", "-r", "2", "-t", "6",
               "--rate", "200", "--out", str(out), timeout=240)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "saved to" in ran.stdout and "Locust CSV files" in ran.stdout
    runs = [d for d in out.iterdir() if d.is_dir() and d.name != "locust"]
    assert len(runs) == 1
    from kafkabench.results import load

    summary = load(runs[0]).summary
    # Two users at 200 msgs/s each for about 6 s: every one delivered, none failed.
    assert summary["failed"] == 0 and 1000 < summary["delivered"] < 3500
    listed = _cli("results", "list", str(out))
    assert listed.returncode == 0 and runs[0].name in listed.stdout
    bad = _cli("locust", "producer_load", "--bootstrap", bootstrap, "-u", "0", "--out", "")
    assert bad.returncode == 2 and "users=0" in bad.stderr
