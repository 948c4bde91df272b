"""`run_workload`: the one entry point that runs a workload and returns a `RunResult`.

The CLI, notebooks, sweeps, benchmarks and tests all call it. A run: plan it (names and
worker specs, `kafkabench.plan`), create the topics, start the consumer groups and wait
until they own every partition, optionally produce a backlog first, release the producers
(fixed rate or max rate) for warm-up + duration, let the consumers drain
(`kafkabench.session`), then build one summary row and the time series
(`kafkabench.summary`). Everything around that is an observer of the session, wired here
and nowhere else: lag sampling and the progress bar (`kafkabench.observers`), faults and
their recovery figures, verification, membership schedules, the processing stage, metrics.
What a feature adds to the workers' reports is a tally part its observer registers
(`kafkabench.run.tally`), never a branch here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafkabench.cluster.admin import admin_client, create_topic, delete_topics
from kafkabench.cluster.local import check_reachable, resolve_bootstrap
from kafkabench.core.errors import ClusterError, ConfigError, KafkabenchError
from kafkabench.engine.consumer import ConsumerSpec, check_commit_mode, run_consumer
from kafkabench.engine.workers import in_spawned_bootstrap
from kafkabench.results.store import RESULT_FILE, save
from kafkabench.run.journal import Journal, journal_meta, unsaved_folder
from kafkabench.run.observers import LagObserver, ProgressBar
from kafkabench.run.plan import RunPlan, check_message_size, needs_topic_limits, plan_run
from kafkabench.run.result import RunResult, make_run_id
from kafkabench.run.session import RunObserver, RunSession
from kafkabench.run.summary import session_result
from kafkabench.spec.profile import ClientProfile, load_profile
from kafkabench.spec.workload import Workload, effective_replication_factor, load_workload

STATS_INTERVAL_MS = 1000

log = logging.getLogger(__name__)


class RunFailed(KafkabenchError):
    """A run could not finish (a worker died); its partial result is attached and saved.

    Attributes:
        result: the partial `RunResult`, marked `complete: False`.
    """

    def __init__(self, message: str, result: RunResult | None = None):
        super().__init__(message)
        self.result = result


def run_workload(workload: Workload | dict | str | Path, profile: ClientProfile | dict | str | Path | None = None,
                 *, bootstrap: str | None = None, out: str | Path | None = None,
                 topics: list[str] | None = None, progress: bool = True, mode: str = "auto",
                 commit: str = "auto", partitioner: Any = None, keep_topics: bool = False,
                 record_latency: bool = True, lag_interval_s: float = 1.0,
                 stats_interval_ms: int | None = STATS_INTERVAL_MS, drain_timeout_s: float = 30.0,
                 run_id: str | None = None, replication_factor: int | None = None,
                 observers: list[RunObserver] | None = None, cluster: Any = None,
                 commit_on_revoke: bool = True, metrics_port: int | None = None,
                 broker_metrics: Any = None) -> RunResult:
    """Run a workload against a cluster and measure it.

    Args:
        workload: a `Workload`, a dict, or a kafkabench/OMB workload YAML path.
        profile: a `ClientProfile`, a preset name, a dict, or a kafkabench/OMB driver YAML path.
        bootstrap: bootstrap servers (default: KAFKABENCH_BOOTSTRAP or the embedded cluster).
        out: folder to save the result in (results/<run_id>/), or None.
        topics: existing topics to use instead of creating the workload's (kept after the run).
        progress: show a progress bar.
        mode: "process", "thread" or "auto" (processes when there is more than one worker).
        commit: consumer commit mode: "auto", "sync" or "async".
        partitioner: a `kafkabench.partitioning` strategy name or object choosing partitions
            in Python (custom strategies); built-ins are set with the `partitioner` client key.
        keep_topics: keep the topics the run created.
        record_latency: record per-message latencies (off only to measure what that costs).
        lag_interval_s: seconds between lag samples.
        stats_interval_ms: librdkafka statistics interval; None turns statistics off.
        drain_timeout_s: how long consumers may take to catch up after producers stop.
        run_id: the run's id (default: time + name + random suffix).
        replication_factor: replication factor of the topics the run creates, chosen
            explicitly: wins over the workload's and the profile's (see
            `kafkabench.workload.effective_replication_factor`).
        observers: extra `kafkabench.session.RunObserver`s, called at start, when the
            producers go, about once a second and at the end; each adds its frames and
            figures to the result.
        cluster: the `kafkabench.cluster.LocalCluster` whose nodes the workload's faults act
            on (default: the embedded cluster these bootstrap servers belong to, found among
            the named ones; none: an external cluster, whose faults need shell commands).
        commit_on_revoke: members committing themselves ("sync", "async", "sync-message")
            also commit when partitions are revoked (the design source's rebalance
            listener); False shows what that listener saves.
        metrics_port: serve the run's live metrics for Prometheus on this port (0: a free
            one; `summary["metrics_url"]` says where), `kafkabench.metrics.RunMetrics`. A port
            in use is refused before anything runs.
        broker_metrics: the brokers' Prometheus JMX exporters to scrape each second into
            `result.broker_metrics`: None finds the embedded cluster's (none for an external
            cluster), a list or {broker: URL} names them, False scrapes nothing. An
            unreachable exporter is a warning; the run goes on.

    Returns:
        The `RunResult`; also saved under `out` when given. Ctrl-C stops the run cleanly and
        returns (and saves) the partial result, marked `interrupted`. `summary["complete"]`
        is False, with the reason in `summary["incomplete"]`, when a consumer group did not
        consume everything that was delivered, or a worker failed.

    A workload with `verify: true` has its delivery checked after the run (`result.verify`,
    the `verify_*` figures); one with `faults` has them carried out on schedule
    (`result.faults`), the cluster's leaders and ISRs sampled each second
    (`result.cluster_state`) and recovery figures per fault (`result.recovery`).

    Raises:
        ConfigError: bad workload, profile or option, or messages larger than the producer's
            or the topic's limit, or a fault schedule the cluster cannot carry out (before
            anything is produced).
        ClusterError: the cluster cannot be reached or the topics cannot be created.
        RunFailed: a worker died without reporting; the partial result is attached (and
            saved under `out`).
    """
    _refuse_unguarded_script()
    workload, profile, rf = _inputs(workload, profile, topics, replication_factor)
    bootstrap = resolve_bootstrap(bootstrap)
    plan = plan_run(workload, profile, bootstrap=bootstrap, run_id=run_id or make_run_id(workload.name),
                    topics=topics, mode=mode, commit=commit, partitioner=partitioner,
                    record_latency=record_latency, stats_interval_ms=stats_interval_ms,
                    commit_on_revoke=commit_on_revoke)
    common = dict(profile.common)
    check_reachable(bootstrap, common)
    # A fault schedule this cluster cannot carry out is refused before any topic exists.
    trust = trust_observers(plan, workload, profile, bootstrap, timeout_s=drain_timeout_s,
                            cluster=cluster)
    plan, membership = _membership(plan, workload)  # its members trace what they consume
    metrics = _metrics_observers(bootstrap, metrics_port, broker_metrics)
    started_at = datetime.now(UTC)
    summary_extra = {"commit_on_revoke": commit_on_revoke}
    journal = None
    try:
        _create_topics(plan, workload, profile, bootstrap, rf, keep_topics)
        watchers = [*_standard_observers(plan, workload, bootstrap, common, lag_interval_s, progress),
                    *trust, *membership, *metrics, *_processing(plan, workload, bootstrap, common),
                    *(observers or [])]
        journal = _journal(plan, workload, profile, out, bootstrap=bootstrap, started_at=started_at,
                           commit=commit, replication_factor=rf, summary_extra=summary_extra)
        session = RunSession(plan, watchers, journal=journal)
    except BaseException:
        _abandon(metrics, journal)
        raise
    with session.running():
        if workload.backlog_messages:
            session.run_backlog(workload.backlog_messages)
        session.start_consumers()
        session.start_producers()
        session.go(restart_clock=not workload.backlog_messages)
        session.produce()
        session.catch_up(drain_timeout_s)
    if plan.created and not keep_topics:
        _delete_topics(plan, bootstrap, common, session.warnings)
    result = session_result(session, workload, profile, started_at=started_at, bootstrap=bootstrap,
                            commit=commit, replication_factor=rf)
    result.summary.update(summary_extra)
    return _kept(result, session, out)


def _abandon(metrics: list[RunObserver], journal: Journal | None) -> None:
    """Close the metrics endpoints of a run that will not happen and discard its journal."""
    for m in metrics:
        if hasattr(m, "close"):
            m.close()
    if journal is not None:
        journal.discard()


def _kept(result: RunResult, session: RunSession, out: str | Path | None) -> RunResult:
    """`result`, saved under `out` (replacing the run's journal) or, without `out`, with the
    journal discarded.

    Raises:
        RunFailed: a worker died; the partial result is attached (and saved).
    """
    saved = save(result, out, overwrite=True) if out is not None else None  # replaces the journal
    if saved is None:
        session.journal.discard()
    if session.failure is not None:
        where = f"; the partial result is saved in {saved}" if saved else ""
        raise RunFailed(f"run {session.plan.run_id} failed: {session.failure}{where}", result)
    return result


def _journal(plan: RunPlan, workload: Workload, profile: ClientProfile, out: str | Path | None,
             **meta: Any) -> Journal:
    """The run's journal, in its result folder (or, without `out`, a folder removed at the end):
    if this process dies, `kafkabench.journal.recover` builds the partial result from it."""
    folder = Path(out) / plan.run_id if out is not None else unsaved_folder(plan.run_id)
    if out is not None and (folder / RESULT_FILE).exists():
        raise ConfigError(f"result folder {str(folder)!r} exists already: give the run another run_id")
    journal = Journal(folder)
    journal.write_meta(**journal_meta(plan, profile, workload=workload, **meta))
    return journal


def _inputs(workload: Any, profile: Any, topics: list[str] | None,
            replication_factor: int | None) -> tuple[Workload, ClientProfile, int | None]:
    """The loaded workload (with as many topics as `topics` names) and profile, and the
    replication factor the run's topics get."""
    workload, profile = load_workload(workload), load_profile(profile)
    rf = effective_replication_factor(workload, profile, override=replication_factor)
    if topics is not None and len(topics) != workload.topics:
        workload = replace(workload, topics=len(topics))
    return workload, profile, rf


def _delete_topics(plan: RunPlan, bootstrap: str, conf: dict[str, Any], warnings: list[str]) -> None:
    """Delete the run's topics; a failure is a warning, not an error (the result stands)."""
    try:
        delete_topics(bootstrap, [*plan.topics, *plan.stage_topics], conf=conf, timeout_s=10)
    except ClusterError as exc:
        warnings.append(f"could not delete topics: {exc}")


def _refuse_unguarded_script() -> None:
    """ConfigError when called from a worker process re-importing an unguarded script."""
    if in_spawned_bootstrap():
        raise ConfigError(
            "run_workload() was called while a kafkabench worker process was starting: the "
            "script that calls it has no `if __name__ == \"__main__\":` guard, and "
            "multiprocessing's 'spawn' start method re-imports it in every worker. Put the "
            "call under that guard, or pass mode=\"thread\"")


def _metrics_observers(bootstrap: str, metrics_port: int | None, broker_metrics: Any) -> list[RunObserver]:
    """The run's Prometheus endpoint (a port in use is refused here, before any topic exists)
    and the brokers' exporters scraped each second."""
    watchers: list[RunObserver] = []
    if broker_metrics is not False:
        from kafkabench.observe.brokermetrics import BrokerMetrics, broker_metrics_urls

        urls = broker_metrics_urls(bootstrap) if broker_metrics is None else broker_metrics
        if urls == {}:
            log.warning("kafkabench: the embedded cluster at %s runs without the Prometheus JMX "
                        "agent (started by an older kafkabench, or the agent could not be fetched): "
                        "no broker metrics; `kafkabench cluster down` and `up` again adds it", bootstrap)
        if urls:
            if not isinstance(urls, Mapping):
                urls = {url: url for url in urls}
            watchers.append(BrokerMetrics(urls))
    if metrics_port is not None:
        from kafkabench.observe.metrics import RunMetrics

        watchers.append(RunMetrics(metrics_port))
    return watchers


def _standard_observers(plan: RunPlan, workload: Workload, bootstrap: str, conf: dict[str, Any],
                        lag_interval_s: float, progress: bool) -> list[RunObserver]:
    """Lag sampling when the run has consumer groups, a progress bar when asked for."""
    watchers: list[RunObserver] = []
    if plan.groups:
        # Committed offsets through Consumer.committed, never the Admin API's coordinator
        # requests: librdkafka aborts the process on those when a coordinator dies, whether
        # kafkabench's fault schedule or anything else kills it
        # (docs/librdkafka-coordinator-abort.md; `LagSampler`'s group_topics).
        group_topics = {g: [t] for g, t in plan.topic_of_group.items()}
        watchers.append(LagObserver(bootstrap, plan.groups, interval_s=lag_interval_s, conf=conf,
                                    group_topics=group_topics))
    if progress:
        watchers.append(ProgressBar(workload.name, duration_s=workload.warmup_s + workload.duration_s,
                                    messages=workload.message_count))
    return watchers


def trust_observers(plan: RunPlan, workload: Workload, profile: ClientProfile, bootstrap: str,
                    *, timeout_s: float = 60.0, cluster: Any = None) -> list[RunObserver]:
    """The observers of a verified or faulted run, in the order their `on_end` must run:
    the fault schedule first (it restores every node it stopped), then the cluster-state
    sampler, the recovery figures (from the `faults` frame the schedule contributes) and the
    delivery verifier, which read the restored cluster.

    Args:
        plan: The run's plan.
        workload: The workload: its `faults`, `verify` and `fault_commands`.
        profile: The client profile (security settings, the verifier's isolation level).
        bootstrap: Bootstrap servers.
        timeout_s: How long consumer groups may go without progress while draining
            (`run_workload`'s `drain_timeout_s`); the read-back gets at least 60 s.
        cluster: The embedded cluster the faults act on (default: the one `bootstrap`
            belongs to).

    Returns:
        The observers (none for a run without faults or verification).

    Raises:
        ConfigError: a fault schedule this cluster cannot carry out (a node it does not
            have, an external cluster without the actions' commands).
    """
    from kafkabench.cluster.nodes import find_local_cluster
    from kafkabench.faults.clusterstate import ClusterStateObserver
    from kafkabench.faults.observer import FaultObserver, RecoveryObserver
    from kafkabench.verify.observer import VerifyObserver

    common = dict(profile.common)
    watchers: list[RunObserver] = []
    if workload.faults:
        local = cluster if cluster is not None else find_local_cluster(bootstrap)
        # The workload parsed its schedule and held it to the run's length; FaultObserver
        # checks it against this cluster without parsing it again.
        watchers.append(FaultObserver(workload.faults, bootstrap=bootstrap, topics=list(plan.topics),
                                      cluster=local, commands=dict(workload.fault_commands),
                                      conf=common))
        watchers.append(ClusterStateObserver(bootstrap, list(plan.topics), conf=common))
        watchers.append(RecoveryObserver())
    if workload.verify:
        isolation = profile.consumer_config(bootstrap, "kb-verify").get("isolation.level")
        watchers.append(VerifyObserver(bootstrap, list(plan.topics), conf=common,
                                       isolation_level=isolation, timeout_s=max(timeout_s, 60.0),
                                       drain_timeout_s=timeout_s))
    return watchers


def _membership(plan: RunPlan, workload: Workload) -> tuple[RunPlan, list[RunObserver]]:
    """The plan to run and the observer carrying out the workload's membership schedule (none
    without one): its members trace what they consume, so the observer's plan replaces it.

    Raises:
        ConfigError: a crash in a run whose workers are threads.
    """
    if not workload.membership:
        return plan, []
    from kafkabench.groups.observer import MembershipObserver

    if plan.mode != "process" and any(e.action == "crash" for e in workload.membership):
        raise ConfigError("workload membership crashes a member, which needs its own process: "
                          f"run with mode=\"process\" (not {plan.mode!r})")
    observer = MembershipObserver(workload.membership, plan)
    return observer.plan, [observer]


def _processing(plan: RunPlan, workload: Workload, bootstrap: str, conf: dict[str, Any]) -> list[RunObserver]:
    """The observer of the workload's processing stage (none without one, or without members)."""
    if workload.processing is None or not plan.consumers:
        return []
    from kafkabench.patterns.observer import ProcessingObserver

    return [ProcessingObserver(workload.processing, bootstrap, list(plan.topics), conf=conf)]


def _create_topics(plan: RunPlan, workload: Workload, profile: ClientProfile, bootstrap: str,
                   rf: int | None, keep_topics: bool) -> None:
    """Create the plan's topics (unless it uses existing ones) and check that its messages
    fit their max.message.bytes; a refused plan leaves no topics behind."""
    common = dict(profile.common)
    for name in plan.stage_topics:  # the processing stage's; kept if a run on given topics made them
        create_topic(bootstrap, name, workload.partitions, rf if rf is not None else -1,
                     {**workload.topic_config, **profile.topic_config}, conf=common, exist_ok=True)
    if plan.created:
        for name in plan.topics:
            # -1: the cluster's default.replication.factor.
            create_topic(bootstrap, name, workload.partitions, rf if rf is not None else -1,
                         {**workload.topic_config, **profile.topic_config}, conf=common)
    if not needs_topic_limits(plan):
        return
    limits = {t: topic_max_message_bytes(bootstrap, t, common) for t in plan.topics}
    try:
        check_message_size(plan.max_message_size, profile.producer_config(bootstrap), limits,
                           plan.compressed)
    except ConfigError:
        if plan.created and not keep_topics:
            delete_topics(bootstrap, list(plan.topics), conf=common, timeout_s=10)
        raise


def topic_max_message_bytes(bootstrap: str, topic: str, conf: dict[str, Any]) -> int | None:
    """The topic's max.message.bytes (the broker's default unless the topic sets one)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    try:
        admin = admin_client(bootstrap, conf)
        res = ConfigResource(ResourceType.TOPIC, topic)
        entries = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
        return int(entries["max.message.bytes"].value)
    except Exception:  # noqa: BLE001 - unknown limit: the producers' errors will say it
        return None


def consume_topic(topic: str, *, messages: int | None = None, group: str | None = None,
                  profile: ClientProfile | dict | str | Path | None = None,
                  bootstrap: str | None = None, timeout_s: float = 10.0,
                  progress: bool = True, out: str | Path | None = None,
                  record_latency: bool = True, commit: str = "auto") -> RunResult:
    """Consume an existing topic with one consumer, as kafka-consumer-perf-test does.

    Args:
        topic: the topic to read (from the earliest offset for a new group).
        messages: stop after this many messages (None: until idle for `timeout_s`).
        group: consumer group id (default: a new one).
        profile: client profile (its consumer settings are used).
        bootstrap: bootstrap servers.
        timeout_s: stop when no message arrived for this long.
        progress: show a progress bar.
        out: folder to save the result in.
        record_latency: record each message's end-to-end latency (costs about a tenth of
            the peak consume rate of 100 B messages; kafka-consumer-perf-test records none).
        commit: offset commits (`kafkabench.consumer.COMMIT_MODES`; kafka-consumer-perf-test
            auto-commits).

    Returns:
        A `RunResult` with consumed, consume_rate, consume_mb_s, end-to-end latency and the
        time until the consumer owned its partitions (`rebalance_time_ms`).
    """
    profile = load_profile(profile)
    if messages is not None and messages < 1:
        raise ConfigError(f"messages={messages!r}: must be >= 1")
    check_commit_mode(commit)
    bootstrap = resolve_bootstrap(bootstrap)
    check_reachable(bootstrap, dict(profile.common))
    group = group or f"kb-consume-{uuid.uuid4().hex[:8]}"
    workload = Workload(name=f"consume-{topic}", consumer_groups=1, consumers_per_group=1)
    spec = ConsumerSpec(worker="consumer-0", group=group, topics=(topic,), max_messages=messages,
                        record_latency=record_latency, commit=commit,
                        config=profile.consumer_config(bootstrap, group,
                                                       **{"statistics.interval.ms": STATS_INTERVAL_MS}))
    plan = RunPlan(run_id=make_run_id(workload.name), topics=(topic,), created=False, mode="thread",
                   consumers=(spec,), topic_of={spec.worker: topic}, group_of={spec.worker: group})
    watch = _ConsumeWatch(messages, timeout_s, f"consume {topic}" if progress else None)
    session = RunSession(plan, [watch])
    started_at = datetime.now(UTC)
    with session.running():
        session.go()
        session.pool.start(run_consumer, spec, spec.worker, "consumer")
        session.drain(lambda: spec.worker in session.pool.done or watch.idle(session), wait_s=0.2)
    if messages and session.tally.consumed_by_group[group] < messages and not session.interrupted:
        session.warnings.append(f"only {session.tally.consumed_by_group[group]} of {messages} "
                                "messages within the timeout")
    # The consumer's own time from subscribing to its last message, join included, as
    # kafka-consumer-perf-test counts it (and not the idle timeout at the end).
    elapsed = session.tally.elapsed.get("consumer_elapsed_s") or (time.monotonic() - session.t_go)
    result = session_result(session, workload, profile, started_at=started_at, bootstrap=bootstrap,
                            commit=commit, elapsed=elapsed)
    result.summary.update(_consumer_figures(session, result.summary["consumed"], elapsed), group=group)
    if out is not None:
        save(result, out)
    return result


def _consumer_figures(session: RunSession, consumed: int, elapsed: float) -> dict[str, Any]:
    """kafka-consumer-perf-test's figures: rates over the consumer's own time, bytes, and
    the time until it owned its partitions."""
    nbytes = int(session.tally.totals["consumer"].get("bytes", 0))
    first_assign = next((ev["t"] for ev in session.tally.rebalances if ev["event"] == "assign"), None)
    return {"consumed_bytes": nbytes, "consume_rate": consumed / max(elapsed, 1e-9),
            "consume_mb_s": nbytes / 1e6 / max(elapsed, 1e-9),
            "rebalance_time_ms": round(first_assign * 1000, 1) if first_assign else float("nan")}


class _ConsumeWatch(RunObserver):
    """consume_topic's progress bar (messages) and idle timeout."""

    def __init__(self, messages: int | None, timeout_s: float, desc: str | None):
        self.messages, self.timeout_s, self.desc = messages, timeout_s, desc
        self._bar: Any = None
        self._count, self._at = 0, time.monotonic()

    def on_go(self, session: RunSession) -> None:
        self._at = time.monotonic()
        if self.desc:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.messages or 0, desc=self.desc, unit="msg", leave=False)

    def idle(self, session: RunSession) -> bool:
        """True once no message arrived for `timeout_s` (counted from the start)."""
        count = sum(session.tally.consumed_by_group.values())
        if count != self._count:
            if self._bar is not None:
                self._bar.update(count - self._count)
            self._count, self._at = count, time.monotonic()
        return time.monotonic() - self._at > self.timeout_s

    def on_end(self, session: RunSession) -> None:
        if self._bar is not None:
            self._bar.close()
