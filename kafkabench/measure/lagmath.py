"""Consumer lag arithmetic, with no client (pure): `LagTable` (offsets and high watermarks to lag
in messages and, interpolated from the watermark's history, in seconds, as kafka-lag-exporter
does), Burrow's partition and group status rules (`partition_status`, `group_status`) over a
window of `Observation`s, and the `lag` frame (`lag_frame`).

May import: `kafkabench.core`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from kafkabench.core import contract

#: Columns of a lag frame, in order: the contract's "lag" frame (meaning and unit of each
#: there). Columns are only ever appended, never reordered.
LAG_COLUMNS: list[str] = contract.columns("lag")


_DTYPES: dict[str, str] = contract.dtypes("lag")


#: Partition statuses from best to worst; a group takes its worst partition's. Burrow's, plus
#: DELETED (the topic was deleted: the end of its lag, not an error) and GAP (a row about a
#: whole group: no samples were taken for a while, because the sampler's process died and was
#: restarted, see `IsolatedLagSampler`), ranked lowest so that any live partition's status wins.
STATUSES: tuple[str, ...] = ("GAP", "DELETED", "OK", "WARN", "STALL", "STOP", "REWIND", "ERR")


_SEVERITY = {s: i for i, s in enumerate(STATUSES)}


class LagTable:
    """kafka-lag-exporter's lookup table: when did the log end reach each offset?

    One table per partition. `add(log_end, t)` at every poll; `lag_seconds(committed, now)`
    places the committed offset between the two bracketing points by linear interpolation.
    A point keeps the first and the last time its offset was seen, so a partition nobody
    produces to does not smear the interpolation: the messages after offset o were produced
    after the *last* time the log end was o, and before the *first* time it was higher.

    Args:
        max_points: distinct log-end offsets kept; older ones are dropped (see `lag_seconds`).
    """

    def __init__(self, max_points: int = 3600):
        self._offsets: deque[int] = deque(maxlen=max_points)
        self._first: deque[float] = deque(maxlen=max_points)
        self._last: deque[float] = deque(maxlen=max_points)
        self._dropped = False

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, log_end: int, t: float) -> None:
        """Record that the log end offset was `log_end` at time `t` (seconds, any clock)."""
        if self._offsets and log_end == self._offsets[-1]:
            self._last[-1] = t
            return
        if self._offsets and log_end < self._offsets[-1]:
            # The log end went back: the topic was deleted and recreated. Start over.
            self._offsets.clear()
            self._first.clear()
            self._last.clear()
            self._dropped = False
        self._dropped = self._dropped or len(self._offsets) == self._offsets.maxlen
        self._offsets.append(log_end)
        self._first.append(t)
        self._last.append(t)

    def covers(self, offset: int) -> bool:
        """Whether the table can place `offset`: not older than its oldest point."""
        return bool(self._offsets) and offset >= self._offsets[0]

    def produce_time(self, offset: int) -> float:
        """Estimated time the message at `offset` was produced.

        Returns:
            The interpolated time; the first time of the oldest point when `offset` is older
            than the table (the message existed by then, so this is an upper bound on the
            time); NaN when the table is empty or the offset is not produced yet.
        """
        offsets = self._offsets
        if not offsets or offset >= offsets[-1]:
            return math.nan
        i = bisect.bisect_right(offsets, offset)  # offsets[i-1] <= offset < offsets[i]
        if i == 0:
            return self._first[0]
        lo_off, lo_t = offsets[i - 1], self._last[i - 1]
        hi_off, hi_t = offsets[i], self._first[i]
        return lo_t + (offset - lo_off) / (hi_off - lo_off) * (hi_t - lo_t)

    def lag_seconds(self, committed: int | None, now: float) -> float:
        """Seconds the consumer group is behind at `committed`.

        Args:
            committed: the group's committed offset (the next message it will read).
            now: current time on the clock of `add`.

        Returns:
            0 when caught up (committed >= newest log end); now - interpolated produce time
            when the table covers `committed`. An offset older than the table is unknown (NaN):
            the table only knows since its first point, and `now` minus that time would be a
            lower bound as short as the table is young (0 at the first point). Once the table
            has dropped points it spans `max_points` polls, and that lower bound is returned.
            NaN also when the table is empty or `committed` is None/NaN.
        """
        if committed is None or not self._offsets or (isinstance(committed, float)
                                                      and math.isnan(committed)):
            return math.nan
        if committed >= self._offsets[-1]:
            return 0.0
        if committed < self._offsets[0] and not self._dropped:
            return math.nan
        return max(0.0, now - self.produce_time(int(committed)))


@dataclass(frozen=True, slots=True)
class Observation:
    """One sample of a partition for the Burrow evaluation."""

    t: float
    committed: int
    lag: int


def partition_status(window: Iterable[Observation], *, now: float | None = None,
                     last_change_t: float | None = None, owned: bool | None = None,
                     min_observations: int = 2) -> str:
    """Burrow's partition evaluation over a window of observations, oldest first.

    Burrow's rules, in its order: lag zero anywhere in the window (or now) -> OK; committed
    offset went back -> REWIND; committed offset did not move over the window -> STOP or STALL;
    offset moved but lag never shrank between two observations -> WARN; else OK. Fewer than
    `min_observations` -> OK (an incomplete window: polled every second, a consumer that
    auto-commits every 5 s would look stalled between its commits).

    Burrow tells STOP (no commits) from STALL (commits of the same offset) by commit timestamps,
    which polling offsets cannot see. Here: STOP when no member of the group owns the partition
    (`owned` False: the consumer is gone), STALL when a member owns it (alive but stuck). When
    ownership is unknown, Burrow's time rule decides with offset-change times: STOP if the
    offset has stood still for longer than the window spans, else STALL.

    Args:
        window: last N observations (any iterable: a list, a deque).
        now: evaluation time (default the last observation's).
        last_change_t: when the committed offset first took its current value (may be before
            the window; default the window's first observation with that value).
        owned: whether a group member is assigned the partition; None if unknown.
        min_observations: observations needed for a verdict other than OK (at least 2).

    Returns:
        One of "OK", "WARN", "STALL", "STOP", "REWIND".
    """
    window = list(window)
    if len(window) < max(2, min_observations) or any(o.lag <= 0 for o in window):
        return "OK"
    pairs = list(zip(window, window[1:]))
    if any(b.committed < a.committed for a, b in pairs):
        return "REWIND"
    if all(o.committed == window[0].committed for o in window):
        return _stopped_status(window, now, last_change_t, owned)
    if all(b.lag >= a.lag for a, b in pairs):
        return "WARN"
    return "OK"


def _stopped_status(window: list[Observation], now: float | None, last_change_t: float | None,
                    owned: bool | None) -> str:
    """STOP or STALL of a window whose committed offset never moved (see `partition_status`)."""
    if owned is not None:
        return "STALL" if owned else "STOP"
    now = window[-1].t if now is None else now
    since = window[0].t if last_change_t is None else last_change_t
    return "STOP" if now - since > window[-1].t - window[0].t else "STALL"


def group_status(statuses: Iterable[str]) -> str:
    """The worst of partition statuses (OK for none). Burrow reports STOP/STALL/REWIND as ERR
    at group level; kafkabench keeps the partition status, which says more."""
    return max(statuses, key=_SEVERITY.__getitem__, default="OK")


class _PartitionState:
    """Per (group, topic, partition) history for the Burrow evaluation."""

    __slots__ = ("window", "last_change_t")

    def __init__(self, window: int):
        self.window: deque[Observation] = deque(maxlen=window)
        self.last_change_t: float | None = None

    def observe(self, t: float, committed: int, lag: int) -> None:
        """Add an observation; the committed offset changed at `t` if it differs from the last."""
        if not self.window or self.window[-1].committed != committed:
            self.last_change_t = t
        self.window.append(Observation(t, committed, lag))


def lag_frame(rows: Iterable[tuple] = ()) -> pd.DataFrame:
    """Rows as a lag DataFrame with its dtypes; no rows: an empty one.

    Args:
        rows: tuples in `LAG_COLUMNS` order; shorter tuples (the first ten columns) get
            oldest_age_s NaN and error "".
    """
    n = len(LAG_COLUMNS)
    rows = [r if len(r) == n else (*r, *[None] * (n - len(r))) for r in rows]
    frame = pd.DataFrame(rows, columns=LAG_COLUMNS).astype(_DTYPES)
    return frame.assign(error=frame["error"].fillna(""))


