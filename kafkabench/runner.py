"""`run_workload`: the one entry point that runs a workload and returns a `RunResult`.

The CLI, notebooks, sweeps, benchmarks and tests all call it. A run: create the topics,
start the consumer groups and wait until they own every partition, optionally produce a
backlog first, release the producers (fixed rate or max rate) for warm-up + duration, let the
consumers drain, sample lag throughout, then merge every worker's per-second reports into
one summary row and time series.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from kafkabench import KAFKA_VERSION, __version__
from kafkabench.admin import admin_client, create_topic, delete_topics
from kafkabench.cluster import check_reachable, resolve_bootstrap
from kafkabench.config import ClientProfile, load_profile
from kafkabench.consumer import COMMIT_MODES, ConsumerSpec, run_consumer
from kafkabench.errors import ClusterError, ConfigError, KafkabenchError
from kafkabench.lag import LagSampler, group_status
from kafkabench.producer import ProducerSpec, run_producer
from kafkabench.results import RunResult, make_run_id, save
from kafkabench.stats import LatencyRecorder, parse_statistics
from kafkabench.workers import ErrorCounts, Report, WorkerDied, WorkerPool, in_spawned_bootstrap
from kafkabench.workload import (
    Workload,
    effective_replication_factor,
    key_sequence,
    load_workload,
    payload_pool,
)

HISTOGRAMS = ("publish_latency_us", "publish_delay_us", "e2e_latency_us")
# Consumers joining a group: the first rebalance takes a few seconds on a fresh group.
ASSIGN_TIMEOUT_S = 60.0
STATS_INTERVAL_MS = 1000
# "held" (a rate-controlled run did what was asked): the measured publish rate within this
# fraction of the target, either way, and the schedule kept: publish delay (how late sends
# were against their intended time) at most these at p50 and p99.
RATE_TOLERANCE = 0.02
MAX_DELAY_P50_US = 10_000
MAX_DELAY_P99_US = 250_000
# librdkafka's default message.max.bytes, and the most a one-record batch adds to a message
# on the wire (batch header 61 B, record header and varints); the broker's limit (topic
# max.message.bytes) applies to the whole batch.
CLIENT_MAX_MESSAGE_BYTES = 1_000_000
BATCH_OVERHEAD_BYTES = 128


class RunFailed(KafkabenchError):
    """A run could not finish (a worker died); its partial result is attached and saved.

    Attributes:
        result: the partial `RunResult`, marked `complete: False`.
    """

    def __init__(self, message: str, result: RunResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass(slots=True)
class _Tally:
    """Merges workers' reports: per-second counts and histograms, totals, events."""

    t0_wall: float = 0.0
    elapsed: dict[str, float] = field(default_factory=dict)
    counts: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    histograms: dict[tuple[int, str], LatencyRecorder] = field(default_factory=dict)
    totals: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    cpu_s: Counter = field(default_factory=Counter)
    stats: list[tuple[str, list]] = field(default_factory=list)
    rebalances: list[dict] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    assigned: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    consumed_by_group: Counter = field(default_factory=Counter)
    delivered_by_topic: Counter = field(default_factory=Counter)

    def t(self, wall: float) -> int:
        # A report closes the second before it; 0.5 s of slack absorbs scheduling jitter.
        return max(0, math.floor(wall - self.t0_wall - 0.5)) if self.t0_wall else 0

    def add(self, r: Report, topic_of: dict[str, str], group_of: dict[str, str]) -> None:
        if r.kind == "interval":
            t = self.t(r.wall)
            for k, v in r.counts.items():
                # Consumers' "bytes" must not add to the producers' column of the same name.
                key = k if r.role == "producer" or k == "consumed" else f"consumed_{k}"
                self.counts[t][key] += v
            if r.role == "producer":
                self.delivered_by_topic[topic_of[r.worker]] += r.counts.get("delivered", 0)
            else:
                self.consumed_by_group[group_of[r.worker]] += r.counts.get("consumed", 0)
            for name, encoded in r.histograms.items():
                h = LatencyRecorder.decode(encoded)
                if h.count:
                    key = (t, name)
                    if key in self.histograms:
                        self.histograms[key].merge(h)
                    else:
                        self.histograms[key] = h
        elif r.kind == "rebalance":
            for ev in r.events:
                self.rebalances.append({**ev, "t": ev["wall"] - self.t0_wall if self.t0_wall else 0.0})
                parts = set(filter(None, ev["partitions"].split(",")))
                if ev["event"] == "assign":
                    self.assigned[r.worker] |= parts
                else:
                    self.assigned[r.worker] -= parts
        elif r.kind == "done":
            counts = dict(r.counts)
            # Workers run side by side: the run's time is the longest, not the sum.
            for key in ("elapsed_s", "drained_s"):
                if key in counts:
                    name = f"{r.role}_{key}"
                    self.elapsed[name] = max(self.elapsed.get(name, 0.0), counts.pop(key))
            # A worker process's own CPU (librdkafka's threads included); a thread's is part
            # of the parent process's, counted there.
            cpu_s, in_process = counts.pop("cpu_s", 0.0), counts.pop("in_process", 0)
            if in_process:
                self.cpu_s[r.role] += cpu_s
            self.totals[r.role].update(counts)
            self.errors.merge(r.errors, r.error_messages)
            if r.stats:
                self.stats.append((r.worker, r.stats))
        elif r.kind == "error":
            self.worker_errors.append(f"{r.worker} failed: {r.message.strip().splitlines()[0]}")
            self.errors.add("worker_failed", f"{r.worker}: {r.message.strip()}")

    def merged(self, name: str, since_t: float = 0.0) -> LatencyRecorder:
        total = LatencyRecorder()
        for (t, n), h in self.histograms.items():
            if n == name and t >= since_t:
                total.merge(h)
        return total


def _max_message_size(payloads: tuple[bytes, ...], keys: list, headers) -> int:
    """Largest message a run sends, key and headers included (bytes)."""
    key = max((len(k) for k in keys if k), default=0)
    head = sum(len(k) + len(v) for k, v in headers or ())
    return max(map(len, payloads)) + key + head


def _topic_max_message_bytes(bootstrap: str, topic: str, conf: dict[str, Any]) -> int | None:
    """The topic's max.message.bytes (the broker's default unless the topic sets one)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    try:
        admin = admin_client(bootstrap, conf)
        res = ConfigResource(ResourceType.TOPIC, topic)
        entries = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
        return int(entries["max.message.bytes"].value)
    except Exception:  # noqa: BLE001 - unknown limit: the producers' errors will say it
        return None


def _check_message_size(size: int, producer_conf: dict[str, Any], topic_limits: dict[str, int | None],
                        compressed: bool) -> None:
    """Refuse, before anything is produced, messages the producer or the broker would refuse.

    Raises:
        ConfigError: naming the size, both limits and the settings that raise them.
    """
    client = int(producer_conf.get("message.max.bytes", CLIENT_MAX_MESSAGE_BYTES))
    if size > client:
        raise ConfigError(
            f"messages of up to {size:,} B (payload, key and headers) are larger than the "
            f"producer's message.max.bytes ({client:,} B): librdkafka would refuse every one "
            "with MSG_SIZE_TOO_LARGE. Raise it in the profile (producer: {message.max.bytes: "
            f"{size + BATCH_OVERHEAD_BYTES}}}, or --producer-props message.max.bytes=...) and the "
            "topic's max.message.bytes to match, or send smaller messages")
    for topic, limit in topic_limits.items():
        if limit is not None and not compressed and size + BATCH_OVERHEAD_BYTES > limit:
            raise ConfigError(
                f"messages of up to {size:,} B do not fit topic {topic!r}'s max.message.bytes "
                f"({limit:,} B, the broker's message.max.bytes unless the topic sets it): the "
                "broker would refuse them with MSG_SIZE_TOO_LARGE. Raise it with the workload's "
                f"topic_config (max.message.bytes: {size + BATCH_OVERHEAD_BYTES}) or send "
                "smaller messages")


class _NoBar:
    """Stands in for a tqdm bar when progress is off (tqdm(disable=True) still prints)."""

    disable, n, total = True, 0, 0

    def update(self, *args) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: float, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="s", leave=False,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")


def run_workload(workload: Workload | dict | str | Path, profile: ClientProfile | dict | str | Path | None = None,
                 *, bootstrap: str | None = None, out: str | Path | None = None,
                 topics: list[str] | None = None, progress: bool = True, mode: str = "auto",
                 commit: str = "auto", partitioner: Any = None, keep_topics: bool = False,
                 record_latency: bool = True, lag_interval_s: float = 1.0,
                 stats_interval_ms: int | None = STATS_INTERVAL_MS, drain_timeout_s: float = 30.0,
                 run_id: str | None = None, replication_factor: int | None = None) -> RunResult:
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

    Returns:
        The `RunResult`; also saved under `out` when given. Ctrl-C stops the run cleanly and
        returns (and saves) the partial result, marked `interrupted`. `summary["complete"]`
        is False, with the reason in `summary["incomplete"]`, when a consumer group did not
        consume everything that was delivered, or a worker failed.

    Raises:
        ConfigError: bad workload, profile or option, or messages larger than the producer's
            or the topic's limit (before anything is produced).
        ClusterError: the cluster cannot be reached or the topics cannot be created.
        RunFailed: a worker died without reporting; the partial result is attached (and
            saved under `out`).
    """
    if in_spawned_bootstrap():
        raise ConfigError(
            "run_workload() was called while a kafkabench worker process was starting: the "
            "script that calls it has no `if __name__ == \"__main__\":` guard, and "
            "multiprocessing's 'spawn' start method re-imports it in every worker. Put the "
            "call under that guard, or pass mode=\"thread\"")
    workload = load_workload(workload)
    profile = load_profile(profile)
    rf = effective_replication_factor(workload, profile, override=replication_factor)
    if commit not in COMMIT_MODES:
        raise ConfigError(f"commit={commit!r}: expected one of {', '.join(COMMIT_MODES)}")
    if mode not in ("auto", "process", "thread"):
        raise ConfigError(f"mode={mode!r}: expected 'auto', 'process' or 'thread'")
    if topics is not None and len(topics) != workload.topics:
        workload = replace(workload, topics=len(topics))
    strategy = None
    if partitioner is not None:
        from kafkabench.partitioning import get_strategy
        strategy = get_strategy(partitioner, workload.partitions)
    bootstrap = resolve_bootstrap(bootstrap)
    common = dict(profile.common)
    check_reachable(bootstrap, common)

    payloads = tuple(payload_pool(workload, seed=0))
    headers = tuple((k, v.encode()) for k, v in workload.headers.items()) or None
    size = _max_message_size(payloads, key_sequence(workload, seed=0), headers)
    producer_conf = profile.producer_config(bootstrap)
    compressed = str(producer_conf.get("compression.type", producer_conf.get("compression.codec",
                                                                                "none"))) != "none"
    _check_message_size(size, producer_conf, {}, compressed)

    run_id = run_id or make_run_id(workload.name)
    created = topics is None
    topic_names = list(topics) if topics is not None else workload.topic_names(run_id)
    if created:
        for name in topic_names:
            # -1: the cluster's default.replication.factor.
            create_topic(bootstrap, name, workload.partitions, rf if rf is not None else -1,
                         {**workload.topic_config, **profile.topic_config}, conf=common)
    if size + BATCH_OVERHEAD_BYTES > 1_000_000 or topics is not None:
        # Only large messages can meet the broker's limit (1 MiB by default), and a
        # user's own topic may set a smaller one.
        limits = {t: _topic_max_message_bytes(bootstrap, t, common) for t in topic_names}
        try:
            _check_message_size(size, producer_conf, limits, compressed)
        except ConfigError:
            if created and not keep_topics:
                delete_topics(bootstrap, topic_names, conf=common, timeout_s=10)
            raise

    extra = {"statistics.interval.ms": stats_interval_ms} if stats_interval_ms else {}
    if strategy is not None and strategy.builtin:
        extra_p = {**extra, "partitioner": strategy.builtin}
        strategy = None
    else:
        extra_p = extra
    n_workers = workload.total_producers + workload.total_consumers
    mode = mode if mode != "auto" else ("process" if n_workers > 1 else "thread")

    # Specs: producers per topic, consumer groups per topic.
    producer_specs: list[ProducerSpec] = []
    topic_of: dict[str, str] = {}
    per_producer_cap = (None if workload.message_count is None
                        else max(1, workload.message_count // workload.total_producers))
    for ti, topic in enumerate(topic_names):
        for p in range(workload.producers):
            name = f"producer-{ti}-{p}" if workload.topics > 1 else f"producer-{p}"
            keys = key_sequence(workload, seed=1000 * ti + p)
            producer_specs.append(ProducerSpec(
                worker=name, config=profile.producer_config(bootstrap, **extra_p), topics=(topic,),
                payloads=payloads, keys=None if keys == [None] else tuple(keys),
                rate=workload.rate_per_producer, duration_s=workload.warmup_s + workload.duration_s
                if workload.message_count is None else 1e9,
                max_messages=per_producer_cap, record_latency=record_latency,
                partitioner=strategy, headers=headers))
            topic_of[name] = topic
    consumer_specs: list[ConsumerSpec] = []
    group_of: dict[str, str] = {}
    groups: list[str] = []
    for topic in topic_names:
        for g in range(workload.consumer_groups):
            group = f"{topic}-g{g}"
            groups.append(group)
            for c in range(workload.consumers_per_group):
                name = f"{group.removeprefix(workload.topic_prefix + '-' + run_id + '-')}-c{c}"
                consumer_specs.append(ConsumerSpec(
                    worker=name, group=group, config=profile.consumer_config(bootstrap, group, **extra),
                    topics=(topic,), commit=commit, record_latency=record_latency))
                group_of[name] = group
                topic_of[name] = topic

    tally = _Tally()
    started_at = datetime.now(UTC)
    interrupted = False
    failure: str | None = None
    warnings: list[str] = []
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    pool = WorkerPool(mode)
    backlog_pool: WorkerPool | None = None
    # Consumers start from the earliest offset: count uncommitted partitions from there too.
    sampler = LagSampler(bootstrap, groups, interval_s=lag_interval_s, conf=common,
                         missing_committed="earliest") if groups else None
    t_go = t_end = time.monotonic()
    elapsed = 0.0
    bar = None
    try:
        if sampler:
            sampler.start()
        if workload.backlog_messages:
            backlog_pool, tally.t0_wall = WorkerPool(mode), time.time()
            each = max(1, workload.backlog_messages // len(producer_specs))
            for s in producer_specs:
                backlog_pool.start(run_producer, replace(s, max_messages=each,
                                                          duration_s=1e9), s.worker, "producer")
            _wait_ready(backlog_pool, tally, {s.worker for s in producer_specs}, topic_of, group_of)
            tally.t0_wall = time.time()
            backlog_pool.go()
            names = {s.worker for s in producer_specs}
            while not names <= backlog_pool.done:
                for r in backlog_pool.reports(0.5):
                    tally.add(r, topic_of, group_of)
                backlog_pool.check()
            for r in backlog_pool.reports(0.1):  # whatever arrived as the last one exited
                tally.add(r, topic_of, group_of)
            backlog_pool.join(10)
        for s in consumer_specs:
            pool.start(run_consumer, s, s.worker, "consumer")
        _wait_assigned(pool, tally, consumer_specs, workload.partitions, topic_of, group_of, warnings)
        for s in producer_specs:
            pool.start(run_producer, s, s.worker, "producer")
        _wait_ready(pool, tally, {s.worker for s in producer_specs}, topic_of, group_of)
        if not workload.backlog_messages:
            tally.t0_wall = time.time()
        t_go = time.monotonic()
        pool.go()
        total = workload.warmup_s + workload.duration_s
        bar = _progress(total if workload.message_count is None else workload.message_count,
                        f"{workload.name}", progress)
        producers = {s.worker for s in producer_specs}
        while not producers <= pool.done:
            for r in pool.reports(0.5):
                tally.add(r, topic_of, group_of)
            pool.check()
            _update_bar(bar, tally, workload, t_go)
        t_end = time.monotonic()
        elapsed = tally.elapsed.get("producer_elapsed_s") or (t_end - t_go)
        _drain(pool, tally, groups, topic_of, group_of, drain_timeout_s, warnings)
    except KeyboardInterrupt:
        interrupted = True
        warnings.append("interrupted by the user (Ctrl-C): partial result")
        print("\nkafkabench: stopping workers, keeping the partial result ...", file=sys.stderr)
    except WorkerDied as exc:
        failure = str(exc)
        print(f"\nkafkabench: {failure}\nkafkabench: stopping the other workers ...", file=sys.stderr)
    finally:
        if backlog_pool is not None:
            backlog_pool.stop()
            backlog_pool.join(10)
        pool.stop()
        _collect_final_reports(pool, tally, topic_of, group_of,
                               {s.worker for s in producer_specs + consumer_specs})
        pool.join(10)
        tally.cpu_s["parent"] = sum(me.cpu_times()[:2]) - cpu0
        if sampler:
            try:
                sampler.sample_once()  # the final, settled committed offsets
            except Exception:  # noqa: BLE001 - a last sample is a nicety
                pass
            sampler.stop()
        if bar is not None:
            bar.close()
        if interrupted:
            t_end = time.monotonic()
            elapsed = t_end - t_go
    if created and not keep_topics:
        try:
            delete_topics(bootstrap, topic_names, conf=common, timeout_s=10)
        except ClusterError as exc:
            warnings.append(f"could not delete topics: {exc}")
    if failure is not None:
        tally.errors.add("worker_died", failure)
    result = _result(run_id, workload, profile, tally, sampler, started_at, elapsed, t_go,
                     interrupted, warnings, topic_names, bootstrap, commit, mode, rf)
    _mark_completeness(result.summary, tally, {g: topic_of[w] for w, g in group_of.items()},
                       interrupted, failure)
    saved = save(result, out) if out is not None else None
    if failure is not None:
        where = f"; the partial result is saved in {saved}" if saved else ""
        raise RunFailed(f"run {run_id} failed: {failure}{where}", result)
    return result


def _collect_final_reports(pool: WorkerPool, tally: _Tally, topic_of: dict, group_of: dict,
                           expected: set[str], timeout_s: float = 60.0) -> None:
    """After `pool.stop()`: take reports until every worker has sent its last one, has died
    (dead workers send none) or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while not expected <= pool.done | set(pool.dead()) and time.monotonic() < deadline:
        for r in pool.reports(0.5):
            tally.add(r, topic_of, group_of)
    for r in pool.reports(0.1):
        tally.add(r, topic_of, group_of)


def _wait_ready(pool: WorkerPool, tally: _Tally, names: set[str], topic_of: dict,
                group_of: dict) -> None:
    """Wait until every producer is set up and waiting for go (see `Control.wait_start`)."""
    deadline = time.monotonic() + ASSIGN_TIMEOUT_S
    while not names <= pool.ready | pool.done and time.monotonic() < deadline:
        for r in pool.reports(0.2):
            tally.add(r, topic_of, group_of)
        pool.check()


def _wait_assigned(pool: WorkerPool, tally: _Tally, specs: list[ConsumerSpec], partitions: int,
                   topic_of: dict, group_of: dict, warnings: list[str]) -> None:
    """Wait until the groups are settled, so producing starts on a stable assignment."""
    if not specs:
        return
    groups = defaultdict(list)
    for s in specs:
        groups[s.group].append(s.worker)
    deadline = time.monotonic() + ASSIGN_TIMEOUT_S
    while time.monotonic() < deadline:
        for r in pool.reports(0.2):
            tally.add(r, topic_of, group_of)
        pool.check()
        # Every partition owned, and every member working when there are enough partitions:
        # the first member to join takes everything until the group rebalances for the rest.
        if all(sum(len(tally.assigned[w]) for w in members) >= partitions and
               (len(members) > partitions or all(tally.assigned[w] for w in members))
               for members in groups.values()):
            return
        if pool.done:
            break
    warnings.append(f"consumer groups did not own every partition within {ASSIGN_TIMEOUT_S:.0f} s")


def _drain(pool: WorkerPool, tally: _Tally, groups: list[str], topic_of: dict, group_of: dict,
           timeout_s: float, warnings: list[str]) -> None:
    """Let consumers catch up with what was delivered; give up after `timeout_s` without progress."""
    if not groups:
        return
    topic_of_group = {g: topic_of[w] for w, g in group_of.items()}
    last_total, last_progress = -1, time.monotonic()
    while True:
        behind = [g for g in groups
                  if tally.consumed_by_group[g] < tally.delivered_by_topic[topic_of_group[g]]]
        if not behind:
            return
        total = sum(tally.consumed_by_group.values())
        if total != last_total:
            last_total, last_progress = total, time.monotonic()
        elif time.monotonic() - last_progress > timeout_s:
            warnings.append(f"groups {behind} had not consumed everything {timeout_s:.0f} s "
                            "after the last progress")
            return
        for r in pool.reports(0.5):
            tally.add(r, topic_of, group_of)
        pool.check()


def _update_bar(bar, tally: _Tally, workload: Workload, t_go: float) -> None:
    if bar.disable:
        return
    done = sum(c.get("sent", 0) for c in tally.counts.values())
    target = workload.message_count
    position = done if target else min(time.monotonic() - t_go, bar.total)
    bar.update(position - bar.n)
    # The newest second is still filling in (reports arrive one by one): show the one before.
    last = tally.counts.get(max(tally.counts, default=0) - 1, Counter())
    bar.set_postfix_str(f"{last.get('delivered', 0):,} msg/s, consumed {last.get('consumed', 0):,}/s, "
                        f"errors {sum(tally.errors.counts.values()) + sum(c.get('failed', 0) for c in tally.counts.values())}")


def _timeseries(tally: _Tally, groups: int) -> pd.DataFrame:
    cols = ["produced", "delivered", "failed", "consumed", "bytes", "consumed_bytes"]
    if not tally.counts:
        return pd.DataFrame(columns=cols + ["backlog"], index=pd.Index([], name="t", dtype="int64"))
    ts = pd.DataFrame.from_dict({t: dict(c) for t, c in tally.counts.items()}, orient="index")
    ts = ts.rename(columns={"sent": "produced"}).reindex(columns=cols).fillna(0).astype("int64")
    ts = ts.reindex(range(0, max(tally.counts) + 1), fill_value=0).sort_index()
    ts.index.name = "t"
    # A message can be counted consumed a second before its producer reports it delivered
    # (each worker reports on its own clock): never show a negative backlog.
    ts["backlog"] = (ts["delivered"].cumsum() - ts["consumed"].cumsum() // max(groups, 1)).clip(lower=0)
    for name, col, pcts in (("publish_latency_us", "publish_latency_ms", ("p50", "p99")),
                            ("e2e_latency_us", "e2e_latency_ms", ("p50", "p99")),
                            ("publish_delay_us", "publish_delay_us", ("p99",))):
        unit = "us" if col.endswith("_us") else "ms"
        for p in pcts:
            ts[f"{col}_{p}"] = [
                tally.histograms[(t, name)].percentiles(unit).get(p) if (t, name) in tally.histograms
                else float("nan") for t in ts.index]
    return ts


def _result(run_id: str, workload: Workload, profile: ClientProfile, tally: _Tally,
            sampler: LagSampler | None, started_at: datetime, elapsed: float, t_go: float,
            interrupted: bool, warnings: list[str], topics: list[str], bootstrap: str,
            commit: str, mode: str, rf: int | None = None) -> RunResult:
    warmup = workload.warmup_s
    ts = _timeseries(tally, workload.consumer_groups)
    measured = ts[ts.index >= warmup] if len(ts) else ts
    window = max(elapsed - warmup, 1e-9) if elapsed else float("nan")
    prod = tally.totals["producer"]
    cons = tally.totals["consumer"]
    histograms = {name: tally.merged(name, warmup) for name in HISTOGRAMS}
    # Consume rate: mean of the whole seconds in which consumers were busy; the first and
    # last of them are partial (start-up, drain) and left out when there are enough.
    consumed_secs = measured.index[measured["consumed"] > 0] if len(measured) else []
    busy = measured.loc[consumed_secs[0]:consumed_secs[-1], "consumed"] if len(consumed_secs) else []
    if len(busy) >= 3:
        busy = busy.iloc[1:-1]
    delivered_measured = int(measured["delivered"].sum()) if len(measured) else 0
    produced_measured = int(measured["produced"].sum()) if len(measured) else 0
    mean_size = workload.mean_message_size
    summary: dict[str, Any] = {
        "run_id": run_id, "name": workload.name, "started_at": started_at.isoformat(),
        "duration_s": round(elapsed, 3), "interrupted": interrupted,
        "kafka_version": KAFKA_VERSION, "kafkabench_version": __version__,
        "bootstrap": bootstrap, "topics": ",".join(topics), "commit": commit, "mode": mode,
        "replication_factor": rf,
        "produced": int(prod.get("sent", 0)), "delivered": int(prod.get("delivered", 0)),
        "failed": int(prod.get("failed", 0)), "buffer_full": int(prod.get("buffer_full", 0)),
        "consumed": int(cons.get("consumed", 0)),
        # Offset commits the members sent (not counting librdkafka's auto-commits).
        "offset_commits": int(cons.get("commits", 0)),
        "consumed_by_group": dict(tally.consumed_by_group),
        "target_rate": workload.producer_rate,
        "publish_rate": produced_measured / window if window == window else float("nan"),
        # Delivered per second until the last delivery report (the final flush included),
        # as kafka-producer-perf-test counts it.
        "delivery_rate": delivered_measured / max(tally.elapsed.get("producer_drained_s", elapsed)
                                                  - warmup, 1e-9) if elapsed else float("nan"),
        "consume_rate": float(busy.mean()) if len(busy) else 0.0,
    }
    summary["publish_mb_s"] = summary["delivery_rate"] * mean_size / 1e6
    summary["consume_mb_s"] = summary["consume_rate"] * mean_size / 1e6
    for name, prefix, unit in (("publish_latency_us", "publish_latency_ms", "ms"),
                               ("publish_delay_us", "publish_delay_us", "us"),
                               ("e2e_latency_us", "e2e_latency_ms", "ms")):
        h = histograms[name]
        for k, v in h.percentiles(unit).items():
            summary[f"{prefix}_{k}"] = v if h.count else float("nan")
    if workload.producer_rate:
        _judge_schedule(summary, warnings)
    summary.update(_cpu_summary(tally, summary, elapsed, mode))
    lag = sampler.frame() if sampler else None
    if lag is not None and len(lag):
        lag = lag.assign(t=(lag["time"] - pd.Timestamp(tally.t0_wall, unit="s", tz="UTC")
                            ).dt.total_seconds())
        summary.update(_lag_summary(lag, sampler))
    else:
        summary.update(lag_max_msgs=float("nan"), lag_max_s=float("nan"))
    rebalances = pd.DataFrame(tally.rebalances, columns=["t", "group", "member", "event", "partitions",
                                                           "count", "wall"])
    summary["rebalances"] = int((rebalances["event"] == "assign").sum()) if len(rebalances) else 0
    summary["errors"] = dict(tally.errors.counts)
    summary["error_messages"] = dict(tally.errors.messages)
    summary["warnings"] = warnings + tally.worker_errors
    summary.update(workload.as_flat_dict())
    summary.update(profile.as_flat_dict())
    frames = [parse_statistics(samples, t0=t_go, client=worker) for worker, samples in tally.stats]
    extra = {}
    if frames:
        extra["librdkafka"] = pd.concat(frames, ignore_index=True)
    if lag is not None:
        extra["lag"] = lag
    return RunResult(summary=summary, timeseries=ts, rebalances=rebalances, histograms=histograms,
                     config={"workload": workload.to_dict(),
                             "profile": profile.to_dict(redact_secrets=True)}, **extra)





def _judge_schedule(summary: dict[str, Any], warnings: list[str]) -> None:
    """`rate_held`: the target rate was met within `RATE_TOLERANCE` either way *and* the
    schedule did not slip (publish delay p50/p99 within bounds); `held_reason` says which
    part failed. A producer that fell seconds behind and then caught up shows a rate above
    target and a large publish delay: that is not a held rate."""
    target = summary["target_rate"]
    rate, p50, p99 = (summary["publish_rate"], summary.get("publish_delay_us_p50"),
                      summary.get("publish_delay_us_p99"))
    problems = []
    if not abs(rate - target) <= RATE_TOLERANCE * target:
        problems.append(f"publish rate {rate:,.0f} msg/s is {(rate - target) / target:+.1%} off the "
                        f"target {target:,.0f} msg/s (tolerance {RATE_TOLERANCE:.0%})")
    if p50 != p50 or p99 != p99:
        problems.append("no publish delay was recorded")
    elif p50 > MAX_DELAY_P50_US or p99 > MAX_DELAY_P99_US:
        problems.append(f"the schedule slipped: publish delay p50 {p50 / 1000:,.1f} ms, p99 "
                        f"{p99 / 1000:,.1f} ms (bounds {MAX_DELAY_P50_US / 1000:g} ms and "
                        f"{MAX_DELAY_P99_US / 1000:g} ms): sends went out later than scheduled")
    summary["rate_held"] = not problems
    summary["held_reason"] = "; ".join(problems) if problems else (
        f"rate within {RATE_TOLERANCE:.0%} of target, publish delay p50 {p50 / 1000:.2f} ms, "
        f"p99 {p99 / 1000:.2f} ms")
    if problems:
        warnings.append("target rate not held: " + "; ".join(problems))


def _cpu_summary(tally: _Tally, summary: dict[str, Any], elapsed: float, mode: str) -> dict[str, float]:
    """The load generator's CPU: on a shared machine it is CPU the broker did not get."""
    cpu = tally.cpu_s
    total = cpu["parent"] + cpu["producer"] + cpu["consumer"]
    messages = summary["produced"] + summary["consumed"]
    produced = summary["produced"]
    return {
        "loadgen_cpu_s": round(total, 3),
        "loadgen_cores": total / elapsed if elapsed else float("nan"),
        "cpu_us_per_msg": total * 1e6 / messages if messages else float("nan"),
        # Producer processes' own CPU (librdkafka included); threads share the parent's.
        "producer_cpu_us_per_msg": cpu["producer"] * 1e6 / produced
        if mode == "process" and produced else float("nan"),
    }


def _lag_summary(lag: pd.DataFrame, sampler: LagSampler) -> dict[str, Any]:
    """Peak and final lag, the groups' status and the sampler's own errors."""
    def peak(col: str) -> float:
        return float(lag[col].max()) if lag[col].notna().any() else float("nan")

    final = sampler.latest()
    final = final[final["status"] != "DELETED"]
    errors = sampler.errors()
    known = len(final) and final["lag_msgs"].notna().all() and not (final["status"] == "ERR").any()
    return {"lag_max_msgs": peak("lag_msgs"), "lag_max_s": peak("lag_s"),
            # Unknown (NaN) when the last sample could not read every partition's lag: not 0.
            "lag_final_msgs": float(final["lag_msgs"].sum()) if known else float("nan"),
            "lag_status": group_status(list(sampler.group_status().values())),
            "lag_errors": len(errors),
            "lag_error_messages": list(dict.fromkeys(errors["error"]))[:5]}


def _mark_completeness(summary: dict[str, Any], tally: _Tally, topic_of_group: dict[str, str],
                       interrupted: bool, failure: str | None) -> None:
    """`complete`: every group consumed what was delivered to its topic and no worker failed.

    Otherwise `complete` is False, `incomplete` lists why and `shortfall` gives each group's
    missing messages; a warning says it too.
    """
    reasons = []
    shortfall = {g: tally.delivered_by_topic[t] - tally.consumed_by_group[g]
                 for g, t in sorted(topic_of_group.items())
                 if tally.consumed_by_group[g] < tally.delivered_by_topic[t]}
    for g, n in shortfall.items():
        reasons.append(f"group {g!r} consumed {tally.consumed_by_group[g]:,} of the "
                       f"{tally.delivered_by_topic[topic_of_group[g]]:,} messages delivered "
                       f"({n:,} short)")
    if interrupted:
        reasons.append("interrupted by the user")
    if failure:
        reasons.append(failure)
    reasons.extend(tally.worker_errors)
    summary["complete"] = not reasons
    summary["incomplete"] = reasons
    summary["shortfall"] = shortfall
    if reasons and not interrupted:
        summary["warnings"].append("INCOMPLETE RUN: " + "; ".join(reasons))


def consume_topic(topic: str, *, messages: int | None = None, group: str | None = None,
                  profile: ClientProfile | dict | str | Path | None = None,
                  bootstrap: str | None = None, timeout_s: float = 10.0,
                  progress: bool = True, out: str | Path | None = None,
                  record_latency: bool = True) -> RunResult:
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

    Returns:
        A `RunResult` with consumed, consume_rate, consume_mb_s, end-to-end latency and the
        time until the consumer owned its partitions (`rebalance_time_ms`).
    """
    profile = load_profile(profile)
    if messages is not None and messages < 1:
        raise ConfigError(f"messages={messages!r}: must be >= 1")
    bootstrap = resolve_bootstrap(bootstrap)
    common = dict(profile.common)
    check_reachable(bootstrap, common)
    group = group or f"kb-consume-{uuid.uuid4().hex[:8]}"
    workload = Workload(name=f"consume-{topic}", consumer_groups=1, consumers_per_group=1)
    spec = ConsumerSpec(worker="consumer-0", group=group, topics=(topic,), max_messages=messages,
                        record_latency=record_latency,
                        config=profile.consumer_config(bootstrap, group,
                                                       **{"statistics.interval.ms": STATS_INTERVAL_MS}))
    tally, pool = _Tally(), WorkerPool("thread")
    started_at = datetime.now(UTC)
    tally.t0_wall, t_go = time.time(), time.monotonic()
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    pool.start(run_consumer, spec, spec.worker, "consumer")
    topic_of, group_of = {spec.worker: topic}, {spec.worker: group}
    bar = _progress(messages or 0, f"consume {topic}", progress)
    interrupted, warnings = False, []
    last_count, last_progress, first_assign = 0, time.monotonic(), None
    try:
        while True:
            for r in pool.reports(0.2):
                tally.add(r, topic_of, group_of)
                if r.kind == "rebalance" and first_assign is None and r.events[0]["event"] == "assign":
                    first_assign = time.monotonic() - t_go
            count = tally.consumed_by_group[group]
            if count != last_count:
                bar.update(count - last_count)
                last_count, last_progress = count, time.monotonic()
            if spec.worker in pool.done:
                break
            pool.check()
            if time.monotonic() - last_progress > timeout_s:
                if messages:
                    warnings.append(f"only {count} of {messages} messages within the timeout")
                break
    except KeyboardInterrupt:
        interrupted = True
        warnings.append("interrupted by the user (Ctrl-C): partial result")
    finally:
        pool.stop()
        while spec.worker not in pool.done and pool.alive():
            for r in pool.reports(0.5):
                tally.add(r, topic_of, group_of)
        for r in pool.reports(0.1):
            tally.add(r, topic_of, group_of)
        pool.join(10)
        bar.close()
        tally.cpu_s["parent"] = sum(me.cpu_times()[:2]) - cpu0
    # The consumer's own time from subscribing to its last message, join included, as
    # kafka-consumer-perf-test counts it (and not the idle timeout at the end).
    elapsed = tally.elapsed.get("consumer_elapsed_s") or (time.monotonic() - t_go)
    result = _result(make_run_id(workload.name), workload, profile, tally, None, started_at,
                     elapsed, t_go, interrupted, warnings, [topic], bootstrap, "auto", "thread")
    nbytes = int(tally.totals["consumer"].get("bytes", 0))
    result.summary.update(consumed_bytes=nbytes,
                          consume_rate=result.summary["consumed"] / max(elapsed, 1e-9),
                          consume_mb_s=nbytes / 1e6 / max(elapsed, 1e-9))
    result.summary["rebalance_time_ms"] = round(first_assign * 1000, 1) if first_assign else float("nan")
    result.summary["group"] = group
    if out is not None:
        save(result, out)
    return result
