"""The `kafkabench` command: parses arguments and calls one package function per action.

User mistakes (`KafkabenchError`) are caught once, here, and printed without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kafkabench import KAFKA_VERSION, __version__
from kafkabench.errors import KafkabenchError

Handler = Callable[[argparse.Namespace], int | None]


def _cmd_kafka_install(args: argparse.Namespace) -> None:
    from kafkabench.install import install_kafka

    dist = install_kafka(args.version)
    print(f"Apache Kafka {dist.version} from {dist.source}")
    print(f"jars: {dist.libs} ({dist.size_bytes / 1e6:.1f} MB)")
    print(f"java: {dist.java.path} ({dist.java.version})")


def _cluster(args: argparse.Namespace):
    from kafkabench.cluster import LocalCluster

    return LocalCluster.attach(args.name)


def _cmd_cluster_up(args: argparse.Namespace) -> None:
    from kafkabench.cluster import LocalCluster
    from kafkabench.errors import ClusterError, NoClusterError

    try:
        running = LocalCluster.attach(args.name)
    except NoClusterError:
        running = None
    if running is not None and running.running:
        if args.brokers != running.brokers or (args.port and args.port != [n.port for n in running.nodes]):
            raise ClusterError(
                f"cluster {args.name!r} is already running with {running.brokers} broker(s) at "
                f"{running.bootstrap_servers}; to start it with {args.brokers} broker(s)"
                f"{' on ports ' + ','.join(map(str, args.port)) if args.port else ''}, stop it "
                f"first: `kafkabench cluster down --name {args.name}`")
        pids = ", ".join(str(n.pid) for n in running.nodes if n.alive)
        print(f"cluster {args.name!r} is already running (pids {pids}); stop it with "
              "`kafkabench cluster down`. Bootstrap servers:", file=sys.stderr)
        print(running.bootstrap_servers)
        return
    cluster = LocalCluster(brokers=args.brokers, name=args.name, ports=args.port, heap=args.heap)
    print(f"starting {args.brokers}-broker Kafka {KAFKA_VERSION} cluster {args.name!r} ...",
          file=sys.stderr)
    cluster.start()
    print("ready; stop it with `kafkabench cluster down`. Bootstrap servers:", file=sys.stderr)
    print(cluster.bootstrap_servers)


def _cmd_cluster_status(args: argparse.Namespace) -> int:
    from kafkabench.errors import NoClusterError

    try:
        cluster = _cluster(args)
    except NoClusterError:
        print(f"no embedded cluster {args.name!r} is running")
        return 3
    nodes = cluster.status()
    if args.json:
        print(json.dumps({"bootstrap_servers": cluster.bootstrap_servers,
                          "nodes": [dataclasses.asdict(n) for n in nodes]}))
        return 0 if any(n.alive for n in nodes) else 3
    print(f"cluster {args.name!r}: {cluster.bootstrap_servers}")
    print(f"{'id':>3} {'pid':>8} {'port':>6} {'ctrl':>6}  state    role")
    for n in nodes:
        state = "paused" if n.paused else ("alive" if n.alive else "down")
        print(f"{n.id:>3} {n.pid or '-':>8} {n.port:>6} {n.controller_port:>6}  {state:<8} {n.role}")
    if not any(n.alive for n in nodes):
        print("no node is running; `kafkabench cluster down` clears the state")
        return 3
    return 0


def _cmd_cluster_down(args: argparse.Namespace) -> None:
    from kafkabench.errors import NoClusterError

    try:
        cluster = _cluster(args)
    except NoClusterError:
        print(f"no embedded cluster {args.name!r} is running: nothing to stop")
        return
    cluster.down(purge=args.purge)
    print(f"cluster {args.name!r} stopped" + (" and its data removed" if args.purge else ""))


def _node_action(action: str) -> Handler:
    def handler(args: argparse.Namespace) -> None:
        cluster = _cluster(args)
        getattr(cluster, action)(args.node)
        print(f"node {args.node}: {action} done")
    return handler


def _reachable_bootstrap(explicit: str | None) -> str:
    """The bootstrap servers of --bootstrap (or the default cluster), checked to answer."""
    from kafkabench.cluster import check_reachable, resolve_bootstrap

    bootstrap = resolve_bootstrap(explicit)
    check_reachable(bootstrap)
    return bootstrap


def _cmd_topic_create(args: argparse.Namespace) -> None:
    from kafkabench.admin import create_topic

    config = _overrides(args.config)
    create_topic(_reachable_bootstrap(args.bootstrap), args.topic, args.partitions,
                 args.replication_factor, config, exist_ok=args.if_not_exists)
    print(f"topic {args.topic!r} created")


def _cmd_topic_describe(args: argparse.Namespace) -> None:
    from kafkabench.admin import describe_topic

    print(describe_topic(_reachable_bootstrap(args.bootstrap), args.topic).to_string(index=False))


def _cmd_topic_delete(args: argparse.Namespace) -> None:
    from kafkabench.admin import delete_topics

    delete_topics(_reachable_bootstrap(args.bootstrap), args.topic)
    print(f"deleted {', '.join(args.topic)}")


def _cmd_topic_list(args: argparse.Namespace) -> None:
    from kafkabench.admin import list_topics

    print("\n".join(list_topics(_reachable_bootstrap(args.bootstrap))))


def _overrides(pairs: list[str]) -> dict[str, str]:
    return dict(_parse_kv(kv) for kv in pairs)


def _print_summary(summary: dict) -> None:
    """The headline figures of a run, in the units users know from the perf tools."""
    def f(key: str, fmt: str = ",.0f") -> str:
        value = summary.get(key)
        return "-" if value is None or value != value else format(value, fmt)

    print(f"run {summary['run_id']} ({summary['duration_s']:.1f} s)")
    print(f"  produced {summary['produced']:,}  delivered {summary['delivered']:,}  "
          f"failed {summary['failed']:,}  consumed {summary['consumed']:,}")
    print(f"  publish   {f('publish_rate')} msg/s  {f('publish_mb_s', '.2f')} MB/s   "
          f"latency ms p50 {f('publish_latency_ms_p50', '.2f')}  p99 {f('publish_latency_ms_p99', '.2f')}  "
          f"p99.9 {f('publish_latency_ms_p99_9', '.2f')}  max {f('publish_latency_ms_max', '.2f')}")
    if summary.get("target_rate"):
        print(f"  schedule  target {f('target_rate')} msg/s, held: {summary.get('rate_held')}   "
              f"publish delay us p50 {f('publish_delay_us_p50')}  p99 {f('publish_delay_us_p99')}  "
              f"max {f('publish_delay_us_max')}")
        if summary.get("held_reason"):
            print(f"            {summary['held_reason']}")
    if summary.get("loadgen_cpu_s") is not None:
        print(f"  loadgen   CPU {f('loadgen_cpu_s', '.1f')} s ({f('loadgen_cores', '.2f')} cores), "
              f"{f('cpu_us_per_msg', '.2f')} us per message "
              f"(producers {f('producer_cpu_us_per_msg', '.2f')} us)")
    if summary.get("consumed"):
        print(f"  consume   {f('consume_rate')} msg/s  {f('consume_mb_s', '.2f')} MB/s   "
              f"end-to-end ms p50 {f('e2e_latency_ms_p50', '.2f')}  p99 {f('e2e_latency_ms_p99', '.2f')}  "
              f"p99.9 {f('e2e_latency_ms_p99_9', '.2f')}  max {f('e2e_latency_ms_max', '.2f')}")
        print(f"  lag       max {f('lag_max_msgs')} msgs / {f('lag_max_s', '.2f')} s, "
              f"status {summary.get('lag_status', '-')}, rebalances {summary.get('rebalances', 0)}")
    if summary.get("errors"):
        print(f"  errors    {summary['errors']}")
        for code, texts in (summary.get("error_messages") or {}).items():
            for text in texts:
                print(f"            {code}: {text.splitlines()[0][:300]}")
    if summary.get("lag_errors"):
        print(f"  lag sampler errors: {summary['lag_errors']}, e.g. "
              f"{'; '.join(summary.get('lag_error_messages') or [])[:300]}")
    for w in summary.get("warnings") or []:
        print(f"  warning:  {w}")
    if summary.get("complete") is False:
        print(f"  INCOMPLETE: {'; '.join(summary.get('incomplete') or [])}")


def _cmd_run(args: argparse.Namespace) -> int:
    from kafkabench.runner import run_workload
    from kafkabench.workload import load_workload

    workload = load_workload(args.workload)
    values = _yaml_values(args.set)
    if values:
        workload = type(workload).from_dict({**workload.to_dict(), **values})
    # --set replication_factor=N is an explicit choice that wins over the profile's; without
    # it, the workload's and the profile's must agree (workload.effective_replication_factor).
    explicit = ({"replication_factor": values["replication_factor"]}
                if values.get("replication_factor") is not None else {})
    result = run_workload(workload, args.profile, bootstrap=args.bootstrap, out=args.out,
                          progress=not args.no_progress, commit=args.commit,
                          partitioner=args.partitioner, **explicit)
    _print_summary(result.summary)
    if args.out:
        print(f"saved to {Path(args.out) / result.run_id}")
    return _exit_code(result.summary)


def _exit_code(summary: dict) -> int:
    """130 for Ctrl-C; 1 for a run that did not do what was asked: incomplete (a group short
    of what was delivered, a worker failed) or nothing delivered; else 0."""
    if summary.get("interrupted"):
        return 130
    if summary.get("complete") is False or (summary.get("produced") and not summary.get("delivered")):
        return 1
    return 0


def _yaml_values(pairs: list[str]) -> dict:
    import yaml

    from kafkabench.errors import ConfigError

    values = {}
    for key, text in _overrides(pairs).items():
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or exc
            raise ConfigError(f"{key}={text!r}: the value is not valid YAML ({reason}); "
                              "put text in quotes") from None
    return values


def _profile_with(profile: str | None, role: str, props: list[str], config_file: str | None):
    """A profile from --profile plus perf-tool style --producer-props / --consumer.config."""
    from kafkabench.config import ClientProfile, load_profile

    base = load_profile(profile)
    settings = dict(getattr(base, role))
    if config_file:
        settings.update(_read_properties(config_file))
    settings.update(_yaml_values(props))
    data = base.to_dict()
    data[role] = settings
    return ClientProfile.from_dict(data, name=base.name)


def _read_properties(path: str) -> dict[str, str]:
    from kafkabench.errors import ConfigError

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc}") from exc
    return dict(_parse_kv(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _cmd_produce(args: argparse.Namespace) -> int:
    from kafkabench.admin import create_topic
    from kafkabench.cluster import check_reachable, resolve_bootstrap
    from kafkabench.runner import run_workload
    from kafkabench.workload import Workload

    profile = _profile_with(args.profile, "producer", args.producer_props, args.producer_config)
    bootstrap = resolve_bootstrap(args.bootstrap)
    check_reachable(bootstrap, profile.common)
    workload = Workload(name=f"produce-{args.topic}", message_size=args.record_size,
                        producer_rate=max(0.0, args.throughput), consumer_groups=0,
                        message_count=args.num_records, duration_s=0, payload=args.payload,
                        key_distribution="none" if not args.keys else "round-robin",
                        key_count=max(1, args.keys), partitions=args.partitions)
    create_topic(bootstrap, args.topic, args.partitions, -1, conf=dict(profile.common), exist_ok=True)
    result = run_workload(workload, profile, bootstrap=bootstrap, topics=[args.topic], out=args.out,
                          progress=not args.no_progress)
    s = result.summary
    # The line kafka-producer-perf-test prints, for side-by-side comparison.
    print(f"{s['delivered']} records sent, {s['delivery_rate']:.1f} records/sec "
          f"({s['publish_mb_s']:.2f} MB/sec), {s['publish_latency_ms_avg']:.2f} ms avg latency, "
          f"{s['publish_latency_ms_max']:.2f} ms max latency, {s['publish_latency_ms_p50']:.0f} ms 50th, "
          f"{s['publish_latency_ms_p95']:.0f} ms 95th, {s['publish_latency_ms_p99']:.0f} ms 99th, "
          f"{s['publish_latency_ms_p99_9']:.0f} ms 99.9th.")
    if s["failed"]:
        print(f"{s['failed']} records failed: {s['errors']}")
    return 0 if not s["failed"] else 1


def _cmd_consume(args: argparse.Namespace) -> int:
    from kafkabench.runner import consume_topic

    profile = _profile_with(args.profile, "consumer", args.consumer_props, args.consumer_config)
    result = consume_topic(args.topic, messages=args.messages, group=args.group, profile=profile,
                           bootstrap=args.bootstrap, timeout_s=args.timeout / 1000.0,
                           progress=not args.no_progress, out=args.out,
                           record_latency=not args.no_latency)
    s = result.summary
    print("start.time, elapsed.sec, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
          "rebalance.time.ms, e2e.p50.ms, e2e.p99.ms")
    print(f"{s['started_at']}, {s['duration_s']:.3f}, {s['consumed_bytes'] / 1e6:.4f}, "
          f"{s['consume_mb_s']:.4f}, {s['consumed']}, {s['consume_rate']:.1f}, "
          f"{s['rebalance_time_ms']}, {s['e2e_latency_ms_p50']:.2f}, {s['e2e_latency_ms_p99']:.2f}")
    for warning in s.get("warnings") or []:
        print(f"kafkabench: warning: {warning}", file=sys.stderr)
    if s.get("interrupted"):
        return 130
    if args.messages and s["consumed"] < args.messages:
        print(f"kafkabench: warning: consumed {s['consumed']:,} of --messages {args.messages:,} "
              f"({args.messages - s['consumed']:,} short): topic {args.topic!r} had no more within "
              f"--timeout {args.timeout} ms", file=sys.stderr)
        return 1
    return 0


def _cmd_lag(args: argparse.Namespace) -> int:
    from kafkabench.cluster import resolve_bootstrap
    from kafkabench.errors import ClusterError, ConfigError
    from kafkabench.lag import LagSampler

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples {args.samples!r}: give 1 or more (or leave it out)")
    from kafkabench.cluster import check_reachable

    bootstrap = resolve_bootstrap(args.bootstrap)
    check_reachable(bootstrap)
    sampler = LagSampler(bootstrap, args.group, interval_s=args.interval,
                         window=args.window, request_timeout_s=args.timeout)
    deadline = time.monotonic() + args.duration if args.duration else None
    samples = sampled = 0  # samples taken, samples without an ERR row
    try:
        while True:
            frame = sampler.sample_once()
            samples += 1
            sampled += not (frame["status"] == "ERR").any()
            # The reason next to ERR; DELETED says the topic is gone.
            frame = frame.assign(status=[f"{s} ({e})" if e else s
                                         for s, e in zip(frame["status"], frame["error"])])
            cols = ["group", "topic", "partition", "committed", "log_end", "lag_msgs", "lag_s",
                    "oldest_age_s", "status"]
            print(frame[cols].to_string(index=False, float_format="{:.2f}".format) if len(frame) else
                  "(no committed offsets and no members yet)")
            pending = (f"; window {samples}/{args.window} samples (STOP, STALL, WARN need a full one)"
                       if samples < args.window else "")
            print("group status: " + ", ".join(f"{g} {s}" for g, s in sampler.group_status().items())
                  + pending)
            if args.once or samples == args.samples or (deadline and time.monotonic() >= deadline):
                break
            time.sleep(args.interval)
            print()
    except KeyboardInterrupt:
        pass
    finally:
        sampler.close()
    if samples and not sampled:
        errors = sampler.errors()
        last = errors["error"].iloc[-1] if len(errors) else "no reason recorded"
        raise ClusterError(f"could not sample the lag of {', '.join(args.group)} at {sampler.bootstrap} "
                           f"({samples} sample(s), {sampler.error_count} error(s), last: {last}); "
                           "check that --bootstrap names a reachable cluster")
    return 0


def _cmd_results_list(args: argparse.Namespace) -> None:
    import pandas as pd

    from kafkabench.results import list_results

    df = list_results(args.dir)
    if df.empty:
        print(f"no results in {args.dir}")
        return
    # Headline figures only, each in its own format: the full frame is far wider than a terminal.
    columns = {"run_id": ("run_id", None), "name": ("name", None), "duration_s": ("secs", ",.1f"),
               "publish_rate": ("msg/s", ",.0f"), "publish_mb_s": ("MB/s", ",.2f"),
               "publish_latency_ms_p99": ("p99 ms", ",.2f"), "e2e_latency_ms_p99": ("e2e p99 ms", ",.2f"),
               "consume_rate": ("consumed/s", ",.0f"), "lag_max_msgs": ("max lag", ",.0f")}
    table = pd.DataFrame(index=df.index)
    for column, (title, fmt) in columns.items():
        if fmt is None:  # text; run ids are shown whole, to be copied
            text = df[column].map(lambda v: "-" if pd.isna(v) else str(v))
            table[title] = text if column == "run_id" else text.map(
                lambda v: v if len(v) <= 24 else v[:23] + "~")
        else:
            numbers = pd.to_numeric(df[column], errors="coerce")
            table[title] = numbers.map(lambda v, f=fmt: "-" if pd.isna(v) else format(v, f))
    print(table.to_string(index=False))
    dir_opt = "" if args.dir == "results" else f" --dir {args.dir}"
    print(f"{len(df)} run(s) in {args.dir}; details: kafkabench results show RUN_ID{dir_opt}")


def _cmd_results_show(args: argparse.Namespace) -> None:
    from kafkabench.results import find_run, load

    _print_summary(load(find_run(args.run, args.dir)).summary)


def _cmd_results_compare(args: argparse.Namespace) -> None:
    from kafkabench.errors import KafkabenchError
    from kafkabench.results import compare, find_run

    table = compare([find_run(run, args.dir) for run in args.runs])
    if table.columns.empty:
        raise KafkabenchError(f"no readable run among {' '.join(args.runs)}: nothing to compare")
    print(table.to_string())


def _cmd_report(args: argparse.Namespace) -> None:
    from kafkabench.errors import KafkabenchError
    from kafkabench.report import write_report
    from kafkabench.results import load_many

    # Loaded here so that a damaged run is skipped with a warning instead of stopping the report.
    runs = [run for item in args.results for run in load_many(item)]
    if not runs:
        raise KafkabenchError(f"no readable kafkabench run in {' '.join(args.results)}: "
                              "nothing to report")
    path = write_report(runs, args.output, title=args.title)
    print(f"report written to {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from kafkabench.sweep import SweepSpec, run_sweep, summarize

    spec = SweepSpec.from_yaml(args.spec)
    table = run_sweep(spec, bootstrap=args.bootstrap, out=args.out, progress=not args.no_progress)
    summary = summarize(table, spec)
    if len(summary):
        print(summary.to_string(index=False))
    if table.attrs.get("interrupted"):
        # run_sweep has said how many points and runs are saved, and where.
        if args.report:
            print(f"kafkabench: no report written to {args.report}: the sweep was interrupted",
                  file=sys.stderr)
        return 130
    if args.report:
        from kafkabench.report import write_report
        from kafkabench.results import load_many

        runs = load_many(list(table["path"]))  # a damaged run is skipped with a warning
        print(f"report written to {write_report(runs, args.report, sweep=summary)}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from kafkabench.quickstart import run_quickstart

    table, report = run_quickstart(out=args.out, report=args.report, bootstrap=args.bootstrap,
                                   progress=not args.no_progress)
    cols = [c for c in ("producer.compression.type", "producer.acks", "publish_rate", "publish_mb_s",
                        "publish_latency_ms_p99", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
                        "lag_max_msgs", "consume_rate", "rate_held", "complete") if c in table.columns]
    if len(table):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if report is None:  # interrupted: run_sweep has said what is saved where
        return 130
    print(f"\nresults in {Path(args.out).resolve()}, report: {report.resolve()}")
    return 0


def _cmd_locust(args: argparse.Namespace) -> int:
    from kafkabench.locust_results import run_locust
    from kafkabench.results import save

    run = run_locust(args.locustfile, users=args.users, spawn_rate=args.spawn_rate,
                     run_time_s=args.run_time, bootstrap=args.bootstrap, topic=args.topic,
                     group=args.group, profile=args.profile, conf=_overrides(args.conf),
                     rate=args.rate, shape=args.shape, workers=args.workers,
                     out_dir=Path(args.out) / "locust" if args.out else None)
    _print_summary(run.result.summary)
    print(f"Locust CSV files: {run.csv_prefix}_*.csv (exit code {run.exit_code})")
    if args.out:
        print(f"saved to {save(run.result, args.out)}")
    return run.exit_code


def _parse_kv(text: str) -> tuple[str, str]:
    """'key=value' -> (key, value), with a clear error naming the bad argument."""
    from kafkabench.errors import ConfigError

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every kafkabench command."""
    parser = argparse.ArgumentParser(prog="kafkabench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kafkabench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (also librdkafka's log): -v INFO, -vv DEBUG; "
                             "may also follow the command")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the Apache Kafka distribution").add_subparsers(
        dest="action", required=True)
    p = kafka.add_parser("install", help=f"fetch Apache Kafka (default {KAFKA_VERSION}) into the cache")
    p.add_argument("--version", default=KAFKA_VERSION)
    p.set_defaults(func=_cmd_kafka_install)

    cluster = sub.add_parser("cluster", help="the embedded KRaft cluster").add_subparsers(
        dest="action", required=True)
    name_opt = argparse.ArgumentParser(add_help=False)
    name_opt.add_argument("--name", default="default", help="cluster name (default: default)")
    p = cluster.add_parser("up", parents=[name_opt], help="start a cluster in the background")
    p.add_argument("--brokers", type=int, choices=(1, 3), default=1)
    p.add_argument("--port", type=int, action="append", help="fixed client port (repeat per broker)")
    p.add_argument("--heap", help="JVM heap per broker, e.g. 1g")
    p.set_defaults(func=_cmd_cluster_up)
    p = cluster.add_parser("status", parents=[name_opt], help="show each node")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_cluster_status)
    p = cluster.add_parser("down", parents=[name_opt], help="stop the cluster")
    p.add_argument("--purge", action="store_true", help="also delete its data and logs")
    p.set_defaults(func=_cmd_cluster_down)
    for action, text in (("stop", "clean shutdown of one node (SIGTERM)"),
                         ("kill", "hard kill of one node (SIGKILL)"),
                         ("start", "restart a stopped node"),
                         ("pause", "freeze a node (SIGSTOP)"), ("resume", "unfreeze (SIGCONT)")):
        p = cluster.add_parser(action, parents=[name_opt], help=text)
        p.add_argument("node", type=int, help="node id (1-based)")
        p.set_defaults(func=_node_action(action))

    bootstrap_opt = argparse.ArgumentParser(add_help=False)
    bootstrap_opt.add_argument("--bootstrap", help="bootstrap servers (default: KAFKABENCH_BOOTSTRAP "
                                                   "or the running embedded cluster)")
    topic = sub.add_parser("topic", help="create, describe, list, delete topics").add_subparsers(
        dest="action", required=True)
    p = topic.add_parser("create", parents=[bootstrap_opt])
    p.add_argument("topic")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--replication-factor", type=int, default=1)
    p.add_argument("--config", action="append", default=[], help="topic config key=value")
    p.add_argument("--if-not-exists", action="store_true")
    p.set_defaults(func=_cmd_topic_create)
    p = topic.add_parser("describe", parents=[bootstrap_opt])
    p.add_argument("topic")
    p.set_defaults(func=_cmd_topic_describe)
    p = topic.add_parser("list", parents=[bootstrap_opt])
    p.set_defaults(func=_cmd_topic_list)
    p = topic.add_parser("delete", parents=[bootstrap_opt])
    p.add_argument("topic", nargs="+")
    p.set_defaults(func=_cmd_topic_delete)
    p = sub.add_parser("run", parents=[bootstrap_opt], help="run a workload and measure it")
    p.add_argument("workload", help="workload YAML (kafkabench or OpenMessaging Benchmark format)")
    p.add_argument("--profile", help="client profile: a preset name or a YAML file "
                                     "(kafkabench or OMB driver-kafka format)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a workload field, e.g. --set producer_rate=10000")
    p.add_argument("--commit", default="auto", choices=("auto", "sync", "async"))
    p.add_argument("--partitioner", help="partition strategy (kafkabench.partitioning)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("produce", parents=[bootstrap_opt],
                       help="producer benchmark with kafka-producer-perf-test's flags")
    p.add_argument("--topic", required=True)
    p.add_argument("--num-records", type=int, required=True)
    p.add_argument("--record-size", type=int, default=100)
    p.add_argument("--throughput", type=float, default=-1, help="msgs/s; -1 = unthrottled")
    p.add_argument("--producer-props", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--producer.config", dest="producer_config", help="properties file")
    p.add_argument("--profile", help="client profile to start from (preset or YAML)")
    p.add_argument("--partitions", type=int, default=1, help="partitions if the topic is created")
    p.add_argument("--keys", type=int, default=0, help="round-robin over this many keys (0: no key)")
    p.add_argument("--payload", default="random", help="random, text or a payload file")
    p.add_argument("--out", default=None, help="also save the result here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser("consume", parents=[bootstrap_opt],
                       help="consumer benchmark with kafka-consumer-perf-test's flags")
    p.add_argument("--topic", required=True)
    p.add_argument("--messages", type=int, help="stop after this many (default: until idle)")
    p.add_argument("--group", help="consumer group (default: a new one)")
    p.add_argument("--timeout", type=int, default=10000, help="ms without messages before stopping")
    p.add_argument("--consumer-props", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--consumer.config", dest="consumer_config", help="properties file")
    p.add_argument("--no-latency", action="store_true",
                   help="do not record end-to-end latency (pure throughput, as the Java tool)")
    p.add_argument("--profile", help="client profile to start from (preset or YAML)")
    p.add_argument("--out", default=None, help="also save the result here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_consume)

    p = sub.add_parser("lag", parents=[bootstrap_opt],
                       help="consumer lag (messages, seconds, Burrow status) of any group")
    p.add_argument("--group", action="append", required=True, help="consumer group (repeatable)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--once", action="store_true", help="one sample, then exit")
    p.add_argument("--samples", type=int, help="stop after this many samples")
    p.add_argument("--window", type=int, default=10,
                   help="samples in the Burrow status window (statuses are OK until it is full)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds allowed for each request")
    p.set_defaults(func=_cmd_lag)

    p = sub.add_parser("report", help="one self-contained HTML report of saved runs")
    p.add_argument("results", nargs="+", help="run folders or folders containing runs")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--title", default="kafkabench report")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("sweep", parents=[bootstrap_opt],
                       help="run a grid of workload fields and librdkafka settings (resumable)")
    p.add_argument("spec", help="sweep YAML: name, workload, profile, grid, repetitions")
    p.add_argument("--out", default="results")
    p.add_argument("--report", help="also write an HTML report here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("quickstart", parents=[bootstrap_opt],
                       help="compression x acks sweep with a consumer group, and a report")
    p.add_argument("--out", default="results")
    p.add_argument("--report", default="report.html")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_quickstart)

    p = sub.add_parser("locust", parents=[bootstrap_opt],
                       help="run a locustfile headless, save its result like any other run")
    p.add_argument("locustfile", help="a path, or producer_load / consumer_load / mixed")
    p.add_argument("-u", "--users", type=int, default=5)
    p.add_argument("-r", "--spawn-rate", type=float, default=5.0)
    p.add_argument("-t", "--run-time", type=float, default=60.0, help="seconds")
    p.add_argument("--workers", type=int, default=0,
                   help="0: one process; N: a master and N workers on this machine")
    p.add_argument("--topic", help="topic (default: a new one named after the run)")
    p.add_argument("--group", help="consumer group whose lag is sampled")
    p.add_argument("--profile", help="client profile: preset name or YAML path")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka setting (repeatable; prefix producer. or consumer.)")
    p.add_argument("--rate", type=float, help="messages/s per producer user (0: full speed)")
    p.add_argument("--shape", choices=("constant", "step", "spike"),
                   help="load shape, for locustfiles with a KafkaLoadShape (mixed)")
    p.add_argument("--out", default="results", help="results folder ('' to save nothing)")
    p.set_defaults(func=_cmd_locust)

    results = sub.add_parser("results", help="list, show and compare saved runs").add_subparsers(
        dest="action", required=True)
    p = results.add_parser("list")
    p.add_argument("dir", nargs="?", default="results")
    p.set_defaults(func=_cmd_results_list)
    run_dir_opt = argparse.ArgumentParser(add_help=False)
    run_dir_opt.add_argument("--dir", default="results",
                             help="results folder run ids are looked up in (default: results)")
    p = results.add_parser("show", parents=[run_dir_opt])
    p.add_argument("run", help="a run folder, or a run id (or its start) from `results list`")
    p.set_defaults(func=_cmd_results_show)
    p = results.add_parser("compare", parents=[run_dir_opt])
    p.add_argument("runs", nargs="+", help="run folders or run ids (the first is the baseline)")
    p.set_defaults(func=_cmd_results_compare)
    return parser


_VERBOSE_FLAGS = {"-v": 1, "--verbose": 1, "-vv": 2, "-vvv": 3}


def _setup_logging(verbosity: int) -> None:
    """Log the `kafkabench` tree (librdkafka's lines included) to stderr: WARNING, -v INFO, -vv DEBUG."""
    import logging

    logger = logging.getLogger("kafkabench")
    for handler in [h for h in logger.handlers if getattr(h, "_kafkabench_cli", False)]:
        logger.removeHandler(handler)  # main() may run more than once in a process (tests)
    handler = logging.StreamHandler(sys.stderr)
    handler._kafkabench_cli = True
    handler.setFormatter(logging.Formatter(
        "%(levelname)s %(name)s: %(message)s" if verbosity else "kafkabench: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one kafkabench command; returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # -v after the command: the subcommands do not declare it, so it arrives here.
    unknown = [a for a in extra if a not in _VERBOSE_FLAGS]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _setup_logging(args.verbose + sum(_VERBOSE_FLAGS[a] for a in extra))
    try:
        return args.func(args) or 0
    except KafkabenchError as exc:
        print(f"kafkabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kafkabench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
