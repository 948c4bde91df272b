"""`kafkabench locust LOCUSTFILE`: a Locust file run headless in a child process
(`kafkabench.loadtest.locust_results.run_locust`), its result saved like any other run.

This module never imports locust (it monkey-patches the process that imports it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kafkabench.cli.options import (
    DIR,
    add_command,
    complete_path,
    duration,
    pairs,
    read_properties,
    tcp_port,
)
from kafkabench.cli.output import print_summary


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `locust` command.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    p = add_command(sub, "locust", "run a locustfile headless, save its result like any other run",
                    ["kafkabench locust producer_load -u 10 -r 5 -t 5m --rate 1000"], parents=[client])
    complete_path(p.add_argument("locustfile", help="a path, or producer_load / consumer_load / mixed"))
    p.add_argument("-u", "--users", type=int, default=5, help="peak users (default: %(default)s)")
    p.add_argument("-r", "--spawn-rate", type=float, default=5.0,
                   help="users started per second (default: %(default)s)")
    p.add_argument("-t", "--run-time", type=duration, metavar="DURATION", default="60s",
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
    complete_path(p.add_argument("--processing", metavar="FILE.yaml",
                                 help="processing stage of the consumer users: a YAML mapping of "
                                      "kafkabench.processing.Processing fields (time_ms, poison_fraction, "
                                      "retry, filter_fraction, ...) (default: the locustfile's, if any)"))
    complete_path(p.add_argument("--out", default="results",
                                 help="results folder (default: %(default)s; '' saves nothing)"), DIR)
    p.add_argument("--metrics-port", type=tcp_port, metavar="PORT",
                   help="serve the run's live metrics (Locust's counts and latencies, the group's "
                        "lag) for Prometheus on this port (0: a free one)")
    p.set_defaults(func=_cmd_locust)


def _cmd_locust(args: argparse.Namespace) -> int:
    from kafkabench.loadtest.locust_results import run_locust
    from kafkabench.results.store import save

    conf = read_properties(args.command_config) if args.command_config else {}
    conf.update(pairs(args.command_property, "--command-property"))
    conf.update(pairs(args.conf, "--conf"))
    run = run_locust(args.locustfile, users=args.users, spawn_rate=args.spawn_rate,
                     run_time_s=args.run_time, bootstrap=args.bootstrap, topic=args.topic,
                     group=args.group, profile=args.profile, conf=conf,
                     rate=args.rate, shape=args.shape, workers=args.workers,
                     out_dir=Path(args.out) / "locust" if args.out else None,
                     processing=args.processing, metrics_port=args.metrics_port)
    print_summary(run.result.summary)
    print(f"Locust CSV files: {run.csv_prefix}_*.csv (exit code {run.exit_code})")
    if args.out:
        print(f"saved to {save(run.result, args.out)}")
    return run.exit_code
