"""The pacers against a fake clock: bursts, waits, limits and publish delay (no broker)."""

import math

import pytest

from kafkabench.engine.pacing import CHECK_EVERY, MAX_BURST, MAX_WAIT_S, MIN_WAIT_S, FixedRate, MaxRate


class FakeClock:
    """A monotonic clock that moves only when told, or when a pacer waits on it."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


def fixed_rate(rate: float, clock: FakeClock, duration_s: float = 10.0, limit: float = math.inf):
    pacer = FixedRate(rate, duration_s, clock.wait, limit, clock=clock, wall_clock=lambda: 1.7e9)
    pacer.start()
    return pacer


def test_max_rate_sends_bursts_of_check_every_up_to_its_limit():
    clock = FakeClock()
    pacer = MaxRate(5.0, limit=1000, clock=clock)
    assert pacer.start() == 100.0 and pacer.end_s == 105.0
    assert pacer.burst(100.0, 0) == CHECK_EVERY
    assert pacer.burst(100.0, 900) == 100
    assert MaxRate(5.0).burst(100.0, 10**9) == CHECK_EVERY  # no limit
    # No schedule: message timestamps are 0 (librdkafka stamps them), no publish delay.
    assert pacer.origin_s == pacer.interval_s == 0.0
    pacer.sent(0, CHECK_EVERY)
    pacer.bin_delays()
    assert pacer.backlog == 0 and pacer.delay.count == 0


def test_fixed_rate_sends_what_is_due_and_waits_for_the_next_one():
    clock = FakeClock()
    pacer = fixed_rate(1000, clock)
    assert (pacer.start_s, pacer.end_s, pacer.origin_s, pacer.interval_s) == (100.0, 110.0, 1.7e9, 0.001)
    assert pacer.burst(clock(), 0) == 1  # message 0 is due at once
    clock.t += 0.0105
    assert pacer.burst(clock(), 1) == 10  # messages 1..10 are due by 10.5 ms
    # Nothing due: one wait in poll() until the next is, never shorter than poll()'s 1 ms.
    assert pacer.burst(clock(), 11) == 0
    assert clock.waits == [pytest.approx(MIN_WAIT_S)]
    clock.t = 100.0
    assert pacer.burst(clock(), 11) == 0
    assert clock.waits[-1] == pytest.approx(0.011)


def test_fixed_rate_waits_at_most_max_wait_and_bursts_at_most_max_burst():
    clock = FakeClock()
    slow = fixed_rate(0.5, clock)
    assert slow.burst(clock(), 1) == 0
    assert clock.waits == [MAX_WAIT_S]  # a stop or a report is never a whole interval away
    behind = fixed_rate(100_000, clock)
    clock.t += 1.0
    assert behind.burst(clock(), 0) == MAX_BURST


def test_fixed_rate_stops_at_its_limit():
    clock = FakeClock()
    pacer = fixed_rate(1000, clock, limit=5)
    clock.t += 1.0
    assert pacer.burst(clock(), 0) == 5
    assert pacer.burst(clock(), 5) == 0


def test_fixed_rate_holds_its_rate_against_the_clock():
    clock = FakeClock()
    pacer = fixed_rate(2000, clock, duration_s=2.0)
    sent = 0
    while clock() < pacer.end_s:
        burst = pacer.burst(clock(), sent)
        if burst:
            pacer.sent(sent, sent + burst)
            sent += burst
    assert sent == pytest.approx(4000, abs=2)
    assert min(clock.waits) >= MIN_WAIT_S
    pacer.bin_delays()
    assert pacer.delay.count == sent
    assert pacer.delay.value_at(100, "us") <= 1001  # late by at most poll()'s 1 ms resolution


def test_publish_delay_is_burst_time_minus_due_time():
    clock = FakeClock()
    pacer = fixed_rate(1000, clock)
    clock.t += 0.010
    pacer.sent(0, 10)  # messages 0..9, due at 0..9 ms, out at 10 ms: 10..1 ms late
    clock.t += 0.0015
    pacer.sent(10, 12)  # due at 10 and 11 ms, out at 11.5 ms: 1.5 ms and 0.5 ms late
    assert pacer.backlog == 2
    pacer.bin_delays()
    assert pacer.backlog == 0
    assert pacer.delay.count == 12
    assert pacer.delay.value_at(0, "us") == pytest.approx(500, rel=0.01)
    assert pacer.delay.value_at(100, "us") == pytest.approx(10_000, rel=0.01)


def test_a_burst_on_time_is_recorded_as_one_microsecond():
    clock = FakeClock()
    pacer = fixed_rate(10, clock)
    pacer.sent(0, 1)  # due at 0, out at 0
    clock.t += 0.1
    pacer.sent(1, 2)  # due at 100 ms, out at 100 ms
    pacer.bin_delays()
    assert pacer.delay.count == 2
    assert pacer.delay.value_at(100, "us") == 1
