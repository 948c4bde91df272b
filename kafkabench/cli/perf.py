"""`kafkabench produce` and `kafkabench consume`: look-alikes of kafka-producer-perf-test and
kafka-consumer-perf-test, with their flags and their output lines (`producer_performance_line`,
`consumer_performance_lines`), run by `run_workload` and `consume_topic`.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from kafkabench.cli.options import DIR, add_command, client_profile, complete_path, connect, duration_ms

_MIB = 1024 * 1024  # Kafka's perf tools count MB as 2**20 bytes

#: The header line of kafka-consumer-perf-test.
CONSUMER_PERFORMANCE_HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                               "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `produce` and `consume` commands.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    _register_produce(sub, client)
    _register_consume(sub, client)


def _register_produce(sub: Any, client: argparse.ArgumentParser) -> None:
    p = add_command(sub, "produce", "producer benchmark with kafka-producer-perf-test's flags and output", [
        "kafkabench produce --bootstrap-server localhost:9092 --topic t --num-records 1000000 "
        "--record-size 100 --throughput -1 --command-property acks=all linger.ms=5"], parents=[client])
    p.add_argument("--topic", required=True, help="topic (created with --partitions if missing)")
    p.add_argument("--num-records", type=int, required=True, help="records to send")
    p.add_argument("--record-size", type=int, default=100, help="bytes per record (default: %(default)s)")
    p.add_argument("--throughput", type=float, default=-1,
                   help="records/s in all; -1 = unthrottled (default: %(default)s)")
    p.add_argument("--producer-props", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="producer settings (the tool's older name of --command-property)")
    complete_path(p.add_argument("--producer.config", dest="producer_config", metavar="FILE",
                                 help="producer properties file (the older name of --command-config)"))
    p.add_argument("--partitions", type=int, default=1,
                   help="partitions if the topic is created (default: %(default)s)")
    p.add_argument("--keys", type=int, default=0,
                   help="round-robin over this many keys (default: %(default)s, no key)")
    p.add_argument("--payload", default="random",
                   help="random, text or a payload file (default: %(default)s)")
    p.add_argument("--transaction-messages", type=int, default=0, metavar="N",
                   help="send in transactions of N records, committed after each N (the Java "
                        "tool's --transaction-duration-ms commits by time instead) (default: "
                        "%(default)s, no transactions)")
    complete_path(p.add_argument("--out", help="also save the result in this results folder"), DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_produce)


def _register_consume(sub: Any, client: argparse.ArgumentParser) -> None:
    from kafkabench.engine.consumer import COMMIT_MODES

    p = add_command(sub, "consume", "consumer benchmark with kafka-consumer-perf-test's flags and output", [
        "kafkabench consume --bootstrap-server localhost:9092 --topic t --num-records 1000000 "
        "--timeout 30s --no-latency"], parents=[client])
    p.add_argument("--topic", required=True, help="topic to read from its start")
    p.add_argument("--num-records", "--messages", dest="messages", type=int, metavar="N",
                   help="stop after this many records (default: when idle for --timeout)")
    p.add_argument("--group", help="consumer group (default: a new one)")
    p.add_argument("--commit", default="auto", choices=COMMIT_MODES,
                   help="offset commits (default: %(default)s, as kafka-consumer-perf-test)")
    p.add_argument("--timeout", type=duration_ms, metavar="DURATION", default="10000",
                   help="stop after this long without records: milliseconds as in Kafka's tool, "
                        "or 30s, 2m (default: %(default)s ms)")
    p.add_argument("--consumer-props", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="consumer settings (older name of --command-property)")
    complete_path(p.add_argument("--consumer.config", dest="consumer_config", metavar="FILE",
                                 help="consumer properties file (the older name of --command-config)"))
    p.add_argument("--no-latency", action="store_true",
                   help="do not record end-to-end latency (pure throughput, as the Java tool)")
    p.add_argument("--hide-header", action="store_true", help="print the figures without the header line")
    complete_path(p.add_argument("--out", help="also save the result in this results folder"), DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_consume)


def _cmd_produce(args: argparse.Namespace) -> int:
    from kafkabench.cluster.admin import create_topic
    from kafkabench.runner import run_workload
    from kafkabench.spec.workload import Workload

    profile = client_profile(args, "producer", files=[args.producer_config],
                             props=[("--producer-props", args.producer_props)])
    bootstrap, conf = connect(args, profile)
    workload = Workload(name=f"produce-{args.topic}", message_size=args.record_size,
                        producer_rate=max(0.0, args.throughput), consumer_groups=0,
                        message_count=args.num_records, duration_s=0, payload=args.payload,
                        key_distribution="none" if not args.keys else "round-robin",
                        key_count=max(1, args.keys), partitions=args.partitions,
                        transaction_messages=args.transaction_messages)
    # -1: the cluster's default.replication.factor, as the Java tool's auto-created topics get.
    create_topic(bootstrap, args.topic, args.partitions, -1, conf=conf, exist_ok=True)
    result = run_workload(workload, profile, bootstrap=bootstrap, topics=[args.topic], out=args.out,
                          progress=not args.no_progress)
    s = result.summary
    print(producer_performance_line(s, workload.mean_message_size))
    if s["failed"]:
        print(f"{s['failed']} records failed: {s['errors']}")
    return 0 if not s["failed"] else 1


def _cmd_consume(args: argparse.Namespace) -> int:
    from kafkabench.runner import consume_topic

    profile = client_profile(args, "consumer", files=[args.consumer_config],
                             props=[("--consumer-props", args.consumer_props)])
    result = consume_topic(args.topic, messages=args.messages, group=args.group, profile=profile,
                           bootstrap=args.bootstrap, timeout_s=args.timeout,
                           progress=not args.no_progress, out=args.out,
                           record_latency=not args.no_latency, commit=args.commit)
    s = result.summary
    header, row = consumer_performance_lines(s)
    if not args.hide_header:
        print(header)
    print(row)
    if s.get("e2e_latency_ms_p50") == s.get("e2e_latency_ms_p50") and not args.no_latency:
        print(f"end-to-end latency ms: p50 {s['e2e_latency_ms_p50']:.2f}, p99 {s['e2e_latency_ms_p99']:.2f}, "
              f"max {s['e2e_latency_ms_max']:.2f}", file=sys.stderr)
    for warning in s.get("warnings") or []:
        print(f"kafkabench: warning: {warning}", file=sys.stderr)
    if s.get("interrupted"):
        return 130
    if args.messages and s["consumed"] < args.messages:
        print(f"kafkabench: warning: consumed {s['consumed']:,} of --messages {args.messages:,} "
              f"({args.messages - s['consumed']:,} short): topic {args.topic!r} had no more within "
              f"--timeout {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


def producer_performance_line(summary: dict, record_size: float) -> str:
    """The final line of Kafka's ProducerPerformance (kafka-producer-perf-test), same format.

    Args:
        summary: A run's summary (`delivered`, `delivery_rate`, `publish_latency_ms_*`).
        record_size: Mean record size in bytes; MB/sec counts MB as 1024 * 1024 bytes.

    Returns:
        The line.
    """
    s, rate = summary, summary["delivery_rate"]
    percentiles = ", ".join(f"{_java_int(s[f'publish_latency_ms_{p}'])} ms {name}" for p, name in
                            (("p50", "50th"), ("p95", "95th"), ("p99", "99th"), ("p99_9", "99.9th")))
    return (f"{s['delivered']} records sent, {rate:f} records/sec ({rate * record_size / _MIB:.2f} MB/sec), "
            f"{s['publish_latency_ms_avg']:.2f} ms avg latency, {s['publish_latency_ms_max']:.2f} ms max "
            f"latency, {percentiles}.")


def consumer_performance_lines(summary: dict) -> tuple[str, str]:
    """The header and the row of Kafka's ConsumerPerformance (kafka-consumer-perf-test).

    Same columns and formats: times as yyyy-MM-dd HH:mm:ss:SSS local time, MB = 1024 * 1024
    bytes, fetch.time.ms = elapsed - rebalance.time.ms (the time to join the group).

    Args:
        summary: A `consume_topic` summary (`started_at`, `duration_s`, `consumed`,
            `consumed_bytes`, `rebalance_time_ms`).

    Returns:
        (`CONSUMER_PERFORMANCE_HEADER`, the row).
    """
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(summary["started_at"]).astimezone()
    elapsed_ms = round(summary["duration_s"] * 1000)
    end = start + timedelta(milliseconds=elapsed_ms)
    mb, records = summary.get("consumed_bytes", 0) / _MIB, summary["consumed"]
    join_ms = _java_int(summary.get("rebalance_time_ms", math.nan))
    fetch_ms = elapsed_ms - join_ms
    row = (f"{_java_time(start)}, {_java_time(end)}, {mb:.4f}, {_per_s(mb, elapsed_ms):.4f}, {records}, "
           f"{_per_s(records, elapsed_ms):.4f}, {join_ms}, {fetch_ms}, {_per_s(mb, fetch_ms):.4f}, "
           f"{_per_s(records, fetch_ms):.4f}")
    return CONSUMER_PERFORMANCE_HEADER, row


def _java_int(value: float) -> int:
    """A latency as Kafka's tools print it: whole milliseconds (0 when there is none)."""
    return int(value) if value == value else 0


def _java_time(t: Any) -> str:
    """Java's SimpleDateFormat("yyyy-MM-dd HH:mm:ss:SSS")."""
    return f"{t:%Y-%m-%d %H:%M:%S}:{t.microsecond // 1000:03d}"


def _per_s(amount: float, ms: float) -> float:
    """amount per second over `ms` milliseconds, as Java's double division gives it."""
    if ms > 0:
        return amount / (ms / 1000.0)
    return math.nan if amount == 0 else math.inf
