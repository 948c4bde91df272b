"""Delivery verification's bookkeeping: the producers' ledgers against what was read back.

`Ledger` holds, per producer, one outcome byte per sequence number (acked, failed, none, from
the delivery ledger each verified producer sends in its final report) and counts every
`kb-seq` value read back from the topic into it; `VerifyReport` turns that into lost,
duplicated, reordered and failed-but-present counts per (topic, partition, producer).
`seq_value` picks a record's `kb-seq` header. Pure: no broker, no clients.

May import: `kafkabench.engine.delivery` (the header and outcome codes).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kafkabench.engine.delivery import ACKED, FAILED, VERIFY_HEADER, VERIFY_ID_BYTES

if TYPE_CHECKING:

    pass


#: Columns of the `verify` frame, in order.
COLUMNS = ("topic", "partition", "producer", "acked", "failed", "read", "lost", "duplicated",
           "reordered", "failed_but_present")


_COUNTS = COLUMNS[3:]


# The value of a `VERIFY_HEADER`: producer id, then the sequence number, 8 bytes big-endian.
SEQ_VALUE_BYTES = VERIFY_ID_BYTES + 8


_SEQ_VALUE = np.dtype([("id", f"V{VERIFY_ID_BYTES}"), ("seq", ">u8")])


# Reads of one message counted exactly up to here; more are still duplicates, counted per cell.
_SATURATED = 255


# Messages a ledger part is processed in at once (bounds the temporary arrays).
_CHUNK = 1 << 18


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a delivery verification.

    Attributes:
        frame: the `verify` frame, one row per topic, partition and producer (columns `COLUMNS`).
        summary: the `verify_*` summary figures.
    """

    frame: pd.DataFrame
    summary: dict[str, Any]


class Ledger:
    """Every verified message of a run: its outcome at the producer and how often it was read.

    Built from the producers' ledger parts (`Report.extras["verify"]`); `add` counts records
    read back, `frame` and `summary` give the result.

    Args:
        parts: one dict per producer: producer, id, topics, sent, status, partition (the two
            arrays zlib-compressed, indexed by sequence number).

    Raises:
        ValueError: a malformed part, or two parts with the same id.
    """

    def __init__(self, parts: Iterable[Mapping[str, Any]]):
        self._parts = list(parts)
        self.producers = [str(p["producer"]) for p in self._parts]
        self.sent = np.array([int(p["sent"]) for p in self._parts], np.int64)
        self._index = {bytes(p["id"]): i for i, p in enumerate(self._parts)}
        if len(self._index) != len(self._parts):
            raise ValueError(f"verify parts of {self.producers} share producer ids")
        # Every producer's messages in one flat array: producer i's seq s is at base[i] + s.
        self.base = np.concatenate([[0], np.cumsum(self.sent)]).astype(np.int64)
        self.status = np.empty(int(self.base[-1]), np.uint8)
        for i, p in enumerate(self._parts):
            self.status[self.base[i]:self.base[i + 1]] = _unpack(p, "status")
            _unpack(p, "partition")  # checked now, unpacked again (one at a time) by `frame`
        self.seen = np.zeros(len(self.status), np.uint8)
        self.foreign = 0
        self.tp_index: dict[tuple[str, int], int] = {}
        self.tps: list[tuple[str, int]] = []  # (topic, partition) of each tp index
        # Per cell (tp index * producers + producer): read, duplicated, reordered,
        # failed_but_present, and the highest sequence read so far (-1: none).
        self._counts = np.zeros((4, 0), np.int64)
        self._max = np.zeros(0, np.int64)

    def tp(self, topic: str, partition: int) -> int:
        """The index of a topic partition in `add`'s `tps` (registered on first use)."""
        key = (topic, partition)
        index = self.tp_index.get(key)
        if index is None:
            index = self.tp_index[key] = len(self.tps)
            self.tps.append(key)
            needed, have = len(self.tps) * len(self.producers), len(self._max)
            if needed > have:  # grown by doubling: thousands of partitions register one by one
                more = max(needed, 2 * have) - have
                self._counts = np.concatenate([self._counts, np.zeros((4, more), np.int64)], axis=1)
                self._max = np.concatenate([self._max, np.full(more, -1, np.int64)])
        return index

    def add(self, tps: Sequence[int], values: Sequence[bytes | None]) -> None:
        """Count records read, in the order they were read.

        Args:
            tps: each record's topic partition (`tp`).
            values: each record's `VERIFY_HEADER` value (None: it had none). A record without
                one, with another run's id or a sequence number the producer never sent is
                foreign.
        """
        ok = [v is not None and len(v) == SEQ_VALUE_BYTES for v in values]
        n = sum(ok)
        self.foreign += len(ok) - n
        if not n:
            return
        rec = np.frombuffer(b"".join(compress(values, ok)), _SEQ_VALUE)
        tp = np.fromiter(compress(tps, ok), np.int64, n)
        ids, inverse = np.unique(rec["id"], return_inverse=True)
        producer = np.array([self._index.get(i.tobytes(), -1) for i in ids], np.int64)[inverse]
        seq = rec["seq"]
        known = producer >= 0
        known[known] = seq[known] < self.sent[producer[known]].astype(np.uint64)
        self.foreign += int(n - known.sum())
        self._count(tp[known], producer[known], seq[known].astype(np.int64))

    def _count(self, tp: np.ndarray, producer: np.ndarray, seq: np.ndarray) -> None:
        if not len(seq):
            return
        flat = self.base[producer] + seq
        first = self._reads_before(flat) == 0
        cell = tp * len(self.producers) + producer
        reordered = first & (seq < self._max_before(cell, seq))
        failed = first & (self.status[flat] == FAILED)
        cells = len(self._max)
        for row, mask in enumerate((None, ~first, reordered, failed)):
            self._counts[row] += np.bincount(cell if mask is None else cell[mask], minlength=cells)

    def _reads_before(self, flat: np.ndarray) -> np.ndarray:
        """How often each record's message was read before it (earlier batches, then earlier
        in this one); counts the batch into `seen` (saturating)."""
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        starts, sizes = _runs(ordered)
        rank = np.arange(len(ordered)) - np.repeat(starts, sizes)
        before = np.empty(len(flat), np.int64)
        before[order] = self.seen[ordered].astype(np.int64) + rank
        messages = ordered[starts]
        self.seen[messages] = np.minimum(self.seen[messages] + sizes, _SATURATED)
        return before

    def _max_before(self, cell: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """The highest sequence its producer had in its partition before each record (-1:
        none); moves `_max` on."""
        order = np.argsort(cell, kind="stable")
        cells, seqs = cell[order], seq[order]
        starts, sizes = _runs(cells)
        # A running maximum within each cell: offsetting each cell's run above the one before
        # lets one accumulate over the whole batch.
        lift = np.repeat(np.arange(len(starts)), sizes) * (int(seqs.max()) + 2)
        running = np.maximum.accumulate(seqs + lift) - lift
        before = np.empty_like(running)
        before[0] = -1
        before[1:] = running[:-1]
        before[starts] = -1
        before = np.maximum(before, self._max[cells])
        ends = starts + sizes - 1
        self._max[cells[ends]] = np.maximum(self._max[cells[ends]], running[ends])
        out = np.empty_like(before)
        out[order] = before
        return out

    def frame(self) -> pd.DataFrame:
        """The `verify` frame: one row per topic, partition and producer with any message
        acked, failed or read there (lost messages count where they were acked)."""
        rows: dict[tuple[str, int, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
        for i in range(len(self.producers)):
            self._outcomes(i, rows)
        names = ("read", "duplicated", "reordered", "failed_but_present")
        for cell in np.flatnonzero(self._counts[0]):
            tp, producer = divmod(int(cell), len(self.producers))
            row = rows[(*self.tps[tp], producer)]
            for name, count in zip(names, self._counts[:, cell], strict=True):
                row[name] = int(count)
        data = [(t, p, self.producers[i], *(row[c] for c in _COUNTS))
                for (t, p, i), row in sorted(rows.items())]
        frame = pd.DataFrame(data, columns=list(COLUMNS))
        return frame.astype({"topic": "str", "producer": "str",
                             **dict.fromkeys(("partition", *_COUNTS), "int64")})

    def _outcomes(self, i: int, rows: dict[tuple[str, int, int], dict[str, int]]) -> None:
        """Add producer `i`'s acked, failed and lost messages per topic and partition."""
        topics = tuple(self._parts[i]["topics"])
        partition = _unpack(self._parts[i], "partition")
        start, sent = int(self.base[i]), int(self.sent[i])
        for lo in range(0, sent, _CHUNK):
            hi = min(lo + _CHUNK, sent)
            status, seen = self.status[start + lo:start + hi], self.seen[start + lo:start + hi]
            # Message s went to topics[s % len(topics)]; partition -1: none was chosen.
            where = (partition[lo:hi].astype(np.int64) + 1) * len(topics) + np.arange(lo, hi) % len(topics)
            for name, mask in (("acked", status == ACKED), ("failed", status == FAILED),
                               ("lost", (status == ACKED) & (seen == 0))):
                counts = np.bincount(where[mask])
                for key in np.flatnonzero(counts):
                    p, t = divmod(int(key), len(topics))
                    rows[(topics[t], p - 1, i)][name] += int(counts[key])

    def summary(self, frame: pd.DataFrame | None = None) -> dict[str, Any]:
        """The verify_* counts (without verify_complete, verify_read_s, verify_error).

        Args:
            frame: `frame()`, when the caller has it already.
        """
        frame = self.frame() if frame is None else frame
        out = {f"verify_{c}": int(frame[c].sum())
               for c in ("acked", "lost", "duplicated", "reordered", "failed_but_present", "read")}
        return {**out, "verify_foreign": self.foreign}


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal values in a sorted array."""
    new = np.empty(len(ordered), bool)
    new[0] = True
    new[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    return starts, np.diff(np.append(starts, len(ordered)))


def _unpack(part: Mapping[str, Any], name: str) -> np.ndarray:
    """A part's array `name`, its dtype told by its size (status: 1 byte; partition: 2 or 4)."""
    sent = int(part["sent"])
    # The expected size as the first output buffer: one buffer, never grown and copied.
    raw = zlib.decompress(part[name], bufsize=max(sent * (2 if name == "partition" else 1), 1))
    width = len(raw) // sent if sent and name == "partition" else 1
    if width * sent != len(raw) or width not in (1, 2, 4, 8):
        raise ValueError(f"verify part of {part['producer']!r}: {name} has {len(raw)} bytes "
                         f"for {sent} messages")
    return np.frombuffer(raw, np.dtype(f"=i{width}") if name == "partition" else np.uint8)


def seq_value(headers: list[tuple[str, bytes]] | None) -> bytes | None:
    """A record's `VERIFY_HEADER` value (the producer puts it last), or None."""
    if not headers:
        return None
    key, value = headers[-1]
    if key == VERIFY_HEADER:
        return value
    return next((v for k, v in headers if k == VERIFY_HEADER), None)


