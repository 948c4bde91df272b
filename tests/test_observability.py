"""Observability across modules, against real brokers and a real Prometheus: the names the
dashboard and alert rules query exist in real scrapes; Prometheus scrapes a run and a broker
at once; the CLI's metrics options (`lag`/`run --metrics-port`, `--broker-metrics`,
`observe status`, `cluster status`).

The shared cluster's brokers must run the JMX exporter agent (`kafkabench cluster status`
shows a metrics URL per node); the tests that need it skip with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import explain, run_child
from kafkabench.cluster.admin import create_topic, delete_topics, list_topics
from kafkabench.cluster.nodes import find_local_cluster
from kafkabench.core.errors import ClusterError
from kafkabench.observe import prometheus as observe
from kafkabench.observe.brokermetrics import MESSAGES_IN, broker_metrics_urls
from kafkabench.observe.metrics import (
    RunMetrics,
    free_port,
    metric_names,
    parse_metrics,
    sample_value,
    scrape,
    serve_lag,
)
from kafkabench.run.session import RunObserver
from kafkabench.runner import run_workload

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = str(ROOT / "workloads" / "quickstart.yaml")
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/metrics")
# Lag left on the fixture's group: PRODUCED messages, the group committed after CONSUMED.
PRODUCED, CONSUMED = 50, 20
# A CLI child: Python and kafkabench start in ~1 s; a short run with two worker processes in ~10 s.
CLI_TIMEOUT_S = 90


def _cli(*args: str, timeout: float = CLI_TIMEOUT_S, env: dict[str, str] | None = None):
    """`python -m kafkabench ARGS` run to its end in the project root."""
    return run_child([sys.executable, "-m", "kafkabench", *args], timeout=timeout, cwd=ROOT,
                     env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="module")
def broker_urls(bootstrap) -> dict[int, str]:
    """{node: JMX exporter URL} of the test cluster's brokers (skips when they have none)."""
    urls = broker_metrics_urls(bootstrap)
    if not urls:
        pytest.skip(f"the cluster at {bootstrap} has no broker metrics URL (an external cluster, or "
                    "an embedded one started without the JMX exporter agent)")
    return urls


@pytest.fixture(scope="module")
def lagging_group(bootstrap):
    """(topic, group): a 1-partition topic holding PRODUCED messages, the group having read
    and committed CONSUMED of them, no member left."""
    topic, group = f"obs-{uuid.uuid4().hex[:8]}", f"obs-g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
        for i in range(PRODUCED):
            producer.produce(topic, b"m%d" % i, partition=0)
        assert producer.flush(15) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            got, deadline = 0, time.monotonic() + 30
            while got < CONSUMED and time.monotonic() < deadline:
                got += sum(m.error() is None for m in consumer.consume(CONSUMED - got, 1.0))
            assert got == CONSUMED
            consumer.commit(offsets=[TopicPartition(topic, 0, CONSUMED)], asynchronous=False)
        finally:
            consumer.close()
        yield topic, group
    finally:
        delete_topics(bootstrap, [topic])


def _get(url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read().decode("utf-8")


# ------------------------------------------------------------------ 1. names used = names served

@pytest.mark.timeout(120)
def test_every_name_the_dashboard_and_rules_query_is_in_a_real_scrape(bootstrap, broker_urls,
                                                                      lagging_group):
    """Each name `metric_names_used()` finds in the PromQL of the dashboard and the alert rules
    is declared by one of kafkabench's real endpoints: a run's (with a consumer group), the
    lag exporter's, or a broker's JMX exporter after a run that produced and consumed."""
    used = observe.metric_names_used()
    assert used, "no metric names found in the alert rules and the dashboard"
    run = RunMetrics(0, host="127.0.0.1")
    result = run_workload({"name": "obs-names", "partitions": 2, "message_size": 100,
                           "producer_rate": 1000, "duration_s": 2, "consumer_groups": 1},
                          bootstrap=bootstrap, progress=False, mode="thread", broker_metrics=False,
                          observers=[run])
    assert result.summary["consumed"] > 0, result.summary
    topic, group = lagging_group
    with serve_lag(bootstrap, groups=[group], port=0, host="127.0.0.1") as exporter:
        lag_text = _get(exporter.url)
    served = {"run": metric_names(run.text()), "lag exporter": metric_names(lag_text)}
    served.update({f"broker {b}": metric_names(_get(url)) for b, url in sorted(broker_urls.items())})
    missing = sorted(used - set().union(*served.values()))
    assert not missing, (f"queried by the dashboard or the alert rules, served by no endpoint: {missing} "
                         f"(checked {', '.join(served)})")
    # The lag exporter's scrape carries the group's samples, not only declared families.
    assert sample_value(parse_metrics(lag_text), "kafka_consumergroup_group_lag",
                        group=group, topic=topic) == PRODUCED - CONSUMED


# ------------------------------------------------------------------ 2. a real Prometheus

class PrometheusWatch(RunObserver):
    """Queries Prometheus once a second of the run (its endpoint closes at the end) until the
    run's group lag, an up broker and the broker's messages-in rate for the run's topic answer."""

    def __init__(self, url: str):
        self.url = url
        self.exprs: dict[str, str] = {}
        self.answers: dict[str, list] = {}
        self.errors: list[str] = []

    def on_go(self, session) -> None:
        group, topic = session.plan.groups[0], session.plan.topics[0]
        self.exprs = {
            "lag": f'kafka_consumergroup_group_lag{{group="{group}"}}',
            "broker up": f'up{{job="{observe.BROKER_JOB}"}} == 1',
            "run up": f'up{{job="{observe.CLIENT_JOB}"}} == 1',
            "messages in": f'rate({MESSAGES_IN}{{topic="{topic}"}}[5s]) > 0',
        }

    def on_second(self, session) -> None:
        for what, expr in self.exprs.items():
            if not self.answers.get(what):
                try:
                    self.answers[what] = observe.query(expr, url=self.url, timeout_s=2)
                except ClusterError as exc:  # one slow answer: asked again next second
                    self.errors.append(str(exc))

    @property
    def done(self) -> bool:
        return bool(self.exprs) and all(self.answers.get(w) for w in self.exprs)


@pytest.mark.timeout(90)
def test_prometheus_scrapes_a_run_and_the_broker_during_the_run(bootstrap, broker_urls, tmp_path):
    if observe.prometheus_binary() is None:
        pytest.skip(observe.missing_reason("prometheus"))
    port = free_port()
    # The run's endpoint is a target from the start, scraped (down) until the run serves on it:
    # once Prometheus's target discovery (every 5 s, the first time too) has handed over the
    # broker, it has handed over the run's endpoint as well.
    state = observe.observe_up(brokers=list(broker_urls.values()), clients=[f"127.0.0.1:{port}"],
                               port=free_port(), home=tmp_path, scrape_interval_s=1)
    try:
        deadline = time.monotonic() + 30
        while not observe.query(f'up{{job="{observe.BROKER_JOB}"}} == 1', url=state.url) \
                and time.monotonic() < deadline:
            time.sleep(0.25)
        watch = PrometheusWatch(state.url)
        result = run_workload({"name": "obs-prom", "partitions": 2, "message_size": 100,
                               "producer_rate": 500, "duration_s": 6, "consumer_groups": 1},
                              bootstrap=bootstrap, progress=False, mode="thread", broker_metrics=False,
                              metrics_port=port, observers=[watch])
    finally:
        observe.observe_down(home=tmp_path)
    assert result.summary["metrics_url"] == f"http://127.0.0.1:{port}/metrics"
    answers = "; ".join(f"{w}: {watch.exprs[w]} -> {watch.answers.get(w)!r}" for w in watch.exprs)
    assert watch.done, f"Prometheus at {state.url} did not answer during the run: {answers}; " \
                       f"errors {watch.errors}"
    group = next(iter(result.summary["consumed_by_group"]))
    assert {r["metric"]["group"] for r in watch.answers["lag"]} == {group}
    assert [r["metric"]["instance"] for r in watch.answers["run up"]] == [f"127.0.0.1:{port}"]
    assert all(float(r["value"][1]) > 0 for r in watch.answers["messages in"])


# ------------------------------------------------------------------ 3. the CLI

def _first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The child's first stdout line, waiting at most `timeout_s` ("" if none came)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


@pytest.mark.timeout(60)
def test_cli_lag_exporter_serves_the_lag_left_behind(bootstrap, lagging_group):
    topic, group = lagging_group
    proc = subprocess.Popen([sys.executable, "-m", "kafkabench", "lag", "--bootstrap-server", bootstrap,
                             "--group", group, "--metrics-port", "0", "--duration", "4s",
                             "--interval", "0.5s"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = _first_line(proc, 30)
        found = URL.search(line)
        assert found, f"no metrics URL in {line!r}"
        url = found.group(0)
        got = scrape(url, timeout_s=5)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{line}{out}\n--- stderr:\n{err}"
    assert group in line and bootstrap in line
    labels = {"group": group, "topic": topic, "partition": "0"}
    assert sample_value(got, "kafka_consumergroup_group_lag", **labels) == PRODUCED - CONSUMED
    assert sample_value(got, "kafka_consumergroup_group_offset", **labels) == CONSUMED
    assert sample_value(got, "kafka_partition_latest_offset", topic=topic, partition="0") == PRODUCED
    assert sample_value(got, "kafkabench_consumergroup_status", group=group, status="OK") == 1
    with pytest.raises(ClusterError):  # --duration ended it: nothing serves there any more
        scrape(url, timeout_s=2)


@pytest.mark.timeout(60)
def test_cli_run_on_a_busy_metrics_port_is_one_line_and_no_topic(bootstrap):
    prefix = f"obsbusy{uuid.uuid4().hex[:6]}"
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _cli("run", QUICKSTART, "--bootstrap-server", bootstrap, "--metrics-port", str(port),
                    "--set", f"topic_prefix={prefix}", "--out", "", "--no-progress")
    assert proc.returncode == 2, explain(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "another port" in lines[0], explain(proc)
    assert proc.stdout == "", explain(proc)
    assert not [t for t in list_topics(bootstrap) if t.startswith(prefix)]


@pytest.mark.parametrize("command", [["run", QUICKSTART], ["lag", "--group", "g"], ["locust"]],
                         ids=["run", "lag", "locust"])
def test_cli_refuses_a_metrics_port_above_65535(command):
    proc = _cli(*command, "--metrics-port", "70000", timeout=30)
    assert proc.returncode == 2, explain(proc)
    last = proc.stderr.strip().splitlines()[-1]
    assert "--metrics-port" in last and "70000" in last and "65535" in last, explain(proc)


def test_cli_observe_without_a_server(tmp_path):
    env = {"KAFKABENCH_HOME": str(tmp_path / "home")}
    status = _cli("observe", "status", env=env, timeout=30)
    assert status.returncode == 3, explain(status)
    assert "observe up" in status.stdout, explain(status)
    add = _cli("observe", "add", "--client", "127.0.0.1:9464", env=env, timeout=30)
    assert add.returncode == 2 and "observe up" in add.stderr, explain(add)
    down = _cli("observe", "down", env=env, timeout=30)
    assert down.returncode == 0 and "was running" in down.stdout, explain(down)
    assert not (tmp_path / "home" / "prometheus" / observe.STATE_FILE).exists()


def test_cli_cluster_status_lists_each_brokers_metrics_url(bootstrap, broker_urls):
    cluster = find_local_cluster(bootstrap)
    if cluster is None:  # broker_urls found one; it stopped since
        pytest.skip(f"no embedded cluster serves {bootstrap} any more")
    proc = _cli("cluster", "status", "--name", cluster.name, timeout=30)
    assert proc.returncode == 0, explain(proc)
    shown = {int(line.split()[0]): m.group(0) for line in proc.stdout.splitlines()
             if (m := URL.search(line))}
    assert shown == broker_urls, explain(proc)
    for url in shown.values():  # and each answers with broker metrics
        assert sample_value(scrape(url), MESSAGES_IN) > 0, url


@pytest.mark.timeout(120)
def test_cli_run_with_an_unreachable_broker_exporter_warns_and_completes(bootstrap):
    dead = "http://127.0.0.1:1/metrics"
    proc = _cli("run", QUICKSTART, "--bootstrap-server", bootstrap, "--broker-metrics", dead,
                "--metrics-port", "0", "--set", "duration_s=2", "--set", "warmup_s=0",
                "--set", "producer_rate=500", "--set", "consumers_per_group=1",
                "--out", "", "--no-progress", "--json")
    assert proc.returncode == 0, explain(proc)
    summary = json.loads(proc.stdout)
    assert summary["delivered"] == summary["produced"] > 0 and summary["consumed"] > 0, explain(proc)
    warnings = [w for w in summary["warnings"] if dead in w]
    assert len(warnings) == 1 and "did not answer" in warnings[0], summary["warnings"]
    assert summary["broker_scrape_errors"] >= 1
    assert [line for line in proc.stderr.splitlines() if dead in line and "WARNING" in line], explain(proc)
    assert URL.fullmatch(summary["metrics_url"]), summary["metrics_url"]
    assert summary["warnings"][0].count(dead) == 1, summary["warnings"]  # named once, not twice


def test_cli_run_says_where_its_metrics_are_before_it_runs(bootstrap):
    """`--metrics-port 0` picks a free port: the run names it on stderr at once, and it answers
    during the run (Prometheus can be pointed at it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkabench", "run", QUICKSTART, "--bootstrap-server", bootstrap,
         "--metrics-port", "0", "--set", "duration_s=4", "--set", "warmup_s=0", "--set", "producer_rate=500",
         "--out", "", "--no-progress", "--json"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
        deadline, url, produced = time.monotonic() + 60, None, 0.0
        while time.monotonic() < deadline and not produced:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            url = url or (m.group(0) if (m := URL.search(line)) and "serving" in line else None)
            if url:
                try:
                    produced = sample_value(scrape(url, timeout_s=2), "kafkabench_messages_sent_total")
                except ClusterError:
                    pass  # not serving yet, or already closed
        proc.wait(timeout=CLI_TIMEOUT_S)  # stdout holds one JSON line: no pipe fills up
        out = proc.stdout.read()
    finally:
        proc.kill()
    assert url is not None, "no `serving the run's metrics on URL` line on stderr"
    assert produced > 0
    assert proc.returncode == 0 and json.loads(out)["metrics_url"] == url
