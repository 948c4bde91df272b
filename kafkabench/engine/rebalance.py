"""A consumer-group member's rebalance listener: confluent-kafka's `on_assign`, `on_revoke`
and `on_lost` callbacks, as methods of one class (the rebalance listener of the design
source; confluent-kafka's `tests/kafkatest/verifiable_consumer.py`).

May import: `kafkabench.engine.workers`, `kafkabench.engine.commits`.
"""

from __future__ import annotations

import time
from typing import Any

from kafkabench.engine.commits import CommitPolicy
from kafkabench.engine.workers import Control, Report


class RebalanceListener:
    """What a member does when partitions come and go, and the report of each event.

    Partitions revoked or lost are the batch handler's to let go of first (a processing
    stage forgets their paused retry partitions and aborts its open transaction); on revoke
    the commit policy then commits what was consumed. Each event is a row in `events` and a
    "rebalance" report.

    Args:
        worker: the member's name.
        group: its consumer group.
        ctl: its `Control` (the report channel).
        policy: its commit policy.
        handler: its batch handler (`kafkabench.engine.batches`).

    Attributes:
        events: every event so far: wall, group, member, event ("assign", "revoke" or
            "lost"), partitions ("topic:partition,..."), count.
    """

    def __init__(self, worker: str, group: str, ctl: Control, policy: CommitPolicy,
                 handler: Any):
        self.worker, self.group, self.ctl = worker, group, ctl
        self.policy, self.handler = policy, handler
        self.events: list[dict[str, Any]] = []

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions assigned: reported."""
        self._report("assign", partitions)

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions revoked: the handler lets go, the policy commits, reported."""
        self.handler.revoked(consumer, partitions)
        self.policy.revoked()
        self._report("revoke", partitions)

    def on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions lost (the member was fenced): the handler lets go, nothing is
        committed (they are another member's already), reported."""
        self.handler.revoked(consumer, partitions)
        self._report("lost", partitions)

    def _report(self, event: str, partitions: list[Any]) -> None:
        parts = sorted(f"{p.topic}:{p.partition}" for p in partitions)
        row = {"wall": time.time(), "group": self.group, "member": self.worker,
               "event": event, "partitions": ",".join(parts), "count": len(parts)}
        self.events.append(row)
        self.ctl.report(Report(kind="rebalance", worker=self.worker, role="consumer",
                               wall=row["wall"], events=[row]))
