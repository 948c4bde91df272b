"""A producer's once-a-second interval report (`IntervalReporter`): what its parts counted in
the interval, as one `Report` of kind "interval".

Each part adds its own: the sender the messages sent, the delivery recorder the deliveries,
failures, bytes, publish latencies and its timelines, the pacer the publish delays, the
transactions (or their null object) their counts and commit times. The reporter knows the
order and the deltas, not the features.

May import: `kafkabench.engine.workers` and the producer's parts.
"""

from __future__ import annotations

import time

from kafkabench.engine.delivery import DeliveryRecorder
from kafkabench.engine.pacing import Pacer
from kafkabench.engine.sending import Sender
from kafkabench.engine.transactions import NoTransactions, Transactions
from kafkabench.engine.workers import Control, Report

# Raw publish latencies are turned into histogram counts once a second, or sooner when this
# many are waiting: at ~800k msgs/s a second's worth of Python floats held ~25 MB more.
RECORD_EVERY = 65536


class IntervalReporter:
    """Reports a producer's interval once a second (`tick`) and once at the end (`report`).

    Args:
        worker: the producer's name.
        ctl: where reports go.
        sender: counts what was sent (`.sent`).
        recorder: the delivery recorder.
        pacer: the pacer (publish delays: `.delay`, `.backlog`, `.bin_delays()`).
        transactions: `Transactions` or `NoTransactions` (`.counts()`, `.histograms()`).
        start_s: the run's monotonic start; the first report is due a second later.
    """

    __slots__ = ("_ctl", "_last", "_next_s", "_pacer", "_recorder", "_sender",
                 "_transactions", "_worker")

    def __init__(self, worker: str, ctl: Control, sender: Sender, recorder: DeliveryRecorder,
                 pacer: Pacer, transactions: Transactions | NoTransactions, start_s: float) -> None:
        self._worker, self._ctl = worker, ctl
        self._sender, self._recorder, self._pacer = sender, recorder, pacer
        self._transactions = transactions
        self._next_s = start_s + 1.0
        self._last: dict[str, int] = {}

    def tick(self, now: float) -> None:
        """Between bursts: bin what is waiting if it is a lot; report once a second."""
        if len(self._recorder.latencies) >= RECORD_EVERY or self._pacer.backlog >= RECORD_EVERY:
            self._bin()
        if now >= self._next_s:
            self.report()
            self._next_s += 1.0

    def report(self) -> None:
        """Send the "interval" report: counts since the last one, the interval's histograms."""
        self._bin()
        recorder, pacer, transactions = self._recorder, self._pacer, self._transactions
        row = {"sent": self._sender.sent, "delivered": recorder.delivered,
               "failed": recorder.failed, "bytes": recorder.bytes, **transactions.counts()}
        histograms = {"publish_latency_us": recorder.latency.encode(),
                      "publish_delay_us": pacer.delay.encode(), **transactions.histograms()}
        self._ctl.report(Report(kind="interval", worker=self._worker, role="producer",
                                wall=time.time(),
                                counts={k: v - self._last.get(k, 0) for k, v in row.items()},
                                histograms=histograms, extras=recorder.timeline_extras()))
        self._last.update(row)
        recorder.latency.reset()
        pacer.delay.reset()

    def _bin(self) -> None:
        self._recorder.bin_latencies()
        self._pacer.bin_delays()
