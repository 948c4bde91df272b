"""Soak: does kafkabench run for half an hour under broker restarts without growing or losing?

One verified run at a fixed rate (acks=all with idempotence, replication factor 3,
min.insync.replicas 2: Kafka's ducktape replication tests' setup) on a 3-broker embedded
cluster the script starts (or --bootstrap), with a clean broker restart every 5 minutes on
node 1, 2, 3, 1, ... in turn. Runs shorter than 15 minutes restart at a third and two thirds
of the run instead (so `--minutes 2` still restarts two brokers). A sampler thread records
the kafkabench processes (this one and its worker processes; the brokers' JVMs are not
counted) every 10 s: resident memory (RSS), open file descriptors and threads.

Printed: the samples, each figure's least-squares slope after warm-up (per 10 minutes), the
restarts with their recovery figures, and the delivery verification. Goals: RSS growth
< 5 MB per 10 min, 0 acknowledged messages lost. The last line is one JSON object.

    python benchmarks/soak.py [--minutes 30] [--rate 2000] [--bootstrap HOST:PORT]
                              [--restart-command 'ssh kafka{node} systemctl restart kafka']

Note: what grows by design is printed as "expected" next to the slopes: the verifier's ledger
keeps 3 bytes per message in the producer (about 3.6 MB per 10 min at 2,000 msgs/s, grown by
doubling), and the parent keeps each second's histograms for `RunResult.intervals`, encoded
(`kafkabench.stats.SecondHistograms`: about 2 KB each, not the 0.19 MB of a live HdrHistogram).
Goals missed are printed as MISSED; the exit status is non-zero only on errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
import pandas as pd
import psutil

from kafkabench.cluster.admin import admin_client
from kafkabench.cluster.local import LocalCluster
from kafkabench.cluster.nodes import find_local_cluster
from kafkabench.core.errors import ClusterError, KafkabenchError
from kafkabench.run.session import RunObserver, RunSession
from kafkabench.runner import run_workload
from kafkabench.spec.workload import Workload

RESTART_EVERY_S = 300.0
SAMPLE_EVERY_S = 10.0
RSS_GOAL_MB_PER_10MIN = 5.0
# The producer's DeliveryLedger: a status byte and an int16 partition per message.
LEDGER_BYTES_PER_MSG = 3
PROFILE = {"name": "soak", "producer": {"acks": "all", "enable.idempotence": True}}
SAMPLE_COLUMNS = ["t_s", "processes", "rss_mb", "parent_rss_mb", "fds", "threads"]


def restart_times(run_s: float, every_s: float | None = None) -> list[float]:
    """When to restart a broker: every `every_s` (default 5 min) strictly inside the run; a
    run shorter than three intervals of 5 min gets two restarts, at 1/3 and 2/3 of it."""
    if every_s is None:
        every_s = RESTART_EVERY_S if run_s >= 3 * RESTART_EVERY_S else run_s / 3
    if every_s <= 0:
        raise ValueError(f"restart interval {every_s!r}: must be positive")
    times, t = [], every_s
    while t < run_s - 1e-9:
        times.append(round(t, 3))
        t += every_s
    return times


def restart_schedule(times: Sequence[float], nodes: Sequence[int]) -> list[dict]:
    """A `faults` list restarting `nodes` in turn at `times`."""
    return [{"at_s": t, "action": "restart", "target": int(nodes[i % len(nodes)])}
            for i, t in enumerate(times)]


def slope_per_10min(t_s: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `values` against `t_s` (seconds), per 10 minutes; NaN with
    fewer than two distinct times."""
    t, v = np.asarray(t_s, dtype=float), np.asarray(values, dtype=float)
    keep = ~(np.isnan(t) | np.isnan(v))
    t, v = t[keep], v[keep]
    if len(t) < 2 or np.ptp(t) == 0:
        return math.nan
    return float(np.polyfit(t, v, 1)[0] * 600.0)


def slopes(samples: pd.DataFrame, start_s: float, end_s: float = math.inf) -> dict[str, float]:
    """Slope per 10 min of rss_mb, parent_rss_mb, fds and threads over the samples with
    start_s <= t_s <= end_s (after warm-up, while the workers run)."""
    window = samples[(samples["t_s"] >= start_s) & (samples["t_s"] <= end_s)]
    return {c: slope_per_10min(window["t_s"], window[c]) for c in ("rss_mb", "parent_rss_mb", "fds", "threads")}


def kafkabench_processes(root: psutil.Process) -> list[psutil.Process]:
    """`root` and its descendants except the brokers' JVMs (children of a cluster this
    process started or restarted)."""
    procs = [root]
    for child in root.children(recursive=True):
        try:
            if "java" not in child.name():
                procs.append(child)
        except psutil.Error:
            continue  # ended while we looked
    return procs


def sample(root: psutil.Process, t0: float) -> dict:
    """One row of `SAMPLE_COLUMNS`: the kafkabench processes' RSS, open fds and threads."""
    row = {"t_s": time.monotonic() - t0, "processes": 0, "rss_mb": 0.0, "parent_rss_mb": 0.0,
           "fds": 0, "threads": 0}
    for p in kafkabench_processes(root):
        try:
            with p.oneshot():
                rss, fds, threads = p.memory_info().rss / 1e6, p.num_fds(), p.num_threads()
        except psutil.Error:
            continue
        row["processes"] += 1
        row["rss_mb"] += rss
        row["fds"] += fds
        row["threads"] += threads
        if p.pid == root.pid:
            row["parent_rss_mb"] = rss
    return row


class RunClock(RunObserver):
    """When the producers were released and when they finished (monotonic seconds)."""

    def __init__(self) -> None:
        self.go = self.end = math.nan

    def on_go(self, session: RunSession) -> None:
        self.go = session.t_go

    def on_end(self, session: RunSession) -> None:
        self.go, self.end = session.t_go, session.t_end


class Sampler(threading.Thread):
    """Samples the kafkabench processes every `every_s` seconds until `stop()`."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S, *, echo: bool = True) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.every_s, self.echo = every_s, echo
        self.rows: list[dict] = []
        self._done = threading.Event()
        self._root = psutil.Process(os.getpid())
        self.t0 = time.monotonic()

    def run(self) -> None:
        while True:
            self.rows.append(sample(self._root, self.t0))
            if self.echo:
                print(sample_line(self.rows[-1]), flush=True)
            if self._done.wait(self.every_s):
                return

    def stop(self) -> pd.DataFrame:
        """Stop sampling (one last sample) and return the samples."""
        self._done.set()
        self.join(timeout=30)
        self.rows.append(sample(self._root, self.t0))
        return self.frame()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=SAMPLE_COLUMNS)


SAMPLE_HEADER = f"{'t s':>8}{'procs':>7}{'RSS MB':>10}{'parent MB':>11}{'fds':>7}{'threads':>9}"


def sample_line(row: dict) -> str:
    return (f"{row['t_s']:>8.0f}{row['processes']:>7}{row['rss_mb']:>10.1f}{row['parent_rss_mb']:>11.1f}"
            f"{row['fds']:>7}{row['threads']:>9}")


def _encoded_mb(intervals) -> float:
    """MB one second's histogram takes in the parent once it is kept encoded."""
    n = len(intervals)
    size = intervals.encoded_bytes() if hasattr(intervals, "encoded_bytes") else 0
    return size / max(n, 1) / 1e6


def node_ids(bootstrap: str) -> list[int]:
    """The cluster's broker ids, from its metadata."""
    local = find_local_cluster(bootstrap)
    if local is not None:
        return [n.id for n in local.nodes]
    try:
        return sorted(admin_client(bootstrap).list_topics(timeout=10).brokers)
    except Exception as exc:  # KafkaException: the metadata request failed
        raise ClusterError(f"cannot read the brokers of {bootstrap}: {exc}") from exc


def fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    return "-" if isinstance(value, float) and value != value else format(value, spec)


def json_number(value, digits: int = 3):
    """NaN as null (strict JSON has no NaN), inf as a string; floats rounded."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != value:
            return None
        return str(value) if math.isinf(value) else round(value, digits)
    if isinstance(value, np.integer):
        return int(value)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=2000.0, help="msgs/s, all producers together")
    parser.add_argument("--message-size", type=int, default=512, help="bytes")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--restart-every", type=float, default=None, metavar="SECONDS",
                        help="seconds between broker restarts (default 300; under 15 minutes: "
                             "a third of the run)")
    parser.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                        help="samples before this are left out of the slopes (default: the first "
                             "restart's time)")
    parser.add_argument("--sample-every", type=float, default=SAMPLE_EVERY_S, metavar="SECONDS")
    parser.add_argument("--bootstrap", help="use this cluster instead of starting a 3-broker embedded one")
    parser.add_argument("--restart-command",
                        help="for a cluster kafkabench did not start: the shell command restarting "
                             "node {node}")
    args = parser.parse_args()
    if args.minutes <= 0 or args.rate <= 0 or args.sample_every <= 0:
        parser.error(f"--minutes {args.minutes!r}, --rate {args.rate!r} and --sample-every "
                     f"{args.sample_every!r}: each must be positive")

    run_s = args.minutes * 60
    times = restart_times(run_s, args.restart_every)
    warmup_s = args.warmup if args.warmup is not None else (times[0] if times else run_s / 4)
    with ExitStack() as stack:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            cluster = LocalCluster(brokers=3, name=f"soak-{uuid.uuid4().hex[:6]}")
            # Remove the cluster's folder (data and logs) after `with` stopped it.
            stack.callback(shutil.rmtree, cluster.base_dir, ignore_errors=True)
            bootstrap = stack.enter_context(cluster).bootstrap_servers
        nodes = node_ids(bootstrap)
        faults = restart_schedule(times, nodes)
        workload = Workload(name="soak", partitions=args.partitions, replication_factor=min(3, len(nodes)),
                            topic_config={"min.insync.replicas": "2"} if len(nodes) >= 3 else {},
                            message_size=args.message_size, producer_rate=args.rate, consumer_groups=1,
                            duration_s=run_s, warmup_s=0, verify=True, faults=faults,
                            fault_commands={"restart": args.restart_command} if args.restart_command else {})
        print(f"soak: {args.minutes:g} min at {args.rate:,.0f} msgs/s of {args.message_size} B, "
              f"{args.partitions} partitions, RF {workload.replication_factor}, acks=all + idempotence, "
              f"1 consumer group, verified; broker {bootstrap}; restarts at "
              + (", ".join(f"{f['at_s']:g} s (node {f['target']})" for f in faults) or "none")
              + f"; sampling every {args.sample_every:g} s, slopes after {warmup_s:g} s; "
              f"{psutil.cpu_count()} cores", flush=True)
        print(SAMPLE_HEADER, flush=True)
        sampler, clock = Sampler(args.sample_every), RunClock()
        sampler.start()
        try:
            result = run_workload(workload, PROFILE, bootstrap=bootstrap, progress=False, mode="process",
                                  observers=[clock])
        finally:
            samples = sampler.stop()
    print(sample_line(samples.iloc[-1].to_dict()) + "   (after the run)")
    # The slope window on the sampler's clock: from warm-up after the producers' release
    # until they stopped (later samples see the workers gone while the verifier reads).
    go, end = clock.go - sampler.t0, clock.end - sampler.t0
    print(f"producers ran from {go:.0f} s to {end:.0f} s of the sampler's clock")
    return report(result, samples, go + warmup_s, end, warmup_s, args.rate)


def report(result, samples: pd.DataFrame, start_s: float, end_s: float, warmup_s: float,
           rate: float) -> int:
    s = result.summary
    growth = slopes(samples, start_s, end_s)
    window = samples[(samples["t_s"] >= start_s) & (samples["t_s"] <= end_s)]
    expected = rate * 600 * LEDGER_BYTES_PER_MSG / 1e6
    rss_ok = growth["rss_mb"] < RSS_GOAL_MB_PER_10MIN
    lost = s.get("verify_lost")
    print(f"slopes from {start_s:.0f} s to {end_s:.0f} s (warm-up {warmup_s:g} s; {len(window)} samples), "
          "per 10 min:")
    print(f"  RSS of all kafkabench processes: {fmt(growth['rss_mb'], '+.2f')} MB "
          f"(goal < {RSS_GOAL_MB_PER_10MIN:g}: {'MET' if rss_ok else 'MISSED'}); "
          f"expected from the verify ledger: +{expected:.2f} MB")
    seconds = max(float(s.get("duration_s") or 0), 1.0)
    per_10min = len(result.intervals) / seconds * 600
    hist_mb = per_10min * _encoded_mb(result.intervals)
    print(f"  RSS of this (parent) process: {fmt(growth['parent_rss_mb'], '+.2f')} MB; expected from the "
          f"per-second histograms it keeps (RunResult.intervals: {len(result.intervals):,}, "
          f"{per_10min:,.0f} per 10 min): +{hist_mb:.1f} MB")
    print(f"  open file descriptors: {fmt(growth['fds'], '+.2f')}; threads: {fmt(growth['threads'], '+.2f')}")
    faults = result.faults
    print("restarts:")
    if faults is None or not len(faults):
        print("  none")
    else:
        recovery = result.recovery.set_index("fault") if result.recovery is not None and len(result.recovery) else None
        for row in faults.to_dict("records"):
            rec = recovery.loc[row["fault"]] if recovery is not None and row["fault"] in recovery.index else None
            figures = "" if rec is None else (
                f", outage {fmt(rec['outage_s'], '.2f')} s, recovery {fmt(rec['recovery_s'], '.1f')} s, "
                f"publish max {fmt(rec['publish_latency_ms_max'], ',.0f')} ms, failed {rec['failed']}")
            print(f"  {row['action']} node {row['node']} at {row['started_s']:.1f} s -> "
                  f"{row['ended_s']:.1f} s: {row['outcome']}{figures}"
                  + (f" ({row['error']})" if row["error"] else ""))
    print(f"run {s['run_id']}: published {s.get('delivered', 0):,} ({fmt(s.get('publish_rate'), ',.0f')} msgs/s), "
          f"failed {s.get('failed', 0):,}, publish p99 {fmt(s.get('publish_latency_ms_p99'), '.1f')} ms, "
          f"max {fmt(s.get('publish_latency_ms_max'), ',.0f')} ms, e2e p99 "
          f"{fmt(s.get('e2e_latency_ms_p99'), '.1f')} ms")
    print(f"verify: acked {fmt(s.get('verify_acked'), ',')}, read {fmt(s.get('verify_read'), ',')}, "
          f"lost {fmt(lost, ',')} (goal 0: {'MET' if lost == 0 else 'MISSED'}), "
          f"duplicated {fmt(s.get('verify_duplicated'), ',')}, reordered {fmt(s.get('verify_reordered'), ',')}, "
          f"failed but present {fmt(s.get('verify_failed_but_present'), ',')}, complete "
          f"{s.get('verify_complete')}, read back in {fmt(s.get('verify_read_s'), '.1f')} s"
          + (f", error: {s['verify_error']}" if s.get("verify_error") else ""))
    keys = ("delivered", "failed", "publish_rate", "publish_latency_ms_p99", "publish_latency_ms_max",
            "e2e_latency_ms_p99", "verify_acked", "verify_read", "verify_lost", "verify_duplicated",
            "verify_reordered", "verify_failed_but_present", "verify_complete", "faults", "faults_failed",
            "outage_s", "recovery_s")
    print(json.dumps({"slopes_per_10min": {k: json_number(v) for k, v in growth.items()},
                      "rss_goal_met": bool(rss_ok), "lost_goal_met": lost == 0,
                      "ledger_mb_per_10min": round(expected, 3), "intervals_mb_per_10min": round(hist_mb, 1),
                      "warmup_s": warmup_s,
                      "samples": len(window),
                      "rss_mb_first": json_number(window["rss_mb"].iloc[0]) if len(window) else None,
                      "rss_mb_last": json_number(window["rss_mb"].iloc[-1]) if len(window) else None,
                      "summary": {k: json_number(s.get(k)) for k in keys}}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkabenchError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        sys.exit(1)
