"""What each offset-commit strategy costs a consumer: one consumer draining the same backlog.

One topic (--partitions, 100 B records) is filled once with --messages records. Then, per
repetition, one kafkabench consumer (`consume_topic`, a new group each time) reads it under
each commit mode, the modes' order rotating between repetitions:

  - auto:         librdkafka's enable.auto.commit (every 5 s, in the background);
  - async:        commit() without waiting, every second and on revoke;
  - sync:         a synchronous commit after each consume() batch;
  - sync-message: a synchronous commit after every message (--per-message-messages
                  records only: each commit is a broker round trip).

Kafka's ConsumerPerformance (kafka-tools, auto commit) reads the same topic in each
repetition as an independent reference for the auto-commit rate. Rates are fetch rates, as
ConsumerPerformance's fetch.nMsg.sec: from owning the partitions to the last record (the
group join, the same for every mode, left out). Prints msgs/s, commits
sent and the ratio to the same repetition's auto-commit rate, medians of --repeats; the last
line is one JSON object.

    python benchmarks/commit_modes.py [--bootstrap HOST:PORT] [--repeats 3] [--quick]

Note: the broker, the Java tool and kafkabench share this machine's cores; compare ratios
from the same run, not absolute figures across machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack

import psutil

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.cluster.install import install_kafka
from kafkabench.cluster.local import LocalCluster, resolve_bootstrap
from kafkabench.core.errors import KafkabenchError, NoClusterError
from kafkabench.runner import consume_topic, run_workload

MODES = ("auto", "async", "sync", "sync-message")
RECORD_SIZE = 100


def fill(bootstrap: str, topic: str, messages: int) -> None:
    """Produce `messages` records of RECORD_SIZE bytes to the existing `topic`."""
    s = run_workload({"name": "commit-modes-fill", "message_size": RECORD_SIZE, "message_count": messages,
                      "duration_s": 0, "consumer_groups": 0}, bootstrap=bootstrap, topics=[topic],
                     progress=False, stats_interval_ms=None).summary
    if s["delivered"] != messages:
        raise RuntimeError(f"filling {topic}: {s['delivered']:,} of {messages:,} delivered: {s['errors']}")


def kb_rate(bootstrap: str, topic: str, messages: int, mode: str) -> dict:
    """One kafkabench consumer's msgs/s reading `messages` records under commit `mode`."""
    s = consume_topic(topic, messages=messages, commit=mode, bootstrap=bootstrap, progress=False,
                      timeout_s=30).summary
    if s["consumed"] < messages:
        raise RuntimeError(f"commit {mode}: consumed {s['consumed']:,} of {messages:,}: {s['warnings']}")
    # As ConsumerPerformance's fetch.nMsg.sec: from owning the partitions to the last record,
    # the group join left out (it is the same for every mode and dominates short reads).
    fetch_s = s["duration_s"] - s["rebalance_time_ms"] / 1000
    return {"rate": s["consumed"] / fetch_s, "commits": s["offset_commits"]}


def java_rate(dist, bootstrap: str, topic: str, messages: int) -> float:
    """ConsumerPerformance's fetch.nMsg.sec reading `messages` records with a new group."""
    out = subprocess.run(dist.java_command(
        "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
        "--messages", str(messages), "--group", f"bench-{uuid.uuid4().hex[:8]}", "--timeout", "30000"),
        capture_output=True, text=True, timeout=300)
    rows = [line.split(", ") for line in out.stdout.splitlines() if line[:1].isdigit()]
    if out.returncode or not rows or int(rows[-1][4]) < messages:
        raise RuntimeError(f"ConsumerPerformance failed (exit {out.returncode}):\n"
                           f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(rows[-1][9])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="bootstrap servers (default: the running embedded "
                                            "cluster, else a 1-broker one started for the run)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; medians are printed")
    parser.add_argument("--messages", type=int, help="backlog records (default: 1000000; --quick: 100000)")
    parser.add_argument("--per-message-messages", type=int, default=5000,
                        help="records read under sync-message (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="fewer messages, 1 repetition")
    args = parser.parse_args()
    messages = args.messages or (100_000 if args.quick else 1_000_000)
    repeats = 1 if args.quick and args.repeats == 3 else args.repeats
    if min(messages, args.per_message_messages, repeats, args.partitions) < 1:
        parser.error("--messages, --per-message-messages, --repeats and --partitions must be >= 1")
    per_message = min(args.per_message_messages, messages)

    dist = install_kafka()
    kb: dict[str, list[dict]] = {m: [] for m in MODES}
    java: list[float] = []
    with ExitStack() as stack:
        try:
            bootstrap = resolve_bootstrap(args.bootstrap)
        except NoClusterError:
            bootstrap = stack.enter_context(LocalCluster(
                brokers=1, base_dir=tempfile.mkdtemp(prefix="kb-bench-"))).bootstrap_servers
        topic = f"bench-commit-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, topic, partitions=args.partitions, replication_factor=1)
        stack.callback(delete_topics, bootstrap, [topic])
        fill(bootstrap, topic, messages)
        print(f"broker {bootstrap}; {messages:,} records of {RECORD_SIZE} B in {args.partitions} "
              f"partition(s), read by one consumer (sync-message: the first {per_message:,}); "
              f"{repeats} repetition(s); the broker and the consumer share this machine's "
              f"{psutil.cpu_count()} cores", flush=True)
        # Not measured: the broker's page cache and JIT, the group coordinator.
        kb_rate(bootstrap, topic, min(messages, 20_000), "auto")
        for rep in range(repeats):
            order = MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]
            for mode in order:
                kb[mode].append(kb_rate(bootstrap, topic, per_message if mode == "sync-message" else messages,
                                        mode))
                print(f"  rep {rep + 1} kafkabench {mode:>12}: {kb[mode][-1]['rate']:>10,.0f} msgs/s "
                      f"{kb[mode][-1]['commits']:>7,} commits", flush=True)
            java.append(java_rate(dist, bootstrap, topic, messages))
            print(f"  rep {rep + 1} Java ConsumerPerformance (auto): {java[-1]:>10,.0f} msgs/s", flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in kb[mode])

    ratios = {m: statistics.median(kb[m][i]["rate"] / kb["auto"][i]["rate"] for i in range(repeats))
              for m in MODES}
    print(f"\nmedians of {repeats} repetition(s); ratio = msgs/s / the same repetition's auto-commit msgs/s")
    print(f"{'commit':>13} | {'msgs/s':>10} {'ratio':>6} {'commits':>8}")
    for mode in MODES:
        print(f"{mode:>13} | {med(mode, 'rate'):>10,.0f} {ratios[mode]:>6.3f} {med(mode, 'commits'):>8,.0f}")
    java_med = statistics.median(java)
    print(f"{'Java (auto)':>13} | {java_med:>10,.0f} {java_med / med('auto', 'rate'):>6.3f}")
    print(json.dumps({"modes": {m: {"rate": round(med(m, "rate"), 1), "ratio": round(ratios[m], 4),
                                    "commits": med(m, "commits")} for m in MODES},
                      "java_auto_rate": round(java_med, 1), "repeats": repeats, "messages": messages,
                      "per_message_messages": per_message, "cores": psutil.cpu_count()}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkabenchError as exc:
        print(f"commit_modes: {exc}", file=sys.stderr)
        sys.exit(1)
