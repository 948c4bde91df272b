"""Session-wide embedded Kafka clusters for tests and notebook (nbval) runs.

Clusters start on first use and stop when the session ends. Set KAFKABENCH_TEST_BOOTSTRAP
to run the broker tests against an external cluster instead (3-broker tests then skip).

`run_child` and `explain` are for tests that run a child process: every assertion about a
child shows what it printed (`from conftest import explain, run_child`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack

import pytest

from kafkabench.cluster.local import LocalCluster

_clusters: dict[int, LocalCluster] = {}
# `with`-owned clusters: their brokers die with this process even if it crashes.
_stack = ExitStack()


# Characters of a child's stdout and of its stderr that `explain` shows (the end of each).
EXPLAIN_CHARS = 6000


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    output = (output or "").rstrip()
    if len(output) > EXPLAIN_CHARS:
        output = f"[... {len(output) - EXPLAIN_CHARS} characters cut ...]\n" + output[-EXPLAIN_CHARS:]
    return output or "(nothing)"


def ctrl_c_works() -> None:
    """A child's `preexec_fn`: Ctrl-C (SIGINT) handled by default, as in a terminal.

    A test suite started in the background by a non-interactive shell (`make test &`)
    inherits SIGINT ignored, and so would every child: Python then installs no
    KeyboardInterrupt handler, and a test sending Ctrl-C would see it ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def explain(proc: subprocess.CompletedProcess | subprocess.TimeoutExpired) -> str:
    """A child's command, exit status, stdout and stderr, for an assertion message.

    Args:
        proc: what `run_child` (or `subprocess.run(..., capture_output=True)`) returned, or
            the `TimeoutExpired` it raised.
    """
    args = proc.args if isinstance(proc, subprocess.CompletedProcess) else proc.cmd
    args = args if isinstance(args, str) else " ".join(str(a) for a in args)
    status = (f"exit status {proc.returncode}" if isinstance(proc, subprocess.CompletedProcess)
              else f"killed after its {proc.timeout:g} s timeout")
    return (f"child `{args[:300]}`: {status}\n"
            f"--- stdout ---\n{_text(proc.stdout)}\n--- stderr ---\n{_text(proc.stderr)}")


def run_child(args: Sequence[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process to its end, capturing its output as text.

    Args:
        args: the command.
        timeout: seconds; a child still running then is killed and the test fails, showing
            what it printed so far.
        **kwargs: more `subprocess.run` arguments (env, cwd, input).

    Returns:
        The CompletedProcess; assert on it with `explain(proc)` as the message.
    """
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(explain(exc), pytrace=False)


def embedded_cluster(brokers: int) -> LocalCluster:
    """The session's embedded cluster of `brokers` nodes, started on first use.

    A named cluster, as `kafkabench cluster up --name` makes, so that what finds a user's
    embedded cluster by its bootstrap servers (a fault schedule, `scenario run
    --bootstrap-server`) finds it too; its folder is deleted when the session ends.
    """
    if brokers not in _clusters:
        cluster = LocalCluster(brokers=brokers, name=f"pytest-{os.getpid()}-{brokers}")
        _stack.callback(shutil.rmtree, cluster.base_dir, True)
        _clusters[brokers] = _stack.enter_context(cluster)
    return _clusters[brokers]


def _external() -> str | None:
    return os.environ.get("KAFKABENCH_TEST_BOOTSTRAP")


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """Bootstrap servers of a 1-broker cluster (or the external test cluster)."""
    return _external() or embedded_cluster(1).bootstrap_servers


@pytest.fixture
def cluster3() -> LocalCluster:
    """The 3-broker embedded cluster, for replication and fault tests, every node running:
    a node an earlier fault test left down or paused is started or resumed first, so one
    failed fault test does not fail every later one."""
    if _external():
        pytest.skip("3-broker fault tests need the embedded cluster")
    shared = os.environ.get("KAFKABENCH_TEST_CLUSTER3")
    # A running 3-broker cluster started with `kafkabench cluster up --brokers 3 --name N`
    # (development: saves starting one per test session).
    cluster = LocalCluster.attach(shared) if shared else embedded_cluster(3)
    _every_node_running(cluster)
    return cluster


def _every_node_running(cluster: LocalCluster) -> None:
    from kafkabench.cluster.nodes import start_node

    cluster.refresh()
    for n in cluster.nodes:
        if n.alive and n.paused:
            cluster.resume(n.id)
        elif not n.alive:
            start_node(cluster, n.id)


def pytest_collection_modifyitems(session, config, items) -> None:
    # Notebooks find their cluster through KAFKABENCH_BOOTSTRAP, which nbval's kernels
    # inherit when they start, after collection.
    if any(item.path.suffix == ".ipynb" for item in items):
        os.environ["KAFKABENCH_BOOTSTRAP"] = _external() or embedded_cluster(1).bootstrap_servers
        os.environ.setdefault("KAFKABENCH_CI", "1")


def pytest_sessionfinish(session, exitstatus) -> None:
    _stack.close()
    _clusters.clear()
