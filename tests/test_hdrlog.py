"""Per-second histograms as HdrHistogram interval logs: written, read back, windowed."""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from kafkabench.core.errors import KafkabenchError
from kafkabench.measure.hdrlog import read_interval_log, window_percentiles, write_interval_logs
from kafkabench.measure.stats import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyRecorder


def _intervals(seconds: int = 12) -> dict:
    out = {}
    for t in range(seconds):
        r = LatencyRecorder()
        r.record_many([1000 * (t + 1)] * 99 + [50_000])
        out[(t, "e2e_latency_us")] = r
    out[(3, "publish_latency_us")] = LatencyRecorder()  # empty: no file, no line
    return out


def test_round_trip_keeps_every_second_exactly(tmp_path):
    intervals = _intervals()
    files = write_interval_logs(tmp_path, intervals, t0_wall=1_800_000_000.5)
    assert [f.name for f in files] == ["e2e_latency_us.hlog"]
    start, read = read_interval_log(files[0])
    assert start == pytest.approx(1_800_000_000.5)
    assert [t for t, _ in read] == list(range(12))
    for t, recorder in read:
        original = intervals[(t, "e2e_latency_us")]
        assert recorder.count == original.count == 100
        assert recorder.percentiles("us") == original.percentiles("us")


def test_hdrh_own_reader_reads_the_log(tmp_path):
    (path,) = write_interval_logs(tmp_path, _intervals(5), t0_wall=1_800_000_000.0)
    reader = HistogramLogReader(str(path), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES))
    counts = []
    while (h := reader.get_next_interval_histogram()) is not None:
        counts.append(h.get_total_count())
    assert counts == [100] * 5


def test_ten_second_windows_merge_histograms_not_percentiles(tmp_path):
    _, read = read_interval_log(write_interval_logs(tmp_path, _intervals(), 1e9)[0])
    windows = window_percentiles(read, window_s=10, unit="us")
    assert list(windows.index) == [0, 10]
    assert list(windows["count"]) == [1000, 200]
    # The p50 of all 1,000 values of seconds 0-9 (99 each of 1..10 ms, then 10 of 50 ms):
    # the 500th value, 6 ms; a mean of per-second p50s would say 5.5 ms.
    assert windows.loc[0, "p50"] == pytest.approx(6000, rel=0.002)
    assert windows.loc[0, "max"] == pytest.approx(50_000, rel=0.002)
    with pytest.raises(ValueError, match="window_s=0"):
        window_percentiles(read, window_s=0)


def test_a_corrupt_log_names_the_file_and_line(tmp_path):
    (path,) = write_interval_logs(tmp_path, _intervals(3), 1e9)
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1][:-10] + "!!garbage!"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(KafkabenchError, match=rf"{path.name}, line {len(lines)}"):
        read_interval_log(path)
    with pytest.raises(KafkabenchError, match="cannot read"):
        read_interval_log(tmp_path / "missing.hlog")
