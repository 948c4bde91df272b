"""plots: each figure has the traces, axes and hover expected from small hand-made frames."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from kafkabench.core.errors import ConfigError
from kafkabench.measure.lagmath import lag_frame
from kafkabench.present import plots
from kafkabench.run.result import empty_lag, empty_rebalances, empty_timeseries


def _timeseries(consumers=True):
    t = pd.Index([0, 1, 2], name="t")
    return pd.DataFrame({
        "produced": [1000, 1000, 1000], "delivered": [990, 1000, 1010], "failed": [0, 0, 0],
        "consumed": [900, 1000, 1100] if consumers else [0, 0, 0],
        "backlog": [90, 90, 0] if consumers else [990, 1990, 3000],
        "publish_latency_ms_p50": [2.0, 2.5, 2.1], "publish_latency_ms_p99": [9.0, 11.0, 8.0],
        "e2e_latency_ms_p50": [3.0, 3.5, 3.1] if consumers else [math.nan] * 3,
        "e2e_latency_ms_p99": [12.0, 15.0, 10.0] if consumers else [math.nan] * 3,
        "publish_delay_us_p99": [50.0, 70.0, 60.0]}, index=t)


def _lag():
    rows = []
    for t in (0.0, 1.0, 2.0):
        for p in (0, 1):
            lag = None if t == 0 else int(10 * t + p)
            rows.append((t, "g0", "topic", p, None if lag is None else 100, 100 + (lag or 0), lag,
                         0.1 * t, "OK", pd.Timestamp("2026-01-01", tz="UTC")))
    return lag_frame(rows)


def _rebalances():
    return pd.DataFrame({"t": [0.0, 1.5], "group": ["g0", "g0"], "member": ["c0", "c0"],
                         "event": ["assign", "revoke"], "partitions": ["topic:0,topic:1", "topic:0"]})


def _names(fig):
    return [t.name for t in fig.data]


def test_every_figure_uses_the_kafkabench_template():
    fig = plots.throughput_over_time(_timeseries())
    assert fig.layout.template.layout.colorway == tuple(plots.COLORS)
    assert plots.TEMPLATE in __import__("plotly.io").io.templates


@pytest.mark.parametrize("column, title", [
    ("publish_rate", "publish rate (msg/s)"),
    ("publish_rate_median", "publish rate, median (msg/s)"),
    ("producer.linger.ms", "linger.ms (ms)"),
    ("producer.batch.size", "batch.size (bytes)"),
    ("workload.message_size", "message size (bytes)"),
    ("e2e_latency_ms_p99_9", "end-to-end latency p99.9 (ms)"),
    ("publish_delay_us_p99", "publish delay p99 (µs)"),
    ("storage_total_gb", "storage total (GB)"),
    ("network_egress_mb_s", "network egress (MB/s)"),
    ("producer.compression.type", "compression.type"),
])
def test_axis_title_has_units(column, title):
    assert plots.axis_title(column) == title


# ------------------------------------------------------------------ throughput


def _sweep():
    return pd.DataFrame({
        "producer.linger.ms": [20, 0, 5, 0, 5, 20],
        "producer.compression.type": ["none", "none", "none", "lz4", "lz4", "lz4"],
        "publish_rate_median": [3.0, 1.0, 2.0, 2.0, 3.0, 4.0],
        "publish_rate_min": [2.5, 0.5, 1.5, 1.5, 2.5, 3.5],
        "publish_rate_max": [3.5, 1.5, 2.5, 2.5, 3.5, 4.5],
    })


def test_throughput_vs_one_line_per_color_with_min_max_error_bars():
    fig = plots.throughput_vs(_sweep(), "producer.linger.ms", "publish_rate_median",
                              "producer.compression.type",
                              error_y=("publish_rate_min", "publish_rate_max"), log_x=False)
    assert sorted(_names(fig)) == ["lz4", "none"]
    none = next(t for t in fig.data if t.name == "none")
    assert isinstance(none, go.Scatter)
    assert list(none.x) == [0, 5, 20]  # sorted by x
    assert list(none.y) == [1.0, 2.0, 3.0]
    assert list(none.error_y.array) == [0.5, 0.5, 0.5]
    assert list(none.error_y.arrayminus) == [0.5, 0.5, 0.5]
    assert fig.layout.xaxis.title.text == "linger.ms (ms)"
    assert fig.layout.yaxis.title.text == "publish rate, median (msg/s)"
    assert "%{y" in none.hovertemplate and "%{x}" in none.hovertemplate


def test_throughput_vs_error_y_true_infers_min_max_and_log_x():
    none = _sweep()[lambda d: d["producer.compression.type"] == "none"]
    fig = plots.throughput_vs(none, "producer.linger.ms", "publish_rate_median", error_y=True,
                              log_x=True, title="t")
    assert len(fig.data) == 1 and fig.layout.xaxis.type == "log"
    assert fig.data[0].error_y.arrayminus is not None
    assert fig.layout.title.text == "t"


def test_throughput_vs_categorical_x_gives_bars_with_hover_data():
    df = pd.DataFrame({"producer.compression.type": ["none", "lz4"], "publish_mb_s": [10.0, 12.0],
                       "run_id": ["r1", "r2"]})
    fig = plots.throughput_vs(df, "producer.compression.type", "publish_mb_s", hover_data=["run_id"])
    assert isinstance(fig.data[0], go.Bar)
    assert list(fig.data[0].x) == ["none", "lz4"]
    assert fig.layout.xaxis.type == "category"
    assert fig.layout.yaxis.title.text == "publish throughput (MB/s)"
    assert "customdata[0]" in fig.data[0].hovertemplate


def test_throughput_over_time_rates_and_backlog_on_secondary_axis():
    fig = plots.throughput_over_time(_timeseries())
    assert _names(fig) == ["produced", "delivered", "consumed", "backlog"]
    backlog = fig.data[-1]
    assert backlog.yaxis == "y2" and list(backlog.y) == [90, 90, 0]
    assert list(fig.data[0].x) == [0, 1, 2]
    assert fig.layout.xaxis.title.text == "time (s)"
    assert fig.layout.yaxis.title.text == "messages per second (msg/s)"
    assert fig.layout.yaxis2.title.text == "backlog (messages)"


def test_throughput_over_time_shows_failed_only_when_some_failed():
    ts = _timeseries().assign(failed=[0, 5, 0])
    assert "failed" in _names(plots.throughput_over_time(ts))
    assert "failed" not in _names(plots.throughput_over_time(_timeseries()))


def test_throughput_over_time_empty_has_a_note():
    fig = plots.throughput_over_time(empty_timeseries())
    assert fig.layout.annotations and "no time series" in fig.layout.annotations[0].text


# ------------------------------------------------------------------ latency


def _spectrum(metrics=("publish_latency_us", "e2e_latency_us")):
    rows = []
    for m in metrics:
        for p, v in ((0.0, 1.0), (50.0, 2.0), (90.0, 3.0), (99.0, 5.0), (99.9, 9.0), (100.0, 20.0)):
            rows.append((m, p, v * (2 if m == "e2e_latency_us" else 1)))
    return pd.DataFrame(rows, columns=["metric", "percentile", "value_ms"])


def test_latency_spectrum_uses_the_nines_axis():
    fig = plots.latency_spectrum(_spectrum())
    assert _names(fig) == ["publish latency", "end-to-end latency"]
    trace = fig.data[0]
    # x = 1 / (1 - p/100); p = 100 has no place on this axis and is left out
    np.testing.assert_allclose(trace.x, [1.0, 2.0, 10.0, 100.0, 1000.0])
    assert list(trace.y) == [1.0, 2.0, 3.0, 5.0, 9.0]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
    np.testing.assert_allclose(fig.layout.xaxis.tickvals, [2, 10, 100, 1e3, 1e4, 1e5])
    assert fig.layout.yaxis.title.text == "latency (ms)" and fig.layout.yaxis.type == "linear"
    assert "customdata" in trace.hovertemplate


def test_latency_spectrum_runs_colour_by_run_dash_by_metric():
    spec = pd.concat([_spectrum().assign(run="a"), _spectrum().assign(run="b")], ignore_index=True)
    fig = plots.latency_spectrum(spec, log_y=True)
    assert len(fig.data) == 4
    by_name = {t.name: t for t in fig.data}
    assert by_name["a · publish latency"].line.color == by_name["a · end-to-end latency"].line.color
    assert by_name["a · publish latency"].line.color != by_name["b · publish latency"].line.color
    assert by_name["a · publish latency"].line.dash == by_name["b · publish latency"].line.dash
    assert by_name["a · publish latency"].line.dash != by_name["a · end-to-end latency"].line.dash
    assert fig.layout.yaxis.type == "log"


def test_latency_spectrum_empty():
    fig = plots.latency_spectrum(pd.DataFrame(columns=["metric", "percentile", "value_ms"]))
    assert not fig.data and fig.layout.annotations


def test_latency_over_time_default_columns_skip_all_nan():
    fig = plots.latency_over_time(_timeseries())
    assert _names(fig) == ["publish latency p50", "publish latency p99",
                           "end-to-end latency p50", "end-to-end latency p99"]
    assert fig.data[0].line.color == fig.data[1].line.color
    assert fig.data[0].line.dash != fig.data[1].line.dash
    assert fig.layout.yaxis.title.text == "latency (ms)"
    assert fig.layout.xaxis.title.text == "time (s)"
    no_consumers = plots.latency_over_time(_timeseries(consumers=False))
    assert _names(no_consumers) == ["publish latency p50", "publish latency p99"]


def test_latency_over_time_explicit_columns():
    fig = plots.latency_over_time(_timeseries(), columns=["publish_delay_us_p99"])
    assert _names(fig) == ["publish delay p99"]
    assert fig.layout.yaxis.title.text == "latency (µs)"


def test_rate_vs_latency_with_target_column():
    df = pd.DataFrame({"target_rate": [1000.0, 2000.0, 4000.0], "publish_rate": [1000.0, 2000.0, 3100.0],
                       "e2e_latency_ms_p50": [2.0, 3.0, 40.0], "e2e_latency_ms_p99": [5.0, 8.0, 300.0]})
    fig = plots.rate_vs_latency(df, target="target_rate")
    assert _names(fig)[:2] == ["end-to-end latency p50", "end-to-end latency p99"]
    assert "target rate" in _names(fig)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "publish rate (msg/s)"
    assert fig.layout.yaxis.title.text == "latency (ms)"
    target = next(t for t in fig.data if t.name == "target rate")
    assert list(target.x) == [1000.0, 2000.0, 4000.0]


def test_rate_vs_latency_with_target_number_draws_a_line():
    df = pd.DataFrame({"publish_rate": [1.0, 2.0], "e2e_latency_ms_p99": [3.0, 4.0]})
    fig = plots.rate_vs_latency(df, y="e2e_latency_ms_p99", target=1.5, log_y=False)
    assert len(fig.data) == 1
    assert fig.layout.shapes[0].x0 == 1.5
    assert fig.layout.yaxis.type == "linear"


# ------------------------------------------------------------------ lag


def test_lag_over_time_per_partition_two_rows_and_rebalance_markers():
    fig = plots.lag_over_time(_lag(), _rebalances())
    lines = [t for t in fig.data if t.name != "rebalance"]
    assert len(lines) == 4  # 2 partitions x (messages, seconds)
    assert {t.yaxis for t in lines} == {"y", "y2"}
    p0 = [t for t in lines if t.name == "p0"]
    assert len(p0) == 2 and p0[0].line.color == p0[1].line.color
    msgs = next(t for t in p0 if t.yaxis == "y")
    # a partition without a committed offset has NA lag: a gap (NaN), not zero
    assert math.isnan(msgs.y[0]) and list(msgs.y[1:]) == [10.0, 20.0]
    assert fig.layout.yaxis.title.text == "lag (messages)"
    assert fig.layout.yaxis2.title.text == "lag (s)"
    assert fig.layout.xaxis2.title.text == "time (s)"
    marker = next(t for t in fig.data if t.name == "rebalance")
    assert list(marker.x) == [0.0, 1.5] and list(marker.text) == ["assign", "revoke"]
    assert [s.x0 for s in fig.layout.shapes] == [0.0, 1.5]


def test_lag_over_time_by_group_one_legend_entry_per_group():
    lag = pd.concat([_lag(), _lag().assign(group="g1")], ignore_index=True)
    fig = plots.lag_over_time(lag, by="group")
    assert len(fig.data) == 8
    shown = [t.name for t in fig.data if t.showlegend]
    assert shown == ["g0", "g1"]
    g0 = {t.line.color for t in fig.data if t.name == "g0"}
    assert len(g0) == 1


def test_lag_over_time_empty_lag_and_rebalances():
    fig = plots.lag_over_time(empty_lag(), empty_rebalances())
    assert not fig.data
    assert "no lag" in fig.layout.annotations[0].text
    with pytest.raises(ValueError):
        plots.lag_over_time(_lag(), by="topic")


# ------------------------------------------------------------------ partitioning


def _per_partition(strategy=None):
    df = pd.DataFrame({"partition": [0, 1, 2, 3], "messages": [40, 30, 20, 10],
                       "share": [0.4, 0.3, 0.2, 0.1]})
    return df if strategy is None else df.assign(strategy=strategy)


def test_partition_share_bars_and_even_share_line():
    fig = plots.partition_share(_per_partition(), title="x")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Bar)
    assert list(fig.data[0].y) == [0.4, 0.3, 0.2, 0.1]
    assert fig.layout.shapes[0].y0 == 0.25  # 1 / 4 partitions
    assert fig.layout.xaxis.title.text == "partition"
    assert fig.layout.yaxis.title.text == "share of messages"
    assert fig.layout.yaxis.tickformat == ".0%"
    assert "messages" in fig.data[0].hovertemplate


def test_partition_share_one_bar_trace_per_strategy():
    df = pd.concat([_per_partition("a"), _per_partition("b")], ignore_index=True)
    fig = plots.partition_share(df)
    assert _names(fig) == ["a", "b"] and fig.layout.showlegend


def test_partition_heatmap():
    df = pd.concat([_per_partition("a"), _per_partition("b").assign(share=0.25)], ignore_index=True)
    fig = plots.partition_heatmap(df)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert list(heat.y) == ["a", "b"] and list(heat.x) == ["0", "1", "2", "3"]
    np.testing.assert_allclose(heat.z, [[0.4, 0.3, 0.2, 0.1], [0.25] * 4])
    assert fig.layout.xaxis.title.text == "partition" and fig.layout.yaxis.title.text == "strategy"


# ------------------------------------------------------------------ capacity


def _sensitivity():
    rows = []
    for name, base, outputs in (("target_mb_s", 100.0, (5, 10, 15)), ("consumers", 4, (10, 10, 10)),
                                ("retention_days", 7.0, (10, 10, 10))):
        for factor, out in zip((0.5, 1.0, 1.5), outputs):
            rows.append({"input": name, "factor": factor, "value": base * factor, "partitions": out,
                         "brokers": 3})
    return pd.DataFrame(rows)


def test_capacity_sensitivity_line_per_input():
    fig = plots.capacity_sensitivity(_sensitivity())
    assert _names(fig) == ["target_mb_s", "consumers", "retention_days"]
    assert list(fig.data[0].y) == [5, 10, 15] and list(fig.data[0].x) == [0.5, 1.0, 1.5]
    assert fig.layout.yaxis.title.text == "partitions"
    assert fig.layout.xaxis.title.text == "factor applied to the input"
    assert "customdata" in fig.data[0].hovertemplate  # the input's value


def test_capacity_sensitivity_tornado_leaves_out_inputs_that_change_nothing():
    fig = plots.capacity_sensitivity(_sensitivity(), kind="tornado")
    assert len(fig.data) == 2
    low, high = fig.data
    assert list(low.y) == ["target_mb_s"] and list(low.x) == [-5.0] and list(low.base) == [10.0]
    assert list(high.x) == [5.0]
    assert fig.layout.xaxis.title.text == "partitions"
    empty = plots.capacity_sensitivity(_sensitivity(), "brokers", kind="tornado")
    assert "no input changes" in empty.layout.annotations[0].text


def test_predicted_vs_measured_one_panel_per_metric():
    df = pd.DataFrame({"metric": ["publish_mb_s", "partitions"], "predicted": [10.0, 6.0],
                       "measured": [9.0, 6.0]})
    fig = plots.predicted_vs_measured(df)
    assert len(fig.data) == 4
    assert [t.name for t in fig.data] == ["predicted", "measured"] * 2
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert fig.data[1].y == (9.0,) and fig.data[3].xaxis == "x2"
    assert fig.layout.yaxis.title.text == "publish throughput (MB/s)"


def test_summary_table_formats_numbers_and_blanks_nan():
    df = pd.DataFrame({"run_id": ["a", "b"], "publish_rate": [1234.5678, math.nan],
                       "failed": [0, 3], "errors": [{}, {"_MSG_TIMED_OUT": 2}]})
    fig = plots.summary_table(df, ["run_id", "publish_rate", "failed", "errors", "missing"])
    table = fig.data[0]
    assert isinstance(table, go.Table)
    assert list(table.header.values) == ["<b>run_id</b>", "<b>publish_rate</b>", "<b>failed</b>",
                                         "<b>errors</b>", "<b>missing</b>"]
    cells = table.cells.values
    assert list(cells[0]) == ["a", "b"]
    assert list(cells[1]) == ["1,235", ""]
    assert list(cells[2]) == ["0", "3"]
    assert list(cells[3]) == ["", "_MSG_TIMED_OUT: 2"]
    assert list(cells[4]) == ["", ""]


def test_plots_never_show(monkeypatch):
    # .show() would open a browser or need a kernel: no function may call it.
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: pytest.fail("show() called"))
    plots.throughput_over_time(_timeseries())
    plots.lag_over_time(_lag(), _rebalances())
    plots.latency_spectrum(_spectrum())


# ------------------------------------------------------------------ what readers saw wrong (issue 9)


def _acks_runs():
    """01's CI sweep: four runs share acks=all and batch.size 1M, differing in the other settings."""
    return pd.DataFrame({
        "point": ["p0", "p1", "p2", "p3"], "producer.acks": ["all"] * 4,
        "producer.batch.size": [1_000_000] * 4, "producer.compression.type": ["none", "none", "lz4", "lz4"],
        "producer.linger.ms": [0, 20, 0, 20], "publish_rate": [239e3, 285e3, 134e3, 307e3]})


def test_throughput_vs_refuses_rows_that_plotly_would_stack_into_one_bar():
    with pytest.raises(ConfigError, match=r"4 rows share the point producer\.acks=all.*"
                                          r"compression\.type.*linger\.ms.*summarize"):
        plots.throughput_vs(_acks_runs(), "producer.acks", "publish_rate", color="producer.batch.size")


def test_acks_bars_are_the_median_of_the_runs_not_their_sum():
    from kafkabench.analysis.sweeps import summarize
    runs = pd.concat([_acks_runs(), _acks_runs().assign(**{"producer.acks": "1", "publish_rate": 1e5})])
    bars = summarize(runs.drop(columns="point"), ["producer.acks", "producer.batch.size"],
                     metrics=["publish_rate"])
    fig = plots.throughput_vs(bars, "producer.acks", "publish_rate_median", color="producer.batch.size",
                              error_y=True)
    (bar,) = fig.data
    assert isinstance(bar, go.Bar) and list(bar.x) == ["all", "1"]  # one bar per acks value
    assert list(bar.y) == [262e3, 1e5]  # median of 239k, 285k, 134k, 307k; not their 965k sum
    assert list(bar.error_y.arrayminus) == [262e3 - 134e3, 0] and list(bar.error_y.array) == [45e3, 0]


def test_throughput_vs_rate_axis_starts_at_zero():
    # 02: two consume rates 1.5 % apart looked like a cliff on an axis zoomed to them.
    df = pd.DataFrame({"consumers": [1, 2], "consume_rate": [9850.0, 10000.0]})
    fig = plots.throughput_vs(df, "consumers", "consume_rate")
    assert fig.layout.yaxis.rangemode == "tozero"


def test_zero_backlog_axis_shows_zero_not_negative_ticks():
    ts = _timeseries().assign(backlog=[0, 0, 0])
    fig = plots.throughput_over_time(ts)
    assert tuple(fig.layout.yaxis2.range) == (0, 1) and tuple(fig.layout.yaxis2.tickvals) == (0,)
    busy = plots.throughput_over_time(_timeseries())
    assert busy.layout.yaxis2.rangemode == "nonnegative" and busy.layout.yaxis2.range is None
    assert busy.layout.yaxis2.tickmode == "auto"  # its own round ticks, not synced to the left axis
    assert busy.layout.yaxis.rangemode == "nonnegative"


def test_rate_vs_latency_joins_points_in_rate_order():
    df = pd.DataFrame({"publish_rate": [3000.0, 1000.0, 2000.0], "target_rate": [3000.0, 1000.0, 2000.0],
                       "e2e_latency_ms_p50": [30.0, 10.0, 20.0], "e2e_latency_ms_p99": [90.0, 50.0, 70.0]})
    fig = plots.rate_vs_latency(df, target="target_rate")
    assert list(fig.data[0].x) == [1000.0, 2000.0, 3000.0] and list(fig.data[0].y) == [10.0, 20.0, 30.0]
    assert list(fig.data[1].y) == [50.0, 70.0, 90.0]
    assert fig.layout.xaxis.rangemode == "tozero"


def test_log_axes_label_every_tick_in_full():
    # plotly alone labels 20 and 50 on a short log axis as "2" and "5"
    df = pd.DataFrame({"publish_rate": [1000.0, 2000.0], "e2e_latency_ms_p99": [3.0, 80.0]})
    axis = plots.rate_vs_latency(df, y="e2e_latency_ms_p99").layout.yaxis
    assert axis.type == "log" and axis.tickmode == "array"
    labels = dict(zip(axis.tickvals, axis.ticktext))
    assert labels[2.0] == "2" and labels[20.0] == "20" and labels[50.0] == "50" and labels[100.0] == "100"
    assert labels[1.0] == "1" and 0.5 not in labels
    spread = _spectrum().assign(value_ms=lambda d: d["value_ms"] * np.tile([1e-3, 1e3], 6))
    wide = plots.latency_spectrum(spread, log_y=True).layout.yaxis
    assert set(wide.ticktext) >= {"0.001", "1", "1,000", "10,000"}
    assert "2" not in wide.ticktext  # over more than three decades: the powers of ten only
    assert not [t for t in wide.ticktext if "e" in t]


def test_sensitivity_of_a_count_has_whole_ticks():
    sens = pd.DataFrame([{"input": "consumers", "factor": f, "value": f, "partitions": p,
                          "storage_total_gb": 2.5 * f} for f, p in ((0.5, 1), (1.0, 2), (1.5, 3))])
    assert plots.capacity_sensitivity(sens, "partitions").layout.yaxis.dtick == 1
    assert plots.capacity_sensitivity(sens, "storage_total_gb").layout.yaxis.dtick is None


def test_many_lines_never_share_a_colour_and_a_dash():
    sens = pd.DataFrame([{"input": f"in{i}", "factor": f, "value": f, "partitions": i * f}
                         for i in range(16) for f in (0.5, 1.0)])
    fig = plots.capacity_sensitivity(sens, "partitions")
    styles = {(t.line.color, t.line.dash) for t in fig.data}
    assert len(fig.data) == 16 and len(styles) == 16
    assert len({t.line.color for t in fig.data[:len(plots.COLORS)]}) == len(plots.COLORS) >= 12
    lag = lag_frame([(t, "g", "topic", p, 0, 5, 5, 0.1, "OK", pd.Timestamp("2026-01-01", tz="UTC"))
                     for t in (0.0, 1.0) for p in range(14)])
    lines = [t for t in plots.lag_over_time(lag).data if t.yaxis == "y"]
    assert len({(t.line.color, t.line.dash) for t in lines}) == 14


@pytest.mark.parametrize("value, text", [
    (64050.4, "64,050"), (176.62524663, "176.6"), (5.0188, "5.019"), (0.01234567, "0.01235"),
    (3.0, "3"), (1234.5678, "1,235"), (2 ** 40, "1,099,511,627,776"), (math.nan, ""), (True, "True"),
    ({"_MSG_TIMED_OUT": 2.0}, "_MSG_TIMED_OUT: 2"), (-0.5, "-0.5"), (0.0000123456, "0.00001235"),
])
def test_numbers_are_shown_in_plain_notation(value, text):
    assert plots.format_number(value) == text


def test_hover_numbers_have_no_exponent():
    fig = plots.throughput_vs(pd.DataFrame({"consumers": [1], "consume_rate": [64050.4]}), "consumers",
                              "consume_rate")
    assert plots.NUMBER_FORMAT == ",.4~r" and f"%{{y:{plots.NUMBER_FORMAT}}}" in fig.data[0].hovertemplate


def test_wide_table_keeps_whole_headers_and_its_width():
    row = {"run_id": "20261129-063416-quickstart-b9e6", "publish_rate": 5000.0, "rate_held": True,
           "publish_mb_s": 2.56, "consume_rate": 4999.5, "publish_latency_ms_p99": 1354.2,
           "e2e_latency_ms_p50": 111.3, "e2e_latency_ms_p99": 417.0, "publish_delay_us_p99": 64050.4,
           "lag_max_msgs": 22477, "rebalances": 2}
    table = plots.summary_table(pd.DataFrame([row] * 3))
    headers = list(table.data[0].header.values)
    # broken after "_" into lines, nothing dropped: the header reads back as the column name
    assert [h.removeprefix("<b>").removesuffix("</b>").replace("<br>", "") for h in headers] == list(row)
    assert "<b>publish_<br>latency_<br>ms_p99</b>" in headers
    assert table.data[0].header.height >= 10 + 17 * 3
    widths = table.data[0].columnwidth
    assert all(w >= len(max(h.split("<br>"), key=len)) - 7 for w, h in zip(widths, headers))
    assert table.layout.width and table.layout.width >= sum(widths) * 7  # scrolls rather than clips
    one = plots.summary_table(pd.DataFrame([row]))  # one run: a quantity/value list
    assert list(one.data[0].header.values) == ["<b>quantity</b>", "<b>value</b>"]
    assert list(one.data[0].cells.values[0]) == list(row) and one.data[0].cells.values[1][8] == "64,050"
    small = plots.summary_table(pd.DataFrame([row] * 2), ["run_id", "publish_rate"])
    assert list(small.data[0].header.values) == ["<b>run_id</b>", "<b>publish_rate</b>"]


# ------------------------------------------------------------------ Locust


def test_users_over_time_running_steps_and_planned_dashed():
    ts = pd.DataFrame({"users": [0, 2, 2, 4, 4]}, index=pd.RangeIndex(5, name="t"))
    planned = pd.DataFrame({"users": [2, 2, 4, 4, 4]}, index=pd.Index(range(5), name="t"))
    fig = plots.users_over_time(ts, planned, title="users")
    assert _names(fig) == ["planned", "running"]
    assert list(fig.data[1].y) == [0, 2, 2, 4, 4] and list(fig.data[1].x) == [0, 1, 2, 3, 4]
    assert fig.data[0].line.dash == "dash" and fig.data[1].line.shape == "hv"
    assert fig.layout.template.layout.colorway == tuple(plots.COLORS)
    assert fig.layout.xaxis.title.text == "time (s)" and fig.layout.title.text == "users"
    assert _names(plots.users_over_time(ts)) == ["running"]


def test_users_over_time_empty_has_a_note():
    fig = plots.users_over_time(pd.DataFrame({"users": pd.Series([], dtype="int64")}))
    assert [a.text for a in fig.layout.annotations] == ["no users recorded"]


# ------------------------------------------------------------------ faults and cluster state (issue 11)


def _faults(rows):
    """A faults frame (FaultObserver.frame()'s columns) from (fault, action, origin, node,
    started_s, ended_s, outcome) tuples."""
    columns = ["fault", "action", "origin", "target", "node", "scheduled_s", "started_s",
               "ended_s", "outcome", "error", "command"]
    full = [(f, a, o, "leader:topic:0" if n is None else str(n), n, s, s, e, out,
             "" if out == "ok" else "boom", "") for f, a, o, n, s, e, out in rows]
    return pd.DataFrame(full, columns=columns).astype({"fault": "int64", "node": "Int64"})


_KILL_AND_BACK = [(0, "kill", "schedule", 2, 1.25, 1.5, "ok"),
                  (0, "start", "duration", 2, 2.25, 2.75, "ok")]


def _marks(fig):
    """(x, label) of each fault line and its label, and (x0, x1) of each shaded span."""
    lines = [s.x0 for s in fig.layout.shapes if s.name == "fault"]
    labels = [(a.x, a.text) for a in fig.layout.annotations if a.name == "fault"]
    spans = [(s.x0, s.x1) for s in fig.layout.shapes if s.name == "fault span"]
    return lines, labels, spans


def _cluster_state():
    from kafkabench.analysis.cluster_state import cluster_state_frame

    samples = []
    for wall, leaders, isr in ((100.0, (1, 2), (3, 3)), (101.0, (1, 2), (3, 3)),
                               (102.0, (3, -1), (2, 0)), (103.0, (3, 2), (2, 2))):
        samples += [(wall, "topic", p, leaders[p], 3, isr[p], "") for p in (0, 1)]
    return cluster_state_frame(samples, 100.0)


def _time_series_figures(faults):
    cluster_state = _cluster_state()
    return {
        "throughput": plots.throughput_over_time(_timeseries(), faults=faults),
        "latency": plots.latency_over_time(_timeseries(), faults=faults),
        "lag": plots.lag_over_time(_lag(), _rebalances(), faults=faults),
        "users": plots.users_over_time(pd.DataFrame({"users": [1, 2, 2]},
                                                    index=pd.RangeIndex(3, name="t")), faults=faults),
        "cluster_state": plots.cluster_state_over_time(cluster_state, faults),
    }


def test_every_time_series_chart_marks_each_fault_at_its_start_with_a_label():
    for name, fig in _time_series_figures(_faults(_KILL_AND_BACK)).items():
        lines, labels, spans = _marks(fig)
        assert lines == [1.25, 2.25], name
        assert labels == [(1.25, "kill node 2"), (2.25, "start node 2")], name
        # The band runs from the kill's line to the line of the start that brought it back.
        assert spans == [(1.25, 2.25)], name


@pytest.mark.parametrize("faults", [None, _faults([])])
def test_no_faults_change_nothing(faults):
    for name, fig in _time_series_figures(faults).items():
        assert _marks(fig) == ([], [], []), name
    assert (plots.throughput_over_time(_timeseries(), faults=faults).to_json()
            == plots.throughput_over_time(_timeseries()).to_json())
    assert (plots.lag_over_time(_lag(), _rebalances(), faults=faults).to_json()
            == plots.lag_over_time(_lag(), _rebalances()).to_json())


def test_fault_spans_need_the_node_to_come_back():
    faults = _faults([
        (0, "pause", "schedule", 1, 1.0, 1.1, "ok"),
        (1, "kill", "schedule", 3, 2.0, 2.1, "ok"),        # never started again: no span
        (2, "stop", "schedule", None, 3.0, math.nan, "failed"),  # failed: no span
        (3, "restart", "schedule", 2, 4.0, 9.0, "ok"),     # down while it restarted
        (4, "resume", "schedule", 1, 5.0, math.nan, "ok"),  # a later resume of node 1 ends the pause
        (-1, "start", "cleanup", 3, 12.0, 13.0, "ok"),     # cleanup also brings a node back
        (5, "kill", "schedule", 1, math.nan, math.nan, "skipped"),  # never started: not drawn
    ])
    lines, labels, spans = _marks(plots.throughput_over_time(_timeseries(), faults=faults))
    assert lines == [1.0, 2.0, 3.0, 4.0, 5.0, 12.0, 9.0]  # a restart's band ends on its own line
    assert [text for _, text in labels] == [
        "pause node 1", "kill node 3", "stop leader:topic:0 (failed)", "restart node 2",
        "resume node 1", "cleanup: start node 3", "restart node 2 ended"]
    assert sorted(spans) == [(1.0, 5.0), (2.0, 12.0), (4.0, 9.0)]


def test_fault_labels_have_details_on_hover():
    fig = plots.throughput_over_time(_timeseries(), faults=_faults(
        [(0, "stop", "schedule", None, 1.0, math.nan, "failed")]))
    hover = next(a.hovertext for a in fig.layout.annotations if a.name == "fault")
    assert "leader:topic:0" in hover and "outcome failed" in hover and "error boom" in hover


def test_cluster_state_over_time_counts_per_second():
    fig = plots.cluster_state_over_time(_cluster_state(), title="state")
    assert _names(fig) == ["under-replicated", "offline", "leader changes", "min ISR size"]
    under, offline, changes, min_isr = fig.data
    assert list(under.x) == [0, 1, 2, 3]
    assert list(under.y) == [0, 0, 2, 2] and list(offline.y) == [0, 0, 1, 0]
    assert list(changes.y) == [0, 0, 2, 1] and list(min_isr.y) == [3, 3, 0, 2]
    assert under.line.shape == "hv" and fig.layout.title.text == "state"
    assert fig.layout.xaxis2.title.text == "time (s)"
    # The per-second frame draws the same figure.
    from kafkabench.analysis.cluster_state import cluster_state_per_second

    again = plots.cluster_state_over_time(cluster_state_per_second(_cluster_state()), title="state")
    assert again.to_json() == fig.to_json()


def test_cluster_state_over_time_empty_has_a_note():
    from kafkabench.analysis.cluster_state import cluster_state_frame

    fig = plots.cluster_state_over_time(cluster_state_frame([], 0.0))
    assert [a.text for a in fig.layout.annotations] == ["no cluster state sampled"]


def _broker_metrics():
    """Two brokers scraped each second, broker 2 silent at t=3 and 4 (paused)."""
    rows = []
    for t in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0):
        for broker in ("1", "2"):
            if broker == "2" and t in (3.0, 4.0):
                continue
            rows += [(t, broker, "kafka_server_brokertopicmetrics_messagesin_total", "", 1000.0 * t),
                     (t, broker, "kafka_server_brokertopicmetrics_messagesin_total", "topic=a", 1000.0 * t),
                     (t, broker, "kafka_network_requestmetrics_totaltimems", "quantile=0.99,request=Produce",
                      5.0 + t + (10.0 if broker == "2" else 0.0)),
                     (t, broker, "jvm_gc_collection_seconds_sum", "gc=G1 Young Generation", 0.01 * t)]
    return pd.DataFrame(rows, columns=["t", "broker", "metric", "labels", "value"])


def test_client_and_broker_puts_both_sides_on_one_time_axis():
    fig = plots.client_and_broker(_timeseries(), _broker_metrics())
    traces = {t.name: t for t in fig.data}
    assert {"delivered (client)", "publish p99 (client)", "messages in (brokers)",
            "Produce total time p99 (brokers)", "GC time ms/s (broker 1)",
            "GC time ms/s (broker 2)"} <= set(traces)
    # Messages in: the all-topics series only (not doubled by the per-topic one), summed over
    # brokers, as a rate; NaN where broker 2's gap makes the sum unknown is not 0.
    rate = list(traces["messages in (brokers)"].y)
    assert rate[1] == 2000.0
    # Produce p99: the worst broker; GC: seconds per second as ms/s.
    assert max(v for v in traces["Produce total time p99 (brokers)"].y if v == v) == 20.0
    assert [v for v in traces["GC time ms/s (broker 1)"].y if v == v][0] == pytest.approx(10.0)
    # Broker 2's silence is a gap (a NaN point), not a line bridging t=2 to t=5.
    gc2 = traces["GC time ms/s (broker 2)"]
    assert any(x > 2 and x < 5 and y != y for x, y in zip(gc2.x, gc2.y))


def test_client_and_broker_without_broker_metrics_shows_the_client_side():
    from kafkabench.run.result import RunResult

    fig = plots.client_and_broker(_timeseries(), RunResult().broker_metrics)
    assert _names(fig) == ["delivered (client)", "publish p99 (client)"]


# ------------------------------------------------------------------ what the figures draw is computed in analysis


def test_tornado_bars_are_computed_outside_the_figure():
    from kafkabench.analysis.sensitivity import tornado

    bars = tornado(_sensitivity(), "partitions")
    assert (bars.low, bars.high) == (0.5, 1.5)
    assert bars.bars.to_dict("records") == [
        {"input": "target_mb_s", "factor": 0.5, "base": 10.0, "output": 5.0, "value": 50.0},
        {"input": "target_mb_s", "factor": 1.5, "base": 10.0, "output": 15.0, "value": 150.0}]
    assert tornado(_sensitivity(), "brokers").bars.empty


def test_down_spans_take_a_frame_or_its_rows():
    from kafkabench.analysis.downtime import down_spans, started_s

    faults = _faults(_KILL_AND_BACK)
    assert down_spans(faults) == down_spans(faults.to_dict("records")) == [(1.25, 2.75)]
    assert math.isnan(started_s({"started_s": math.nan})) and started_s({"started_s": 2}) == 2.0


def test_broker_series_per_broker_or_across_with_gaps():
    from kafkabench.analysis.broker_series import broker_series

    metric = "jvm_gc_collection_seconds_sum"
    per_broker = broker_series(_broker_metrics(), metric, across=None)
    assert list(per_broker.columns) == ["1", "2"]
    assert per_broker["2"].loc[3.0:4.0].isna().all()  # broker 2's silence stays a gap
    worst = broker_series(_broker_metrics(), "kafka_network_requestmetrics_totaltimems",
                          labels="quantile=0.99,request=Produce", across="max")
    assert list(worst.columns) == ["brokers"] and worst["brokers"].max() == 20.0
    assert broker_series(_broker_metrics().iloc[:0], metric).empty
    with pytest.raises(ValueError, match="across"):
        broker_series(_broker_metrics(), metric, across="mean")
