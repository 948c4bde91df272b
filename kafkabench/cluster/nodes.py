"""Node control for fault schedules: which embedded cluster a bootstrap string names
(`find_local_cluster`), the KRaft active controller from the nodes' quorum-state files
(`active_controller`), starting a stopped node and waiting until it serves (`start_node`), and
the user's own shell commands for clusters kafkabench did not start (`run_command`).

May import: `kafkabench.core`, `kafkabench.cluster.local`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkabench.cluster.local import LocalCluster, clusters_home
from kafkabench.core.errors import ClusterError, NoClusterError

if TYPE_CHECKING:
    pass


# A user's shell command that has not finished by then is reported as failed.
COMMAND_TIMEOUT_S = 120.0


# An election leaves the quorum without a leader for a moment: look again until then.
CONTROLLER_TIMEOUT_S = 15.0


QUORUM_STATE = Path("data") / "__cluster_metadata-0" / "quorum-state"


def find_local_cluster(bootstrap: str | LocalCluster) -> LocalCluster | None:
    """The running embedded cluster whose bootstrap servers these are, or None.

    Args:
        bootstrap: Bootstrap servers (any of the cluster's), or a `LocalCluster` (returned).
    """
    if isinstance(bootstrap, LocalCluster):
        return bootstrap
    wanted = _addresses(bootstrap)
    if not wanted:
        return None
    home = clusters_home()
    for state in sorted(home.glob("*/state.json")) if home.is_dir() else ():
        try:
            cluster = LocalCluster.attach(state.parent.name)
        except (NoClusterError, KeyError, TypeError, ValueError):
            continue  # an unreadable or foreign state file
        if wanted <= _addresses(cluster.bootstrap_servers) and cluster.running:
            return cluster
    return None


def _addresses(bootstrap: str) -> set[str]:
    out = set()
    for part in filter(None, (p.strip() for p in bootstrap.split(","))):
        part = part.split("://")[-1]
        host, _, port = part.rpartition(":")
        out.add(f"{'127.0.0.1' if host in ('localhost', '::1', '[::1]') else host}:{port}")
    return out


def active_controller(cluster: LocalCluster, timeout_s: float = CONTROLLER_TIMEOUT_S) -> int:
    """The node id of the embedded cluster's active KRaft controller (the quorum leader).

    Read from each node's `quorum-state` file, the one with the highest leader epoch, not
    from the Admin API: in KRaft, DescribeCluster names a random broker as "controller".

    Raises:
        ClusterError: no node knows a leader within `timeout_s` (an election that does not end).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        states = []
        for n in cluster.nodes:
            try:
                states.append(json.loads((Path(n.dir) / QUORUM_STATE).read_text()))
            except (OSError, ValueError):
                continue  # not written yet, or written right now: the others tell
        if states:
            latest = max(states, key=lambda s: s.get("leaderEpoch", -1))
            leader = latest.get("leaderId", -1)
            if isinstance(leader, int) and leader >= 0:
                return leader
        if time.monotonic() >= deadline:
            raise ClusterError(f"no active controller in cluster {cluster.name!r} within "
                               f"{timeout_s:g} s: the quorum has no leader (are most nodes down?)")
        time.sleep(0.2)


def run_command(template: str, *, node: int | str, action: str,
                timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run a user's shell command with `{node}` and `{action}` replaced.

    Returns:
        The command as run.

    Raises:
        ClusterError: it exited non-zero or ran longer than `timeout_s`, quoting its output.
    """
    # str.replace, not str.format: shell commands have braces of their own (${VAR}, awk).
    cmd = template.replace("{node}", str(node)).replace("{action}", action)
    try:
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"`{cmd}` still ran after {timeout_s:g} s: {_output(exc.stdout, exc.stderr)}") from None
    if proc.returncode != 0:
        raise ClusterError(f"`{cmd}` exited with status {proc.returncode}: "
                           f"{_output(proc.stdout, proc.stderr)}")
    return cmd


def _output(stdout: str | bytes | None, stderr: str | bytes | None, limit: int = 2000) -> str:
    text = "\n".join(s.decode(errors="replace") if isinstance(s, bytes) else s
                     for s in (stdout, stderr) if s).strip()
    return (text[-limit:] if text else "(no output)")


def start_node(cluster: LocalCluster, node: int, *, conf: Mapping[str, Any] | None = None,
               timeout_s: float | None = None) -> None:
    """Start one stopped node of the embedded cluster and wait until it is a broker again.

    Not `LocalCluster.start(node)`: its readiness check asks for a group coordinator, and an
    AdminClient with that request pending while a broker is paused or dies aborted the
    process in librdkafka (`rd_kafka_enq_once_del_source_return`) in a fault run. Here
    readiness is the node itself answering a Metadata request on its own listener: the
    cluster's metadata still lists a killed broker until its session times out (~9 s).

    Raises:
        ClusterError: the node runs already, its JVM exits, or it is not in the metadata
            within `timeout_s` (default: the cluster's startup timeout), quoting its log.
    """
    from kafkabench.cluster.admin import admin_client

    n = cluster.node(node)
    if n.alive:
        raise ClusterError(f"node {node} is already running (pid {n.pid})")
    # LocalCluster.start(node) minus its group-coordinator probe (see above).
    cluster._launch(n)
    cluster._save_state()
    admin = admin_client(f"127.0.0.1:{n.port}", conf)
    timeout_s = timeout_s or cluster.startup_timeout_s
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not cluster._running(n):  # also right while an owned node's launcher execs java
            raise ClusterError(f"Kafka node {node} exited while starting; last lines of "
                               f"{n.log}:\n{_output(_tail_text(n.log), None)}")
        try:
            # Any answer comes from this node: the client knows no other broker until it does.
            if node in admin.list_topics(timeout=2).brokers:
                return
        except Exception:  # noqa: BLE001 - KafkaException: not up yet, ask again
            pass
        time.sleep(0.25)
    raise ClusterError(f"node {node} was not a broker in the metadata {timeout_s:g} s after it "
                       f"started; last lines of {n.log}:\n{_output(_tail_text(n.log), None)}")


def _tail_text(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _refresh(cluster: LocalCluster) -> LocalCluster:
    """Take the nodes' current pids from the state file: another process may have restarted one."""
    try:
        pids = {n.id: n.pid for n in LocalCluster.attach(cluster.name, cluster.base_dir).nodes}
    except (NoClusterError, KeyError, TypeError, ValueError):
        return cluster
    for n in cluster.nodes:
        n.pid = pids.get(n.id, n.pid)
    return cluster


