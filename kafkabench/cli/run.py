"""`kafkabench run WORKLOAD`: run a workload (kafkabench or OpenMessaging Benchmark YAML) with
`kafkabench.runner.run_workload`, print its summary and save it; the exit code says whether
the run did what was asked.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from kafkabench.cli.options import DIR, add_command, client_profile, complete_path, pairs, tcp_port
from kafkabench.cli.output import print_json, print_summary


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `run` command.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    from kafkabench.engine.consumer import COMMIT_MODES

    p = add_command(sub, "run", "run a workload and measure it", [
        "kafkabench run workloads/quickstart.yaml --set producer_rate=10000 --set duration_s=2m",
        "kafkabench run workloads/omb/1-topic-16-partitions-1kb.yaml --profile kafka-latency "
        "--bootstrap-server broker1:9092 --command-config client.properties --json"], parents=[client])
    complete_path(p.add_argument("workload", help="workload YAML (kafkabench or OpenMessaging Benchmark format)"))
    complete_path(p.add_argument("--out", default="results",
                                 help="results folder (default: %(default)s; '' saves nothing)"), DIR)
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


def _add_metrics_options(p: argparse.ArgumentParser) -> None:
    """--metrics-port, and --broker-metrics or --no-broker-metrics."""
    p.add_argument("--metrics-port", type=tcp_port, metavar="PORT",
                   help="serve the run's live metrics for Prometheus on this port (0: a free one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--broker-metrics", action="append", metavar="URL",
                       help="a broker's Prometheus exporter to scrape each second, repeatable "
                            "(default: the embedded cluster's, when the run uses it)")
    which.add_argument("--no-broker-metrics", action="store_true", help="scrape no broker metrics")


def _cmd_run(args: argparse.Namespace) -> int:
    from kafkabench.runner import run_workload
    from kafkabench.spec.workload import load_workload

    values = _workload_overrides(args)
    # Overrides go in before the workload is built: OMB's conversion warnings (a 60 s warm-up)
    # describe the workload that runs, not the file's.
    workload = load_workload(args.workload, overrides=values)
    # --set replication_factor=N is an explicit choice that wins over the profile's; without
    # it, the workload's and the profile's must agree (workload.effective_replication_factor).
    explicit = ({"replication_factor": values["replication_factor"]}
                if values.get("replication_factor") is not None else {})
    profile = client_profile(args)
    # With --json, stdout holds the JSON line only: anything else printed goes to stderr.
    text_out = sys.stderr if args.json else sys.stdout
    observers = _metrics_observers(args)
    with contextlib.redirect_stdout(text_out):
        result = run_workload(workload, profile, bootstrap=args.bootstrap, out=args.out or None,
                              progress=not (args.no_progress or args.json), commit=args.commit,
                              partitioner=args.partitioner, observers=observers,
                              broker_metrics=_broker_metrics_option(args), **explicit)
    if args.json:
        print_json(result.summary)
    else:
        print_summary(result.summary)
    if args.out:
        print(f"saved to {Path(args.out) / result.run_id}", file=text_out)
    return _exit_code(result.summary)


def _workload_overrides(args: argparse.Namespace) -> dict:
    """The workload fields --set, --verify, --transaction-messages and --fault give."""
    values = _yaml_values(args.set)
    if args.verify:
        values["verify"] = True
    if args.transaction_messages is not None:
        values["transaction_messages"] = args.transaction_messages
    if args.fault:
        values["faults"] = [_fault_option(text) for text in args.fault]
    return values


def _metrics_observers(args: argparse.Namespace) -> list:
    """The run's metrics endpoint of --metrics-port, if any, as a run observer."""
    if args.metrics_port is None:
        return []
    from kafkabench.observe.metrics import RunMetrics

    # Bound here, so the port it got (0: a free one) is known before the run starts.
    metrics = RunMetrics(args.metrics_port)
    print(f"serving the run's metrics on {metrics.url} while it runs", file=sys.stderr, flush=True)
    return [metrics]


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


def _yaml_values(items: list[str]) -> dict:
    """--set FIELD=VALUE values read as YAML; a duration such as 5m for a field in seconds."""
    import yaml

    from kafkabench.core.errors import ConfigError
    from kafkabench.core.units import parse_duration

    values = {}
    for key, text in pairs(items, "--set").items():
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
