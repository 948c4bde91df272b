"""The CLI against a real broker: perf-tool style produce/consume, lag, run, results."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _cli(*args: str, timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kafkabench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


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


def _saved_runs(out: Path) -> list[str]:
    """Two good runs, then one damaged run folder of each kind; returns the good run ids."""
    from kafkabench.results import RunResult, save

    good = ["20260101-000001-good-a000", "20260101-000002-good-b000"]
    for rate, rid in zip((1000.0, 1500.0), good):
        save(RunResult(summary={"run_id": rid, "name": "good", "duration_s": 2.0, "produced": 10,
                                "delivered": 10, "failed": 0, "consumed": 0, "publish_rate": rate}),
             out)
    for rid, text in (("20260101-000003-bad-json", "{"), ("20260101-000004-bad-empty", "{}")):
        (out / rid).mkdir()
        (out / rid / "result.json").write_text(text)
    return good


def test_a_damaged_run_does_not_hide_the_good_ones(tmp_path):
    out = tmp_path / "results"
    good = _saved_runs(out)
    listed = _cli("results", "list", str(out))
    assert listed.returncode == 0, listed.stderr
    assert all(rid in listed.stdout for rid in good) and "bad" not in listed.stdout
    for rid in ("20260101-000003-bad-json", "20260101-000004-bad-empty"):
        assert f"skipped run folder {out / rid}" in listed.stderr
    # Readable: headline figures only, one short line per run.
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["run_id", "name"] and "msg/s" in lines[0]
    assert max(len(line) for line in lines[:3]) < 120
    assert re.search(r"good-a000 +good +2\.0 +1,000 ", listed.stdout)

    compared = _cli("results", "compare", good[0], "20260101-000003-bad-json", good[1],
                    "--dir", str(out))
    assert compared.returncode == 0, compared.stderr
    assert f"{good[1]} / {good[0]}" in compared.stdout and "bad-json" in compared.stderr

    (out / good[1] / "timeseries.parquet").write_bytes(b"not parquet")
    report = tmp_path / "r.html"
    reported = _cli("report", str(out), "-o", str(report))
    assert reported.returncode == 0, reported.stderr
    assert report.is_file() and good[0] in report.read_text()
    assert f"skipped run folder {out / good[1]}" in reported.stderr
    assert "timeseries.parquet" in reported.stderr and "bad-empty" in reported.stderr
    nothing = _cli("report", str(out / "20260101-000004-bad-empty"), "-o", str(report))
    assert nothing.returncode == 2 and "nothing to report" in nothing.stderr


def test_results_show_takes_a_run_id_and_says_what_is_wrong(tmp_path):
    good = _saved_runs(tmp_path / "results")
    # The README's `results show RUN`: a run id from `results list`, looked up in ./results.
    shown = _cli("results", "show", good[0], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"run {good[0]} (2.0 s)" in shown.stdout
    shown = _cli("results", "show", "20260101-000002", "--dir", str(tmp_path / "results"))
    assert shown.returncode == 0 and good[1] in shown.stdout
    by_path = _cli("results", "show", str(tmp_path / "results" / good[1]))
    assert by_path.returncode == 0 and good[1] in by_path.stdout
    for run, message in (("20260101-000003-bad-json", "is damaged: not valid JSON"),
                         ("20260101-000004-bad-empty", "is not a kafkabench result"),
                         ("no-such-run", "no run 'no-such-run'")):
        bad = _cli("results", "show", run, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_a_folder_given_as_workload_or_profile_is_one_clear_line(tmp_path):
    workload = tmp_path / "w.yaml"
    workload.write_text("name: w\nduration_s: 1\n")
    for args, message in (((str(tmp_path),), f"workload {str(tmp_path)!r} is a folder"),
                          ((str(workload), "--profile", str(tmp_path)),
                           f"client profile {str(tmp_path)!r} is a folder"),
                          ((str(workload), "--set", "name=["), "name='[': the value is not valid YAML")):
        result = _cli("run", *args, "--bootstrap", "127.0.0.1:1")
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_consume_short_of_messages_warns_and_exits_1(bootstrap):
    from confluent_kafka import Producer

    from kafkabench.admin import create_topic, delete_topics

    topic = f"cli-short-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1, 1)
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(50):
            producer.produce(topic, f"m{i}".encode())
        assert producer.flush(30) == 0
        consumed = _cli("consume", "--bootstrap", bootstrap, "--topic", topic, "--messages", "80",
                        "--timeout", "1500", "--no-progress", "--no-latency")
    finally:
        delete_topics(bootstrap, [topic])
    assert consumed.returncode == 1, consumed.stdout + consumed.stderr
    assert "consumed 50 of --messages 80 (30 short)" in consumed.stderr
    assert int(consumed.stdout.strip().splitlines()[-1].split(", ")[4]) == 50


def test_set_replication_factor_wins_over_the_profile(bootstrap, tmp_path):
    # An OMB driver file says replicationFactor: 3; the shared test broker is alone.
    profile = tmp_path / "rf3.yaml"
    profile.write_text("name: rf3\nreplication_factor: 3\n")
    workload = tmp_path / "w.yaml"
    workload.write_text("name: rf\nmessage_size: 100\nmessage_count: 100\nduration_s: 0\n"
                        "consumer_groups: 0\n")
    ran = _cli("run", str(workload), "--profile", str(profile), "--set", "replication_factor=1",
               "--bootstrap", bootstrap, "--out", str(tmp_path / "res"), "--no-progress")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "delivered 100" in ran.stdout
    assert "replication_factor=1 as set explicitly, not the 3 of client profile 'rf3'" in ran.stderr
    # Set in both files, differently, without --set: refused before anything runs.
    workload.write_text(workload.read_text() + "replication_factor: 1\n")
    refused = _cli("run", str(workload), "--profile", str(profile), "--bootstrap", bootstrap,
                   "--out", str(tmp_path / "res"), "--no-progress")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "sets replication_factor=1 but client profile 'rf3' sets 3" in refused.stderr
    assert "--set replication_factor=N" in refused.stderr


def test_interrupted_sweep_exits_130_and_says_what_is_saved(bootstrap, tmp_path):
    (tmp_path / "w.yaml").write_text("name: w\nmessage_size: 100\nproducer_rate: 200\n"
                                     "duration_s: 3\nconsumer_groups: 0\n")
    (tmp_path / "s.yaml").write_text("name: ctrlc\nworkload: w.yaml\n"
                                     "grid: {linger.ms: [0, 5, 10]}\n")
    out = tmp_path / "res"
    saved = out / "sweeps" / "ctrlc"
    proc = subprocess.Popen([sys.executable, "-m", "kafkabench.cli", "sweep", str(tmp_path / "s.yaml"),
                             "--bootstrap", bootstrap, "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not (saved.is_dir() and any(not d.name.startswith(".") for d in saved.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "no run was saved"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, during the second run
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    runs = [d for d in saved.iterdir() if not d.name.startswith(".")]
    assert 1 <= len(runs) < 3
    assert (f"{len(runs)} of 3 points complete, {len(runs)} of 3 runs saved in {saved}"
            in stderr), stderr
    assert all(json.loads((d / "result.json").read_text())["summary"]["sweep"] == "ctrlc"
               for d in runs)


def test_oversized_records_exit_non_zero_with_the_limits(bootstrap):
    # It used to exit 0 printing "0 records sent ... nan ms".
    topic = f"big-{uuid.uuid4().hex[:8]}"
    out = _cli("produce", "--bootstrap", bootstrap, "--topic", topic, "--num-records", "5",
               "--record-size", "2000000", "--no-progress")
    assert out.returncode == 2, out.stdout
    assert "message.max.bytes (1,000,000 B)" in out.stderr and "MSG_SIZE_TOO_LARGE" in out.stderr
    assert "records sent" not in out.stdout
    out = _cli("run", str(_write_workload(topic)), "--bootstrap", bootstrap, "--no-progress",
               "--out", "", "--set", "message_size=2000000")
    assert out.returncode == 2 and "message.max.bytes" in out.stderr, out.stderr


def _write_workload(name: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / f"{name}.yaml"
    path.write_text("name: big\npartitions: 1\nmessage_count: 5\nduration_s: 0\n")
    return path
