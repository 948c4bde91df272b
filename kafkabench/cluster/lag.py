"""Consumer lag: in messages, in seconds (kafka-lag-exporter) and as a Burrow-style status.

The pure parts (`LagTable`, `partition_status`, `group_status`) take numbers and return
numbers; `LagSampler` feeds them from the cluster with the AdminClient, one batched request of
each kind per sample, every call with a timeout, plus one batched read of the oldest unconsumed
record of each lagging partition (its timestamp gives the lag in seconds beyond the sampler's
own memory).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from kafkabench.cluster.admin import admin_client, describe_topics
from kafkabench.core.errors import ClusterError, ConfigError
from kafkabench.core.log import librdkafka_logger
from kafkabench.core.sidecar import Restart, Sidecar
from kafkabench.core.threads import Periodic

# Names of the flat module `kafkabench.lag`, which now points here.
from kafkabench.measure.lagmath import (
    LAG_COLUMNS as LAG_COLUMNS,
)
from kafkabench.measure.lagmath import (
    STATUSES as STATUSES,
)
from kafkabench.measure.lagmath import (
    LagTable,
    _PartitionState,
    group_status,
    lag_frame,
    partition_status,
)
from kafkabench.measure.lagmath import (
    Observation as Observation,
)


class OldestReader:
    """Reads the timestamp of the record at given offsets, many partitions in one go.

    A plain consumer that never joins a group (librdkafka wants a `group.id` all the same; it
    never subscribes or commits, so no group is created): `assign` every partition at its offset,
    take the first record of each, unassign. Unassigning a partition as soon as its first record
    is in makes librdkafka drop the rest of its fetched batch unseen, so Python touches one
    message per partition (measured: 48 partitions of a 200k-message backlog in 25-45 ms of CPU).

    Args:
        bootstrap: bootstrap servers.
        conf: extra client settings (security).
        timeout_s: time budget of one `read`.
    """

    def __init__(self, bootstrap: str, conf: Mapping[str, Any] | None = None, timeout_s: float = 5.0):
        self.timeout_s = timeout_s
        self._conf = {"logger": librdkafka_logger(), **(conf or {}), "bootstrap.servers": bootstrap,
                      "group.id": "kafkabench-lag-reader",
                      "enable.auto.commit": False, "enable.auto.offset.store": False,
                      # A committed offset deleted by retention: read where the log starts now.
                      "auto.offset.reset": "earliest",
                      # The record at the offset, even inside an open or aborted transaction.
                      "isolation.level": "read_uncommitted",
                      # Fetch little per partition: only the first record is wanted.
                      "max.partition.fetch.bytes": 65536, "queued.max.messages.kbytes": 1024,
                      "fetch.queue.backoff.ms": 10, "enable.partition.eof": False,
                      "socket.timeout.ms": max(10, int(timeout_s * 1000))}
        self._consumer: Consumer | None = None

    def read(self, offsets: Mapping[tuple[str, int], int],
             timeout_s: float | None = None) -> tuple[dict[tuple[str, int], float], str | None]:
        """Timestamps of the first record at or after each offset.

        Args:
            offsets: {(topic, partition): offset}.
            timeout_s: time budget, at most the reader's `timeout_s` (the default).

        Returns:
            ({(topic, partition): timestamp in s since the epoch, NaN for a record without one},
            None, or why some partitions were not read in time: those are left out.
        """
        out: dict[tuple[str, int], float] = {}
        if not offsets:
            return out, None
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        consumer, pending, error = self._consumer, dict(offsets), None
        timeout_s = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        deadline = time.monotonic() + timeout_s
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in pending.items()])
        try:
            while pending and (left := deadline - time.monotonic()) > 0:
                error = _take_first(consumer, consumer.poll(min(left, 0.1)), pending, out) or error
        finally:
            consumer.unassign()
        if not pending:
            return out, None
        return out, (f"oldest record of {len(pending)} partition(s) not read within {timeout_s:.3g} s"
                     + (f", last error {error}" if error else ""))

    def close(self) -> None:
        """Close the consumer (a later `read` opens a new one)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()


def _take_first(consumer: Consumer, msg: Message | None, pending: dict[tuple[str, int], int],
                out: dict[tuple[str, int], float]) -> str | None:
    """Move the timestamp of a pending partition's first record from `pending` to `out` and stop
    fetching that partition; returns the error text when `msg` is an error, else None."""
    if msg is None:
        return None
    if msg.error() is not None:
        return f"{msg.error().name()}: {msg.error().str()}"
    key = (msg.topic(), msg.partition())
    if key not in pending or msg.offset() < pending[key]:
        return None
    out[key] = _timestamp_s(msg)
    del pending[key]
    consumer.incremental_unassign([TopicPartition(*key)])
    return None


def _timestamp_s(msg: Message) -> float:
    """A record's timestamp in s since the epoch; NaN when it has none."""
    kind, ts = msg.timestamp()
    return ts / 1000.0 if kind != TIMESTAMP_NOT_AVAILABLE and ts >= 0 else math.nan


class LagHistory:
    """The samples a lag sampler took so far: rows, errors, the latest sample, and the frames
    and statuses read from them. Shared by `LagSampler` (which samples in this process) and
    `IsolatedLagSampler` (whose samples come from a child process)."""

    groups: list[str]

    def _init_history(self) -> None:
        self._rows: list[tuple] = []
        self._errors: list[tuple[float, str, str]] = []
        self._latest = lag_frame()
        self._lock = threading.Lock()
        self.on_sample: Callable[[pd.DataFrame], None] | None = None

    def _error(self, t: float, group: str, message: str) -> str:
        """Record an error once per sample, group and message; returns the message."""
        with self._lock:
            if not any(e[0] == t and e[1] == group and e[2] == message for e in self._errors[-50:]):
                self._errors.append((t, group, message))
        return message

    def _keep(self, rows: list[tuple]) -> pd.DataFrame:
        """Add one sample's rows; they become the latest sample. Returns them as a frame."""
        frame = lag_frame(rows)
        with self._lock:
            self._rows.extend(rows)
            self._latest = frame
        return frame

    def _tell(self, frame: pd.DataFrame, t: float) -> None:
        """Hand a sample to `on_sample` (a callback that fails is an error, never a stop)."""
        if self.on_sample is not None:
            try:
                self.on_sample(frame)
            except Exception as exc:  # noqa: BLE001 - a callback never stops sampling
                self._error(t, "", f"on_sample callback: {_text(exc)}")

    def frame(self) -> pd.DataFrame:
        """Every sample so far.

        Returns:
            DataFrame with columns `LAG_COLUMNS`: t (s since the sampler was created), group,
            topic, partition, committed, log_end, lag_msgs (nullable Int64), lag_s, status,
            time (UTC wall clock), oldest_age_s, error.
        """
        with self._lock:
            rows = list(self._rows)
        return lag_frame(rows)

    def latest(self) -> pd.DataFrame:
        """The rows of the latest sample (an empty lag frame before the first)."""
        with self._lock:
            return self._latest

    def group_status(self) -> dict[str, str]:
        """{group: worst partition status of the group's latest sample}."""
        frame = self.frame()
        frame = frame[frame["status"] != "GAP"]
        if frame.empty:
            return {g: "OK" for g in self.groups}
        latest = frame[frame["t"] == frame.groupby("group")["t"].transform("max")]
        return {g: group_status(latest.loc[latest["group"] == g, "status"]) for g in self.groups}

    def errors(self) -> pd.DataFrame:
        """Errors met while sampling, one row per sample, group and message: columns t, group
        ("" when not about one group), error."""
        with self._lock:
            rows = list(self._errors)
        return pd.DataFrame(rows, columns=["t", "group", "error"]).astype(
            {"t": "float64", "group": "str", "error": "str"})

    @property
    def error_count(self) -> int:
        """Number of rows of `errors()`."""
        with self._lock:
            return len(self._errors)


def _check_sampler_options(window: int, request_timeout_s: float, missing_committed: str) -> None:
    """ConfigError naming a sampler option out of range."""
    if missing_committed not in ("nan", "earliest"):
        raise ConfigError(f"missing_committed must be 'nan' or 'earliest', not {missing_committed!r}")
    if window < 2:
        raise ConfigError(f"window={window!r}: the Burrow status compares at least 2 samples; "
                          "use 2 or more")
    if request_timeout_s <= 0:
        raise ConfigError(f"request_timeout_s={request_timeout_s!r} must be positive")


class LagSampler(LagHistory):
    """Samples committed offsets, log-end offsets and lag of consumer groups.

    Per sample: one DescribeGroups for all groups (owners and topics), one OffsetFetch per group
    (the AdminClient API takes one group per request), one Metadata request per topic of the groups
    (partition counts and deleted topics), one ListOffsets for every partition of every group,
    and one batched read of the record at the committed offset of each lagging partition whose
    offset moved since it was last read (`OldestReader`), for `oldest_age_s`.

    A partition without a committed offset has committed, lag_msgs and lag_s NA (as
    `kafka-consumer-groups` shows "-"), unless `missing_committed="earliest"`, which counts it
    from the log start offset (what a new consumer with auto.offset.reset=earliest will read).

    lag_s interpolates the committed offset in the partition's `LagTable`; a committed offset
    older than the table (produced before the sampler started, or before the table's memory)
    takes `oldest_age_s` instead, which is exact where the records have timestamps.

    Errors never raise and are never silent: a row that could not be sampled has status ERR and
    its reason in `error`; every error is kept in `errors()` and counted in `error_count`. A topic
    that disappears is reported once with status DELETED, then forgotten.

    Args:
        bootstrap: bootstrap servers.
        groups: consumer group ids.
        interval_s: seconds between samples in the background thread.
        conf: extra client settings (security) for the AdminClient and the reader.
        window: Burrow window length in samples (at least 2).
        request_timeout_s: timeout of every request; a dead broker makes an ERR sample.
        missing_committed: "nan" or "earliest", see above.
        group_topics: {group: the topics it reads}, for runs in which brokers die: then the
            sampler sends no Admin API request to a group coordinator (DescribeGroups,
            OffsetFetch) and reads committed offsets with a consumer of each group that never
            joins it (`Consumer.committed`); ownership is unknown, so STALL vs STOP follows
            Burrow's time rule. librdkafka 2.16 aborts the process when an Admin API request's
            connection to the coordinator drops (`rd_kafka_enq_once_del_source_return`
            assertion; librdkafka PR #5397). Wherever an abort must not cost the caller, sample
            in a child process instead: `IsolatedLagSampler`.
        t0: `time.monotonic()` of t = 0 (default: now). The clock is the whole machine's, so a
            sampler in a child process counts from its parent's t0.

    Use as a context manager, or start()/stop(); `sample_once()` samples synchronously (then
    `close()` when done).
    """

    def __init__(self, bootstrap: str, groups: Iterable[str], *, interval_s: float = 1.0,
                 conf: Mapping[str, Any] | None = None, window: int = 10,
                 request_timeout_s: float = 5.0, missing_committed: str = "nan",
                 group_topics: Mapping[str, Iterable[str]] | None = None, t0: float | None = None):
        _check_sampler_options(window, request_timeout_s, missing_committed)
        self._init_history()
        self.bootstrap = bootstrap
        self.groups = list(dict.fromkeys(groups))
        self.interval_s = interval_s
        self.window = window
        self.request_timeout_s = request_timeout_s
        self.missing_committed = missing_committed
        self._admin = admin_client(bootstrap, {**(conf or {}),
                                               "socket.timeout.ms": int(request_timeout_s * 1000)})
        self._reader = OldestReader(bootstrap, conf, timeout_s=request_timeout_s)
        self._conf = {"logger": librdkafka_logger(), **(conf or {}), "bootstrap.servers": bootstrap}
        self._group_topics = (None if group_topics is None
                              else {g: sorted(set(group_topics.get(g, ()))) for g in self.groups})
        self._offset_readers: dict[str, Consumer] = {}
        self._t0 = time.monotonic() if t0 is None else t0
        self._tables: dict[tuple[str, int], LagTable] = {}
        self._states: dict[tuple[str, str, int], _PartitionState] = {}
        self._known: dict[str, set[tuple[str, int]]] = {g: set() for g in self.groups}
        self._deleted: set[str] = set()
        self._produced_at: dict[tuple[str, int, int], float] = {}
        self._sampling = threading.Lock()
        self._thread = Periodic(self.sample_once, interval_s, name="kafkabench-lag")

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

    def _owners(self, groups: list[str]) -> dict[str, set[tuple[str, int]] | Exception]:
        try:
            futures = self._admin.describe_consumer_groups(groups, request_timeout=self.request_timeout_s)
        except Exception as exc:  # noqa: BLE001
            return {g: exc for g in groups}
        out: dict[str, set[tuple[str, int]] | Exception] = {}
        for g, res in self._wait(futures).items():
            if isinstance(res, Exception):
                out[g] = res
                continue
            owned = set()
            for m in res.members or []:
                if m.assignment is not None:
                    owned.update((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
            out[g] = owned
        return out

    def _partitions(self, topics: set[str], t: float) -> dict[str, list[int] | None]:
        """{topic: its partitions, or None when the topic does not exist} of the groups' topics.

        Metadata of these topics only (`admin.describe_topics`): a metadata request for every
        topic made each sample pay for the whole cluster's. A topic whose description failed
        otherwise is left out (and the error recorded): its partitions stay those the groups
        know.
        """
        try:
            found = describe_topics(self._admin, topics, self.request_timeout_s)
        except Exception as exc:  # noqa: BLE001 - fall back to the partitions the groups know
            found = {topic: exc for topic in topics}
        out: dict[str, list[int] | None] = {}
        failed: dict[str, list[str]] = {}
        for topic, res in found.items():
            if isinstance(res, KafkaError):
                res = KafkaException(res)
            if isinstance(res, list):
                out[topic] = [p.partition for p in res]
            elif _says_unknown_topic(res):
                out[topic] = None
            else:
                failed.setdefault(_text(res), []).append(topic)
        for reason, names in failed.items():  # one error per reason, not per topic
            self._error(t, "", f"describing {_some(names)} failed: {reason}")
        return out

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
        """Take one sample of every group now (one at a time: concurrent calls wait).

        Returns:
            The sample's rows (columns as `frame()`); also appended to the sampler's history.
            Never raises for cluster errors: rows that could not be sampled (or one row with
            partition -1 for a group with nothing known) get status ERR and the reason in
            `error`; the errors are also kept in `errors()`.
        """
        with self._sampling:
            t, rows = self.sample_rows()
            frame = self._keep(rows)
        self._tell(frame, t)
        return frame

    def sample_rows(self) -> tuple[float, list[tuple]]:
        """One sample's (t, rows in `LAG_COLUMNS` order), not yet kept (see `sample_once`)."""
        now = time.monotonic()
        t = now - self._t0
        wall = pd.Timestamp.now(tz="UTC")
        try:
            return t, self._sample(t, now, wall)
        except Exception as exc:  # noqa: BLE001 - a sampler thread must survive anything
            reason = self._error(t, "", _text(exc))
            return t, [_group_row(t, g, wall, "ERR", reason) for g in self.groups]

    def _sample(self, t: float, now: float, wall: pd.Timestamp) -> list[tuple]:
        """Ask the cluster (the requests in the class docstring, in order); the sample's rows."""
        committed, owned = self._ask_groups()
        per_group = {g: self._partitions_of(g, committed[g], owned[g]) for g in self.groups}
        per_group, gone = self._with_topics_described(t, per_group)
        live = {tp for tps in per_group.values() for tp in tps if tp[0] not in gone}
        log_end = self._offsets(live, OffsetSpec.latest())
        gone |= _topics_not_found(log_end)  # deleted since the topics were described (or that failed)
        earliest = (self._offsets(live, OffsetSpec.earliest())
                    if self.missing_committed == "earliest" else {})
        self._add_log_end(log_end, now)
        offsets = {g: _next_offsets(committed[g], per_group[g], earliest) for g in self.groups}
        self._read_oldest(t, offsets, log_end)
        sample = _Sample(t, now, wall, log_end, gone)
        rows = [row for g in self.groups
                for row in self._group_rows(g, sample, committed[g], owned[g], offsets[g])]
        self._remember(per_group, gone)
        return rows

    def _ask_groups(self) -> tuple[dict[str, dict[tuple[str, int], int | None] | Exception],
                                   dict[str, set[tuple[str, int]] | None]]:
        """({group: committed offsets, or why they are unknown}, {group: the partitions its
        members own, None when unknown})."""
        if self._group_topics is not None:
            return self._committed_by_consumer(), {g: None for g in self.groups}
        owners = self._owners(self.groups)
        for g in self.groups:
            owners.setdefault(g, ClusterError("no answer"))
        # Ask for committed offsets only where DescribeGroups found the coordinator:
        # librdkafka 2.16 crashes the process (SIGSEGV in its main thread) on an
        # OffsetFetch while the cluster has no __consumer_offsets topic yet.
        committed = self._committed([g for g in self.groups if not isinstance(owners[g], Exception)])
        for g in self.groups:
            if g not in committed:
                committed[g] = ClusterError(f"DescribeGroups failed: {_text(owners[g])}")
        owned = {g: (o if isinstance(o, set) else None) for g, o in owners.items()}
        return committed, owned

    def _committed_by_consumer(self) -> dict[str, dict[tuple[str, int], int | None] | Exception]:
        """Committed offsets of every partition of each group's topics, through a consumer of
        the group that never subscribes (so never joins it): no Admin API coordinator request."""
        topics = {t for ts in self._group_topics.values() for t in ts}
        try:
            found = describe_topics(self._admin, topics, self.request_timeout_s)
        except Exception as exc:  # noqa: BLE001 - every group's offsets are unknown
            return {g: exc for g in self.groups}
        out: dict[str, Any] = {}
        for g, names in self._group_topics.items():
            tps = [TopicPartition(t, p.partition) for t in names
                   if isinstance(found.get(t), list) for p in found[t]]
            try:
                got = self._offset_reader(g).committed(tps, timeout=self.request_timeout_s) if tps else []
            except Exception as exc:  # noqa: BLE001 - recorded as data by the caller
                out[g] = exc
                continue
            out[g] = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                      for tp in got if tp.error is None}
        return out

    def _offset_reader(self, group: str) -> Consumer:
        """The consumer that reads `group`'s committed offsets (created once)."""
        reader = self._offset_readers.get(group)
        if reader is None:
            reader = self._offset_readers[group] = Consumer(
                {**self._conf, "group.id": group, "enable.auto.commit": False,
                 "socket.timeout.ms": int(self.request_timeout_s * 1000)})
        return reader

    def _partitions_of(self, group: str, committed: dict[tuple[str, int], int | None] | Exception,
                       owned: set[tuple[str, int]] | None) -> set[tuple[str, int]]:
        """The partitions a group is known to read: seen before, owned now, or committed."""
        tps = self._known[group] | (owned or set())
        return tps | set(committed) if isinstance(committed, dict) else tps

    def _with_topics_described(self, t: float, per_group: dict[str, set[tuple[str, int]]]
                               ) -> tuple[dict[str, set[tuple[str, int]]], set[str]]:
        """Every partition of the groups' topics (a group that reads some partitions of a topic
        lags on all of them), and the topics deleted since the last sample.

        Returns:
            ({group: its partitions, none of a topic reported deleted before}, {deleted topic}).
        """
        partitions = self._partitions({tp[0] for tps in per_group.values() for tp in tps}, t)
        gone = {topic for topic, parts in partitions.items() if parts is None}
        self._deleted -= set(partitions) - gone  # created again
        # A deleted topic is reported once, then ignored: a group's offsets of it may linger.
        gone -= self._deleted
        return {g: _all_partitions(tps, partitions, self._deleted) for g, tps in per_group.items()}, gone

    def _add_log_end(self, log_end: Mapping[tuple[str, int], int | Exception], now: float) -> None:
        """Add each log-end offset to its partition's `LagTable`."""
        for tp, end in log_end.items():
            if not isinstance(end, Exception):
                self._tables.setdefault(tp, LagTable()).add(end, now)

    def _remember(self, per_group: Mapping[str, set[tuple[str, int]]], gone: set[str]) -> None:
        """Keep the groups' partitions for the next sample; forget the deleted topics."""
        for g in self.groups:
            self._known[g] = {tp for tp in per_group[g] if tp[0] not in gone}
        for topic in gone:
            self._forget(topic)

    def _read_oldest(self, t: float, offsets: Mapping[str, Mapping[tuple[str, int], int | None]],
                     log_end: Mapping[tuple[str, int], int | Exception]) -> None:
        """Produce times of the records at the lagging committed offsets, read once per offset."""
        wanted = _lagging(offsets, log_end)
        # Keep only offsets still committed: the cache stays as small as the partitions.
        self._produced_at = {k: v for k, v in self._produced_at.items() if k in wanted}
        todo: dict[tuple[str, int], list[int]] = {}
        for topic, p, c in sorted(wanted - self._produced_at.keys()):
            todo.setdefault((topic, p), []).append(c)
        # A partition is assigned once per read: groups at different offsets of one partition
        # take one read each, all within one request timeout.
        deadline = time.monotonic() + self.request_timeout_s
        while todo and (left := deadline - time.monotonic()) > 0:
            self._read_produced_at(t, {tp: rest.pop() for tp, rest in todo.items()}, left)
            todo = {tp: rest for tp, rest in todo.items() if rest}
        if todo:
            self._error(t, "", f"reading the oldest unconsumed records: {len(todo)} partition(s) "
                               f"not read within {self.request_timeout_s:g} s")

    def _read_produced_at(self, t: float, offsets: dict[tuple[str, int], int], timeout_s: float) -> None:
        """Read the records at `offsets` ({(topic, partition): offset}) into the cache."""
        try:
            read, error = self._reader.read(offsets, timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 - recorded, the sample goes on without them
            read, error = {}, _text(exc)
        for (topic, p), ts in read.items():
            self._produced_at[(topic, p, offsets[(topic, p)])] = ts
        if error:
            self._error(t, "", f"reading the oldest unconsumed records: {error}")

    def _group_rows(self, g: str, s: _Sample, committed: dict | Exception,
                    owned: set[tuple[str, int]] | None,
                    offsets: Mapping[tuple[str, int], int | None]) -> list[tuple]:
        """The rows of one group: one per partition, or one ERR row about the group when its
        committed offsets are unknown and no partition of it is known."""
        failed = None
        if isinstance(committed, Exception):
            failed = self._error(s.t, g, str(committed) if isinstance(committed, ClusterError)
                                 else f"OffsetFetch failed: {_text(committed)}")
            if not offsets:
                return [_group_row(s.t, g, s.wall, "ERR", failed)]
        return [self._partition_row(g, tp, offsets[tp], s, owned, failed) for tp in sorted(offsets)]

    def _partition_row(self, g: str, tp: tuple[str, int], c: int | None, s: _Sample,
                       owned: set[tuple[str, int]] | None, failed: str | None) -> tuple:
        """The row of one partition of a group; `failed`: why the group's offsets are unknown."""
        if tp[0] in s.gone:
            return s.row(g, tp, "DELETED", committed=c)
        end = s.log_end.get(tp)
        if isinstance(end, Exception) or end is None:
            reason = self._error(s.t, g, f"ListOffsets of {tp[0]!r} failed: "
                                         f"{_text(end) if end is not None else 'no answer'}")
            return s.row(g, tp, "ERR", committed=c, error=reason)
        if failed is not None:
            return s.row(g, tp, "ERR", log_end=end, error=failed)
        if c is None:
            return s.row(g, tp, "OK", log_end=end)
        return self._lag_row(g, tp, c, end, s, owned)

    def _lag_row(self, g: str, tp: tuple[str, int], c: int, end: int, s: _Sample,
                 owned: set[tuple[str, int]] | None) -> tuple:
        """The row of a partition with a committed and a log-end offset."""
        lag = max(0, end - c)
        oldest = self._oldest_age(tp, c, lag, s.wall)
        state = self._states.setdefault((g, *tp), _PartitionState(self.window))
        state.observe(s.t, c, lag)
        status = partition_status(state.window, now=s.t, last_change_t=state.last_change_t,
                                  owned=None if owned is None else tp in owned,
                                  min_observations=self.window)
        return s.row(g, tp, status, committed=c, log_end=end, lag=lag,
                     lag_s=self._lag_seconds(tp, c, lag, oldest, s.now), oldest=oldest)

    def _oldest_age(self, tp: tuple[str, int], c: int, lag: int, wall: pd.Timestamp) -> float:
        """Age of the record at the committed offset: 0 when caught up, NaN when not read."""
        if lag == 0:
            return 0.0
        produced = self._produced_at.get((*tp, c), math.nan)
        return math.nan if math.isnan(produced) else max(0.0, wall.timestamp() - produced)

    def _lag_seconds(self, tp: tuple[str, int], c: int, lag: int, oldest: float, now: float) -> float:
        """The `LagTable` interpolation; the oldest record's age when the table cannot place `c`."""
        table = self._tables[tp]
        if lag and not table.covers(c) and not math.isnan(oldest):
            return oldest
        return table.lag_seconds(c, now)

    def _forget(self, topic: str) -> None:
        """Drop every trace of a deleted topic; it comes back if it is created again."""
        self._deleted.add(topic)
        for g in self.groups:
            self._known[g] = {tp for tp in self._known[g] if tp[0] != topic}
        self._tables = {k: v for k, v in self._tables.items() if k[0] != topic}
        self._states = {k: v for k, v in self._states.items() if k[1] != topic}
        self._produced_at = {k: v for k, v in self._produced_at.items() if k[0] != topic}

    # ------------------------------------------------------------------ thread

    def start(self) -> LagSampler:
        """Sample every `interval_s` in a daemon thread until `stop()`; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread, waiting for a sample in progress (at most a few request timeouts),
        and close the reader's consumer."""
        self._thread.stop(timeout_s if timeout_s is not None else 5 * self.request_timeout_s + 5)
        self.close()

    def close(self) -> None:
        """Close the consumer that reads oldest records (after `sample_once` without a thread)."""
        # Never under a sample in progress; if one is stuck past its timeouts, leave it to GC.
        if self._sampling.acquire(timeout=self.request_timeout_s + 1.0):
            try:
                for reader in self._offset_readers.values():
                    reader.close()
                self._offset_readers.clear()
                self._reader.close()
            finally:
                self._sampling.release()

    def __enter__(self) -> LagSampler:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


class _LagProbe:
    """A `LagSampler` in a sidecar's child process: each sample is (t, rows, new errors)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.sampler = LagSampler(*args, **kwargs)
        self._errors_sent = 0

    def sample(self) -> tuple[float, list[tuple], list[tuple[float, str, str]]]:
        t, rows = self.sampler.sample_rows()
        with self.sampler._lock:
            errors = self.sampler._errors[self._errors_sent:]
        self._errors_sent += len(errors)
        return t, rows, errors

    def close(self) -> None:
        self.sampler.close()


class IsolatedLagSampler(LagHistory):
    """A `LagSampler` whose requests run in a supervised child process (`kafkabench.sidecar`).

    The same results (`frame`, `latest`, `group_status`, `errors`, `on_sample`), but a
    client-library abort while a broker dies (docs/librdkafka-coordinator-abort.md) kills only
    the child: it is restarted within a second or two, and the gap is a row per group with
    status GAP and the reason in `error` (never filled in). The new child's Burrow windows and
    lag-in-seconds tables start empty; lag in seconds then comes from the oldest unconsumed
    record's timestamp.

    Args: as `LagSampler`'s.

    Attributes:
        restarts: every restart of the child (`kafkabench.sidecar.Restart`).
    """

    def __init__(self, bootstrap: str, groups: Iterable[str], *, interval_s: float = 1.0,
                 conf: Mapping[str, Any] | None = None, window: int = 10,
                 request_timeout_s: float = 5.0, missing_committed: str = "nan",
                 group_topics: Mapping[str, Iterable[str]] | None = None):
        _check_sampler_options(window, request_timeout_s, missing_committed)
        self._init_history()
        self.bootstrap = bootstrap
        self.groups = list(dict.fromkeys(groups))
        self.interval_s = interval_s
        self.request_timeout_s = request_timeout_s
        self._t0 = time.monotonic()
        self._kwargs = {"conf": dict(conf or {}), "window": window, "request_timeout_s": request_timeout_s,
                        "missing_committed": missing_committed, "t0": self._t0,
                        "group_topics": (None if group_topics is None
                                         else {g: list(ts) for g, ts in group_topics.items()})}
        self._sidecar: Sidecar | None = None

    @property
    def restarts(self) -> list[Restart]:
        return list(self._sidecar.restarts) if self._sidecar is not None else []

    def _start_sidecar(self, interval_s: float) -> Sidecar:
        if self._sidecar is None:
            # A sample may take a few request timeouts (one per kind of request) before a
            # child that sends nothing counts as stuck.
            self._sidecar = Sidecar("lag sampler", _LagProbe, (self.bootstrap, self.groups), self._kwargs,
                                    on_sample=self._take, interval_s=interval_s,
                                    stall_s=max(30.0, 6 * self.request_timeout_s + interval_s),
                                    on_restart=self._gap).start()
        return self._sidecar

    def start(self) -> IsolatedLagSampler:
        """Sample every `interval_s` in the child until `stop()`; returns self."""
        self._start_sidecar(self.interval_s)
        return self

    def sample_once(self) -> pd.DataFrame:
        """Take one sample now (the child's; starts one that samples only when asked if none runs).

        Returns:
            The sample's rows; when the child gave none in time (it could not start, or died
            twice), one ERR row per group saying why.
        """
        sidecar = self._start_sidecar(0.0)
        # The child imports and connects first (a few seconds on a busy machine).
        got = sidecar.sample_now(timeout_s=6 * self.request_timeout_s + 30.0)
        if got is not None:
            return self.latest()
        t = time.monotonic() - self._t0
        why = self._error(t, "", f"no lag sample: {sidecar.failure or 'the sampler process gave none in time'}")
        rows = [_group_row(t, g, pd.Timestamp.now(tz="UTC"), "ERR", why) for g in self.groups]
        frame = self._keep(rows)
        self._tell(frame, t)
        return frame

    def _take(self, sample: tuple[float, list[tuple], list[tuple[float, str, str]]]) -> None:
        t, rows, errors = sample
        with self._lock:
            self._errors.extend(errors)
        frame = self._keep(rows)
        self._tell(frame, t)

    def _gap(self, restart: Restart) -> None:
        t = time.monotonic() - self._t0
        why = self._error(t, "", restart.text)
        wall = pd.Timestamp(restart.died_wall, unit="s", tz="UTC")
        with self._lock:
            self._rows.extend(_group_row(t, g, wall, "GAP", why) for g in self.groups)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the child (a sample in progress is cut short)."""
        if self._sidecar is not None:
            self._sidecar.stop(timeout_s if timeout_s is not None else 10.0)

    def close(self) -> None:
        """Same as `stop` (for symmetry with `LagSampler`)."""
        self.stop()

    def __enter__(self) -> IsolatedLagSampler:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


class _Failed:
    """A future-alike that raises the exception a request call raised."""

    def __init__(self, exc: BaseException):
        self._exc = exc

    def result(self, timeout: float | None = None):
        raise self._exc


def _text(exc: BaseException) -> str:
    """An error as one line: the Kafka error's name and reason, else the exception's."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return f"{type(exc).__name__}: {exc}"


def _is_unknown_topic(err: Any) -> bool:
    """Whether a KafkaError (or None) says the topic does not exist."""
    return isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def _says_unknown_topic(result: Any) -> bool:
    """Whether a request's result is a KafkaException saying the topic does not exist."""
    return isinstance(result, KafkaException) and bool(result.args) and _is_unknown_topic(result.args[0])


def _some(names: list[str]) -> str:
    """Up to three names, quoted, then how many more."""
    shown = ", ".join(repr(n) for n in sorted(names)[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _all_partitions(tps: set[tuple[str, int]], partitions: Mapping[str, list[int] | None],
                    deleted: set[str]) -> set[tuple[str, int]]:
    """`tps` with every partition of their topics (`partitions`: `admin.describe_topics`), without the
    partitions of `deleted` topics."""
    out = set(tps)
    for topic in {tp[0] for tp in tps}:
        out.update((topic, p) for p in partitions.get(topic) or ())
    return {tp for tp in out if tp[0] not in deleted}


def _topics_not_found(log_end: Mapping[tuple[str, int], int | Exception]) -> set[str]:
    """Topics whose every ListOffsets result says the topic does not exist."""
    results: dict[str, list[int | Exception]] = {}
    for (topic, _), r in log_end.items():
        results.setdefault(topic, []).append(r)
    return {topic for topic, rs in results.items() if all(_says_unknown_topic(r) for r in rs)}


def _next_offsets(committed: Mapping[tuple[str, int], int | None] | Exception,
                  tps: Iterable[tuple[str, int]],
                  earliest: Mapping[tuple[str, int], int | Exception]) -> dict[tuple[str, int], int | None]:
    """{partition: the group's committed offset}, else the log start offset from `earliest`
    (empty unless missing_committed="earliest"), else None; all None when `committed` failed."""
    if not isinstance(committed, Mapping):
        return dict.fromkeys(tps)
    out = {}
    for tp in tps:
        c = committed.get(tp)
        out[tp] = earliest[tp] if c is None and isinstance(earliest.get(tp), int) else c
    return out


def _lagging(offsets: Mapping[str, Mapping[tuple[str, int], int | None]],
             log_end: Mapping[tuple[str, int], int | Exception]) -> set[tuple[str, int, int]]:
    """(topic, partition, committed offset) of every group's partition that has unread records."""
    wanted = set()
    for per_tp in offsets.values():
        for (topic, p), c in per_tp.items():
            end = log_end.get((topic, p))
            if c is not None and isinstance(end, int) and c < end:
                wanted.add((topic, p, c))
    return wanted


@dataclass(frozen=True, slots=True)
class _Sample:
    """What one sample knows about every group: when it is, log-end offsets, deleted topics."""

    t: float  # s since the sampler was created
    now: float  # time.monotonic(), the clock of the `LagTable`s
    wall: pd.Timestamp
    log_end: Mapping[tuple[str, int], int | Exception]
    gone: set[str]

    def row(self, group: str, tp: tuple[str, int], status: str, *, committed: int | None = None,
            log_end: int | None = None, lag: int | None = None, lag_s: float = math.nan,
            oldest: float = math.nan, error: str = "") -> tuple:
        """A row of the lag frame, in `LAG_COLUMNS` order."""
        return (self.t, group, tp[0], tp[1], committed, log_end, lag, lag_s, status, self.wall,
                oldest, error)


def _group_row(t: float, group: str, wall: pd.Timestamp, status: str, error: str) -> tuple:
    """A row about a whole group (partition -1), e.g. ERR when nothing could be sampled."""
    return (t, group, "", -1, None, None, None, math.nan, status, wall, math.nan, error)


