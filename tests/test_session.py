"""The run session's extension point: observers called at start, go, every second and end."""

from __future__ import annotations

import pandas as pd
import pytest

from kafkabench.run.session import RunObserver
from kafkabench.runner import run_workload


class _Recorder(RunObserver):
    """Records every hook call and what the session had measured at that moment."""

    def __init__(self):
        self.calls: list[str] = []
        self.delivered_at_end = -1

    def on_start(self, session):
        self.calls.append("start")

    def on_go(self, session):
        self.calls.append("go")

    def on_second(self, session):
        self.calls.append("second")

    def on_end(self, session):
        self.calls.append("end")
        self.delivered_at_end = sum(session.tally.delivered_by_topic.values())

    def contribute(self, result):
        result.summary["observed_seconds"] = self.calls.count("second")


def test_observers_are_called_in_order_and_add_to_the_result(bootstrap):
    watcher = _Recorder()
    result = run_workload({"name": "obs", "partitions": 2, "producer_rate": 500, "duration_s": 3,
                           "consumer_groups": 1}, None, bootstrap=bootstrap, progress=False,
                          mode="thread", observers=[watcher])
    calls = watcher.calls
    assert calls[0] == "start" and calls[-1] == "end"
    assert calls.count("go") == 1 and calls.count("start") == calls.count("end") == 1
    # About once a second while the run drains reports (3 s of producing, plus set-up).
    assert calls.count("second") >= 3
    assert calls.index("go") < len(calls) - 1 - calls[::-1].index("second")
    # on_end sees the final tally: every last report was taken before it.
    assert watcher.delivered_at_end == result.summary["delivered"] > 0
    assert result.summary["observed_seconds"] == calls.count("second")


def test_timeseries_time_is_each_seconds_utc_wall_clock(bootstrap):
    result = run_workload({"name": "clock", "partitions": 1, "producer_rate": 200, "duration_s": 3,
                           "consumer_groups": 0}, None, bootstrap=bootstrap, progress=False)
    ts = result.timeseries
    assert str(ts["time"].dtype) == "datetime64[us, UTC]"
    # One second apart, starting within a few seconds of the run's start.
    assert (ts["time"].diff().dropna() == pd.Timedelta(seconds=1)).all()
    started = pd.Timestamp(result.summary["started_at"])
    assert pd.Timedelta(0) <= ts["time"].iloc[0] - started < pd.Timedelta(seconds=15)


def test_saved_run_keeps_every_seconds_histogram_as_an_interval_log(bootstrap, tmp_path):
    from kafkabench.measure.hdrlog import INTERVAL_DIR, read_interval_log, window_percentiles

    result = run_workload({"name": "hlog", "partitions": 2, "producer_rate": 400, "duration_s": 3,
                           "warmup_s": 0, "consumer_groups": 1}, None, bootstrap=bootstrap,
                          progress=False, mode="thread", out=tmp_path)
    folder = tmp_path / result.run_id / INTERVAL_DIR
    assert sorted(p.name for p in folder.iterdir()) == [
        "e2e_latency_us.hlog", "publish_delay_us.hlog", "publish_latency_us.hlog"]
    start, seconds = read_interval_log(folder / "e2e_latency_us.hlog")
    # The log starts at the run's t = 0: the timeseries' first second.
    assert start == pytest.approx(result.timeseries["time"].iloc[0].timestamp(), abs=0.001)
    # Every consumed message is in exactly one second, and whole-run windows agree with the
    # run's own histogram.
    assert sum(h.count for _, h in seconds) == result.histograms["e2e_latency_us"].count \
        == result.summary["consumed"]
    whole = window_percentiles(seconds, window_s=3600)
    assert whole["p99"].iloc[0] == pytest.approx(result.summary["e2e_latency_ms_p99"])
    per_second = window_percentiles(seconds)
    assert list(per_second.index) == sorted({t for t, _ in seconds})


def test_ack_timeline_keeps_one_byte_a_bucket_and_gives_back_the_buckets_with_acks():
    # A dict entry per 10 ms bucket and partition grew a 30-minute soak's parent by ~100 MB.
    from kafkabench.run.tally import AckTimeline

    timeline = AckTimeline()
    timeline.update({("t", 0, 1000): 3, ("t", 1, 1002): 1})
    timeline.update({("t", 0, 1005): 2, ("t", 0, 998): 1, ("t", 0, 1000): 400})
    assert sorted(timeline.items()) == [(("t", 0, 998), 1), (("t", 0, 1000), 255), (("t", 0, 1005), 2),
                                        (("t", 1, 1002), 1)]
    assert len(timeline) == 8 + 1  # buckets 998..1005 of partition 0, 1002 of partition 1


class _ProducerSeconds:
    """A tally part: the seconds each producer's interval reports closed, and its final count."""

    name = "producer_seconds"

    def __init__(self):
        self.seconds: dict[str, set[int]] = {}
        self.sent: dict[str, int] = {}

    def merge(self, report, tally):
        if report.role != "producer":
            return
        if report.kind == "interval":
            self.seconds.setdefault(report.worker, set()).add(tally.t(report.wall))
        elif report.kind == "done":
            self.sent[report.worker] = report.counts["sent"]


class _Registering(RunObserver):
    """Registers its part before any worker starts and reads it back at the end."""

    def on_start(self, session):
        self.part = session.tally.register(_ProducerSeconds())

    def contribute(self, result):
        result.summary["parts_seen"] = sorted(self.part.seconds)


def test_an_observer_registers_a_tally_part_that_gets_every_workers_reports(bootstrap):
    watcher = _Registering()
    result = run_workload({"name": "part", "partitions": 2, "producers": 2, "producer_rate": 300,
                           "duration_s": 3, "consumer_groups": 1}, None, bootstrap=bootstrap,
                          progress=False, mode="thread", observers=[watcher])
    part = watcher.part
    assert result.summary.pop("parts_seen") == ["producer-0", "producer-1"]
    # Every producer's final report, and interval reports from each over several seconds (a
    # late report on a loaded machine may close the same second as the next one).
    assert sum(part.sent.values()) == result.summary["produced"] > 0
    assert all(len(seconds) >= 2 for seconds in part.seconds.values())
