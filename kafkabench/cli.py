"""The `kafkabench` command: parses arguments and calls one package function per action.

User mistakes (`KafkabenchError`) are caught once, here, and printed without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence

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


def _cmd_topic_create(args: argparse.Namespace) -> None:
    from kafkabench.admin import create_topic
    from kafkabench.cluster import resolve_bootstrap

    config = dict(_parse_kv(kv) for kv in args.config)
    create_topic(resolve_bootstrap(args.bootstrap), args.topic, args.partitions,
                 args.replication_factor, config, exist_ok=args.if_not_exists)
    print(f"topic {args.topic!r} created")


def _cmd_topic_describe(args: argparse.Namespace) -> None:
    from kafkabench.admin import describe_topic
    from kafkabench.cluster import resolve_bootstrap

    print(describe_topic(resolve_bootstrap(args.bootstrap), args.topic).to_string(index=False))


def _cmd_topic_delete(args: argparse.Namespace) -> None:
    from kafkabench.admin import delete_topics
    from kafkabench.cluster import resolve_bootstrap

    delete_topics(resolve_bootstrap(args.bootstrap), args.topic)
    print(f"deleted {', '.join(args.topic)}")


def _cmd_topic_list(args: argparse.Namespace) -> None:
    from kafkabench.admin import list_topics
    from kafkabench.cluster import resolve_bootstrap

    print("\n".join(list_topics(resolve_bootstrap(args.bootstrap))))


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one kafkabench command; returns the process exit code."""
    args = build_parser().parse_args(argv)
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
