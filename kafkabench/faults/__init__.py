"""Faults during a run, as an observer: `FaultObserver` carries a schedule (`kafkabench.spec.faults`)
out on the embedded cluster's nodes or with the user's commands, and `ClusterStateObserver`
samples leader and ISR each second in a sidecar.

May import: everything below `kafkabench.runner` except the other features.

The public names of the flat module `kafkabench.faults` are re-exported here.
"""

from kafkabench.cluster.nodes import (
    COMMAND_TIMEOUT_S,
    CONTROLLER_TIMEOUT_S,
    QUORUM_STATE,
    active_controller,
    find_local_cluster,
    run_command,
    start_node,
)
from kafkabench.faults.observer import COLUMNS, JOIN_TIMEOUT_S, METADATA_TIMEOUT_S, FaultObserver
from kafkabench.spec.faults import (
    ACTIONS,
    KEYS,
    TARGETS_HELP,
    UNDO,
    Fault,
    FaultSchedule,
    Target,
    command_for,
    parse_faults,
    parse_target,
)

__all__ = [
    "ACTIONS", "COLUMNS", "COMMAND_TIMEOUT_S", "CONTROLLER_TIMEOUT_S", "JOIN_TIMEOUT_S", "KEYS",
    "METADATA_TIMEOUT_S", "QUORUM_STATE", "TARGETS_HELP", "UNDO", "Fault", "FaultObserver", "FaultSchedule", "Target",
    "active_controller", "command_for", "find_local_cluster", "parse_faults", "parse_target",
    "run_command", "start_node",
]
