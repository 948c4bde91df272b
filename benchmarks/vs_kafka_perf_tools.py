"""kafkabench vs Apache Kafka's own perf tools, on the same broker in the same run.

Runs `org.apache.kafka.tools.ProducerPerformance` / `ConsumerPerformance` (kafka-tools jars)
and kafkabench's runner with equivalent settings (record size, acks, unthrottled, one
partition, each client's other defaults), after one unmeasured warm-up run of each,
alternating which goes first, and prints the median ratio kafkabench/Java of msgs/s. Also:
the cost of latency recording (same loop with and without) and resident memory growth over a
long run. The last line is one JSON object.

    python benchmarks/vs_kafka_perf_tools.py [--bootstrap HOST:PORT] [--reps 3] [--quick]

Note: the broker, the Java tool and kafkabench share this machine's cores; compare ratios
from the same run, not absolute figures across machines.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from contextlib import ExitStack

import psutil

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.cluster.install import install_kafka
from kafkabench.cluster.local import LocalCluster
from kafkabench.runner import consume_topic, run_workload
from kafkabench.spec.workload import Workload


def java_produce(dist, bootstrap: str, topic: str, records: int, size: int, acks: str) -> float:
    out = subprocess.run(dist.java_command(
        "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
        "--record-size", str(size), "--throughput", "-1", "--producer-props",
        f"bootstrap.servers={bootstrap}", f"acks={acks}"), capture_output=True, text=True, timeout=600)
    match = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", out.stdout)
    if not match:
        raise RuntimeError(f"ProducerPerformance printed no result:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(match[-1][1])


def java_consume(dist, bootstrap: str, topic: str, records: int) -> float:
    out = subprocess.run(dist.java_command(
        "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
        "--messages", str(records), "--timeout", "30000", "--group", f"jcp-{uuid.uuid4().hex[:6]}"),
        capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) >= 6 and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d+", cols[0]):
            return float(cols[5])  # nMsg.sec, rebalance time included
    raise RuntimeError(f"ConsumerPerformance printed no result:\n{out.stdout[-2000:]}")


def kb_produce(bootstrap: str, topic: str, records: int, size: int, acks: str,
               record_latency: bool = True) -> float:
    workload = Workload(name="bench", message_size=size, message_count=records, duration_s=0,
                        consumer_groups=0)
    result = run_workload(workload, {"producer": {"acks": acks}}, bootstrap=bootstrap, topics=[topic],
                          progress=False, mode="thread", stats_interval_ms=None,
                          record_latency=record_latency)
    assert result.summary["failed"] == 0, result.summary["errors"]
    return result.summary["delivery_rate"]


def kb_consume(bootstrap: str, topic: str, records: int, record_latency: bool) -> float:
    return consume_topic(topic, messages=records, bootstrap=bootstrap, progress=False,
                         record_latency=record_latency).summary["consume_rate"]


def fresh_topic(bootstrap: str, prefix: str) -> str:
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1)
    return topic


def memory_growth(bootstrap: str, records: int) -> dict:
    """RSS of this process before, at peak during, and after a run of `records` 100 B messages."""
    proc = psutil.Process()
    topic = fresh_topic(bootstrap, "bench-mem")
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.wait(0.2):
            peak[0] = max(peak[0], proc.memory_info().rss)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rate = kb_produce(bootstrap, topic, records, 100, "1")
    done.set()
    watcher.join()
    after = proc.memory_info().rss
    delete_topics(bootstrap, [topic])
    return {"records": records, "rate": rate, "rss_before_mb": before / 1e6,
            "rss_peak_mb": peak[0] / 1e6, "rss_after_mb": after / 1e6,
            "growth_peak_mb": (peak[0] - before) / 1e6, "growth_after_mb": (after - before) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="use this cluster instead of starting an embedded one")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--records", type=int, default=2_000_000, help="100 B records per produce run")
    parser.add_argument("--memory-records", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="small runs, to check the script works")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the unmeasured warm-up runs of both tools")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.records, args.memory_records = 1, 200_000, 500_000

    dist = install_kafka()
    with ExitStack() as stack:
        bootstrap = args.bootstrap or stack.enter_context(
            LocalCluster(brokers=1, base_dir=tempfile.mkdtemp(prefix="kb-bench-"))).bootstrap_servers
        print(f"broker {bootstrap}, Kafka tools {dist.version}, {psutil.cpu_count()} cores shared "
              f"by broker and clients; {args.reps} repetitions, medians")
        ratios: dict[str, float] = {}
        figures: dict[str, dict] = {}
        if not args.no_warmup:
            # Not measured: the broker's JIT and page cache warm up here. Without it the first
            # case (100 B, acks=1) ran up to a third slower than the same runs later on.
            topic = fresh_topic(bootstrap, "bench-warmup")
            java_produce(dist, bootstrap, topic, args.records, 100, "1")
            kb_produce(bootstrap, topic, args.records, 100, "1")
            delete_topics(bootstrap, [topic])
        for size in (100, 1024):
            records = args.records if size == 100 else max(1, args.records // 4)
            for acks in ("1", "all"):
                name = f"produce_{size}B_acks{acks}"
                java, ours = [], []
                for rep in range(args.reps):
                    order = [("java", java), ("kb", ours)]
                    for who, sink in (order if rep % 2 == 0 else order[::-1]):
                        topic = fresh_topic(bootstrap, f"bench-{who}")
                        sink.append(java_produce(dist, bootstrap, topic, records, size, acks) if who == "java"
                                    else kb_produce(bootstrap, topic, records, size, acks))
                        delete_topics(bootstrap, [topic])
                ratios[name] = statistics.median(ours) / statistics.median(java)
                figures[name] = {"kafkabench": statistics.median(ours), "java": statistics.median(java),
                                 "records": records}
                print(f"{name:<22} kafkabench {statistics.median(ours):>10,.0f} msg/s   "
                      f"java {statistics.median(java):>10,.0f} msg/s   ratio {ratios[name]:.2f}")

        topic = fresh_topic(bootstrap, "bench-consume")
        kb_produce(bootstrap, topic, args.records, 100, "1")
        # ConsumerPerformance only counts; "consume_100B" does the same work, and
        # "consume_100B_e2e" also records every message's end-to-end latency.
        java, ours, ours_e2e = [], [], []
        for rep in range(args.reps):
            order = [("java", java), ("kb", ours), ("kb-e2e", ours_e2e)]
            for who, sink in (order if rep % 2 == 0 else order[::-1]):
                sink.append(java_consume(dist, bootstrap, topic, args.records) if who == "java"
                            else kb_consume(bootstrap, topic, args.records, who == "kb-e2e"))
        delete_topics(bootstrap, [topic])
        for name, runs in (("consume_100B", ours), ("consume_100B_e2e", ours_e2e)):
            ratios[name] = statistics.median(runs) / statistics.median(java)
            figures[name] = {"kafkabench": statistics.median(runs), "java": statistics.median(java)}
            print(f"{name:<22} kafkabench {statistics.median(runs):>10,.0f} msg/s   "
                  f"java {statistics.median(java):>10,.0f} msg/s   ratio {ratios[name]:.2f}")

        with_lat, without = [], []
        for rep in range(args.reps):
            for record, sink in ((True, with_lat), (False, without)) if rep % 2 == 0 else \
                    ((False, without), (True, with_lat)):
                topic = fresh_topic(bootstrap, "bench-lat")
                sink.append(kb_produce(bootstrap, topic, args.records, 100, "1", record_latency=record))
                delete_topics(bootstrap, [topic])
        slowdown = 1 - statistics.median(with_lat) / statistics.median(without)
        print(f"latency recording: {statistics.median(with_lat):,.0f} vs {statistics.median(without):,.0f} "
              f"msg/s without: {slowdown:+.1%} slower (goal <= 10%)")

        memory = memory_growth(bootstrap, args.memory_records)
        print(f"memory over {memory['records']:,} messages: RSS {memory['rss_before_mb']:.0f} MB before, "
              f"peak {memory['rss_peak_mb']:.0f} MB, after {memory['rss_after_mb']:.0f} MB: growth "
              f"{memory['growth_peak_mb']:.1f} MB at peak (goal <= 50 MB)")
    print(json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()},
                      "latency_recording_slowdown": round(slowdown, 4),
                      "memory_growth_mb": round(memory["growth_peak_mb"], 1),
                      "figures": figures, "reps": args.reps}))


if __name__ == "__main__":
    sys.exit(main())
