"""Running producer and consumer workers in threads or processes, with one report channel.

A worker is a function `fn(spec, ctl)`; it reads `ctl.stopped()` and sends `Report`s with
`ctl.report()`. In process mode (the default for more than one worker: one Python loop
saturates a core) workers start with the "spawn" method, since librdkafka's threads do not
survive a fork, and ignore SIGINT so that Ctrl-C stops them through the stop event instead,
after a clean flush.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import queue
import resource
import signal
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafkabench.core.errors import ConfigError, KafkabenchError
from kafkabench.engine.reportfile import ReportFile

# A worker that exited without its final report: how long to wait for reports it may still
# have in the queue (its feeder thread flushes them as the process exits) before calling it dead.
DEAD_GRACE_S = 1.0
# Messages kept per error code: enough to tell what happened, bounded under an error storm.
MESSAGES_PER_ERROR = 3


#: How workers run: "process" (spawned processes), "thread", or "auto" (processes when a run
#: has more than one worker).
MODES = ("auto", "process", "thread")


def check_mode(mode: str) -> str:
    """Return `mode` if it is one of `MODES`; ConfigError naming it otherwise."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: expected 'auto', 'process' or 'thread'")
    return mode


class WorkerDied(KafkabenchError):
    """A worker thread or process ended without reporting its totals."""


class ErrorCounts:
    """Errors by Kafka error code name (e.g. `_MSG_TIMED_OUT`), with the first few messages.

    Callbacks record into it and never raise; `counts` and `messages` travel in reports.
    """

    __slots__ = ("counts", "messages")

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.messages: dict[str, list[str]] = {}

    def add(self, code: str, message: str, n: int = 1) -> None:
        """Count `n` errors of `code`, keeping the first messages."""
        self.counts[code] += n
        kept = self.messages.setdefault(code, [])
        if len(kept) < MESSAGES_PER_ERROR and message not in kept:
            kept.append(message)

    def add_kafka(self, err: Any, context: str = "") -> None:
        """Count a `KafkaError` (or a `KafkaException` carrying one, or any exception)."""
        if isinstance(err, BaseException) and err.args and hasattr(err.args[0], "name"):
            err = err.args[0]
        if hasattr(err, "name") and hasattr(err, "str"):
            code, text = err.name(), err.str()
        else:
            code, text = type(err).__name__, str(err)
        self.add(code, f"{context}: {text}" if context else text)

    def merge(self, counts: dict[str, int], messages: dict[str, list[str]] | None = None) -> None:
        """Add another tally's counts and messages."""
        self.counts.update(counts)
        for code, texts in (messages or {}).items():
            kept = self.messages.setdefault(code, [])
            kept.extend(t for t in texts if t not in kept)
            del kept[MESSAGES_PER_ERROR:]


@dataclass(slots=True)
class Report:
    """What a worker tells the parent: per-interval counts, events, or its final totals.

    Attributes:
        kind: "ready", "interval", "rebalance", "done" or "error".
        worker: worker name, e.g. "producer-0" or "g0-consumer-1".
        role: "producer" or "consumer".
        wall: time.time() when the report was made.
        counts: counters (deltas for "interval", totals for "done").
        histograms: encoded HdrHistograms of the interval, by metric name.
        errors: error counts by librdkafka error name.
        error_messages: the first few messages of each error name.
        stats: raw librdkafka statistics samples (time, json).
        events: rebalance events or other rows.
        message: text, for "error".
        extras: what an opt-in feature adds: a producer's 10 ms acknowledgement timeline
            and errors by second ("acks", "errors") in interval reports, its delivery
            ledger ("verify") in the final one.
    """

    kind: str
    worker: str
    role: str
    wall: float
    counts: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, str] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_messages: dict[str, list[str]] = field(default_factory=dict)
    stats: list = field(default_factory=list)
    events: list = field(default_factory=list)
    message: str = ""
    extras: dict = field(default_factory=dict)


class SharedFlag:
    """A flag shared by processes and read without a lock.

    `multiprocessing.Event` takes a shared lock even in `is_set()`: a worker SIGKILLed while
    holding it (a membership crash, `WorkerPool.kill`) leaves every other process blocked on
    it forever. A byte of shared memory has no lock to lose; waits poll it.
    """

    def __init__(self, ctx: Any):
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False when `timeout` passes first (polled every few ms)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._value.value:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(left, FLAG_POLL_S))
            else:
                time.sleep(FLAG_POLL_S)
        return True


#: How often a `SharedFlag` wait looks at the flag.
FLAG_POLL_S = 0.002


class Control:
    """A worker's view of the pool: the start and stop flags and the report queue."""

    def __init__(self, start: Any, stop: Any, reports: Any, watch_parent: bool = False,
                 leave: Any = None, journal: str | None = None) -> None:
        self._start, self._stop, self._reports = start, stop, reports
        # Every report is also appended to this file (`kafkabench.journal`): if the parent
        # dies, what this worker measured is still on disk.
        self._journal = ReportFile(journal) if journal else None
        # This worker's own stop flag (`WorkerPool.stop_worker`): a member leaving its group.
        self._leave = leave
        # Pickled into a worker process: its parent's pid, to notice an orphaned worker.
        self._parent = os.getpid() if watch_parent else None
        #: True in a worker process of its own (set by the pool); see `cpu_seconds`.
        self.in_process = watch_parent

    def stopped(self) -> bool:
        """True once the parent asked every worker (or this one) to stop, or died without asking."""
        return (self._stop.is_set() or (self._leave is not None and self._leave.is_set())
                or self.orphaned())

    def orphaned(self) -> bool:
        """True when this worker's parent process died."""
        return self._parent is not None and os.getppid() != self._parent

    def sleep(self, seconds: float) -> bool:
        """Sleep `seconds`, waking at once when asked to stop.

        Returns:
            False when the worker was asked to stop (or its parent died) meanwhile.
        """
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return not self.stopped()
            if self._stop.wait(min(left, 0.5)) or self.stopped():
                return False

    def wait_start(self, name: str = "", role: str = "") -> None:
        """Say "ready" (set up, client created), then block until the parent says go.

        Producers wait for consumers to be assigned; the parent waits for every producer's
        "ready" before it says go, so the run's clock starts when they can send, not while a
        spawned process is still importing (1-3 s on a busy machine).
        """
        if name:
            self.report(Report(kind="ready", worker=name, role=role, wall=time.time()))
        while not self._start.wait(0.1):
            if self.stopped():  # asked to stop, or the parent died before saying go
                return

    def report(self, report: Report) -> None:
        """Send a report to the parent (and append it to the run's journal)."""
        self._reports.put(report)
        if self._journal is not None:
            self._journal.append(report)

    def close(self) -> None:
        """Close the journal file (the worker is done)."""
        if self._journal is not None:
            self._journal.close()


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


def cpu_seconds(in_process: bool) -> float:
    """CPU time of this worker so far: its whole process (librdkafka's threads included) when
    it runs in a process of its own, else the calling thread's Python time only."""
    if in_process:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    return time.thread_time()


def _worker_main(fn: Callable, spec: Any, ctl: Control, name: str, role: str,
                 in_process: bool) -> None:
    if in_process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl.in_process = in_process
    try:
        with fewer_gc_pauses():
            fn(spec, ctl)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        ctl.report(Report(kind="error", worker=name, role=role, wall=time.time(),
                          message=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        ctl.close()


# A worker whose parent died stops at once (`Control.stopped`), flushes what it has in flight
# (up to message.timeout.ms, 30 s by kafkabench's default) and writes its final report; one
# that is still there after this long is stuck, and exits anyway.
ORPHAN_EXIT_S = 90.0


def _exit_when_orphaned(ctl: Control, name: str) -> None:
    """A worker process's watchdog: workers never outlive their run for long."""
    while not ctl.orphaned():
        time.sleep(0.5)
    time.sleep(ORPHAN_EXIT_S)
    os.write(2, f"kafkabench worker {name}: the run's process died and this worker did not "
                f"finish within {ORPHAN_EXIT_S:g} s; exiting\n".encode())
    os._exit(70)


def _process_main(spec_file: str, ctl: Control, name: str, role: str) -> None:
    # The spec travels in a file, not in the spawn pipe: CPython's parent writes the pipe
    # while it still holds the read end, so a child that dies before reading a large spec
    # (a payload pool is megabytes) leaves the parent blocked in Process.start() forever.
    with open(spec_file, "rb") as f:
        fn, spec = pickle.load(f)
    os.unlink(spec_file)
    threading.Thread(target=_exit_when_orphaned, args=(ctl, name), name="kb-orphan-watch",
                     daemon=True).start()
    try:
        _worker_main(fn, spec, ctl, name, role, True)
    finally:
        if ctl.orphaned():
            # The parent died: nobody reads the report queue, whose pipe every worker holds
            # open, so flushing the last reports would block this process's exit forever.
            ctl._reports.cancel_join_thread()


def in_spawned_bootstrap() -> bool:
    """True while a spawned worker process imports its parent's main module, i.e. when a
    script calls kafkabench at import time without an `if __name__ == "__main__":` guard."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


class WorkerPool:
    """Start workers, hand out their reports, stop and join them.

    Args:
        mode: "process" (spawned processes) or "thread".
        journal: the run's journal (`kafkabench.journal.Journal`): every worker appends its
            reports to a file of its own there. None: no journal.
    """

    def __init__(self, mode: str = "process", journal: Any = None) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be 'process' or 'thread', got {mode!r}")
        self.mode = mode
        self.journal = journal
        if mode == "process":
            ctx = mp.get_context("spawn")
            self._ctx = ctx
            self._new = ctx.Process
            self.start_event, self.stop_event = SharedFlag(ctx), SharedFlag(ctx)
            # One report queue per worker (`_queues`): a queue's writers share a lock, which a
            # worker killed on purpose may die holding.
            self._queue = None
        else:
            self._new = threading.Thread
            self.start_event, self.stop_event = threading.Event(), threading.Event()
            self._queue = queue.Queue()
        self._workers: list[Any] = []
        self._queues: dict[str, Any] = {}
        self._leave: dict[str, Any] = {}
        self.done: set[str] = set()
        self.ready: set[str] = set()
        self._gone_since: dict[str, float] = {}
        self._spec_files: list[str] = []
        #: Workers killed on purpose (`kill`): gone without a report, and not dead for `check`.
        self.killed: set[str] = set()

    def start(self, fn: Callable, spec: Any, name: str, role: str) -> None:
        """Start `fn(spec, ctl)` as worker `name`."""
        reports = self._queue
        if self.mode == "process":
            reports = self._queues[name] = self._ctx.Queue()
            leave = self._leave[name] = SharedFlag(self._ctx)
        else:
            leave = self._leave[name] = threading.Event()
        ctl = Control(self.start_event, self.stop_event, reports,
                      watch_parent=self.mode == "process", leave=leave,
                      journal=self.journal.worker_file(name) if self.journal is not None else None)
        if self.mode == "process":
            with tempfile.NamedTemporaryFile("wb", prefix="kafkabench-spec-", suffix=".pickle",
                                             delete=False) as f:
                pickle.dump((fn, spec), f, protocol=pickle.HIGHEST_PROTOCOL)
            self._spec_files.append(f.name)
            worker = self._new(target=_process_main, name=name, daemon=True,
                               args=(f.name, ctl, name, role))
        else:
            worker = self._new(target=_worker_main, name=name, daemon=True,
                               args=(fn, spec, ctl, name, role, False))
        worker.start()
        self._workers.append(worker)

    def kill(self, name: str) -> int:
        """SIGKILL worker process `name` (a crash on purpose: `check` does not report it).

        Returns:
            The process id it had.

        Raises:
            KafkabenchError: thread mode (a thread cannot be killed), an unknown or ended worker.
        """
        if self.mode != "process":
            raise KafkabenchError(f"cannot kill worker {name!r}: workers run as threads; "
                                  "run with mode=\"process\" (--mode process)")
        for w in self._workers:
            if w.name == name and w.is_alive():
                self.killed.add(name)
                os.kill(w.pid, signal.SIGKILL)
                return w.pid
        raise KafkabenchError(f"cannot kill worker {name!r}: no such worker is running")

    def stop_worker(self, name: str) -> None:
        """Ask worker `name` alone to finish as at the end of a run (a consumer commits per
        its mode and leaves its group); its final report comes as usual.

        Raises:
            KafkabenchError: an unknown worker, or one that has ended.
        """
        for w in self._workers:
            if w.name == name and w.is_alive() and name not in self.done:
                self._leave[name].set()
                return
        raise KafkabenchError(f"cannot stop worker {name!r}: no such worker is running")

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
            report = self._next(max(0.0, deadline - time.monotonic()))
            if report is None:
                return
            if report.kind in ("done", "error"):
                self.done.add(report.worker)
            elif report.kind == "ready":
                self.ready.add(report.worker)
            yield report

    def _next(self, timeout_s: float) -> Report | None:
        """The next report within `timeout_s`, from whichever worker's queue has one."""
        if self._queue is not None:
            try:
                return self._queue.get(timeout=timeout_s)
            except queue.Empty:
                return None
        deadline = time.monotonic() + timeout_s
        while True:
            live = {q._reader: q for name, q in self._queues.items() if name not in self.killed}
            for reader in mp_connection.wait(list(live), timeout=max(0.0, deadline - time.monotonic())):
                try:
                    return live[reader].get_nowait()
                except queue.Empty:  # a partial message: the rest is on its way
                    continue
            if time.monotonic() >= deadline:
                return None

    def dead(self) -> list[str]:
        """Workers that ended without a final ("done" or "error") report.

        A process killed by a signal, or one that failed before the worker function ran
        (e.g. a script without an `if __name__ == "__main__":` guard, which the "spawn" start
        method re-imports), never reports. A worker counts as dead once it has been gone for
        `DEAD_GRACE_S` without its report arriving; call `reports()` in between.
        """
        now, dead = time.monotonic(), []
        for w in self._workers:
            if w.name in self.done or w.name in self.killed or w.is_alive():
                continue
            since = self._gone_since.setdefault(w.name, now)
            if now - since >= DEAD_GRACE_S:
                dead.append(w.name)
        return dead

    def describe_death(self, name: str) -> str:
        """What is known of a dead worker's end, and what usually causes it."""
        w = next(w for w in self._workers if w.name == name)
        code = getattr(w, "exitcode", None)
        how = ("a thread that ended without reporting" if code is None else
               f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        text = f"worker {name!r} ended without reporting its results ({how})."
        if code is not None and code > 0 and self.mode == "process":
            text += (" Worker processes are started with multiprocessing's 'spawn' method, which"
                     " re-imports the main module: a script that calls run_workload must do so"
                     " under `if __name__ == \"__main__\":` (see the traceback above), or pass"
                     " mode=\"thread\".")
        return text

    def check(self) -> None:
        """Raise `WorkerDied` for a worker that ended without reporting (see `dead`)."""
        dead = self.dead()
        if dead:
            raise WorkerDied(" ".join(self.describe_death(n) for n in dead))

    def join(self, timeout_s: float) -> None:
        """Wait for workers to exit; terminate processes still alive after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            if w.is_alive() and self.mode == "process":
                w.terminate()
                w.join(5)
        for path in self._spec_files:  # a worker that died before reading its spec
            with contextlib.suppress(OSError):
                os.unlink(path)
