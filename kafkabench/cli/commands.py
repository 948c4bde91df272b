"""The `kafkabench` command: parses arguments and calls one package function per action.

User mistakes (`KafkabenchError`) are caught once, here, and printed without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kafkabench import KAFKA_VERSION, __version__
from kafkabench.core.errors import KafkabenchError

Handler = Callable[[argparse.Namespace], int | None]

DESCRIPTION = """\
Load-test Apache Kafka: start a local KRaft cluster, run workloads (kafkabench or
OpenMessaging Benchmark YAML) and measure throughput, latency and consumer lag, benchmark
like Kafka's own perf tools, sweep client settings, and compare saved results.

main commands:
  cluster up | status | down   an embedded Kafka cluster on this machine
  run WORKLOAD                 run a workload, print and save its result
  produce, consume             kafka-producer-perf-test / kafka-consumer-perf-test look-alikes
  lag                          lag of consumer groups: messages, seconds, Burrow-style status
  sweep, quickstart            grids of client settings, with an HTML report
  results, report              list, show and compare saved runs; HTML report
  topic                        create, describe, list, delete topics
  locust                       run a Locust file headless, saved like any run
  observe up | status | down   a Prometheus scraping the brokers and kafkabench, alert rules

examples:
  kafkabench cluster up
  kafkabench run workloads/quickstart.yaml --set producer_rate=5000 --set duration_s=1m
  kafkabench produce --bootstrap-server localhost:9092 --topic t --num-records 100000 \\
      --record-size 100 --throughput -1 --command-property acks=all
  kafkabench lag --bootstrap-server localhost:9092 --all-groups --once --format json

Commands that talk to a cluster take --bootstrap-server (default: $KAFKABENCH_BOOTSTRAP, else
the running embedded cluster), --profile and --command-config for TLS/SASL clusters.
`kafkabench COMMAND --help` shows a command's options and an example.
"""

_MIB = 1024 * 1024  # Kafka's perf tools count MB as 2**20 bytes
# shtab's completion actions (shtab.FILE, shtab.DIRECTORY), without importing shtab.
_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
_DIR = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}


def _cmd_kafka_install(args: argparse.Namespace) -> None:
    from kafkabench.cluster.install import install_kafka

    dist = install_kafka(args.version, retry_agent=True)
    print(f"Apache Kafka {dist.version} from {dist.source}")
    print(f"jars: {dist.libs} ({dist.size_bytes / 1e6:.1f} MB)")
    print(f"java: {dist.java.path} ({dist.java.version})")
    print(f"broker metrics agent: {dist.jmx_agent}" if dist.jmx_agent else
          "broker metrics agent: not fetched (brokers run without a Prometheus endpoint)")


def _cluster(args: argparse.Namespace):
    from kafkabench.cluster.local import LocalCluster

    return LocalCluster.attach(args.name)


def _cmd_cluster_up(args: argparse.Namespace) -> None:
    from kafkabench.cluster.local import LocalCluster
    from kafkabench.core.errors import ClusterError, NoClusterError

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
    from kafkabench.core.errors import NoClusterError

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
    print(f"{'id':>3} {'pid':>8} {'port':>6} {'ctrl':>6}  state    {'role':<18} metrics")
    for n in nodes:
        state = "paused" if n.paused else ("alive" if n.alive else "down")
        print(f"{n.id:>3} {n.pid or '-':>8} {n.port:>6} {n.controller_port:>6}  {state:<8} "
              f"{n.role:<18} {n.metrics_url or '-'}")
    if not any(n.alive for n in nodes):
        print("no node is running; `kafkabench cluster down` clears the state")
        return 3
    return 0


def _cmd_cluster_down(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import NoClusterError

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


def _duration(text: str) -> float:
    """argparse type: a duration (`90`, `90s`, `5m`, `1h30m`) in seconds."""
    from kafkabench.core.units import parse_duration

    try:
        return parse_duration(text)
    except KafkabenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration_ms(text: str) -> float:
    """argparse type: a duration in seconds, a bare number being milliseconds (Kafka's tools)."""
    from kafkabench.core.units import parse_duration

    try:
        return parse_duration(text, unit="ms")
    except KafkabenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """`key=value` arguments of `option` as a dict (later ones win)."""
    from kafkabench.spec.profile import parse_kv

    return dict(parse_kv(kv, option) for kv in pairs)


def read_properties(path: str | Path) -> dict[str, str]:
    """A Java-style client properties file (`--command-config`, `--producer.config`).

    Args:
        path: The file: `key=value` lines; blank lines and lines starting with `#` or `!`
            are skipped.

    Returns:
        The settings, values as text.

    Raises:
        ConfigError: The file cannot be read, or a line is not `key=value` (file and line named).
    """
    from kafkabench.core.errors import ConfigError
    from kafkabench.spec.profile import parse_kv

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from exc
    return dict(parse_kv(line, f"{path}, line {number}:") for number, line in enumerate(lines, 1)
                if line.strip() and not line.lstrip().startswith(("#", "!")))


def _typed(value: str) -> str | int | float:
    """'5' -> 5 and '0.5' -> 0.5 (as YAML profiles give them); other text unchanged."""
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d*", value):
        return float(value)
    return value


def _client_profile(args: argparse.Namespace, role: str | None = None, *, base: Any = None,
                    files: Sequence[str | None] = (), props: Sequence[tuple[str, list[str]]] = ()):
    """--profile (else `base`) with the command's client settings laid over it: properties files
    first (`files`, then --command-config), then `key=value` options (`props`, then
    --command-property), each sent to its clients by `config.route_settings`."""
    from kafkabench.spec.profile import load_profile, route_settings

    settings: dict[str, str] = {}
    for path in (*files, args.command_config):
        if path:
            settings.update(read_properties(path))
    for option, pairs in (*props, ("--command-property", args.command_property)):
        settings.update(_pairs(pairs, option))
    profile = load_profile(args.profile if args.profile else base)
    return profile.with_settings(**route_settings({k: _typed(v) for k, v in settings.items()}, role))


def _connect(args: argparse.Namespace, profile: Any = None) -> tuple[str, dict[str, Any]]:
    """The bootstrap servers of --bootstrap-server (or the default cluster), checked to answer
    with the profile's common (security) settings; returns them and those settings."""
    from kafkabench.cluster.local import check_reachable, resolve_bootstrap

    profile = profile if profile is not None else _client_profile(args)
    bootstrap = resolve_bootstrap(args.bootstrap)
    check_reachable(bootstrap, profile.common)
    return bootstrap, dict(profile.common)


def _json_safe(value: Any) -> Any:
    """`value` with plain JSON types only: NaN and infinities -> None, numpy scalars -> numbers,
    timestamps -> ISO text, anything else unknown -> text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    import pandas as pd

    if hasattr(value, "dtype") and hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if pd.api.types.is_scalar(value) and pd.isna(value):  # pd.NA, pd.NaT
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _print_json(value: Any) -> None:
    print(json.dumps(_json_safe(value), allow_nan=False), flush=True)


def _cmd_topic_create(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import create_topic

    bootstrap, conf = _connect(args)
    # -1: the cluster's default.replication.factor, as kafka-topics.sh does.
    rf = args.replication_factor if args.replication_factor is not None else -1
    create_topic(bootstrap, args.topic, args.partitions, rf, _pairs(args.config, "--config"),
                 conf=conf, exist_ok=args.if_not_exists)
    print(f"topic {args.topic!r} created")


def _cmd_topic_describe(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import describe_topic

    bootstrap, conf = _connect(args)
    print(describe_topic(bootstrap, args.topic, conf=conf).to_string(index=False))


def _cmd_topic_delete(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import delete_topics

    bootstrap, conf = _connect(args)
    delete_topics(bootstrap, args.topic, conf=conf)
    print(f"deleted {', '.join(args.topic)}")


def _cmd_topic_list(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import list_topics

    bootstrap, conf = _connect(args)
    print("\n".join(list_topics(bootstrap, conf=conf)))


def _print_summary(summary: dict, file: Any = None) -> None:
    """The headline figures of a run, in the units users know from the perf tools."""
    print("\n".join(_summary_lines(summary)), file=file or sys.stdout)


def _summary_lines(s: dict) -> list[str]:
    """The lines of `_print_summary`: counts and publish figures, then the optional sections."""
    f = _figure_formatter(s)
    lines = [f"run {s['run_id']} ({s['duration_s']:.1f} s)",
             f"  produced {s['produced']:,}  delivered {s['delivered']:,}  "
             f"failed {s['failed']:,}  consumed {s['consumed']:,}",
             f"  publish   {f('publish_rate')} msg/s  {f('publish_mb_s', '.2f')} MB/s   "
             f"latency ms p50 {f('publish_latency_ms_p50', '.2f')}  p99 {f('publish_latency_ms_p99', '.2f')}  "
             f"p99.9 {f('publish_latency_ms_p99_9', '.2f')}  max {f('publish_latency_ms_max', '.2f')}"]
    for section in (_schedule_lines, _transaction_lines, _loadgen_lines, _consume_lines, _trust_lines,
                    _problem_lines):
        lines += section(s, f)
    return lines


def _trust_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """Delivery verification and fault figures, when the run had them."""
    lines = []
    if "verify_acked" in s:
        lines.append(f"  verify    acked {f('verify_acked')}  lost {f('verify_lost')}  "
                     f"duplicated {f('verify_duplicated')}  reordered {f('verify_reordered')}  "
                     f"failed-but-present {f('verify_failed_but_present')}  read {f('verify_read')}")
        if s.get("verify_complete") is False:
            lines.append(f"            INCOMPLETE read-back: {s.get('verify_error')}")
    if "faults" in s:
        lines.append(f"  faults    {f('faults')} actions ({f('faults_failed')} failed)  "
                     f"leader changes {f('leader_changes')}  under-replicated max "
                     f"{f('under_replicated_max')}  offline max {f('offline_max')}")
        lines.append(f"  recovery  outage {f('outage_s', '.2f')} s  first ack {f('first_ack_s', '.2f')} s  "
                     f"back to 90% {f('recovery_s', '.2f')} s")
    return lines


def _transaction_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """What transactional producers committed and aborted, when the run had transactions."""
    if "transactions_committed" not in s:
        return []
    return [f"  transactions committed {f('transactions_committed')}  aborted "
            f"{f('transactions_aborted')} ({f('aborted_messages')} msgs)   commit ms p50 "
            f"{f('transaction_latency_ms_p50', '.2f')}  p99 {f('transaction_latency_ms_p99', '.2f')}"]


def _figure_formatter(summary: dict) -> Callable[..., str]:
    """`f(key, fmt)`: a summary figure formatted, "-" when missing or NaN."""
    def f(key: str, fmt: str = ",.0f") -> str:
        value = summary.get(key)
        return "-" if value is None or value != value else format(value, fmt)
    return f


def _schedule_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """The schedule a rate-controlled run kept; none at max rate (0) or unmeasured (Locust: NaN)."""
    target = s.get("target_rate")
    if not target or target != target:
        return []
    lines = [f"  schedule  target {f('target_rate')} msg/s, held: {s.get('rate_held')}   "
             f"publish delay us p50 {f('publish_delay_us_p50')}  p99 {f('publish_delay_us_p99')}  "
             f"max {f('publish_delay_us_max')}"]
    if s.get("held_reason"):
        lines.append(f"            {s['held_reason']}")
    return lines


def _loadgen_lines(s: dict, f: Callable[..., str]) -> list[str]:
    if s.get("loadgen_cpu_s") is None:
        return []
    return [f"  loadgen   CPU {f('loadgen_cpu_s', '.1f')} s ({f('loadgen_cores', '.2f')} cores), "
            f"{f('cpu_us_per_msg', '.2f')} us per message "
            f"(producers {f('producer_cpu_us_per_msg', '.2f')} us)"]


def _consume_lines(s: dict, f: Callable[..., str]) -> list[str]:
    if not s.get("consumed"):
        return []
    return [f"  consume   {f('consume_rate')} msg/s  {f('consume_mb_s', '.2f')} MB/s   "
            f"end-to-end ms p50 {f('e2e_latency_ms_p50', '.2f')}  p99 {f('e2e_latency_ms_p99', '.2f')}  "
            f"p99.9 {f('e2e_latency_ms_p99_9', '.2f')}  max {f('e2e_latency_ms_max', '.2f')}",
            f"  lag       max {f('lag_max_msgs')} msgs / {f('lag_max_s', '.2f')} s, "
            f"status {s.get('lag_status', '-')}, rebalances {s.get('rebalances', 0)}"]


def _problem_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """Errors, lag sampler errors, warnings and what made the run incomplete."""
    lines = _error_lines(s)
    if s.get("lag_errors"):
        lines.append(f"  lag sampler errors: {s['lag_errors']}, e.g. "
                     f"{'; '.join(s.get('lag_error_messages') or [])[:300]}")
    lines += [f"  warning:  {w}" for w in s.get("warnings") or []]
    if s.get("complete") is False:
        lines.append(f"  INCOMPLETE: {'; '.join(s.get('incomplete') or [])}")
    return lines


def _error_lines(s: dict) -> list[str]:
    """Failures by Kafka error code, with the first messages of each."""
    if not s.get("errors"):
        return []
    return [f"  errors    {s['errors']}"] + [
        f"            {code}: {text.splitlines()[0][:300]}"
        for code, texts in (s.get("error_messages") or {}).items() for text in texts]


def _cmd_run(args: argparse.Namespace) -> int:
    from kafkabench.runner import run_workload
    from kafkabench.spec.workload import load_workload

    values = _yaml_values(args.set)
    if args.verify:
        values["verify"] = True
    if args.transaction_messages is not None:
        values["transaction_messages"] = args.transaction_messages
    if args.fault:
        values["faults"] = [_fault_option(text) for text in args.fault]
    # Overrides go in before the workload is built: OMB's conversion warnings (a 60 s warm-up)
    # describe the workload that runs, not the file's.
    workload = load_workload(args.workload, overrides=values)
    # --set replication_factor=N is an explicit choice that wins over the profile's; without
    # it, the workload's and the profile's must agree (workload.effective_replication_factor).
    explicit = ({"replication_factor": values["replication_factor"]}
                if values.get("replication_factor") is not None else {})
    profile = _client_profile(args)
    # With --json, stdout holds the JSON line only: anything else printed goes to stderr.
    text_out = sys.stderr if args.json else sys.stdout
    observers = []
    if args.metrics_port is not None:
        from kafkabench.observe.metrics import RunMetrics

        # Bound here, so the port it got (0: a free one) is known before the run starts.
        observers.append(RunMetrics(args.metrics_port))
        print(f"serving the run's metrics on {observers[0].url} while it runs", file=sys.stderr, flush=True)
    with contextlib.redirect_stdout(text_out):
        result = run_workload(workload, profile, bootstrap=args.bootstrap, out=args.out or None,
                              progress=not (args.no_progress or args.json), commit=args.commit,
                              partitioner=args.partitioner, observers=observers,
                              broker_metrics=_broker_metrics_option(args), **explicit)
    if args.json:
        _print_json(result.summary)
    else:
        _print_summary(result.summary)
    if args.out:
        print(f"saved to {Path(args.out) / result.run_id}", file=text_out)
    return _exit_code(result.summary)


def _broker_metrics_option(args: argparse.Namespace) -> Any:
    """--broker-metrics URL... (an external cluster's exporters), --no-broker-metrics, or None
    (the embedded cluster's, when the run uses it)."""
    if args.no_broker_metrics:
        return False
    return args.broker_metrics or None


def _fault_option(text: str) -> dict[str, Any]:
    """--fault at_s=10,action=kill,target=leader,duration_s=10 as a fault mapping."""
    import yaml

    from kafkabench.spec.profile import parse_kv

    fault = {}
    for item in filter(None, text.split(",")):
        key, value = parse_kv(item, "--fault")
        fault[key] = value if key in ("command", "target", "action") else yaml.safe_load(value)
    if str(fault.get("target", "")).isdigit():
        fault["target"] = int(fault["target"])
    return fault


def _exit_code(summary: dict) -> int:
    """130 for Ctrl-C; 1 for a run that did not do what was asked: incomplete (a group short
    of what was delivered, a worker failed), nothing delivered, or a delivery check that
    could not read everything back; else 0 (lost or duplicated messages are findings, in
    the summary, not failures of the run)."""
    if summary.get("interrupted"):
        return 130
    if summary.get("complete") is False or (summary.get("produced") and not summary.get("delivered")):
        return 1
    if summary.get("verify_complete") is False:  # delivery could not be checked: not a pass
        return 1
    return 0


def _yaml_values(pairs: list[str]) -> dict:
    """--set FIELD=VALUE values read as YAML; a duration such as 5m for a field in seconds."""
    import yaml

    from kafkabench.core.errors import ConfigError
    from kafkabench.core.units import parse_duration

    values = {}
    for key, text in _pairs(pairs, "--set").items():
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or exc
            raise ConfigError(f"{key}={text!r}: the value is not valid YAML ({reason}); "
                              "put text in quotes") from None
        if key.endswith("_s") and isinstance(values[key], str):  # duration_s=5m, warmup_s=30s
            try:
                values[key] = parse_duration(values[key])
            except ConfigError as exc:
                raise ConfigError(f"--set {key}: {exc}") from None
    return values


def _cmd_produce(args: argparse.Namespace) -> int:
    from kafkabench.cluster.admin import create_topic
    from kafkabench.runner import run_workload
    from kafkabench.spec.workload import Workload

    profile = _client_profile(args, "producer", files=[args.producer_config],
                              props=[("--producer-props", args.producer_props)])
    bootstrap, conf = _connect(args, profile)
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


def _java_int(value: float) -> int:
    """A latency as Kafka's tools print it: whole milliseconds (0 when there is none)."""
    return int(value) if value == value else 0


def producer_performance_line(summary: dict, record_size: float) -> str:
    """The final line of Kafka's ProducerPerformance (kafka-producer-perf-test), same format.

    Args:
        summary: A run's summary (`delivered`, `delivery_rate`, `publish_latency_ms_*`).
        record_size: Mean record size in bytes; MB/sec counts MB as 1024 * 1024 bytes.
    """
    s, rate = summary, summary["delivery_rate"]
    percentiles = ", ".join(f"{_java_int(s[f'publish_latency_ms_{p}'])} ms {name}" for p, name in
                            (("p50", "50th"), ("p95", "95th"), ("p99", "99th"), ("p99_9", "99.9th")))
    return (f"{s['delivered']} records sent, {rate:f} records/sec ({rate * record_size / _MIB:.2f} MB/sec), "
            f"{s['publish_latency_ms_avg']:.2f} ms avg latency, {s['publish_latency_ms_max']:.2f} ms max "
            f"latency, {percentiles}.")


def _cmd_consume(args: argparse.Namespace) -> int:
    from kafkabench.runner import consume_topic

    profile = _client_profile(args, "consumer", files=[args.consumer_config],
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


CONSUMER_PERFORMANCE_HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                               "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")


def consumer_performance_lines(summary: dict) -> tuple[str, str]:
    """The header and the row of Kafka's ConsumerPerformance (kafka-consumer-perf-test).

    Same columns and formats: times as yyyy-MM-dd HH:mm:ss:SSS local time, MB = 1024 * 1024
    bytes, fetch.time.ms = elapsed - rebalance.time.ms (the time to join the group).

    Args:
        summary: A `consume_topic` summary (`started_at`, `duration_s`, `consumed`,
            `consumed_bytes`, `rebalance_time_ms`).
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


def _java_time(t: Any) -> str:
    """Java's SimpleDateFormat("yyyy-MM-dd HH:mm:ss:SSS")."""
    return f"{t:%Y-%m-%d %H:%M:%S}:{t.microsecond // 1000:03d}"


def _per_s(amount: float, ms: float) -> float:
    """amount per second over `ms` milliseconds, as Java's double division gives it."""
    if ms > 0:
        return amount / (ms / 1000.0)
    return math.nan if amount == 0 else math.inf


def _cmd_lag(args: argparse.Namespace) -> int:
    from kafkabench.cluster.lag import IsolatedLagSampler
    from kafkabench.core.errors import ClusterError, ConfigError

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples {args.samples!r}: give 1 or more (or leave it out)")
    bootstrap, conf = _connect(args)
    if args.metrics_port is not None:
        return _serve_lag(args, bootstrap, conf)
    groups = args.group or _all_groups(bootstrap, conf)
    if not groups:
        print(f"kafkabench: no consumer groups at {bootstrap}", file=sys.stderr)
        return 0
    # In a child process: a client-library abort while a broker dies costs a sample, not the
    # command (docs/librdkafka-coordinator-abort.md).
    sampler = IsolatedLagSampler(bootstrap, groups, interval_s=args.interval, conf=conf,
                                 window=args.window, request_timeout_s=args.timeout)
    try:
        samples, sampled = _sample_lag(sampler, args, _LAG_PRINTERS[args.format])
    finally:
        sampler.close()
    if samples and not sampled:
        errors = sampler.errors()
        last = errors["error"].iloc[-1] if len(errors) else "no reason recorded"
        raise ClusterError(f"could not sample the lag of {', '.join(groups)} at {sampler.bootstrap} "
                           f"({samples} sample(s), {sampler.error_count} error(s), last: {last}); "
                           "check that --bootstrap-server names a reachable cluster")
    return 0


def _serve_lag(args: argparse.Namespace, bootstrap: str, conf: dict[str, Any]) -> int:
    """`lag --metrics-port`: a lag exporter (kafka-lag-exporter's metric names) until Ctrl-C
    or --duration."""
    from kafkabench.observe.metrics import serve_lag

    exporter = serve_lag(bootstrap, groups=args.group or None, all_groups=args.all_groups,
                         port=args.metrics_port, interval_s=args.interval, conf=conf,
                         timeout_s=args.timeout)
    which = "every consumer group" if args.all_groups else ", ".join(args.group)
    print(f"serving the lag of {which} at {bootstrap} on {exporter.url} every {args.interval:g} s; "
          "Ctrl-C stops", flush=True)
    deadline = time.monotonic() + args.duration if args.duration else None
    with exporter:
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


def _all_groups(bootstrap: str, conf: dict[str, Any]) -> list[str]:
    from kafkabench.cluster.admin import list_consumer_groups

    return list_consumer_groups(bootstrap, conf=conf)


def _sample_lag(sampler: Any, args: argparse.Namespace, show: Callable[..., None]) -> tuple[int, int]:
    """Sample until --once, --samples, --duration or Ctrl-C; returns (samples, samples without ERR)."""
    deadline = time.monotonic() + args.duration if args.duration else None
    samples = sampled = told = 0
    try:
        while True:
            frame = sampler.sample_once()
            for restart in getattr(sampler, "restarts", [])[told:]:
                print(f"kafkabench: {restart.text}", file=sys.stderr, flush=True)
                told += 1
            samples += 1
            sampled += not (frame["status"] == "ERR").any()
            show(frame, sampler.group_status(), samples, args.window)
            if args.once or samples == args.samples or (deadline and time.monotonic() >= deadline):
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    return samples, sampled


def _show_lag_table(frame: Any, status: dict[str, str], samples: int, window: int) -> None:
    if samples > 1:
        print()
    # The reason next to ERR; DELETED says the topic is gone.
    frame = frame.assign(status=[f"{s} ({e})" if e else s for s, e in zip(frame["status"], frame["error"])])
    cols = ["group", "topic", "partition", "committed", "log_end", "lag_msgs", "lag_s", "oldest_age_s",
            "status"]
    print(frame[cols].to_string(index=False, float_format="{:.2f}".format) if len(frame) else
          "(no committed offsets and no members yet)")
    pending = (f"; window {samples}/{window} samples (STOP, STALL, WARN need a full one)"
               if samples < window else "")
    print("group status: " + ", ".join(f"{g} {s}" for g, s in status.items()) + pending, flush=True)


def _show_lag_json(frame: Any, status: dict[str, str], samples: int, window: int) -> None:
    """One JSON object per sample and line: time, group statuses, partition rows."""
    import pandas as pd

    when = frame["time"].max() if len(frame) else pd.Timestamp.now(tz="UTC")
    _print_json({"time": when, "sample": samples, "window_full": samples >= window,
                 "group_status": status, "partitions": frame.to_dict("records")})


def _show_lag_csv(frame: Any, status: dict[str, str], samples: int, window: int) -> None:
    """The partition rows of every sample as CSV, with one header line."""
    print(frame.to_csv(index=False, header=samples == 1), end="", flush=True)


_LAG_PRINTERS = {"table": _show_lag_table, "json": _show_lag_json, "csv": _show_lag_csv}


def _cmd_results_list(args: argparse.Namespace) -> None:
    import pandas as pd

    from kafkabench.results.store import list_results

    df = list_results(args.dir)
    if df.empty:
        print(f"no results in {args.dir}")
        return
    table = pd.DataFrame(index=df.index)
    for column, (title, fmt) in _results_list_columns().items():
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


def _results_list_columns() -> dict[str, tuple[str, str | None]]:
    """`results list`'s columns, headline figures only (the full frame is far wider than a
    terminal): summary key -> (title, number format; None for text)."""
    from kafkabench.core.contract import summary_names  # imports pandas: not at `kafkabench --help`

    keys = summary_names("run_id", "name", "duration_s", "publish_rate", "publish_mb_s",
                         "publish_latency_ms_p99", "e2e_latency_ms_p99", "consume_rate", "lag_max_msgs")
    shown = [("run_id", None), ("name", None), ("secs", ",.1f"), ("msg/s", ",.0f"), ("MB/s", ",.2f"),
             ("p99 ms", ",.2f"), ("e2e p99 ms", ",.2f"), ("consumed/s", ",.0f"), ("max lag", ",.0f")]
    return dict(zip(keys, shown, strict=True))


def _cmd_results_show(args: argparse.Namespace) -> None:
    from kafkabench.results.store import find_run, load

    _print_summary(load(find_run(args.run, args.dir)).summary)


def _cmd_results_compare(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import KafkabenchError
    from kafkabench.results.store import compare, find_run

    table = compare([find_run(run, args.dir) for run in args.runs])
    if table.columns.empty:
        raise KafkabenchError(f"no readable run among {' '.join(args.runs)}: nothing to compare")
    print(table.to_string())


def _cmd_report(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import KafkabenchError
    from kafkabench.present.report import write_report
    from kafkabench.results.store import load_many

    # Loaded here so that a damaged run is skipped with a warning instead of stopping the report.
    runs = [run for item in args.results for run in load_many(item)]
    if not runs:
        raise KafkabenchError(f"no readable kafkabench run in {' '.join(args.results)}: "
                              "nothing to report")
    path = write_report(runs, args.output, title=args.title)
    print(f"report written to {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from kafkabench.analysis.sweeps import summarize
    from kafkabench.experiments.sweep import SweepSpec, run_sweep

    spec = SweepSpec.from_yaml(args.spec)
    if args.profile or args.command_config or args.command_property:
        spec = dataclasses.replace(spec, profile=_client_profile(args, base=spec.profile))
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
        from kafkabench.present.report import write_report
        from kafkabench.results.store import load_many

        runs = load_many(list(table["path"]))  # a damaged run is skipped with a warning
        print(f"report written to {write_report(runs, args.report, sweep=summary)}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from kafkabench.experiments.quickstart import run_quickstart

    table, report = run_quickstart(out=args.out, report=args.report, bootstrap=args.bootstrap,
                                   progress=not args.no_progress, profile=_client_profile(args))
    cols = [c for c in _quickstart_columns() if c in table.columns]
    if len(table):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if report is None:  # interrupted: run_sweep has said what is saved where
        return 130
    print(f"\nresults in {Path(args.out).resolve()}, report: {report.resolve()}")
    return 0


def _quickstart_columns() -> tuple[str, ...]:
    """The summary keys `quickstart` prints, one row per run."""
    from kafkabench.core.contract import summary_names

    return summary_names("producer.compression.type", "producer.acks", "publish_rate", "publish_mb_s",
                         "publish_latency_ms_p99", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
                         "lag_max_msgs", "consume_rate", "rate_held", "complete")


def _cmd_locust(args: argparse.Namespace) -> int:
    from kafkabench.loadtest.locust_results import run_locust
    from kafkabench.results.store import save

    conf = read_properties(args.command_config) if args.command_config else {}
    conf.update(_pairs(args.command_property, "--command-property"))
    conf.update(_pairs(args.conf, "--conf"))
    run = run_locust(args.locustfile, users=args.users, spawn_rate=args.spawn_rate,
                     run_time_s=args.run_time, bootstrap=args.bootstrap, topic=args.topic,
                     group=args.group, profile=args.profile, conf=conf,
                     rate=args.rate, shape=args.shape, workers=args.workers,
                     out_dir=Path(args.out) / "locust" if args.out else None,
                     processing=args.processing, metrics_port=args.metrics_port)
    _print_summary(run.result.summary)
    print(f"Locust CSV files: {run.csv_prefix}_*.csv (exit code {run.exit_code})")
    if args.out:
        print(f"saved to {save(run.result, args.out)}")
    return run.exit_code


def _cmd_scenario_list(args: argparse.Namespace) -> None:
    from kafkabench.experiments.scenarios import list_scenarios

    table = list_scenarios()
    print(table.to_string(index=False, formatters={"full_s": "{:g}".format, "ci_s": "{:g}".format}))


def _cmd_scenario_run(args: argparse.Namespace) -> int:
    from kafkabench.experiments.scenarios import get_scenario, run_scenario

    get_scenario(args.name)  # an unknown name fails before anything starts
    common = dict(_client_profile(args).common)
    commands = _pairs(args.fault_command, "--fault-command")
    # With --json, stdout holds the JSON line only: anything else printed goes to stderr.
    text_out = sys.stderr if args.json else sys.stdout
    with contextlib.redirect_stdout(text_out):
        outcome = run_scenario(args.name, seconds=args.seconds, size=args.size, bootstrap=args.bootstrap,
                               out=args.out or None, progress=not (args.no_progress or args.json),
                               fault_commands=commands, common=common)
    row = outcome.row
    if args.json:
        _print_json({**row, "run_id": outcome.result.run_id, "checks": outcome.checks})
    else:
        _print_summary(outcome.result.summary)
        verdict = "passed" if outcome.passed else f"FAILED: {row['failed_checks']}"
        print(f"scenario {row['scenario']} ({row['seconds']:g} s): {verdict}")
    if args.out:
        print(f"saved to {Path(args.out) / outcome.result.run_id}", file=text_out)
    return 0 if outcome.passed else 1


def _cmd_completion(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import InstallError

    try:
        import shtab
    except ImportError:
        raise InstallError("shell completion needs the shtab package: pip install shtab") from None
    print(shtab.complete(build_parser(), shell=args.shell))


def _command(sub: Any, name: str, help_: str, examples: Sequence[str], *,
             parents: Sequence[argparse.ArgumentParser] = (), description: str | None = None):
    """A subcommand parser whose --help ends with examples."""
    label = "examples" if len(examples) > 1 else "example"
    return sub.add_parser(name, parents=list(parents), help=help_,
                          description=description or help_[:1].upper() + help_[1:] + ".",
                          epilog=f"{label}:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _file(action: argparse.Action, kind: dict[str, str] = _FILE) -> argparse.Action:
    """Mark an argument as a path for shell completion."""
    action.complete = kind
    return action


def _client_options() -> argparse.ArgumentParser:
    """The parent parser of commands that talk to a cluster: --bootstrap-server, --profile and
    client settings."""
    bootstrap = argparse.ArgumentParser(add_help=False)
    bootstrap.add_argument("--bootstrap-server", "--bootstrap", dest="bootstrap", metavar="HOST:PORT",
                           help="bootstrap servers, host:port[,host:port...] (default: "
                                "$KAFKABENCH_BOOTSTRAP, else the running embedded cluster)")
    client = argparse.ArgumentParser(add_help=False, parents=[bootstrap])
    _file(client.add_argument(
        "--profile", help="client profile: a preset name or a YAML file (kafkabench or OMB "
                          "driver-kafka format); its common settings (TLS/SASL) reach every "
                          "client (default: the default preset)"))
    _file(client.add_argument(
        "--command-config", metavar="FILE",
        help="client properties file (key=value lines, librdkafka names), laid over --profile"))
    client.add_argument(
        "--command-property", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="client setting(s), repeatable, laid over --command-config; security.*, sasl.*, "
             "ssl.* go to every client, producer.KEY / consumer.KEY to one role, other keys to "
             "the command's client (run, sweep, locust: the one role librdkafka accepts them "
             "for, else every client)")
    return client


def _add_cluster_commands(sub: Any) -> None:
    kafka = _command(sub, "kafka", "the Apache Kafka distribution (jars for the embedded cluster)",
                     ["kafkabench kafka install"]).add_subparsers(dest="action", required=True)
    p = _command(kafka, "install", f"fetch Apache Kafka (default {KAFKA_VERSION}) into the cache",
                 ["kafkabench kafka install", f"kafkabench kafka install --version {KAFKA_VERSION}"])
    p.add_argument("--version", default=KAFKA_VERSION, help="Kafka version (default: %(default)s)")
    p.set_defaults(func=_cmd_kafka_install)

    cluster = _command(sub, "cluster", "the embedded KRaft cluster on this machine",
                       ["kafkabench cluster up --brokers 3", "kafkabench cluster status"]
                       ).add_subparsers(dest="action", required=True)
    name_opt = argparse.ArgumentParser(add_help=False)
    name_opt.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
    p = _command(cluster, "up", "start a cluster in the background", [
        "kafkabench cluster up", "kafkabench cluster up --brokers 3 --heap 1g"], parents=[name_opt])
    p.add_argument("--brokers", type=int, choices=(1, 3), default=1,
                   help="number of KRaft nodes, each broker and controller (default: %(default)s)")
    p.add_argument("--port", type=int, action="append",
                   help="fixed client port, repeat once per broker (default: free ports)")
    p.add_argument("--heap", help="JVM heap per broker, e.g. 1g (default: Kafka's)")
    p.set_defaults(func=_cmd_cluster_up)
    p = _command(cluster, "status", "show each node: pid, ports, state, role",
                 ["kafkabench cluster status --json"], parents=[name_opt])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_cluster_status)
    p = _command(cluster, "down", "stop the cluster", ["kafkabench cluster down --purge"],
                 parents=[name_opt])
    p.add_argument("--purge", action="store_true", help="also delete its data and logs")
    p.set_defaults(func=_cmd_cluster_down)
    for action, text in (("stop", "clean shutdown of one node (SIGTERM)"),
                         ("kill", "hard kill of one node (SIGKILL)"),
                         ("start", "restart a stopped node"),
                         ("pause", "freeze a node (SIGSTOP)"), ("resume", "unfreeze a node (SIGCONT)")):
        p = _command(cluster, action, text, [f"kafkabench cluster {action} 2"], parents=[name_opt])
        p.add_argument("node", type=int, help="node id (1-based, as `cluster status` shows)")
        p.set_defaults(func=_node_action(action))


def _add_topic_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    topic = _command(sub, "topic", "create, describe, list, delete topics",
                     ["kafkabench topic list --bootstrap-server localhost:9092"]
                     ).add_subparsers(dest="action", required=True)
    p = _command(topic, "create", "create a topic and wait for its partition leaders",
                 ["kafkabench topic create orders --partitions 12 --config retention.ms=3600000"],
                 parents=[client])
    p.add_argument("topic", help="topic name")
    p.add_argument("--partitions", type=int, default=1, help="number of partitions (default: %(default)s)")
    p.add_argument("--replication-factor", type=int,
                   help="copies of each partition (default: the cluster's default.replication.factor)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="topic config, repeatable, e.g. retention.ms=3600000")
    p.add_argument("--if-not-exists", action="store_true", help="succeed if the topic exists already")
    p.set_defaults(func=_cmd_topic_create)
    p = _command(topic, "describe", "partitions of a topic with leader, replicas and in-sync replicas",
                 ["kafkabench topic describe orders"], parents=[client])
    p.add_argument("topic", help="topic name")
    p.set_defaults(func=_cmd_topic_describe)
    p = _command(topic, "list", "names of the topics (internal ones left out)",
                 ["kafkabench topic list --profile secure.yaml"], parents=[client])
    p.set_defaults(func=_cmd_topic_list)
    p = _command(topic, "delete", "delete topics (a missing one is not an error)",
                 ["kafkabench topic delete orders payments"], parents=[client])
    p.add_argument("topic", nargs="+", help="topic names")
    p.set_defaults(func=_cmd_topic_delete)


def _add_run_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    from kafkabench.engine.consumer import COMMIT_MODES

    p = _command(sub, "run", "run a workload and measure it", [
        "kafkabench run workloads/quickstart.yaml --set producer_rate=10000 --set duration_s=2m",
        "kafkabench run workloads/omb/1-topic-16-partitions-1kb.yaml --profile kafka-latency "
        "--bootstrap-server broker1:9092 --command-config client.properties --json"], parents=[client])
    _file(p.add_argument("workload", help="workload YAML (kafkabench or OpenMessaging Benchmark format)"))
    _file(p.add_argument("--out", default="results",
                         help="results folder (default: %(default)s; '' saves nothing)"), _DIR)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a workload field, repeatable, e.g. producer_rate=10000 "
                        "(msgs/s) or duration_s=5m (fields ending in _s take durations)")
    p.add_argument("--commit", default="auto", choices=COMMIT_MODES,
                   help="consumer offset commits (default: %(default)s)")
    p.add_argument("--partitioner", help="partition strategy in Python (kafkabench.partitioning) "
                                         "(default: librdkafka's partitioner)")
    p.add_argument("--verify", action="store_true",
                   help="check delivery: read the topics back after the run and count lost, "
                        "duplicated and reordered messages (workload field verify)")
    p.add_argument("--transaction-messages", type=int, metavar="N",
                   help="producers send in transactions of N messages (needs acks=all and "
                        "idempotence; workload field transaction_messages)")
    p.add_argument("--fault", action="append", default=[], metavar="KEY=VALUE,...",
                   help="add a fault to the schedule, repeatable, e.g. "
                        "at_s=10,action=kill,target=leader,duration_s=10 (workload field faults)")
    _add_metrics_options(p)
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on the last line of stdout "
                        "(NaN as null); other text goes to stderr")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = _command(sub, "sweep", "run a grid of workload fields and librdkafka settings (resumable)",
                 ["kafkabench sweep sweeps/linger.yaml --report linger.html"], parents=[client],
                 description="Run a grid of workload fields and librdkafka settings; runs already "
                             "saved are not run again. --profile replaces the spec's profile; "
                             "--command-config and --command-property lay settings over it.")
    _file(p.add_argument("spec", help="sweep YAML: name, workload, profile, grid, repetitions"))
    _file(p.add_argument("--out", default="results", help="results folder (default: %(default)s)"), _DIR)
    _file(p.add_argument("--report", help="also write an HTML report to this file"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sweep)

    p = _command(sub, "quickstart", "compression x acks sweep with a consumer group, and a report",
                 ["kafkabench cluster up && kafkabench quickstart",
                  "kafkabench quickstart --bootstrap-server broker1:9093 --command-config client.properties"],
                 parents=[client],
                 description="Compression x acks sweep with a consumer group, and a report. --profile, "
                             "--command-config and --command-property (e.g. TLS/SASL settings) lie "
                             "under the sweep's own compression.type and acks.")
    _file(p.add_argument("--out", default="results", help="results folder (default: %(default)s)"), _DIR)
    _file(p.add_argument("--report", default="report.html", help="HTML report file (default: %(default)s)"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_quickstart)

    p = _command(sub, "locust", "run a locustfile headless, save its result like any other run",
                 ["kafkabench locust producer_load -u 10 -r 5 -t 5m --rate 1000"], parents=[client])
    _file(p.add_argument("locustfile", help="a path, or producer_load / consumer_load / mixed"))
    p.add_argument("-u", "--users", type=int, default=5, help="peak users (default: %(default)s)")
    p.add_argument("-r", "--spawn-rate", type=float, default=5.0,
                   help="users started per second (default: %(default)s)")
    p.add_argument("-t", "--run-time", type=_duration, metavar="DURATION", default="60s",
                   help="run time: 90, 90s, 5m, 1h30m (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0,
                   help="0: one process; N: a master and N workers on this machine (default: %(default)s)")
    p.add_argument("--topic", help="topic (default: a new one named after the run)")
    p.add_argument("--group", help="consumer group whose lag is sampled (default: TOPIC-group)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka setting, repeatable (prefix producer. or consumer. for one role)")
    p.add_argument("--rate", type=float, help="messages/s per producer user (0: full speed; "
                                              "default: the locustfile's)")
    p.add_argument("--shape", choices=("constant", "step", "spike"),
                   help="load shape, for locustfiles with a KafkaLoadShape (mixed) (default: none)")
    _file(p.add_argument("--processing", metavar="FILE.yaml",
                         help="processing stage of the consumer users: a YAML mapping of "
                              "kafkabench.processing.Processing fields (time_ms, poison_fraction, "
                              "retry, filter_fraction, ...) (default: the locustfile's, if any)"))
    _file(p.add_argument("--out", default="results",
                         help="results folder (default: %(default)s; '' saves nothing)"), _DIR)
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve the run's live metrics (Locust's counts and latencies, the group's "
                        "lag) for Prometheus on this port (0: a free one)")
    p.set_defaults(func=_cmd_locust)


def _cmd_offsets_show(args: argparse.Namespace) -> None:
    from kafkabench.cluster.offsets import show

    bootstrap, conf = _connect(args)
    frame = show(args.group, bootstrap=bootstrap, conf=conf, topics=args.topic)
    state, members = frame.attrs["state"], frame.attrs["members"]
    if args.json:
        _print_json({"group": args.group, "state": state, "protocol": frame.attrs["protocol"],
                     "members": members, "partitions": frame.to_dict("records")})
        return
    # kafka-consumer-groups --describe's columns, plus the log start offset.
    names = {"group": "GROUP", "topic": "TOPIC", "partition": "PARTITION", "committed": "CURRENT-OFFSET",
             "log_start": "LOG-START-OFFSET", "log_end": "LOG-END-OFFSET", "lag": "LAG",
             "member": "CONSUMER-ID", "host": "HOST", "client_id": "CLIENT-ID"}
    table = frame[list(names)].replace("", "-")
    table = table.astype(object).where(table.notna(), "-").rename(columns=names)  # <NA> -> "-"
    print(table.to_string(index=False) if len(table) else "(no partitions)")
    print(f"consumer group {args.group!r} ({frame.attrs['protocol']} protocol): {state}, "
          + (f"{members} active member(s)" if members else "no active members"))


def _cmd_offsets_reset(args: argparse.Namespace) -> None:
    from kafkabench.cluster.offsets import SPEC_KINDS, parse_datetime, reset

    if args.to_datetime is not None:
        parse_datetime(args.to_datetime, "--to-datetime")  # the error names the option
    # `is not`: --to-offset 0 and --shift-by 0 are values (0 == False).
    spec = {k: v for k in SPEC_KINDS if (v := getattr(args, k)) is not None and v is not False}
    bootstrap, conf = _connect(args)
    plan = reset(args.group, spec, topics=args.topic, bootstrap=bootstrap, conf=conf,
                 execute=args.execute)
    done = (f"offsets of group {args.group!r} reset on {len(plan)} partition(s)" if args.execute else
            "dry run: nothing changed; add --execute to commit these offsets (the group must "
            "have no active members)")
    if args.json:
        _print_json({"group": args.group, "spec": plan.attrs["spec"], "executed": args.execute,
                     "partitions": plan.to_dict("records")})
        print(done, file=sys.stderr)
        return
    names = {"group": "GROUP", "topic": "TOPIC", "partition": "PARTITION", "current": "CURRENT-OFFSET",
             "new": "NEW-OFFSET"}
    table = plan[list(names)]
    print(table.astype(object).where(table.notna(), "-").rename(columns=names).to_string(index=False))
    print(done)


def _add_offsets_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    offsets = _command(sub, "offsets", "show and reset consumer group offsets (kafka-consumer-groups)", [
        "kafkabench offsets show --group orders-app",
        "kafkabench offsets reset --group orders-app --to-datetime 2026-03-01T12:00:00Z --execute"]
        ).add_subparsers(dest="action", required=True)
    p = _command(offsets, "show", "committed offset, log start and end, lag and owner of each "
                                  "partition of a group (kafka-consumer-groups --describe)", [
        "kafkabench offsets show --group orders-app",
        "kafkabench offsets show --group orders-app --topic orders --json"], parents=[client])
    p.add_argument("--group", required=True, help="consumer group (classic or KIP-848 consumer protocol)")
    p.add_argument("--topic", action="append", metavar="TOPIC[:P[,P]]",
                   help="only this topic (or these partitions), repeatable; every partition of it "
                        "is listed (default: the partitions the group committed or owns)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_offsets_show)
    p = _command(offsets, "reset", "move a group's committed offsets (a dry run unless --execute; "
                                   "the group must have no active members)", [
        "kafkabench offsets reset --group orders-app --by-duration 1h",
        "kafkabench offsets reset --group orders-app --topic orders:0,1 --shift-by -100 --execute",
        "kafkabench offsets reset --group orders-app --to-datetime 2026-03-01T12:00:00+01:00 --execute"],
        parents=[client])
    p.add_argument("--group", required=True, help="consumer group (classic or KIP-848 consumer protocol)")
    spec = p.add_mutually_exclusive_group(required=True)
    spec.add_argument("--to-earliest", action="store_true", help="to the log start offset")
    spec.add_argument("--to-latest", action="store_true", help="to the log end offset")
    spec.add_argument("--to-datetime", metavar="ISO", help="to the first record at or after this "
                      "time, ISO 8601 with its zone, e.g. 2026-03-01T12:00:00Z (log end if none)")
    spec.add_argument("--by-duration", type=_duration, metavar="DURATION",
                      help="to the first record at or after now minus this: 10m, 1h30m")
    spec.add_argument("--shift-by", type=int, metavar="N",
                      help="move the committed offset by N (negative: back), within the log")
    spec.add_argument("--to-offset", type=int, metavar="N", help="to offset N, within the log")
    p.add_argument("--topic", action="append", metavar="TOPIC[:P[,P]]",
                   help="only this topic (or these partitions), repeatable (default: every "
                        "partition the group committed or owns)")
    p.add_argument("--execute", action="store_true",
                   help="commit the new offsets (default: print the plan, change nothing)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the plan) instead of a table")
    p.set_defaults(func=_cmd_offsets_reset)


def _add_perf_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    from kafkabench.engine.consumer import COMMIT_MODES

    p = _command(sub, "produce", "producer benchmark with kafka-producer-perf-test's flags and output", [
        "kafkabench produce --bootstrap-server localhost:9092 --topic t --num-records 1000000 "
        "--record-size 100 --throughput -1 --command-property acks=all linger.ms=5"], parents=[client])
    p.add_argument("--topic", required=True, help="topic (created with --partitions if missing)")
    p.add_argument("--num-records", type=int, required=True, help="records to send")
    p.add_argument("--record-size", type=int, default=100, help="bytes per record (default: %(default)s)")
    p.add_argument("--throughput", type=float, default=-1,
                   help="records/s in all; -1 = unthrottled (default: %(default)s)")
    p.add_argument("--producer-props", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="producer settings (the tool's older name of --command-property)")
    _file(p.add_argument("--producer.config", dest="producer_config", metavar="FILE",
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
    _file(p.add_argument("--out", help="also save the result in this results folder"), _DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_produce)

    p = _command(sub, "consume", "consumer benchmark with kafka-consumer-perf-test's flags and output", [
        "kafkabench consume --bootstrap-server localhost:9092 --topic t --num-records 1000000 "
        "--timeout 30s --no-latency"], parents=[client])
    p.add_argument("--topic", required=True, help="topic to read from its start")
    p.add_argument("--num-records", "--messages", dest="messages", type=int, metavar="N",
                   help="stop after this many records (default: when idle for --timeout)")
    p.add_argument("--group", help="consumer group (default: a new one)")
    p.add_argument("--commit", default="auto", choices=COMMIT_MODES,
                   help="offset commits (default: %(default)s, as kafka-consumer-perf-test)")
    p.add_argument("--timeout", type=_duration_ms, metavar="DURATION", default="10000",
                   help="stop after this long without records: milliseconds as in Kafka's tool, "
                        "or 30s, 2m (default: %(default)s ms)")
    p.add_argument("--consumer-props", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="consumer settings (older name of --command-property)")
    _file(p.add_argument("--consumer.config", dest="consumer_config", metavar="FILE",
                         help="consumer properties file (the older name of --command-config)"))
    p.add_argument("--no-latency", action="store_true",
                   help="do not record end-to-end latency (pure throughput, as the Java tool)")
    p.add_argument("--hide-header", action="store_true", help="print the figures without the header line")
    _file(p.add_argument("--out", help="also save the result in this results folder"), _DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_consume)

    p = _command(sub, "lag", "consumer lag (messages, seconds, Burrow status) of any group", [
        "kafkabench lag --group orders-app --interval 5s --duration 10m",
        "kafkabench lag --bootstrap-server localhost:9092 --all-groups --once --format json",
        "kafkabench lag --all-groups --metrics-port 9308"],
        parents=[client])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--group", action="append", help="consumer group, repeatable")
    which.add_argument("--all-groups", action="store_true",
                       help="every consumer group of the cluster (as listed at start)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table; json: one object per sample and line; csv: partition rows "
                        "(default: %(default)s)")
    p.add_argument("--interval", type=_duration, metavar="DURATION", default="2s",
                   help="time between samples: 2, 2s, 1m (default: %(default)s)")
    p.add_argument("--duration", type=_duration, metavar="DURATION",
                   help="stop after this long, e.g. 10m (default: until Ctrl-C)")
    p.add_argument("--once", action="store_true", help="one sample, then exit")
    p.add_argument("--samples", type=int, help="stop after this many samples (default: until Ctrl-C)")
    p.add_argument("--window", type=int, default=10,
                   help="samples in the Burrow status window; statuses are OK until it is full "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=_duration, metavar="DURATION", default="5s",
                   help="time allowed for each request (default: %(default)s)")
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve the lag for Prometheus on this port instead of printing it, with "
                        "kafka-lag-exporter's metric names (0: a free one)")
    p.set_defaults(func=_cmd_lag)


def _add_metrics_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve the run's live metrics for Prometheus on this port (0: a free one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--broker-metrics", action="append", metavar="URL",
                       help="a broker's Prometheus exporter to scrape each second, repeatable "
                            "(default: the embedded cluster's, when the run uses it)")
    which.add_argument("--no-broker-metrics", action="store_true", help="scrape no broker metrics")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: give 0 (a free one) to 65535")
    return port


def _add_observe_commands(sub: Any) -> None:
    observe = _command(sub, "observe", "a Prometheus server scraping the brokers and kafkabench, "
                       "with alert rules", ["kafkabench observe up --client 127.0.0.1:9464",
                                            "kafkabench observe status", "kafkabench observe down"]
                       ).add_subparsers(dest="action", required=True)
    p = _command(observe, "up", "start Prometheus (Debian's `prometheus`: `make observe` installs it)", [
        "kafkabench observe up", "kafkabench run workloads/quickstart.yaml --metrics-port 9464",
        "kafkabench observe up --broker broker1:9404 --client 127.0.0.1:9308 --lag-threshold 5000"])
    p.add_argument("--port", type=_port, help="its HTTP port on 127.0.0.1 (default: 9090, else a free one)")
    p.add_argument("--broker", action="append", metavar="HOST:PORT",
                   help="a broker's JMX exporter, repeatable (default: the embedded cluster's)")
    p.add_argument("--client", action="append", default=[], metavar="HOST:PORT",
                   help="a kafkabench endpoint (run --metrics-port, lag --metrics-port), repeatable")
    p.add_argument("--lag-threshold", type=float, default=10000,
                   help="KafkaConsumerLagHigh fires above this many messages (default: %(default)g)")
    p.set_defaults(func=_cmd_observe_up)
    p = _command(observe, "add", "add scrape targets to the running Prometheus",
                 ["kafkabench observe add --client 127.0.0.1:9464"])
    p.add_argument("--broker", action="append", default=[], metavar="HOST:PORT", help="a broker's exporter")
    p.add_argument("--client", action="append", default=[], metavar="HOST:PORT", help="a kafkabench endpoint")
    p.set_defaults(func=_cmd_observe_add)
    p = _command(observe, "status", "the running Prometheus and each target's health",
                 ["kafkabench observe status"])
    p.set_defaults(func=_cmd_observe_status)
    p = _command(observe, "down", "stop it (its data stays)", ["kafkabench observe down"])
    p.set_defaults(func=_cmd_observe_down)


def _cmd_observe_up(args: argparse.Namespace) -> int:
    from kafkabench.observe.prometheus import observe_up

    state = observe_up(brokers=args.broker, clients=args.client, port=args.port,
                       lag_threshold=args.lag_threshold)
    _print_observe(state)
    print("stop it with `kafkabench observe down`")
    return 0


def _cmd_observe_add(args: argparse.Namespace) -> int:
    from kafkabench.core.errors import ConfigError
    from kafkabench.observe.prometheus import add_targets

    if not (args.broker or args.client):
        raise ConfigError("observe add: name a target with --broker HOST:PORT or --client HOST:PORT")
    _print_observe(add_targets(brokers=args.broker, clients=args.client))
    return 0


def _cmd_observe_status(args: argparse.Namespace) -> int:
    from kafkabench.core.errors import ClusterError
    from kafkabench.observe.prometheus import observe_status, target_health

    state = observe_status()
    if state is None:
        print("no Prometheus started by `kafkabench observe up` is running")
        return 3
    _print_observe(state)
    try:
        health = target_health(url=state.url)
    except ClusterError as exc:
        print(f"targets: unknown ({exc})")
        return 1
    for t in health:
        error = f" ({t['last_error']})" if t.get("last_error") else ""
        print(f"  {t['job']:<14} {t['instance']:<24} {t['health']}{error}")
    return 0


def _cmd_observe_down(args: argparse.Namespace) -> int:
    from kafkabench.observe.prometheus import observe_down

    print("Prometheus stopped" if observe_down() else "no Prometheus started by `kafkabench observe up` was running")
    return 0


def _print_observe(state: Any) -> None:
    print(f"Prometheus {state.url} (pid {state.pid}), rules {state.rules_file}, log {state.log_file}")
    for job, targets in state.targets.items():
        print(f"  scrapes {job}: {', '.join(targets) or '(none)'}")


def _add_results_commands(sub: Any) -> None:
    p = _command(sub, "report", "one self-contained HTML report of saved runs",
                 ["kafkabench report results -o report.html"])
    _file(p.add_argument("results", nargs="+", help="run folders or folders containing runs"), _DIR)
    _file(p.add_argument("-o", "--output", default="report.html", help="HTML file (default: %(default)s)"))
    p.add_argument("--title", default="kafkabench report", help="report title (default: %(default)s)")
    p.set_defaults(func=_cmd_report)

    results = _command(sub, "results", "list, show and compare saved runs",
                       ["kafkabench results list", "kafkabench results compare RUN_A RUN_B"]
                       ).add_subparsers(dest="action", required=True)
    p = _command(results, "list", "one line per saved run with its headline figures",
                 ["kafkabench results list results/"])
    _file(p.add_argument("dir", nargs="?", default="results", help="results folder (default: %(default)s)"),
          _DIR)
    p.set_defaults(func=_cmd_results_list)
    run_dir_opt = argparse.ArgumentParser(add_help=False)
    _file(run_dir_opt.add_argument("--dir", default="results",
                                   help="results folder run ids are looked up in (default: %(default)s)"),
          _DIR)
    p = _command(results, "show", "the summary of one saved run",
                 ["kafkabench results show 20260101-120000"], parents=[run_dir_opt])
    p.add_argument("run", help="a run folder, or a run id (or its start) from `results list`")
    p.set_defaults(func=_cmd_results_show)
    p = _command(results, "compare", "saved runs side by side, as ratios to the first",
                 ["kafkabench results compare RUN_A RUN_B RUN_C"], parents=[run_dir_opt])
    p.add_argument("runs", nargs="+", help="run folders or run ids (the first is the baseline)")
    p.set_defaults(func=_cmd_results_compare)


def _add_scenario_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    scenario = _command(sub, "scenario", "named fault scenarios with delivery verification",
                        ["kafkabench scenario list", "kafkabench scenario run leader-kill-acks-all"]
                        ).add_subparsers(dest="action", required=True)
    p = _command(scenario, "list", "the scenarios: fault, run lengths and expectations",
                 ["kafkabench scenario list"])
    p.set_defaults(func=_cmd_scenario_list)
    p = _command(scenario, "run", "run a scenario, check delivery and recovery (exit 1 if an "
                                  "expectation failed)", [
        "kafkabench scenario run leader-kill-acks-all",
        "kafkabench scenario run isr-below-min --size ci --json",
        "kafkabench scenario run leader-kill-acks-1 --bootstrap-server broker1:9092 "
        "--fault-command 'kill=ssh kafka{node} pkill -9 java' "
        "--fault-command 'start=ssh kafka{node} systemctl start kafka'"], parents=[client],
        description="Run a scenario, check delivery and recovery. Without --bootstrap-server it "
                    "starts its own 3-broker embedded cluster (deleted afterwards). --profile, "
                    "--command-config and --command-property give the connection settings "
                    "(common: TLS/SASL) only: the scenario sets the producer's.")
    p.add_argument("name", help="scenario name (see `kafkabench scenario list`)")
    p.add_argument("--seconds", type=_duration, metavar="DURATION",
                   help="run length; fault times scale with it (default: the --size's)")
    p.add_argument("--size", choices=("full", "ci"), default="full",
                   help="full, or ci: short runs for tests (default: %(default)s)")
    p.add_argument("--fault-command", action="append", default=[], metavar="ACTION=COMMAND",
                   help="shell command of a fault action on a cluster kafkabench did not start, "
                        "repeatable; {node} and {action} are replaced")
    p.add_argument("--json", action="store_true",
                   help="print the scenario row as one JSON object on the last line of stdout "
                        "(NaN and infinity as null); other text goes to stderr")
    _file(p.add_argument("--out", default="results",
                         help="results folder (default: %(default)s; '' saves nothing)"), _DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_scenario_run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every kafkabench command."""
    parser = argparse.ArgumentParser(prog="kafkabench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kafkabench {__version__}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (also librdkafka's log): -v INFO, -vv DEBUG; "
                             "may also follow the command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    client = _client_options()
    _add_cluster_commands(sub)
    _add_topic_commands(sub, client)
    _add_run_commands(sub, client)
    _add_perf_commands(sub, client)
    _add_offsets_commands(sub, client)
    _add_scenario_commands(sub, client)
    _add_results_commands(sub)
    _add_observe_commands(sub)
    p = _command(sub, "completion", "print a shell completion script (needs shtab)", [
        "kafkabench completion bash > ~/.local/share/bash-completion/completions/kafkabench",
        "kafkabench completion zsh > \"${fpath[1]}/_kafkabench\""])
    p.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")
    p.set_defaults(func=_cmd_completion)
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
