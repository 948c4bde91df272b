"""From what a run measured to its result: one summary builder, the per-second frame.

`build_summary` is the one place a summary row is assembled: `run_workload`,
`consume_topic` and the Locust loader hand it their counts, rates and latency figures and
get the same keys, in the same order, with the same derived figures (MB/s, lag peaks).
`session_result` turns a finished `RunSession` into a `RunResult`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from kafkabench import KAFKA_VERSION, __version__
from kafkabench.core.contract import HISTOGRAMS, column_names, empty_frame, percentile_columns
from kafkabench.measure.stats import LatencyRecorder, parse_statistics

if TYPE_CHECKING:
    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession
    from kafkabench.run.tally import Tally
    from kafkabench.spec.profile import ClientProfile
    from kafkabench.spec.workload import Workload

# "held" (a rate-controlled run did what was asked): the measured publish rate within this
# fraction of the target, either way, and the schedule kept: publish delay (how late sends
# were against their intended time) at most these at p50 and p99.
RATE_TOLERANCE = 0.02
MAX_DELAY_P50_US = 10_000
MAX_DELAY_P99_US = 250_000
COUNT_COLUMNS = list(column_names("timeseries", "produced", "delivered", "failed", "consumed", "bytes",
                                  "consumed_bytes"))


def identity(*, run_id: str, name: str, started_at: datetime, duration_s: float,
             interrupted: bool, bootstrap: str, topics: Iterable[str], commit: str, mode: str,
             replication_factor: int | None = None) -> dict[str, Any]:
    """The keys that say which run this was, in the summary's order."""
    return {"run_id": run_id, "name": name, "started_at": started_at.isoformat(),
            "duration_s": round(duration_s, 3), "interrupted": interrupted,
            "kafka_version": KAFKA_VERSION, "kafkabench_version": __version__,
            "bootstrap": bootstrap, "topics": ",".join(topics), "commit": commit, "mode": mode,
            "replication_factor": replication_factor}


def latency_figures(histograms: Mapping[str, LatencyRecorder]) -> dict[str, float]:
    """`<column prefix>_<percentile>` of every histogram, in the contract's units; NaN for a
    histogram that is missing or empty."""
    out: dict[str, float] = {}
    for h in HISTOGRAMS:
        out.update(percentile_columns(h.name, histograms.get(h.name)))
    return out


def lag_figures(lag: pd.DataFrame | None) -> dict[str, float]:
    """Peak lag in messages and seconds over a lag frame; NaN when nothing was sampled."""
    def peak(col: str) -> float:
        return float(lag[col].max()) if lag is not None and len(lag) and lag[col].notna().any() \
            else math.nan

    return {"lag_max_msgs": peak("lag_msgs"), "lag_max_s": peak("lag_s")}


def build_summary(ident: Mapping[str, Any], figures: Mapping[str, Any], *,
                  latencies: Mapping[str, float], mean_message_size: float | None,
                  lag: pd.DataFrame | None = None, rebalances: int = 0,
                  errors: Mapping[str, int] | None = None,
                  error_messages: Mapping[str, list[str]] | None = None,
                  warnings: Iterable[str] = (), settings: Mapping[str, Any] | None = None,
                  ) -> dict[str, Any]:
    """The summary row of a run, whoever measured it.

    Args:
        ident: `identity(...)` keys.
        figures: counts and rates: produced, delivered, failed, consumed, publish_rate,
            delivery_rate, consume_rate and any source-specific extras.
        latencies: `latency_figures(...)` or the same keys from another source.
        mean_message_size: bytes per message for publish_mb_s / consume_mb_s (None: keep
            the figures' own MB/s).
        lag: the run's lag frame, for lag_max_msgs / lag_max_s.
        rebalances: partition assignments the members received.
        errors: errors by Kafka error code name.
        error_messages: the first messages per code.
        warnings: problems to tell the user.
        settings: the workload's and profile's flat settings (`as_flat_dict`).

    Returns:
        The row: identity, counts and rates, MB/s, latencies, lag peaks, rebalances,
        errors, warnings, settings.
    """
    summary: dict[str, Any] = {**ident, **figures}
    if mean_message_size is not None:
        summary["publish_mb_s"] = summary.get("delivery_rate", 0.0) * mean_message_size / 1e6
        summary["consume_mb_s"] = summary.get("consume_rate", 0.0) * mean_message_size / 1e6
    summary.update(latencies)
    summary.update(lag_figures(lag))
    summary["rebalances"] = int(rebalances)
    summary["errors"] = dict(errors or {})
    summary["error_messages"] = dict(error_messages or {})
    summary["warnings"] = list(warnings)
    summary.update(settings or {})
    return summary


def timeseries(tally: Tally, groups: int) -> pd.DataFrame:
    """Per-second counts, backlog and latency percentiles; `time` is each second's UTC
    wall-clock start, so runs join with broker logs and Prometheus data."""
    if not tally.counts:
        return empty_frame("timeseries")
    ts = pd.DataFrame.from_dict({t: dict(c) for t, c in tally.counts.items()}, orient="index")
    ts = ts.rename(columns={"sent": "produced"}).reindex(columns=COUNT_COLUMNS).fillna(0).astype("int64")
    ts = ts.reindex(range(0, max(tally.counts) + 1), fill_value=0).sort_index()
    ts.index.name = "t"
    # A message can be counted consumed a second before its producer reports it delivered
    # (each worker reports on its own clock): never show a negative backlog.
    ts["backlog"] = (ts["delivered"].cumsum() - ts["consumed"].cumsum() // max(groups, 1)).clip(lower=0)
    for h in HISTOGRAMS:
        per_second = {t: percentile_columns(h.name, tally.histograms.get((t, h.name)), "timeseries")
                      for t in ts.index}
        for column in h.columns("timeseries"):
            ts[column] = [per_second[t][column] for t in ts.index]
    ts["time"] = pd.to_datetime(tally.t0_wall + ts.index.to_numpy(dtype="float64"), unit="s",
                                utc=True).as_unit("us")
    ts = ts.reindex(columns=list(empty_frame("timeseries").columns))
    return ts


def throughput_figures(tally: Tally, ts: pd.DataFrame, elapsed: float, warmup_s: float) -> dict[str, Any]:
    """Counts and rates over the measured window (after warm-up)."""
    measured = ts[ts.index >= warmup_s] if len(ts) else ts
    window = max(elapsed - warmup_s, 1e-9) if elapsed else math.nan
    prod, cons = tally.totals["producer"], tally.totals["consumer"]
    # Consume rate: mean of the whole seconds in which consumers were busy; the first and
    # last of them are partial (start-up, drain) and left out when there are enough.
    busy_secs = measured.index[measured["consumed"] > 0] if len(measured) else []
    busy = measured.loc[busy_secs[0]:busy_secs[-1], "consumed"] if len(busy_secs) else []
    if len(busy) >= 3:
        busy = busy.iloc[1:-1]
    produced_measured = int(measured["produced"].sum()) if len(measured) else 0
    delivered_measured = int(measured["delivered"].sum()) if len(measured) else 0
    drained = tally.elapsed.get("producer_drained_s", elapsed)
    # Totals come from each worker's final report; a worker that died sent none, so what its
    # per-second reports counted is the floor (never lose what was measured).
    def total(role_totals: Counter, key: str, column: str) -> int:
        return max(int(role_totals.get(key, 0)), int(ts[column].sum()) if len(ts) else 0)

    return {
        "produced": total(prod, "sent", "produced"), "delivered": total(prod, "delivered", "delivered"),
        "failed": total(prod, "failed", "failed"), "buffer_full": int(prod.get("buffer_full", 0)),
        "consumed": total(cons, "consumed", "consumed"),
        # Offset commits the members sent (not counting librdkafka's auto-commits).
        "offset_commits": int(cons.get("commits", 0)),
        "consumed_by_group": dict(tally.consumed_by_group),
        "publish_rate": produced_measured / window if window == window else math.nan,
        # Delivered per second until the last delivery report (the final flush included),
        # as kafka-producer-perf-test counts it.
        "delivery_rate": delivered_measured / max(drained - warmup_s, 1e-9) if elapsed else math.nan,
        "consume_rate": float(busy.mean()) if len(busy) else 0.0,
    }


def transaction_figures(tally: Tally, warmup_s: float) -> dict[str, Any]:
    """What transactional producers committed and aborted, and their commit times (ms).

    `delivered` stays what delivery reports said: messages of an aborted transaction that
    were written count there too, and in `aborted_messages`.
    """
    prod = tally.totals["producer"]
    times = tally.merged("transaction_latency_us", warmup_s).percentiles("ms", ("p50", "p99"))
    return {"transactions_committed": int(prod.get("transactions_committed", 0)),
            "transactions_aborted": int(prod.get("transactions_aborted", 0)),
            "aborted_messages": int(prod.get("aborted_messages", 0)),
            "transaction_latency_ms_p50": times["p50"], "transaction_latency_ms_p99": times["p99"]}


def rebalances_frame(tally: Tally) -> pd.DataFrame:
    """The members' assign/revoke events, t relative to the run's start."""
    if not tally.rebalances:
        return empty_frame("rebalances")
    columns = list(empty_frame("rebalances").columns)
    return pd.DataFrame(tally.rebalances).reindex(columns=columns)


def session_result(session: RunSession, workload: Workload, profile: ClientProfile, *,
                   started_at: datetime, bootstrap: str, commit: str,
                   replication_factor: int | None = None, elapsed: float | None = None) -> RunResult:
    """The `RunResult` of a finished session: summary, frames, histograms, observers' parts.

    `elapsed` (s) replaces the session's producer time as the run's duration (a consumer-only
    run measures its consumer's).
    """
    from kafkabench.run.result import RunResult

    tally, plan = session.tally, session.plan
    elapsed = session.elapsed if elapsed is None else elapsed
    ts = timeseries(tally, workload.consumer_groups)
    histograms = {h.name: tally.merged(h.name, workload.warmup_s) for h in HISTOGRAMS}
    figures = {"target_rate": workload.producer_rate,
               **throughput_figures(tally, ts, elapsed, workload.warmup_s)}
    if workload.transaction_messages:
        figures.update(transaction_figures(tally, workload.warmup_s))
    rebalances = rebalances_frame(tally)
    ident = identity(run_id=plan.run_id, name=workload.name, started_at=started_at,
                     duration_s=elapsed, interrupted=session.interrupted, bootstrap=bootstrap,
                     topics=plan.topics, commit=commit, mode=plan.mode,
                     replication_factor=replication_factor)
    latencies = latency_figures(histograms)
    if workload.producer_rate:
        figures.update(judge_schedule({**figures, **latencies}, session.warnings))
    summary = build_summary(
        ident, figures, latencies=latencies,
        mean_message_size=workload.mean_message_size,
        rebalances=int((rebalances["event"] == "assign").sum()),
        errors=tally.errors.counts, error_messages=tally.errors.messages,
        warnings=session.warnings + tally.worker_errors,
        settings={**workload.as_flat_dict(), **profile.as_flat_dict()})
    summary.update(cpu_figures(tally, summary, elapsed, plan.mode))
    summary["sampler_restarts"] = 0  # the observers whose samplers run in sidecars add theirs
    frames = [parse_statistics(samples, t0=session.t_go, client=w) for w, samples in tally.stats]
    result = RunResult(summary=summary, timeseries=ts, rebalances=rebalances, histograms=histograms,
                       config={"workload": workload.to_dict(),
                               "profile": profile.to_dict(redact_secrets=True)},
                       intervals=tally.histograms)
    if frames:
        result.librdkafka = pd.concat(frames, ignore_index=True)
    for observer in session.observers:
        observer.contribute(result)
    mark_completeness(summary, tally, plan.topic_of_group, session.interrupted, session.failure)
    return result


def judge_schedule(figures: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """`rate_held`: the target rate was met within `RATE_TOLERANCE` either way *and* the
    schedule did not slip (publish delay p50/p99 within bounds); `held_reason` says which
    part failed. A producer that fell seconds behind and then caught up shows a rate above
    target and a large publish delay: that is not a held rate.

    Args:
        figures: target_rate, publish_rate, publish_delay_us_p50, publish_delay_us_p99.
        warnings: gets a warning when the rate was not held.

    Returns:
        {"rate_held": bool, "held_reason": str}.
    """
    target, rate = figures["target_rate"], figures["publish_rate"]
    p50, p99 = figures.get("publish_delay_us_p50"), figures.get("publish_delay_us_p99")
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
    if problems:
        warnings.append("target rate not held: " + "; ".join(problems))
    return {"rate_held": not problems, "held_reason": "; ".join(problems) if problems else (
        f"rate within {RATE_TOLERANCE:.0%} of target, publish delay p50 {p50 / 1000:.2f} ms, "
        f"p99 {p99 / 1000:.2f} ms")}


def cpu_figures(tally: Tally, summary: Mapping[str, Any], elapsed: float, mode: str) -> dict[str, float]:
    """The load generator's CPU: on a shared machine it is CPU the broker did not get."""
    cpu = tally.cpu_s
    total = cpu["parent"] + cpu["producer"] + cpu["consumer"]
    messages = summary["produced"] + summary["consumed"]
    produced = summary["produced"]
    return {
        "loadgen_cpu_s": round(total, 3),
        # Not over a run that never got going (a recovered one killed before its producers went).
        "loadgen_cores": total / elapsed if elapsed > 0.1 else math.nan,
        "cpu_us_per_msg": total * 1e6 / messages if messages else math.nan,
        # Producer processes' own CPU (librdkafka included); threads share the parent's.
        "producer_cpu_us_per_msg": cpu["producer"] * 1e6 / produced
        if mode == "process" and produced else math.nan,
    }


def mark_completeness(summary: dict[str, Any], tally: Tally, topic_of_group: Mapping[str, str],
                      interrupted: bool, failure: str | None) -> None:
    """`complete`: every group consumed what was delivered to its topic and no worker failed.

    Otherwise `complete` is False, `incomplete` lists why and `shortfall` gives each group's
    missing messages; a warning says it too.
    """
    reasons = []
    shortfall = {g: tally.delivered_by_topic[t] - tally.consumed_by_group[g]
                 for g, t in sorted(topic_of_group.items())
                 if tally.consumed_by_group[g] < tally.delivered_by_topic[t]
                 and g not in tally.caught_up_by_offsets}
    for g in sorted(tally.caught_up_by_offsets):
        summary["warnings"].append(
            f"group {g!r}: a member was killed on purpose and never sent its last counts, so "
            "consumed counts fall short; the group caught up by its committed offsets (lag 0)")
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
