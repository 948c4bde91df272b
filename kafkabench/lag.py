"""Consumer lag: in messages, in seconds (kafka-lag-exporter) and as a Burrow-style status.

The pure parts (`LagTable`, `partition_status`, `group_status`) take numbers and return
numbers; `LagSampler` feeds them from the cluster with the AdminClient, one batched request of
each kind per sample, every call with a timeout.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafkabench.errors import ClusterError

LAG_COLUMNS = ["t", "group", "topic", "partition", "committed", "log_end", "lag_msgs", "lag_s",
               "status", "time"]

#: Burrow's partition statuses from best to worst; a group takes its worst partition's.
STATUSES: tuple[str, ...] = ("OK", "WARN", "STALL", "STOP", "REWIND", "ERR")
_SEVERITY = {s: i for i, s in enumerate(STATUSES)}


class LagTable:
    """kafka-lag-exporter's lookup table: when did the log end reach each offset?

    One table per partition. `add(log_end, t)` at every poll; `lag_seconds(committed, now)`
    places the committed offset between the two bracketing points by linear interpolation.
    A point keeps the first and the last time its offset was seen, so a partition nobody
    produces to does not smear the interpolation: the messages after offset o were produced
    after the *last* time the log end was o, and before the *first* time it was higher.

    Args:
        max_points: distinct log-end offsets kept; older ones are dropped, and a committed offset
            older than the table gets a lower bound (see `lag_seconds`).
    """

    def __init__(self, max_points: int = 3600):
        self._offsets: deque[int] = deque(maxlen=max_points)
        self._first: deque[float] = deque(maxlen=max_points)
        self._last: deque[float] = deque(maxlen=max_points)

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
        self._offsets.append(log_end)
        self._first.append(t)
        self._last.append(t)

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
            0 when caught up (committed >= newest log end); now - interpolated produce time;
            a lower bound when the offset is older than the table; NaN when the table is empty
            or `committed` is None/NaN.
        """
        if committed is None or not self._offsets or (isinstance(committed, float)
                                                      and math.isnan(committed)):
            return math.nan
        if committed >= self._offsets[-1]:
            return 0.0
        return max(0.0, now - self.produce_time(int(committed)))


@dataclass(frozen=True, slots=True)
class Observation:
    """One sample of a partition for the Burrow evaluation."""

    t: float
    committed: int
    lag: int


def partition_status(window: Sequence[Observation], *, now: float | None = None,
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
        window: last N observations.
        now: evaluation time (default the last observation's).
        last_change_t: when the committed offset first took its current value (may be before
            the window; default the window's first observation with that value).
        owned: whether a group member is assigned the partition; None if unknown.
        min_observations: observations needed for a verdict other than OK (at least 2).

    Returns:
        One of "OK", "WARN", "STALL", "STOP", "REWIND".
    """
    if len(window) < max(2, min_observations):
        return "OK"
    if any(o.lag <= 0 for o in window):
        return "OK"
    if any(b.committed < a.committed for a, b in zip(window, window[1:])):
        return "REWIND"
    if all(o.committed == window[0].committed for o in window):
        if owned is not None:
            return "STALL" if owned else "STOP"
        now = window[-1].t if now is None else now
        since = window[0].t if last_change_t is None else last_change_t
        return "STOP" if now - since > window[-1].t - window[0].t else "STALL"
    if all(b.lag >= a.lag for a, b in zip(window, window[1:])):
        return "WARN"
    return "OK"


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


class LagSampler:
    """Samples committed offsets, log-end offsets and lag of consumer groups.

    Per sample: one OffsetFetch per group (the AdminClient API takes one group per request),
    one DescribeGroups for all groups (owners and topics), one metadata request for partition
    counts, and one ListOffsets for every partition of every group. A partition without a
    committed offset has committed, lag_msgs and lag_s NA (as `kafka-consumer-groups` shows
    "-"), unless `missing_committed="earliest"`, which counts it from the log start offset
    (what a new consumer with auto.offset.reset=earliest will read).

    Args:
        bootstrap: bootstrap servers.
        groups: consumer group ids.
        interval_s: seconds between samples in the background thread.
        conf: extra client settings (security) for the AdminClient.
        window: Burrow window length in samples.
        request_timeout_s: timeout of every request; a dead broker makes an ERR sample.
        missing_committed: "nan" or "earliest", see above.

    Use as a context manager, or start()/stop(); `sample_once()` samples synchronously.
    """

    def __init__(self, bootstrap: str, groups: Iterable[str], *, interval_s: float = 1.0,
                 conf: Mapping[str, Any] | None = None, window: int = 10,
                 request_timeout_s: float = 5.0, missing_committed: str = "nan"):
        if missing_committed not in ("nan", "earliest"):
            raise ValueError(f"missing_committed must be 'nan' or 'earliest', not {missing_committed!r}")
        self.bootstrap = bootstrap
        self.groups = list(groups)
        self.interval_s = interval_s
        self.window = window
        self.request_timeout_s = request_timeout_s
        self.missing_committed = missing_committed
        self._admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap,
                                   "socket.timeout.ms": int(request_timeout_s * 1000)})
        self._t0 = time.monotonic()
        self._tables: dict[tuple[str, int], LagTable] = {}
        self._states: dict[tuple[str, str, int], _PartitionState] = {}
        self._known: dict[str, set[tuple[str, int]]] = {g: set() for g in self.groups}
        self._rows: list[tuple] = []
        self._errors: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_sample: Callable[[pd.DataFrame], None] | None = None

    # ------------------------------------------------------------------ requests

    def _wait(self, futures: Mapping[Any, Any]) -> dict[Any, Any]:
        """Results by key; an exception instead of a result where one failed."""
        out = {}
        for key, fut in futures.items():
            try:
                out[key] = fut.result(timeout=self.request_timeout_s + 1.0)
            except Exception as exc:  # noqa: BLE001 - recorded as data by the caller
                out[key] = exc
        return out

    def _committed(self, groups: list[str]) -> dict[str, dict[tuple[str, int], int | None] | Exception]:
        futures = {}
        for g in groups:
            try:
                futures.update(self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(g)], request_timeout=self.request_timeout_s))
            except Exception as exc:  # noqa: BLE001
                futures[g] = _Failed(exc)
        out: dict[str, Any] = {}
        for g, res in self._wait(futures).items():
            if isinstance(res, Exception):
                out[g] = res
                continue
            # A partition without a commit comes back with offset -1001 (OFFSET_INVALID).
            out[g] = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                      for tp in res.topic_partitions or [] if tp.error is None}
        return out

    def _owners(self, groups: list[str]) -> dict[str, set[tuple[str, int]] | None]:
        try:
            futures = self._admin.describe_consumer_groups(groups, request_timeout=self.request_timeout_s)
        except Exception:  # noqa: BLE001 - ownership is optional information
            return {g: None for g in groups}
        out: dict[str, set[tuple[str, int]] | None] = {}
        for g, res in self._wait(futures).items():
            if isinstance(res, Exception):
                out[g] = None
                continue
            owned = set()
            for m in res.members or []:
                if m.assignment is not None:
                    owned.update((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
            out[g] = owned
        return out

    def _partitions(self, topics: set[str]) -> dict[str, list[int]]:
        if not topics:
            return {}
        try:
            md = self._admin.list_topics(timeout=self.request_timeout_s)
        except Exception:  # noqa: BLE001 - fall back to the partitions the group knows
            return {}
        return {t: sorted(md.topics[t].partitions) for t in topics
                if t in md.topics and md.topics[t].error is None}

    def _offsets(self, partitions: set[tuple[str, int]],
                 spec: OffsetSpec) -> dict[tuple[str, int], int | Exception]:
        if not partitions:
            return {}
        try:
            futures = self._admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions},
                                               request_timeout=self.request_timeout_s)
        except Exception as exc:  # noqa: BLE001
            return {tp: exc for tp in partitions}
        return {(tp.topic, tp.partition): (r if isinstance(r, Exception) else r.offset)
                for tp, r in self._wait(futures).items()}

    # ------------------------------------------------------------------ sampling

    def sample_once(self) -> pd.DataFrame:
        """Take one sample of every group now.

        Returns:
            The sample's rows (columns as `frame()`); also appended to the sampler's history.
            Never raises for cluster errors: failed partitions (or a group with nothing known)
            get status ERR, and the message is kept in `errors()`.
        """
        now = time.monotonic()
        t = now - self._t0
        wall = pd.Timestamp.now(tz="UTC")
        rows: list[tuple] = []
        try:
            owners = self._owners(self.groups)
            # Ask for committed offsets only where DescribeGroups found the coordinator:
            # librdkafka 2.16 crashes the process (SIGSEGV in its main thread) on an
            # OffsetFetch while the cluster has no __consumer_offsets topic yet.
            ready = [g for g in self.groups if owners.get(g) is not None]
            committed = self._committed(ready)
            for g in self.groups:
                committed.setdefault(g, ClusterError(
                    f"group coordinator for {g!r} not available (yet)"))
            topics = {tp[0] for g in self.groups if isinstance(committed[g], dict) for tp in committed[g]}
            for g in self.groups:
                topics.update(tp[0] for tp in owners.get(g) or ())
            partitions = self._partitions(topics)
            per_group: dict[str, set[tuple[str, int]]] = {}
            for g in self.groups:
                tps = set(self._known[g])
                if isinstance(committed[g], dict):
                    tps.update(committed[g])
                tps.update(owners.get(g) or ())
                for topic in {tp[0] for tp in tps}:
                    tps.update((topic, p) for p in partitions.get(topic, ()))
                self._known[g] = tps
                per_group[g] = tps
            everything = set().union(*per_group.values()) if per_group else set()
            log_end = self._offsets(everything, OffsetSpec.latest())
            earliest = (self._offsets(everything, OffsetSpec.earliest())
                        if self.missing_committed == "earliest" else {})
            for tp, end in log_end.items():
                if not isinstance(end, Exception):
                    self._tables.setdefault(tp, LagTable()).add(end, now)
            for g in self.groups:
                rows.extend(self._group_rows(g, t, now, wall, committed[g], owners.get(g),
                                             per_group[g], log_end, earliest))
        except Exception as exc:  # noqa: BLE001 - a sampler thread must survive anything
            self._error(t, "", exc)
            rows = [(t, g, "", -1, None, None, None, math.nan, "ERR", wall) for g in self.groups]
        frame = lag_frame(rows)
        with self._lock:
            self._rows.extend(rows)
        if self.on_sample is not None:
            try:
                self.on_sample(frame)
            except Exception as exc:  # noqa: BLE001 - a callback never stops sampling
                self._error(t, "", exc)
        return frame

    def _group_rows(self, g, t, now, wall, committed, owned, tps, log_end, earliest) -> list[tuple]:
        if isinstance(committed, Exception):
            self._error(t, g, committed)
            if not tps:
                return [(t, g, "", -1, None, None, None, math.nan, "ERR", wall)]
            committed = None
        rows = []
        for topic, p in sorted(tps):
            end = log_end.get((topic, p))
            c = committed.get((topic, p)) if committed is not None else None
            if isinstance(end, Exception):
                self._error(t, g, end)
                rows.append((t, g, topic, p, c, None, None, math.nan, "ERR", wall))
                continue
            if c is None and committed is not None and self.missing_committed == "earliest":
                start = earliest.get((topic, p))
                c = start if isinstance(start, int) else None
            if committed is None or end is None:
                rows.append((t, g, topic, p, c, end, None, math.nan, "ERR", wall))
                continue
            if c is None:
                rows.append((t, g, topic, p, None, end, None, math.nan, "OK", wall))
                continue
            lag = max(0, end - c)
            lag_s = self._tables[(topic, p)].lag_seconds(c, now)
            state = self._states.setdefault((g, topic, p), _PartitionState(self.window))
            if not state.window or state.window[-1].committed != c:
                state.last_change_t = t
            state.window.append(Observation(t, c, lag))
            status = partition_status(state.window, now=t, last_change_t=state.last_change_t,
                                      owned=None if owned is None else (topic, p) in owned,
                                      min_observations=self.window)
            rows.append((t, g, topic, p, c, end, lag, lag_s, status, wall))
        return rows

    def _error(self, t: float, group: str, exc: BaseException) -> None:
        with self._lock:
            self._errors.append((t, group, f"{type(exc).__name__}: {exc}"))

    # ------------------------------------------------------------------ results

    def frame(self) -> pd.DataFrame:
        """Every sample so far.

        Returns:
            DataFrame with columns t (s since the sampler was created), group, topic, partition,
            committed, log_end, lag_msgs (nullable Int64), lag_s, status, time (UTC wall clock).
        """
        with self._lock:
            rows = list(self._rows)
        return lag_frame(rows)

    def group_status(self) -> dict[str, str]:
        """{group: worst partition status of the latest sample}."""
        frame = self.frame()
        if frame.empty:
            return {g: "OK" for g in self.groups}
        latest = frame[frame["t"] == frame.groupby("group")["t"].transform("max")]
        return {g: group_status(latest.loc[latest["group"] == g, "status"]) for g in self.groups}

    def errors(self) -> pd.DataFrame:
        """Errors met while sampling: columns t, group, error."""
        with self._lock:
            rows = list(self._errors)
        return pd.DataFrame(rows, columns=["t", "group", "error"]).astype(
            {"t": "float64", "group": "str", "error": "str"})

    # ------------------------------------------------------------------ thread

    def start(self) -> LagSampler:
        """Sample every `interval_s` in a daemon thread until `stop()`; returns self."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kafkabench-lag", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_t += self.interval_s
            # A slow sample (timeouts) skips ticks rather than sampling back to back.
            if next_t < time.monotonic():
                next_t = time.monotonic() + self.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread, waiting for a sample in progress (at most a few request timeouts)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else 4 * self.request_timeout_s + 5)
            self._thread = None

    def __enter__(self) -> LagSampler:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _Failed:
    """A future-alike that raises the exception a request call raised."""

    def __init__(self, exc: BaseException):
        self._exc = exc

    def result(self, timeout: float | None = None):
        raise self._exc


def lag_frame(rows: Iterable[tuple] = ()) -> pd.DataFrame:
    """Rows (in `LAG_COLUMNS` order) as a lag DataFrame with its dtypes; no rows: an empty one."""
    frame = pd.DataFrame(list(rows), columns=LAG_COLUMNS)
    return frame.astype({"t": "float64", "group": "str", "topic": "str", "partition": "int64",
                         "committed": "Int64", "log_end": "Int64", "lag_msgs": "Int64",
                         "lag_s": "float64", "status": "str", "time": "datetime64[us, UTC]"})


def sample_lag(groups: Iterable[str], *, bootstrap: str, interval_s: float = 1.0,
               duration_s: float = 10.0, conf: Mapping[str, Any] | None = None,
               on_sample: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Sample the lag of consumer groups for a while.

    Args:
        groups: consumer group ids.
        bootstrap: bootstrap servers.
        interval_s: seconds between samples.
        duration_s: how long to sample.
        conf: extra client settings (security).
        on_sample: called with each sample's rows (from the sampler thread); its exceptions
            are recorded and ignored.

    Returns:
        `LagSampler.frame()`: t, group, topic, partition, committed, log_end, lag_msgs, lag_s,
        status, time.
    """
    sampler = LagSampler(bootstrap, groups, interval_s=interval_s, conf=conf)
    sampler.on_sample = on_sample
    with sampler:
        time.sleep(duration_s)
    return sampler.frame()
