"""`kafkabench kafka install` and `kafkabench cluster up | status | down | stop | kill | start |
pause | resume`: the Apache Kafka distribution and the embedded KRaft cluster on this machine
(`kafkabench.cluster.install`, `kafkabench.cluster.local.LocalCluster`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from kafkabench import KAFKA_VERSION
from kafkabench.cli.options import Handler, add_command


def register(sub: Any) -> None:
    """Add the `kafka` and `cluster` commands.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
    """
    kafka = add_command(sub, "kafka", "the Apache Kafka distribution (jars for the embedded cluster)",
                        ["kafkabench kafka install"]).add_subparsers(dest="action", required=True)
    p = add_command(kafka, "install", f"fetch Apache Kafka (default {KAFKA_VERSION}) into the cache",
                    ["kafkabench kafka install", f"kafkabench kafka install --version {KAFKA_VERSION}"])
    p.add_argument("--version", default=KAFKA_VERSION, help="Kafka version (default: %(default)s)")
    p.set_defaults(func=_cmd_kafka_install)

    cluster = add_command(sub, "cluster", "the embedded KRaft cluster on this machine",
                          ["kafkabench cluster up --brokers 3", "kafkabench cluster status"]
                          ).add_subparsers(dest="action", required=True)
    name_opt = argparse.ArgumentParser(add_help=False)
    name_opt.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
    p = add_command(cluster, "up", "start a cluster in the background", [
        "kafkabench cluster up", "kafkabench cluster up --brokers 3 --heap 1g"], parents=[name_opt])
    p.add_argument("--brokers", type=int, choices=(1, 3), default=1,
                   help="number of KRaft nodes, each broker and controller (default: %(default)s)")
    p.add_argument("--port", type=int, action="append",
                   help="fixed client port, repeat once per broker (default: free ports)")
    p.add_argument("--heap", help="JVM heap per broker, e.g. 1g (default: Kafka's)")
    p.set_defaults(func=_cmd_cluster_up)
    p = add_command(cluster, "status", "show each node: pid, ports, state, role",
                    ["kafkabench cluster status --json"], parents=[name_opt])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_cluster_status)
    p = add_command(cluster, "down", "stop the cluster", ["kafkabench cluster down --purge"],
                    parents=[name_opt])
    p.add_argument("--purge", action="store_true", help="also delete its data and logs")
    p.set_defaults(func=_cmd_cluster_down)
    for action, text in (("stop", "clean shutdown of one node (SIGTERM)"),
                         ("kill", "hard kill of one node (SIGKILL)"),
                         ("start", "restart a stopped node"),
                         ("pause", "freeze a node (SIGSTOP)"), ("resume", "unfreeze a node (SIGCONT)")):
        p = add_command(cluster, action, text, [f"kafkabench cluster {action} 2"], parents=[name_opt])
        p.add_argument("node", type=int, help="node id (1-based, as `cluster status` shows)")
        p.set_defaults(func=_node_action(action))


def _cmd_kafka_install(args: argparse.Namespace) -> None:
    from kafkabench.cluster.install import install_kafka

    dist = install_kafka(args.version, retry_agent=True)
    print(f"Apache Kafka {dist.version} from {dist.source}")
    print(f"jars: {dist.libs} ({dist.size_bytes / 1e6:.1f} MB)")
    print(f"java: {dist.java.path} ({dist.java.version})")
    print(f"broker metrics agent: {dist.jmx_agent}" if dist.jmx_agent else
          "broker metrics agent: not fetched (brokers run without a Prometheus endpoint)")


def _cluster(args: argparse.Namespace):
    """The running embedded cluster named by --name."""
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
    """The handler of `cluster ACTION NODE`: calls `LocalCluster.<action>(node)`."""
    def handler(args: argparse.Namespace) -> None:
        cluster = _cluster(args)
        getattr(cluster, action)(args.node)
        print(f"node {args.node}: {action} done")
    return handler
