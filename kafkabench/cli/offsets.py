"""`kafkabench offsets show | reset`: a consumer group's committed offsets, shown and moved as
kafka-consumer-groups --describe / --reset-offsets do (`kafkabench.cluster.offsets`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kafkabench.cli.options import add_command, connect, duration
from kafkabench.cli.output import print_json

# kafka-consumer-groups --describe's columns, plus the log start offset.
_SHOW_COLUMNS = {"group": "GROUP", "topic": "TOPIC", "partition": "PARTITION", "committed": "CURRENT-OFFSET",
                 "log_start": "LOG-START-OFFSET", "log_end": "LOG-END-OFFSET", "lag": "LAG",
                 "member": "CONSUMER-ID", "host": "HOST", "client_id": "CLIENT-ID"}
_RESET_COLUMNS = {"group": "GROUP", "topic": "TOPIC", "partition": "PARTITION", "current": "CURRENT-OFFSET",
                  "new": "NEW-OFFSET"}


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `offsets` command and its actions.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    offsets = add_command(sub, "offsets", "show and reset consumer group offsets (kafka-consumer-groups)", [
        "kafkabench offsets show --group orders-app",
        "kafkabench offsets reset --group orders-app --to-datetime 2026-03-01T12:00:00Z --execute"]
        ).add_subparsers(dest="action", required=True)
    p = add_command(offsets, "show", "committed offset, log start and end, lag and owner of each "
                                     "partition of a group (kafka-consumer-groups --describe)", [
        "kafkabench offsets show --group orders-app",
        "kafkabench offsets show --group orders-app --topic orders --json"], parents=[client])
    p.add_argument("--group", required=True, help="consumer group (classic or KIP-848 consumer protocol)")
    p.add_argument("--topic", action="append", metavar="TOPIC[:P[,P]]",
                   help="only this topic (or these partitions), repeatable; every partition of it "
                        "is listed (default: the partitions the group committed or owns)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_offsets_show)
    p = add_command(offsets, "reset", "move a group's committed offsets (a dry run unless --execute; "
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
    spec.add_argument("--by-duration", type=duration, metavar="DURATION",
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


def _cmd_offsets_show(args: argparse.Namespace) -> None:
    from kafkabench.cluster.offsets import show

    bootstrap, conf = connect(args)
    frame = show(args.group, bootstrap=bootstrap, conf=conf, topics=args.topic)
    state, members = frame.attrs["state"], frame.attrs["members"]
    if args.json:
        print_json({"group": args.group, "state": state, "protocol": frame.attrs["protocol"],
                    "members": members, "partitions": frame.to_dict("records")})
        return
    table = frame[list(_SHOW_COLUMNS)].replace("", "-")
    table = table.astype(object).where(table.notna(), "-").rename(columns=_SHOW_COLUMNS)  # <NA> -> "-"
    print(table.to_string(index=False) if len(table) else "(no partitions)")
    print(f"consumer group {args.group!r} ({frame.attrs['protocol']} protocol): {state}, "
          + (f"{members} active member(s)" if members else "no active members"))


def _cmd_offsets_reset(args: argparse.Namespace) -> None:
    from kafkabench.cluster.offsets import SPEC_KINDS, parse_datetime, reset

    if args.to_datetime is not None:
        parse_datetime(args.to_datetime, "--to-datetime")  # the error names the option
    # `is not`: --to-offset 0 and --shift-by 0 are values (0 == False).
    spec = {k: v for k in SPEC_KINDS if (v := getattr(args, k)) is not None and v is not False}
    bootstrap, conf = connect(args)
    plan = reset(args.group, spec, topics=args.topic, bootstrap=bootstrap, conf=conf,
                 execute=args.execute)
    done = (f"offsets of group {args.group!r} reset on {len(plan)} partition(s)" if args.execute else
            "dry run: nothing changed; add --execute to commit these offsets (the group must "
            "have no active members)")
    if args.json:
        print_json({"group": args.group, "spec": plan.attrs["spec"], "executed": args.execute,
                    "partitions": plan.to_dict("records")})
        print(done, file=sys.stderr)
        return
    table = plan[list(_RESET_COLUMNS)]
    print(table.astype(object).where(table.notna(), "-").rename(columns=_RESET_COLUMNS).to_string(index=False))
    print(done)
