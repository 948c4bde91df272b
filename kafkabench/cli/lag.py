"""`kafkabench lag`: the lag of any consumer group, in messages and seconds with Burrow-style
statuses, sampled (`kafkabench.cluster.lag.IsolatedLagSampler`) and printed as a table, JSON
lines or CSV; or served for Prometheus with kafka-lag-exporter's metric names
(`kafkabench.observe.metrics.serve_lag`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from kafkabench.cli.options import add_command, connect, duration, tcp_port
from kafkabench.cli.output import print_json


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `lag` command.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    p = add_command(sub, "lag", "consumer lag (messages, seconds, Burrow status) of any group", [
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
    p.add_argument("--interval", type=duration, metavar="DURATION", default="2s",
                   help="time between samples: 2, 2s, 1m (default: %(default)s)")
    p.add_argument("--duration", type=duration, metavar="DURATION",
                   help="stop after this long, e.g. 10m (default: until Ctrl-C)")
    p.add_argument("--once", action="store_true", help="one sample, then exit")
    p.add_argument("--samples", type=int, help="stop after this many samples (default: until Ctrl-C)")
    p.add_argument("--window", type=int, default=10,
                   help="samples in the Burrow status window; statuses are OK until it is full "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=duration, metavar="DURATION", default="5s",
                   help="time allowed for each request (default: %(default)s)")
    p.add_argument("--metrics-port", type=tcp_port, metavar="PORT",
                   help="serve the lag for Prometheus on this port instead of printing it, with "
                        "kafka-lag-exporter's metric names (0: a free one)")
    p.set_defaults(func=_cmd_lag)


def _cmd_lag(args: argparse.Namespace) -> int:
    from kafkabench.cluster.lag import IsolatedLagSampler
    from kafkabench.core.errors import ClusterError, ConfigError

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples {args.samples!r}: give 1 or more (or leave it out)")
    bootstrap, conf = connect(args)
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
    """The consumer groups of the cluster (--all-groups)."""
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
    """The partition rows of a sample as a table, then the groups' statuses."""
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
    import pandas as pd  # deferred: not imported at `kafkabench --help`

    when = frame["time"].max() if len(frame) else pd.Timestamp.now(tz="UTC")
    print_json({"time": when, "sample": samples, "window_full": samples >= window,
                "group_status": status, "partitions": frame.to_dict("records")})


def _show_lag_csv(frame: Any, status: dict[str, str], samples: int, window: int) -> None:
    """The partition rows of every sample as CSV, with one header line."""
    print(frame.to_csv(index=False, header=samples == 1), end="", flush=True)


_LAG_PRINTERS = {"table": _show_lag_table, "json": _show_lag_json, "csv": _show_lag_csv}
