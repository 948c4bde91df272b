"""Consumer-group rebalances analysed (pure, from a run's frames): `ownership` (who owned which
partition when), `read_traces` (the members' consumption traces), and `event_figures`, per
membership event: time to detect it, to a stable assignment, the longest pause of a partition
and of the group, partitions moved, records consumed twice, and the lag peak and its drain.

May import: `kafkabench.core`, `kafkabench.engine` (the trace format).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pandas as pd

#: Seconds of lag samples before an event that set the level its lag must drain back to.
DRAIN_BASELINE_S = 3.0


def ownership(rebalances: pd.DataFrame, membership: pd.DataFrame | None = None, *,
              group: str | None = None, end_t: float | None = None) -> pd.DataFrame:
    """Who owned which partition when, from the members' rebalance callbacks: one row per
    interval (group, topic, partition, member, start_t, end_t; t as in the run's frames).

    A member that crashed or left owns nothing from then on; an interval still open at the
    end closes at `end_t` (default: the last event).

    Args:
        rebalances: the run's `rebalances` frame.
        membership: the run's `membership` frame (crash and leave times), or None.
        group: one group (default: every group).
        end_t: where open intervals end.
    """
    columns = ["group", "topic", "partition", "member", "start_t", "end_t"]
    if rebalances is None or not len(rebalances):
        return pd.DataFrame(columns=columns)
    marks = _ownership_marks(rebalances, membership, group)
    end = end_t if end_t is not None else (marks[-1][0] if marks else 0.0)
    return pd.DataFrame(_ownership_intervals(marks, end), columns=columns).sort_values(
        ["group", "topic", "partition", "start_t"], ignore_index=True)


def _ownership_marks(rebalances: pd.DataFrame, membership: pd.DataFrame | None,
                     group: str | None) -> list[tuple[float, str, str, str, str]]:
    """(t, assign|revoke|gone, group, member, "topic:partition,...") in time order."""
    ev = rebalances if group is None else rebalances[rebalances["group"] == group]
    marks = [(t, "assign" if e == "assign" else "revoke", g, m, str(parts))
             for t, g, m, e, parts in zip(ev["t"], ev["group"], ev["member"], ev["event"],
                                          ev["partitions"].fillna(""))]
    if membership is not None and len(membership):
        gone = membership[membership["action"].isin(["crash", "leave"]) & membership["t_s"].notna()]
        marks.extend((row.t_s, "gone", row.group_id, row.worker, "") for row in gone.itertuples())
    marks.sort(key=lambda x: x[0])
    return marks


def _ownership_intervals(marks: list[tuple[float, str, str, str, str]], end: float) -> list[tuple]:
    """The (group, topic, partition, member, start_t, end_t) intervals the marks make."""
    open_: dict[tuple[str, str, int], tuple[str, float]] = {}
    rows: list[tuple] = []

    def close(key: tuple[str, str, int], t: float) -> None:
        member, since = open_.pop(key)
        rows.append((*key, member, since, t))

    for t, kind, g, member, parts in marks:
        if kind == "gone":
            for key in [k for k, (m, _) in open_.items() if k[0] == g and m == member]:
                close(key, t)
            continue
        for text in filter(None, parts.split(",")):
            topic, _, partition = text.rpartition(":")
            key = (g, topic, int(partition))
            if key in open_ and (kind == "assign" or open_[key][0] == member):
                close(key, t)
            if kind == "assign":
                open_[key] = (member, t)
    for key in list(open_):
        close(key, max(end, open_[key][1]))
    return rows


def member_identity(worker: str) -> str:
    """The member a worker is: a restarted member's workers (`<name>-r<k>`) are one member."""
    return re.sub(r"-r\d+$", "", worker)


def read_traces(folder: str | os.PathLike) -> pd.DataFrame:
    """Every member's consumption trace in `folder` (`<worker>.csv`, see
    `kafkabench.consumer.ConsumptionTrace`): columns member (the worker), wall, topic,
    partition, first_offset, last_offset, count, sorted by wall."""
    from kafkabench.engine.consumer import ConsumptionTrace

    frames = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if not name.endswith(".csv") or os.path.getsize(path) == 0:
            continue
        # A member killed mid-write leaves at most one partial last line: skipped.
        frame = pd.read_csv(path, names=list(ConsumptionTrace.COLUMNS), on_bad_lines="skip",
                            dtype={"topic": str})
        frames.append(frame.dropna().assign(member=name[:-4]))
    if not frames:
        return pd.DataFrame(columns=["member", *ConsumptionTrace.COLUMNS])
    trace = pd.concat(frames, ignore_index=True)
    for column in ("partition", "first_offset", "last_offset", "count"):
        trace[column] = trace[column].astype("int64")
    return trace.sort_values("wall", kind="stable").reset_index(drop=True)


def event_figures(frame: pd.DataFrame, rebalances: pd.DataFrame, trace: pd.DataFrame,
                  lag: pd.DataFrame | None, *, end_wall: float) -> pd.DataFrame:
    """The `membership` frame with each carried-out event's figures (columns from
    `detect_s` on; NaN where an event had nothing to measure).

    An event's window runs from its wall time to the next event of its group (or the run's
    end). Partitions and members are those of the event's group and input topic.

    Args:
        frame: the `membership` frame (wall, group_id, topic_name filled).
        rebalances: the run's `rebalances` frame (wall, group, member, event, partitions).
        trace: `read_traces` of the run.
        lag: the run's `lag` frame (None: no lag figures).
        end_wall: the run's end, Unix time.
    """
    frame = frame.copy()
    for column in _FIGURES:
        frame[column] = math.nan
    ok = frame.index[(frame["outcome"] == "ok") & frame["wall"].notna()]
    for i in ok:
        row = frame.loc[i]
        group, topic, start = row["group_id"], row["topic_name"], float(row["wall"])
        later = frame.loc[ok][(frame.loc[ok, "group_id"] == group) & (frame.loc[ok, "wall"] > start)]
        end = float(later["wall"].min()) if len(later) else end_wall
        events = _group_events(rebalances, group, topic)
        during = events[(events["wall"] > start) & (events["wall"] < end)]
        if len(during):
            frame.loc[i, "detect_s"] = during["wall"].iloc[0] - start
            frame.loc[i, "stable_s"] = during["wall"].iloc[-1] - start
        frame.loc[i, "partitions_revoked"] = int(during.loc[during["event"] != "assign", "n"].sum())
        frame.loc[i, "partitions_assigned"] = int(during.loc[during["event"] == "assign", "n"].sum())
        gone = row["worker"] if row["action"] in ("crash", "leave") else None
        before = _owners(events[events["wall"] <= start], gone_at=None)
        after = _owners(events[events["wall"] < end], gone_at=(gone, start) if gone else None)
        # Moved: owned by another member than before (not: unowned until the window's end,
        # as a crashed static member's partitions are until it returns).
        frame.loc[i, "partitions_moved"] = sum(after[p] != before.get(p) for p in after)
        mine = trace[(trace["topic"] == topic) & trace["member"].isin(_members(rebalances, trace, group))]
        frame.loc[i, "partition_pause_s"] = max(
            (_longest_gap(part["wall"].to_numpy(), start, end) for _, part in mine.groupby("partition")),
            default=math.nan)
        frame.loc[i, "group_pause_s"] = _longest_gap(mine["wall"].to_numpy(), start, end)
        frame.loc[i, "duplicates"] = _duplicates(mine, start, end)
        if lag is not None and len(lag):
            peak, drain = _lag_peak(lag, group, start, end)
            frame.loc[i, "lag_peak_msgs"], frame.loc[i, "drain_s"] = peak, drain
    return frame


_FIGURES = ("detect_s", "stable_s", "partition_pause_s", "group_pause_s", "partitions_revoked",
            "partitions_assigned", "partitions_moved", "duplicates", "lag_peak_msgs", "drain_s")


def _group_events(rebalances: pd.DataFrame, group: str, topic: str) -> pd.DataFrame:
    """The group's rebalance events with `parts` (the topic's partitions) and `n`."""
    if rebalances is None or not len(rebalances):
        return pd.DataFrame(columns=["wall", "member", "event", "parts", "n"])
    ev = rebalances[rebalances["group"] == group].sort_values("wall", kind="stable").copy()
    prefix = f"{topic}:"
    ev["parts"] = [tuple(int(x[len(prefix):]) for x in str(text).split(",") if x.startswith(prefix))
                   for text in ev["partitions"].fillna("")]
    ev["n"] = [len(p) for p in ev["parts"]]
    return ev


def _owners(events: pd.DataFrame, gone_at: tuple[str, float] | None) -> dict[int, str]:
    """Partition -> owning member (identity) after `events`; `gone_at` (worker, wall): that
    worker owns nothing (it crashed or left)."""
    owner: dict[int, str] = {}
    for member, event, parts in zip(events["member"], events["event"], events["parts"]):
        who = member_identity(member)
        for p in parts:
            if event == "assign":
                owner[p] = who
            elif owner.get(p) == who:
                del owner[p]
    if gone_at is not None:
        gone = member_identity(gone_at[0])
        # Unless it came back (a restart) after going.
        came_back = any(member_identity(m) == gone and e == "assign" and w > gone_at[1]
                        for m, e, w in zip(events["member"], events["event"], events["wall"]))
        if not came_back:
            owner = {p: m for p, m in owner.items() if m != gone}
    return owner


def _members(rebalances: pd.DataFrame, trace: pd.DataFrame, group: str) -> set[str]:
    """Workers of `group` (from its rebalance events)."""
    if rebalances is None or not len(rebalances):
        return set(trace["member"])
    return set(rebalances.loc[rebalances["group"] == group, "member"])


def _longest_gap(walls: Any, start: float, end: float) -> float:
    """The longest time between consecutive consumption times that overlaps [start, end)
    (a gap open at `end` counts up to `end`); NaN without consumption."""
    import numpy as np

    walls = np.sort(np.asarray(walls, dtype=float))
    if not len(walls):
        return math.nan
    points = np.concatenate([walls[walls < end], [end]])
    gaps = np.diff(points)
    lo, hi = points[:-1], points[1:]
    overlap = (hi > start) & (lo < end)
    return float(gaps[overlap].max()) if overlap.any() else 0.0


def _duplicates(trace: pd.DataFrame, start: float, end: float) -> int:
    """Records consumed again within [start, end): per partition, in time order, offsets at
    or below the highest one any member had consumed before."""
    total = 0
    for _, part in trace.groupby("partition"):
        highest = -1
        for wall, first, last in zip(part["wall"], part["first_offset"], part["last_offset"]):
            if first <= highest and start <= wall < end:
                total += min(last, highest) - first + 1
            highest = max(highest, last)
    return total


def _lag_peak(lag: pd.DataFrame, group: str, start: float, end: float) -> tuple[float, float]:
    """(the group's highest lag in [start, end), seconds from `start` until its lag was back
    to the highest level of the DRAIN_BASELINE_S before `start`; NaN: never within the window)."""
    rows = lag[(lag["group"] == group) & (lag["partition"] >= 0) & lag["lag_msgs"].notna()]
    if not len(rows):
        return math.nan, math.nan
    total = rows.groupby("time")["lag_msgs"].sum().sort_index()  # the group's lag per sample
    walls = (total.index.asi8 / 1e6).astype(float) if total.index.unit == "us" else \
        total.index.map(lambda t: t.timestamp()).to_numpy(dtype=float)
    values = total.to_numpy(dtype=float)
    base = values[(walls >= start - DRAIN_BASELINE_S) & (walls < start)]
    window = (walls >= start) & (walls < end)
    if not window.any():
        return math.nan, math.nan
    peak_at = int(window.nonzero()[0][values[window].argmax()])
    level = base.max() if len(base) else 0.0
    for w, v in zip(walls[peak_at:], values[peak_at:]):
        if w >= end:
            break
        if v <= level:
            return float(values[peak_at]), float(w - start)
    return float(values[peak_at]), math.nan


