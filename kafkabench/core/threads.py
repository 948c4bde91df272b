"""The one background-thread helper: call a function every so often until told to stop.

Samplers, scrapers and exporters all need the same loop: a daemon thread, a stop event that
also wakes it, a slow call that skips the ticks it missed rather than running back to back,
and an exception that is logged, never the end of the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `tick()` every `interval_s` seconds in a daemon thread until `stop()`.

    Args:
        tick: what to call; an exception it raises is logged and the thread goes on.
        interval_s: seconds from one call's planned start to the next's.
        name: the thread's name (and the log's word for it).
        first_now: call at once on start (else after one interval).
    """

    def __init__(self, tick: Callable[[], object], interval_s: float, *, name: str,
                 first_now: bool = True):
        self.tick, self.interval_s, self.name, self.first_now = tick, interval_s, name, first_now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Periodic:
        """Start the thread (a no-op when it runs); returns self."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop the thread, waiting up to `timeout_s` for a call in progress.

        Returns:
            True when the thread ended (False: a call is still stuck; it is left to finish).
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def _run(self) -> None:
        next_at = time.monotonic() + (0.0 if self.first_now else self.interval_s)
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the thread must outlive any surprise
                log.exception("kafkabench: %s failed", self.name)
            next_at += self.interval_s
            if next_at < time.monotonic():  # a slow call: skip the missed slots, do not catch up
                next_at = time.monotonic() + self.interval_s
