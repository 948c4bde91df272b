"""`kafkabench topic create | describe | list | delete`: topics, as kafka-topics.sh manages them
(`kafkabench.cluster.admin`).
"""

from __future__ import annotations

import argparse
from typing import Any

from kafkabench.cli.options import add_command, connect, pairs


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `topic` command and its actions.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    topic = add_command(sub, "topic", "create, describe, list, delete topics",
                        ["kafkabench topic list --bootstrap-server localhost:9092"]
                        ).add_subparsers(dest="action", required=True)
    p = add_command(topic, "create", "create a topic and wait for its partition leaders",
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
    p = add_command(topic, "describe", "partitions of a topic with leader, replicas and in-sync replicas",
                    ["kafkabench topic describe orders"], parents=[client])
    p.add_argument("topic", help="topic name")
    p.set_defaults(func=_cmd_topic_describe)
    p = add_command(topic, "list", "names of the topics (internal ones left out)",
                    ["kafkabench topic list --profile secure.yaml"], parents=[client])
    p.set_defaults(func=_cmd_topic_list)
    p = add_command(topic, "delete", "delete topics (a missing one is not an error)",
                    ["kafkabench topic delete orders payments"], parents=[client])
    p.add_argument("topic", nargs="+", help="topic names")
    p.set_defaults(func=_cmd_topic_delete)


def _cmd_topic_create(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import create_topic

    bootstrap, conf = connect(args)
    # -1: the cluster's default.replication.factor, as kafka-topics.sh does.
    rf = args.replication_factor if args.replication_factor is not None else -1
    create_topic(bootstrap, args.topic, args.partitions, rf, pairs(args.config, "--config"),
                 conf=conf, exist_ok=args.if_not_exists)
    print(f"topic {args.topic!r} created")


def _cmd_topic_describe(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import describe_topic

    bootstrap, conf = connect(args)
    print(describe_topic(bootstrap, args.topic, conf=conf).to_string(index=False))


def _cmd_topic_delete(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import delete_topics

    bootstrap, conf = connect(args)
    delete_topics(bootstrap, args.topic, conf=conf)
    print(f"deleted {', '.join(args.topic)}")


def _cmd_topic_list(args: argparse.Namespace) -> None:
    from kafkabench.cluster.admin import list_topics

    bootstrap, conf = connect(args)
    print("\n".join(list_topics(bootstrap, conf=conf)))
