"""Options and argument types shared by the commands, and how they become a client profile
and a bootstrap: the subcommand parser with examples, the client options parent parser
(--bootstrap-server, --profile, --command-config, --command-property), durations, TCP ports,
`key=value` pairs and Java properties files.

The package functions are imported inside the functions that need them: `kafkabench --help`
and shell completion then never import pandas or confluent-kafka.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kafkabench.core.errors import KafkabenchError

#: What a command runs: it gets the parsed arguments and returns the exit code (None: 0).
Handler = Callable[[argparse.Namespace], int | None]

# shtab's completion actions (shtab.FILE, shtab.DIRECTORY), without importing shtab.
#: Shell completion of a file path (`complete_path`'s default).
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
#: Shell completion of a folder path.
DIR = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}


def add_command(sub: Any, name: str, help_: str, examples: Sequence[str], *,
                parents: Sequence[argparse.ArgumentParser] = (), description: str | None = None):
    """A subcommand parser whose --help ends with examples.

    Args:
        sub: The `add_subparsers()` object the command joins.
        name: The command's name.
        help_: One line for the parent's command list; capitalised, it is the description.
        examples: Command lines shown under "example:" (or "examples:").
        parents: Parent parsers whose options the command takes (`client_options()`).
        description: The --help text above the options (default: from `help_`).

    Returns:
        The new `argparse.ArgumentParser`.
    """
    label = "examples" if len(examples) > 1 else "example"
    return sub.add_parser(name, parents=list(parents), help=help_,
                          description=description or help_[:1].upper() + help_[1:] + ".",
                          epilog=f"{label}:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def complete_path(action: argparse.Action, kind: dict[str, str] = FILE) -> argparse.Action:
    """Mark an argument as a path for shell completion.

    Args:
        action: What `add_argument` returned.
        kind: `FILE` or `DIR`.

    Returns:
        The same action.
    """
    action.complete = kind
    return action


def client_options() -> argparse.ArgumentParser:
    """The parent parser of commands that talk to a cluster: --bootstrap-server, --profile and
    client settings.

    Returns:
        A parser without --help, to pass as `parents=[...]`.
    """
    bootstrap = argparse.ArgumentParser(add_help=False)
    bootstrap.add_argument("--bootstrap-server", "--bootstrap", dest="bootstrap", metavar="HOST:PORT",
                           help="bootstrap servers, host:port[,host:port...] (default: "
                                "$KAFKABENCH_BOOTSTRAP, else the running embedded cluster)")
    client = argparse.ArgumentParser(add_help=False, parents=[bootstrap])
    complete_path(client.add_argument(
        "--profile", help="client profile: a preset name or a YAML file (kafkabench or OMB "
                          "driver-kafka format); its common settings (TLS/SASL) reach every "
                          "client (default: the default preset)"))
    complete_path(client.add_argument(
        "--command-config", metavar="FILE",
        help="client properties file (key=value lines, librdkafka names), laid over --profile"))
    client.add_argument(
        "--command-property", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="client setting(s), repeatable, laid over --command-config; security.*, sasl.*, "
             "ssl.* go to every client, producer.KEY / consumer.KEY to one role, other keys to "
             "the command's client (run, sweep, locust: the one role librdkafka accepts them "
             "for, else every client)")
    return client


def duration(text: str) -> float:
    """argparse type: a duration (`90`, `90s`, `5m`, `1h30m`) in seconds.

    Args:
        text: The option's value.

    Returns:
        Seconds.

    Raises:
        argparse.ArgumentTypeError: Not a duration (a usage error quoting the value).
    """
    from kafkabench.core.units import parse_duration

    try:
        return parse_duration(text)
    except KafkabenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_ms(text: str) -> float:
    """argparse type: a duration in seconds, a bare number being milliseconds (Kafka's tools).

    Args:
        text: The option's value: `1500` (ms), `30s`, `2m`.

    Returns:
        Seconds.

    Raises:
        argparse.ArgumentTypeError: Not a duration (a usage error quoting the value).
    """
    from kafkabench.core.units import parse_duration

    try:
        return parse_duration(text, unit="ms")
    except KafkabenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tcp_port(text: str) -> int:
    """argparse type: a TCP port, 0 (a free one) to 65535.

    Args:
        text: The option's value.

    Returns:
        The port.

    Raises:
        argparse.ArgumentTypeError: Not a whole number in range.
    """
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: give 0 (a free one) to 65535")
    return port


def pairs(items: Iterable[str], option: str) -> dict[str, str]:
    """`key=value` arguments of an option as a dict (later ones win).

    Args:
        items: The option's values.
        option: The option's name, for the error.

    Returns:
        The settings, values as text.

    Raises:
        ConfigError: An item is not `key=value`.
    """
    from kafkabench.spec.profile import parse_kv

    return dict(parse_kv(kv, option) for kv in items)


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


def client_profile(args: argparse.Namespace, role: str | None = None, *, base: Any = None,
                   files: Sequence[str | None] = (), props: Sequence[tuple[str, list[str]]] = ()):
    """--profile (else `base`) with the command's client settings laid over it.

    Properties files come first (`files`, then --command-config), then `key=value` options
    (`props`, then --command-property), each sent to its clients by `route_settings`.

    Args:
        args: The parsed arguments of a command that takes `client_options()`.
        role: "producer" or "consumer" for a command with clients of one role; None routes
            a bare key to the one role librdkafka accepts it for.
        base: The profile without --profile (default: the default preset).
        files: More properties files, before --command-config (`--producer.config`).
        props: More (option, `key=value` list) pairs, before --command-property.

    Returns:
        The `ClientProfile`.

    Raises:
        ConfigError: An unknown profile, an unreadable file or a bad setting.
    """
    from kafkabench.spec.profile import load_profile, route_settings

    settings: dict[str, str] = {}
    for path in (*files, args.command_config):
        if path:
            settings.update(read_properties(path))
    for option, values in (*props, ("--command-property", args.command_property)):
        settings.update(pairs(values, option))
    profile = load_profile(args.profile if args.profile else base)
    return profile.with_settings(**route_settings({k: _typed(v) for k, v in settings.items()}, role))


def connect(args: argparse.Namespace, profile: Any = None) -> tuple[str, dict[str, Any]]:
    """The bootstrap servers of --bootstrap-server (or the default cluster), checked to answer.

    Args:
        args: The parsed arguments of a command that takes `client_options()`.
        profile: The client profile (default: `client_profile(args)`); its common (security)
            settings are used for the check.

    Returns:
        The bootstrap servers and the profile's common settings.

    Raises:
        ClusterError: No cluster answers there within seconds.
    """
    from kafkabench.cluster.local import check_reachable, resolve_bootstrap

    profile = profile if profile is not None else client_profile(args)
    bootstrap = resolve_bootstrap(args.bootstrap)
    check_reachable(bootstrap, profile.common)
    return bootstrap, dict(profile.common)
