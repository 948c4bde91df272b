"""Java and Kafka distribution checks: clear errors for a bad KAFKA_HOME or an old Java."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from conftest import explain, run_child
from kafkabench.cluster.install import JMX_AGENT_JAR, find_java, install_jmx_agent, install_kafka, java_major
from kafkabench.core.errors import InstallError


@pytest.mark.parametrize("text, major", [("17.0.15", 17), ("1.8.0_392", 8), ("21", 21),
                                          ("11.0.2+9", 11)])
def test_java_major(text, major):
    assert java_major(text) == major


def _fake_java(tmp_path, version: str):
    java = tmp_path / "java"
    java.write_text(f'#!/bin/sh\necho \'openjdk version "{version}" 2019-01-15\' >&2\n')
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def test_old_java_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", f"{_fake_java(tmp_path, '11.0.2')}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(InstallError, match=r"needs Java 17\+.*Java 11.0.2"):
        find_java()


def test_old_java_cli_message_and_exit_code(tmp_path):
    env = {**os.environ, "PATH": f"{_fake_java(tmp_path, '1.8.0_392')}{os.pathsep}{os.environ['PATH']}"}
    env.pop("JAVA_HOME", None)
    result = run_child([sys.executable, "-m", "kafkabench.cli", "kafka", "install"], env=env,
                       timeout=60)
    assert result.returncode == 2, explain(result)
    assert "Java 17+" in result.stderr and "1.8.0_392" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_no_java_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InstallError, match="none was found"):
        find_java()


def test_kafka_home_pointing_at_nothing(tmp_path, monkeypatch):
    missing = tmp_path / "no-kafka-here"
    monkeypatch.setenv("KAFKA_HOME", str(missing))
    with pytest.raises(InstallError, match="KAFKA_HOME=.*no-kafka-here.*not an unpacked Apache Kafka"):
        install_kafka()


def test_installed_distribution_has_broker_and_tools():
    dist = install_kafka()
    names = {p.name for p in dist.libs.glob("*.jar")}
    assert any(n.startswith("kafka_2.13-") for n in names)
    assert any(n.startswith("kafka-tools-") for n in names)
    proc = run_child(dist.java_command("org.apache.kafka.tools.ProducerPerformance", "--help"),
                     timeout=60)
    assert "--num-records" in proc.stdout + proc.stderr, explain(proc)


def test_an_install_without_the_metrics_agent_gets_it_and_keeps_its_kafka(tmp_path, monkeypatch):
    real = install_kafka(quiet=True)
    home = tmp_path / "home"
    (home / "kafka" / real.version).mkdir(parents=True)
    (home / "kafka" / real.version / "libs").symlink_to(real.libs)  # installed before the agent
    monkeypatch.setenv("KAFKABENCH_HOME", str(home))
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    dist = install_kafka(quiet=True)
    assert dist.libs == home / "kafka" / real.version / "libs" and dist.libs.is_symlink()
    assert dist.jmx_agent == home / "kafka" / real.version / "agent" / JMX_AGENT_JAR
    assert dist.jmx_agent.is_file() and not any(dist.libs.glob("jmx_prometheus*"))


def test_a_failed_agent_fetch_is_a_warning_remembered_for_a_while(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn
    folder = tmp_path / "agent"
    with caplog.at_level(logging.DEBUG, logger="kafkabench.cluster.install"):
        assert install_jmx_agent(folder, quiet=True) is None
        assert "without broker metrics" in caplog.text and "mvn" in caplog.text
        caplog.clear()
        assert install_jmx_agent(folder, quiet=True) is None  # not tried again at once
        assert "without broker metrics" not in caplog.text
        assert install_jmx_agent(folder, quiet=True, retry=True) is None
        assert "without broker metrics" in caplog.text
