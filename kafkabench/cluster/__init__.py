"""The cluster and kafkabench's clients of it: the embedded KRaft cluster (`local`), its Kafka
distribution (`install`), node control (`nodes`), topic and group admin (`admin`), group
offsets (`offsets`), and the samplers that watch a cluster: lag (`lag`, with
`IsolatedLagSampler` in a supervised child process) and partition metadata (`metadata`).

May import: `kafkabench.core`, `kafkabench.spec`, `kafkabench.measure`.

The public names of the flat module `kafkabench.cluster` are re-exported here.
"""

from kafkabench.cluster.local import (
    DEFAULT_NAME,
    JMX_RULES,
    LOCK_FILE,
    LOCK_WAIT_S,
    OFFSETS_TOPIC,
    REACHABLE_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    STATE_FILE,
    STOP_TIMEOUT_S,
    LocalCluster,
    Node,
    NodeStatus,
    check_reachable,
    clusters_home,
    resolve_bootstrap,
)
from kafkabench.core.log import LIBRDKAFKA_LOG, librdkafka_logger

__all__ = [
    "DEFAULT_NAME", "JMX_RULES", "LIBRDKAFKA_LOG", "LOCK_FILE", "LOCK_WAIT_S", "OFFSETS_TOPIC",
    "REACHABLE_TIMEOUT_S", "STARTUP_TIMEOUT_S", "STATE_FILE", "STOP_TIMEOUT_S", "LocalCluster", "Node",
    "NodeStatus", "check_reachable", "clusters_home", "librdkafka_logger", "resolve_bootstrap",
]
