"""report: one self-contained HTML file (plotly.js inlined once, no remote scripts)."""

import math
import re

import pandas as pd
import pytest

from kafkabench.core.errors import KafkabenchError
from kafkabench.measure.lagmath import lag_frame
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.present import plots
from kafkabench.present.plots import throughput_vs
from kafkabench.present.report import differing_settings, load_runs, write_report
from kafkabench.results.store import save
from kafkabench.run.result import RunResult


def _recorder(values_us):
    rec = LatencyRecorder()
    for v in values_us:
        rec.record(v)
    return rec


def _run(name, *, compression=None, consumers=True, rate=1000.0):
    t = pd.Index([0, 1, 2], name="t")
    timeseries = pd.DataFrame({
        "produced": [rate] * 3, "delivered": [rate] * 3, "failed": [0] * 3,
        "consumed": [rate] * 3 if consumers else [0] * 3, "backlog": [0, 0, 0],
        "publish_latency_ms_p50": [2.0, 2.0, math.nan], "publish_latency_ms_p99": [8.0, 9.0, math.nan],
        "e2e_latency_ms_p50": [3.0, 3.0, 3.0] if consumers else [math.nan] * 3,
        "e2e_latency_ms_p99": [9.0, 9.0, 9.0] if consumers else [math.nan] * 3,
        "publish_delay_us_p99": [10.0, 10.0, 10.0]}, index=t)
    histograms = {"publish_latency_us": _recorder(range(1000, 9000, 7)),
                  "publish_delay_us": _recorder(range(1, 100))}
    summary = {"name": name, "started_at": "2026-11-26T10:00:00+00:00", "duration_s": 3.0,
               "publish_rate": rate, "publish_mb_s": rate / 1000, "target_rate": rate,
               "publish_latency_ms_p50": 2.0, "publish_latency_ms_p99": 9.0,
               "e2e_latency_ms_p50": 3.0 if consumers else math.nan,
               "e2e_latency_ms_p99": 9.0 if consumers else math.nan,
               "lag_max_msgs": 5.0 if consumers else math.nan, "errors": {}, "failed": 0,
               "workload.partitions": 2, "workload.consumer_groups": int(consumers)}
    if compression:
        summary["producer.compression.type"] = compression
    result = RunResult(summary=summary, timeseries=timeseries, histograms=histograms)
    if consumers:
        histograms["e2e_latency_us"] = _recorder(range(2000, 12000, 9))
        result.lag = lag_frame([(t, "g0", "topic", p, 10, 10 + p, p, 0.01 * p, "OK",
                                 pd.Timestamp("2026-11-26", tz="UTC")) for t in (0.0, 1.0) for p in (0, 1)])
        result.rebalances = pd.DataFrame({"t": [0.2], "group": ["g0"], "member": ["c0"],
                                          "event": ["assign"], "partitions": ["topic:0,topic:1"]})
    return result


def _scripts(page):
    return re.findall(r"<script[^>]*>", page)


def test_report_is_self_contained_and_names_every_run(tmp_path):
    runs = [_run("base"), _run("lz4", compression="lz4"), _run("noconsumer", consumers=False)]
    folder = tmp_path / "results"
    for r in runs:
        save(r, folder)
    out = write_report(folder, tmp_path / "sub" / "report.html", title="My <report>")
    page = out.read_text(encoding="utf-8")
    assert out.name == "report.html"
    # plotly.js inlined exactly once; nothing loaded from the network
    assert page.count("plotly.js v") == 1
    assert not [s for s in _scripts(page) if "src=" in s]
    for r in runs:
        assert r.run_id in page
    assert "My &lt;report&gt;" in page
    assert 'id="comparison"' in page and "compression.type" in page
    assert "No lag sampled" in page  # the run without consumers
    assert page.count('class="plotly-graph-div"') >= 3 * 3 + 1


def test_report_from_run_results_with_sweep(tmp_path):
    sweep = pd.DataFrame({
        "producer.linger.ms": [0, 5, 20], "publish_rate_median": [1.0, 2.0, 3.0],
        "publish_rate_min": [0.5, 1.5, 2.5], "publish_rate_max": [1.5, 2.5, 3.5],
        "e2e_latency_ms_p99_median": [3.0, 4.0, math.nan]})
    run = _run("solo")
    run.summary["run_id"] = "solo-run-id"
    out = write_report([run], tmp_path / "r.html", sweep=sweep)
    page = out.read_text(encoding="utf-8")
    assert "solo-run-id" in page
    assert 'id="sweep"' in page and "linger.ms" in page
    assert 'id="comparison"' not in page  # one run: nothing to compare
    assert page.count("plotly.js v") == 1


def test_report_without_consumers_or_latency(tmp_path):
    run = _run("bare", consumers=False)
    run.histograms = {}
    run.summary["run_id"] = "bare-1"
    page = write_report(run, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "bare-1" in page and "no latency recorded" in page


def test_report_bad_path(tmp_path):
    with pytest.raises(KafkabenchError):
        write_report(tmp_path / "nope", tmp_path / "r.html")


def test_load_runs_mixes_paths_and_objects(tmp_path):
    saved = save(_run("a"), tmp_path)
    runs = load_runs([saved, _run("b")])
    assert [r.name for r in runs] == ["a", "b"]


def test_differing_settings_treats_unset_as_default():
    df = pd.DataFrame({"producer.compression.type": [math.nan, "lz4"], "producer.acks": [1.0, 1.0],
                       "workload.name": ["a", "b"], "workload.partitions": [3, 6], "publish_rate": [1, 2]})
    assert differing_settings(df) == ["producer.compression.type", "workload.partitions"]


def test_report_compares_runs_that_differ_in_several_settings_by_their_median(tmp_path, monkeypatch):
    # Runs differing in compression, linger and message size: the (compression, linger) bars
    # each got two runs, which plotly stacked into one bar of their sum.
    runs = []
    for compression, linger, size, rate in (("none", 0, 100, 1000.0), ("none", 0, 200, 3000.0),
                                            ("lz4", 0, 100, 2000.0), ("lz4", 0, 200, 4000.0),
                                            ("lz4", 5, 100, 500.0)):
        run = _run(f"{compression}-{linger}-{size}", compression=compression, rate=rate)
        run.summary.update({"producer.linger.ms": linger, "workload.message_size": size})
        runs.append(run)
    figures = []
    monkeypatch.setattr(plots, "throughput_vs", lambda *a, **k: figures.append(throughput_vs(*a, **k))
                        or figures[-1])
    page = write_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "publish throughput by compression.type (median of runs)" in page
    by_compression = figures[0]
    linger0 = next(t for t in by_compression.data if t.name == "0")
    # none: 2.0 MB/s, the median of 1 and 3; lz4: 3.0, of 2 and 4 (not their sums, 4 and 6)
    assert dict(zip(linger0.x, linger0.y)) == {"none": 2.0, "lz4": 3.0}
    # the wide summary table is drawn at its width and scrolls, rather than clipping headers
    assert page.count('<div class="wide">') >= 1


def test_report_has_a_broker_section_when_brokers_were_scraped(tmp_path):
    plain, scraped = _run("plain"), _run("scraped")
    plain.summary["run_id"], scraped.summary["run_id"] = "plain-1", "scraped-1"
    scraped.broker_metrics = pd.DataFrame({
        "t": [0.0, 1.0, 2.0], "broker": ["1"] * 3,
        "metric": ["kafka_server_brokertopicmetrics_messagesin_total"] * 3, "labels": [""] * 3,
        "value": [0.0, 1000.0, 2000.0]})
    scraped.summary.update(broker_bytes_in_total=123456.0, broker_messages_in_total=2000.0,
                           broker_under_replicated_max=0.0, broker_scrape_errors=0)
    folder = tmp_path / "results"
    for r in (plain, scraped):
        save(r, folder)
    page = write_report(folder, tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("broker metrics (JMX exporter") == 1
    assert "123,456" in page or "123456" in page
    assert "messages in (brokers)" in page  # the combined chart, from the saved frame
