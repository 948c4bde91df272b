"""`kafkabench observe up | add | status | down`: a Prometheus server scraping the brokers and
kafkabench's own endpoints, with alert rules (`kafkabench.observe.prometheus`).
"""

from __future__ import annotations

import argparse
from typing import Any

from kafkabench.cli.options import add_command, tcp_port


def register(sub: Any) -> None:
    """Add the `observe` command and its actions.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
    """
    observe = add_command(sub, "observe", "a Prometheus server scraping the brokers and kafkabench, "
                          "with alert rules", ["kafkabench observe up --client 127.0.0.1:9464",
                                               "kafkabench observe status", "kafkabench observe down"]
                          ).add_subparsers(dest="action", required=True)
    p = add_command(observe, "up", "start Prometheus (Debian's `prometheus`: `make observe` installs it)", [
        "kafkabench observe up", "kafkabench run workloads/quickstart.yaml --metrics-port 9464",
        "kafkabench observe up --broker broker1:9404 --client 127.0.0.1:9308 --lag-threshold 5000"])
    p.add_argument("--port", type=tcp_port, help="its HTTP port on 127.0.0.1 (default: 9090, else a free one)")
    p.add_argument("--broker", action="append", metavar="HOST:PORT",
                   help="a broker's JMX exporter, repeatable (default: the embedded cluster's)")
    p.add_argument("--client", action="append", default=[], metavar="HOST:PORT",
                   help="a kafkabench endpoint (run --metrics-port, lag --metrics-port), repeatable")
    p.add_argument("--lag-threshold", type=float, default=10000,
                   help="KafkaConsumerLagHigh fires above this many messages (default: %(default)g)")
    p.set_defaults(func=_cmd_observe_up)
    p = add_command(observe, "add", "add scrape targets to the running Prometheus",
                    ["kafkabench observe add --client 127.0.0.1:9464"])
    p.add_argument("--broker", action="append", default=[], metavar="HOST:PORT", help="a broker's exporter")
    p.add_argument("--client", action="append", default=[], metavar="HOST:PORT", help="a kafkabench endpoint")
    p.set_defaults(func=_cmd_observe_add)
    p = add_command(observe, "status", "the running Prometheus and each target's health",
                    ["kafkabench observe status"])
    p.set_defaults(func=_cmd_observe_status)
    p = add_command(observe, "down", "stop it (its data stays)", ["kafkabench observe down"])
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
    """The Prometheus server's address, files and scrape targets."""
    print(f"Prometheus {state.url} (pid {state.pid}), rules {state.rules_file}, log {state.log_file}")
    for job, targets in state.targets.items():
        print(f"  scrapes {job}: {', '.join(targets) or '(none)'}")
