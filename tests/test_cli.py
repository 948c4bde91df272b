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

import pytest

from conftest import ctrl_c_works

ROOT = Path(__file__).parent.parent


def _cli(*args: str, timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m kafkabench ARGS` (the package's __main__) in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kafkabench", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def _says(result: subprocess.CompletedProcess) -> str:
    """What a child printed, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout:\n{result.stdout[-3000:]}\n--- stderr:\n{result.stderr[-3000:]}"


def test_produce_consume_lag_like_the_perf_tools(bootstrap, tmp_path):
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "client.properties"
    config.write_text("# as kafka-producer-perf-test reads it\n! also a comment\n\nlinger.ms=5\n")
    produced = _cli("produce", "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", "20000",
                    "--record-size", "100", "--partitions", "2", "--command-config", str(config),
                    "--command-property", "acks=all", "--no-progress")
    assert produced.returncode == 0, _says(produced)
    assert re.fullmatch(PRODUCER_PERFORMANCE_LINE, produced.stdout.strip().splitlines()[-1]), _says(produced)
    assert produced.stdout.startswith("20000 records sent, "), _says(produced)
    group = f"cli-g-{uuid.uuid4().hex[:6]}"
    consumed = _cli("consume", "--bootstrap", bootstrap, "--topic", topic, "--num-records", "20000",
                    "--group", group, "--timeout", "20s", "--no-progress")
    assert consumed.returncode == 0, _says(consumed)
    header, line = consumed.stdout.strip().splitlines()[-2:]
    assert header == CONSUMER_PERFORMANCE_HEADER, _says(consumed)
    row = line.split(", ")
    assert re.fullmatch(CONSUMER_PERFORMANCE_ROW, line), _says(consumed)
    assert int(row[4]) == 20000 and float(row[5]) > 0, _says(consumed)
    assert float(row[2]) == pytest.approx(20000 * 100 / 2**20, abs=1e-4), _says(consumed)  # MB = 2**20 B
    assert "end-to-end latency ms" in consumed.stderr, _says(consumed)
    lag = _cli("lag", "--bootstrap", bootstrap, "--group", group, "--once")
    assert lag.returncode == 0, _says(lag)
    assert topic in lag.stdout and "group status" in lag.stdout, _says(lag)
    lag = _cli("lag", "--bootstrap-server", bootstrap, "--all-groups", "--once", "--format", "json")
    assert lag.returncode == 0, _says(lag)
    sample = json.loads(lag.stdout.strip().splitlines()[-1])
    assert sample["group_status"][group] == "OK", _says(lag)
    mine = [r for r in sample["partitions"] if r["group"] == group]
    assert sorted(r["partition"] for r in mine) == [0, 1], _says(lag)
    # Null keys go to a sticky partition that changes every few ms, so one partition may get all
    # 20000 records; a partition the group never read has no committed offset ("-" in Kafka's tool).
    assert sum(r["log_end"] for r in mine) == 20000, _says(lag)
    assert all(r["committed"] == r["log_end"] if r["log_end"] else r["committed"] in (None, 0)
               for r in mine), _says(lag)
    lag = _cli("lag", "--bootstrap-server", bootstrap, "--group", group, "--samples", "2",
               "--interval", "0.2s", "--format", "csv")
    assert lag.returncode == 0, _says(lag)
    lines = lag.stdout.strip().splitlines()
    assert lines[0].startswith("t,group,topic,partition,committed,log_end,lag_msgs"), _says(lag)
    assert len(lines) == 1 + 2 * 2 and all(f",{group},{topic}," in x for x in lines[1:]), _says(lag)


#: The final line of Kafka 4.4's ProducerPerformance, and ConsumerPerformance's output, as the
#: Java tools print them (checked against kafka-tools-4.4.0.jar: test_output_matches_the_java_tools).
PRODUCER_PERFORMANCE_LINE = (r"\d+ records sent, \d+\.\d{6} records/sec \(\d+\.\d{2} MB/sec\), "
                             r"\d+\.\d{2} ms avg latency, \d+\.\d{2} ms max latency, \d+ ms 50th, "
                             r"\d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.")
CONSUMER_PERFORMANCE_HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                               "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"
CONSUMER_PERFORMANCE_ROW = (rf"{_TIME}, {_TIME}, \d+\.\d{{4}}, \d+\.\d{{4}}, \d+, \d+\.\d{{4}}, \d+, \d+, "
                            r"\d+\.\d{4}, \d+\.\d{4}")


def test_perf_tool_lines_count_mb_as_mebibytes():
    from kafkabench.cli import consumer_performance_lines, producer_performance_line

    summary = {"delivered": 1000, "delivery_rate": 2**20 / 100 * 3, "publish_latency_ms_avg": 1.234,
               "publish_latency_ms_max": 9.0, "publish_latency_ms_p50": 1.9, "publish_latency_ms_p95": 4.2,
               "publish_latency_ms_p99": 7.99, "publish_latency_ms_p99_9": float("nan")}
    # Latency percentiles are whole milliseconds (the Java tool's are ints): 1.9 ms prints 1.
    assert producer_performance_line(summary, 100) == (
        "1000 records sent, 31457.280000 records/sec (3.00 MB/sec), 1.23 ms avg latency, "
        "9.00 ms max latency, 1 ms 50th, 4 ms 95th, 7 ms 99th, 0 ms 99.9th.")
    header, row = consumer_performance_lines({
        "started_at": "2026-01-02T03:04:05.678000+00:00", "duration_s": 2.0, "consumed": 30000,
        "consumed_bytes": 3 * 2**20, "rebalance_time_ms": 500.4})
    assert header == CONSUMER_PERFORMANCE_HEADER
    fields = row.split(", ")
    assert re.fullmatch(CONSUMER_PERFORMANCE_ROW, row) and fields[0].endswith(":678")
    # 3 MB in 2 s, 500 ms of them joining the group: fetch time 1500 ms.
    assert fields[2:] == ["3.0000", "1.5000", "30000", "15000.0000", "500", "1500", "2.0000", "20000.0000"]


def _java_tool(tool: str, *args: str) -> subprocess.CompletedProcess:
    """One of Kafka's own tools (`org.apache.kafka.tools.<tool>`), from the installed jars."""
    from kafkabench.cluster.install import install_kafka

    libs = install_kafka(quiet=True).libs
    return subprocess.run(["java", "-Xmx256m", "-cp", f"{libs}/*", f"org.apache.kafka.tools.{tool}", *args],
                          capture_output=True, text=True, timeout=120)


def _java_consumer_row(bootstrap: str, topic: str, records: int) -> str:
    """kafka-consumer-perf-test's row for the first `records` records of `topic`."""
    consumed = _java_tool("ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
                          "--num-records", str(records), "--timeout", "30000")
    assert consumed.returncode == 0, _says(consumed)
    lines = consumed.stdout.splitlines()
    return lines[lines.index(CONSUMER_PERFORMANCE_HEADER) + 1]


def test_output_matches_the_java_tools(bootstrap):
    """kafka-producer-perf-test's last line and kafka-consumer-perf-test's output, from the
    Java tools themselves, have kafkabench's format."""
    topic = f"cli-java-{uuid.uuid4().hex[:8]}"
    produced = _java_tool("ProducerPerformance", "--topic", topic, "--num-records", "2000",
                          "--record-size", "100", "--throughput", "-1", "--command-property",
                          f"bootstrap.servers={bootstrap}")
    assert produced.returncode == 0, _says(produced)
    last = [x for x in produced.stdout.splitlines() if "records sent" in x][-1]
    assert re.fullmatch(PRODUCER_PERFORMANCE_LINE, last), _says(produced)
    assert re.fullmatch(CONSUMER_PERFORMANCE_ROW, _java_consumer_row(bootstrap, topic, 2000))


def test_consume_counts_bytes_as_the_java_tool_does(bootstrap):
    """data.consumed.in.MB of keyed records: ConsumerPerformance counts key + value bytes."""
    topic = f"cli-keyed-{uuid.uuid4().hex[:8]}"
    produced = _cli("produce", "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", "3000",
                    "--record-size", "100", "--keys", "1000", "--no-progress")
    assert produced.returncode == 0, _says(produced)
    consumed = _cli("consume", "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", "3000",
                    "--timeout", "30s", "--no-progress", "--no-latency")
    assert consumed.returncode == 0, _says(consumed)
    ours = consumed.stdout.strip().splitlines()[-1].split(", ")
    java = _java_consumer_row(bootstrap, topic, 3000).split(", ")
    assert ours[4] == java[4] == "3000", (ours, java)
    # keys key-0 .. key-999: 3 x (10 x 5 + 90 x 6 + 900 x 7) B on top of 3000 x 100 B of values.
    assert java[2] == f"{(3000 * 100 + 3 * (50 + 540 + 6300)) / 2**20:.4f}", java
    assert ours[2] == java[2], (ours, java)


def test_run_and_results_commands(bootstrap, tmp_path):
    workload = tmp_path / "w.yaml"
    workload.write_text("name: clirun\npartitions: 2\nmessage_size: 100\nproducer_rate: 500\n"
                        "duration_s: 2\n")
    out = tmp_path / "res"
    run = _cli("run", str(workload), "--bootstrap", bootstrap, "--out", str(out), "--no-progress",
               "--set", "producer_rate=800", "--set", "duration_s=2s")
    assert run.returncode == 0, _says(run)
    assert "target 800 msg/s, held: True" in run.stdout, _says(run)
    listed = _cli("results", "list", str(out))
    assert listed.returncode == 0 and "clirun" in listed.stdout, _says(listed)
    run_dir = next(out.iterdir())
    shown = _cli("results", "show", str(run_dir))
    assert shown.returncode == 0 and run_dir.name in shown.stdout, _says(shown)
    assert "(2.0 s)" in shown.stdout or "(2.1 s)" in shown.stdout, _says(shown)  # duration_s=2s


def _shipped(name: str) -> str:
    """The path of a workload or driver file that ships with kafkabench."""
    return str(next(p for p in (ROOT / "kafkabench" / "workloads" / name, ROOT / "workloads" / name)
                    if p.exists()))


def test_run_json_is_the_last_line_and_verbose_shows_omb_notes(bootstrap, tmp_path):
    # The OMB workload and driver file as the README shows them; -v shows the conversion notes
    # (INFO) of kafkabench.config, e.g. which Java-only settings were dropped.
    ran = _cli("-v", "run", _shipped("omb/1-topic-16-partitions-1kb.yaml"), "--profile",
               _shipped("omb/driver-kafka/kafka-throughput.yaml"), "--set", "duration_s=1s",
               "--set", "warmup_s=0", "--set", "producer_rate=100", "--set", "replication_factor=1",
               "--set", "consumer_groups=0", "--bootstrap-server", bootstrap, "--out", "", "--json",
               cwd=tmp_path)
    assert ran.returncode == 0, _says(ran)
    lines = ran.stdout.strip().splitlines()
    assert len(lines) == 1, _says(ran)  # progress and text went to stderr
    summary = json.loads(lines[-1])
    assert summary["delivered"] == summary["produced"] > 0, _says(ran)
    assert summary["e2e_latency_ms_p50"] is None  # NaN (nothing consumed) as null
    assert "INFO kafkabench.spec.profile: OMB driver 'kafka-throughput'" in ran.stderr, _says(ran)
    assert "dropped" in ran.stderr, _says(ran)
    # The file's 1 min warm-up and 15 min test were replaced by --set: no warning about them.
    assert "warms up" not in ran.stderr and "960 s" not in ran.stderr, _says(ran)
    assert list(tmp_path.iterdir()) == [], "--out '' saved the run in the working folder"


def test_verbose_is_what_shows_info_logs(bootstrap):
    profile = _shipped("omb/driver-kafka/kafka-throughput.yaml")
    quiet = _cli("topic", "list", "--profile", profile, "--bootstrap-server", bootstrap)
    assert quiet.returncode == 0, _says(quiet)
    assert "INFO" not in quiet.stderr and "dropped" not in quiet.stderr, _says(quiet)
    for args in (("-v", "topic", "list"), ("topic", "list", "-v")):
        loud = _cli(*args, "--profile", profile, "--bootstrap-server", bootstrap)
        assert loud.returncode == 0, _says(loud)
        assert "INFO kafkabench.spec.profile: OMB driver 'kafka-throughput'" in loud.stderr, _says(loud)


def test_topic_commands_with_profile_and_command_config(bootstrap, tmp_path):
    topic = f"cli-topic-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "admin.properties"
    config.write_text("client.id=kafkabench-cli-test\nsocket.timeout.ms=20000\n")
    common = ("--bootstrap-server", bootstrap, "--profile", "default", "--command-config", str(config))
    created = _cli("topic", "create", topic, "--partitions", "2", "--config", "retention.ms=600000", *common)
    assert created.returncode == 0, _says(created)
    try:
        described = _cli("topic", "describe", topic, *common, "--command-property", "client.id=x")
        assert described.returncode == 0, _says(described)
        assert len(described.stdout.strip().splitlines()) == 3, _says(described)  # header + 2 partitions
        listed = _cli("topic", "list", *common)
        assert topic in listed.stdout.split(), _says(listed)
        bad = _cli("topic", "list", "--bootstrap-server", bootstrap, "--command-property", "linger.ms")
        assert bad.returncode == 2 and "--command-property 'linger.ms': expected key=value" in bad.stderr, \
            _says(bad)
    finally:
        deleted = _cli("topic", "delete", topic, *common)
    assert deleted.returncode == 0, _says(deleted)


def test_bad_input_is_one_clear_line(bootstrap, tmp_path):
    workload = tmp_path / "bad.yaml"
    workload.write_text("name: bad\npartitions: 0\n")
    result = _cli("run", str(workload), "--bootstrap", bootstrap)
    assert result.returncode == 2, _says(result)
    assert "partitions=0" in result.stderr and "Traceback" not in result.stderr, _says(result)
    result = _cli("produce", "--bootstrap", bootstrap, "--topic", "x", "--num-records", "10",
                  "--producer-props", "linger.ms=abc")
    assert result.returncode == 2, _says(result)
    assert "linger.ms" in result.stderr and "'abc'" in result.stderr, _says(result)
    result = _cli("run", str(tmp_path / "missing.yaml"), "--bootstrap", bootstrap)
    assert result.returncode == 2 and "missing.yaml" in result.stderr, _says(result)
    props = tmp_path / "bad.properties"
    props.write_text("acks=all\nlinger.ms\n")
    result = _cli("produce", "--bootstrap", bootstrap, "--topic", "x", "--num-records", "10",
                  "--command-config", str(props))
    assert result.returncode == 2, _says(result)
    assert f"{props}, line 2: 'linger.ms': expected key=value" in result.stderr, _says(result)
    workload.write_text("name: good\n")
    result = _cli("run", str(workload), "--set", "duration_s=5q", "--bootstrap", bootstrap)
    assert result.returncode == 2 and "--set duration_s: duration '5q'" in result.stderr, _says(result)


@pytest.mark.quiet  # counts what two rate-paced Locust users sent in 6 s: runs alone (make test)
def test_locust_command_saves_a_result_like_any_run(bootstrap, tmp_path):
    out = tmp_path / "results"
    ran = _cli("locust", "producer_load", "--bootstrap-server", bootstrap, "-u", "2", "-r", "2", "-t", "6s",
               "--rate", "200", "--out", str(out), timeout=240)
    assert ran.returncode == 0, _says(ran)
    assert "saved to" in ran.stdout and "Locust CSV files" in ran.stdout, _says(ran)
    assert "schedule" not in ran.stdout, _says(ran)  # Locust keeps no schedule to report
    runs = [d for d in out.iterdir() if d.is_dir() and d.name != "locust"]
    assert len(runs) == 1
    from kafkabench.results.store import load

    summary = load(runs[0]).summary
    # Two users at 200 msgs/s each for about 6 s: every one delivered, none failed.
    assert summary["failed"] == 0 and 1000 < summary["delivered"] < 3500
    listed = _cli("results", "list", str(out))
    assert listed.returncode == 0 and runs[0].name in listed.stdout, _says(listed)
    bad = _cli("locust", "producer_load", "--bootstrap", bootstrap, "-u", "0", "--out", "")
    assert bad.returncode == 2 and "users=0" in bad.stderr, _says(bad)


def _saved_runs(out: Path) -> list[str]:
    """Two good runs, then one damaged run folder of each kind; returns the good run ids."""
    from kafkabench.results.store import save
    from kafkabench.run.result import RunResult

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
    assert listed.returncode == 0, _says(listed)
    assert all(rid in listed.stdout for rid in good) and "bad" not in listed.stdout, _says(listed)
    for rid in ("20260101-000003-bad-json", "20260101-000004-bad-empty"):
        assert f"skipped run folder {out / rid}" in listed.stderr, _says(listed)
    # Readable: headline figures only, one short line per run.
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["run_id", "name"] and "msg/s" in lines[0], _says(listed)
    assert max(len(line) for line in lines[:3]) < 120, _says(listed)
    assert re.search(r"good-a000 +good +2\.0 +1,000 ", listed.stdout), _says(listed)

    compared = _cli("results", "compare", good[0], "20260101-000003-bad-json", good[1],
                    "--dir", str(out))
    assert compared.returncode == 0, _says(compared)
    assert f"{good[1]} / {good[0]}" in compared.stdout and "bad-json" in compared.stderr, _says(compared)

    (out / good[1] / "timeseries.parquet").write_bytes(b"not parquet")
    report = tmp_path / "r.html"
    reported = _cli("report", str(out), "-o", str(report))
    assert reported.returncode == 0, _says(reported)
    assert report.is_file() and good[0] in report.read_text()
    assert f"skipped run folder {out / good[1]}" in reported.stderr, _says(reported)
    assert "timeseries.parquet" in reported.stderr and "bad-empty" in reported.stderr, _says(reported)
    nothing = _cli("report", str(out / "20260101-000004-bad-empty"), "-o", str(report))
    assert nothing.returncode == 2 and "nothing to report" in nothing.stderr, _says(nothing)


def test_results_show_takes_a_run_id_and_says_what_is_wrong(tmp_path):
    good = _saved_runs(tmp_path / "results")
    # The README's `results show RUN`: a run id from `results list`, looked up in ./results.
    shown = _cli("results", "show", good[0], cwd=tmp_path)
    assert shown.returncode == 0, _says(shown)
    assert f"run {good[0]} (2.0 s)" in shown.stdout, _says(shown)
    shown = _cli("results", "show", "20260101-000002", "--dir", str(tmp_path / "results"))
    assert shown.returncode == 0 and good[1] in shown.stdout, _says(shown)
    by_path = _cli("results", "show", str(tmp_path / "results" / good[1]))
    assert by_path.returncode == 0 and good[1] in by_path.stdout, _says(by_path)
    for run, message in (("20260101-000003-bad-json", "is damaged: not valid JSON"),
                         ("20260101-000004-bad-empty", "is not a kafkabench result"),
                         ("no-such-run", "no run 'no-such-run'")):
        bad = _cli("results", "show", run, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, _says(bad)


def test_a_folder_given_as_workload_or_profile_is_one_clear_line(tmp_path):
    workload = tmp_path / "w.yaml"
    workload.write_text("name: w\nduration_s: 1\n")
    for args, message in (((str(tmp_path),), f"workload {str(tmp_path)!r} is a folder"),
                          ((str(workload), "--profile", str(tmp_path)),
                           f"client profile {str(tmp_path)!r} is a folder"),
                          ((str(workload), "--set", "name=["), "name='[': the value is not valid YAML")):
        result = _cli("run", *args, "--bootstrap", "127.0.0.1:1")
        assert result.returncode == 2, _says(result)
        assert message in result.stderr and "Traceback" not in result.stderr, _says(result)


def test_consume_short_of_messages_warns_and_exits_1(bootstrap):
    from confluent_kafka import Producer

    from kafkabench.cluster.admin import create_topic, delete_topics

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
    assert consumed.returncode == 1, _says(consumed)
    assert "consumed 50 of --messages 80 (30 short)" in consumed.stderr, _says(consumed)
    assert int(consumed.stdout.strip().splitlines()[-1].split(", ")[4]) == 50, _says(consumed)


def test_set_replication_factor_wins_over_the_profile(bootstrap, tmp_path):
    # An OMB driver file says replicationFactor: 3; the shared test broker is alone.
    profile = tmp_path / "rf3.yaml"
    profile.write_text("name: rf3\nreplication_factor: 3\n")
    workload = tmp_path / "w.yaml"
    workload.write_text("name: rf\nmessage_size: 100\nmessage_count: 100\nduration_s: 0\n"
                        "consumer_groups: 0\n")
    ran = _cli("run", str(workload), "--profile", str(profile), "--set", "replication_factor=1",
               "--bootstrap", bootstrap, "--out", str(tmp_path / "res"), "--no-progress")
    assert ran.returncode == 0, _says(ran)
    assert "delivered 100" in ran.stdout, _says(ran)
    assert "replication_factor=1 as set explicitly, not the 3 of client profile 'rf3'" in ran.stderr, _says(ran)
    # Set in both files, differently, without --set: refused before anything runs.
    workload.write_text(workload.read_text() + "replication_factor: 1\n")
    refused = _cli("run", str(workload), "--profile", str(profile), "--bootstrap", bootstrap,
                   "--out", str(tmp_path / "res"), "--no-progress")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, _says(refused)
    assert "sets replication_factor=1 but client profile 'rf3' sets 3" in refused.stderr, _says(refused)
    assert "--set replication_factor=N" in refused.stderr, _says(refused)


def test_interrupted_sweep_exits_130_and_says_what_is_saved(bootstrap, tmp_path):
    (tmp_path / "w.yaml").write_text("name: w\nmessage_size: 100\nproducer_rate: 200\n"
                                     "duration_s: 3\nconsumer_groups: 0\n")
    (tmp_path / "s.yaml").write_text("name: ctrlc\nworkload: w.yaml\n"
                                     "grid: {linger.ms: [0, 5, 10]}\n")
    out = tmp_path / "res"
    saved = out / "sweeps" / "ctrlc"
    proc = subprocess.Popen([sys.executable, "-m", "kafkabench", "sweep", str(tmp_path / "s.yaml"),
                             "--bootstrap", bootstrap, "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=ctrl_c_works)
    try:
        deadline = time.monotonic() + 120
        while not (saved.is_dir() and any(not d.name.startswith(".") for d in saved.iterdir())):
            if proc.poll() is not None or time.monotonic() >= deadline:
                proc.kill()
                out, err = proc.communicate(timeout=30)
                raise AssertionError(f"no run was saved (exit {proc.returncode})\n--- stdout:\n{out}\n--- stderr:\n{err}")
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, during the second run
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"exit {proc.returncode}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    runs = [d for d in saved.iterdir() if not d.name.startswith(".")]
    assert 1 <= len(runs) < 3, stderr
    assert (f"{len(runs)} of 3 points complete, {len(runs)} of 3 runs saved in {saved}"
            in stderr), stderr
    assert all(json.loads((d / "result.json").read_text())["summary"]["sweep"] == "ctrlc"
               for d in runs), stderr


def test_oversized_records_exit_non_zero_with_the_limits(bootstrap):
    # It used to exit 0 printing "0 records sent ... nan ms".
    topic = f"big-{uuid.uuid4().hex[:8]}"
    out = _cli("produce", "--bootstrap", bootstrap, "--topic", topic, "--num-records", "5",
               "--record-size", "2000000", "--no-progress")
    assert out.returncode == 2, _says(out)
    assert "message.max.bytes (1,000,000 B)" in out.stderr and "MSG_SIZE_TOO_LARGE" in out.stderr, _says(out)
    assert "records sent" not in out.stdout, _says(out)
    out = _cli("run", str(_write_workload(topic)), "--bootstrap", bootstrap, "--no-progress",
               "--out", "", "--set", "message_size=2000000")
    assert out.returncode == 2 and "message.max.bytes" in out.stderr, _says(out)


def _write_workload(name: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / f"{name}.yaml"
    path.write_text("name: big\npartitions: 1\nmessage_count: 5\nduration_s: 0\n")
    return path


def _parsers(parser=None, path=("kafkabench",)):
    """(command path, parser) of the root parser and every subcommand, depth first."""
    import argparse

    from kafkabench.cli import build_parser

    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def test_every_option_has_help_and_every_command_an_example():
    import argparse

    commands = list(_parsers())
    assert len(commands) > 25
    for path, parser in commands:
        command = " ".join(path)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, \
                f"`{command}`: {name} has no help"
            assert "%(default)s" not in action.help or action.default is not None, \
                f"`{command}`: {name} shows a default it does not have"
        if len(path) > 1:
            assert parser.epilog and re.match(r"examples?:\n  kafkabench ", parser.epilog), \
                f"`{command} --help` shows no example"
        # Rendering must not fail (a bad %-format in a help text only fails here).
        assert parser.format_help()


def test_help_describes_the_tool_not_the_module():
    result = _cli("--help")
    assert result.returncode == 0, _says(result)
    assert "parses arguments" not in result.stdout, _says(result)  # the module docstring
    assert "Load-test Apache Kafka" in result.stdout and "examples:" in result.stdout, _says(result)
    for command in ("run", "produce", "consume", "lag", "cluster", "completion"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), f"{command} not listed\n{_says(result)}"
    result = _cli("lag", "--help")
    assert result.returncode == 0 and "example" in result.stdout, _says(result)
    assert "--bootstrap-server" in result.stdout and "(default: 2s)" in result.stdout, _says(result)


#: Every command that talks to a cluster, and the options it takes for that.
CLUSTER_COMMANDS = [("topic", "create"), ("topic", "describe"), ("topic", "list"), ("topic", "delete"),
                    ("lag",), ("run",), ("produce",), ("consume",), ("sweep",), ("locust",),
                    ("offsets", "show"), ("offsets", "reset")]


def test_every_cluster_command_takes_bootstrap_server_profile_and_client_settings():
    parsers = {path[1:]: parser for path, parser in _parsers()}
    for command in [*CLUSTER_COMMANDS, ("quickstart",)]:
        options = {o for a in parsers[command]._actions for o in a.option_strings}
        assert {"--bootstrap-server", "--bootstrap", "--profile", "--command-config",
                "--command-property"} <= options, command


def test_options_parse_as_kafka_users_write_them():
    from kafkabench.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["topic", "list", "--bootstrap-server", "b:9092"]).bootstrap == "b:9092"
    assert parse(["topic", "list", "--bootstrap", "b:9092"]).bootstrap == "b:9092"
    # Without --replication-factor: the cluster's default.replication.factor (-1), not 1.
    assert parse(["topic", "create", "t"]).replication_factor is None
    args = parse(["lag", "--all-groups", "--interval", "1m30s", "--duration", "1h", "--timeout", "2"])
    assert (args.interval, args.duration, args.timeout, args.group) == (90.0, 3600.0, 2.0, None)
    assert parse(["lag", "--group", "g"]).interval == 2.0
    assert parse(["locust", "mixed", "-t", "1m"]).run_time == 60.0
    assert parse(["locust", "mixed"]).run_time == 60.0
    consume = ["consume", "--topic", "t"]
    assert parse(consume).timeout == 10.0  # 10000 ms, Kafka's default
    assert parse([*consume, "--timeout", "1500"]).timeout == 1.5  # a bare number is ms, as in Kafka
    assert parse([*consume, "--timeout", "2m", "--num-records", "5"]).timeout == 120.0
    assert parse([*consume, "--num-records", "5"]).messages == parse([*consume, "--messages", "5"]).messages
    # ProducerPerformance takes several settings after one flag, ConsumerPerformance one per flag.
    produce = ["produce", "--topic", "t", "--num-records", "1"]
    assert parse([*produce, "--command-property", "acks=all", "linger.ms=5", "--command-property",
                  "batch.size=1"]).command_property == ["acks=all", "linger.ms=5", "batch.size=1"]


def test_bad_durations_are_usage_errors_naming_the_value():
    for args in (("locust", "mixed", "-t", "1x"), ("lag", "--group", "g", "--interval", "5q"),
                 ("consume", "--topic", "t", "--timeout", "ten")):
        result = _cli(*args)
        assert result.returncode == 2, _says(result)
        bad = args[-1]
        assert f"duration {bad!r}" in result.stderr and "1h30m" in result.stderr, _says(result)


def test_client_settings_reach_the_right_clients(tmp_path):
    from kafkabench.cli import build_parser, read_properties
    from kafkabench.cli.options import client_profile

    config = tmp_path / "client.properties"
    config.write_text("# TLS to the cluster, tuning for the producer\nsecurity.protocol=SSL\n"
                      "ssl.endpoint.identification.algorithm=none\nlinger.ms=20\nacks=1\n")
    assert read_properties(config) == {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm":
                                       "none", "linger.ms": "20", "acks": "1"}
    args = build_parser().parse_args(["produce", "--topic", "t", "--num-records", "1", "--command-config",
                                      str(config), "--command-property", "acks=all", "--producer-props",
                                      "linger.ms=5", "--profile", "default"])
    profile = client_profile(args, "producer", files=[args.producer_config],
                              props=[("--producer-props", args.producer_props)])
    # Connection settings reach every client (and the reachability check); the rest the producer.
    assert profile.common["security.protocol"] == "SSL"
    assert profile.producer["linger.ms"] == 5 and profile.producer["acks"] == "all"
    args = build_parser().parse_args(["run", "w.yaml", "--command-property", "producer.acks=all",
                                      "consumer.fetch.min.bytes=1000", "socket.timeout.ms=20000"])
    profile = client_profile(args)
    assert profile.producer["acks"] == "all" and profile.consumer["fetch.min.bytes"] == 1000
    assert profile.common["socket.timeout.ms"] == 20000
    # Commands with clients of both roles: a bare key goes to the one role that takes it (as
    # Locust's --kafka-conf does), not to both, which librdkafka refused.
    for command in (["run", "w.yaml"], ["sweep", "s.yaml"], ["quickstart"]):
        args = build_parser().parse_args([*command, "--command-property", "linger.ms=5", "fetch.min.bytes=1",
                                          "security.protocol=PLAINTEXT"])
        profile = client_profile(args)
        assert profile.producer == {"linger.ms": 5} and profile.consumer == {"fetch.min.bytes": 1}
        assert profile.common == {"security.protocol": "PLAINTEXT"}


def test_completion_scripts_and_the_hint_without_shtab():
    pytest.importorskip("shtab")
    for shell in ("bash", "zsh", "tcsh"):
        result = _cli("completion", shell)
        assert result.returncode == 0, _says(result)
        assert "kafkabench" in result.stdout and "completion" in result.stdout, _says(result)
        assert shell == "tcsh" or "--bootstrap-server" in result.stdout, _says(result)
    # Without shtab: one line saying how to install it.
    code = ("import sys; sys.modules['shtab'] = None; from kafkabench.cli import main; "
            "sys.exit(main(['completion', 'bash']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, _says(result)
    assert result.stderr.strip().splitlines() == [
        "kafkabench: error: shell completion needs the shtab package: pip install shtab"], _says(result)


def test_quickstart_takes_the_client_options_of_every_command(tmp_path):
    # --profile reaches load_profile (the sweep itself is run_quickstart's: tests/test_quickstart.py).
    result = _cli("quickstart", "--profile", "no-such-profile", "--out", str(tmp_path), "--bootstrap",
                  "127.0.0.1:9")
    assert result.returncode == 2, _says(result)
    assert "unknown client profile 'no-such-profile'" in result.stderr, _says(result)


def test_summary_has_a_schedule_line_only_for_a_target_rate():
    from kafkabench.cli.output import summary_lines

    base = {"run_id": "r", "duration_s": 1.0, "produced": 1, "delivered": 1, "failed": 0, "consumed": 0}
    paced = summary_lines({**base, "target_rate": 1000.0, "rate_held": True})
    assert any(line.lstrip().startswith("schedule  target 1,000 msg/s, held: True") for line in paced)
    for target in (0.0, float("nan"), None):  # run at max rate; Locust (not measured); absent
        assert not any("schedule" in line for line in summary_lines({**base, "target_rate": target}))


def test_summary_key_lists_go_through_the_contract(monkeypatch):
    import kafkabench.core.contract as contract
    from kafkabench.cli import results, sweep

    assert list(results._results_list_columns())[0] == "run_id" and "rate_held" in sweep._quickstart_columns()
    known = contract.summary_column
    monkeypatch.setattr(contract, "summary_column", lambda name: None if name == "consume_rate" else known(name))
    for columns in (results._results_list_columns, sweep._quickstart_columns):
        with pytest.raises(ValueError, match="'consume_rate' is not a summary key"):
            columns()


def test_locust_command_passes_the_processing_stage_on(tmp_path):
    # The stage reaches run_locust, which refuses a bad one before it looks for a cluster.
    stage = tmp_path / "stage.yaml"
    stage.write_text("time_ms: 1\npoison_fraction: 2\n")
    result = _cli("locust", "service_consumer", "--processing", str(stage), "--bootstrap", "127.0.0.1:1",
                  "--out", "")
    assert result.returncode == 2, _says(result)
    assert f"processing file '{stage}': processing.poison_fraction=2" in result.stderr, _says(result)

