"""Samplers in supervised child processes: a client-library abort costs the sampler, not the run.

librdkafka can abort the whole process from one of its own threads: confluent-kafka 2.16's
coordinator Admin requests do when the coordinator's connection drops
(docs/librdkafka-coordinator-abort.md). What watches a run (lag, cluster state) is not the
measurement, so it runs in a child process, a `Sidecar`, which the parent restarts within a
second or two when it dies. Each restart is recorded (`Sidecar.restarts`); what the sampler
missed meanwhile is a gap that its owner marks in its frame, never fills.

A sidecar hosts a probe: an object made in the child by `factory(*args, **kwargs)` with a
`sample()` method (called every `interval_s`, and on demand by `sample_now`) whose return value
is pickled to the parent, and an optional `close()`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

# How often the supervisor looks for a message or a dead child.
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Restart:
    """One death of a sidecar's process and its restart.

    Attributes:
        name: the sidecar's name, e.g. "lag sampler".
        died_wall: Unix time the parent saw the process gone (or stalled).
        restarted_wall: Unix time the new process was started.
        exitcode: the old process's exit code (negative: killed by that signal; None: it was
            stalled and killed by the parent).
        reason: what happened, as a sentence fragment ("killed by SIGABRT", ...).
    """

    name: str
    died_wall: float
    restarted_wall: float
    exitcode: int | None
    reason: str

    @property
    def text(self) -> str:
        """One line for a warning or a gap row."""
        at = time.strftime("%H:%M:%S", time.localtime(self.died_wall))
        return (f"the {self.name}'s process {self.reason} at {at} and was restarted: "
                "no samples between its last one and the new process's first")


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, in words: "was killed by SIGABRT (a librdkafka abort?)", ..."""
    if exitcode is None:
        return "stopped answering and was killed"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (a client-library abort)" if exitcode == -signal.SIGABRT else ""
        return f"was killed by {name}{hint}"
    if exitcode == 134:  # 128 + SIGABRT, when a shell was in between
        return "exited with status 134 (a client-library abort)"
    return f"exited with status {exitcode}"


def note_restarts(summary: dict[str, Any], restarts: list[Restart]) -> None:
    """Add `restarts` to a result's summary: the `sampler_restarts` count and a warning each."""
    summary["sampler_restarts"] = summary.get("sampler_restarts", 0) + len(restarts)
    summary.setdefault("warnings", []).extend(r.text for r in restarts)


class Sidecar:
    """A probe in a child process that the parent restarts when it dies.

    Args:
        name: what it is, for messages ("lag sampler").
        factory: makes the probe in the child (a picklable, importable callable).
        args, kwargs: the factory's arguments (picklable).
        on_sample: called in the parent, from the supervisor thread, with each sample.
        interval_s: seconds between samples the child takes by itself (0: only `sample_now`).
        stall_s: a child that sends nothing for this long is killed and restarted.
        on_restart: called in the parent after each restart.
    """

    def __init__(self, name: str, factory: Callable[..., Any], args: tuple = (),
                 kwargs: Mapping[str, Any] | None = None, *, on_sample: Callable[[Any], None],
                 interval_s: float = 1.0, stall_s: float = 60.0,
                 on_restart: Callable[[Restart], None] | None = None):
        self.name = name
        self._factory, self._args, self._kwargs = factory, args, dict(kwargs or {})
        self._on_sample, self._on_restart = on_sample, on_restart
        self.interval_s, self.stall_s = interval_s, stall_s
        self.restarts: list[Restart] = []
        #: Why the probe could not be made ("" while it could), e.g. a setting librdkafka rejects.
        self.failure = ""
        self._proc: subprocess.Popen | None = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        self._replies: dict[int, Any] = {}
        self._reply_ready = threading.Condition()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._heard = time.monotonic()
        self._generation = 0

    # --- parent side -----------------------------------------------------------------

    def start(self) -> Sidecar:
        """Start the child and its supervisor thread; returns at once (the child imports and
        makes its probe meanwhile; its first sample follows)."""
        if self._thread is not None:
            return self
        self._stopping.clear()
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name=f"kb-{self.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return self._proc.pid if self._proc is not None else None

    def sample_now(self, timeout_s: float) -> Any | None:
        """Ask the child for a sample now and wait for it (also given to `on_sample`).

        Returns:
            The sample, or None when none came within `timeout_s` (the child died, is
            starting, or failed).
        """
        if self._thread is None or self.failure:
            return None
        request = next(self._ids)
        deadline = time.monotonic() + timeout_s
        sent_to = -1
        with self._reply_ready:
            while request not in self._replies:
                # A restart in between lost the request: send it to the new child.
                if sent_to != self._generation and self._send(("sample", request)):
                    sent_to = self._generation
                left = deadline - time.monotonic()
                if left <= 0 or self.failure:
                    self._replies.pop(request, None)
                    return None
                self._reply_ready.wait(min(left, 0.5))
            return self._replies.pop(request)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the child (its probe closed) and the supervisor."""
        self._stopping.set()
        self._send(("stop", 0))
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(max(1.0, timeout_s / 2))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(Exception):
            self._conn.close()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        proc = _spawn_child(theirs)
        conn = Connection(ours.detach())
        conn.send_bytes(pickle.dumps(("probe", self._factory, self._args, self._kwargs, self.interval_s,
                                      os.getpid(), self.name)))
        self._proc, self._conn = proc, conn
        self._heard = time.monotonic()
        self._generation += 1

    def _send(self, message: tuple) -> bool:
        with self._send_lock:
            try:
                self._conn.send(message)
                return True
            except (OSError, ValueError, BrokenPipeError):
                return False

    def _supervise(self) -> None:
        while True:
            try:
                if self._conn.poll(POLL_S):
                    self._handle(self._conn.recv())
                    continue
            except (EOFError, OSError):
                gone = True  # its end of the socket closed: it died (or is dying)
            else:
                gone = self._proc.poll() is not None
                if not gone and time.monotonic() - self._heard < self.stall_s:
                    continue
            if self._stopping.is_set() or self.failure:
                return
            self._restart(stalled=not gone)

    def _handle(self, message: tuple) -> None:
        kind, request, value = message
        self._heard = time.monotonic()
        if kind == "failed":  # the probe could not be made: restarting would not help
            self.failure = value
            log.warning("kafkabench: the %s could not start: %s", self.name, value)
        elif kind == "error":  # the probe raised: a bug, logged; the sampler goes on
            log.error("kafkabench: the %s failed a sample:\n%s", self.name, value)
            value = None
        elif kind == "sample":
            try:
                self._on_sample(value)
            except Exception:  # noqa: BLE001 - a bad callback must not stop the supervision
                log.exception("kafkabench: the %s's sample handler failed", self.name)
        with self._reply_ready:
            if request:
                self._replies[request] = value
            self._reply_ready.notify_all()

    def _restart(self, stalled: bool) -> None:
        died = time.time()
        proc = self._proc
        if stalled:
            proc.kill()
        try:
            proc.wait(5)  # a dying process may still be writing its core dump
        except subprocess.TimeoutExpired:
            proc.kill()
            stalled = True
        with contextlib.suppress(Exception):
            self._conn.close()
        self._spawn()
        code = None if stalled else proc.returncode
        restart = Restart(self.name, died, time.time(), code, describe_exit(code))
        self.restarts.append(restart)
        log.warning("kafkabench: %s", restart.text)
        with self._reply_ready:
            self._reply_ready.notify_all()
        if self._on_restart is not None:
            try:
                self._on_restart(restart)
            except Exception:  # noqa: BLE001
                log.exception("kafkabench: the %s's restart handler failed", self.name)


class ChildDied(Exception):
    """The child process running a `call_in_child` died before it answered.

    Attributes:
        exitcode: its exit code (negative: the signal that killed it).
    """

    def __init__(self, message: str, exitcode: int | None):
        super().__init__(message)
        self.exitcode = exitcode


def call_in_child(fn: Callable[..., Any], args: tuple = (), kwargs: Mapping[str, Any] | None = None, *,
                  timeout_s: float = 600.0, name: str = "call") -> Any:
    """`fn(*args, **kwargs)` in a fresh child process: its return value, or its exception
    raised here. For one-off client work that must not cost the caller if the client library
    aborts (a verification read-back after brokers died).

    Raises:
        ChildDied: the child died (an abort) or did not answer within `timeout_s` (killed).
    """
    ours, theirs = socket.socketpair()
    proc = _spawn_child(theirs)
    conn = Connection(ours.detach())
    try:
        conn.send_bytes(pickle.dumps(("call", fn, tuple(args), dict(kwargs or {}), name),
                                     protocol=pickle.HIGHEST_PROTOCOL))
        if conn.poll(timeout_s):
            try:
                ok, value = conn.recv()
            except (EOFError, OSError):
                ok, value = None, None
            if ok is not None:
                proc.wait(30)
                if ok:
                    return value
                raise value
        else:
            proc.kill()
        code = proc.wait(30)
        raise ChildDied(f"the {name}'s process {describe_exit(None if code == -signal.SIGKILL else code)}",
                        code)
    finally:
        conn.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _spawn_child(theirs: socket.socket) -> subprocess.Popen:
    """A fresh interpreter running this module with `theirs` as its socket (closed here).

    Not multiprocessing's "spawn": that re-imports the caller's main script, which then
    needs an `if __name__ == "__main__":` guard.
    """
    # The parent's import path (as multiprocessing passes it on): the child unpickles the
    # parent's probe classes and functions by module name.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = dict.fromkeys([package_root, *(p for p in sys.path if p and os.path.isdir(p))])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    try:
        return subprocess.Popen([sys.executable, "-m", "kafkabench.core.sidecar", str(theirs.fileno())],
                                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
    finally:
        theirs.close()


# --- child side ------------------------------------------------------------------------

def _child_main(fd: int) -> None:
    # Ctrl-C goes to the whole foreground process group: the parent decides when to stop us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    message = pickle.loads(conn.recv_bytes())
    if message[0] == "call":
        _, fn, args, kwargs, name = message
        logging.basicConfig(format=f"kafkabench {name}: %(message)s", level=logging.WARNING)
        try:
            reply = (True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised in the parent
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a value or exception that does not pickle
            conn.send((False, RuntimeError(f"{name}: {reply[1]!r} (not picklable: {exc})")))
        return
    _, factory, args, kwargs, interval_s, parent_pid, name = message
    logging.basicConfig(format=f"kafkabench {name}: %(message)s", level=logging.WARNING)
    try:
        probe = factory(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - told to the parent, which records it
        conn.send(("failed", 0, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", 0, None))
    try:
        _serve(probe, conn, interval_s, parent_pid)
    finally:
        close = getattr(probe, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def _serve(probe: Any, conn: Any, interval_s: float, parent_pid: int) -> None:
    next_at = time.monotonic()
    try:
        while os.getppid() == parent_pid:  # an orphan stops: nobody reads its samples
            wait = max(0.0, next_at - time.monotonic()) if interval_s > 0 else 1.0
            if conn.poll(min(wait, 1.0)):
                kind, request = conn.recv()
                if kind == "stop":
                    return
                conn.send(_message(probe, request))
            elif interval_s > 0 and time.monotonic() >= next_at:
                conn.send(_message(probe, 0))
                next_at += interval_s
                if next_at < time.monotonic():  # a slow sample: skip ticks rather than catch up
                    next_at = time.monotonic() + interval_s
    except (EOFError, OSError):  # the parent died or closed the socket: nobody reads us
        return


def _message(probe: Any, request: int) -> tuple[str, int, Any]:
    """("sample", request, the probe's sample), or ("error", request, the traceback)."""
    try:
        return ("sample", request, probe.sample())
    except Exception:  # noqa: BLE001 - probes record their errors as data; this is a bug
        return ("error", request, traceback.format_exc())


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
