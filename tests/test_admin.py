"""Topic administration against a cluster that is not there: a KafkabenchError, no log spam."""

from __future__ import annotations

import socket

import pytest

from kafkabench.admin import describe_topic, list_topics
from kafkabench.errors import ClusterError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_a_cluster_error_without_librdkafka_on_stderr(capfd):
    dead = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError, match=f"cannot list topics at {dead}"):
        list_topics(dead, timeout_s=1.5)
    with pytest.raises(ClusterError, match=f"cannot describe topic 'x' at {dead}"):
        describe_topic(dead, "x", timeout_s=1.5)
    # librdkafka prints "Connection refused" lines to stderr itself unless given a logger.
    assert "[thrd:" not in capfd.readouterr().err

