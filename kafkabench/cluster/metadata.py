"""`MetadataProbe`: leader and ISR of every partition of the run's topics, read with Metadata
requests only (never a coordinator request, see docs/librdkafka-coordinator-abort.md). It runs
in a supervised child process (`kafkabench.core.sidecar.Sidecar`) for the cluster-state sampler,
so a librdkafka abort costs a sample, not the run.

May import: `kafkabench.core`, `kafkabench.cluster.admin`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError

from kafkabench.cluster.admin import admin_client, describe_topics
from kafkabench.core.errors import ClusterError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient



class MetadataProbe:
    """Leader and ISR of every partition of some topics, from Metadata requests: one sample.

    A sample that fails (no broker answered in time) is a row with the error, never an
    exception; the admin client is made anew after it, because a client that saw its broker
    die can stay stuck on it.

    Args:
        bootstrap: bootstrap servers.
        topics: the topics.
        conf: extra client settings (security).
        timeout_s: how long one whole sample (every topic) may take.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], conf: Mapping[str, Any] | None = None,
                 timeout_s: float = 2.0):
        self.bootstrap, self.topics = bootstrap, sorted(set(topics))
        self.conf, self.timeout_s = dict(conf or {}), timeout_s
        self._admin: AdminClient | None = None

    def sample(self) -> list[tuple]:
        """One row per partition, or one error row: (unix time, topic, partition, leader,
        replicas, isr size, error)."""
        wall = time.time()
        try:
            rows = self._sample(wall)
        except Exception as exc:  # noqa: BLE001 - a failed sample is data, not a crash
            reason = exc.args[0] if isinstance(exc, ClusterError) and exc.args else repr(exc)
            rows = [(wall, "", -1, -1, 0, 0, f"no metadata from {self.bootstrap}: {reason}")]
        if any(r[6] for r in rows):
            self._admin = None  # a fresh client for the next sample
        return rows

    def _sample(self, wall: float) -> list[tuple]:
        if self._admin is None:
            self._admin = admin_client(self.bootstrap, self.conf)
        deadline = time.monotonic() + self.timeout_s
        rows = []
        for topic in self.topics:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterError(f"no answer within {self.timeout_s} s")
            found = describe_topics(self._admin, [topic], remaining)[topic]
            if isinstance(found, KafkaError):
                rows.append((wall, topic, -1, -1, 0, 0, f"topic {topic!r}: {found.str()}"))
                continue
            rows.extend((wall, topic, p.partition, p.leader, len(p.replicas), len(p.isr), "")
                        for p in found)
        return rows


