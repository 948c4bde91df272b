"""environment.yml in step with pyproject.toml; the docker compose file consistent with itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import kafkabench

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_reqs = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    assert pip_reqs == _pyproject_requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"python{project['requires-python']}" in conda
    assert "openjdk>=17" in conda and "maven" in conda


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())


def _env(service: dict) -> dict:
    return {k: str(v) for k, v in service["environment"].items()}


def test_compose_uses_pinned_kafka_version():
    brokers = {k: v for k, v in _compose()["services"].items() if k.startswith("kafka-") and
               k != "kafka-ui"}
    assert len(brokers) == 3
    for svc in brokers.values():
        assert svc["image"] == f"apache/kafka:{kafkabench.KAFKA_VERSION}"


def test_compose_listeners_ports_and_quorum_are_consistent():
    services = _compose()["services"]
    brokers = {k: v for k, v in services.items() if re.fullmatch(r"kafka-\d", k)}
    node_ids = set()
    voters = None
    for name, svc in brokers.items():
        env = _env(svc)
        node_ids.add(int(env["KAFKA_NODE_ID"]))
        listeners = dict(re.match(r"(\w+)://([^:]*):(\d+)", x).group(1, 3)
                         for x in env["KAFKA_LISTENERS"].split(","))
        advertised = {m.group(1): (m.group(2), m.group(3)) for m in
                      (re.match(r"(\w+)://([^:]*):(\d+)", x) for x in
                       env["KAFKA_ADVERTISED_LISTENERS"].split(","))}
        protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert set(listeners) <= set(protocols)
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
        # The host reaches the EXTERNAL listener: published on the same port it advertises.
        host, port = advertised["EXTERNAL"]
        assert host == "localhost" and port == listeners["EXTERNAL"]
        assert f"{port}:{port}" in svc["ports"]
        assert advertised["INTERNAL"][0] == svc["hostname"] == name
        voters = voters or env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert f"{env['KAFKA_NODE_ID']}@{name}:{listeners['CONTROLLER']}" in voters.split(",")
    assert node_ids == {1, 2, 3}
    ui = _env(services["kafka-ui"])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    assert sorted(ui.split(",")) == sorted(f"{n}:9092" for n in brokers)


def test_compose_cluster_id_is_a_kafka_uuid():
    import base64

    env = _env(_compose()["services"]["kafka-1"])
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
