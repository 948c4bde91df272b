"""kafkabench.observe and docker/: the files parse and pass promtool (static), and a real
Prometheus scrapes the lag exporter and fires the lag alert (needs Debian's `prometheus`:
`make observe`; skipped with the reason otherwise)."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.observe import prometheus as observe
from kafkabench.observe.prometheus import (
    JOBS,
    LAG_ALERT,
    add_targets,
    alerts,
    metric_names_used,
    observe_down,
    observe_status,
    observe_up,
    prometheus_config,
    promql_metric_names,
    query,
    render_rules,
)

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "kafkabench.json"
PACKAGE_ALERTS = Path(str(observe.ALERTS_FILE))
# Scrape discovery hands new targets over every 5 s, then the first scrape: 30 s is plenty.
WAIT_S = 30.0


def _promtool() -> str:
    path = observe.promtool_binary()
    if path is None:
        pytest.skip(observe.missing_reason("promtool"))
    return path


def _needs_prometheus() -> None:
    if observe.prometheus_binary() is None:
        pytest.skip(observe.missing_reason("prometheus"))


def _promtool_ok(*args: str) -> None:
    proc = subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


def _panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ static: docker/

def test_compose_parses_keeps_the_brokers_and_mounts_existing_files():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "kafka-ui", "jmx-agent", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts {source}, missing under docker/"
            else:
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source!r}"
    for n in (1, 2, 3):
        broker = services[f"kafka-{n}"]
        assert "-javaagent:" in broker["environment"]["KAFKA_OPTS"]
        assert broker["depends_on"] == {"jmx-agent": {"condition": "service_completed_successfully"}}


def test_compose_fetches_the_jmx_agent_version_kafkabench_pins():
    from kafkabench.cluster.install import JMX_AGENT_VERSION

    url = yaml.safe_load(COMPOSE.read_text())["services"]["jmx-agent"]["environment"]["JMX_AGENT_URL"]
    assert url.endswith(f"/{JMX_AGENT_VERSION}/jmx_prometheus_javaagent-{JMX_AGENT_VERSION}.jar")


def test_docker_alerts_are_the_packaged_alerts():
    assert (DOCKER / "prometheus" / "alerts.yml").read_bytes() == PACKAGE_ALERTS.read_bytes(), \
        "cp kafkabench/prometheus/alerts.yml docker/prometheus/alerts.yml"


def test_docker_prometheus_config_has_kafkabench_jobs_and_passes_promtool():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == list(JOBS)
    _promtool_ok("check", "config", str(DOCKER / "prometheus" / "prometheus.yml"))  # and its rules


def test_grafana_provisioning_and_dashboard_parse_and_agree():
    sources = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in sources["datasources"] if d["type"] == "prometheus"}
    providers = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/kafkabench.yml").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    mounted = {v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]}
    assert {p["options"]["path"] for p in providers["providers"]} <= mounted
    board = json.loads(DASHBOARD.read_text())
    panels = _panels(board)
    assert len(panels) >= 12
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for p in panels:
        assert p["datasource"]["uid"] in uids, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] in uids and t["expr"].strip(), p["title"]


def test_every_dashboard_expression_parses(tmp_path):
    """Each panel's PromQL, with Grafana's $__rate_interval filled in, as a rule promtool checks."""
    exprs = [t["expr"].replace("$__rate_interval", "1m") for p in _panels(json.loads(DASHBOARD.read_text()))
             for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"panel:expr{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    _promtool_ok("check", "rules", str(path))


# ------------------------------------------------------------------ static: rules and config

def test_packaged_and_rendered_alert_rules_pass_promtool(tmp_path):
    _promtool_ok("check", "rules", str(PACKAGE_ALERTS))
    rendered = tmp_path / "alerts.yml"
    rendered.write_text(render_rules(lag_threshold=5, alert_for_s=0))
    _promtool_ok("check", "rules", str(rendered))


def test_rendered_rules_carry_the_lag_threshold_everywhere():
    default = {r["alert"]: r for g in yaml.safe_load(render_rules())["groups"] for r in g["rules"]}
    assert default[LAG_ALERT]["labels"]["threshold"] == str(observe.DEFAULT_LAG_THRESHOLD)
    rules = {r["alert"]: r for g in yaml.safe_load(render_rules(lag_threshold=5, alert_for_s=0))["groups"]
             for r in g["rules"]}
    lag = rules[LAG_ALERT]
    assert lag["expr"].endswith("> 5") and lag["labels"]["threshold"] == "5"
    assert all("10000" not in text for text in lag["annotations"].values())
    assert "threshold 5" in lag["annotations"]["description"]
    assert {r["for"] for r in rules.values()} == {"0s"}
    others = {k: v["expr"] for k, v in rules.items() if k != LAG_ALERT}
    assert others == {k: v["expr"] for k, v in default.items() if k != LAG_ALERT}
    assert {"severity", "threshold"} <= set(lag["labels"])


def test_render_rules_rejects_negative_values():
    with pytest.raises(ConfigError, match="-1"):
        render_rules(lag_threshold=-1)
    with pytest.raises(ConfigError, match="-2"):
        render_rules(alert_for_s=-2)


def test_generated_config_passes_promtool(tmp_path):
    rules = tmp_path / "alerts.yml"
    rules.write_text(render_rules())
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config({"kafka-brokers": ["http://127.0.0.1:9404/metrics", "localhost:9405"],
                                         "kafkabench": []}, rules, scrape_interval_s=0.5))
    parsed = yaml.safe_load(config.read_text())
    assert parsed["global"]["scrape_interval"] == "500ms"
    assert [j["job_name"] for j in parsed["scrape_configs"]] == list(JOBS)
    assert parsed["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:9404", "localhost:9405"]}]
    _promtool_ok("check", "config", str(config))


@pytest.mark.parametrize("targets, bad", [
    ({"kafka-brokers": ["localhost"]}, "localhost"),
    ({"kafka-brokers": ["https://h:1/metrics"]}, "https://h:1/metrics"),
    ({"kafkabench": ["h:1/other"]}, "h:1/other"),
    ({"brokers": ["h:1"]}, "brokers"),
])
def test_prometheus_config_names_a_bad_target(targets, bad):
    with pytest.raises(ConfigError, match=bad.replace("/", ".")):
        prometheus_config(targets, None)


def test_promql_metric_names():
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(kafkabench_e2e_latency_seconds_bucket[$__rate_interval])))'
    ) == {"kafkabench_e2e_latency_seconds_bucket"}
    assert promql_metric_names(
        'sum without (instance) (a_total{x="b_total", y=~"c|d"} offset 5m) / on (job) group_left b:rec > bool 1e3'
    ) == {"a_total", "b:rec"}
    assert promql_metric_names('max by (group, status) (m) == 1 and ignoring(q) n unless up') == {"m", "n", "up"}


def test_metric_names_used_reads_rules_and_dashboard(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"panels": []}')
    from_rules = metric_names_used(dashboard=empty)
    both = metric_names_used()
    assert from_rules and from_rules < both
    assert not both & (observe.SYNTHETIC_SERIES | {"rate", "sum", "le", "by", "histogram_quantile"})
    buckets = {n for n in both if n.endswith("_bucket")}
    assert buckets and not {n for n in metric_names_used(strip_suffixes=True) if n.endswith("_bucket")}


# ------------------------------------------------------------------ life cycle errors

def test_missing_binary_says_make_observe_installs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKABENCH_PROMETHEUS", str(tmp_path / "no-such-prometheus"))
    assert observe.prometheus_binary() is None
    with pytest.raises(ConfigError, match="make observe"):
        observe_up(brokers=[], home=tmp_path)


def test_nothing_running(tmp_path):
    assert observe_status(home=tmp_path) is None
    assert observe_down(home=tmp_path) is False
    with pytest.raises(ClusterError, match="observe up"):
        add_targets(clients=["127.0.0.1:1"], home=tmp_path)


def test_port_in_use_is_a_config_error(tmp_path):
    _needs_prometheus()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match=str(s.getsockname()[1])):
            observe_up(brokers=[], port=s.getsockname()[1], home=tmp_path)
    assert observe_status(home=tmp_path) is None


@pytest.mark.timeout(60)
def test_a_server_that_dies_at_start_is_an_error_with_its_log(tmp_path):
    _needs_prometheus()
    (tmp_path / "data").write_text("a file where the TSDB folder should be")
    with pytest.raises(ClusterError, match="exited") as info:
        observe_up(brokers=[], port=_free_port(), home=tmp_path, ready_timeout_s=20)
    assert "data" in str(info.value)  # the log tail names the storage path it could not open
    assert observe_status(home=tmp_path) is None


@pytest.mark.timeout(60)
def test_down_and_status_from_another_process(tmp_path):
    _needs_prometheus()
    state = observe_up(brokers=[], port=_free_port(), home=tmp_path)
    try:
        assert observe_status(home=tmp_path) == state
        assert [r["value"][1] for r in query("1 + 1", home=tmp_path)] == ["2"]  # a scalar answer
        with pytest.raises(ConfigError, match="parse error"):
            query("sum(", url=state.url)
        with pytest.raises(ClusterError, match="running already"):
            observe_up(brokers=[], home=tmp_path)
        code = ("import sys; from kafkabench.observe.prometheus import observe_down, observe_status; "
                "home = sys.argv[1]; print(observe_status(home=home).pid, observe_down(home=home))")
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                              timeout=40)
        assert proc.stdout.split() == [str(state.pid), "True"], proc.stderr
        assert not state.running
        assert observe_status(home=tmp_path) is None
    finally:
        observe_down(home=tmp_path)
    # reaped: no zombie left behind in this process
    assert not psutil.pid_exists(state.pid) or psutil.Process(state.pid).status() != psutil.STATUS_ZOMBIE


# ------------------------------------------------------------------ real: Prometheus + Kafka

def _poll(what: str, fn, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"{what} within {timeout_s:g} s; last answer: {last!r}")


@pytest.mark.timeout(120)
def test_prometheus_scrapes_the_lag_exporter_and_fires_the_lag_alert(bootstrap, tmp_path):
    _needs_prometheus()
    metrics = pytest.importorskip("kafkabench.observe.metrics")
    topic, group = f"observe-{uuid.uuid4().hex[:8]}", f"observe-g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1)
    exporter = None
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
        for _ in range(30):
            producer.produce(topic, b"m", partition=0)
        assert producer.flush(15) == 0
        # A committed offset of 0 and no members: the group lags all 30 messages.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        finally:
            consumer.close()
        exporter = metrics.serve_lag(bootstrap, groups=[group], port=0, host="127.0.0.1")
        # Started without it, added later: add_targets reloads the running server.
        state = observe_up(brokers=[], clients=[], port=_free_port(), home=tmp_path,
                           lag_threshold=10, alert_for_s=0)
        state = add_targets(clients=[exporter.url], home=tmp_path)
        assert state.targets["kafkabench"] == [f"127.0.0.1:{exporter.port}"]

        result = _poll("Prometheus returned no kafka_consumergroup_group_lag",
                       lambda: query(f'kafka_consumergroup_group_lag{{group="{group}"}}', url=state.url))
        assert [(r["metric"]["topic"], r["metric"]["partition"], float(r["value"][1])) for r in result] \
            == [(topic, "0", 30.0)]

        def firing():
            return [a for a in alerts(url=state.url) if a["labels"].get("alertname") == LAG_ALERT
                    and a["labels"].get("group") == group and a["state"] == "firing"]

        alert = _poll(f"{LAG_ALERT} did not fire for {group}", firing)[0]
        assert alert["labels"]["threshold"] == "10"
        assert float(alert["value"]) == 30.0
    finally:
        observe_down(home=tmp_path)
        if exporter is not None:
            exporter.close()
        delete_topics(bootstrap, [topic])
    assert not os.path.exists(tmp_path / observe.STATE_FILE)


def test_queries_lists_every_dashboard_expression_and_alert():
    from kafkabench.observe.prometheus import ALERTS_FILE, DASHBOARD_FILE, _dashboard_exprs, queries

    table = queries()
    board = table[table["source"] == "dashboard"]
    assert list(board["expr"]) == _dashboard_exprs(DASHBOARD_FILE)
    rules = yaml.safe_load(Path(str(ALERTS_FILE)).read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert list(table.loc[table["source"] == "alert", "name"]) == names
    assert "KafkaConsumerLagHigh" in names and (table["expr"].str.len() > 0).all()
