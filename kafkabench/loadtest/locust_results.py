"""Locust runs from Python without importing locust: run it headless, read its CSV files.

Importing locust monkey-patches the process with gevent, which breaks librdkafka's threads
and multiprocessing; so notebooks and tests run `python -m locust --headless --csv=...` as a
subprocess (`run_locust`), sample consumer lag meanwhile (`IsolatedLagSampler`), and turn Locust's
`_stats.csv`, `_stats_history.csv` and `_failures.csv` into DataFrames and a
`kafkabench.results.RunResult` shaped like the engine's, so the same plots and comparisons
apply.

Locust's statistics round response times to whole milliseconds below 100 ms (2 significant
digits above), and the per-second percentiles of its history are over a rolling 10 s window:
the latency figures here are Locust's, with that resolution.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from kafkabench import KAFKA_VERSION, __version__
from kafkabench.core import contract
from kafkabench.core.errors import ConfigError, KafkabenchError
from kafkabench.loadtest.shapes import SHAPES
from kafkabench.run.result import RunResult, empty_lag, empty_rebalances, make_run_id
from kafkabench.run.summary import build_summary

if TYPE_CHECKING:
    from kafkabench.spec.processing import Processing

#: Folder of the locustfiles that come with kafkabench (installed with the package).
LOCUSTFILES = Path(str(importlib.resources.files("kafkabench") / "locustfiles"))

#: Locust's percentile columns -> kafkabench summary suffixes.
PERCENTILE_COLUMNS = {"50%": "p50", "75%": "p75", "95%": "p95", "99%": "p99",
                      "99.9%": "p99_9", "99.99%": "p99_99", "100%": "max"}
STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                 "Average Response Time", "Min Response Time", "Max Response Time",
                 "Average Content Size", "Requests/s", "Failures/s", "50%", "66%", "75%", "80%",
                 "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
                   "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%",
                   "100%", "Total Request Count", "Total Failure Count",
                   "Total Median Response Time", "Total Average Response Time",
                   "Total Min Response Time", "Total Max Response Time",
                   "Total Average Content Size"]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
WORKERS_COLUMNS = ["Worker", "Request Count", "Failure Count"]
#: Columns of `locust_timeseries`: the engine's timeseries columns, then Locust's own.
TIMESERIES_COLUMNS = contract.columns("timeseries", "locust")
# Startup (imports, topic creation, workers connecting) and shutdown allowance of a run.
STARTUP_ALLOWANCE_S = 90.0
_ERROR_CODE = re.compile(r"KafkaDeliveryError\(['\"]([A-Z_][A-Z0-9_]*):")


def locustfile_path(name: str | os.PathLike) -> Path:
    """Path of a locustfile: one that comes with kafkabench, or any other.

    Args:
        name: a name of kafkabench's ("producer_load", "consumer_load", "mixed"), its file
            name ("mixed.py"), or the path of any locustfile (an existing file wins over a
            kafkabench locustfile of the same name).

    Returns:
        The file's path.

    Raises:
        ConfigError: no such file, listing kafkabench's locustfiles.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1:  # a bare name: one of kafkabench's
        packaged = LOCUSTFILES / (path.name if path.suffix == ".py" else f"{path.name}.py")
        if packaged.is_file():
            return packaged
    found = ", ".join(sorted(p.stem for p in LOCUSTFILES.glob("*.py"))) or "none"
    raise ConfigError(f"no locustfile {str(name)!r}: give the path of a locustfile, or one of "
                      f"kafkabench's: {found}")


# --- reading Locust's CSV files -------------------------------------------------------------


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise KafkabenchError(f"no Locust CSV file {str(path)!r}")
    frame = pd.read_csv(path, na_values=["N/A"], keep_default_na=True)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KafkabenchError(f"{str(path)!r} lacks Locust's columns {missing}")
    for column in ("Type", "Name", "Method", "Error", "Worker"):
        if column in frame:
            frame[column] = frame[column].fillna("").astype("str")
    return frame


def read_stats(prefix: str | os.PathLike) -> pd.DataFrame:
    """`<prefix>_stats.csv`: one row per request type and name, plus "Aggregated".

    Returns:
        Locust's columns (Type, Name, Request Count, ..., 50% ... 100%); "N/A" is NaN.
    """
    return _read_csv(Path(f"{prefix}_stats.csv"), STATS_COLUMNS)


def read_history(prefix: str | os.PathLike) -> pd.DataFrame:
    """`<prefix>_stats_history.csv`: one row a second (per type and name with
    --csv-full-history, else only "Aggregated").

    Returns:
        Locust's columns plus `t`: seconds since the first row.
    """
    frame = _read_csv(Path(f"{prefix}_stats_history.csv"), HISTORY_COLUMNS)
    t0 = frame["Timestamp"].min() if len(frame) else 0
    return frame.assign(t=(frame["Timestamp"] - t0).astype("int64"))


def read_failures(prefix: str | os.PathLike) -> pd.DataFrame:
    """`<prefix>_failures.csv`: Method, Name, Error, Occurrences (and First/Last Seen)."""
    return _read_csv(Path(f"{prefix}_failures.csv"), FAILURES_COLUMNS)


def read_workers(prefix: str | os.PathLike) -> pd.DataFrame:
    """`<prefix>_workers.csv` that a distributed master writes (kafkabench.locust_user).

    Returns:
        Worker, Request Count, Failure Count; empty when the run was not distributed.
    """
    path = Path(f"{prefix}_workers.csv")
    if not path.is_file():
        return pd.DataFrame({"Worker": pd.Series(dtype="str"),
                             "Request Count": pd.Series(dtype="int64"),
                             "Failure Count": pd.Series(dtype="int64")})
    return _read_csv(path, WORKERS_COLUMNS)


@dataclass(slots=True)
class LocustFrames:
    """The CSV files of one Locust run as DataFrames (see the `read_*` functions)."""

    stats: pd.DataFrame
    history: pd.DataFrame
    failures: pd.DataFrame
    workers: pd.DataFrame


def load_csv(prefix: str | os.PathLike) -> LocustFrames:
    """Read every CSV file Locust wrote with `--csv <prefix>`.

    Raises:
        KafkabenchError: a file is missing or is not Locust's.
    """
    return LocustFrames(stats=read_stats(prefix), history=read_history(prefix),
                        failures=read_failures(prefix), workers=read_workers(prefix))


# --- Locust's frames -> the engine's shapes --------------------------------------------------


def _rows(frame: pd.DataFrame, request_type: str, name: str | None = None) -> pd.DataFrame:
    rows = frame[(frame["Type"] == request_type) & (frame["Name"] != "Aggregated")]
    return rows if name is None else rows[rows["Name"] == name]


def _per_second(history: pd.DataFrame, request_type: str, name: str | None = None,
                index: pd.Index | None = None) -> pd.DataFrame:
    """Requests and failures per second of one type, from Locust's running totals.

    Locust writes the history about once a second; a second it skipped or wrote twice is
    evened out by interpolating the running totals over whole seconds before differencing.
    """
    rows = _rows(history, request_type, name)
    totals = (rows.groupby(["t", "Name"])[["Total Request Count", "Total Failure Count"]].last()
              .unstack("Name"))
    if index is None:
        index = pd.RangeIndex(int(history["t"].max()) + 1 if len(history) else 0, name="t")
    if totals.empty:
        return pd.DataFrame({"requests": 0, "failures": 0}, index=index, dtype="float64")
    totals = totals.reindex(index.union(totals.index)).interpolate(method="index",
                                                                   limit_area="inside")
    totals = totals.ffill().fillna(0.0).reindex(index)
    # Whole running totals before differencing: rounding each second's share instead would
    # let the seconds add up to one more or less than the total (5,371 for 5,370, seen in CI).
    requests = totals["Total Request Count"].sum(axis=1).round()
    failures = totals["Total Failure Count"].sum(axis=1).round()
    return pd.DataFrame({"requests": requests.diff().fillna(requests).clip(lower=0),
                         "failures": failures.diff().fillna(failures).clip(lower=0)})


def _percentile_series(history: pd.DataFrame, request_type: str, column: str,
                       index: pd.Index) -> pd.Series:
    # Several names of one type: the highest of their percentiles (an upper bound).
    rows = _rows(history, request_type)
    if rows.empty:
        return pd.Series(math.nan, index=index, dtype="float64")
    # Until Locust has a window of responses to read percentiles from, it writes 0 for every
    # percentile: not a measurement when the requests so far took 1 ms or more.
    unknown = (rows["100%"].fillna(0) == 0) & (rows["Total Max Response Time"].fillna(0) >= 1)
    values = rows[column].astype("float64").mask(unknown)
    return values.groupby(rows["t"]).max().reindex(index)


def locust_timeseries(history: pd.DataFrame) -> pd.DataFrame:
    """The engine's per-second time series from a `--csv-full-history` history frame.

    Returns:
        Index t (whole seconds since Locust's first history row); columns `TIMESERIES_COLUMNS`:
        produced (delivery reports), delivered, failed, consumed, backlog (delivered minus
        consumed, running), publish and end-to-end latency p50/p99 (Locust's rolling 10 s
        window), publish_delay_us_p99 (NaN: Locust does not measure it), users, rebalances
        (assignments a second), requests and failures (all types).
    """
    index = pd.RangeIndex(int(history["t"].max()) + 1 if len(history) else 0, name="t")
    produce = _per_second(history, "produce", index=index)
    consume = _per_second(history, "consume", index=index)
    assign = _per_second(history, "rebalance", "assign", index=index)
    aggregated = history[history["Name"] == "Aggregated"].groupby("t")
    ts = pd.DataFrame(index=index)
    ts["produced"] = produce["requests"].round().astype("int64")
    ts["failed"] = produce["failures"].round().astype("int64")
    ts["delivered"] = ts["produced"] - ts["failed"]
    ts["consumed"] = consume["requests"].round().astype("int64")
    ts["backlog"] = (ts["delivered"].cumsum() - ts["consumed"].cumsum()).clip(lower=0)
    ts["publish_latency_ms_p50"] = _percentile_series(history, "produce", "50%", index)
    ts["publish_latency_ms_p99"] = _percentile_series(history, "produce", "99%", index)
    ts["e2e_latency_ms_p50"] = _percentile_series(history, "consume", "50%", index)
    ts["e2e_latency_ms_p99"] = _percentile_series(history, "consume", "99%", index)
    ts["publish_delay_us_p99"] = math.nan
    ts["users"] = aggregated["User Count"].last().reindex(index).ffill().fillna(0).astype("int64")
    ts["rebalances"] = assign["requests"].round().astype("int64")
    ts["requests"] = aggregated["Total Request Count"].last().reindex(index).ffill().fillna(0) \
        .diff().fillna(0).clip(lower=0).astype("int64")
    ts["failures"] = aggregated["Total Failure Count"].last().reindex(index).ffill().fillna(0) \
        .diff().fillna(0).clip(lower=0).astype("int64")
    return ts[TIMESERIES_COLUMNS]


def locust_rebalances(history: pd.DataFrame, group: str = "") -> pd.DataFrame:
    """Rebalances seen by consumer users, to the second: the engine's rebalances frame.

    Returns:
        Columns t, group, member ("" : Locust does not say which), event ("assign", "revoke",
        "lost"), partitions (""), one row per event.
    """
    rows = []
    for event in ("assign", "revoke", "lost"):
        counts = _per_second(history, "rebalance", event)["requests"].round().astype("int64")
        for t, n in counts[counts > 0].items():
            rows.extend([(float(t), group, "", event, "")] * int(n))
    if not rows:
        return empty_rebalances()
    frame = pd.DataFrame(rows, columns=["t", "group", "member", "event", "partitions"])
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


def _type_total(stats: pd.DataFrame, request_type: str, column: str) -> float:
    return float(_rows(stats, request_type)[column].sum())


def _latency(stats: pd.DataFrame, request_type: str, prefix: str) -> dict[str, float]:
    rows = _rows(stats, request_type)
    rows = rows[rows["Request Count"] > 0]
    out = {f"{prefix}_{k}": math.nan for k in ("avg", *PERCENTILE_COLUMNS.values())}
    if rows.empty:
        return out
    weights = rows["Request Count"]
    out[f"{prefix}_avg"] = float((rows["Average Response Time"] * weights).sum() / weights.sum())
    # Several names of one type: the highest of their percentiles (an upper bound).
    for column, key in PERCENTILE_COLUMNS.items():
        out[f"{prefix}_{key}"] = float(rows[column].max())
    return out


def error_counts(failures: pd.DataFrame) -> dict[str, int]:
    """Failures by Kafka error name ("MSG_SIZE_TOO_LARGE"), else by Locust's error text."""
    counts: dict[str, int] = {}
    for error, n in zip(failures["Error"], failures["Occurrences"]):
        match = _ERROR_CODE.search(error)
        key = match.group(1) if match else error
        counts[key] = counts.get(key, 0) + int(n)
    return counts


def locust_summary(frames: LocustFrames, lag: pd.DataFrame | None = None,
                   ident: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The engine's summary row from Locust's final statistics, built by
    `kafkabench.summary.build_summary` like every other run's.

    Args:
        frames: `load_csv` output.
        lag: the run's lag frame, if sampled.
        ident: the keys that say which run this was (run_id, name, started_at, ...).

    Returns:
        `ident`, then requests, failures (all types), produced (delivery reports), delivered,
        failed, consumed, publish_rate and consume_rate (Locust's Requests/s), delivery_rate,
        publish_mb_s, consume_mb_s, message_size_avg, workers, publish_latency_ms_* and
        e2e_latency_ms_* (avg, p50 ... p99_99, max), lag figures, rebalances, errors (by Kafka
        error name); NaN where not measured (publish_delay_us_*, target_rate). With a
        processing stage (the stats hold "process", "retry" or "filter" requests), also
        processing_processed, processing_failed, processing_dead_lettered,
        processing_forwarded, processing_filtered, processing_stage_errors and
        processing_latency_ms_p50, _p99, _max (`processing_summary`); without one, none of them.
    """
    stats = frames.stats
    aggregated = stats[stats["Name"] == "Aggregated"]
    produced = _type_total(stats, "produce", "Request Count")
    failed = _type_total(stats, "produce", "Failure Count")
    publish_rate = _type_total(stats, "produce", "Requests/s")
    consume_rate = _type_total(stats, "consume", "Requests/s")
    consumed = _type_total(stats, "consume", "Request Count")
    size_p, size_c = _mean_size(stats, "produce"), _mean_size(stats, "consume")
    figures: dict[str, Any] = {
        "requests": int(aggregated["Request Count"].sum()),
        "failures": int(aggregated["Failure Count"].sum()),
        "produced": int(produced), "delivered": int(produced - failed), "failed": int(failed),
        "consumed": int(consumed),
        "target_rate": math.nan,
        "publish_rate": publish_rate,
        "delivery_rate": publish_rate * (produced - failed) / produced if produced else 0.0,
        "consume_rate": consume_rate,
        "publish_mb_s": publish_rate * size_p / 1e6 if produced else 0.0,
        "consume_mb_s": consume_rate * size_c / 1e6 if consumed else 0.0,
        "message_size_avg": size_p,
        "workers": len(frames.workers),
    }
    latencies = {**_latency(stats, "produce", "publish_latency_ms"),
                 **_latency(stats, "consume", "e2e_latency_ms"),
                 **{f"publish_delay_us_{key}": math.nan for key in ("avg", *PERCENTILE_COLUMNS.values())}}
    summary = build_summary(
        ident or {}, figures, latencies=latencies, mean_message_size=None, lag=lag,
        rebalances=int(_type_total(stats[stats["Name"] == "assign"], "rebalance", "Request Count")),
        errors=error_counts(frames.failures))
    if lag is not None and len(lag):
        last = lag[lag["t"] == lag["t"].max()]
        # Unknown (NaN) when the last sample could not read every partition's lag: not 0.
        summary["lag_final_msgs"] = (float(last["lag_msgs"].sum()) if last["lag_msgs"].notna().all()
                                     else math.nan)
    summary.update(processing_summary(frames))
    return summary


#: Locust's request types of a consumer user's processing stage (`kafkabench.locust_user`).
PROCESSING_TYPES = ("process", "retry", "filter")
# How kafkabench.locust_user.ProcessingError (a message that failed its last attempt) reads in
# Locust's failures file; other "process" failures are the stage's own (a retry, dead-letter
# or output record that could not be written). The second marks a failed message that was
# dropped instead of dead-lettered (the stage's dead_letter: false).
_FAILED_LAST_ATTEMPT = "ProcessingError("
_DROPPED = "dead_letter is false"


def processing_summary(frames: LocustFrames) -> dict[str, Any]:
    """The processing stage's summary keys, named as `kafkabench.processing.ProcessingObserver`
    names them, from the "process", "retry" and "filter" requests of consumer users.

    Args:
        frames: `load_csv` output.

    Returns:
        Empty when the run had no stage (no such requests); else processing_processed
        ("process" requests that did not fail), processing_failed (messages that failed their
        last attempt), processing_dead_lettered (those of them sent to the dead-letter topic),
        processing_forwarded ("retry" requests: records sent to retry topics),
        processing_filtered ("filter" requests), processing_stage_errors (other "process"
        failures: stage records that could not be written, a transaction's commit or abort
        that failed), processing_latency_ms_p50, _p99 and _max (the "process" requests'
        response times: receipt to done, inline retries included; Locust's resolution; NaN:
        none).
    """
    stats = frames.stats
    if not stats["Type"].isin(PROCESSING_TYPES).any():
        return {}
    failures = frames.failures[frames.failures["Method"] == "process"]
    last_attempt = failures[failures["Error"].str.startswith(_FAILED_LAST_ATTEMPT)]
    failed = int(last_attempt["Occurrences"].sum())
    dropped = int(last_attempt.loc[last_attempt["Error"].str.contains(_DROPPED, regex=False),
                                   "Occurrences"].sum())
    process_failures = int(_type_total(stats, "process", "Failure Count"))
    latency = _latency(stats, "process", "processing_latency_ms")
    return {
        # A stage error is a request and a failure at once: it cancels out here.
        "processing_processed": int(_type_total(stats, "process", "Request Count")) - process_failures,
        "processing_failed": failed,
        "processing_dead_lettered": failed - dropped,
        "processing_forwarded": int(_type_total(stats, "retry", "Request Count")),
        "processing_filtered": int(_type_total(stats, "filter", "Request Count")),
        "processing_stage_errors": process_failures - failed,
        **{f"processing_latency_ms_{k}": latency[f"processing_latency_ms_{k}"]
           for k in ("p50", "p99", "max")},
    }


def _mean_size(stats: pd.DataFrame, request_type: str) -> float:
    """Mean message size of one request type, weighted by request count (NaN: none)."""
    rows = _rows(stats, request_type)
    count = rows["Request Count"].sum()
    return float((rows["Average Content Size"] * rows["Request Count"]).sum() / count) if count \
        else math.nan


def to_run_result(frames: LocustFrames, *, lag: pd.DataFrame | None = None,
                  group: str = "", summary: Mapping[str, Any] | None = None,
                  config: Mapping[str, Any] | None = None) -> RunResult:
    """A `RunResult` from Locust's frames, as the engine would have made it.

    Args:
        frames: `load_csv` output (history written with --csv-full-history).
        lag: `LagSampler.frame()` with t already relative to the history's first row.
        group: consumer group the rebalances belong to.
        summary: extra summary entries (run_id, name, started_at, settings, ...).
        config: how to reproduce the run.

    Returns:
        summary (`locust_summary` plus `summary`), timeseries (`locust_timeseries`), lag,
        rebalances (`locust_rebalances`); no histograms (Locust keeps its own).
    """
    return RunResult(summary=locust_summary(frames, lag, ident=summary), timeseries=locust_timeseries(frames.history),
                     lag=lag if lag is not None else empty_lag(),
                     rebalances=locust_rebalances(frames.history, group),
                     config=dict(config or {}))


# --- running Locust ---------------------------------------------------------------------------


@dataclass(slots=True)
class LocustRun:
    """One Locust run: its result in the engine's shape, its raw frames and how it ended.

    Attributes:
        result: the `RunResult` (summary, timeseries, lag, rebalances).
        frames: Locust's CSV files as DataFrames.
        exit_code: Locust's exit code (1: there were failures, with the default
            --exit-code-on-error).
        csv_prefix: where the CSV files are.
        command: the master's (or the only) command line.
        log: Locust's output (all processes), for when something looks wrong.
    """

    result: RunResult
    frames: LocustFrames
    exit_code: int
    csv_prefix: Path
    command: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def summary(self) -> dict[str, Any]:
        """The result's summary row."""
        return self.result.summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM (Locust shuts down cleanly on it), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_locust(locustfile: str | os.PathLike, *, users: int = 1, spawn_rate: float = 1.0,
               run_time_s: float = 10.0, bootstrap: str | None = None, topic: str | None = None,
               group: str | None = None, profile: str | os.PathLike | None = None,
               conf: Mapping[str, Any] | None = None, rate: float | None = None,
               shape: str | None = None, steps: int | None = None, workers: int = 0,
               extra_args: Iterable[str] = (), out_dir: str | os.PathLike | None = None,
               name: str | None = None, lag: bool = True, lag_interval_s: float = 1.0,
               timeout_s: float | None = None, env: Mapping[str, str] | None = None,
               keep_topic: bool = True,
               processing: Processing | Mapping[str, Any] | str | os.PathLike | None = None,
               metrics_port: int | None = None) -> LocustRun:
    """Run a locustfile headless in subprocesses and read back what it measured.

    Args:
        locustfile: a path, or the name of one of kafkabench's (see `locustfile_path`).
        users: peak users (-u).
        spawn_rate: users started per second (-r).
        run_time_s: run time (-t).
        bootstrap: cluster (default: KAFKABENCH_BOOTSTRAP or the embedded cluster).
        topic: --kafka-topic (default: a new topic named after the run).
        group: --kafka-group (default: "<topic>-group"); its lag is sampled.
        profile: --kafka-profile (preset name or YAML path).
        conf: --kafka-conf settings ({"linger.ms": 5, "producer.acks": "all"}).
        rate: --kafka-rate, messages/s per producer user (default: the locustfile's).
        shape: --kafka-shape ("constant", "step", "spike") for locustfiles with a shape.
        steps: --kafka-steps.
        workers: 0 runs one process; N runs a master and N workers on 127.0.0.1.
        extra_args: more Locust arguments.
        out_dir: folder for the CSV files and the log (default: a new temporary folder).
        name: run name (default: the locustfile's name).
        lag: sample the consumer group's lag during the run.
        lag_interval_s: seconds between lag samples.
        timeout_s: stop Locust after this long (default: run time + 105 s).
        env: extra environment variables for Locust.
        keep_topic: False deletes the topic afterwards when this function named it, with
            the processing stage's `<topic>.*` topics (retry, dead-letter, output).
        processing: the consumer users' processing stage (`--kafka-processing`, replacing
            their class's): a `kafkabench.processing.Processing`, a mapping of its fields or
            a YAML file of them; written to `<out_dir>/<name>.processing.yaml`. The stage's
            retry, dead-letter and output topics are created by the users when missing.
        metrics_port: serve the run's live metrics for Prometheus on this port (0: a free
            one; `summary["metrics_url"]`): Locust's produce/consume counts and latencies
            (relayed from Locust's process, `--kafka-metrics-port`) and the group's lag, with
            the same names as `run_workload`'s. A port in use is refused before Locust starts.

    Returns:
        The `LocustRun`; failures are data (`exit_code` 1), not exceptions.

    Raises:
        ConfigError: bad arguments (a bad processing stage names the field), before anything
            runs. ClusterError: the cluster does not answer.
            KafkabenchError: Locust wrote no statistics (it could not start: its log is
            quoted), or it had to be killed.
    """
    from kafkabench.cluster.lag import IsolatedLagSampler
    from kafkabench.cluster.local import check_reachable, resolve_bootstrap
    from kafkabench.spec.profile import load_profile

    path = locustfile_path(locustfile)
    _check_arguments(users=users, spawn_rate=spawn_rate, run_time_s=run_time_s,
                     workers=workers, shape=shape)
    stage = _load_stage(processing)
    client_profile = load_profile(profile)
    bootstrap = resolve_bootstrap(bootstrap)
    # Before the lag sampler and Locust start: otherwise a dead cluster is Locust's log tail.
    check_reachable(bootstrap, client_profile.common)
    name = name or path.stem
    started_at = datetime.now(UTC)
    run_id = make_run_id(f"locust-{name}", started_at.astimezone())
    run_topic = topic or f"kb-{run_id}"
    # How the run was asked for: its `config["locust"]`, and what the command lines say.
    spec = {"locustfile": str(path), "users": users, "spawn_rate": spawn_rate,
            "run_time_s": run_time_s, "topic": run_topic, "group": group or f"{run_topic}-group",
            "conf": dict(conf or {}), "rate": rate, "shape": shape, "steps": steps,
            "workers": workers, "extra_args": list(extra_args),
            "processing": stage.to_dict() if stage is not None else None}
    folder = _out_folder(out_dir)
    prefix = folder / name
    kafka_args = _kafka_args(spec, bootstrap, profile)
    if stage is not None:
        stage_file = folder / f"{name}.processing.yaml"
        stage_file.write_text(yaml.safe_dump(spec["processing"], sort_keys=False), encoding="utf-8")
        kafka_args += ["--kafka-processing", str(stage_file)]
    # In a child process: a client-library abort costs lag samples, not the run's result.
    sampler = (IsolatedLagSampler(bootstrap, [spec["group"]], interval_s=lag_interval_s,
                                  conf=dict(client_profile.common)) if lag else None)
    endpoint = None
    if metrics_port is not None:
        from kafkabench.observe.metrics import LagCollector, MetricsEndpoint, RelayCollector, free_port

        child = free_port()
        kafka_args += ["--kafka-metrics-port", str(child)]
        # Bound now: a port in use is refused before Locust starts.
        endpoint = MetricsEndpoint(metrics_port, collectors=[
            RelayCollector(f"http://127.0.0.1:{child}/metrics"), LagCollector(lambda: sampler)])
    commands = _commands(spec, prefix, kafka_args)
    logs = [folder / f"{name}.log", *(folder / f"{name}.worker{i}.log" for i in range(workers))]
    try:
        exit_code, log = _run_processes(commands, logs, env=env, sampler=sampler,
                                        timeout_s=timeout_s or run_time_s + STARTUP_ALLOWANCE_S + 15.0)
    finally:
        if endpoint is not None:
            endpoint.close()
    frames = _load_frames(prefix, exit_code, log)
    if topic is None and not keep_topic:
        _delete_topics(bootstrap, run_topic, client_profile.common)
    summary = {
        "run_id": run_id, "name": name, "started_at": started_at.isoformat(),
        "duration_s": _duration_s(frames.history), "tool": "locust", "locustfile": str(path),
        "exit_code": exit_code, "users": users, "spawn_rate": spawn_rate,
        "run_time_s": run_time_s, "shape": shape, "locust_workers": workers,
        "bootstrap": bootstrap, "topics": run_topic, "group": spec["group"],
        "kafka_version": KAFKA_VERSION, "kafkabench_version": __version__,
        **client_profile.as_flat_dict(),
        **({"metrics_url": endpoint.url} if endpoint is not None else {}),
        "sampler_restarts": len(sampler.restarts) if sampler is not None else 0,
    }
    config = {"locust": spec, "profile": client_profile.to_dict(redact_secrets=True)}
    result = to_run_result(frames, lag=_lag_frame(sampler, frames.history), group=spec["group"],
                           summary=summary, config=config)
    return LocustRun(result=result, frames=frames, exit_code=exit_code, csv_prefix=prefix,
                     command=commands[0], log=log)


def _check_arguments(*, users: int, spawn_rate: float, run_time_s: float, workers: int,
                     shape: str | None) -> None:
    """Raise ConfigError for a run that cannot be asked of Locust."""
    if users < 1 or spawn_rate <= 0 or run_time_s <= 0 or workers < 0:
        raise ConfigError(f"users={users!r}, spawn_rate={spawn_rate!r}, run_time_s="
                          f"{run_time_s!r}, workers={workers!r}: expected positive numbers")
    if shape is not None and shape not in SHAPES:
        raise ConfigError(f"shape={shape!r}: expected one of {', '.join(SHAPES)}")


def _out_folder(out_dir: str | os.PathLike | None) -> Path:
    """`out_dir`, created if missing, or a new temporary folder."""
    folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="kb-locust-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _kafka_args(spec: Mapping[str, Any], bootstrap: str,
                profile: str | os.PathLike | None) -> list[str]:
    """The `--kafka-*` options of `kafkabench.locust_user` for a run's spec."""
    args = ["--kafka-bootstrap", bootstrap, "--kafka-topic", spec["topic"],
            "--kafka-group", spec["group"]]
    if profile is not None:
        args += ["--kafka-profile", str(profile)]
    args += [f"--kafka-conf={key}={_conf_value(value)}" for key, value in spec["conf"].items()]
    for option, key in (("--kafka-rate", "rate"), ("--kafka-shape", "shape"),
                        ("--kafka-steps", "steps")):
        if spec[key] is not None:
            args += [option, str(spec[key])]
    return args


def _commands(spec: Mapping[str, Any], prefix: Path, kafka_args: list[str]) -> list[list[str]]:
    """Command lines: the master's (or the only process's) first, then one per worker."""
    base = [sys.executable, "-m", "locust", "-f", spec["locustfile"]]
    extra = spec["extra_args"]
    command = [*base, "--headless", "--only-summary", "-u", str(spec["users"]),
               "-r", str(spec["spawn_rate"]), "-t", f"{spec['run_time_s']:g}s",
               "--csv", str(prefix), "--csv-full-history", *kafka_args, *extra]
    workers = spec["workers"]
    if not workers:
        return [command]
    port = str(_free_port())
    command += ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", port]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", port,
              *kafka_args, *extra]
    return [command, *(list(worker) for _ in range(workers))]


def _run_processes(commands: list[list[str]], logs: list[Path], *,
                   env: Mapping[str, str] | None, sampler: Any, timeout_s: float) -> tuple[int, str]:
    """Run Locust's processes to their end (lag sampled meanwhile), each logging to its file.

    Returns:
        The master's (or only process's) exit code, and every process's output.

    Raises:
        KafkabenchError: Locust did not finish within `timeout_s` and was stopped.
    """
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    killed = False
    try:
        if sampler is not None:
            sampler.start()
        for command, log_path in zip(commands, logs):
            with open(log_path, "wb") as log_file:
                procs.append(subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=environment))
        killed = not _wait(procs[0], timeout_s, stop_timeout_s=15.0)
        for worker in procs[1:]:
            # Workers quit when the master tells them to; give them a moment, then insist.
            _wait(worker, 15.0, stop_timeout_s=10.0)
    finally:
        for proc in procs:
            _stop(proc, 10.0)
        if sampler is not None:
            sampler.stop()
    log = "\n".join(p.read_text(errors="replace") for p in logs if p.is_file())
    if killed:
        raise KafkabenchError(f"Locust did not finish within {timeout_s:.0f} s and was "
                              f"stopped; its log:\n{_tail(log)}")
    return procs[0].returncode, log


def _wait(proc: subprocess.Popen, timeout_s: float, *, stop_timeout_s: float) -> bool:
    """Wait for a process to end; stop it when it has not after `timeout_s` (returns False)."""
    try:
        proc.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        _stop(proc, stop_timeout_s)
        return False


def _load_frames(prefix: Path, exit_code: int, log: str) -> LocustFrames:
    """`load_csv`, with Locust's log quoted when it wrote no statistics."""
    try:
        return load_csv(prefix)
    except KafkabenchError as exc:
        raise KafkabenchError(f"Locust (exit code {exit_code}) wrote no statistics: {exc}; "
                              f"its log:\n{_tail(log)}") from None


def _lag_frame(sampler: Any, history: pd.DataFrame) -> pd.DataFrame | None:
    """The sampled lag with t in seconds since Locust's first history row (None: not sampled)."""
    if sampler is None:
        return None
    lag = sampler.frame()
    if len(lag) and len(history):
        t0 = pd.Timestamp(int(history["Timestamp"].min()), unit="s", tz="UTC")
        lag = lag.assign(t=(lag["time"] - t0).dt.total_seconds())
    return lag


def _delete_topics(bootstrap: str, topic: str, conf: Mapping[str, Any]) -> None:
    """Delete the run's topic and its processing stage's `<topic>.*` topics (those of a stage
    set in the locustfile too); a leftover topic is not worth failing the run for."""
    from kafkabench.cluster.admin import delete_topics, list_topics

    try:
        stage_topics = [t for t in list_topics(bootstrap, conf=dict(conf)) if t.startswith(f"{topic}.")]
        delete_topics(bootstrap, [topic, *stage_topics], conf=dict(conf), timeout_s=10)
    except KafkabenchError:
        pass


def _load_stage(processing: Any) -> Processing | None:
    """`run_locust`'s `processing` as a `Processing`, checked by its own constructor.

    Raises:
        ConfigError: a missing or bad file, an unknown key or a bad value, named.
    """
    from kafkabench.spec.processing import load_processing_file, processing_from_spec

    if isinstance(processing, (str, os.PathLike)):
        return load_processing_file(processing, "processing file")
    return processing_from_spec(processing)


def _duration_s(history: pd.DataFrame) -> float:
    return round(float(history["t"].max()), 3) if len(history) else 0.0


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
