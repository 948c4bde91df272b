"""An embedded Apache Kafka cluster (KRaft) on the local JVM, and bootstrap resolution.

`LocalCluster(brokers=1|3)` runs combined broker+controller nodes on free loopback ports,
each with its own data and log folder. It works as a context manager (stopped on exit) or
detached (`kafkabench cluster up`): a state file lets any later process find it. Each node's
JVM runs the Prometheus JMX exporter agent (when installed, see `kafkabench.install`) on a
loopback port of its own: `Node.metrics_url`, `LocalCluster.metrics_urls()`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psutil

from kafkabench.cluster.install import KafkaDist, install_kafka, kafkabench_home
from kafkabench.core.errors import ClusterError, ConfigError, NoClusterError
from kafkabench.core.log import librdkafka_logger

DEFAULT_NAME = "default"
STATE_FILE = "state.json"
# In each node's folder, flock()ed by the node's JVM for its whole life (see `_lock_node_dir`).
LOCK_FILE = "node.lock"
LOCK_WAIT_S = 5.0
# Startup of a 3-node cluster on 2 shared cores takes ~15 s; 120 s means something is wrong.
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
#: The JMX exporter rules every node's agent reads (package data, copied beside the state file).
JMX_RULES = "jmx-kafka.yml"

log = logging.getLogger(__name__)


# librdkafka logs "connection refused" while brokers start; that is expected, not news.
_QUIET = logging.getLogger("kafkabench.quiet")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

REACHABLE_TIMEOUT_S = 10.0
# "127.0.0.1:9092/bootstrap: Connect to ... failed: Connection refused (after 0ms in state
# CONNECT, 3 identical error(s) suppressed)": the broker prefix and the suffix are noise.
_BROKER_PREFIX = re.compile(r"^\S+/(\d+|bootstrap): ")
_STATE_SUFFIX = re.compile(r"\s*\(after \d+ms in state \w+.*\)\s*$")


_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)  # the parent died already\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def clusters_home() -> Path:
    """Folder holding the named embedded clusters."""
    return kafkabench_home() / "clusters"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _lock_node_dir(node_dir: Path) -> int:
    """Open and flock `node_dir`'s lock file; the fd, which `_launch` hands to the JVM.

    flock() belongs to the open file, not the process: the JVM inherits the fd, so the lock
    lives exactly as long as the broker, also after the CLI that started it exits, and a
    crashed broker leaves no stale lock.

    Raises:
        ClusterError: another process (a running broker) holds the lock.
    """
    node_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(node_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        # A stopped broker no longer counts as a Kafka process (its /proc cmdline is gone)
        # a moment before the kernel closes its files: wait for that, not for a live one.
        if _is_kafka_process(int(holder) if holder.isdigit() else None) or time.monotonic() > deadline:
            os.close(fd)
            raise ClusterError(f"a Kafka broker (pid {holder or 'unknown'}) is running on {node_dir}: "
                               "two brokers on one data folder would wipe and corrupt it. Use that "
                               "cluster, or stop it first (`kafkabench cluster down`)")
        time.sleep(0.1)


def _is_kafka_process(pid: int | None) -> bool:
    """True when `pid` is a live (not zombie) Kafka JVM, so a reused pid is not mistaken."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "kafka.Kafka" in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass(slots=True)
class Node:
    """One combined broker+controller node of a `LocalCluster`."""

    id: int
    port: int
    controller_port: int
    dir: str
    pid: int | None = None
    #: The JMX exporter agent's HTTP port (None: the node runs without the agent).
    metrics_port: int | None = None

    @property
    def metrics_url(self) -> str | None:
        """The node's Prometheus metrics endpoint, or None without the JMX exporter agent."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None

    @property
    def log(self) -> Path:
        """The node's server log (stdout and stderr of the JVM)."""
        return Path(self.dir) / "server.log"

    @property
    def config(self) -> Path:
        """The node's server.properties."""
        return Path(self.dir) / "server.properties"

    @property
    def alive(self) -> bool:
        """True while the node's JVM runs (a paused JVM counts as alive)."""
        return _is_kafka_process(self.pid)

    @property
    def paused(self) -> bool:
        """True when the JVM is stopped by SIGSTOP."""
        try:
            return self.alive and psutil.Process(self.pid).status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What `LocalCluster.status()` reports of one node."""

    id: int
    pid: int | None
    port: int
    controller_port: int
    alive: bool
    paused: bool
    role: str
    metrics_url: str | None = None


class LocalCluster:
    """Apache Kafka in KRaft mode on this machine: 1 node, or 3 for replication and faults.

    Every node is broker and controller; 3 nodes form a 3-voter quorum with default
    replication factor 3 (topics may ask for `min.insync.replicas=2`).

    Example:
        with LocalCluster(brokers=3) as c:
            print(c.bootstrap_servers)
    """

    def __init__(self, brokers: int = 1, *, name: str = DEFAULT_NAME, base_dir: str | Path | None = None,
                 ports: list[int] | None = None, heap: str | None = None,
                 broker_config: dict[str, str] | None = None, kafka: KafkaDist | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Describe a cluster; nothing starts until `start()` or `with`.

        Args:
            brokers: 1 or 3 nodes.
            name: cluster name; its folder is `<kafkabench home>/clusters/<name>`.
            base_dir: folder for state, data and logs instead of the named one.
            ports: fixed client ports, one per node (default: free loopback ports).
            heap: JVM heap per node (default 1g for 1 node, 512m each for 3).
            broker_config: extra server.properties entries for every node.
            kafka: the distribution to run (default: `install_kafka()`).
            startup_timeout_s: how long to wait for every broker to be in the metadata.
        """
        if brokers not in (1, 3):
            raise ClusterError(f"brokers must be 1 or 3, got {brokers!r}")
        if ports is not None and len(ports) != brokers:
            raise ClusterError(f"ports must give one port per broker ({brokers}), got {ports!r}")
        self.brokers = brokers
        self.name = name
        self.base_dir = Path(base_dir) if base_dir else clusters_home() / name
        self.heap = heap or ("1g" if brokers == 1 else "512m")
        self.broker_config = dict(broker_config or {})
        self.startup_timeout_s = startup_timeout_s
        self._fixed_ports = ports
        self._kafka = kafka
        self._procs: dict[int, subprocess.Popen] = {}
        self._owned = False
        self.nodes: list[Node] = []
        self.cluster_id: str | None = None

    # ------------------------------------------------------------------ finding clusters
    @property
    def state_file(self) -> Path:
        """Where a running cluster records its nodes for other processes."""
        return self.base_dir / STATE_FILE

    @classmethod
    def attach(cls, name: str = DEFAULT_NAME, base_dir: str | Path | None = None) -> LocalCluster:
        """The cluster described by a state file, started earlier by any process.

        Raises:
            NoClusterError: no state file.
        """
        cluster = cls(name=name, base_dir=base_dir)
        try:
            state = json.loads(cluster.state_file.read_text())
        except (OSError, ValueError) as exc:
            raise NoClusterError(
                f"no embedded cluster {name!r} is running (no state file at {cluster.state_file}); "
                "run `kafkabench cluster up`") from exc
        cluster.brokers = state["brokers"]
        cluster.heap = state["heap"]
        cluster.cluster_id = state["cluster_id"]
        cluster.broker_config = state.get("broker_config", {})
        cluster.nodes = [Node(**n) for n in state["nodes"]]
        return cluster

    def _save_state(self) -> None:
        state = {"name": self.name, "brokers": self.brokers, "heap": self.heap,
                 "cluster_id": self.cluster_id, "bootstrap_servers": self.bootstrap_servers,
                 "broker_config": self.broker_config, "nodes": [asdict(n) for n in self.nodes]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated host:port of every node's client listener."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def metrics_urls(self) -> dict[int, str]:
        """Each node's Prometheus metrics endpoint (JMX exporter agent) by node id; nodes
        started without the agent are left out."""
        return {n.id: n.metrics_url for n in self.nodes if n.metrics_url}

    @property
    def running(self) -> bool:
        """True when any node's JVM is alive."""
        return any(n.alive for n in self.nodes)

    def node(self, node_id: int) -> Node:
        """Node by id (1-based, as in `kafkabench cluster kill 2`)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ClusterError(f"no node {node_id!r} in cluster {self.name!r}: "
                           f"nodes are {[n.id for n in self.nodes]}")

    # ------------------------------------------------------------------ lifecycle
    def _dist(self) -> KafkaDist:
        if self._kafka is None:
            self._kafka = install_kafka()
        return self._kafka

    def _server_properties(self, node: Node) -> str:
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = self.brokers
        props = {
            "process.roles": "broker,controller",
            "node.id": node.id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(Path(node.dir) / "data"),
            "num.partitions": 1,
            # 50 by default: a fresh cluster's first consumer group waits for all of them.
            "offsets.topic.num.partitions": 10,
            "default.replication.factor": rf,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(rf, 2),
            # A benchmark's consumer group should start at once, not after the 3 s default
            # that waits for more members to join.
            "group.initial.rebalance.delay.ms": 0,
            # KIP-848 groups may lower their session timeout and heartbeat interval (group
            # configs consumer.session.timeout.ms / consumer.heartbeat.interval.ms) to the
            # classic protocol's floor, so the two can be compared at the same settings. The
            # defaults stay Kafka's (45 s, 5 s).
            "group.consumer.min.session.timeout.ms": 6000,
            "group.consumer.min.heartbeat.interval.ms": 1000,
            # Benchmarks write a lot: keep at most 1 GiB or 1 hour per partition on disk.
            "log.retention.bytes": 1 << 30,
            "log.retention.ms": 3_600_000,
            **self.broker_config,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def start(self, node: int | None = None) -> LocalCluster:
        """Start the whole cluster, or restart one stopped node.

        Args:
            node: a node id to restart; None starts every node of a new cluster.

        Returns:
            self, once every broker is in the cluster metadata.

        Raises:
            ClusterError: a port in use, a node that exits, or not ready in time
                (quoting the tail of the node's log).
        """
        if node is not None:
            n = self.node(node)
            if n.alive:
                raise ClusterError(f"node {node} is already running (pid {n.pid})")
            self._launch(n)
            self._save_state()
            self.wait_ready()
            return self
        self._refuse_if_running()
        dist = self._dist()
        if dist.jmx_agent is None:
            log.warning("the brokers run without broker metrics: no Prometheus JMX exporter agent "
                        "(`kafkabench kafka install` fetches it with Maven)")
        locks = self._lock_node_dirs()
        try:
            self._plan_nodes()
            self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            for n in self.nodes:
                Path(n.dir).mkdir(parents=True, exist_ok=True)
                n.config.write_text(self._server_properties(n))
                self._format(dist, n)
            for n in self.nodes:
                self._launch(n, locks.pop(n.dir))
        finally:
            for fd in locks.values():
                os.close(fd)
        self._save_state()
        try:
            self.wait_ready()
        except BaseException:
            self.stop_all()
            raise
        return self

    def _refuse_if_running(self) -> None:
        """Raise ClusterError if this object's or the state file's cluster has a live JVM."""
        live = [n for n in self.nodes if n.alive]
        if not live:
            try:
                live = [n for n in LocalCluster.attach(self.name, self.base_dir).nodes if n.alive]
            except (NoClusterError, KeyError, TypeError):  # none, or an unreadable state file
                live = []
        if live:
            raise ClusterError(
                f"a Kafka cluster is already running in {self.base_dir} (pids "
                f"{', '.join(str(n.pid) for n in live)}, bootstrap "
                f"{','.join(f'127.0.0.1:{n.port}' for n in live)}): use it, or stop it first "
                f"(`kafkabench cluster down --name {self.name}`, or "
                "`LocalCluster.attach(base_dir=...).down()`)")

    def _lock_node_dirs(self) -> dict[str, int]:
        """Lock the folders of the nodes to start and of any other node found in base_dir."""
        dirs = {str(self.base_dir / f"node-{i + 1}") for i in range(self.brokers)}
        if self.base_dir.is_dir():
            dirs |= {str(d) for d in self.base_dir.glob("node-*") if d.is_dir()}
        locks: dict[str, int] = {}
        try:
            for d in sorted(dirs):
                locks[d] = _lock_node_dir(Path(d))
        except BaseException:
            for fd in locks.values():
                os.close(fd)
            raise
        return locks

    def _plan_nodes(self) -> None:
        if self._fixed_ports:
            busy = [p for p in self._fixed_ports if _port_in_use(p)]
            if busy:
                raise ClusterError(f"port {busy[0]} is in use: choose other ports "
                                   "or let kafkabench pick free ones")
            ports = list(self._fixed_ports)
        else:
            ports = [_free_port() for _ in range(self.brokers)]
        self.nodes = [Node(id=i + 1, port=ports[i], controller_port=_free_port(),
                           dir=str(self.base_dir / f"node-{i + 1}")) for i in range(self.brokers)]
        # Stale data from an earlier cluster of the same name would carry another cluster id.
        for n in self.nodes:
            data = Path(n.dir) / "data"
            if data.exists():
                shutil.rmtree(data)

    def _format(self, dist: KafkaDist, n: Node) -> None:
        cmd = dist.java_command("kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",  # may start with "-"
                                "-c", str(n.config), jvm_opts=("-Xmx256m",))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ClusterError(f"formatting node {n.id}'s storage failed:\n"
                               f"{(proc.stdout + proc.stderr).strip()[-2000:]}")

    def _launch(self, n: Node, lock_fd: int | None = None) -> None:
        """Start a node's JVM, which inherits (and so holds) the lock on its folder."""
        dist = self._dist()
        if lock_fd is None:
            lock_fd = _lock_node_dir(Path(n.dir))
        cmd = dist.java_command("kafka.Kafka", str(n.config), heap=self.heap,
                                jvm_opts=("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                                          "-Djava.awt.headless=true", *self._agent_opts(dist, n)))
        if self._owned and threading.current_thread() is threading.main_thread():
            # A cluster owned by a `with` block dies with its process, even one that crashes
            # (PR_SET_PDEATHSIG, kept across exec), so no broker is ever left behind.
            # Only from the main thread: the signal fires when the *thread* that started the
            # child ends, and a node a fault schedule's thread restarted was SIGKILLed when
            # the run ended. Such a node is stopped by `stop_all` (`refresh`) instead.
            cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]
        try:
            with open(n.log, "ab") as log:
                # A new session: a detached cluster outlives the CLI that started it and
                # is not hit by the terminal's Ctrl-C.
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        pass_fds=(lock_fd,))
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, str(proc.pid).encode(), 0)  # names the holder in the error
        finally:
            os.close(lock_fd)
        self._procs[n.id] = proc
        n.pid = proc.pid

    def _agent_opts(self, dist: KafkaDist, n: Node) -> tuple[str, ...]:
        """The `-javaagent` option serving `n`'s metrics, choosing its port on first start.

        A restarted node keeps its port (scrapers and `attach` know it), unless another
        process took it meanwhile: the agent could not bind it and the JVM would not start.
        """
        if dist.jmx_agent is None:
            n.metrics_port = None
            return ()
        if n.metrics_port is None or _port_in_use(n.metrics_port):
            taken = {p for m in self.nodes for p in (m.port, m.controller_port, m.metrics_port)}
            n.metrics_port = next(p for p in iter(_free_port, None) if p not in taken)
        rules = self.base_dir / JMX_RULES
        text = (resources.files("kafkabench") / "jmx" / "kafka.yml").read_text()
        if not rules.exists() or rules.read_text() != text:
            rules.parent.mkdir(parents=True, exist_ok=True)
            rules.write_text(text)
        # Loopback only: the endpoint has no authentication.
        return (f"-javaagent:{dist.jmx_agent}=127.0.0.1:{n.metrics_port}:{rules}",)

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every live node is a broker in the cluster metadata and consumer groups
        can be served (`__consumer_offsets` exists, every partition with a leader).

        Raises:
            ClusterError: a node's JVM exited, or the deadline passed.
        """
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + (timeout_s or self.startup_timeout_s)
        expected = {n.id for n in self.nodes if self._running(n)}
        quiet = {"bootstrap.servers": self.bootstrap_servers, "log_level": 0, "logger": _QUIET,
                 "allow.auto.create.topics": False}
        admin = AdminClient(quiet)
        probe = None
        seen: set[int] = set()
        try:
            while time.monotonic() < deadline:
                for n in self.nodes:
                    if n.id in expected and not self._running(n):
                        raise ClusterError(f"Kafka node {n.id} exited during startup; "
                                           f"last lines of {n.log}:\n{_tail(n.log)}")
                try:
                    md = admin.list_topics(timeout=2)
                    seen = set(md.brokers)
                    if expected <= seen:
                        # A group member's FindCoordinator makes the brokers create
                        # __consumer_offsets; no Admin API group request (see
                        # `_group_coordinator_ready`).
                        probe = probe or _coordinator_probe(Consumer, quiet)
                        probe.poll(0.2)
                        if _group_coordinator_ready(admin):
                            return
                except ClusterError:
                    raise
                except Exception:  # noqa: BLE001 - not up yet; retry until the deadline
                    pass
                time.sleep(0.25)
        finally:
            if probe is not None:
                probe.close()
        worst = next((n for n in self.nodes if n.id in expected - seen), self.nodes[0])
        raise ClusterError(f"cluster not ready after {timeout_s or self.startup_timeout_s:.0f} s: "
                           f"brokers {sorted(seen)} of {sorted(expected)} in the metadata; "
                           f"last lines of {worst.log}:\n{_tail(worst.log)}")

    # ------------------------------------------------------------------ node control
    def _running(self, n: Node) -> bool:
        """Whether a node's JVM runs: by its process when this object launched it, else `alive`.

        `alive` reads the command line in /proc, which is empty for a moment while an owned
        node's launcher execs into java: polled then, a starting node looked exited.
        """
        proc = self._procs.get(n.id)
        if proc is not None and proc.pid == n.pid:
            return proc.poll() is None
        return n.alive

    def _signal(self, node: int, sig: int) -> Node:
        n = self.node(node)
        if not n.alive:
            raise ClusterError(f"node {node} is not running")
        os.kill(n.pid, sig)
        return n

    def _reap(self, n: Node, timeout_s: float) -> bool:
        """Wait for a node's JVM to exit; True when it did."""
        proc = self._procs.get(n.id)
        if proc is not None and proc.pid != n.pid:
            proc = None  # restarted by another process since: not this object's child
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return True
            if not n.alive:
                return True
            time.sleep(0.1)
        return False

    def stop(self, node: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Clean shutdown of one node: SIGTERM, then SIGKILL after `timeout_s`."""
        n = self._signal(node, signal.SIGCONT)  # a paused JVM cannot handle SIGTERM
        os.kill(n.pid, signal.SIGTERM)
        if not self._reap(n, timeout_s):
            os.kill(n.pid, signal.SIGKILL)
            self._reap(n, 10)

    def kill(self, node: int) -> None:
        """Hard failure of one node: SIGKILL, no clean shutdown."""
        n = self._signal(node, signal.SIGKILL)
        self._reap(n, 10)

    def pause(self, node: int) -> None:
        """Freeze one node (SIGSTOP): it keeps its sockets but answers nothing."""
        self._signal(node, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        """Unfreeze a paused node (SIGCONT)."""
        self._signal(node, signal.SIGCONT)

    def refresh(self) -> LocalCluster:
        """Take the nodes' pids from the state file: another process (a fault schedule run in
        a child process) may have restarted a node since this object started it."""
        try:
            state = json.loads(self.state_file.read_text())
            pids = {n["id"]: n["pid"] for n in state["nodes"]}
        except (OSError, ValueError, KeyError, TypeError):
            return self
        for n in self.nodes:
            n.pid = pids.get(n.id, n.pid)
        return self

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every node: SIGTERM to all at once, SIGKILL to any left after `timeout_s`.
        Nodes another process restarted are stopped too (`refresh`)."""
        self.refresh()
        live = [n for n in self.nodes if self._running(n)]
        for n in live:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(n.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s
        for n in live:
            if not self._reap(n, max(0.0, deadline - time.monotonic())):
                try:
                    os.kill(n.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._reap(n, 10)

    def down(self, purge: bool = False) -> None:
        """Stop the cluster and forget it; with `purge`, delete its data and logs too."""
        self.stop_all()
        self.state_file.unlink(missing_ok=True)
        if purge:
            for n in self.nodes:
                shutil.rmtree(n.dir, ignore_errors=True)

    def status(self) -> list[NodeStatus]:
        """Each node: id, pid, ports, alive, paused, role and metrics URL."""
        return [NodeStatus(id=n.id, pid=n.pid, port=n.port, controller_port=n.controller_port,
                           alive=n.alive, paused=n.paused, role="broker,controller",
                           metrics_url=n.metrics_url)
                for n in self.nodes]

    def __enter__(self) -> LocalCluster:
        self._owned = True
        return self.start()

    def __exit__(self, *exc) -> None:
        self.down(purge=False)

    def __repr__(self) -> str:
        return f"LocalCluster(brokers={self.brokers}, name={self.name!r}, bootstrap={self.bootstrap_servers!r})"


OFFSETS_TOPIC = "__consumer_offsets"


def _coordinator_probe(consumer_cls: Any, conf: Mapping[str, Any]) -> Any:
    """A consumer subscribed to a topic that does not exist: it never gets an assignment (so
    never sends OffsetFetch), but its group looks for a coordinator."""
    probe = consumer_cls({**conf, "group.id": "kafkabench-readiness-probe",
                          "allow.auto.create.topics": False, "enable.auto.commit": False})
    probe.subscribe(["kafkabench-readiness-probe"])
    return probe


def _group_coordinator_ready(admin) -> bool:
    """True once consumer groups can be served: `__consumer_offsets` exists and every one of
    its partitions has a leader (Metadata only).

    Not DescribeGroups or OffsetFetch through the Admin API: librdkafka 2.16 aborts the
    process when such a request's connection drops (`rd_kafka_enq_once_del_source_return`
    assertion; it did while a 3-broker cluster was starting on a loaded machine), and an
    OffsetFetch before the topic exists crashed the client.
    """
    md = admin.list_topics(topic=OFFSETS_TOPIC, timeout=2).topics.get(OFFSETS_TOPIC)
    return bool(md is not None and md.error is None and md.partitions
                and all(p.leader >= 0 for p in md.partitions.values()))


def resolve_bootstrap(explicit: str | None = None, *, name: str = DEFAULT_NAME) -> str:
    """The bootstrap servers every kafkabench feature connects to.

    Args:
        explicit: bootstrap servers given by the caller (wins when set).
        name: the embedded cluster to look for.

    Returns:
        `explicit`, else `$KAFKABENCH_BOOTSTRAP`, else the running embedded cluster's.

    Raises:
        NoClusterError: none of them is available.
    """
    if explicit:
        return explicit
    if env := os.environ.get("KAFKABENCH_BOOTSTRAP"):
        return env
    try:
        cluster = LocalCluster.attach(name)
    except NoClusterError:
        cluster = None
    if cluster is not None and cluster.running:
        return cluster.bootstrap_servers
    raise NoClusterError("no cluster: run `kafkabench cluster up` or pass --bootstrap "
                         "(or set KAFKABENCH_BOOTSTRAP)")


def _connection_error(errors: list, fallback: str) -> str:
    """The most telling of the errors a client reported, without broker prefix and state."""
    from confluent_kafka import KafkaError

    text = fallback
    for err in errors:
        if err.code() != KafkaError._ALL_BROKERS_DOWN:  # "1/1 brokers are down" says nothing new
            text = err.str()
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", text)) or fallback


def check_reachable(bootstrap: str, conf: Mapping[str, Any] | None = None,
                    timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Fail with one clear message when no broker of `bootstrap` answers within `timeout_s`.

    Every command calls it before it creates a topic or a client, so a dead or mistyped
    cluster is one line naming the bootstrap servers and librdkafka's reason, not minutes of
    librdkafka log lines (those go to the `kafkabench.librdkafka` logger: `kafkabench -v`).

    Args:
        bootstrap: bootstrap servers, "host:port[,host:port...]".
        conf: extra client settings (security: `security.protocol`, `sasl.*`, `ssl.*`).
        timeout_s: how long to wait for the cluster's metadata.

    Raises:
        ClusterError: no metadata within `timeout_s`, quoting the last connection error.
        ConfigError: `conf` holds a setting librdkafka rejects.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list = []
    try:
        admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap,
                             "logger": librdkafka_logger(), "error_cb": errors.append})
    except (KafkaException, TypeError, ValueError) as exc:
        raise ConfigError(f"client settings for {bootstrap!r} rejected: {exc}") from exc
    try:
        admin.list_topics(timeout=timeout_s)
        return
    except KafkaException as exc:
        failure = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
    finally:
        admin.poll(0)  # hands the queued log lines to the logger and errors to error_cb
    reason = _connection_error(errors, failure)
    raise ClusterError(
        f"cannot reach Kafka at {bootstrap!r} within {timeout_s:g} s: {reason}. "
        "Is the cluster up (`kafkabench cluster status`)? For another cluster, check "
        "--bootstrap (or KAFKABENCH_BOOTSTRAP) and the profile's security settings; "
        "`kafkabench -v ...` shows librdkafka's log")
