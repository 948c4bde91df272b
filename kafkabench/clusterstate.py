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
from confluent_kafka import KafkaError

from kafkabench.admin import admin_client, describe_topics
from kafkabench.contract import dtypes
from kafkabench.errors import ClusterError
from kafkabench.session import RunObserver
from kafkabench.sidecar import Restart, Sidecar, note_restarts

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from kafkabench.results import RunResult
    from kafkabench.session import RunSession

log = logging.getLogger(__name__)

#: Columns and dtypes of the `cluster_state` frame, in order (the result contract's).
CLUSTER_STATE_DTYPES: dict[str, str] = dtypes("cluster_state")
PER_SECOND_DTYPES: dict[str, str] = {
    "t": "int64", "under_replicated": "Int64", "offline": "Int64", "leader_changes": "Int64",
    "min_isr_size": "Int64",
}
# How long `on_end` waits, beyond one sample's timeout, for the final sample: a child that
# just died takes a second or two to start again.
SAMPLE_NOW_SLACK_S = 15.0


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


def cluster_state_frame(samples: Iterable[tuple], t0_wall: float) -> pd.DataFrame:
    """Sample rows as the `cluster_state` frame, with under-replication and leader changes.

    Args:
        samples: (unix time, topic, partition, leader, replicas, isr size, error) in sample
            order; a row with an error has partition -1.
        t0_wall: Unix time of the run's t = 0.

    Returns:
        The frame, columns `CLUSTER_STATE_DTYPES`. leader_changed is True when the partition's
        leader differs from the one in its previous successful sample (-1, none, counts as a
        leader too: losing the leader is a change, and so is electing one).
    """
    previous: dict[tuple[str, int], int] = {}
    rows = []
    for wall, topic, partition, leader, replicas, isr_size, error in samples:
        changed = False
        if not error:
            before = previous.get((topic, partition))
            changed = before is not None and before != leader
            previous[(topic, partition)] = leader
        rows.append((wall - t0_wall, wall, topic, partition, leader, replicas, isr_size,
                     not error and isr_size < replicas, not error and leader < 0, changed, error))
    frame = pd.DataFrame(rows, columns=list(CLUSTER_STATE_DTYPES))
    frame["time"] = pd.to_datetime(frame["time"].astype("float64"), unit="s", utc=True)
    return frame.astype(CLUSTER_STATE_DTYPES)


def _per_sample(cluster_state: pd.DataFrame) -> pd.DataFrame:
    """Counts per successful sample (rows sharing a `time`), indexed by that time."""
    ok = cluster_state[(cluster_state["error"] == "") & (cluster_state["partition"] >= 0)]
    return ok.groupby("time", sort=True).agg(
        t=("t", "first"), under_replicated=("under_replicated", "sum"),
        offline=("offline", "sum"), leader_changes=("leader_changed", "sum"),
        min_isr_size=("isr_size", "min"))


def cluster_state_per_second(cluster_state: pd.DataFrame) -> pd.DataFrame:
    """Partition counts per whole second of the run, for charts.

    Args:
        cluster_state: the `cluster_state` frame (`ClusterStateObserver.frame()`).

    Returns:
        One row per second that has a sample: t (whole seconds, floor of the samples' t),
        under_replicated and offline (most partitions at once in the second's samples),
        leader_changes (sum), min_isr_size (smallest ISR of any partition). A second whose
        samples all failed has <NA> counts.
    """
    if cluster_state.empty:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in PER_SECOND_DTYPES.items()})
    seconds = pd.Series(cluster_state["t"].to_numpy(dtype="float64") // 1, dtype="int64")
    per_sample = _per_sample(cluster_state)
    per_sample["second"] = per_sample["t"].to_numpy(dtype="float64") // 1
    counts = per_sample.groupby("second").agg(
        under_replicated=("under_replicated", "max"), offline=("offline", "max"),
        leader_changes=("leader_changes", "sum"), min_isr_size=("min_isr_size", "min"))
    out = counts.reindex(sorted(set(seconds))).rename_axis("t").reset_index()
    return out.astype(PER_SECOND_DTYPES)


def cluster_state_figures(cluster_state: pd.DataFrame) -> dict[str, int]:
    """The summary figures of a `cluster_state` frame.

    Returns:
        leader_changes (every leader change seen), under_replicated_max and offline_max (most
        partitions under-replicated / offline in one sample); 0 without a successful sample.
    """
    per_sample = _per_sample(cluster_state)
    if per_sample.empty:
        return {"leader_changes": 0, "under_replicated_max": 0, "offline_max": 0}
    return {"leader_changes": int(per_sample["leader_changes"].sum()),
            "under_replicated_max": int(per_sample["under_replicated"].max()),
            "offline_max": int(per_sample["offline"].max())}
