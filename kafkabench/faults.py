"""Fault schedules: kill, stop, pause and restart brokers at set times of a run.

`parse_faults` turns a workload's `faults` list into `Fault`s and refuses a bad schedule
before anything runs. `FaultObserver` carries the schedule out during a run, on a thread of
its own: on the embedded cluster through `LocalCluster`'s node control, on any other cluster
by running the shell command the user gave for the action. Every action is one row of the
`faults` frame, and the run never ends with a node the schedule took down still down.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kafkabench.cluster import LocalCluster, clusters_home
from kafkabench.contract import dtypes
from kafkabench.errors import ClusterError, ConfigError, NoClusterError
from kafkabench.session import RunObserver

if TYPE_CHECKING:
    from kafkabench.results import RunResult
    from kafkabench.session import RunSession

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = ("kill", "stop", "start", "pause", "resume", "restart", "rolling_restart")
KEYS: tuple[str, ...] = ("at_s", "action", "target", "duration_s", "command")
#: The action that undoes each one that may have a `duration_s`.
UNDO: dict[str, str] = {"kill": "start", "stop": "start", "pause": "resume"}
#: The actions after which a node is down or paused, by the action that brings it back.
_TAKES_DOWN = {"start": ("kill", "stop"), "resume": ("pause",)}
TARGETS_HELP = ("a node id (e.g. 2), 'leader' (partition 0 of the run's first topic), "
                "'leader:PARTITION', 'leader:TOPIC:PARTITION', 'controller' or 'any'")
# Kafka topic names: letters, digits, '.', '_' and '-' (so ':' separates the target's parts).
_TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")

# A user's shell command that has not finished by then is reported as failed.
COMMAND_TIMEOUT_S = 120.0
# How long a metadata request of the leader lookup or the ISR wait may take.
METADATA_TIMEOUT_S = 10.0
# An election leaves the quorum without a leader for a moment: look again until then.
CONTROLLER_TIMEOUT_S = 15.0
# At the end of a run: how long an action in progress may take to finish (a node's start
# waits up to LocalCluster.startup_timeout_s, 120 s, for the broker to be in the metadata).
JOIN_TIMEOUT_S = 180.0
QUORUM_STATE = Path("data") / "__cluster_metadata-0" / "quorum-state"

#: The `faults` frame: one row per action carried out (`kafkabench.contract`).
COLUMNS: dict[str, str] = dtypes("faults")


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled action on a broker.

    Attributes:
        at_s: Seconds after the producers start (t = 0 of the run).
        action: kill (SIGKILL), stop (clean shutdown), start, pause (SIGSTOP), resume
            (SIGCONT), restart (clean stop, then start) or rolling_restart (every node in
            turn, waiting for the in-sync replicas to refill).
        target: A node id, or a role resolved when the fault fires: `leader` (partition 0
            of the run's first topic), `leader:PARTITION`, `leader:TOPIC:PARTITION`,
            `controller` (the active KRaft controller) or `any` (a random live node).
            For start and resume, a role means the node an earlier kill/stop (pause) of
            the same target took down. None for rolling_restart.
        duration_s: For kill and stop: start the node again after this long; for pause:
            resume it after this long.
        command: A shell command carrying the action out on a cluster kafkabench did not
            start; `{node}` and `{action}` are replaced by the node id and the action.
    """

    at_s: float
    action: str
    target: int | str | None = None
    duration_s: float | None = None
    command: str | None = None

    @property
    def undo(self) -> str | None:
        """The action run `duration_s` after this one (None: none)."""
        return UNDO.get(self.action) if self.duration_s is not None else None

    @property
    def target_text(self) -> str:
        """The target as the user wrote it ("" for none)."""
        return "" if self.target is None else str(self.target)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed fault target: kind 'node', 'leader', 'controller' or 'any'."""

    kind: str
    node: int | None = None
    topic: str | None = None
    partition: int = 0


def parse_target(target: int | str) -> Target:
    """Parse a fault target (see `Fault.target`).

    Raises:
        ValueError: not a target (the caller names the fault).
    """
    if isinstance(target, int) and not isinstance(target, bool):
        return Target("node", node=target)
    if not isinstance(target, str):
        raise ValueError(target)
    text = target.strip()
    if text.isdigit():
        return Target("node", node=int(text))
    if text in ("controller", "any", "leader"):
        return Target(text)
    parts = text.split(":")
    if parts[0] == "leader" and parts[-1].isdigit():
        if len(parts) == 2:
            return Target("leader", partition=int(parts[1]))
        if len(parts) == 3 and _TOPIC.match(parts[1]):
            return Target("leader", topic=parts[1], partition=int(parts[2]))
    raise ValueError(target)


def parse_faults(items: Iterable[Mapping[str, Any] | Fault] | None, *, run_s: float | None = None,
                 node_ids: Iterable[int] | None = None, external: bool = False,
                 commands: Mapping[str, str] | None = None) -> tuple[Fault, ...]:
    """Validate a fault schedule; pure, no broker.

    Args:
        items: Faults as mappings (keys at_s, action, target, duration_s, command, as in a
            workload YAML) or `Fault`s.
        run_s: The run's length (warm-up + duration): every fault, with its duration, must
            end within it. None: not checked.
        node_ids: The cluster's node ids: a node target must be one. None: not checked.
        external: The cluster is not kafkabench's embedded one: every action needs a shell
            command (the fault's own, or one in `commands`).
        commands: Workload-level shell commands by action (`fault_commands`).

    Returns:
        The faults, in the order given (a fault's index in it is its id in the `faults` frame).

    Raises:
        ConfigError: naming the fault (its index and key) and how to fix it.
    """
    commands = _check_commands(commands)
    nodes = None if node_ids is None else sorted(node_ids)
    if items is None:
        return ()
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ConfigError(f"faults={items!r}: expected a list of faults, each like "
                          "{at_s: 10, action: kill, target: leader, duration_s: 5}")
    faults = tuple(_parse_fault(i, item, run_s, nodes) for i, item in enumerate(items))
    _check_role_undo(faults)
    if external:
        for i, f in enumerate(faults):
            _check_external(i, f, commands)
    return faults


def _check_commands(commands: Mapping[str, str] | None) -> dict[str, str]:
    if commands is None:
        return {}
    if not isinstance(commands, Mapping):
        raise ConfigError(f"fault_commands={commands!r}: expected a mapping of fault actions to "
                          "shell commands, e.g. {kill: 'ssh kafka{node} pkill -9 java'}")
    for action, cmd in commands.items():
        if action not in ACTIONS:
            raise ConfigError(f"fault_commands[{action!r}]: not a fault action; use one of "
                              f"{', '.join(ACTIONS)}")
        if not isinstance(cmd, str) or not cmd.strip():
            raise ConfigError(f"fault_commands[{action!r}]={cmd!r}: expected a shell command "
                              "(a non-empty string; {node} and {action} are replaced)")
    return dict(commands)


def _parse_fault(i: int, item: Mapping[str, Any] | Fault, run_s: float | None,
                 nodes: list[int] | None) -> Fault:
    where = f"faults[{i}]"
    if isinstance(item, Fault):
        item = asdict(item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}={item!r}: expected a mapping like "
                          "{at_s: 10, action: kill, target: leader, duration_s: 5}")
    unknown = [k for k in item if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; a fault has the keys "
                          f"{', '.join(KEYS)}")
    action = item.get("action")
    if action not in ACTIONS:
        raise ConfigError(f"{where}.action={action!r}: not a fault action; use one of "
                          f"{', '.join(ACTIONS)}")
    at_s = _number(where, "at_s", item.get("at_s"), required=True)
    duration_s = _number(where, "duration_s", item.get("duration_s"))
    target = _target(where, action, item.get("target"), nodes)
    if at_s < 0:
        raise ConfigError(f"{where}.at_s={at_s!r}: must be >= 0 (seconds after the producers start)")
    if duration_s is not None:
        if action not in UNDO:
            raise ConfigError(f"{where}.duration_s: only kill, stop (then start) and pause "
                              f"(then resume) take a duration, not {action!r}; remove it")
        if duration_s <= 0:
            raise ConfigError(f"{where}.duration_s={duration_s!r}: must be > 0 seconds")
    end = at_s + (duration_s or 0.0)
    if run_s is not None and end > run_s:
        what = f"at_s={at_s:g}" + (f" + duration_s={duration_s:g}" if duration_s else "")
        raise ConfigError(f"{where}: {what} ends after the run ({run_s:g} s of warm-up and "
                          "duration): schedule it earlier or make the run longer")
    command = item.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ConfigError(f"{where}.command={command!r}: expected a shell command "
                          "(a non-empty string; {node} and {action} are replaced)")
    return Fault(at_s=at_s, action=action, target=target, duration_s=duration_s, command=command)


def _number(where: str, key: str, value: Any, required: bool = False) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{where}.{key}={value!r}: expected a number of seconds")
    return float(value)


def _target(where: str, action: str, target: Any, nodes: list[int] | None) -> int | str | None:
    if action == "rolling_restart":
        if target is not None:
            raise ConfigError(f"{where}.target={target!r}: rolling_restart restarts every node "
                              "in turn and takes no target; remove it")
        return None
    if target is None:
        raise ConfigError(f"{where}: {action} needs a target: {TARGETS_HELP}")
    try:
        parsed = parse_target(target)
    except ValueError:
        raise ConfigError(f"{where}.target={target!r}: not a target; use {TARGETS_HELP}") from None
    if parsed.kind != "node":
        return target.strip()
    if nodes is not None and parsed.node not in nodes:
        raise ConfigError(f"{where}.target={target!r}: the cluster has no node {parsed.node}; "
                          f"its nodes are {nodes}")
    return parsed.node


def _check_role_undo(faults: tuple[Fault, ...]) -> None:
    """A start (resume) on a role target needs an earlier kill/stop (pause) of that target."""
    order = sorted(range(len(faults)), key=lambda i: faults[i].at_s)
    for pos, i in enumerate(order):
        f = faults[i]
        if f.action not in _TAKES_DOWN or not isinstance(f.target, str):
            continue
        earlier = [faults[j] for j in order[:pos]]
        if not any(e.action in _TAKES_DOWN[f.action] and e.target == f.target and e.duration_s is None
                   for e in earlier):
            raise ConfigError(
                f"faults[{i}].target={f.target!r}: {f.action} on a role means the node an earlier "
                f"{' or '.join(_TAKES_DOWN[f.action])} of {f.target!r} (without duration_s) took "
                f"down, and there is none; name a node id, or schedule that fault first")


def _check_external(i: int, f: Fault, commands: Mapping[str, str]) -> None:
    where = f"faults[{i}]"
    if f.target == "controller" and not f.command:
        raise ConfigError(
            f"{where}.target='controller': kafkabench finds the active controller only on its "
            "embedded cluster; on this cluster give the fault its own `command` that acts on "
            "the controller ({node} is replaced by 'controller'), or name the node id")
    for action in filter(None, (f.action, f.undo)):
        if command_for(f, action, commands) is None:
            raise ConfigError(
                f"{where}.command: {action} on a cluster kafkabench did not start needs a shell "
                f"command: add `command: \"...{{node}}...\"` to the fault"
                + (" (with {action}, so it also serves the start/resume after duration_s)"
                   if action != f.action else "")
                + f", or a fault_commands entry for {action!r} to the workload")


def command_for(fault: Fault, action: str, commands: Mapping[str, str]) -> str | None:
    """The shell command for `action` of `fault` (or its undo), or None for node control.

    The fault's own command serves its action, and the undo too when it uses `{action}`;
    otherwise the workload-level command for the action (`restart` for rolling_restart).
    """
    own = fault.command
    if own and (action == fault.action or "{action}" in own or fault.action == "rolling_restart"):
        return own
    if fault.action == "rolling_restart":
        return commands.get("rolling_restart") or commands.get("restart")
    return commands.get(action)


# ---------------------------------------------------------------------------- node control

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
    from kafkabench.admin import admin_client

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


# ---------------------------------------------------------------------------- the observer

@dataclass(order=True, slots=True)
class _Step:
    """One action to carry out at `due_s` (seconds since t = 0)."""

    due_s: float
    seq: int
    index: int = field(compare=False)
    action: str = field(compare=False)
    origin: str = field(compare=False)
    fault: Fault = field(compare=False)
    node: int | None = field(default=None, compare=False)


class FaultObserver(RunObserver):
    """Carries out a fault schedule during a run and records every action.

    On `on_go` a daemon thread starts that runs each fault at its `at_s` (seconds since the
    producers were released), one at a time, without ever blocking the session. `on_end`
    cancels what is not yet due (rows with outcome 'skipped') and restores the cluster:
    every node the schedule paused is resumed and every one it took down is started again
    (rows with origin 'cleanup'). A failed action is a row with outcome 'failed', never an
    exception in the run.

    Example:
        observer = FaultObserver([{"at_s": 5, "action": "kill", "target": "leader",
                                   "duration_s": 10}], bootstrap=bootstrap, topics=[topic])
    """

    def __init__(self, faults: Iterable[Mapping[str, Any] | Fault], *, bootstrap: str,
                 topics: Sequence[str], cluster: LocalCluster | None = None,
                 commands: Mapping[str, str] | None = None, conf: Mapping[str, Any] | None = None,
                 isr_timeout_s: float = 120.0, seed: int = 0):
        """Check the schedule against the cluster; nothing runs until `on_go`.

        Args:
            faults: The schedule (see `parse_faults`).
            bootstrap: The cluster's bootstrap servers.
            topics: The run's topics (roles `leader...` and the rolling restart's ISR wait
                use them); empty: the session plan's topics.
            cluster: The embedded cluster to control; None: the one `bootstrap` belongs to
                (`find_local_cluster`), else the cluster is external and every action runs
                a shell command.
            commands: Shell command by action (`fault_commands`), needed on an external
                cluster; a command given for an action (here or in the fault) is run instead
                of node control on the embedded cluster too.
            conf: Extra client settings (security) for the metadata requests.
            isr_timeout_s: How long a rolling restart waits for the in-sync replicas of the
                run's topics to refill after each node.
            seed: Seeds the choice of the `any` target, so a schedule repeats.

        Raises:
            ConfigError: a bad schedule (see `parse_faults`).
        """
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.cluster = cluster if cluster is not None else find_local_cluster(bootstrap)
        self.commands = _check_commands(commands)
        self.conf = dict(conf or {})
        self.isr_timeout_s = isr_timeout_s
        node_ids = None if self.cluster is None else [n.id for n in self.cluster.nodes]
        self.faults = parse_faults(faults, node_ids=node_ids, external=self.cluster is None,
                                   commands=self.commands)
        self._rng = random.Random(seed)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[_Step] = []
        self._seq = itertools.count()
        self._t0_wall = 0.0
        # Nodes the schedule paused or took down (and the fault that did), for the cleanup.
        self._paused: dict[int, Fault] = {}
        self._down: dict[int, Fault] = {}
        # Role target -> the node its last kill/stop/pause hit (for a later start/resume).
        self._hit: dict[str, int] = {}

    # --- hooks -----------------------------------------------------------------------------

    def on_go(self, session: RunSession) -> None:
        self._t0_wall = session.tally.t0_wall or time.time()
        if not self.topics:
            self.topics = tuple(session.plan.topics)
        for i, f in enumerate(self.faults):
            self._push(_Step(f.at_s, next(self._seq), i, f.action, "schedule", f))
        self._thread = threading.Thread(target=self._run, name="kafkabench-faults", daemon=True)
        self._thread.start()

    def on_end(self, session: RunSession) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("a fault action still runs %g s after the run ended", JOIN_TIMEOUT_S)
        elif not self._t0_wall:
            self._t0_wall = session.tally.t0_wall or time.time()
            for i, f in enumerate(self.faults):
                self._skip(_Step(f.at_s, 0, i, f.action, "schedule", f), "the run ended before it started")
        self._skip_pending()
        self._restore()

    def contribute(self, result: RunResult) -> None:
        frame = self.frame()
        setattr(result, "faults", frame)  # noqa: B010 - a field the runner's RunResult declares
        done = frame[frame["outcome"] != "skipped"]
        result.summary.update(faults=len(done), faults_failed=int((done["outcome"] == "failed").sum()))

    def frame(self) -> pd.DataFrame:
        """The `faults` frame: one row per action, in the order they started (skipped last)."""
        with self._lock:
            rows = list(self._rows)
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        df = df.sort_values(["started_s", "scheduled_s"], kind="stable", na_position="last")
        return df.reset_index(drop=True).astype(COLUMNS)

    def resolve(self, fault: Fault, action: str | None = None) -> int | None:
        """The node a fault acts on now (None: a `controller` on an external cluster).

        Raises:
            ClusterError: the role cannot be resolved (no leader, no live node ...).
        """
        action = action or fault.action
        target = parse_target(fault.target)
        if target.kind == "node":
            return target.node
        if action in _TAKES_DOWN:
            if fault.target not in self._hit:
                raise ClusterError(f"no earlier {' or '.join(_TAKES_DOWN[action])} of "
                                   f"{fault.target!r} succeeded: nothing to {action}")
            return self._hit[fault.target]
        if target.kind == "controller":
            return active_controller(_refresh(self.cluster)) if self.cluster is not None else None
        if target.kind == "any":
            nodes = self._live_nodes()
            if not nodes:
                raise ClusterError("no live node to choose from")
            return self._rng.choice(nodes)
        return self._leader(target.topic, target.partition)

    # --- the thread --------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() - self._t0_wall

    def _push(self, step: _Step) -> None:
        with self._lock:
            heapq.heappush(self._pending, step)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                step = self._pending[0] if self._pending else None
            if step is None:
                return
            if self._stop.wait(max(0.0, step.due_s - self._now())):
                return
            with self._lock:
                heapq.heappop(self._pending)
            try:
                self._carry_out(step)
            except Exception:  # noqa: BLE001 - a bug here must not kill the schedule silently
                log.exception("fault %d (%s) failed unexpectedly", step.index, step.action)

    def _carry_out(self, step: _Step) -> None:
        row = self._row(step)
        node = step.node
        try:
            if step.action == "rolling_restart":
                self._rolling_restart(step)
            else:
                if node is None:
                    node = self.resolve(step.fault, step.action)
                row["node"] = node
                row["command"] = self._act(step.fault, step.action, node)
        except Exception as exc:  # noqa: BLE001 - a failed fault is a row, never a failed run
            self._finish(row, "failed", str(exc))
            return
        self._finish(row, "ok")
        self._book(step, node)

    def _book(self, step: _Step, node: int | None) -> None:
        """Remember what an action that went well left paused or down, and schedule its undo."""
        action, fault = step.action, step.fault
        if node is not None:
            if action in UNDO and isinstance(fault.target, str):
                self._hit[fault.target] = node
            if action == "pause":
                self._paused[node] = fault
            elif action == "resume":
                self._paused.pop(node, None)
            elif action in ("kill", "stop"):
                self._down[node] = fault
                self._paused.pop(node, None)
            elif action == "start":
                self._down.pop(node, None)
        if step.origin == "schedule" and fault.undo:
            self._push(_Step(fault.at_s + fault.duration_s, next(self._seq), step.index,
                             fault.undo, "duration", fault, node))

    def _act(self, fault: Fault, action: str, node: int | None) -> str:
        """Carry out one action on one node; the shell command run ("" for node control)."""
        command = command_for(fault, action, self.commands)
        if command is not None:
            log.info("fault: %s node %s: %s", action, node, command)
            return run_command(command, node=fault.target_text if node is None else node,
                               action=action)
        if self.cluster is None or node is None:
            raise ClusterError(f"no shell command for {action!r} on this cluster (not an "
                               "embedded one): give the fault a `command` or the workload a "
                               f"fault_commands entry for {action!r}")
        log.info("fault: %s node %d", action, node)
        cluster = _refresh(self.cluster)
        if action in ("start", "restart"):
            if action == "restart":
                self._down[node] = fault  # until it is back: the cleanup starts it otherwise
                cluster.stop(node)
            start_node(cluster, node, conf=self.conf)
            self._down.pop(node, None)
        else:
            getattr(cluster, action)(node)
        return ""

    def _rolling_restart(self, step: _Step) -> None:
        nodes = self._node_ids()
        for done, node in enumerate(nodes):
            if self._stop.is_set():
                raise ClusterError(f"the run ended after {done} of {len(nodes)} nodes were restarted")
            row = self._row(step, action="restart", origin="rolling_restart", node=node,
                            scheduled_s=self._now())
            try:
                row["command"] = self._act(step.fault, "restart", node)
                self._wait_replicated()
            except Exception as exc:
                self._finish(row, "failed", str(exc))
                raise ClusterError(f"node {node}: {exc}") from None
            self._finish(row, "ok")

    def _wait_replicated(self) -> None:
        """Wait until no partition of the run's topics is under-replicated (bounded)."""
        if not self.topics:
            return
        from kafkabench.admin import admin_client, describe_topics

        admin = admin_client(self.bootstrap, self.conf)
        deadline = time.monotonic() + self.isr_timeout_s
        under: list[str] = ["(no answer yet)"]
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                found = describe_topics(admin, self.topics, METADATA_TIMEOUT_S)
                under = [f"{t}-{p.partition} (isr {list(p.isr)} of {list(p.replicas)})"
                         for t, parts in found.items() if isinstance(parts, list)
                         for p in parts if len(p.isr) < len(p.replicas) or p.leader < 0]
                under += [f"{t} ({parts.str()})" for t, parts in found.items()
                          if not isinstance(parts, list)]
            except ClusterError as exc:
                under = [f"(metadata: {exc})"]
            if not under:
                return
            self._stop.wait(0.5)
        why = "the run ended" if self._stop.is_set() else f"after {self.isr_timeout_s:g} s"
        raise ClusterError(f"partitions still under-replicated when {why}: {', '.join(under[:5])}")

    # --- resolution ----------------------------------------------------------------------

    def _leader(self, topic: str | None, partition: int) -> int:
        from kafkabench.admin import admin_client, describe_topics

        if topic is None:
            if not self.topics:
                raise ClusterError("the run has no topic: name one as leader:TOPIC:PARTITION")
            topic = self.topics[0]
        admin = admin_client(self.bootstrap, self.conf)
        # Right after a broker died the partition may have no leader for a moment, and a broker
        # may not know a new topic yet: ask again until the deadline.
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            found = describe_topics(admin, [topic], METADATA_TIMEOUT_S)[topic]
            if not isinstance(found, list):
                why = f"cannot find the leader of {topic}-{partition}: {found.str()}"
            elif partition >= len(found):
                raise ClusterError(f"topic {topic!r} has no partition {partition} "
                                   f"(it has {len(found)})")
            elif found[partition].leader < 0:
                why = f"{topic}-{partition} has no leader now"
            else:
                return found[partition].leader
            if time.monotonic() >= deadline:
                raise ClusterError(why)
            time.sleep(0.2)

    def _node_ids(self) -> list[int]:
        if self.cluster is not None:
            return sorted(n.id for n in self.cluster.nodes)
        from kafkabench.admin import admin_client

        try:
            md = admin_client(self.bootstrap, self.conf).list_topics(timeout=METADATA_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - KafkaException: said as a failed fault
            raise ClusterError(f"cannot list the brokers of {self.bootstrap}: {exc}") from None
        return sorted(md.brokers)

    def _live_nodes(self) -> list[int]:
        if self.cluster is None:
            return self._node_ids()
        cluster = _refresh(self.cluster)
        return sorted(n.id for n in cluster.nodes if n.alive and not n.paused)

    # --- rows and cleanup ----------------------------------------------------------------

    def _row(self, step: _Step, **changes: Any) -> dict[str, Any]:
        row = {"fault": step.index, "action": step.action, "origin": step.origin,
               "target": step.fault.target_text, "scheduled_s": step.due_s,
               # A node id target is known before the fault runs (also on a skipped row).
               "node": step.node if step.node is not None or not isinstance(step.fault.target, int)
               else step.fault.target,
               "started_s": self._now(), "ended_s": float("nan"), "outcome": "", "error": "",
               "command": ""}
        row.update(changes)
        return row

    def _finish(self, row: dict[str, Any], outcome: str, error: str = "") -> None:
        row.update(ended_s=self._now(), outcome=outcome, error=error)
        if outcome == "failed":
            log.warning("fault %s (%s) failed: %s", row["fault"], row["action"], error)
        with self._lock:
            self._rows.append(row)

    def _skip(self, step: _Step, why: str) -> None:
        row = self._row(step, started_s=float("nan"))
        row.update(outcome="skipped", error=why)
        with self._lock:
            self._rows.append(row)

    def _skip_pending(self) -> None:
        with self._lock:
            pending, self._pending = sorted(self._pending), []
        for step in pending:
            self._skip(step, "the run ended first")

    def _restore(self) -> None:
        """Resume every node the schedule paused and start every one it took down.

        Only nodes this schedule left paused or down: on a cluster shared with other work, a
        node someone else stopped is theirs. Resumes first: a start waits for the brokers.
        """
        paused, down = sorted(self._paused.items()), sorted(self._down.items())
        if self.cluster is not None:
            cluster = _refresh(self.cluster)
            paused = [(node, f) for node, f in paused if cluster.node(node).paused]
            down = [(node, f) for node, f in down if not cluster.node(node).alive]
        for action, items in (("resume", paused), ("start", down)):
            for node, fault in items:
                self._carry_out(_Step(self._now(), 0, -1, action, "cleanup", fault, node))
