"""The embedded cluster against real Kafka: produce/consume, leader failover, CLI across processes."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from confluent_kafka import Consumer, Producer

from conftest import explain, run_child
from kafkabench.cluster.admin import create_topic, delete_topics, describe_topic, list_topics
from kafkabench.cluster.local import (
    STARTUP_TIMEOUT_S,
    LocalCluster,
    Node,
    _is_kafka_process,
    _lock_node_dir,
    check_reachable,
    clusters_home,
    resolve_bootstrap,
)
from kafkabench.cluster.nodes import start_node
from kafkabench.core.errors import ClusterError, ConfigError, NoClusterError


def _topic() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, n: int, **conf) -> tuple[int, list]:
    errors = []
    delivered = 0

    def on_delivery(err, msg):
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 20000, **conf})
    for i in range(n):
        p.produce(topic, value=b"m%d" % i, key=b"k%d" % (i % 10), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    return delivered, errors


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                if m.error() is None:
                    got.append(m.value())
    finally:
        c.close()
    return got


def test_one_broker_produce_consume_all_received(bootstrap):
    topic = _topic()
    create_topic(bootstrap, topic, partitions=3)
    delivered, errors = _produce(bootstrap, topic, 2000)
    assert (delivered, errors) == (2000, [])
    got = _consume_all(bootstrap, topic, 2000)
    assert sorted(got) == sorted(b"m%d" % i for i in range(2000))
    assert topic in list_topics(bootstrap)
    delete_topics(bootstrap, [topic])


def test_describe_topic_shows_leaders_and_isr(bootstrap):
    topic = _topic()
    create_topic(bootstrap, topic, partitions=4)
    df = describe_topic(bootstrap, topic)
    assert list(df.columns) == ["topic", "partition", "leader", "replicas", "isr"]
    assert list(df["partition"]) == [0, 1, 2, 3]
    assert (df["leader"] >= 1).all()
    delete_topics(bootstrap, [topic])
    with pytest.raises(ClusterError, match=f"'missing-{topic}' does not exist"):
        describe_topic(bootstrap, f"missing-{topic}")


def test_create_topic_bad_replication_factor_is_clear(bootstrap):
    with pytest.raises(ClusterError, match="replication_factor=5") as info:
        create_topic(bootstrap, _topic(), partitions=1, replication_factor=5, timeout_s=10)
    # It says how many brokers there are and how to run anyway (an OMB driver's
    # replicationFactor: 3 on the 1-broker embedded cluster).
    assert re.search(r"has \d broker\(s\)", str(info.value))
    assert "--set replication_factor=1" in str(info.value)
    assert "kafkabench cluster up --brokers 3" in str(info.value)


@pytest.mark.cluster3
def test_leader_kill_failover_and_isr_rejoin(cluster3):
    bootstrap = cluster3.bootstrap_servers
    topic = _topic()
    create_topic(bootstrap, topic, partitions=1, replication_factor=3,
                 config={"min.insync.replicas": 2})
    before = describe_topic(bootstrap, topic).iloc[0]
    assert sorted(before["isr"]) == [1, 2, 3]
    leader = int(before["leader"])
    delivered, errors = _produce(bootstrap, topic, 500, acks="all")
    assert (delivered, errors) == (500, [])

    cluster3.kill(leader)
    try:
        # Leadership moves once the controller notices the dead broker (session timeout).
        deadline = time.monotonic() + 60
        new_leader = leader
        while time.monotonic() < deadline:
            row = describe_topic(bootstrap, topic).iloc[0]
            new_leader = int(row["leader"])
            if new_leader not in (leader, -1):
                break
            time.sleep(0.5)
        assert new_leader not in (leader, -1), "leadership did not move off the killed broker"
        delivered, errors = _produce(bootstrap, topic, 500, acks="all")
        assert (delivered, errors) == (500, []), "acks=all with 2 of 3 in sync must keep working"
    finally:
        cluster3.start(leader)

    deadline = time.monotonic() + 90
    isr: list = []
    while time.monotonic() < deadline:
        isr = sorted(describe_topic(bootstrap, topic).iloc[0]["isr"])
        if isr == [1, 2, 3]:
            break
        time.sleep(1)
    assert isr == [1, 2, 3], f"restarted broker {leader} did not rejoin the ISR: {isr}"
    assert len(_consume_all(bootstrap, topic, 1000)) == 1000
    delete_topics(bootstrap, [topic])


def _cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_child([sys.executable, "-m", "kafkabench.cli", *args], timeout=timeout,
                     env={**os.environ, **(env or {})})


def _dead_pid() -> int:
    return int(run_child([sys.executable, "-c", "import os; print(os.getpid())"], timeout=30).stdout)


def test_cli_up_status_down_across_processes():
    name = f"clitest-{uuid.uuid4().hex[:6]}"
    # What a crashed `cluster up` leaves: a state file naming a dead JVM. It must not block.
    stale = clusters_home() / name / "state.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"name": name, "brokers": 1, "heap": "1g", "cluster_id": "x",
                                 "nodes": [{"id": 1, "port": 1, "controller_port": 2, "pid": _dead_pid(),
                                            "dir": str(stale.parent / "node-1")}]}))
    up = _cli("cluster", "up", "--name", name)
    assert up.returncode == 0, explain(up)
    bootstrap = up.stdout.strip().splitlines()[-1]
    assert bootstrap.startswith("127.0.0.1:")
    pid = LocalCluster.attach(name).nodes[0].pid
    try:
        # A second `up` starts nothing: it says so and prints the running cluster's bootstrap.
        again = _cli("cluster", "up", "--name", name)
        assert again.returncode == 0, explain(again)
        assert again.stdout.strip().splitlines()[-1] == bootstrap, explain(again)
        assert "already running" in again.stderr and str(pid) in again.stderr, explain(again)
        assert LocalCluster.attach(name).nodes[0].pid == pid
        other = _cli("cluster", "up", "--name", name, "--brokers", "3")
        assert other.returncode == 2 and "already running with 1 broker(s)" in other.stderr, \
            explain(other)
        # A second process finds the cluster through the state file alone.
        probe = run_child(
            [sys.executable, "-c", "from kafkabench.cluster.local import resolve_bootstrap;"
             f"print(resolve_bootstrap(name={name!r}))"],
            timeout=60, env={k: v for k, v in os.environ.items() if k != "KAFKABENCH_BOOTSTRAP"})
        assert probe.stdout.strip() == bootstrap, explain(probe)
        status = _cli("cluster", "status", "--name", name)
        assert status.returncode == 0 and "alive" in status.stdout, explain(status)
        delivered, _ = _produce(bootstrap, _topic(), 10)
        assert delivered == 10
    finally:
        down = _cli("cluster", "down", "--name", name, "--purge")
    assert down.returncode == 0, explain(down)
    assert not _is_kafka_process(pid), "`cluster down` left the broker running"
    after = _cli("cluster", "status", "--name", name)
    assert after.returncode != 0 and "no embedded cluster" in after.stdout, explain(after)
    again = _cli("cluster", "down", "--name", name)
    assert again.returncode == 0 and "nothing to stop" in again.stdout, explain(again)


def test_one_data_folder_never_gets_a_second_broker(tmp_path):
    with LocalCluster(brokers=1, base_dir=tmp_path) as cluster:
        bootstrap, pid = cluster.bootstrap_servers, cluster.nodes[0].pid
        topic = _topic()
        create_topic(bootstrap, topic)
        second = LocalCluster(brokers=1, base_dir=tmp_path)
        try:
            with pytest.raises(ClusterError, match="already running") as info:
                second.start()
            assert str(tmp_path) in str(info.value) and str(pid) in str(info.value)
            # Without the state file, the lock the broker holds on its folder still refuses,
            # before anything in the folder is touched.
            state = cluster.state_file.read_text()
            cluster.state_file.unlink()
            second = LocalCluster(brokers=3, base_dir=tmp_path)
            try:
                with pytest.raises(ClusterError, match=f"pid {pid}") as info:
                    second.start()
                assert str(tmp_path / "node-1") in str(info.value)
            finally:
                cluster.state_file.write_text(state)
        finally:
            second.stop_all()  # nothing to stop, unless a second broker was started after all
        assert cluster.nodes[0].alive and topic in list_topics(bootstrap)
    # The broker's exit released its lock: the folder is free for the next cluster.
    os.close(_lock_node_dir(tmp_path / "node-1"))


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ClusterError, match=f"port {port} is in use"):
            LocalCluster(brokers=1, base_dir=tmp_path, ports=[port]).start()
        result = _cli("cluster", "up", "--name", f"busy-{uuid.uuid4().hex[:6]}", "--port", str(port))
    assert result.returncode == 2, explain(result)
    assert f"port {port} is in use" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_resolve_bootstrap_order(monkeypatch):
    monkeypatch.setenv("KAFKABENCH_BOOTSTRAP", "env:9092")
    assert resolve_bootstrap("explicit:9092") == "explicit:9092"
    assert resolve_bootstrap() == "env:9092"
    monkeypatch.delenv("KAFKABENCH_BOOTSTRAP")
    with pytest.raises(NoClusterError, match="kafkabench cluster up"):
        resolve_bootstrap(name=f"nothing-{uuid.uuid4().hex[:6]}")


def test_bad_node_and_broker_counts():
    with pytest.raises(ClusterError, match="brokers must be 1 or 3, got 2"):
        LocalCluster(brokers=2)
    cluster = LocalCluster(brokers=1)
    with pytest.raises(ClusterError, match="no node 7"):
        cluster.node(7)


def test_owned_cluster_dies_with_a_crashed_owner(tmp_path):
    script = ("import os, signal, sys\n"
              "from kafkabench.cluster.local import LocalCluster\n"
              f"c = LocalCluster(brokers=1, base_dir={str(tmp_path)!r}, heap='512m').__enter__()\n"
              "print(c.nodes[0].pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind\n")
    # Storage format (up to 120 s) and startup on loaded cores: the child's own timeouts
    # fire first, so a slow start fails with the child's message, shown by `explain`.
    proc = run_child([sys.executable, "-c", script], timeout=120 + STARTUP_TIMEOUT_S + 60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip().isdigit(), explain(proc)
    pid = int(proc.stdout)
    # PR_SET_PDEATHSIG kills the broker at once; its reaping (by init) may take a moment.
    # Gone, a zombie or a reused pid all count as dead: `_is_kafka_process` tells them apart.
    deadline = time.monotonic() + 30
    while _is_kafka_process(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _is_kafka_process(pid), f"broker pid {pid} outlived its crashed owner\n{explain(proc)}"
    assert "Traceback" not in proc.stderr, explain(proc)


def test_a_starting_node_is_judged_by_its_process_not_its_command_line(tmp_path):
    # /proc/<pid>/cmdline reads empty for a moment while a node's launcher execs into java;
    # `wait_ready` polled it and took a starting broker for one that "exited during startup"
    # (the crashed-owner test failed so, once). The stand-in node makes that moment last: it
    # starts as "kafka.Kafka", then execs into a command line without it and keeps running.
    cluster = LocalCluster(brokers=1, base_dir=tmp_path, startup_timeout_s=3)
    node = Node(id=1, port=_closed_port(), controller_port=_closed_port(), dir=str(tmp_path))
    cluster.nodes = [node]
    execs = ("import os, sys, time; time.sleep(0.3); "
             "os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)'])")
    starting = subprocess.Popen([sys.executable, "-c", execs, "kafka.Kafka"])
    try:
        cluster._procs[1], node.pid = starting, starting.pid
        with pytest.raises(ClusterError, match="not ready after 3 s"):
            cluster.wait_ready()
        assert not node.alive and starting.poll() is None  # running, though /proc says otherwise
    finally:
        starting.kill()
        starting.wait(10)
    # A node that does exit during startup is still reported as such, with its log.
    exiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)", "kafka.Kafka"])
    cluster._procs[1], node.pid = exiting, exiting.pid
    with pytest.raises(ClusterError, match="node 1 exited during startup"):
        cluster.wait_ready(timeout_s=30)
    exiting.wait(10)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_reachable_is_one_error_and_logs_librdkafka_quietly(bootstrap, capfd, caplog):
    check_reachable(bootstrap)  # a live cluster: no error
    dead = f"127.0.0.1:{_closed_port()}"
    with caplog.at_level(logging.DEBUG, logger="kafkabench.librdkafka"):
        with pytest.raises(ClusterError) as info:
            check_reachable(dead, timeout_s=2)
    message = str(info.value)
    assert message.startswith(f"cannot reach Kafka at {dead!r} within 2 s: ")
    assert "Connection refused" in message and "kafkabench cluster status" in message
    # librdkafka wrote nothing to the process's stderr itself: its lines went to logging.
    assert "Connection refused" not in capfd.readouterr().err
    lines = [r.getMessage() for r in caplog.records if r.name == "kafkabench.librdkafka"]
    assert lines and all(r.levelno <= logging.INFO for r in caplog.records)
    with pytest.raises(ConfigError, match="security.protocol"):
        check_reachable(dead, {"security.protocol": "carrier-pigeon"})


def test_down_stops_a_node_another_process_restarted(tmp_path):
    # Scenarios run in a child process, which restarts the nodes it kills; the parent's
    # LocalCluster still held the old pids, and `down()` left the restarted JVMs running.
    with LocalCluster(brokers=1, base_dir=tmp_path / "c") as cluster:
        other = LocalCluster.attach(cluster.name, base_dir=cluster.base_dir)
        other.kill(1)
        start_node(other, 1)  # what a fault schedule's undo does, here from another object
        new_pid = other.node(1).pid
        assert new_pid != cluster.node(1).pid and other.node(1).alive
    deadline = time.monotonic() + 30
    while psutil.pid_exists(new_pid) and psutil.Process(new_pid).status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(new_pid) or psutil.Process(new_pid).status() == psutil.STATUS_ZOMBIE


def test_a_node_restarted_from_another_thread_outlives_that_thread(tmp_path):
    # PR_SET_PDEATHSIG fires when the *thread* that started a child ends: a node a fault
    # schedule's thread restarted in a `with`-owned cluster was SIGKILLed when the run ended.
    import threading

    with LocalCluster(brokers=1, base_dir=tmp_path / "c") as cluster:
        cluster.kill(1)
        worker = threading.Thread(target=start_node, args=(cluster, 1))
        worker.start()
        worker.join(180)
        assert not worker.is_alive() and cluster.node(1).alive
        time.sleep(3)  # the thread has ended: the signal would have come by now
        assert cluster.node(1).alive, "the restarted node died with the thread that started it"
        pid = cluster.node(1).pid
    deadline = time.monotonic() + 30  # and `down()` still stops it
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_nodes_serve_metrics_and_a_restarted_node_keeps_its_port(tmp_path):
    with LocalCluster(brokers=1, base_dir=tmp_path / "c", heap="512m") as cluster:
        url = cluster.node(1).metrics_url
        assert url and cluster.metrics_urls() == {1: url}
        assert "kafka_server_replicamanager_underreplicatedpartitions" in _get(url)
        assert cluster.status()[0].metrics_url == url
        assert LocalCluster.attach(base_dir=tmp_path / "c").node(1).metrics_url == url
        cluster.kill(1)
        cluster.start(1)
        assert cluster.node(1).metrics_url == url and "kafka_server_" in _get(url)
        # Another process took the port meanwhile: the node starts on a new one, saved.
        cluster.kill(1)
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old one may linger
            try:
                taken.bind(("127.0.0.1", cluster.node(1).metrics_port))
                taken.listen(1)
                held = True
            except OSError:
                held = False  # a client's connection got it as its local port meanwhile
            cluster.start(1)
        moved = cluster.node(1).metrics_url
        assert (moved != url or not held) and "kafka_server_" in _get(moved)
        assert LocalCluster.attach(base_dir=tmp_path / "c").node(1).metrics_url == moved


def test_a_cluster_without_the_metrics_agent_starts_and_says_so(tmp_path, caplog):
    from dataclasses import replace

    from kafkabench.cluster.install import install_kafka

    dist = replace(install_kafka(quiet=True), jmx_agent=None)
    with caplog.at_level(logging.WARNING, logger="kafkabench.cluster.local"):
        with LocalCluster(brokers=1, base_dir=tmp_path / "c", heap="512m", kafka=dist) as cluster:
            assert cluster.metrics_urls() == {} and cluster.status()[0].metrics_url is None
    assert "without broker metrics" in caplog.text
