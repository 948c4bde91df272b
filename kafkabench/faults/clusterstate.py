"""Cluster state over a run: each partition's leader and in-sync replicas, sampled every second.

`ClusterStateObserver` is a `kafkabench.session.RunObserver`: from `on_start` a child process
(a `MetadataProbe` in a `kafkabench.sidecar.Sidecar`) asks for the metadata of the run's
topics once a second, and `contribute` adds the
`cluster_state` frame (one row per partition per sample) and the figures leader_changes,
under_replicated_max and offline_max to the result. `cluster_state_per_second` turns the frame
into the per-second counts the cluster-state chart draws.

Samples use per-topic Metadata requests (`kafkabench.admin.describe_topics`), which any live
broker answers: a failover, when the state is most interesting, is also when the controller
cannot answer the Admin API's DescribeTopics (see that function's docstring).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

# Names of the flat module `kafkabench.clusterstate`, which now points here.
from kafkabench.analysis.cluster_state import (
    CLUSTER_STATE_DTYPES as CLUSTER_STATE_DTYPES,
)
from kafkabench.analysis.cluster_state import (
    PER_SECOND_DTYPES as PER_SECOND_DTYPES,
)
from kafkabench.analysis.cluster_state import (
    cluster_state_figures,
    cluster_state_frame,
)
from kafkabench.analysis.cluster_state import (
    cluster_state_per_second as cluster_state_per_second,
)
from kafkabench.cluster.metadata import MetadataProbe
from kafkabench.core.sidecar import Restart, Sidecar, note_restarts
from kafkabench.run.session import RunObserver

if TYPE_CHECKING:

    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession

log = logging.getLogger(__name__)

# How long `on_end` waits, beyond one sample's timeout, for the final sample: a child that
# just died takes a second or two to start again.
SAMPLE_NOW_SLACK_S = 15.0


class ClusterStateObserver(RunObserver):
    """Samples leader and ISR of every partition of the run's topics, once a second.

    The samples are taken in a supervised child process (`kafkabench.sidecar`, a
    `MetadataProbe`): a client-library abort while brokers die costs a gap (an error row
    naming it), not the run.

    Args:
        bootstrap: bootstrap servers.
        topics: the run's topics.
        conf: extra client settings (security).
        interval_s: time between samples.
        timeout_s: how long one whole sample (every topic) may take.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], *,
                 conf: Mapping[str, Any] | None = None, interval_s: float = 1.0,
                 timeout_s: float = 2.0):
        self.bootstrap = bootstrap
        self.topics = sorted(set(topics))
        self.conf = dict(conf or {})
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._rows: list[tuple] = []  # (unix time, topic, partition, leader, replicas, isr, error)
        self._lock = threading.Lock()  # guards _rows
        self._sidecar = Sidecar("cluster-state sampler", MetadataProbe,
                                (self.bootstrap, self.topics, self.conf, self.timeout_s),
                                on_sample=self._add, interval_s=interval_s,
                                stall_s=max(30.0, 5 * (timeout_s + interval_s)), on_restart=self._gap)
        self._session: Any = None

    # --- hooks -----------------------------------------------------------------------

    def on_start(self, session: RunSession) -> None:
        self._session = session
        self._sidecar.start()

    def on_end(self, session: RunSession) -> None:
        self._session = session
        # The state the run ended in (a new child's first sample if this one died).
        if self._sidecar.sample_now(self.timeout_s + SAMPLE_NOW_SLACK_S) is None:
            self._add([(time.time(), "", -1, -1, 0, 0, "no final sample: the sampler gave none in time")])
        self._sidecar.stop()

    def contribute(self, result: RunResult) -> None:
        frame = self.frame()
        result.cluster_state = frame
        result.summary.update(cluster_state_figures(frame))
        note_restarts(result.summary, self._sidecar.restarts)

    # --- sampling --------------------------------------------------------------------

    def _add(self, rows: list[tuple]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def _gap(self, restart: Restart) -> None:
        self._add([(restart.died_wall, "", -1, -1, 0, 0, restart.text)])

    # --- results ---------------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """The samples so far as the `cluster_state` frame.

        `t` is seconds since the session's `tally.t0_wall` (the producers' release), read
        now: samples before it have negative t. Without a session or before the release, t
        counts from the first sample.
        """
        with self._lock:
            rows = list(self._rows)
        t0 = getattr(getattr(self._session, "tally", None), "t0_wall", 0.0) or (
            rows[0][0] if rows else 0.0)
        return cluster_state_frame(rows, t0)


