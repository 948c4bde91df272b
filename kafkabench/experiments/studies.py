"""Experiments behind the notebooks: each runs sweeps against a cluster and returns one DataFrame.

| function | notebook |
| --- | --- |
| `scaling_consumers`, `lag_status`, `group_ids`, `run_watched` | 02 consumer groups and lag |
| `offline_shares`, `compare_strategies_live`, `consumer_balance`, `live_summary` | 03 partition strategies |
| `check_capacity_plan` | 04 capacity planning |
| `peak_rate`, `rate_latency_curve` | 05 end-to-end latency |
| `service_patterns`, `commit_strategy_crashes`, `exactly_once_curve` | 08 service patterns |

Every experiment is a sweep (`kafkabench.sweep`), so its runs are saved under
`<out>/sweeps/<name>/` and a rerun with the same setup reuses them. `ci_mode()` and
`size(ci=..., full=...)` choose between a CI-sized run (KAFKABENCH_CI=1: seconds per notebook,
results in a fresh temporary folder) and the full size meant for users.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from kafkabench.analysis import capacity
from kafkabench.cluster.admin import delete_topics
from kafkabench.cluster.local import resolve_bootstrap
from kafkabench.core.contract import column_names, summary_names
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.experiments.sweep import SweepSpec, run_sweep
from kafkabench.measure.lagmath import group_status
from kafkabench.results.store import load
from kafkabench.run.result import RunResult
from kafkabench.runner import run_workload
from kafkabench.spec.partitioning import Partitioner, analyze, get_strategy
from kafkabench.spec.profile import ClientProfile, load_profile
from kafkabench.spec.workload import Workload, key_sequence, load_workload

__all__ = ["ci_mode", "size", "results_dir", "run_options", "group_ids", "run_watched", "scaling_consumers",
           "lag_status", "offline_shares", "compare_strategies_live", "consumer_balance",
           "live_summary", "check_capacity_plan", "peak_rate", "rate_latency_curve",
           "service_patterns", "commit_strategy_crashes", "exactly_once_curve"]

T = TypeVar("T")
WorkloadSpec = Workload | Mapping[str, Any] | str | Path
ProfileSpec = ClientProfile | Mapping[str, Any] | str | Path | None
_results_dir: Path | None = None


def ci_mode() -> bool:
    """True when KAFKABENCH_CI is set to 1 / true / yes: notebooks run CI-sized."""
    return os.environ.get("KAFKABENCH_CI", "").strip().lower() in ("1", "true", "yes")


def size(*, ci: T, full: T) -> T:
    """`ci` in CI mode (`ci_mode()`), else `full`: the one place notebooks choose their size."""
    return ci if ci_mode() else full


def results_dir() -> Path:
    """Where notebooks save runs: KAFKABENCH_RESULTS, else "results"; in CI mode a fresh
    temporary folder per process, so CI always runs everything and leaves nothing behind."""
    global _results_dir
    if env := os.environ.get("KAFKABENCH_RESULTS"):
        return Path(env)
    if not ci_mode():
        return Path("results")
    if _results_dir is None:
        _results_dir = Path(tempfile.mkdtemp(prefix="kafkabench-ci-"))
    return _results_dir


def run_options() -> dict[str, Any]:
    """`run_workload` options for experiment runs: in CI, threads instead of processes
    (spawning a worker process costs a second or two, more than a CI run measures).

    Threads do not distort a CI run's latency: at 5,000 msgs/s of 1 KiB (acks=all, 3
    partitions, one consumer) 45 runs of each gave p50 3.7 ms in both modes and a median p99
    of 8.5 ms (threads) vs 8.2 ms (processes), in a script and in a Jupyter kernel alike.
    What does distort it is the cold start of a fresh topic and clients: give latency runs
    a warm-up (`warmup_s`), which took the median p99 to 6.4 ms, and on a CPU-starved
    machine from 25-106 ms to 10 ms.
    """
    return {"mode": "thread"} if ci_mode() else {}


def _sweep(name: str, workload: Workload, profile: ProfileSpec, grid: Mapping[str, Sequence],
           *, bootstrap: str | None, out: str | Path | None, progress: bool,
           repetitions: int = 1, **options: Any) -> pd.DataFrame:
    spec = SweepSpec(name=name, workload=workload, profile=profile, grid=grid,
                     repetitions=repetitions, run_options={**run_options(), **options})
    return run_sweep(spec, bootstrap=bootstrap, out=out if out is not None else results_dir(),
                     progress=progress)


def _with_consumers(workload: Workload, what: str) -> Workload:
    if workload.consumer_groups < 1 or workload.consumers_per_group < 1:
        raise ConfigError(f"{what} needs a workload with consumers; got consumer_groups="
                          f"{workload.consumer_groups}, consumers_per_group={workload.consumers_per_group}")
    return workload


# ------------------------------------------------------------------------- 02 consumer groups


def group_ids(workload: WorkloadSpec, run_id: str) -> list[str]:
    """The consumer group ids a run of `workload` with this `run_id` uses (for `lag_monitor`).

    Pass the same `run_id` to `run_workload` to watch its groups while it runs.
    """
    workload = load_workload(workload)
    return [f"{topic}-g{g}" for topic in workload.topic_names(run_id)
            for g in range(workload.consumer_groups)]


def run_watched(workload: WorkloadSpec, monitor: Any, profile: ProfileSpec = None, *, run_id: str,
                bootstrap: str | None = None, out: str | Path | None = None, progress: bool = True,
                **options: Any) -> RunResult:
    """Run a workload while a `widgets.lag_monitor` watches its groups, then stop the monitor
    before the run's topics are deleted.

    `run_workload` deletes its topics as it returns, and a monitor still sampling then
    records only errors (UNKNOWN_TOPIC_OR_PART) as its last samples. Here the run keeps its
    topics, the monitor stops with the group's final lag, and then the topics go.

    Args:
        workload: the load (with consumer groups, or there is nothing to watch).
        monitor: the monitor (anything with `stop()`), watching `group_ids(workload, run_id)`.
        profile: client profile.
        run_id: the run's id, the one the monitor's group ids were made with.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show a progress bar.
        **options: more `run_workload` options (default `run_options()`); `keep_topics=True`
            keeps the topics after the monitor stops.

    Returns:
        The run.
    """
    workload = load_workload(workload)
    options = {**run_options(), **options}
    keep = options.pop("keep_topics", False)
    result = None
    try:
        result = run_workload(workload, profile, bootstrap=bootstrap, progress=progress, run_id=run_id,
                              out=out if out is not None else results_dir(), keep_topics=True, **options)
    finally:
        monitor.stop()
        if not keep and options.get("topics") is None:
            try:
                delete_topics(resolve_bootstrap(bootstrap), workload.topic_names(run_id),
                              conf=load_profile(profile).common, timeout_s=10)
            except ClusterError as exc:  # after a failed run: that failure says more
                if result is not None:
                    result.summary.setdefault("warnings", []).append(f"could not delete topics: {exc}")
    return result


_SCALING_COLUMNS = ["consumers", *summary_names(
    "publish_rate", "consume_rate", "consume_mb_s", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
    "lag_max_msgs", "lag_max_s", "lag_final_msgs", "lag_status", "rebalances", "duration_s", "run_id"),
    "path"]


def scaling_consumers(counts: Iterable[int], workload: WorkloadSpec, profile: ProfileSpec = None, *,
                      bootstrap: str | None = None, out: str | Path | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """Run the same load with 1, 2, ... N consumers per group.

    Use a workload with a backlog (`backlog_messages`) or a rate one consumer cannot keep up
    with: extra consumers only help while there is lag to share. A group can use at most as
    many consumers as its topic has partitions; the rest stay idle.

    Args:
        counts: consumers per group, one run each, e.g. `[1, 2, 4]`.
        workload: the load (needs at least one consumer group).
        profile: client profile.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show progress bars.

    Returns:
        One row per count with columns `consumers`, publish and consume rates, end-to-end
        latency, `lag_max_msgs`, `lag_max_s`, `lag_final_msgs`, `lag_status` (Burrow-style),
        `rebalances` (assignments seen), `duration_s`, `run_id`, and `path` (load the run
        with `results.load(path)` for its lag and rebalance timeline).
    """
    workload = _with_consumers(load_workload(workload), "scaling_consumers")
    counts = [int(c) for c in counts]
    table = _sweep("scaling-consumers", workload, profile, {"consumers_per_group": counts},
                   bootstrap=bootstrap, out=out, progress=progress)
    table = table.assign(consumers=table["workload.consumers_per_group"].astype("int64"))
    return table.reindex(columns=_SCALING_COLUMNS)


def lag_status(lag: pd.DataFrame) -> pd.DataFrame:
    """Burrow-style status per partition at the last sample, and per group.

    Args:
        lag: a run's lag frame (`RunResult.lag` or `LagSampler.frame()`).

    Returns:
        One row per group and partition: group, topic, partition, committed, log_end,
        lag_msgs, lag_s, status (OK, WARN, ERR, STOP, STALL), and `group_status`, the
        group's worst partition status.
    """
    columns = [*column_names("lag", "group", "topic", "partition", "committed", "log_end", "lag_msgs",
                             "lag_s", "status"), "group_status"]
    lag = lag[lag["partition"] >= 0] if len(lag) else lag
    if lag.empty:
        return pd.DataFrame(columns=columns)
    latest = lag[lag["t"] == lag.groupby(["group", "topic", "partition"])["t"].transform("max")]
    latest = latest.drop_duplicates(["group", "topic", "partition"], keep="last")
    worst = latest.groupby("group")["status"].agg(lambda s: group_status(list(s)))
    latest = latest.assign(group_status=latest["group"].map(worst))
    return latest.sort_values(["group", "topic", "partition"]).reset_index(drop=True)[columns]


# ------------------------------------------------------------------------- 03 partition strategies


def offline_shares(strategies: Iterable[str | Partitioner], keys: WorkloadSpec | Iterable[bytes | str | None],
                   partitions: int | None = None) -> pd.DataFrame:
    """Share of messages per partition for each strategy, computed offline (no broker).

    Args:
        strategies: strategy names (`partitioning.STRATEGIES`) or partitioners.
        keys: a key sample (`partitioning.key_sample`), or a workload: its producer's exact
            key sequence, so the result predicts what `compare_strategies_live` measures.
        partitions: partition count (default: the workload's).

    Returns:
        Long format for `plots.partition_share` / `partition_heatmap`: strategy, partition,
        messages, share.
    """
    if isinstance(keys, (Workload, Mapping, str, Path)):
        workload = load_workload(keys)
        partitions = partitions or workload.partitions
        keys = key_sequence(workload, seed=0)  # the seed of the runner's first producer
    if partitions is None:
        raise ConfigError("offline_shares needs partitions= with a key sample")
    keys = list(keys)
    frames = [analyze(s, keys, partitions).per_partition.assign(strategy=get_strategy(s, partitions).name)
              for s in strategies]
    return pd.concat(frames, ignore_index=True)[["strategy", "partition", "messages", "share"]]


def _owners(rebalances: pd.DataFrame, end: float) -> dict[int, str]:
    """Partition -> the member that owned it longest, from assign/revoke events."""
    held: dict[tuple[str, int], float] = {}
    since: dict[tuple[str, int], float] = {}
    for row in rebalances.sort_values("t", kind="stable").itertuples(index=False):
        for item in filter(None, str(row.partitions).split(",")):
            key = (row.member, int(item.rpartition(":")[2]))
            if row.event == "assign":
                since[key] = row.t
            elif key in since:
                held[key] = held.get(key, 0.0) + row.t - since.pop(key)
    for key, t in since.items():
        held[key] = held.get(key, 0.0) + max(end - t, 0.0)
    owners: dict[int, tuple[float, str]] = {}
    for (member, partition), seconds in held.items():
        if partition not in owners or seconds > owners[partition][0]:
            owners[partition] = (seconds, member)
    return {p: m for p, (_, m) in owners.items()}


_LIVE_COLUMNS = ["strategy", "partition", "messages", "share", "msgs_per_s", "consumer",
                 "lag_max_msgs", "lag_mean_msgs", "lag_max_s", "run_id"]


def compare_strategies_live(strategies: Iterable[str], workload: WorkloadSpec, profile: ProfileSpec = None, *,
                            bootstrap: str | None = None, out: str | Path | None = None,
                            progress: bool = True) -> pd.DataFrame:
    """Run the same load once per partitioning strategy and measure each partition.

    Messages per partition come from the brokers (each partition's log-end offset at the
    end of the run, on a fresh topic); the consumer of a partition is the group member that
    owned it longest. Built-in strategies are set as librdkafka's `partitioner`; custom ones
    (`fnv1a-rr`, `priority`) choose the partition in Python.

    Args:
        strategies: strategy names, e.g. `["murmur2_random", "consistent_random", "fnv1a-rr"]`.
        workload: the load; use keys (`key_distribution` zipf, random, ...), since without
            keys every strategy is librdkafka's sticky partitioner. Needs a consumer group.
        profile: client profile.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show progress bars.

    Returns:
        One row per strategy and partition: strategy, partition, messages, share (of the
        strategy's messages), msgs_per_s, consumer, lag_max_msgs, lag_mean_msgs, lag_max_s,
        run_id. See `consumer_balance` and `live_summary`.
    """
    workload = _with_consumers(load_workload(workload), "compare_strategies_live")
    strategies = list(strategies)
    table = _sweep("strategies-live", workload, profile, {"run.partitioner": strategies},
                   bootstrap=bootstrap, out=out, progress=progress)
    frames = []
    for row in table.to_dict("records"):
        run = load(row["path"])
        strategy = get_strategy(row["run.partitioner"], workload.partitions).name
        lag = run.lag[(run.lag["partition"] >= 0) & (run.lag["group"] == run.lag["group"].iloc[0])] \
            if len(run.lag) else run.lag
        per = pd.DataFrame({"partition": range(workload.partitions)})
        if len(lag):
            by = lag.groupby("partition")
            last = lag.loc[by["t"].idxmax(), ["partition", "log_end"]].set_index("partition")["log_end"]
            per["messages"] = per["partition"].map(last).fillna(0).astype("int64")
            per["lag_max_msgs"] = per["partition"].map(by["lag_msgs"].max().astype("float64"))
            per["lag_mean_msgs"] = per["partition"].map(by["lag_msgs"].mean().astype("float64"))
            per["lag_max_s"] = per["partition"].map(by["lag_s"].max())
        else:
            per = per.assign(messages=0, lag_max_msgs=np.nan, lag_mean_msgs=np.nan, lag_max_s=np.nan)
        total = per["messages"].sum()
        per["share"] = per["messages"] / total if total else np.nan
        per["msgs_per_s"] = per["messages"] / max(float(row["duration_s"] or 0), 1e-9)
        owners = _owners(run.rebalances, float(run.rebalances["t"].max()) if len(run.rebalances) else 0.0)
        per["consumer"] = per["partition"].map(owners)
        frames.append(per.assign(strategy=strategy, run_id=row["run_id"]))
    return pd.concat(frames, ignore_index=True)[_LIVE_COLUMNS]


def consumer_balance(per_partition: pd.DataFrame) -> pd.DataFrame:
    """Per-consumer load and lag from `compare_strategies_live`: how evenly members share work.

    Returns:
        One row per strategy and consumer: partitions, messages, share, lag_max_msgs,
        lag_mean_msgs (sum of its partitions' mean lag), and `imbalance`: the consumer's
        messages / the mean per consumer of its strategy (1.0 = even; 2.0 = twice its share).
    """
    frame = per_partition.assign(consumer=per_partition["consumer"].fillna("(unassigned)"))
    out = frame.groupby(["strategy", "consumer"], sort=False).agg(
        partitions=("partition", "count"), messages=("messages", "sum"), share=("share", "sum"),
        lag_max_msgs=("lag_max_msgs", "max"), lag_mean_msgs=("lag_mean_msgs", "sum")).reset_index()
    mean = out.groupby("strategy", sort=False)["messages"].transform("mean")
    return out.assign(imbalance=out["messages"] / mean.where(mean > 0))


def live_summary(per_partition: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy from `compare_strategies_live`, in `compare_strategies`' terms.

    Returns:
        strategy, partitions, messages, skew (busiest partition / mean), cv, empty,
        consumers, consumer_skew (busiest consumer / mean), lag_max_msgs.
    """
    rows = []
    balance = consumer_balance(per_partition)
    for strategy, part in per_partition.groupby("strategy", sort=False):
        m = part["messages"].to_numpy(dtype=float)
        mean = m.mean() if len(m) else math.nan
        members = balance[balance["strategy"] == strategy]
        rows.append({"strategy": strategy, "partitions": len(part), "messages": int(m.sum()),
                     "skew": m.max() / mean if mean else math.nan,
                     "cv": m.std() / mean if mean else math.nan, "empty": int((m == 0).sum()),
                     "consumers": len(members), "consumer_skew": float(members["imbalance"].max()),
                     "lag_max_msgs": float(part["lag_max_msgs"].max())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- 04 capacity


def check_capacity_plan(inputs: capacity.CapacityInputs, workload: WorkloadSpec | None = None,
                        profile: ProfileSpec = None, *, max_backlog_s: float = 2.0, tolerance: float = 0.05,
                        bootstrap: str | None = None, out: str | Path | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """Run a capacity plan on the cluster: its partitions and consumers at the target rate.

    The plan is `capacity.plan(inputs)`. The run uses the workload (message size, keys,
    duration) with the plan's partitions, `inputs.consumers` consumers per group,
    `round(inputs.consumer_fanout)` groups (at least 1) and a producer rate of
    `target_mb_s` in messages/s of the workload's mean message size.

    Args:
        inputs: the planning inputs (target, measured per-partition throughputs, consumers).
        workload: the base load (default: 1 KB messages for 10 s).
        profile: client profile.
        max_backlog_s: the plan holds when consumers stay within this many seconds of
            producers: the backlog (delivered minus consumed messages, per second) never
            exceeds this many seconds of the target rate.
        tolerance: the rate is held when producers reach (1 - tolerance) x the target and
            consumers (1 - tolerance) x what was produced, both over the run's duration.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show progress bars.

    Returns:
        For `plots.predicted_vs_measured`: one row per metric (`produce`, `consume` in MB/s,
        `backlog` in s, `partitions`) with unit, predicted, measured, ok (rate held, lag
        bounded), and run_id and path of the run.
    """
    planned = capacity.plan(inputs)
    base = load_workload(workload) if workload is not None else Workload(name="capacity-check",
                                                                           message_size=1024, duration_s=10)
    rate = inputs.target_mb_s * 1e6 / base.mean_message_size
    groups = max(1, round(inputs.consumer_fanout))
    run_workload_ = replace(base, partitions=planned.partitions, consumers_per_group=inputs.consumers,
                            consumer_groups=groups, producer_rate=round(rate, 3), backlog_messages=0,
                            message_count=None)
    table = _sweep("capacity-check", run_workload_, profile, {}, bootstrap=bootstrap, out=out,
                   progress=progress)
    row = table.iloc[-1]
    ts = load(row["path"]).timeseries
    measured_ts = ts[ts.index >= run_workload_.warmup_s] if len(ts) else ts
    backlog_s = float(measured_ts["backlog"].max() / rate) if len(measured_ts) and rate else math.nan
    produce = float(row["publish_mb_s"])
    # Over the run's duration, like produce: the summary's consume_rate counts whole seconds
    # with consumption, which on a short run halves it when the last second holds a few.
    consume = float(row["consumed"]) / groups * base.mean_message_size / 1e6 / max(float(row["duration_s"]), 1e-9)
    rows = [
        {"metric": "produce", "unit": "MB/s", "predicted": inputs.target_mb_s, "measured": produce,
         "ok": float(row["publish_rate"]) >= (1 - tolerance) * rate},
        {"metric": "consume", "unit": "MB/s", "predicted": inputs.target_mb_s, "measured": consume,
         "ok": consume >= (1 - tolerance) * produce},
        {"metric": "backlog", "unit": "s", "predicted": max_backlog_s, "measured": backlog_s,
         "ok": backlog_s <= max_backlog_s},
        {"metric": "partitions", "unit": "", "predicted": planned.partitions,
         "measured": int(row["workload.partitions"]), "ok": True},
    ]
    return pd.DataFrame(rows).assign(run_id=row["run_id"], path=row["path"])


# ------------------------------------------------------------------------- 05 latency


def peak_rate(workload: WorkloadSpec, profile: ProfileSpec = None, *, bootstrap: str | None = None,
              out: str | Path | None = None, progress: bool = True) -> float:
    """The workload's maximum publish rate (msgs/s): one run with `producer_rate` 0."""
    workload = replace(load_workload(workload), producer_rate=0.0)
    table = _sweep("peak-rate", workload, profile, {}, bootstrap=bootstrap, out=out, progress=progress)
    return float(table["publish_rate"].iloc[-1])


_CURVE_COLUMNS = [*summary_names("target_rate", "publish_rate", "rate_held", "publish_mb_s",
                                  "e2e_latency_ms_p50", "e2e_latency_ms_p99", "e2e_latency_ms_p99_9",
                                  "publish_latency_ms_p50", "publish_latency_ms_p99"),
                  "publish_delay_ms_p50", "publish_delay_ms_p99",
                  *summary_names("lag_max_msgs", "lag_max_s", "run_id"), "path"]


def rate_latency_curve(rates: Iterable[float], workload: WorkloadSpec, profile: ProfileSpec = None, *,
                       bootstrap: str | None = None, out: str | Path | None = None,
                       progress: bool = True) -> pd.DataFrame:
    """Step the producer rate up (past saturation) and measure latency at each step.

    Producers are rate-controlled with an intended send time per message, so once the
    target exceeds what the cluster and clients sustain, the schedule slips: publish delay
    (intended to actual send time) grows with every second, and end-to-end latency, measured
    from the intended send time, includes it. That is the coordinated-omission correction: a
    benchmark measuring from the actual send time would report flat latency past saturation.

    Args:
        rates: target rates in msgs/s (all topics), e.g. fractions of `peak_rate()`.
        workload: the load (a consumer group for end-to-end latency).
        profile: client profile.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show progress bars.

    Returns:
        One row per rate, in rising target order: target_rate, publish_rate, rate_held,
        publish_mb_s, end-to-end and publish latency percentiles (ms), publish delay
        percentiles converted to ms (`publish_delay_ms_p50`, `_p99`), lag, run_id, path.
    """
    rates = sorted(round(float(r), 3) for r in rates)
    if not rates or rates[0] <= 0:
        raise ConfigError(f"rates={rates!r}: expected positive msgs/s (0 would be max rate)")
    table = _sweep("rate-latency", load_workload(workload), profile, {"producer_rate": rates},
                   bootstrap=bootstrap, out=out, progress=progress)
    for p in ("p50", "p99"):
        table[f"publish_delay_ms_{p}"] = pd.to_numeric(table[f"publish_delay_us_{p}"], errors="coerce") / 1000
    return table.reindex(columns=_CURVE_COLUMNS)


# ------------------------------------------------------------------------- 08 service patterns

_PATTERN_COLUMNS = ["pattern", *summary_names(
    "processing_processed", "processing_retried", "processing_forwarded", "processing_dead_lettered",
    "processing_latency_ms_p99", "processing_done_latency_ms_p50", "processing_done_latency_ms_p99",
    "processing_output_e2e_latency_ms_p50", "processing_output_e2e_latency_ms_p99", "e2e_latency_ms_p99", "consume_rate", "lag_max_msgs", "lag_max_s", "run_id"), "path"]


def _saved_run(workload: Workload, profile: ProfileSpec, *, bootstrap: str | None,
               out: str | Path | None, progress: bool, **options: Any) -> tuple[RunResult, Path]:
    """One run, saved under `out` (default `results_dir()`); returns it and its folder."""
    out = Path(out if out is not None else results_dir())
    result = run_workload(workload, profile, bootstrap=bootstrap, out=out, progress=progress,
                          **{**run_options(), **options})
    return result, out / result.run_id


def service_patterns(patterns: Mapping[str, Mapping[str, Any]], workload: WorkloadSpec,
                     profile: ProfileSpec = None, *, bootstrap: str | None = None,
                     out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Run the same load once per processing stage (`kafkabench.processing.Processing` fields),
    e.g. inline retries against retry topics at the same injected failures.

    Args:
        patterns: label -> the workload's `processing` section for that run.
        workload: the load (needs a consumer group).
        profile: client profile.
        bootstrap: bootstrap servers.
        out: results folder (default `results_dir()`).
        progress: show progress bars.

    Returns:
        One row per pattern: counts (processed, retried, forwarded, dead-lettered), processing
        and done latencies, end-to-end through the stage (with `output: true`), end-to-end p99
        to the members, consume rate, peak lag, `run_id`, and `path`
        (`results.load(path)` for its `lag`, `processing` and `dead_letters` frames).
    """
    workload = _with_consumers(load_workload(workload), "service_patterns")
    rows = []
    for label, processing in patterns.items():
        result, path = _saved_run(replace(workload, name=f"{workload.name}-{label}".replace(" ", "-"),
                                          processing=dict(processing)),
                                  profile, bootstrap=bootstrap, out=out, progress=progress)
        rows.append({**result.summary, "pattern": label, "path": str(path)})
    return pd.DataFrame(rows).reindex(columns=_PATTERN_COLUMNS)


_CRASH_COLUMNS = ["commit", "processed_twice", "without_output", *summary_names(
    "processing_processed", "offset_commits", "consume_rate", "lag_max_msgs", "run_id"), "path"]


def commit_strategy_crashes(modes: Iterable[str], workload: WorkloadSpec, profile: ProfileSpec = None, *,
                            crash_at_s: float, restart_at_s: float | None = None,
                            bootstrap: str | None = None, out: str | Path | None = None,
                            progress: bool = True) -> pd.DataFrame:
    """SIGKILL one group member mid-run under each commit mode and count what was processed
    twice (from the output topic's `kb-src` headers) and what has no output (lost).

    Args:
        modes: commit modes (`kafkabench.consumer.COMMIT_MODES`), one run each.
        workload: the load: a consumer group of 2 or more members, rate-limited; its
            `processing` gets `output: true`.
        profile: client profile; a short `session.timeout.ms` (6000, the broker's minimum)
            makes the group notice the crash sooner.
        crash_at_s: when member 0 is killed, after the producers start.
        restart_at_s: when it starts again (None: it stays dead).
        bootstrap, out, progress: as for `service_patterns`.

    Returns:
        One row per mode: `processed_twice`, `without_output`, processed, offset commits,
        consume rate, peak lag, `run_id`, `path`.
    """
    workload = _with_consumers(load_workload(workload), "commit_strategy_crashes")
    events = [{"at_s": crash_at_s, "action": "crash", "member": 0}]
    if restart_at_s is not None:
        events.append({"at_s": restart_at_s, "action": "restart", "member": 0})
    # No injected failures: every input must have exactly one output, so what is missing or
    # doubled is the crash's doing.
    processing = {**(workload.processing.to_dict() if workload.processing else {}), "output": True,
                  "poison_fraction": 0.0, "transient_fraction": 0.0, "filter_fraction": 0.0,
                  "filter_header": None}
    rows = []
    for mode in modes:
        result, path = _saved_run(replace(workload, name=f"{workload.name}-{mode}", processing=processing,
                                          membership=events),
                                  profile, bootstrap=bootstrap, out=out, progress=progress,
                                  commit=mode, mode="process")
        s = result.summary
        rows.append({**s, "commit": mode, "processed_twice": s.get("processing_output_duplicated"),
                     "without_output": s["delivered"] - s.get("processing_output_inputs", 0),
                     "path": str(path)})
    return pd.DataFrame(rows).reindex(columns=_CRASH_COLUMNS)


_TXN_COLUMNS = ["producer", "messages_per_transaction", *summary_names(
    "publish_rate", "delivery_rate", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
    "transaction_latency_ms_p50", "run_id")]


def exactly_once_curve(sizes: Iterable[int], workload: WorkloadSpec, *, bootstrap: str | None = None,
                       out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Transactional produce at each transaction size against acks=1 and idempotent-only
    baselines, the same load each time (read_committed consumers, librdkafka's default).

    Returns:
        One row per run: `producer` ("acks=1", "idempotent", "transactional"),
        `messages_per_transaction` (0 for the baselines), rates, end-to-end p50/p99, commit
        time p50, `run_id`.
    """
    workload = load_workload(workload)
    runs = [("acks=1", 0, {"acks": 1}), ("idempotent", 0, {"acks": "all", "enable.idempotence": True})]
    runs += [("transactional", int(n), {"acks": "all", "enable.idempotence": True}) for n in sizes]
    rows = []
    for label, n, producer in runs:
        result, _ = _saved_run(replace(workload, name=f"{workload.name}-txn{n}", transaction_messages=n),
                               {"name": label, "producer": producer},
                               bootstrap=bootstrap, out=out, progress=progress)
        rows.append({**result.summary, "producer": label, "messages_per_transaction": n})
    return pd.DataFrame(rows).reindex(columns=_TXN_COLUMNS)


# ------------------------------------------------------------------------- 09 rebalancing

#: Rebalance protocols and assignors `rebalance_comparison` compares: label -> consumer settings.
REBALANCE_VARIANTS: dict[str, dict[str, str]] = {
    "range": {"partition.assignment.strategy": "range"},
    "roundrobin": {"partition.assignment.strategy": "roundrobin"},
    "cooperative-sticky": {"partition.assignment.strategy": "cooperative-sticky"},
    "KIP-848 uniform": {"group.protocol": "consumer", "group.remote.assignor": "uniform"},
    "KIP-848 range": {"group.protocol": "consumer", "group.remote.assignor": "range"},
}

_REBALANCE_COLUMNS = ["variant", "static", *column_names(
    "membership", "action", "at_s", "detect_s", "stable_s", "partition_pause_s", "group_pause_s",
    "partitions_revoked", "partitions_assigned", "partitions_moved", "duplicates", "lag_peak_msgs",
    "drain_s"), "run_id", "path"]


def rebalance_profile(settings: Mapping[str, Any], *, session_timeout_ms: int, heartbeat_interval_ms: int,
                      static: bool) -> tuple[dict[str, Any], dict[str, int]]:
    """(the client profile, the KIP-848 group settings) of one `rebalance_comparison` variant:
    the classic protocol takes its session timeout and heartbeat from the client, KIP-848
    groups from the broker's group configs."""
    consumer = dict(settings)
    group: dict[str, int] = {}
    if str(consumer.get("group.protocol", "classic")) == "consumer":
        group = {"consumer.session.timeout.ms": session_timeout_ms,
                 "consumer.heartbeat.interval.ms": heartbeat_interval_ms}
    else:
        consumer.update({"session.timeout.ms": session_timeout_ms, "heartbeat.interval.ms": heartbeat_interval_ms})
    if static:
        consumer["group.instance.id"] = "kb"  # the plan makes one id per member of it
    return {"name": "rebalance", "consumer": consumer}, group


def rebalance_comparison(variants: Mapping[str, Mapping[str, Any]] | Iterable[str], workload: WorkloadSpec,
                         events: Iterable[Mapping[str, Any]], *, static: bool | Iterable[bool] = False,
                         session_timeout_ms: int = 6000, heartbeat_interval_ms: int = 1000,
                         commit: str = "sync", commit_on_revoke: bool = True, bootstrap: str | None = None,
                         out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Run the same load and membership events once per rebalance protocol/assignor and
    measure each event (`kafkabench.membership.event_figures`).

    Args:
        variants: label -> consumer settings, or labels of `REBALANCE_VARIANTS`.
        workload: the load: a consumer group of 2 or more members, rate-limited producers.
        events: the membership schedule (`kafkabench.membership.MemberEvent` fields), e.g.
            `[{"at_s": 4, "action": "join"}, {"at_s": 10, "action": "crash", "member": 0}]`.
        static: static membership (`group.instance.id` per member), or several values to
            run each variant with each.
        session_timeout_ms, heartbeat_interval_ms: the same for every variant (classic: the
            client's settings; KIP-848: the group's configs, `membership.GroupSettings`).
        commit: the members' commit mode (`sync`: after each batch and on revoke).
        commit_on_revoke: False: members do not commit when partitions are revoked (the
            rebalance listener off; see `run_workload`).
        bootstrap, out, progress: as for `service_patterns`.

    Returns:
        One row per variant, static setting and event: the event's figures, `run_id`, `path`.
    """
    from kafkabench.groups.observer import GroupSettings

    if not isinstance(variants, Mapping):
        unknown = [v for v in variants if v not in REBALANCE_VARIANTS]
        if unknown:
            raise ConfigError(f"rebalance variants {unknown}: expected labels of REBALANCE_VARIANTS "
                              f"({', '.join(REBALANCE_VARIANTS)}) or a mapping label -> settings")
        variants = {v: REBALANCE_VARIANTS[v] for v in variants}
    workload = _with_consumers(load_workload(workload), "rebalance_comparison")
    workload = replace(workload, membership=list(events))
    bootstrap = resolve_bootstrap(bootstrap)
    rows = []
    for label, settings in variants.items():
        for is_static in ([static] if isinstance(static, bool) else list(static)):
            profile, group = rebalance_profile(settings, session_timeout_ms=session_timeout_ms,
                                               heartbeat_interval_ms=heartbeat_interval_ms, static=is_static)
            name = f"{workload.name}-{label}{'-static' if is_static else ''}".replace(" ", "-")
            result, path = _saved_run(replace(workload, name=name), profile, bootstrap=bootstrap, out=out,
                                      progress=progress, commit=commit, mode="process",
                                      commit_on_revoke=commit_on_revoke,
                                      observers=[GroupSettings(group, bootstrap)] if group else None)
            for event in result.membership.to_dict("records"):
                rows.append({**event, "variant": label, "static": is_static,
                             "run_id": result.run_id, "path": str(path)})
    return pd.DataFrame(rows).reindex(columns=_REBALANCE_COLUMNS)
