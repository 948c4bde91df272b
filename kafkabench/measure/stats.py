"""Latency histograms and librdkafka statistics.

`LatencyRecorder` wraps HdrHistogram (the `hdrhistogram` package, module `hdrh`) for values in
integer microseconds. `StatsCollector` is a `stats_cb` for confluent-kafka that only stores the
raw JSON; `parse_statistics` turns those samples into a long DataFrame.
"""

from __future__ import annotations

import json
import math
import time
import weakref
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from kafkabench.core import contract

#: Summary keys of `LatencyRecorder.percentiles`, in order: the contract's ("avg", "p50", ...,
#: "p99_99", "max").
SUMMARY_KEYS: tuple[str, ...] = contract.PERCENTILE_KEYS
#: The percentile each "pNN" summary key reads: "p99_9" is the 99.9th.
PERCENTILES: dict[str, float] = {k: float(k[1:].replace("_", ".")) for k in SUMMARY_KEYS
                                 if k.startswith("p")}

_UNIT_DIVISOR = {"us": 1.0, "ms": 1_000.0, "s": 1_000_000.0}

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: anything slower is recorded as one hour
SIGNIFICANT_FIGURES = 3


def scale_us(value_us: float, unit: str) -> float:
    """Convert microseconds to `unit` ("us", "ms" or "s").

    Raises:
        ValueError: an unknown unit.
    """
    try:
        return value_us / _UNIT_DIVISOR[unit]
    except KeyError:
        raise ValueError(f"unknown time unit {unit!r}; expected one of {sorted(_UNIT_DIVISOR)}") from None


def _percentile_ladder(ticks_per_half_distance: int = 5, last: float = 99.999) -> tuple[float, ...]:
    # The steps HdrHistogram's percentile-distribution output takes: `ticks_per_half_distance`
    # points between 0 and 50, as many again between 50 and 75, and so on, so the ladder is
    # evenly spaced on the usual 1/(1-p) axis. The summary percentiles are added so a plot
    # passes exactly through the figures in the summary table.
    points = {0.0, last, *PERCENTILES.values()}
    p = 0.0
    while p < last:
        points.add(round(p, 6))
        ticks = ticks_per_half_distance * 2 ** (math.floor(math.log2(100.0 / (100.0 - p))) + 1)
        p += 100.0 / ticks
    return tuple(sorted(x for x in points if x <= last))


#: Percentiles at which `spectrum` reads every histogram.
PERCENTILE_LADDER: tuple[float, ...] = _percentile_ladder()


class LatencyRecorder:
    """An HdrHistogram of latencies in integer microseconds, 1 us to 1 hour, 3 significant digits.

    Values above one hour are recorded as one hour and negative values (clock skew between
    hosts, for end-to-end latency) as 0, so every recorded message is counted.

    `record` costs 1-2 us (hdrhistogram is pure Python); `record_many` takes a batch at
    numpy speed.
    """

    __slots__ = ("_hist",)

    def __init__(self, histogram: HdrHistogram | None = None):
        self._hist = histogram if histogram is not None else HdrHistogram(
            LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        # hdrh's encoder and histogram refer to each other: a reference cycle that only the
        # cyclic GC frees, and a run's parent decodes several ~190 KB histograms a second
        # that lived to the oldest generation (measured: +22 MB in 2 minutes). A weak back
        # reference lets reference counting free them at once.
        encoder = getattr(self._hist, "encoder", None)
        if encoder is not None and not isinstance(encoder.histogram, weakref.ProxyType):
            encoder.histogram = weakref.proxy(self._hist)

    def record(self, value_us: int, count: int = 1) -> None:
        """Record one latency (`count` times).

        Args:
            value_us: latency in microseconds (floats are truncated).
            count: how many messages had this latency.
        """
        value_us = int(value_us)
        if value_us > HIGHEST_US:
            value_us = HIGHEST_US
        elif value_us < 0:
            value_us = 0
        self._hist.record_value(value_us, count)

    def record_many(self, values: Sequence[float], scale: float = 1.0) -> None:
        """Record many latencies at once, at numpy speed.

        The hot loops append raw values to a list (tens of ns each) and hand it over once a
        second. numpy computes each value's HdrHistogram counts index exactly as
        `record_value` does (integer microseconds, unit magnitude 0), counts them with
        `bincount` and adds the counts to the histogram's counts array in one go; the total,
        min and max are updated as `record_value` would. Same histogram as recording one by
        one (tested), at ~35 ns per value instead of ~1.5 us.

        Args:
            values: latencies; `value * scale` is in microseconds (floats are truncated).
            scale: factor to microseconds, e.g. 1e6 for seconds.
        """
        if not len(values):
            return
        us = np.array(values, dtype=np.float64)  # a copy: scaled and floored in place
        if scale != 1.0:
            us *= scale
        np.clip(us, 0, HIGHEST_US, out=us)
        np.floor(us, out=us)
        ints = us.astype(np.int64)
        h = self._hist
        half_mag = h.sub_bucket_half_count_magnitude
        # Bucket index: how far the value's bit length exceeds the sub-bucket range (frexp's
        # exponent of a whole number is its bit length); then hdrh's _counts_index.
        bucket = np.frexp(us)[1].astype(np.int64)
        bucket -= half_mag + 1
        np.maximum(bucket, 0, out=bucket)
        index = ((bucket + 1) << half_mag) + (ints >> bucket) - h.sub_bucket_half_count
        counts = np.bincount(index, minlength=h.counts_len)
        if h.unit_magnitude != 0 or len(counts) != h.counts_len:  # not this module's layout
            distinct, times = np.unique(ints, return_counts=True)
            for value, count in zip(distinct.tolist(), times.tolist()):
                h.record_value(value, count)
            return
        np.ctypeslib.as_array(h.counts)[:] += counts.astype(np.uint64)
        h.total_count += len(ints)
        # record_value keeps the min and max of the values given: so do we.
        h.min_value = min(h.min_value, int(ints.min()))
        h.max_value = max(h.max_value, int(ints.max()))

    def merge(self, other: LatencyRecorder | str) -> LatencyRecorder:
        """Add another recorder (or its `encode()` string) into this one; returns self."""
        if isinstance(other, str):
            self._hist.decode_and_add(other)
        else:
            self._hist.add(other._hist)
        return self

    def encode(self) -> str:
        """HdrHistogram's compressed, base64 V2 encoding (readable by every HdrHistogram port)."""
        return self._hist.encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str | bytes) -> LatencyRecorder:
        """Rebuild a recorder from `encode()` output."""
        return cls(HdrHistogram.decode(encoded))

    @property
    def count(self) -> int:
        """Number of recorded values."""
        return self._hist.get_total_count()

    def __len__(self) -> int:
        return self.count

    def value_at(self, percentile: float, unit: str = "ms") -> float:
        """The value at `percentile` (0..100) in `unit`; NaN when nothing was recorded."""
        if not self.count:
            return math.nan
        return scale_us(self._hist.get_value_at_percentile(percentile), unit)

    def percentiles(self, unit: str = "ms", keys: Iterable[str] = SUMMARY_KEYS) -> dict[str, float]:
        """Summary figures, OMB's set by default.

        Args:
            unit: "us", "ms" or "s".
            keys: a subset of `SUMMARY_KEYS` ("avg", "p50", ..., "p99_99", "max");
                leave out "avg" when it is not needed: the mean walks every bucket.

        Returns:
            {key: value in `unit`}, NaN for every key when nothing was recorded.
        """
        keys = tuple(keys)
        unknown = [k for k in keys if k not in SUMMARY_KEYS]
        if unknown:
            raise ValueError(f"unknown percentile keys {unknown!r}; expected some of {SUMMARY_KEYS}")
        if not self.count:
            return {k: math.nan for k in keys}
        h = self._hist
        wanted = [PERCENTILES[k] for k in keys if k in PERCENTILES]
        values = h.get_percentile_to_value_dict(wanted) if wanted else {}
        out = {}
        for k in keys:
            if k == "avg":
                v = h.get_mean_value()
            elif k == "max":
                v = h.get_max_value()
            else:
                v = values[PERCENTILES[k]]
            out[k] = scale_us(v, unit)
        return out

    def values_at(self, percentiles: Iterable[float], unit: str = "ms") -> dict[float, float]:
        """Values at many percentiles in one pass: {percentile: value in `unit`}."""
        percentiles = list(percentiles)
        if not self.count:
            return {p: math.nan for p in percentiles}
        values = self._hist.get_percentile_to_value_dict(percentiles)
        return {p: scale_us(values[p], unit) for p in percentiles}

    def reset(self) -> None:
        """Forget every recorded value."""
        self._hist.reset()

    def copy(self) -> LatencyRecorder:
        """An independent recorder with the same counts."""
        return LatencyRecorder().merge(self)

    def __repr__(self) -> str:
        return f"LatencyRecorder(count={self.count})"


class SecondHistograms(MutableMapping):
    """{(second, histogram name): LatencyRecorder} of a run, compact.

    A LatencyRecorder holds ~190 KB of counters, so three a second grew a 30-minute run's
    parent process by ~1 GB. Seconds older than the newest by more than `live_s` are kept
    encoded (~2 KB each) and decoded (~0.1 ms) when read: a value read from them is a copy,
    so change one by assigning it back (`h[key] = h[key].merge(other)`).
    """

    def __init__(self, live_s: int = 5) -> None:
        self.live_s = live_s
        self._live: dict[tuple[int, str], LatencyRecorder] = {}
        self._frozen: dict[tuple[int, str], str] = {}
        self._newest = -math.inf

    def __getitem__(self, key: tuple[int, str]) -> LatencyRecorder:
        if key in self._live:
            return self._live[key]
        return LatencyRecorder.decode(self._frozen[key])

    def __setitem__(self, key: tuple[int, str], value: LatencyRecorder) -> None:
        t = key[0]
        if t < self._newest - self.live_s:
            self._live.pop(key, None)
            self._frozen[key] = value.encode()
            return
        self._frozen.pop(key, None)
        self._live[key] = value
        if t > self._newest:
            self._newest = t
            for old in [k for k in self._live if k[0] < t - self.live_s]:
                self._frozen[old] = self._live.pop(old).encode()

    def __delitem__(self, key: tuple[int, str]) -> None:
        if self._live.pop(key, None) is None:
            del self._frozen[key]

    def __contains__(self, key: object) -> bool:
        return key in self._live or key in self._frozen

    def __iter__(self) -> Iterator[tuple[int, str]]:
        yield from list(self._frozen)
        yield from list(self._live)

    def __len__(self) -> int:
        return len(self._live) + len(self._frozen)

    def encoded_bytes(self) -> int:
        """Bytes the encoded (older) seconds take."""
        return sum(map(len, self._frozen.values()))


def spectrum(recorders: Mapping[str, LatencyRecorder],
             percentiles: Iterable[float] = PERCENTILE_LADDER) -> pd.DataFrame:
    """Latency by percentile for several histograms, as HdrHistogram's distribution plots show.

    Args:
        recorders: {metric name: recorder}, e.g. RunResult.histograms.
        percentiles: the ladder, 0..99.999 evenly spaced on a 1/(1-p) axis by default.

    Returns:
        DataFrame with columns metric, percentile, value_ms; empty recorders are left out.
    """
    percentiles = list(percentiles)
    rows = []
    for name, rec in recorders.items():
        if not rec.count:
            continue
        for p, v in rec.values_at(percentiles, unit="ms").items():
            rows.append((name, p, v))
    frame = pd.DataFrame(rows, columns=["metric", "percentile", "value_ms"])
    return frame.astype({"metric": "str", "percentile": "float64", "value_ms": "float64"})


# ----------------------------------------------------------------- librdkafka statistics

#: Columns of `parse_statistics`' frame, in order (the contract's "librdkafka" frame).
STATS_COLUMNS: list[str] = contract.columns("librdkafka")

_CLIENT_FIELDS = ("msg_cnt", "msg_size", "replyq", "tx", "tx_bytes", "rx", "rx_bytes",
                  "txmsgs", "txmsg_bytes", "rxmsgs", "rxmsg_bytes")
#: librdkafka's rolling windows: {window: the statistics of it kept}.
_BROKER_WINDOWS = dict.fromkeys(("int_latency", "outbuf_latency", "rtt", "throttle"), ("avg", "p50", "p99"))
_BROKER_FIELDS = ("txretries", "txerrs", "req_timeouts", "outbuf_cnt", "waitresp_cnt",
                  "connects", "disconnects")
_TOPIC_WINDOWS = {"batchsize": ("avg", "p50", "p99"), "batchcnt": ("avg", "p50")}
_PARTITION_FIELDS = ("msgq_cnt", "xmit_msgq_cnt", "fetchq_cnt")
_CGRP_FIELDS = ("rebalance_cnt", "rebalance_age", "assignment_size", "stateage")


class StatsCollector:
    """A confluent-kafka `stats_cb` that keeps (monotonic time, raw JSON) and parses later.

    Pass it as `"stats_cb": collector` together with `"statistics.interval.ms"`.
    The callback runs inside the client's `poll`/`consume`/`flush`; it only appends to a
    deque, and never raises (an exception there would surface from `poll`).

    Args:
        client: label for the `client` column; default the JSON `name` ("rdkafka#producer-1"),
            which repeats across processes, so multi-process runners pass their own.
        max_samples: keep only the newest samples (None: all). One sample is a few kB per
            broker plus about 1 kB per partition.
    """

    def __init__(self, client: str | None = None, max_samples: int | None = None):
        self.client = client
        # zlib-compressed JSON: a sample is 10-20 kB of text on a 3-broker cluster, one a
        # second per client, and a 30-minute run's workers grew by ~20 MB per 10 minutes.
        self.samples: deque[tuple[float, bytes]] = deque(maxlen=max_samples)

    def __call__(self, stats_json: str) -> None:
        try:
            self.samples.append((time.monotonic(), zlib.compress(stats_json.encode(), 1)))
        except Exception:  # noqa: BLE001 - a stats callback must never raise into poll()
            pass

    def frame(self, t0: float | None = None) -> pd.DataFrame:
        """`parse_statistics` of the samples so far (see there for `t0`)."""
        return parse_statistics(list(self.samples), t0=t0, client=self.client)


def _iter_docs(samples: Iterable[tuple[float, str | dict] | str | dict], t0: float | None):
    """(t, doc) for each parseable sample; malformed JSON is skipped."""
    parsed = []
    for sample in samples:
        if isinstance(sample, tuple):
            ts, raw = sample
        else:
            ts, raw = None, sample
        try:
            if isinstance(raw, bytes) and raw[:1] == b"x":  # `StatsCollector`'s zlib (JSON never starts so)
                raw = zlib.decompress(raw)
            doc = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except (ValueError, zlib.error):
            continue
        if not isinstance(doc, dict):
            continue
        if ts is None:
            ts = doc.get("ts", 0) / 1e6  # librdkafka's monotonic clock, microseconds
        parsed.append((ts, doc))
    if parsed and t0 is None:
        t0 = min(ts for ts, _ in parsed)
    for ts, doc in parsed:
        yield ts - t0, doc


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _add_fields(rows: list[tuple], head: tuple, obj: Mapping[str, Any], fields: Iterable[str],
                prefix: str = "") -> None:
    """Append `(*head, prefix + field, value)` for each numeric field of `obj`."""
    for f in fields:
        v = _num(obj.get(f))
        if v is not None:
            rows.append((*head, prefix + f, v))


def _add_windows(rows: list[tuple], head: tuple, obj: Mapping[str, Any],
                 windows: Mapping[str, tuple[str, ...]]) -> None:
    """Append the statistics of librdkafka's rolling windows (metric `<window>_<stat>`), leaving
    out windows without samples (cnt 0), whose statistics are zeros, not measurements."""
    for w, stats in windows.items():
        window = obj.get(w) or {}
        if window.get("cnt"):
            _add_fields(rows, head, window, stats, prefix=f"{w}_")


def _add_broker(rows: list[tuple], t: float, client: str, broker: Mapping[str, Any]) -> None:
    """Append the rows of one broker: its windows, then its counters."""
    head = (t, client, "broker", str(broker.get("name", "")))
    _add_windows(rows, head, broker, _BROKER_WINDOWS)
    _add_fields(rows, head, broker, _BROKER_FIELDS)


def _add_topic(rows: list[tuple], t: float, client: str, name: str, topic: Mapping[str, Any]) -> None:
    """Append the rows of one topic: its windows, then each partition's."""
    _add_windows(rows, (t, client, "topic", name), topic, _TOPIC_WINDOWS)
    for part in (topic.get("partitions") or {}).values():
        pid = part.get("partition")
        if pid is not None and pid >= 0:  # -1 is librdkafka's internal "unassigned" queue
            _add_partition(rows, (t, client, "partition", f"{name}-{pid}"), part)


def _add_partition(rows: list[tuple], head: tuple, part: Mapping[str, Any]) -> None:
    """Append the rows of one partition: its queues and, when known, its consumer lag."""
    _add_fields(rows, head, part, _PARTITION_FIELDS)
    lag = _num(part.get("consumer_lag"))
    if lag is not None and lag >= 0:  # -1: unknown (not consumed by this client)
        rows.append((*head, "consumer_lag", lag))


def _add_document(rows: list[tuple], t: float, client: str, doc: Mapping[str, Any]) -> None:
    """Append the rows of one statistics document, in the frame's row order."""
    _add_fields(rows, (t, client, "client", client), doc, _CLIENT_FIELDS)
    for broker in (doc.get("brokers") or {}).values():
        _add_broker(rows, t, client, broker)
    for name, topic in (doc.get("topics") or {}).items():
        _add_topic(rows, t, client, name, topic)
    if cgrp := doc.get("cgrp"):
        _add_fields(rows, (t, client, "cgrp", "cgrp"), cgrp, _CGRP_FIELDS)


def parse_statistics(samples: Iterable[tuple[float, str | dict] | str | dict], *,
                     t0: float | None = None, client: str | None = None) -> pd.DataFrame:
    """librdkafka statistics JSON samples -> long DataFrame.

    Args:
        samples: (time.monotonic() at receipt, JSON string or dict) pairs as `StatsCollector`
            stores them, or bare JSON strings/dicts (timed by their `ts` field).
        t0: monotonic time that becomes t=0 (the run's start); default the first sample.
        client: label for the client column; default each sample's `name`.

    Returns:
        DataFrame with columns t (s), client, scope, name, metric, value (float). Scopes:
        'client' (name = client): msg_cnt, msg_size, replyq, tx, rx, txmsgs, rxmsgs and bytes;
        'broker' (name = broker name, e.g. "host:9092/1"): int_latency_{avg,p50,p99},
        outbuf_latency_*, rtt_*, throttle_* in microseconds (windows with no samples are
        left out), txretries, txerrs, req_timeouts, outbuf_cnt, waitresp_cnt, connects,
        disconnects; 'topic' (name = topic): batchsize_{avg,p50,p99} (bytes),
        batchcnt_{avg,p50} (messages); 'partition' (name = "topic-N"): msgq_cnt,
        xmit_msgq_cnt, fetchq_cnt, consumer_lag (only when known, i.e. >= 0);
        'cgrp' (name = "cgrp"): rebalance_cnt, rebalance_age, assignment_size, stateage.
    """
    rows: list[tuple] = []
    for t, doc in _iter_docs(samples, t0):
        _add_document(rows, t, client or str(doc.get("name", "")), doc)
    return pd.DataFrame(rows, columns=STATS_COLUMNS).astype(contract.dtypes("librdkafka"))
