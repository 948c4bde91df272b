"""When a producer sends: the pacers, as fast as possible (`MaxRate`) or on a fixed schedule
(`FixedRate`), and the publish delay of a schedule (intended send time to actual send time,
OpenMessaging Benchmark's coordinated-omission correction).

A pacer owns the schedule: when the run ends, how many messages may go now (a burst) and,
between bursts, the wait. The send loop asks it once per burst and tells it what went.
Clocks and the wait are arguments, so a pacer runs against a fake clock in tests.

May import: `kafkabench.measure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from kafkabench.measure.stats import LatencyRecorder

# How often (messages) the max-rate loop looks at the clock and the stop flag: often enough
# for 1 s intervals at 1M msgs/s, rare enough to cost nothing.
CHECK_EVERY = 256
# Rate-controlled sends: the shortest and longest sleep between due messages (poll() counts
# whole milliseconds), and the most messages sent at once when the loop is behind.
MIN_WAIT_S = 0.001
MAX_WAIT_S = 0.05
MAX_BURST = 1024


class MaxRate:
    """As fast as possible: bursts of `CHECK_EVERY` messages, no schedule, no publish delay.

    Args:
        duration_s: how long to send, from `start()`.
        limit: the most messages to send in all (`float("inf")`: no limit).
        clock: monotonic seconds.

    Attributes:
        start_s, end_s: monotonic start and end of the run (set by `start()`).
        origin_s, interval_s: the schedule of intended send times (message i at
            `origin_s + i * interval_s`, wall clock): 0, so every message's Kafka timestamp
            is 0 (librdkafka stamps it when produce() is called).
        delay: publish delays binned so far (none at max rate), in microseconds.
    """

    origin_s = interval_s = 0.0
    backlog = 0  # bursts waiting to be binned

    def __init__(self, duration_s: float, limit: float = float("inf"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.duration_s, self.limit, self._clock = duration_s, limit, clock
        self.start_s = self.end_s = 0.0
        self.delay = LatencyRecorder()

    def start(self) -> float:
        """Start the run's clock now; returns the monotonic start."""
        self.start_s = self._clock()
        self.end_s = self.start_s + self.duration_s
        return self.start_s

    def burst(self, now: float, sent: int) -> int:
        """How many messages to send now, `sent` being sent so far."""
        return min(CHECK_EVERY, self.limit - sent)

    def sent(self, first: int, end: int) -> None:
        """Messages `first` to `end` (excluded) were just handed to produce()."""

    def bin_delays(self) -> None:
        """Turn the bursts sent since the last call into publish-delay counts."""


class FixedRate:
    """A fixed rate: message i is due `i / rate` seconds after `start()`.

    Each burst is every message due (up to `MAX_BURST`); when none is, `burst` waits in
    `wait` (the producer's poll(), which serves delivery reports meanwhile) until the next
    one is. The publish delay of message i is the time its burst was handed to produce()
    minus its due time (an upper bound, by the burst's own few microseconds), binned per
    burst in one numpy pass instead of ~1.5 us per message.

    Args:
        rate: messages per second.
        duration_s: how long to send, from `start()`.
        wait: blocks up to that many seconds, e.g. `Producer.poll`.
        limit: the most messages to send in all (`float("inf")`: no limit).
        clock: monotonic seconds.
        wall_clock: wall-clock seconds (the intended send times are Kafka timestamps).

    Attributes:
        start_s, end_s: monotonic start and end of the run (set by `start()`).
        origin_s, interval_s: the schedule of intended send times: message i at
            `origin_s + i * interval_s` (wall clock; the Kafka timestamp of message i).
        delay: publish delays binned so far, in microseconds.
    """

    def __init__(self, rate: float, duration_s: float, wait: Callable[[float], object],
                 limit: float = float("inf"), clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.rate, self.duration_s, self.limit = rate, duration_s, limit
        self.interval_s = 1.0 / rate
        self._wait, self._clock, self._wall_clock = wait, clock, wall_clock
        self.start_s = self.end_s = self.origin_s = 0.0
        self.delay = LatencyRecorder()
        # Per burst: (seconds since start when it was out, first message index, end index).
        self._bursts: list[tuple[float, int, int]] = []

    def start(self) -> float:
        """Start the schedule now; returns the monotonic start."""
        self.start_s, self.origin_s = self._clock(), self._wall_clock()
        self.end_s = self.start_s + self.duration_s
        return self.start_s

    def burst(self, now: float, sent: int) -> int:
        """How many messages to send now, `sent` being sent so far; 0 after waiting for one."""
        due = min(self.limit, int((now - self.start_s) * self.rate) + 1)
        if due <= sent:
            # poll()'s timeout has millisecond resolution and a shorter one is 0: waiting in
            # sub-millisecond steps spun a whole core at 20,000 msgs/s.
            self._wait(min(max(self.start_s + sent * self.interval_s - now, MIN_WAIT_S), MAX_WAIT_S))
            return 0
        return min(due - sent, MAX_BURST)

    def sent(self, first: int, end: int) -> None:
        """Messages `first` to `end` (excluded) were just handed to produce()."""
        self._bursts.append((self._clock() - self.start_s, first, end))

    @property
    def backlog(self) -> int:
        """Bursts waiting to be binned."""
        return len(self._bursts)

    def bin_delays(self) -> None:
        """Turn the bursts sent since the last call into publish-delay counts."""
        if not self._bursts:
            return
        rows = np.array(self._bursts, dtype=np.float64)
        counts = (rows[:, 2] - rows[:, 1]).astype(np.int64)
        first, end = int(rows[0, 1]), int(rows[-1, 2])
        delays = np.repeat(rows[:, 0], counts) - np.arange(first, end) * self.interval_s
        np.maximum(delays, 1e-6, out=delays)  # on time: recorded as 1 us
        self.delay.record_many(delays, scale=1e6)
        self._bursts.clear()


#: Either pacer: the send loop calls the same methods on both.
Pacer = MaxRate | FixedRate
