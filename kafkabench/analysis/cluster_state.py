"""The cluster-state sampler's samples as frames and figures (pure): `cluster_state_frame` (one row
per partition per sample: leader, ISR, under-replicated), `cluster_state_per_second` and
`cluster_state_figures` (leader changes, seconds under-replicated or offline).

May import: `kafkabench.core`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from kafkabench.core.contract import dtypes

if TYPE_CHECKING:

    pass


#: Columns and dtypes of the `cluster_state` frame, in order (the result contract's).
CLUSTER_STATE_DTYPES: dict[str, str] = dtypes("cluster_state")


PER_SECOND_DTYPES: dict[str, str] = {
    "t": "int64", "under_replicated": "Int64", "offline": "Int64", "leader_changes": "Int64",
    "min_isr_size": "Int64",
}


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


