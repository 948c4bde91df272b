"""The result contract: name, dtype, unit and meaning of every summary key and result frame.

Producers of results (`runner`, `locust_results`, `lag`, `stats`) and their readers
(`results`, `sweep`, `experiments`, `report`, `plots`) take column names from here, and
DESIGN.md's result tables are generated from here (`python -m kafkabench.core.contract --markdown`),
so the docs cannot drift from what runs emit. `check_frame` and `check_summary` list where a
frame or a summary departs from the contract.

Sources: who emits a key or column. "run" is `runner.run_workload`, "consume" is
`runner.consume_topic`, "locust" is `locust_results.run_locust`, "sweep" marks what
`sweep.run_sweep` adds to the summaries of its runs.

This module imports nothing else of kafkabench, so that every other module can import it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

SOURCES: tuple[str, ...] = ("run", "consume", "locust", "sweep")
_ENGINE = ("run", "consume")
_ALL = ("run", "consume", "locust")

#: The summary figures of a latency histogram, in order: `stats.SUMMARY_KEYS`
#: (what `LatencyRecorder.percentiles` returns); p99_9 is the 99.9th percentile.
PERCENTILE_KEYS: tuple[str, ...] = ("avg", "p50", "p75", "p95", "p99", "p99_9", "p99_99", "max")


@dataclass(frozen=True, slots=True)
class Column:
    """One summary key or frame column.

    Attributes:
        name: the key or column name; a name ending in ".*" is a family of summary keys
            (e.g. `producer.*`: one key per producer setting).
        dtype: for frames the pandas dtype as `str(series.dtype)` prints it; for summary keys
            the Python type(s), e.g. "float", "int | None", "dict"; "any" is not checked.
        unit: "msgs", "msgs/s", "MB/s", "B", "s", "ms", "us", or "" for none.
        description: one line.
        sources: which of `SOURCES` emit it.
        always: every result of those sources has it; False when a condition (named in the
            description) decides.
    """

    name: str
    dtype: str
    unit: str
    description: str
    sources: tuple[str, ...] = _ALL
    always: bool = True

    @property
    def is_family(self) -> bool:
        """Whether `name` is a prefix family such as `workload.*`."""
        return self.name.endswith(".*")

    def matches(self, key: str) -> bool:
        """Whether `key` is this column, or a member of this family."""
        return key.startswith(self.name[:-1]) if self.is_family else key == self.name


@dataclass(frozen=True, slots=True)
class Histogram:
    """Which columns a `RunResult.histograms` entry gives.

    Attributes:
        name: the histogram's key in `RunResult.histograms` (recorded in microseconds).
        prefix: the column prefix: summary keys `<prefix>_<key>` for every `PERCENTILE_KEYS`
            key, timeseries columns `<prefix>_<key>` for each of `timeseries`.
        unit: the unit of those columns ("ms" or "us").
        timeseries: the percentiles the per-second timeseries carries.
        description: what the latency measures.
    """

    name: str
    prefix: str
    unit: str
    timeseries: tuple[str, ...]
    description: str

    def columns(self, frame: str = "summary") -> list[str]:
        """The column names this histogram gives in "summary" or "timeseries"."""
        return [f"{self.prefix}_{k}" for k in self._keys(frame)]

    def _keys(self, frame: str) -> tuple[str, ...]:
        if frame == "summary":
            return PERCENTILE_KEYS
        if frame == "timeseries":
            return self.timeseries
        raise ValueError(f"frame={frame!r}: expected 'summary' or 'timeseries'")


#: The histograms of a run, in `RunResult.histograms` order.
HISTOGRAMS: tuple[Histogram, ...] = (
    Histogram("publish_latency_us", "publish_latency_ms", "ms", ("p50", "p99"),
              "publish latency: produce() to its delivery report"),
    Histogram("publish_delay_us", "publish_delay_us", "us", ("p99",),
              "publish delay: intended send time to actual send time (the coordinated-omission "
              "correction); Locust does not measure it (NaN)"),
    Histogram("e2e_latency_us", "e2e_latency_ms", "ms", ("p50", "p99"),
              "end-to-end latency: the producer's message timestamp (the intended send time in "
              "rate-controlled runs) to receipt by a consumer"),
)
_HISTOGRAM_BY_NAME = {h.name: h for h in HISTOGRAMS}
# Timeseries order of the per-second latency columns (publish delay last, as runs emit them).
_TIMESERIES_HISTOGRAMS = ("publish_latency_us", "e2e_latency_us", "publish_delay_us")


class _Recorder(Protocol):
    count: int

    def percentiles(self, unit: str = "ms", keys: Iterable[str] = ...) -> dict[str, float]: ...


def percentile_columns(histogram_name: str, recorder: _Recorder | None,
                       frame: str = "summary") -> dict[str, float]:
    """The columns a histogram gives, with their values.

    Args:
        histogram_name: a `HISTOGRAMS` name, e.g. "publish_latency_us".
        recorder: the `stats.LatencyRecorder` (None, or one with no values: every column NaN).
        frame: "summary" (every `PERCENTILE_KEYS` key) or "timeseries" (the histogram's
            per-second percentiles).

    Returns:
        {column name: value in the histogram's column unit}, e.g.
        {"publish_latency_ms_p50": 1.2, "publish_latency_ms_p99": 4.8} for the timeseries.

    Raises:
        ValueError: an unknown histogram name or frame.
    """
    if histogram_name not in _HISTOGRAM_BY_NAME:
        raise ValueError(f"histogram {histogram_name!r}: expected one of {list(_HISTOGRAM_BY_NAME)}")
    h = _HISTOGRAM_BY_NAME[histogram_name]
    keys = h._keys(frame)
    if recorder is None or not recorder.count:
        return {f"{h.prefix}_{k}": math.nan for k in keys}
    values = recorder.percentiles(h.unit, keys)
    return {f"{h.prefix}_{k}": values[k] for k in keys}


# ----------------------------------------------------------------------------- names


def group_name(topic: str, index: int) -> str:
    """The name of a run's consumer group: `<topic>-g<index>`."""
    return f"{topic}-g{index}"


def member_name(group: str, index: int, *, topic_prefix: str, run_id: str) -> str:
    """The worker name of a group member: the group name without `<topic_prefix>-<run_id>-`,
    then `-c<index>` (e.g. "0-g1-c2"); the group of a user's own topic keeps its whole name."""
    return f"{group.removeprefix(f'{topic_prefix}-{run_id}-')}-c{index}"


def producer_name(topic_index: int, index: int, topics: int) -> str:
    """The worker name of a producer: `producer-<index>`, or `producer-<topic>-<index>` when
    the run has more than one topic."""
    return f"producer-{topic_index}-{index}" if topics > 1 else f"producer-{index}"


# ----------------------------------------------------------------------------- summary


def _latency_summary() -> list[Column]:
    out = []
    for h in HISTOGRAMS:
        for k in PERCENTILE_KEYS:
            what = "mean" if k == "avg" else "maximum" if k == "max" else f"{k[1:].replace('_', '.')}th percentile"
            out.append(Column(f"{h.prefix}_{k}", "float", h.unit,
                              f"{h.description}: {what}, after warm-up (NaN: none recorded)"))
    return out


_LAG_SAMPLED = "(when lag was sampled: a run with consumer groups)"
_VERIFIED = "(a run with `verify: true`)"
_FAULTED = "(a run with a fault schedule)"

_VERIFY_AND_FAULT_SUMMARY: tuple[Column, ...] = (
    Column("verify_acked", "int", "msgs", f"messages the producers saw acknowledged {_VERIFIED}",
           ("run",), always=False),
    Column("verify_lost", "int", "msgs", f"acknowledged but never read back {_VERIFIED}",
           ("run",), always=False),
    Column("verify_duplicated", "int", "msgs", f"extra copies read back (read n times: n - 1) {_VERIFIED}",
           ("run",), always=False),
    Column("verify_reordered", "int", "msgs",
           f"first reads whose sequence is below one of the same producer already read in the "
           f"partition {_VERIFIED}", ("run",), always=False),
    Column("verify_failed_but_present", "int", "msgs",
           f"the producer saw an error, yet the message is in the log {_VERIFIED}", ("run",), always=False),
    Column("verify_read", "int", "msgs", f"records the verification consumer read {_VERIFIED}",
           ("run",), always=False),
    Column("verify_foreign", "int", "msgs",
           f"records read without this run's `kb-seq` header {_VERIFIED}", ("run",), always=False),
    Column("verify_complete", "bool", "", f"every partition was read to its high watermark {_VERIFIED}",
           ("run",), always=False),
    Column("verify_read_s", "float", "s", f"time the read-back took {_VERIFIED}", ("run",), always=False),
    Column("verify_error", "str", "", f"why the read-back is incomplete (\"\" when complete) {_VERIFIED}",
           ("run",), always=False),
    Column("drain_timeout_s", "float", "s",
           f"how long consumer groups could go without progress while draining to the log-end "
           f"before the read-back {_VERIFIED}", ("run",), always=False),
    Column("faults", "int", "", f"fault actions carried out, undo and cleanup included {_FAULTED}",
           ("run",), always=False),
    Column("faults_failed", "int", "", f"fault actions that failed {_FAULTED}", ("run",), always=False),
    Column("leader_changes", "int", "", f"partition leader changes seen by the cluster-state sampler {_FAULTED}",
           ("run",), always=False),
    Column("under_replicated_max", "int", "", f"most under-replicated partitions in one sample {_FAULTED}",
           ("run",), always=False),
    Column("offline_max", "int", "", f"most offline (leaderless) partitions in one sample {_FAULTED}",
           ("run",), always=False),
    Column("first_ack_s", "float", "s",
           f"longest time after a fault until every partition was acknowledged again (inf: never) {_FAULTED}",
           ("run",), always=False),
    Column("outage_s", "float", "s",
           f"longest gap without acknowledgements on a partition after a fault {_FAULTED}",
           ("run",), always=False),
    Column("recovery_s", "float", "s",
           f"longest time after a fault until throughput was back to 90% of the rate before it "
           f"(inf: never) {_FAULTED}", ("run",), always=False),
)

_STAGED = "(runs with a processing stage, `kafkabench.processing`)"
# Also in Locust runs, from the consumer users' "process", "retry" and "filter" requests.
_LOCUST_STAGE_KEYS = frozenset({
    "processing_processed", "processing_filtered", "processing_forwarded", "processing_failed",
    "processing_dead_lettered", "processing_stage_errors", "processing_latency_ms_p50",
    "processing_latency_ms_p99", "processing_latency_ms_max"})
_PROCESSING_SUMMARY: tuple[Column, ...] = tuple(
    Column(name, kind, unit, f"{text} {_STAGED}",
           ("run", "locust") if name in _LOCUST_STAGE_KEYS else ("run",), always=False)
    for name, kind, unit, text in (
        ("processing_processed", "int", "msgs", "messages processed successfully, after retries "
         "(exactly-once: also those whose transaction then aborted; see processing_output_inputs)"),
        ("processing_filtered", "int", "msgs", "messages dropped by the filter before processing"),
        ("processing_retried", "int", "", "failed attempts that were retried (inline or through a retry topic)"),
        ("processing_forwarded", "int", "msgs", "records sent to retry topics"),
        ("processing_failed", "int", "msgs", "messages that failed their last attempt"),
        ("processing_dead_lettered", "int", "msgs", "records sent to the dead-letter topic"),
        ("processing_output", "int", "msgs", "records sent to the output topic"),
        ("processing_output_read", "int", "msgs", "records read back from the output topic after the run"),
        ("processing_output_inputs", "int", "msgs", "distinct inputs among them (header kb-src)"),
        ("processing_output_duplicated", "int", "msgs",
         "output records beyond the first of their input: inputs processed more than once"),
        ("processing_output_read_uncommitted", "int", "msgs",
         "exactly-once: output records read with read_uncommitted (aborted transactions' included)"),
        ("processing_transactions_committed", "int", "", "exactly-once: the stage's transactions committed"),
        ("processing_transactions_aborted", "int", "", "exactly-once: the stage's transactions aborted"),
        ("processing_aborted_messages", "int", "msgs", "exactly-once: messages handled in aborted transactions"),
        ("processing_delayed", "int", "", "times a retry-topic partition was paused until its next record was due"),
        ("processing_stage_errors", "int", "", "retry, dead-letter and output records that failed "
         "(locust: also a transaction's commit or abort that failed)"),
        ("processing_unflushed", "int", "msgs", "stage records still unacknowledged when the members closed"),
        ("processing_attempts", "str", "",
         "JSON {attempts: messages} of the messages that finished (processed or failed)"),
        ("processing_latency_ms_p50", "float", "ms", "receipt to done in a member, retries included: p50 "
         "(locust: the \"process\" requests' response times, at Locust's resolution)"),
        ("processing_latency_ms_p99", "float", "ms", "receipt to done in a member, retries included: p99 "
         "(locust: the \"process\" requests' response times, at Locust's resolution)"),
        ("processing_latency_ms_max", "float", "ms", "receipt to done in a member, retries included: max "
         "(locust: the \"process\" requests' response times, at Locust's resolution)"),
        ("processing_done_latency_ms_p50", "float", "ms",
         "the input record's timestamp to done (retry-topic delays included): p50"),
        ("processing_done_latency_ms_p99", "float", "ms",
         "the input record's timestamp to done (retry-topic delays included): p99"),
        ("processing_done_latency_ms_max", "float", "ms",
         "the input record's timestamp to done (retry-topic delays included): max"),
        ("processing_output_e2e_read", "int", "msgs",
         "output records a read_committed consumer read during the run (and up to 20 s after)"),
        ("processing_output_e2e_latency_ms_p50", "float", "ms",
         "end to end through the stage: input timestamp to the output record's read: p50"),
        ("processing_output_e2e_latency_ms_p99", "float", "ms",
         "end to end through the stage: input timestamp to the output record's read: p99"),
        ("processing_output_e2e_latency_ms_max", "float", "ms",
         "end to end through the stage: input timestamp to the output record's read: max"),
    ))

_BROKER_SCRAPED = "(brokers' JMX exporters scraped during the run, `kafkabench.brokermetrics`)"
_OBSERVABILITY_SUMMARY: tuple[Column, ...] = (
    Column("metrics_url", "str", "", "where the run served its Prometheus metrics (`metrics_port`)",
           ("run", "locust"), always=False),
    Column("broker_bytes_in_total", "float", "B",
           f"bytes the brokers took in from producers during the run, all topics {_BROKER_SCRAPED}",
           ("run",), always=False),
    Column("broker_messages_in_total", "float", "msgs",
           f"messages the brokers took in during the run, all topics {_BROKER_SCRAPED}", ("run",), always=False),
    Column("broker_under_replicated_max", "float", "",
           f"most under-replicated partitions one broker reported in one scrape {_BROKER_SCRAPED}",
           ("run",), always=False),
    Column("broker_scrape_errors", "int", "", f"scrapes that failed {_BROKER_SCRAPED}", ("run",), always=False),
)

SUMMARY: tuple[Column, ...] = (
    Column("run_id", "str", "", "the run's folder name: `<YYYYmmdd-HHMMSS>-<name>-<4 hex>`"),
    Column("name", "str", "", "the workload's name (consume: `consume-<topic>`)"),
    Column("started_at", "str", "", "start time, ISO 8601 with UTC offset"),
    Column("duration_s", "float", "s",
           "measured time: producers' warm-up + duration (consume: subscribe to last message; "
           "locust: the history's span)"),
    Column("interrupted", "bool", "", "stopped by Ctrl-C: a partial result", _ENGINE),
    Column("kafka_version", "str", "", "Kafka version kafkabench was built against"),
    Column("kafkabench_version", "str", "", "kafkabench version that made the result"),
    Column("bootstrap", "str", "", "bootstrap servers"),
    Column("topics", "str", "", "the run's topics, comma-separated"),
    Column("commit", "str", "", "consumer commit mode: auto, sync, async or sync-message", _ENGINE),
    Column("commit_on_revoke", "bool", "",
           "members committing themselves also commit on revoke (the rebalance listener)", ("run",)),
    Column("mode", "str", "", "workers as 'process'es or 'thread's", _ENGINE),
    Column("replication_factor", "int | None", "",
           "replication factor asked for the topics the run created (None: the cluster's default)",
           _ENGINE),
    Column("produced", "int", "msgs", "messages sent (produce() calls accepted or refused)"),
    Column("delivered", "int", "msgs", "messages acknowledged by the broker"),
    Column("failed", "int", "msgs", "messages that failed (error delivery report, or refused by produce())"),
    Column("buffer_full", "int", "", "times produce() found the local queue full and waited", _ENGINE),
    Column("consumed", "int", "msgs", "messages consumed, all groups together"),
    Column("offset_commits", "int", "", "offset commits the members sent (not librdkafka's auto-commits)",
           _ENGINE),
    # A transactional run (transaction_messages > 0). Its `delivered` includes the messages
    # of aborted transactions: they were written and acknowledged; read_committed consumers
    # skip them.
    Column("transactions_committed", "int", "",
           "transactions the producers committed (a run with `transaction_messages` > 0)",
           ("run",), always=False),
    Column("transactions_aborted", "int", "",
           "transactions the producers aborted: a commit that needed an abort, or the open one "
           "when a producer stopped on an error (a run with `transaction_messages` > 0)",
           ("run",), always=False),
    Column("aborted_messages", "int", "msgs",
           "messages sent in aborted transactions: in delivered when acknowledged, never seen by "
           "read_committed consumers (a run with `transaction_messages` > 0)", ("run",), always=False),
    Column("transaction_latency_ms_p50", "float", "ms",
           "commit_transaction() call time, its flush included: p50 after warm-up (NaN: none "
           "committed) (a run with `transaction_messages` > 0)", ("run",), always=False),
    Column("transaction_latency_ms_p99", "float", "ms",
           "commit_transaction() call time, its flush included: p99 after warm-up (NaN: none "
           "committed) (a run with `transaction_messages` > 0)", ("run",), always=False),
    Column("consumed_by_group", "dict", "msgs", "{group: messages consumed}", _ENGINE),
    Column("target_rate", "float", "msgs/s",
           "the workload's producer_rate, all producers (0: max rate; locust: NaN)"),
    Column("publish_rate", "float", "msgs/s", "messages sent per second after warm-up"),
    Column("delivery_rate", "float", "msgs/s",
           "messages delivered per second until the last delivery report (kafka-producer-perf-test's count)"),
    Column("consume_rate", "float", "msgs/s",
           "consumed per second: mean of the busy seconds without the first and last (consume: "
           "consumed / duration_s)"),
    Column("publish_mb_s", "float", "MB/s", "delivery_rate x mean message size (1 MB = 10^6 B)"),
    Column("consume_mb_s", "float", "MB/s", "consume_rate x mean message size (consume: bytes consumed / duration_s)"),
    *_latency_summary(),
    Column("rate_held", "bool", "",
           "rate within 2% of target either way and publish delay p50 <= 10 ms, p99 <= 250 ms "
           "(when target_rate > 0)", ("run",), always=False),
    Column("held_reason", "str", "", "why rate_held is what it is (when target_rate > 0)", ("run",),
           always=False),
    Column("loadgen_cpu_s", "float", "s", "CPU time of the load generator's processes", _ENGINE),
    Column("loadgen_cores", "float", "", "loadgen_cpu_s / duration_s: cores the load generator kept busy",
           _ENGINE),
    Column("cpu_us_per_msg", "float", "us", "loadgen_cpu_s per message produced or consumed", _ENGINE),
    Column("producer_cpu_us_per_msg", "float", "us",
           "producer processes' CPU per message produced (NaN unless mode is process)", _ENGINE),
    Column("lag_max_msgs", "float", "msgs", "largest consumer lag of any partition (NaN: not sampled)"),
    Column("lag_max_s", "float", "s", "largest lag in seconds of any partition (NaN: not sampled)"),
    Column("lag_final_msgs", "float", "msgs",
           f"lag at the last sample, all partitions (NaN: a partition unknown) {_LAG_SAMPLED}",
           ("run", "locust"), always=False),
    Column("lag_status", "str", "", f"the groups' worst Burrow-style status at the end {_LAG_SAMPLED}",
           ("run",), always=False),
    Column("lag_errors", "int", "", f"errors the lag sampler met {_LAG_SAMPLED}", ("run",), always=False),
    Column("lag_error_messages", "list", "", f"the first distinct ones (up to 5) {_LAG_SAMPLED}",
           ("run",), always=False),
    Column("recovered", "bool", "",
           "rebuilt from the run's journal after its main process died (killed or aborted): the "
           "workers' reports up to then; observers' frames (lag, cluster state) are missing",
           ("run",), always=False),
    Column("sampler_restarts", "int", "",
           "times a sampler's child process (lag, cluster state) died and was restarted; each left a "
           "gap in its frame (GAP rows) and a warning", (*_ENGINE, "locust")),
    Column("rebalances", "int", "", "partition assignments the consumers saw"),
    Column("errors", "dict", "", "{Kafka error code name: count}"),
    Column("error_messages", "dict", "", "{Kafka error code name: [first messages]}", _ENGINE),
    Column("warnings", "list", "", "what the user should know about the run, as sentences", _ENGINE),
    Column("complete", "bool", "",
           "every group consumed what was delivered to its topic and no worker failed", ("run",)),
    Column("incomplete", "list", "", "why the run is not complete (empty when it is)", ("run",)),
    Column("shortfall", "dict", "msgs", "{group: messages delivered but not consumed}", ("run",)),
    *_VERIFY_AND_FAULT_SUMMARY,
    *_PROCESSING_SUMMARY,
    *_OBSERVABILITY_SUMMARY,
    Column("consumed_bytes", "int", "B", "key + value bytes consumed (as kafka-consumer-perf-test counts them)", ("consume",)),
    Column("rebalance_time_ms", "float", "ms", "subscribe to the first assignment", ("consume",)),
    Column("group", "str", "", "the consumer group", ("consume", "locust")),
    Column("tool", "str", "", "'locust'", ("locust",)),
    Column("locustfile", "str", "", "the locustfile that ran", ("locust",)),
    Column("exit_code", "int", "", "Locust's exit code", ("locust",)),
    Column("users", "int", "", "peak users (-u)", ("locust",)),
    Column("spawn_rate", "float", "", "users started per second (-r)", ("locust",)),
    Column("run_time_s", "float", "s", "run time asked for (-t)", ("locust",)),
    Column("shape", "str | None", "", "the --kafka-shape, if any", ("locust",)),
    Column("locust_workers", "int", "", "Locust worker processes asked for (0: one process)", ("locust",)),
    Column("requests", "int", "", "Locust requests of every type", ("locust",)),
    Column("failures", "int", "", "Locust failures of every type", ("locust",)),
    Column("message_size_avg", "float", "B", "mean produced message size", ("locust",)),
    Column("workers", "int", "", "Locust workers that reported", ("locust",)),
    Column("sweep", "str", "", "the sweep's name", ("sweep",)),
    Column("point", "str", "", "the sweep point's id (`sweep.point_id`)", ("sweep",)),
    Column("point_index", "int", "", "the point's position in the sweep's plan", ("sweep",)),
    Column("repetition", "int", "", "the repetition of the point, from 0", ("sweep",)),
    Column("sweep_params", "dict", "", "{parameter: value} of the point", ("sweep",)),
    Column("workload.*", "any", "",
           "the workload's fields (`Workload.as_flat_dict`): `workload.<field>`, "
           "`workload.topic_config.<key>`, `workload.headers.<name>`; message_size is the mean in B",
           _ENGINE),
    Column("profile.*", "any", "",
           "`profile.name`, `profile.replication_factor`, `profile.topic_config.<key>` "
           "(`ClientProfile.as_flat_dict`)"),
    Column("common.*", "any", "", "librdkafka settings for every client, secrets redacted (when set)",
           always=False),
    Column("producer.*", "any", "", "producer settings, kafkabench defaults included, secrets redacted"),
    Column("consumer.*", "any", "", "consumer settings, kafkabench defaults included, secrets redacted"),
)

#: Prefixes of the summary keys that hold settings (one key per workload field or client setting).
SETTING_PREFIXES: tuple[str, ...] = tuple(c.name[:-1] for c in SUMMARY if c.is_family)


# ----------------------------------------------------------------------------- frames


def _latency_timeseries() -> list[Column]:
    out = []
    for name in _TIMESERIES_HISTOGRAMS:
        h = _HISTOGRAM_BY_NAME[name]
        for k in h.timeseries:
            out.append(Column(f"{h.prefix}_{k}", "float64", h.unit,
                              f"{h.description}: {k} of the second (NaN: none recorded; "
                              "locust: its rolling 10 s window)"))
    return out


_LOCUST_ONLY = ("locust",)

FRAMES: dict[str, tuple[Column, ...]] = {
    "timeseries": (
        Column("t", "int64", "s", "the index: whole seconds since the producers started "
               "(the backlog phase, when there is one)"),
        Column("produced", "int64", "msgs", "messages sent in the second"),
        Column("delivered", "int64", "msgs", "messages acknowledged in the second"),
        Column("failed", "int64", "msgs", "messages failed in the second"),
        Column("consumed", "int64", "msgs", "messages consumed in the second, all groups"),
        Column("bytes", "int64", "B", "message value bytes delivered in the second", _ENGINE),
        Column("consumed_bytes", "int64", "B", "key + value bytes consumed in the second", _ENGINE),
        Column("backlog", "int64", "msgs",
               "delivered minus consumed per group, running (never negative)"),
        *_latency_timeseries(),
        Column("time", "datetime64[us, UTC]", "", "wall-clock start of the second, UTC", _ENGINE),
        Column("users", "int64", "", "Locust users running", _LOCUST_ONLY),
        Column("rebalances", "int64", "", "assignments in the second", _LOCUST_ONLY),
        Column("requests", "int64", "", "Locust requests of every type in the second", _LOCUST_ONLY),
        Column("failures", "int64", "", "Locust failures of every type in the second", _LOCUST_ONLY),
    ),
    "lag": (
        Column("t", "float64", "s", "sample time since the run started (`LagSampler`: since it was created)"),
        Column("group", "str", "", "consumer group"),
        Column("topic", "str", "", "topic (\"\" on a row about a whole group)"),
        Column("partition", "int64", "", "partition (-1: a row about a whole group)"),
        Column("committed", "Int64", "", "the group's committed offset (<NA>: none)"),
        Column("log_end", "Int64", "", "the partition's log-end offset (<NA>: unknown)"),
        Column("lag_msgs", "Int64", "msgs", "log_end - committed (<NA>: unknown)"),
        Column("lag_s", "float64", "s", "lag in seconds, kafka-lag-exporter's interpolation (NaN: unknown)"),
        Column("status", "str", "", "DELETED, OK, WARN, STALL, STOP, REWIND or ERR (Burrow-style); "
               "GAP on a row about a whole group: no samples for a while (the sampler's process "
               "died and was restarted, the reason in error)"),
        Column("time", "datetime64[us, UTC]", "", "wall-clock time of the sample, UTC"),
        Column("oldest_age_s", "float64", "s",
               "age of the record at the committed offset, read from the log (0: caught up; NaN: unknown)"),
        Column("error", "str", "", "why the row is ERR, else \"\""),
    ),
    "rebalances": (
        Column("t", "float64", "s", "seconds since the producers started"),
        Column("group", "str", "", "consumer group"),
        Column("member", "str", "", "the member's worker name (locust: \"\")"),
        Column("event", "str", "", "'assign', 'revoke' or 'lost'"),
        Column("partitions", "str", "", "the partitions, `topic:partition` comma-separated (locust: \"\")"),
        Column("count", "int64", "", "number of partitions in the event", _ENGINE),
        Column("wall", "float64", "s", "Unix time of the event", _ENGINE),
    ),
    "librdkafka": (
        Column("t", "float64", "s", "seconds since the producers started, at receipt of the statistics"),
        Column("client", "str", "", "the worker name"),
        Column("scope", "str", "", "'client', 'broker', 'topic', 'partition' or 'cgrp'"),
        Column("name", "str", "", "the client, broker (`host:port/id`), topic, `topic-N` or 'cgrp'"),
        Column("metric", "str", "", "librdkafka's field, with window and statistic (e.g. rtt_p99)"),
        Column("value", "float64", "", "the value, in librdkafka's unit (us for latencies, B for sizes)"),
    ),
    "faults": (
        Column("fault", "int64", "", "index in the schedule (-1: end-of-run cleanup)"),
        Column("action", "str", "", "kill, stop, start, pause, resume, restart or rolling_restart"),
        Column("origin", "str", "", "'schedule', 'duration' (the undo after duration_s), "
               "'rolling_restart' (one node's turn) or 'cleanup'"),
        Column("target", "str", "", "the target as written: a node id, leader[:TOPIC]:PARTITION, "
               "controller or any"),
        Column("node", "Int64", "", "the node it resolved to (<NA>: unresolved)"),
        Column("scheduled_s", "float64", "s", "when it was due, since the producers started"),
        Column("started_s", "float64", "s", "when it started"),
        Column("ended_s", "float64", "s", "when it finished"),
        Column("outcome", "str", "", "'ok', 'failed' or 'skipped'"),
        Column("error", "str", "", "why it failed (\"\" when ok)"),
        Column("command", "str", "", "the shell command run (external clusters), else \"\""),
    ),
    "cluster_state": (
        Column("t", "float64", "s", "sample time since the producers started"),
        Column("time", "datetime64[us, UTC]", "", "wall-clock time of the sample, UTC"),
        Column("topic", "str", "", "topic (\"\" when no broker answered the sample)"),
        Column("partition", "int64", "", "partition (-1 on a failed sample's row, or with the "
               "error the cluster returned for the topic)"),
        Column("leader", "int64", "", "leader node id (-1: none, the partition is offline)"),
        Column("replicas", "int64", "", "assigned replicas"),
        Column("isr_size", "int64", "", "in-sync replicas"),
        Column("under_replicated", "bool", "", "isr_size < replicas"),
        Column("offline", "bool", "", "no leader"),
        Column("leader_changed", "bool", "", "leader differs from the previous successful sample's "
               "(-1, no leader, counts: losing a leader and electing one are two changes)"),
        Column("error", "str", "", "why the sample failed, else \"\""),
    ),
    "verify": (
        Column("topic", "str", "", "topic"),
        Column("partition", "int64", "", "partition (acknowledged messages: where acked; "
               "reads: where read; -1: failed before a partition was chosen)"),
        Column("producer", "str", "", "the producer's worker name"),
        Column("acked", "int64", "msgs", "acknowledged to the producer"),
        Column("failed", "int64", "msgs", "failed at the producer"),
        Column("read", "int64", "msgs", "records read back"),
        Column("lost", "int64", "msgs", "acknowledged, never read"),
        Column("duplicated", "int64", "msgs", "extra copies read"),
        Column("reordered", "int64", "msgs", "first reads below the producer's highest sequence read so far"),
        Column("failed_but_present", "int64", "msgs", "failed at the producer, yet read"),
    ),
    "processing": (
        Column("t", "int64", "s", "whole seconds since the producers started"),
        Column("processed", "int64", "msgs", "messages processed in the second"),
        Column("filtered", "int64", "msgs", "messages filtered out in the second"),
        Column("retried", "int64", "", "failed attempts retried in the second"),
        Column("forwarded", "int64", "msgs", "records sent to retry topics in the second"),
        Column("failed", "int64", "msgs", "messages that failed their last attempt in the second"),
        Column("dead_lettered", "int64", "msgs", "records sent to the dead-letter topic in the second"),
        Column("output", "int64", "msgs", "records sent to the output topic in the second"),
        Column("processing_latency_ms_p99", "float64", "ms", "receipt to done in a member: p99 of the second"),
        Column("done_latency_ms_p50", "float64", "ms", "input timestamp to done: p50 of the second"),
        Column("done_latency_ms_p99", "float64", "ms", "input timestamp to done: p99 of the second"),
        Column("output_e2e_latency_ms_p50", "float64", "ms",
               "input timestamp to its output record read by a read_committed consumer: p50 of the second"),
        Column("output_e2e_latency_ms_p99", "float64", "ms",
               "input timestamp to its output record read by a read_committed consumer: p99 of the second"),
    ),
    "membership": (
        Column("at_s", "float64", "s", "when the event was scheduled, since the producers started"),
        Column("t_s", "float64", "s", "when it was carried out (NaN: never)"),
        Column("action", "str", "", "crash, restart, join or leave (`kafkabench.membership`)"),
        Column("topic", "int64", "", "the topic's index"),
        Column("group", "int64", "", "the group's index"),
        Column("member", "int64", "", "the member's index in its group"),
        Column("worker", "str", "", "the worker it hit or started"),
        Column("pid", "Int64", "", "the process killed (crash)"),
        Column("outcome", "str", "", "ok, failed or skipped"),
        Column("error", "str", "", "why it failed, else \"\""),
        Column("wall", "float64", "s", "Unix time it was carried out (NaN: never)"),
        Column("group_id", "str", "", "the consumer group"),
        Column("topic_name", "str", "", "the topic the group consumes"),
        Column("detect_s", "float64", "s",
               "event to the group's first rebalance callback after it (a crash: its detection)"),
        Column("stable_s", "float64", "s", "event to the group's last rebalance callback before its next event"),
        Column("partition_pause_s", "float64", "s",
               "longest time one partition went without consumption, overlapping the event's window"),
        Column("group_pause_s", "float64", "s",
               "longest time the whole group consumed nothing, overlapping the event's window"),
        Column("partitions_revoked", "float64", "", "partitions revoked or lost in the event's window"),
        Column("partitions_assigned", "float64", "", "partitions assigned in the event's window"),
        Column("partitions_moved", "float64", "", "partitions owned by another member after the window than before it"),
        Column("duplicates", "float64", "msgs",
               "records consumed again in the window (by offset, from the members' consumption traces)"),
        Column("lag_peak_msgs", "float64", "msgs", "the group's highest committed lag in the window"),
        Column("drain_s", "float64", "s",
               "event until the group's lag was back to its level of the 3 s before (NaN: not in the window)"),
    ),
    "broker_metrics": (
        Column("t", "float64", "s", "scrape time since the producers started"),
        Column("broker", "str", "", "the broker (node id, or the exporter URL of an external one)"),
        Column("metric", "str", "", "Prometheus metric name from the broker's JMX exporter"),
        Column("labels", "str", "", "its labels, `name=value` sorted and comma-separated (\"\": none)"),
        Column("value", "float64", "", "the sample's value (counters: the running total)"),
    ),
    "dead_letters": (
        Column("topic", "str", "", "the dead-letter topic"),
        Column("partition", "int64", "", "its partition"),
        Column("offset", "int64", "", "its offset"),
        Column("key", "object", "", "the original key (bytes or None)"),
        Column("value_bytes", "int64", "B", "length of the original value"),
        Column("error", "str", "", "header `error`"),
        Column("retry_count", "int64", "", "header `retry_count`: retries made before it died"),
        Column("original_topic", "str", "", "header `original_topic`"),
        Column("original_partition", "int64", "", "header `original_partition`"),
        Column("original_offset", "int64", "", "header `original_offset`"),
        Column("failed_at", "datetime64[ms, UTC]", "", "header `failed_at` (epoch ms)"),
        Column("headers", "str", "", "the record's other headers, JSON {name: text}"),
    ),
    "recovery": (
        Column("fault", "int64", "", "index in the schedule"),
        Column("action", "str", "", "the fault's action"),
        Column("node", "Int64", "", "the node it hit"),
        Column("t_s", "float64", "s", "when it started, since the producers started"),
        Column("first_ack_s", "float64", "s",
               "until every partition acknowledged before the fault was acknowledged again (inf: never)"),
        Column("outage_s", "float64", "s", "longest gap without acknowledgements on one of those partitions"),
        Column("recovery_s", "float64", "s", "until delivered/s was back to 90% of pre_rate (inf: never)"),
        Column("pre_rate", "float64", "msgs/s", "delivered per second in the 5 s before the fault"),
        Column("publish_latency_ms_max", "float64", "ms", "largest publish latency in the window"),
        Column("e2e_latency_ms_p99", "float64", "ms", "end-to-end latency p99 in the window"),
        Column("failed", "int64", "msgs", "delivery errors in the window"),
        Column("errors", "str", "", "delivery errors in the window by code, most first: 'CODE:n, ...'"),
    ),
}
FRAMES_WITH_INDEX = {"timeseries": "t"}
KINDS: tuple[str, ...] = ("summary", *FRAMES)


def _frame(kind: str) -> tuple[Column, ...]:
    if kind not in FRAMES:
        raise ValueError(f"frame kind {kind!r}: expected one of {list(FRAMES)}")
    return FRAMES[kind]


def _wanted(source: str | Iterable[str]) -> set[str]:
    wanted = {source} if isinstance(source, str) else set(source)
    unknown = wanted - set(SOURCES)
    if unknown:
        raise ValueError(f"source {sorted(unknown)!r}: expected some of {list(SOURCES)}")
    return wanted


def columns(kind: str, source: str | Iterable[str] = "run") -> list[str]:
    """Column names of a frame, in order, as `source` emits them (the index not included).

    Args:
        kind: "timeseries", "lag", "rebalances" or "librdkafka".
        source: one or several of `SOURCES`.
    """
    wanted = _wanted(source)
    index = FRAMES_WITH_INDEX.get(kind)
    return [c.name for c in _frame(kind) if c.name != index and wanted & set(c.sources)]


def dtypes(kind: str) -> dict[str, str]:
    """{column: dtype} of a frame, every source's columns (the index not included)."""
    index = FRAMES_WITH_INDEX.get(kind)
    return {c.name: c.dtype for c in _frame(kind) if c.name != index}


def empty_frame(kind: str, source: str | Iterable[str] = "run") -> pd.DataFrame:
    """A frame with no rows, the contract's columns (as `source` emits them) and dtypes.

    Args:
        kind: "timeseries", "lag", "rebalances" or "librdkafka".
        source: one or several of `SOURCES`.
    """
    types = dtypes(kind)
    frame = pd.DataFrame({c: pd.Series(dtype=types[c]) for c in columns(kind, source)})
    index = FRAMES_WITH_INDEX.get(kind)
    if index is not None:
        frame.index = pd.Index([], dtype=next(c.dtype for c in FRAMES[kind] if c.name == index), name=index)
    return frame


def check_frame(kind: str, df: pd.DataFrame, source: str | Iterable[str] = "run") -> list[str]:
    """Where a frame departs from the contract.

    Args:
        kind: "timeseries", "lag", "rebalances" or "librdkafka".
        df: the frame.
        source: who made it (one or several of `SOURCES`): decides which columns must be there.

    Returns:
        One sentence per problem (a missing column, an unexpected one, a wrong dtype, a wrong
        index); empty when the frame keeps the contract.
    """
    problems = []
    spec = {c.name: c for c in _frame(kind)}
    index = FRAMES_WITH_INDEX.get(kind)
    if index is not None:
        want = spec[index].dtype
        if df.index.name != index or str(df.index.dtype) != want:
            problems.append(f"{kind}: index is {df.index.name!r} ({df.index.dtype}), the contract "
                            f"says {index!r} ({want})")
    for name in columns(kind, source):
        if spec[name].always and name not in df.columns:
            problems.append(f"{kind}: column {name!r} is missing")
    for name in df.columns:
        if name not in spec or name == index:
            problems.append(f"{kind}: column {name!r} is not in the contract")
        elif str(df[name].dtype) != spec[name].dtype:
            problems.append(f"{kind}: column {name!r} has dtype {df[name].dtype}, the contract "
                            f"says {spec[name].dtype}")
    return problems


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (float, int), "bool": (bool,), "str": (str,), "dict": (dict,),
    "list": (list, tuple), "None": (type(None),),
}


def _type_ok(value: Any, dtype: str) -> bool:
    if dtype == "any":
        return True
    for name in (t.strip() for t in dtype.split("|")):
        # bool is an int to Python; not to the contract.
        if isinstance(value, bool) and name != "bool":
            continue
        if isinstance(value, _PY_TYPES[name]):
            return True
    return False


def summary_column(key: str) -> Column | None:
    """The contract's entry for a summary key (a family entry for `producer.linger.ms`), or None."""
    return next((c for c in SUMMARY if c.matches(key)), None)


def check_summary(summary: Mapping[str, Any], source: str | Iterable[str] = "run") -> list[str]:
    """Where a summary departs from the contract.

    Args:
        summary: `RunResult.summary`.
        source: who made it (one or several of `SOURCES`, e.g. ("run", "sweep") for a sweep's
            run): decides which keys must be there.

    Returns:
        One sentence per problem (a missing key, an unknown key, a value of the wrong type);
        empty when the summary keeps the contract.
    """
    wanted = _wanted(source)
    problems = []
    for c in SUMMARY:
        if c.always and wanted & set(c.sources) and not any(c.matches(k) for k in summary):
            problems.append(f"summary: key {c.name!r} is missing")
    for key, value in summary.items():
        c = summary_column(key)
        if c is None:
            problems.append(f"summary: key {key!r} is not in the contract")
        elif not _type_ok(value, c.dtype):
            problems.append(f"summary: {key!r} is {type(value).__name__} {value!r}, the contract "
                            f"says {c.dtype}")
    return problems


def summary_names(*names: str) -> tuple[str, ...]:
    """The names given, after checking each is a summary key of the contract.

    Readers that pick summary keys (`results.HEADLINE`, sweep metrics, experiment tables) list
    them through this, so renaming a key in the contract breaks them at import, not silently.

    Raises:
        ValueError: naming a key the contract does not have.
    """
    for name in names:
        if summary_column(name) is None:
            raise ValueError(f"{name!r} is not a summary key of kafkabench.contract.SUMMARY")
    return names


def column_names(kind: str, *names: str) -> tuple[str, ...]:
    """The names given, after checking each is a column of the frame `kind` in the contract.

    Raises:
        ValueError: naming a column the contract does not have.
    """
    spec = {c.name for c in _frame(kind)}
    for name in names:
        if name not in spec:
            raise ValueError(f"{name!r} is not a column of kafkabench.contract.FRAMES[{kind!r}]")
    return names


# ----------------------------------------------------------------------------- markdown

_TITLES = {
    "summary": "`summary`: one flat dict per run (`RunResult.as_dict()`, one row of `load_results()`)",
    "timeseries": "`timeseries`: one row per second",
    "lag": "`lag`: one row per sample and partition (`LagSampler.frame()`)",
    "rebalances": "`rebalances`: one row per assignment change a consumer saw",
    "librdkafka": "`librdkafka`: librdkafka statistics, long format (`stats.parse_statistics`)",
    "faults": "`faults`: one row per fault action carried out (`kafkabench.faults`)",
    "cluster_state": "`cluster_state`: one row per partition per sample, about once a second "
                     "(`kafkabench.clusterstate`)",
    "verify": "`verify`: delivery verification, one row per topic, partition and producer "
              "(`kafkabench.verify`)",
    "recovery": "`recovery`: one row per disruptive scheduled fault (`kafkabench.recovery`)",
    "processing": "`processing`: the processing stage's counts and latencies, one row per second "
                  "(`kafkabench.processing`)",
    "membership": "`membership`: one row per consumer-group membership event (`kafkabench.membership`)",
    "broker_metrics": "`broker_metrics`: the brokers' metrics, long format, one row per sample per scrape "
                      "(`kafkabench.brokermetrics`)",
    "dead_letters": "`dead_letters`: the dead-letter topics' records at the end of the run, at most "
                    "10000 (`kafkabench.processing`)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _from(c: Column) -> str:
    return ", ".join(c.sources) + ("" if c.always else " (sometimes)")


def markdown() -> str:
    """DESIGN.md's result tables: the histograms, the summary and every frame."""
    lines = ["Sources: `run` = `run_workload`, `consume` = `consume_topic`, `locust` = `run_locust`, "
             "`sweep` = added by `run_sweep`; \"(sometimes)\": only under the condition the "
             "description names. Generated by `python -m kafkabench.core.contract --write DESIGN.md`.", "",
             "#### histograms (`RunResult.histograms`, recorded in us) and the columns they give", "",
             "| histogram | column prefix | unit | timeseries | measures |",
             "| --- | --- | --- | --- | --- |"]
    for h in HISTOGRAMS:
        lines.append(f"| `{h.name}` | `{h.prefix}_` | {h.unit} | {', '.join(h.timeseries)} | "
                     f"{_cell(h.description)} |")
    lines += ["", f"Summary keys per histogram: `<prefix>_{{{','.join(PERCENTILE_KEYS)}}}`.", ""]
    latency = {n for h in HISTOGRAMS for n in h.columns("summary")}
    lines += [f"#### {_TITLES['summary']}", "", "| key | type | unit | from | meaning |",
              "| --- | --- | --- | --- | --- |"]
    shown = set()
    for c in SUMMARY:
        if c.name in latency:
            h = next(h for h in HISTOGRAMS if c.name.startswith(h.prefix + "_"))
            if h.name not in shown:
                shown.add(h.name)
                lines.append(f"| `{h.prefix}_{{{','.join(PERCENTILE_KEYS)}}}` | float | {h.unit} | "
                             f"{_from(c)} | {_cell(h.description)}, after warm-up (NaN: none recorded) |")
            continue
        lines.append(f"| `{c.name}` | {_cell(c.dtype)} | {c.unit} | {_from(c)} | {_cell(c.description)} |")
    for kind, cols in FRAMES.items():
        lines += ["", f"#### {_TITLES[kind]}", "", "| column | dtype | unit | from | meaning |",
                  "| --- | --- | --- | --- | --- |"]
        for c in cols:
            name = f"`{c.name}` (index)" if FRAMES_WITH_INDEX.get(kind) == c.name else f"`{c.name}`"
            lines.append(f"| {name} | {c.dtype} | {c.unit} | {_from(c)} | {_cell(c.description)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m kafkabench.core.contract --markdown`: print DESIGN.md's result tables."""
    parser = argparse.ArgumentParser(prog="python -m kafkabench.core.contract",
                                     description="The result contract of kafkabench.")
    parser.add_argument("--markdown", action="store_true", help="print DESIGN.md's result tables")
    parser.add_argument("--write", metavar="FILE",
                        help="replace the tables between the contract markers in FILE (DESIGN.md)")
    args = parser.parse_args(argv)
    if args.write:
        write_markdown(args.write)
        return 0
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown())
    return 0


BEGIN, END = "<!-- contract:begin -->", "<!-- contract:end -->"


def write_markdown(path: str) -> None:
    """Replace the text between `BEGIN` and `END` in `path` with `markdown()`.

    Raises:
        ValueError: the file has no such markers.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {BEGIN} ... {END} section")
    new = text[:start + len(BEGIN)] + "\n" + markdown() + text[end:]  # before truncating
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


if __name__ == "__main__":
    sys.exit(main())
