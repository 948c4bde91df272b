"""What a fault schedule is: `Fault`s (kill, stop, pause and restart brokers at set times of a
run), their targets, and `parse_faults`, which refuses a bad schedule before anything runs.

A workload holds its schedule parsed once (`Workload.faults`, a `FaultSchedule`); the run
checks it against the cluster (`parse_faults(workload.faults, node_ids=...)`) without
parsing it again. `kafkabench.faults` carries a schedule out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from kafkabench.core.checks import number
from kafkabench.core.errors import ConfigError

ACTIONS: tuple[str, ...] = ("kill", "stop", "start", "pause", "resume", "restart", "rolling_restart")


KEYS: tuple[str, ...] = ("at_s", "action", "target", "duration_s", "command")


#: The action that undoes each one that may have a `duration_s`.
UNDO: dict[str, str] = {"kill": "start", "stop": "start", "pause": "resume"}


#: The actions after which a node is down or paused, by the action that brings it back.
_TAKES_DOWN = {"start": ("kill", "stop"), "resume": ("pause",)}


TARGETS_HELP = ("a node id (e.g. 2), 'leader' (partition 0 of the run's first topic), "
                "'leader:PARTITION', 'leader:TOPIC:PARTITION', 'controller' or 'any'")


# Kafka topic names: letters, digits, '.', '_' and '-' (so ':' separates the target's parts).
_TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")

_SECONDS = number(noun="a number of seconds")
_EXAMPLE = "{at_s: 10, action: kill, target: leader, duration_s: 5}"


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled action on a broker.

    Attributes:
        at_s: Seconds after the producers start (t = 0 of the run).
        action: kill (SIGKILL), stop (clean shutdown), start, pause (SIGSTOP), resume
            (SIGCONT), restart (clean stop, then start) or rolling_restart (every node in
            turn, waiting for the in-sync replicas to refill).
        target: A node id, or a role resolved when the fault fires: `leader` (partition 0
            of the run's first topic), `leader:PARTITION`, `leader:TOPIC:PARTITION`,
            `controller` (the active KRaft controller) or `any` (a random live node).
            For start and resume, a role means the node an earlier kill/stop (pause) of
            the same target took down. None for rolling_restart.
        duration_s: For kill and stop: start the node again after this long; for pause:
            resume it after this long.
        command: A shell command carrying the action out on a cluster kafkabench did not
            start; `{node}` and `{action}` are replaced by the node id and the action.
    """

    at_s: float
    action: str
    target: int | str | None = None
    duration_s: float | None = None
    command: str | None = None

    @property
    def undo(self) -> str | None:
        """The action run `duration_s` after this one (None: none)."""
        return UNDO.get(self.action) if self.duration_s is not None else None

    @property
    def target_text(self) -> str:
        """The target as the user wrote it ("" for none)."""
        return "" if self.target is None else str(self.target)


class FaultSchedule(tuple):
    """Faults as `parse_faults` returns them: parsed and checked, in the order given (a fault's
    index is its id in the `faults` frame).

    `parse_faults` does not parse a schedule again: given one, it applies only the checks its
    keyword arguments ask for (the run's length, the cluster's nodes, an external cluster's
    commands). Only `parse_faults` makes them.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed fault target: kind 'node', 'leader', 'controller' or 'any'."""

    kind: str
    node: int | None = None
    topic: str | None = None
    partition: int = 0


def parse_target(target: int | str) -> Target:
    """Parse a fault target (see `Fault.target`).

    Raises:
        ValueError: not a target (the caller names the fault).
    """
    if isinstance(target, int) and not isinstance(target, bool):
        return Target("node", node=target)
    if not isinstance(target, str):
        raise ValueError(target)
    text = target.strip()
    if text.isdigit():
        return Target("node", node=int(text))
    if text in ("controller", "any", "leader"):
        return Target(text)
    parts = text.split(":")
    if parts[0] == "leader" and parts[-1].isdigit():
        if len(parts) == 2:
            return Target("leader", partition=int(parts[1]))
        if len(parts) == 3 and _TOPIC.match(parts[1]):
            return Target("leader", topic=parts[1], partition=int(parts[2]))
    raise ValueError(target)


def parse_faults(items: Iterable[Mapping[str, Any] | Fault] | None, *, run_s: float | None = None,
                 node_ids: Iterable[int] | None = None, external: bool = False,
                 commands: Mapping[str, str] | None = None) -> FaultSchedule:
    """Validate a fault schedule; pure, no broker.

    Args:
        items: Faults as mappings (keys at_s, action, target, duration_s, command, as in a
            workload YAML) or `Fault`s; or a `FaultSchedule` (e.g. `Workload.faults`), which is
            not parsed again, only checked against the other arguments.
        run_s: The run's length (warm-up + duration): every fault, with its duration, must
            end within it. None: not checked.
        node_ids: The cluster's node ids: a node target must be one. None: not checked.
        external: The cluster is not kafkabench's embedded one: every action needs a shell
            command (the fault's own, or one in `commands`).
        commands: Workload-level shell commands by action (`fault_commands`).

    Returns:
        The faults, in the order given (a fault's index in it is its id in the `faults` frame).

    Raises:
        ConfigError: naming the fault (its index and key) and how to fix it.
    """
    commands = _check_commands(commands)
    if items is None:
        return FaultSchedule()
    fits = partial(_fits, nodes=None if node_ids is None else sorted(node_ids), run_s=run_s)
    if isinstance(items, FaultSchedule):
        faults = items
        for i, fault in enumerate(faults):
            fits(i, fault)
    else:
        faults = _parse_schedule(items, fits)
    if external:
        for i, fault in enumerate(faults):
            _check_external(i, fault, commands)
    return faults


def _parse_schedule(items: Any, fits: Callable[[int, Fault], Fault]) -> FaultSchedule:
    """Each fault parsed and checked with `fits`, then the rules between the faults."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ConfigError(f"faults={items!r}: expected a list of faults, each like {_EXAMPLE}")
    faults = FaultSchedule(fits(i, _parse_fault(i, item)) for i, item in enumerate(items))
    _check_role_undo(faults)
    return faults


def _fits(i: int, fault: Fault, *, nodes: list[int] | None, run_s: float | None) -> Fault:
    """The fault, if it fits the cluster's `nodes` and a run of `run_s` (None: any)."""
    if nodes is not None and isinstance(fault.target, int) and fault.target not in nodes:
        raise ConfigError(f"faults[{i}].target={fault.target!r}: the cluster has no node "
                          f"{fault.target}; its nodes are {nodes}")
    if run_s is not None and fault.at_s + (fault.duration_s or 0.0) > run_s:
        what = f"at_s={fault.at_s:g}" + (f" + duration_s={fault.duration_s:g}"
                                         if fault.duration_s else "")
        raise ConfigError(f"faults[{i}]: {what} ends after the run ({run_s:g} s of warm-up and "
                          "duration): schedule it earlier or make the run longer")
    return fault


def _check_commands(commands: Mapping[str, str] | None) -> dict[str, str]:
    if commands is None:
        return {}
    if not isinstance(commands, Mapping):
        raise ConfigError(f"fault_commands={commands!r}: expected a mapping of fault actions to "
                          "shell commands, e.g. {kill: 'ssh kafka{node} pkill -9 java'}")
    for action, cmd in commands.items():
        if action not in ACTIONS:
            raise ConfigError(f"fault_commands[{action!r}]: not a fault action; use one of "
                              f"{', '.join(ACTIONS)}")
        if not isinstance(cmd, str) or not cmd.strip():
            raise ConfigError(f"fault_commands[{action!r}]={cmd!r}: expected a shell command "
                              "(a non-empty string; {node} and {action} are replaced)")
    return dict(commands)


def _parse_fault(i: int, item: Mapping[str, Any] | Fault) -> Fault:
    where = f"faults[{i}]"
    item = _fault_mapping(where, item)
    action = item.get("action")
    if action not in ACTIONS:
        raise ConfigError(f"{where}.action={action!r}: not a fault action; use one of "
                          f"{', '.join(ACTIONS)}")
    at_s = _SECONDS(f"{where}.at_s", item.get("at_s"))
    duration_s = item.get("duration_s")
    duration_s = None if duration_s is None else _SECONDS(f"{where}.duration_s", duration_s)
    target = _target(where, action, item.get("target"))
    if at_s < 0:
        raise ConfigError(f"{where}.at_s={at_s!r}: must be >= 0 (seconds after the producers start)")
    _check_duration(where, action, duration_s)
    return Fault(at_s=at_s, action=action, target=target, duration_s=duration_s,
                 command=_command(where, item.get("command")))


def _fault_mapping(where: str, item: Any) -> Mapping[str, Any]:
    """A fault as a mapping of known keys."""
    if isinstance(item, Fault):
        item = asdict(item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}={item!r}: expected a mapping like {_EXAMPLE}")
    unknown = [k for k in item if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; a fault has the keys "
                          f"{', '.join(KEYS)}")
    return item


def _check_duration(where: str, action: str, duration_s: float | None) -> None:
    if duration_s is None:
        return
    if action not in UNDO:
        raise ConfigError(f"{where}.duration_s: only kill, stop (then start) and pause "
                          f"(then resume) take a duration, not {action!r}; remove it")
    if duration_s <= 0:
        raise ConfigError(f"{where}.duration_s={duration_s!r}: must be > 0 seconds")


def _command(where: str, command: Any) -> str | None:
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ConfigError(f"{where}.command={command!r}: expected a shell command "
                          "(a non-empty string; {node} and {action} are replaced)")
    return command


def _target(where: str, action: str, target: Any) -> int | str | None:
    """A node id, a role as written (stripped), or None for rolling_restart."""
    if action == "rolling_restart":
        if target is not None:
            raise ConfigError(f"{where}.target={target!r}: rolling_restart restarts every node "
                              "in turn and takes no target; remove it")
        return None
    if target is None:
        raise ConfigError(f"{where}: {action} needs a target: {TARGETS_HELP}")
    try:
        parsed = parse_target(target)
    except ValueError:
        raise ConfigError(f"{where}.target={target!r}: not a target; use {TARGETS_HELP}") from None
    return parsed.node if parsed.kind == "node" else target.strip()


def _check_role_undo(faults: tuple[Fault, ...]) -> None:
    """A start (resume) on a role target needs an earlier kill/stop (pause) of that target."""
    order = sorted(range(len(faults)), key=lambda i: faults[i].at_s)
    for pos, i in enumerate(order):
        f = faults[i]
        if f.action not in _TAKES_DOWN or not isinstance(f.target, str):
            continue
        earlier = [faults[j] for j in order[:pos]]
        if not any(e.action in _TAKES_DOWN[f.action] and e.target == f.target and e.duration_s is None
                   for e in earlier):
            raise ConfigError(
                f"faults[{i}].target={f.target!r}: {f.action} on a role means the node an earlier "
                f"{' or '.join(_TAKES_DOWN[f.action])} of {f.target!r} (without duration_s) took "
                f"down, and there is none; name a node id, or schedule that fault first")


def _check_external(i: int, f: Fault, commands: Mapping[str, str]) -> None:
    where = f"faults[{i}]"
    if f.target == "controller" and not f.command:
        raise ConfigError(
            f"{where}.target='controller': kafkabench finds the active controller only on its "
            "embedded cluster; on this cluster give the fault its own `command` that acts on "
            "the controller ({node} is replaced by 'controller'), or name the node id")
    for action in filter(None, (f.action, f.undo)):
        if command_for(f, action, commands) is None:
            raise ConfigError(
                f"{where}.command: {action} on a cluster kafkabench did not start needs a shell "
                f"command: add `command: \"...{{node}}...\"` to the fault"
                + (" (with {action}, so it also serves the start/resume after duration_s)"
                   if action != f.action else "")
                + f", or a fault_commands entry for {action!r} to the workload")


def command_for(fault: Fault, action: str, commands: Mapping[str, str]) -> str | None:
    """The shell command for `action` of `fault` (or its undo), or None for node control.

    The fault's own command serves its action, and the undo too when it uses `{action}`;
    otherwise the workload-level command for the action (`restart` for rolling_restart).
    """
    own = fault.command
    if own and (action == fault.action or "{action}" in own or fault.action == "rolling_restart"):
        return own
    if fault.action == "rolling_restart":
        return commands.get("rolling_restart") or commands.get("restart")
    return commands.get(action)


