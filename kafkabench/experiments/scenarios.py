"""Named fault scenarios: a verified workload, a fault schedule and what must hold afterwards.

Each `Scenario` is the load (RF 3, `min.insync.replicas` 2, a fixed rate, one consumer
group, delivery verification on), the client settings under test (acks, idempotence), a
fault schedule and the expected figures, after Kafka's own system tests (ducktape
`replication_test`: clean and hard bounces of the leader, nothing acknowledged lost).
`run_scenario` runs one on a healthy 3-broker cluster and returns one flat row with the
delivery counts, the recovery figures and whether every expectation held; `run_scenarios`
runs several on one cluster. Fault times are written for the full-size run (`full_s`) and
scale with the run's length, so a CI-sized run (`ci_s`) has the same shape.
"""

from __future__ import annotations

import contextlib
import math
import operator
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.spec.faults import parse_faults
from kafkabench.spec.profile import ClientProfile, FrozenDict, load_profile
from kafkabench.spec.workload import load_workload

if TYPE_CHECKING:
    from kafkabench.cluster.local import LocalCluster
    from kafkabench.run.result import RunResult

SIZES = ("full", "ci")
# Shorter runs leave no time before a fault and for the recovery after it.
MIN_SECONDS = 10.0
# How long `run_scenario` waits for every node to be up, unpaused and in the metadata.
HEALTHY_TIMEOUT_S = 120.0
# How long the consumer groups and the verifier may take to catch up after a fault.
DRAIN_TIMEOUT_S = 60.0
# Delivery errors that mean "not enough replicas in sync" or a timeout waiting for them.
ISR_ERROR_CODES = ("NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "_MSG_TIMED_OUT",
                   "REQUEST_TIMED_OUT", "_TIMED_OUT")
#: Expected of every scenario: messages were acknowledged, the read-back saw every partition
#: to its end, and every fault of the schedule was carried out (a scenario whose fault did not
#: happen, or that acknowledged nothing, proved nothing).
BASE_EXPECT: dict[str, Any] = {"verify_acked": ">0", "verify_complete": True, "faults_failed": 0,
                               "faults_skipped": 0}
#: The columns of a scenario row (`ScenarioResult.row`), in order.
ROW_COLUMNS = ("scenario", "seconds", "acked", "lost", "duplicated", "reordered",
               "failed_but_present", "failed", "outage_s", "recovery_s", "first_ack_s",
               "publish_latency_ms_max", "e2e_latency_ms_p99", "leader_changes",
               "under_replicated_max", "errors", "passed", "failed_checks")
# Row column -> summary key, where they differ.
_ROW_KEYS = {"acked": "verify_acked", "lost": "verify_lost", "duplicated": "verify_duplicated",
             "reordered": "verify_reordered", "failed_but_present": "verify_failed_but_present"}
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq,
    ">": operator.gt, "<": operator.lt}

ACKS_ALL = {"acks": "all", "enable.idempotence": True}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fault scenario.

    Attributes:
        name: Its name, e.g. `leader-kill-acks-all`.
        description: One sentence: the fault and what must hold.
        workload: The full-size workload, a mapping for `Workload.from_dict`, with
            `verify: True` and `faults` (times in seconds of the `full_s` run).
        profile: The client profile underneath: a preset name or a profile mapping.
        producer: Producer settings under test, laid over `profile` (`ClientProfile.with_settings`).
        expect: Summary key (or `errors_reported`, `faults_skipped`) -> expected value: a
            value it must equal, or a text comparison such as ">0" or "<=5". `BASE_EXPECT`
            is part of every scenario's.
        full_s: Run length (warm-up + duration) at full size, in seconds.
        ci_s: Run length at CI size.
    """

    name: str
    description: str
    workload: Mapping[str, Any]
    profile: str | Mapping[str, Any] = "default"
    producer: Mapping[str, Any] = field(default_factory=FrozenDict)
    expect: Mapping[str, Any] = field(default_factory=FrozenDict)
    full_s: float = 120.0
    ci_s: float = 30.0

    def seconds(self, size: str = "full") -> float:
        """The run length of a size ('full' or 'ci').

        Raises:
            ConfigError: an unknown size.
        """
        if size not in SIZES:
            raise ConfigError(f"size={size!r}: use 'full' or 'ci'")
        return self.full_s if size == "full" else self.ci_s

    def workload_for(self, seconds: float) -> dict[str, Any]:
        """The workload mapping for a run of `seconds`, fault times scaled to it.

        Every fault's `at_s` and `duration_s` are scaled by `seconds / full_s`, so the fault
        lands at the same point of the run and leaves the same share of it for recovery.

        Raises:
            ConfigError: `seconds` is not a number of at least `MIN_SECONDS`.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= MIN_SECONDS:
            raise ConfigError(f"seconds={seconds!r}: a scenario needs a run of at least "
                              f"{MIN_SECONDS:g} s (time before the fault and to recover after it)")
        factor = seconds / self.full_s
        faults = [{k: (round(v * factor, 3) if k in ("at_s", "duration_s") else v)
                   for k, v in fault.items()} for fault in self.workload["faults"]]
        return {**self.workload, "warmup_s": 0, "duration_s": float(seconds), "faults": faults}

    def client_profile(self, common: Mapping[str, Any] | None = None) -> ClientProfile:
        """The profile the scenario runs with: `profile`, `producer` laid over it, and
        `common` (connection and security settings) on top."""
        return load_profile(self.profile).with_settings(common=common, producer=self.producer)


def _workload(name: str, faults: list[dict[str, Any]], rate: float = 3000) -> dict[str, Any]:
    """A scenario's load: one topic of 6 partitions, RF 3, min.insync.replicas 2, a fixed
    rate (modest: the brokers share a laptop's cores), one consumer group, verified."""
    return {"name": f"scenario-{name}", "topics": 1, "partitions": 6, "replication_factor": 3,
            "topic_config": {"min.insync.replicas": 2}, "message_size": 256, "producers": 1,
            "producer_rate": rate, "consumer_groups": 1, "consumers_per_group": 1,
            "duration_s": 120, "verify": True, "faults": faults}


def _scenario(name: str, description: str, faults: list[dict[str, Any]], producer: Mapping[str, Any],
              expect: Mapping[str, Any], full_s: float = 120.0, ci_s: float = 30.0) -> Scenario:
    workload = {**_workload(name, faults), "duration_s": full_s}
    return Scenario(name=name, description=description, workload=FrozenDict(workload),
                    producer=FrozenDict(producer), expect=FrozenDict({**expect, **BASE_EXPECT}),
                    full_s=full_s, ci_s=ci_s)


_NO_LOSS = {"verify_lost": 0, "verify_duplicated": 0, "verify_reordered": 0}

#: The named scenarios (issue 11), by name.
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    _scenario("leader-kill-acks-all",
              "acks=all with idempotence: SIGKILL the leader of partition 0 a third into the "
              "run, start it again a third later; nothing lost, duplicated or reordered",
              [{"at_s": 40, "action": "kill", "target": "leader", "duration_s": 40}],
              ACKS_ALL, _NO_LOSS),
    _scenario("leader-kill-acks-1",
              "acks=1 without idempotence: the same leader kill; whatever is lost or duplicated "
              "is counted exactly",
              [{"at_s": 40, "action": "kill", "target": "leader", "duration_s": 40}],
              {"acks": 1, "enable.idempotence": False}, {}),
    _scenario("leader-pause",
              "SIGSTOP the leader for 10 s (a GC pause or a hung disk; shorter at CI size): "
              "a latency spike, nothing lost",
              [{"at_s": 20, "action": "pause", "target": "leader", "duration_s": 10}],
              ACKS_ALL, {"verify_lost": 0}, full_s=60.0),
    _scenario("isr-below-min",
              "SIGKILL two of three brokers (the leader and another): acks=all sends fail with "
              "NOT_ENOUGH_REPLICAS or time out, nothing acknowledged is lost, production "
              "resumes after both start again",
              [{"at_s": 30, "action": "kill", "target": "leader", "duration_s": 30},
               {"at_s": 30, "action": "kill", "target": "any", "duration_s": 30}],
              # Messages must fail within the outage, not after librdkafka's 30 s default.
              {**ACKS_ALL, "message.timeout.ms": 6000, "request.timeout.ms": 3000},
              # Longer at CI size: the two nodes start one after the other, 10-25 s each on
              # a busy 2-core machine, and production must resume within the run.
              {"verify_lost": 0, "errors_reported": True, "first_ack_s": "<inf"}, ci_s=60.0),
    _scenario("rolling-restart",
              "every broker restarted in turn (clean shutdown, waiting for the ISR to refill) "
              "under load; nothing lost or duplicated",
              [{"at_s": 40, "action": "rolling_restart"}],
              # Not shorter at CI size: each node's clean stop, start and ISR refill took up
              # to 40 s on a busy 2-core machine.
              ACKS_ALL, {"verify_lost": 0, "verify_duplicated": 0}, full_s=360.0, ci_s=150.0),
    _scenario("controller-kill",
              "SIGKILL the active KRaft controller, start it again later; nothing lost, "
              "duplicated or reordered",
              [{"at_s": 40, "action": "kill", "target": "controller", "duration_s": 40}],
              ACKS_ALL, _NO_LOSS),
)}


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """What one scenario run gave.

    Attributes:
        row: One flat row (`ROW_COLUMNS`): delivery counts, recovery figures, `passed` and
            the `failed_checks` as text.
        result: The run's `RunResult` (frames `verify`, `faults`, `cluster_state`, `recovery`).
        checks: Expectation (e.g. "verify_lost == 0") -> whether it held.
    """

    row: dict[str, Any]
    result: RunResult
    checks: dict[str, bool]

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return bool(self.row["passed"])


def get_scenario(name: str) -> Scenario:
    """The scenario of this name.

    Raises:
        ConfigError: no such scenario, listing the names.
    """
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown scenario {name!r}; the scenarios are "
                          f"{', '.join(SCENARIOS)} (`kafkabench scenario list`)") from None


def list_scenarios() -> pd.DataFrame:
    """The scenarios, one row each: name, description, full_s, ci_s, expectations."""
    rows = [{"name": s.name, "description": s.description, "full_s": s.full_s, "ci_s": s.ci_s,
             "expectations": ", ".join(_check_name(k, v) for k, v in s.expect.items())}
            for s in SCENARIOS.values()]
    return pd.DataFrame(rows, columns=["name", "description", "full_s", "ci_s", "expectations"])


# ---------------------------------------------------------------------------- expectations

def _parse_expected(expected: Any) -> tuple[str, Any]:
    """An expectation's operator and value: ">0" -> (">", 0.0); any other value -> ("==", it)."""
    if isinstance(expected, str):
        text = expected.strip()
        for symbol in sorted(_OPERATORS, key=len, reverse=True):
            if text.startswith(symbol):
                try:
                    return symbol, float(text[len(symbol):])
                except ValueError:
                    break
        raise ConfigError(f"expectation {expected!r}: expected a value or a comparison such "
                          "as '>0' or '<=5'")
    return "==", expected


def _check_name(key: str, expected: Any) -> str:
    symbol, value = _parse_expected(expected)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{key} {symbol} {value}"


def check_expectations(expect: Mapping[str, Any], figures: Mapping[str, Any]) -> dict[str, bool]:
    """Evaluate expectations against a run's figures.

    Args:
        expect: Key -> expected value, or a comparison text such as ">0" (see `Scenario.expect`).
        figures: The run's figures (`scenario_figures`).

    Returns:
        Expectation text (e.g. "verify_lost == 0") -> whether it held. A figure that is
        missing, None or NaN never holds.

    Raises:
        ConfigError: an expectation that is neither a value nor a comparison.
    """
    out = {}
    for key, expected in expect.items():
        symbol, value = _parse_expected(expected)
        actual = figures.get(key)
        missing = actual is None or (isinstance(actual, float) and math.isnan(actual))
        try:
            held = not missing and bool(_OPERATORS[symbol](actual, value))
        except TypeError:  # e.g. a text figure compared with a number
            held = False
        out[_check_name(key, expected)] = held
    return out


def scenario_figures(result: RunResult) -> dict[str, Any]:
    """The figures a scenario's expectations are checked against: the run's summary, plus
    `errors_reported` (delivery failures, or errors saying replicas were missing or a request
    timed out) and `faults_skipped` (scheduled actions the run ended before)."""
    summary = result.summary
    errors = summary.get("errors") or {}
    faults = result.faults
    skipped = int((faults["outcome"] == "skipped").sum()) if len(faults) else 0
    return {**summary, "faults_skipped": skipped,
            "errors_reported": bool(summary.get("failed")) or any(errors.get(c) for c in ISR_ERROR_CODES)}


def error_text(errors: Mapping[str, int] | None) -> str:
    """Errors by code as 'CODE:n, ...', most first."""
    items = sorted((errors or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{code}:{n}" for code, n in items)


def scenario_row(scenario: Scenario, seconds: float, result: RunResult) -> tuple[dict[str, Any], dict[str, bool]]:
    """One scenario run as a flat row (`ROW_COLUMNS`), and its checks."""
    figures = scenario_figures(result)
    checks = check_expectations(scenario.expect, figures)
    row: dict[str, Any] = {"scenario": scenario.name, "seconds": float(seconds)}
    for column in ROW_COLUMNS[2:-3]:
        row[column] = figures.get(_ROW_KEYS.get(column, column), math.nan)
    row["errors"] = error_text(figures.get("errors"))
    row["passed"] = all(checks.values())
    row["failed_checks"] = "; ".join(
        f"{name} (was {_shown(figures.get(name.split(' ', 1)[0]))})"
        for name, held in checks.items() if not held)
    return row, checks


def _shown(value: Any) -> str:
    return "missing" if value is None else str(value)


# ---------------------------------------------------------------------------- clusters

def wait_healthy(bootstrap: str, cluster: LocalCluster | None = None, *,
                 conf: Mapping[str, Any] | None = None, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
    """Wait until the cluster is healthy: every node alive and not paused (embedded
    clusters), and every node a broker in the metadata.

    Args:
        bootstrap: The cluster's bootstrap servers.
        cluster: The embedded cluster, whose nodes are checked; None: an external cluster,
            of which only the metadata is asked for (it must answer).
        conf: Client settings for the metadata request (security).
        timeout_s: How long to wait.

    Raises:
        ClusterError: not healthy within `timeout_s`, saying what is wrong and how to fix it.
    """
    from kafkabench.cluster.admin import admin_client

    admin = admin_client(bootstrap, conf)
    deadline = time.monotonic() + timeout_s
    while True:
        problem = _node_problem(cluster) if cluster is not None else None
        if problem is None:
            try:
                brokers = set(admin.list_topics(timeout=min(5.0, timeout_s)).brokers)
            except Exception as exc:  # noqa: BLE001 - KafkaException: not answering yet
                problem = f"the metadata request failed: {exc}"
            else:
                wanted = {n.id for n in cluster.nodes} if cluster is not None else set()
                if wanted - brokers:
                    problem = (f"brokers {sorted(brokers)} in the metadata, not every node of "
                               f"{sorted(wanted)}")
        if problem is None:
            return
        if time.monotonic() >= deadline:
            fix = (f"; bring it back with `kafkabench cluster start|resume NODE --name {cluster.name}`"
                   if cluster is not None else "")
            raise ClusterError(f"cluster {bootstrap} not healthy after {timeout_s:g} s: {problem}{fix}")
        time.sleep(0.5)


def _node_problem(cluster: LocalCluster) -> str | None:
    """What keeps an embedded cluster from being healthy (a node down or paused), or None."""
    from kafkabench.cluster.local import LocalCluster
    from kafkabench.core.errors import NoClusterError

    try:
        # Another process (a fault schedule, a test) may have restarted a node: new pids.
        nodes = LocalCluster.attach(cluster.name, cluster.base_dir).nodes
    except (NoClusterError, KeyError, TypeError, ValueError):
        nodes = cluster.nodes
    down = [n.id for n in nodes if not n.alive]
    paused = [n.id for n in nodes if n.alive and n.paused]
    if down or paused:
        return ", ".join(filter(None, (down and f"node(s) {down} down", paused and f"node(s) {paused} paused")))
    return None


@contextlib.contextmanager
def _own_cluster() -> Iterator[LocalCluster]:
    """A new 3-broker embedded cluster for the scenarios, deleted with its data afterwards.

    It lives among the named clusters (a unique name) so the fault schedule finds it by
    its bootstrap servers (`kafkabench.faults.find_local_cluster`).
    """
    from kafkabench.cluster.local import LocalCluster

    cluster = LocalCluster(brokers=3, name=f"scenarios-{uuid.uuid4().hex[:6]}")
    try:
        with cluster:
            yield cluster
    finally:
        shutil.rmtree(cluster.base_dir, ignore_errors=True)


@contextlib.contextmanager
def _target(bootstrap: str | None, cluster: LocalCluster | None) -> Iterator[tuple[str, LocalCluster | None]]:
    """The bootstrap servers and embedded cluster (None: external) scenarios run on."""
    from kafkabench.cluster.nodes import find_local_cluster

    if cluster is not None:
        yield cluster.bootstrap_servers, cluster
    elif bootstrap is not None:
        yield bootstrap, find_local_cluster(bootstrap)
    else:
        with _own_cluster() as own:
            yield own.bootstrap_servers, own


# ---------------------------------------------------------------------------- running

def run_scenario(name: str, *, seconds: float | None = None, size: str = "full",
                 bootstrap: str | None = None, cluster: LocalCluster | None = None,
                 out: str | Path | None = None, progress: bool = True,
                 fault_commands: Mapping[str, str] | None = None,
                 common: Mapping[str, Any] | None = None,
                 healthy_timeout_s: float = HEALTHY_TIMEOUT_S) -> ScenarioResult:
    """Run one named scenario and check its expectations.

    Args:
        name: A scenario name (see `SCENARIOS`, `list_scenarios`).
        seconds: Run length; fault times scale with it (default: the size's).
        size: 'full' or 'ci' (short, for tests and notebooks), when `seconds` is not given.
        bootstrap: An existing cluster's bootstrap servers. kafkabench's own embedded clusters
            are found by them and controlled directly; any other cluster needs `fault_commands`.
        cluster: A running 3-broker `LocalCluster` to use.
        out: Folder to save the run's result in.
        progress: Show a progress bar.
        fault_commands: Shell command per fault action, for a cluster kafkabench did not start
            (see `Workload.fault_commands`).
        common: Client settings for every client (security), laid over the scenario's profile.
        healthy_timeout_s: How long to wait for the cluster to be healthy before the run.

    Returns:
        The `ScenarioResult`. Without `bootstrap` and `cluster`, a 3-broker embedded cluster
        is started for the run and deleted afterwards.

    Raises:
        ConfigError: an unknown scenario, a bad size or length, or faults an external cluster
            cannot carry out without commands (before anything runs).
        ClusterError: the cluster is not healthy in time, or cannot be reached.
    """
    scenario = get_scenario(name)
    length = scenario.seconds(size)
    length = length if seconds is None else seconds
    scenario.workload_for(length)  # a bad length fails before any cluster starts
    with _target(bootstrap, cluster) as (servers, local):
        return _run_one(scenario, length, servers, local, out=out, progress=progress,
                        fault_commands=fault_commands, common=common,
                        healthy_timeout_s=healthy_timeout_s)


def run_scenarios(names: Iterable[str] | None = None, *, size: str = "ci", seconds: float | None = None,
                  bootstrap: str | None = None, cluster: LocalCluster | None = None,
                  out: str | Path | None = None, progress: bool = True,
                  fault_commands: Mapping[str, str] | None = None,
                  common: Mapping[str, Any] | None = None,
                  healthy_timeout_s: float = HEALTHY_TIMEOUT_S) -> tuple[pd.DataFrame, dict[str, ScenarioResult]]:
    """Run several scenarios, one after the other, on one cluster.

    Args:
        names: Scenario names (default: every scenario, in `SCENARIOS` order).
        size: 'ci' (default) or 'full'.
        seconds: Run length of each (default: each scenario's for `size`).
        bootstrap, cluster, out, progress, fault_commands, common, healthy_timeout_s: As in
            `run_scenario`; without `bootstrap` and `cluster` one embedded cluster is started
            for all of them.

    Returns:
        The rows (one per scenario, `ROW_COLUMNS`) and the results by name.

    Raises:
        ConfigError: an unknown name or bad size, before any cluster starts.
    """
    chosen = [get_scenario(n) for n in (SCENARIOS if names is None else names)]
    lengths = [s.seconds(size) for s in chosen]
    lengths = lengths if seconds is None else [seconds] * len(chosen)
    for s, length in zip(chosen, lengths, strict=True):
        s.workload_for(length)
    results: dict[str, ScenarioResult] = {}
    with _target(bootstrap, cluster) as (servers, local):
        for s, length in zip(chosen, lengths, strict=True):
            results[s.name] = _run_one(s, length, servers, local, out=out, progress=progress,
                                       fault_commands=fault_commands, common=common,
                                       healthy_timeout_s=healthy_timeout_s)
    rows = pd.DataFrame([r.row for r in results.values()], columns=list(ROW_COLUMNS))
    return rows, results


def _run_one(scenario: Scenario, seconds: float, bootstrap: str, cluster: LocalCluster | None, *,
             out: str | Path | None, progress: bool, fault_commands: Mapping[str, str] | None,
             common: Mapping[str, Any] | None, healthy_timeout_s: float) -> ScenarioResult:
    """Check the schedule, wait for a healthy cluster, run, and evaluate."""
    workload = {**scenario.workload_for(seconds), "fault_commands": dict(fault_commands or {})}
    profile = scenario.client_profile(common)
    # The run's own checks, done before anything is created on the cluster: the workload
    # parses its schedule and holds it to the run's length, then this cluster's nodes.
    checked = load_workload(workload)
    parse_faults(checked.faults, external=cluster is None,
                 node_ids=[n.id for n in cluster.nodes] if cluster is not None else None,
                 commands=checked.fault_commands)
    wait_healthy(bootstrap, cluster, conf=profile.common, timeout_s=healthy_timeout_s)
    result = _run_isolated(workload, profile, bootstrap, cluster, out=out, progress=progress)
    row, checks = scenario_row(scenario, seconds, result)
    return ScenarioResult(row=row, result=result, checks=checks)


def _run_isolated(workload: dict, profile: ClientProfile, bootstrap: str, cluster: LocalCluster | None,
                  *, out: str | Path | None, progress: bool) -> RunResult:
    """`run_workload` in a process of its own, tried twice if that process aborts.

    librdkafka 2.16 aborts the whole process when an Admin API request's broker connection
    drops at the wrong moment (`rd_kafka_enq_once_del_source_return` assertion, librdkafka
    PR #5397), which is exactly what fault scenarios do to brokers. In a child process it
    costs the attempt, not the caller (a notebook kernel, a test session); the second
    attempt's result says that the first one aborted.
    """
    import tempfile

    from kafkabench.results.store import load

    with tempfile.TemporaryDirectory(prefix="kb-scenario-") as tmp:
        folder = out if out is not None else tmp
        where = (cluster.name, str(cluster.base_dir)) if cluster is not None else None
        aborted = []
        for _attempt in range(2):
            with _ElapsedBar(workload, progress) as bar:
                code, saved = run_in_child(_child_run, (workload, profile, bootstrap, where, str(folder)),
                                           on_wait=bar.update)
            if saved is not None:
                result = load(saved)
                if aborted:
                    result.summary.setdefault("warnings", []).append(
                        f"the scenario's first attempt ended with exit code {aborted[0]} (a "
                        "librdkafka abort under faults, see kafkabench.scenarios); this is the second")
                return result
            aborted.append(code)
            if cluster is not None:
                wait_healthy(bootstrap, cluster, conf=profile.common, timeout_s=HEALTHY_TIMEOUT_S)
    raise ClusterError(f"the scenario's run process ended without a result twice (exit codes "
                       f"{aborted}); its stderr says why")


class _ElapsedBar:
    """The parent's progress bar of a run in a child process: the run's seconds, advanced by
    the time the child has run and completed when it ends (tqdm.auto: a widget in a notebook;
    the child's own bar would reach a notebook as frozen stderr text)."""

    def __init__(self, workload: dict, show: bool):
        self.total = max(1, round(float(workload.get("duration_s") or 0) + float(workload.get("warmup_s") or 0)))
        self.name = str(workload.get("name", "run"))
        self.show = show
        self.bar: Any = None

    def __enter__(self) -> _ElapsedBar:
        if self.show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.name, unit="s", bar_format=(
                "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}]"))
        return self

    def update(self, elapsed_s: float) -> None:
        if self.bar is not None and min(elapsed_s, self.total) > self.bar.n:
            self.bar.update(min(elapsed_s, self.total) - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            if exc[0] is None:
                self.update(self.total)
            self.bar.close()


def _child_run(workload: dict, profile: ClientProfile, bootstrap: str,
               where: tuple[str, str] | None, folder: str) -> str:
    """In the child process: the run, saved; returns its folder. The parent shows the
    progress (`_ElapsedBar`); warnings are one line each (`warnings_as_lines`)."""
    from kafkabench.cluster.local import LocalCluster
    from kafkabench.core.log import warnings_as_lines
    from kafkabench.runner import run_workload

    warnings_as_lines()
    cluster = LocalCluster.attach(where[0], base_dir=where[1]) if where else None
    result = run_workload(workload, profile, bootstrap=bootstrap, out=folder, progress=False,
                          drain_timeout_s=DRAIN_TIMEOUT_S, cluster=cluster)
    return str(Path(folder) / result.run_id)


def run_in_child(fn: Callable[..., Any], args: tuple, *, timeout_s: float = 3600.0,
                 on_wait: Callable[[float], None] | None = None) -> tuple[int | None, Any]:
    """Call `fn(*args)` in a spawned (non-daemon) process: (exit code, its return value), the
    value None when the process died without one. An exception in `fn` is raised here.
    `on_wait(seconds since the start)` is called about twice a second while it runs."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child_main, args=(fn, args, results), name="kafkabench-scenario")
    proc.start()
    deadline = time.monotonic() + timeout_s
    outcome = None
    started = time.monotonic()
    while outcome is None and time.monotonic() < deadline:
        if on_wait is not None:
            on_wait(time.monotonic() - started)
        try:
            outcome = results.get(timeout=0.5)
        except Exception:  # noqa: BLE001 - queue.Empty: still running?
            if not proc.is_alive():
                with contextlib.suppress(Exception):
                    outcome = results.get(timeout=1.0)
                break
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join(10)
    if outcome is None:
        return proc.exitcode, None
    ok, value = outcome
    if not ok:
        raise value
    return proc.exitcode, value


def _child_main(fn: Callable[..., Any], args: tuple, results: Any) -> None:
    try:
        results.put((True, fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        results.put((False, exc))
