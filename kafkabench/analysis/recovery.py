"""Recovery figures per fault: how long a disruptive fault held up acknowledgements and throughput.

One row per fault of the schedule whose action disrupts a node (`kill`, `stop`, `pause`,
`restart`, `rolling_restart`; undo actions such as `start` and `resume` are part of the
recovery, not faults of their own). Every time is in seconds since the run's t=0
(`Tally.t0_wall`); the fault time `t_s` is the fault row's `started_s`.

first_ack_s, outage_s and recovery_s look from t_s up to the next disruptive fault or the end
of the data (a fault may take longer than a minute to recover from); latency and errors look
at the window of a fault, [t_s, end): end is the earliest of t_s + `window_s` (60 s by default),
the `started_s` of the next disruptive scheduled fault (one scheduled later: faults due at the
same moment are one disruption), and the end of the data (the last
second of the timeseries, or the last acknowledgement, whichever is later). Every figure looks
only inside the window, so two faults never share their aftermath.

Acknowledgements come from the 10 ms timeline: an acknowledgement counts at the start of its
10 ms bucket. The partitions that matter are those acknowledged in the 5 s before the fault.

- `first_ack_s`: time from the fault until every one of those partitions has had an
  acknowledgement again (the latest of their first acknowledgements after the fault).
  `inf` when one of them has none in the window: it did not recover within the window.
  NaN when no partition was acknowledged in the 5 s before the fault (nothing to recover).
- `outage_s`: the longest time without acknowledgements on any one of those partitions within
  the window, at 10 ms resolution: the gap from the fault to a partition's first
  acknowledgement counts, and so does every gap between two of its acknowledgements. The time
  after a partition's last acknowledgement in the window is not counted (the window's end is
  not an event of the partition). `inf` and NaN as for `first_ack_s`.
- `pre_rate`: mean `delivered` (acknowledged messages per second, from the timeseries) of the
  up to 5 whole seconds before the fault's second; NaN when there are none.
- `recovery_s`: time from the fault to the start of the first whole second at or after it
  whose `delivered` is at least 90% of `pre_rate` (one-second resolution: a fault at 10.5 s
  that changes nothing gives 0.5). `inf` when no second of the window gets there; NaN when
  `pre_rate` is NaN or 0.
- `publish_latency_ms_max`, `e2e_latency_ms_p99`: over the per-second histograms of every
  second that overlaps the window (the fault's own second included), merged; NaN when none
  was recorded.
- `errors`, `failed`: delivery errors in the seconds that overlap the window, by Kafka error
  code ("CODE:n, CODE:n", most frequent first), and their total.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kafkabench.core.contract import dtypes, percentile_columns
from kafkabench.core.errors import ConfigError
from kafkabench.measure.stats import LatencyRecorder

#: Actions of the schedule that disrupt a node and get a recovery row.
DISRUPTIVE_ACTIONS: frozenset[str] = frozenset({"kill", "stop", "pause", "restart", "rolling_restart"})
#: Partitions acknowledged in this many seconds before a fault are the ones that must recover.
ACTIVE_BEFORE_S = 5.0
#: Whole seconds before the fault's second whose mean `delivered` is the pre-fault rate.
PRE_RATE_SECONDS = 5
#: Throughput counts as recovered at this fraction of the pre-fault rate.
RECOVERED_FRACTION = 0.9
#: Resolution of the acknowledgement timeline.
TICK_S = 0.01

#: The `recovery` frame's columns and dtypes, in order (`kafkabench.contract`).
COLUMNS: dict[str, str] = dtypes("recovery")
SUMMARY_KEYS: tuple[str, ...] = ("outage_s", "recovery_s", "first_ack_s")


@dataclass(frozen=True, slots=True)
class Window:
    """The stretch of the run a fault's figures look at: [start, end) in run seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> range:
        """Whole seconds of the run that overlap the window."""
        return range(math.floor(self.start), math.ceil(self.end))


def recovery_figures(faults: pd.DataFrame, acks: Mapping[tuple[str, int, int], int],
                     timeseries: pd.DataFrame, intervals: Mapping[tuple[int, str], LatencyRecorder],
                     errors: Mapping[tuple[int, str], int], *, t0_wall: float,
                     window_s: float = 60.0) -> pd.DataFrame:
    """The `recovery` frame: one row per disruptive fault of the schedule (module docstring).

    Args:
        faults: the `faults` frame (`FaultObserver.frame()`).
        acks: the 10 ms acknowledgement timeline, {(topic, partition, centisecond): n} with
            centisecond = floor(unix time * 100): the producers' `kafkabench.run.timeline.AckTimeline`
            (`tally.acks`).
        timeseries: the run's per-second frame (index `t`; column `delivered`).
        intervals: per-second histograms, {(t, histogram name): LatencyRecorder}
            (`Tally.histograms`).
        errors: delivery errors, {(unix second, error code name): n}: the producers'
            `kafkabench.run.timeline.ErrorTimeline` (`tally.error_timeline`).
        t0_wall: Unix time of the run's t=0 (`Tally.t0_wall`).
        window_s: longest window after a fault, in seconds.

    Returns:
        The frame with `COLUMNS`, in order; no rows when the schedule had no disruptive fault.

    Raises:
        ConfigError: `window_s` is not a positive number.
    """
    if not window_s > 0:
        raise ConfigError(f"window_s={window_s!r}: the window after a fault must be a positive "
                          "number of seconds, e.g. 60")
    rows = _disruptive(faults)
    if rows.empty:
        return empty_recovery()
    timeline = _ack_timeline(acks, t0_wall)
    delivered = _delivered(timeseries)
    error_times = [(u - t0_wall, code, n) for (u, code), n in errors.items() if n > 0]
    data_end = _data_end(timeline, delivered)
    starts = rows["started_s"].to_numpy(dtype="float64")
    scheduled = rows["scheduled_s"].to_numpy(dtype="float64")
    out = []
    for fault, action, node, start, due in zip(rows["fault"], rows["action"], rows["node"], starts,
                                               scheduled, strict=True):
        # Faults scheduled for the same moment are one disruption: they do not cut each
        # other's windows (two kills at 15 s start 0.15 s apart).
        later = starts[scheduled > due]
        window = Window(start, _window_end(start, later, window_s, data_end))
        # How long until it recovered is not capped at window_s (two brokers down for 30 s
        # take longer than a minute to come back on a busy machine): up to the next fault.
        until_next = Window(start, _window_end(start, later, math.inf, data_end))
        out.append({"fault": fault, "action": action, "node": node, "t_s": start,
                    **_figures(window, until_next, timeline, delivered, intervals, error_times)})
    return _frame(out)


def recovery_summary(recovery: pd.DataFrame) -> dict[str, float]:
    """The summary keys `outage_s`, `recovery_s`, `first_ack_s`: the worst (max) over faults.

    Args:
        recovery: the `recovery` frame.

    Returns:
        {key: max over the rows}; NaN when there are no rows or every row is NaN, `inf` when
        some fault did not recover within its window.
    """
    return {k: float(recovery[k].max()) if len(recovery) else math.nan for k in SUMMARY_KEYS}


def empty_recovery() -> pd.DataFrame:
    """The `recovery` frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["node"] = pd.array([None if pd.isna(n) else int(n) for n in frame["node"]], dtype="Int64")
    return frame.astype(COLUMNS)


def _disruptive(faults: pd.DataFrame | None) -> pd.DataFrame:
    if faults is None or faults.empty:
        return pd.DataFrame(columns=["fault", "action", "node", "started_s"])
    return faults[(faults["origin"] == "schedule") & faults["action"].isin(DISRUPTIVE_ACTIONS)]


def _ack_timeline(acks: Mapping[tuple[str, int, int], int], t0_wall: float) -> list[np.ndarray]:
    """Per partition, the sorted run times (s) of the 10 ms buckets that had acknowledgements."""
    buckets: dict[tuple[str, int], list[int]] = {}
    for (topic, partition, cs), n in acks.items():
        if n > 0:
            buckets.setdefault((topic, partition), []).append(cs)
    t0_cs = t0_wall * 100.0
    return [np.sort((np.asarray(cs, dtype="float64") - t0_cs) / 100.0) for cs in buckets.values()]


def _delivered(timeseries: pd.DataFrame | None) -> pd.Series:
    if timeseries is None or timeseries.empty or "delivered" not in timeseries:
        return pd.Series(dtype="int64")
    return timeseries["delivered"].sort_index()


def _data_end(timeline: list[np.ndarray], delivered: pd.Series) -> float:
    ends = [float(a[-1]) + TICK_S for a in timeline if len(a)]
    if len(delivered):
        ends.append(float(delivered.index.max()) + 1.0)
    return max(ends, default=-math.inf)


def _window_end(start: float, starts: np.ndarray, window_s: float, data_end: float) -> float:
    later = starts[starts > start]
    end = min(start + window_s, float(later.min()) if len(later) else math.inf, data_end)
    return max(end, start)


def _figures(window: Window, until_next: Window, timeline: list[np.ndarray], delivered: pd.Series,
             intervals: Mapping[tuple[int, str], LatencyRecorder],
             error_times: list[tuple[float, str, int]]) -> dict:
    if math.isnan(window.start):  # a fault that never started (skipped)
        return {"failed": 0, "errors": ""}
    first_ack, outage = _ack_figures(until_next, timeline)
    pre_rate, recovery = _throughput_figures(until_next, delivered)
    failed, codes = _error_figures(window, error_times)
    return {"first_ack_s": first_ack, "outage_s": outage, "recovery_s": recovery,
            "pre_rate": pre_rate, **_latency_figures(window, intervals),
            "failed": failed, "errors": codes}


def _ack_figures(window: Window, timeline: list[np.ndarray]) -> tuple[float, float]:
    """(first_ack_s, outage_s) over the partitions acknowledged just before the fault."""
    start = window.start
    active = [a for a in timeline if _count_in(a, start - ACTIVE_BEFORE_S, start)]
    if not active:
        return math.nan, math.nan
    first_ack = outage = 0.0
    for times in active:
        after = times[np.searchsorted(times, start):np.searchsorted(times, window.end)]
        if not len(after):
            return math.inf, math.inf
        first = float(after[0]) - start
        # Adjacent buckets leave no time without acknowledgements: a gap is the buckets between.
        longest_gap = float(np.diff(after).max(initial=TICK_S)) - TICK_S
        first_ack = max(first_ack, first)
        outage = max(outage, first, longest_gap)
    return round(first_ack, 3), round(outage, 3)


def _count_in(times: np.ndarray, lo: float, hi: float) -> int:
    return int(np.searchsorted(times, hi) - np.searchsorted(times, lo))


def _throughput_figures(window: Window, delivered: pd.Series) -> tuple[float, float]:
    """(pre_rate, recovery_s) from the per-second `delivered` counts."""
    second = math.floor(window.start)
    t = delivered.index
    before = delivered[(t >= second - PRE_RATE_SECONDS) & (t < second)]
    pre_rate = float(before.mean()) if len(before) else math.nan
    if not pre_rate > 0:
        return pre_rate, math.nan
    inside = delivered[(t >= math.ceil(window.start)) & (t < window.end)]
    back = inside.index[inside >= RECOVERED_FRACTION * pre_rate]
    return pre_rate, float(back[0]) - window.start if len(back) else math.inf


def _latency_figures(window: Window, intervals: Mapping[tuple[int, str], LatencyRecorder]) -> dict:
    wanted = {"publish_latency_us": "publish_latency_ms_max", "e2e_latency_us": "e2e_latency_ms_p99"}
    out = {}
    for name, column in wanted.items():
        merged = LatencyRecorder()
        for t in window.seconds:
            if (t, name) in intervals:
                merged.merge(intervals[(t, name)])
        out[column] = percentile_columns(name, merged)[column]
    return out


def _error_figures(window: Window, error_times: list[tuple[float, str, int]]) -> tuple[int, str]:
    """(failed, "CODE:n, ...") of the error seconds that overlap the window."""
    codes: Counter = Counter()
    for t, code, n in error_times:
        if t < window.end and t + 1.0 > window.start:
            codes[code] += n
    ranked = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
    return sum(codes.values()), ", ".join(f"{code}:{n}" for code, n in ranked)
