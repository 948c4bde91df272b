"""Running producer and consumer workers in threads or processes, with one report channel.

A worker is a function `fn(spec, ctl)`; it reads `ctl.stopped()` and sends `Report`s with
`ctl.report()`. In process mode (the default for more than one worker: one Python loop
saturates a core) workers start with the "spawn" method, since librdkafka's threads do not
survive a fork, and ignore SIGINT so that Ctrl-C stops them through the stop event instead,
after a clean flush.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Report:
    """What a worker tells the parent: per-interval counts, events, or its final totals.

    Attributes:
        kind: "interval", "assigned", "rebalance", "done" or "error".
        worker: worker name, e.g. "producer-0" or "g0-consumer-1".
        role: "producer" or "consumer".
        wall: time.time() when the report was made.
        counts: counters (deltas for "interval", totals for "done").
        histograms: encoded HdrHistograms of the interval, by metric name.
        errors: error counts by librdkafka error name.
        stats: raw librdkafka statistics samples (time, json).
        events: rebalance events or other rows.
        message: text, for "error".
    """

    kind: str
    worker: str
    role: str
    wall: float
    counts: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, str] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    stats: list = field(default_factory=list)
    events: list = field(default_factory=list)
    message: str = ""


class Control:
    """A worker's view of the pool: the start and stop flags and the report queue."""

    def __init__(self, start: Any, stop: Any, reports: Any, watch_parent: bool = False) -> None:
        self._start, self._stop, self._reports = start, stop, reports
        # Pickled into a worker process: its parent's pid, to notice an orphaned worker.
        self._parent = os.getpid() if watch_parent else None

    def stopped(self) -> bool:
        """True once the parent asked every worker to stop, or died without asking."""
        return self._stop.is_set() or (self._parent is not None and os.getppid() != self._parent)

    def wait_start(self) -> None:
        """Block until the parent says go (producers wait for consumers to be assigned)."""
        while not self._start.wait(0.1):
            if self._stop.is_set():
                return

    def report(self, report: Report) -> None:
        """Send a report to the parent."""
        self._reports.put(report)


_gc_lock = threading.Lock()
_gc_state = {"workers": 0, "saved": gc.get_threshold()}
# Young-generation GC threshold while workers run (CPython's default is 700).
WORKER_GC_THRESHOLD = 100_000


@contextmanager
def fewer_gc_pauses() -> Iterator[None]:
    """Raise the cyclic GC's young-generation threshold while any worker runs.

    Every consumed message and every delivery report is a GC-tracked object, so at the
    default threshold (700) a 1000-message batch triggers a collection that walks the whole
    live batch. The objects die by reference counting a moment later, so with a higher
    threshold they are never walked at all. Nested and concurrent (thread) workers share
    one setting; the last to finish restores the process's own.
    """
    with _gc_lock:
        if _gc_state["workers"] == 0:
            _gc_state["saved"] = gc.get_threshold()
            gc.set_threshold(max(WORKER_GC_THRESHOLD, _gc_state["saved"][0]), *_gc_state["saved"][1:])
        _gc_state["workers"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["workers"] -= 1
            if _gc_state["workers"] == 0:
                gc.set_threshold(*_gc_state["saved"])


def _worker_main(fn: Callable, spec: Any, ctl: Control, name: str, role: str,
                 in_process: bool) -> None:
    if in_process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with fewer_gc_pauses():
            fn(spec, ctl)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        ctl.report(Report(kind="error", worker=name, role=role, wall=time.time(),
                          message=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class WorkerPool:
    """Start workers, hand out their reports, stop and join them.

    Args:
        mode: "process" (spawned processes) or "thread".
    """

    def __init__(self, mode: str = "process") -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be 'process' or 'thread', got {mode!r}")
        self.mode = mode
        if mode == "process":
            ctx = mp.get_context("spawn")
            self._new = ctx.Process
            self.start_event, self.stop_event, self._queue = ctx.Event(), ctx.Event(), ctx.Queue()
        else:
            self._new = threading.Thread
            self.start_event, self.stop_event = threading.Event(), threading.Event()
            self._queue = queue.Queue()
        self._workers: list[Any] = []
        self.done: set[str] = set()

    def start(self, fn: Callable, spec: Any, name: str, role: str) -> None:
        """Start `fn(spec, ctl)` as worker `name`."""
        ctl = Control(self.start_event, self.stop_event, self._queue,
                      watch_parent=self.mode == "process")
        worker = self._new(target=_worker_main, name=name, daemon=True,
                           args=(fn, spec, ctl, name, role, self.mode == "process"))
        worker.start()
        self._workers.append(worker)

    def go(self) -> None:
        """Release workers waiting in `ctl.wait_start()`."""
        self.start_event.set()

    def stop(self) -> None:
        """Ask every worker to finish (they flush, report and exit)."""
        self.stop_event.set()
        self.start_event.set()

    def reports(self, timeout_s: float) -> Iterator[Report]:
        """Reports that arrive within `timeout_s` (at least one wait, then whatever is queued)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                report = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if report.kind in ("done", "error"):
                self.done.add(report.worker)
            yield report

    def alive(self) -> int:
        """Workers that have not exited yet."""
        return sum(w.is_alive() for w in self._workers)

    def join(self, timeout_s: float) -> None:
        """Wait for workers to exit; terminate processes still alive after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            if w.is_alive() and self.mode == "process":
                w.terminate()
                w.join(5)
