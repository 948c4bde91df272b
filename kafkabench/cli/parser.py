"""The top-level `kafkabench` parser (`build_parser`: every command module registers its
commands on it, in the order `kafkabench --help` lists them), `kafkabench completion`, logging
for -v, and `main`: where user mistakes (`KafkabenchError`) are caught, once, and printed
without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kafkabench import __version__
from kafkabench.cli import (
    cluster,
    lag,
    locust,
    observe,
    offsets,
    perf,
    results,
    run,
    scenario,
    sweep,
    topic,
)
from kafkabench.cli.options import add_command, client_options
from kafkabench.core.errors import KafkabenchError

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

_VERBOSE_FLAGS = {"-v": 1, "--verbose": 1, "-vv": 2, "-vvv": 3}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every kafkabench command.

    Returns:
        The parser; each command's handler is its `func` default.
    """
    parser = argparse.ArgumentParser(prog="kafkabench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kafkabench {__version__}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (also librdkafka's log): -v INFO, -vv DEBUG; "
                             "may also follow the command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    client = client_options()
    cluster.register(sub)
    topic.register(sub, client)
    run.register(sub, client)
    sweep.register(sub, client)
    locust.register(sub, client)
    perf.register(sub, client)
    lag.register(sub, client)
    offsets.register(sub, client)
    scenario.register(sub, client)
    results.register(sub)
    observe.register(sub)
    p = add_command(sub, "completion", "print a shell completion script (needs shtab)", [
        "kafkabench completion bash > ~/.local/share/bash-completion/completions/kafkabench",
        "kafkabench completion zsh > \"${fpath[1]}/_kafkabench\""])
    p.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")
    p.set_defaults(func=_cmd_completion)
    return parser


def _cmd_completion(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import InstallError

    try:
        import shtab
    except ImportError:
        raise InstallError("shell completion needs the shtab package: pip install shtab") from None
    print(shtab.complete(build_parser(), shell=args.shell))


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
    """Run one kafkabench command.

    Args:
        argv: The arguments after `kafkabench` (default: the process's).

    Returns:
        The process exit code: the command's; 2 for a usage error or a `KafkabenchError`
        (printed as one line, without a traceback); 130 for Ctrl-C.
    """
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
