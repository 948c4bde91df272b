"""Every command against a cluster that is not there: one clear line, non-zero exit.

librdkafka logs each refused connection (hundreds of lines in 10 s); those belong in the
`kafkabench.librdkafka` log, shown with `kafkabench -v`, not on the terminal.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

# Each command waits out kafkabench's 10 s reachability check; this only bounds a hang.
TIMEOUT_S = 90
# The error line, plus a little slack (e.g. a warning); never librdkafka's log.
MAX_STDERR_LINES = 3


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory) -> tuple[str, dict[str, subprocess.CompletedProcess]]:
    """Every command run at once (they mostly wait) against a closed loopback port."""
    tmp = tmp_path_factory.mktemp("unreachable")
    bootstrap = f"127.0.0.1:{_closed_port()}"
    workload = tmp / "w.yaml"
    workload.write_text("name: unreachable\nmessage_size: 100\nproducer_rate: 100\nduration_s: 2\n")
    commands = {
        "produce": ["produce", "--topic", "x", "--num-records", "10", "--no-progress"],
        "run": ["run", str(workload), "--out", str(tmp / "results"), "--no-progress"],
        "consume": ["consume", "--topic", "x", "--timeout", "1000", "--no-progress"],
        "lag": ["lag", "--group", "g", "--once"],
        "lag --all-groups": ["lag", "--all-groups", "--once", "--format", "json"],
        "topic list": ["topic", "list"],
        "topic describe": ["topic", "describe", "x", "--profile", "default",
                           "--command-property", "client.id=kafkabench-test"],
        "locust": ["locust", "producer_load", "-t", "5", "--out", ""],
        "offsets show": ["offsets", "show", "--group", "g"],
        "offsets reset": ["offsets", "reset", "--group", "g", "--to-earliest"],
        "-v topic list": ["-v", "topic", "list"],
        "topic list -v": ["topic", "list", "-v"],
    }
    env = {k: v for k, v in os.environ.items() if k != "KAFKABENCH_BOOTSTRAP"}
    procs = {}
    for name, args in commands.items():
        out, err = tmp / f"{name}.out", tmp / f"{name}.err"
        with open(out, "w") as o, open(err, "w") as e:  # files: -v writes more than a pipe holds
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "kafkabench", *args, "--bootstrap-server", bootstrap],
                stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env, cwd=tmp)
    results = {}
    try:
        for name, proc in procs.items():
            proc.wait(timeout=TIMEOUT_S)
            results[name] = subprocess.CompletedProcess(
                proc.args, proc.returncode, (tmp / f"{name}.out").read_text(),
                (tmp / f"{name}.err").read_text())
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return bootstrap, results


@pytest.mark.parametrize("command", ["produce", "run", "consume", "lag", "lag --all-groups", "topic list",
                                     "topic describe", "locust", "offsets show", "offsets reset"])
def test_unreachable_cluster_is_one_clear_line(unreachable, command):
    bootstrap, results = unreachable
    result = results[command]
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= MAX_STDERR_LINES, f"{len(lines)} lines on stderr:\n{result.stderr[:3000]}"
    last = lines[-1]
    assert f"cannot reach Kafka at {bootstrap!r} within 10 s" in last, result.stderr
    assert "Connection refused" in last and "kafkabench cluster status" in last
    assert "[thrd:" not in result.stderr and "Traceback" not in result.stderr  # librdkafka's lines


@pytest.mark.parametrize("command", ["-v topic list", "topic list -v"])
def test_verbose_shows_librdkafka_log(unreachable, command):
    bootstrap, results = unreachable
    result = results[command]
    assert result.returncode != 0, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert f"cannot reach Kafka at {bootstrap!r}" in lines[-1], result.stderr[-3000:]
    librdkafka = [line for line in lines if "kafkabench.librdkafka" in line]
    assert librdkafka and all("Connection refused" in line for line in librdkafka), result.stderr[-3000:]
