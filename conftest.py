"""Session-wide embedded Kafka clusters for tests and notebook (nbval) runs.

Clusters start on first use and stop when the session ends. Set KAFKABENCH_TEST_BOOTSTRAP
to run the broker tests against an external cluster instead (3-broker tests then skip).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from kafkabench.cluster import LocalCluster

_clusters: dict[int, LocalCluster] = {}
# `with`-owned clusters: their brokers die with this process even if it crashes.
_stack = ExitStack()
_root = Path(tempfile.mkdtemp(prefix="kafkabench-test-"))


def embedded_cluster(brokers: int) -> LocalCluster:
    """The session's embedded cluster of `brokers` nodes, started on first use."""
    if brokers not in _clusters:
        cluster = LocalCluster(brokers=brokers, base_dir=_root / f"cluster{brokers}")
        _clusters[brokers] = _stack.enter_context(cluster)
    return _clusters[brokers]


def _external() -> str | None:
    return os.environ.get("KAFKABENCH_TEST_BOOTSTRAP")


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """Bootstrap servers of a 1-broker cluster (or the external test cluster)."""
    return _external() or embedded_cluster(1).bootstrap_servers


@pytest.fixture(scope="session")
def cluster3() -> LocalCluster:
    """The 3-broker embedded cluster, for replication and fault tests."""
    if _external():
        pytest.skip("3-broker fault tests need the embedded cluster")
    return embedded_cluster(3)


def pytest_collection_modifyitems(session, config, items) -> None:
    # Notebooks find their cluster through KAFKABENCH_BOOTSTRAP, which nbval's kernels
    # inherit when they start, after collection.
    if any(item.path.suffix == ".ipynb" for item in items):
        os.environ["KAFKABENCH_BOOTSTRAP"] = _external() or embedded_cluster(1).bootstrap_servers
        os.environ.setdefault("KAFKABENCH_CI", "1")


def pytest_sessionfinish(session, exitstatus) -> None:
    _stack.close()
    _clusters.clear()
