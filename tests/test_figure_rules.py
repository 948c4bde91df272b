"""plots.rules: the checker catches each defect readers found in the notebooks' figures, and
every plot function's figure passes it for realistic frames (pure: no broker)."""

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from kafkabench.analysis.cluster_state import cluster_state_frame
from kafkabench.analysis.downtime import down_spans, downtimes
from kafkabench.measure.lagmath import lag_frame
from kafkabench.present import plots

RUN_S = 30
PAUSE = (10.0, 13.4)  # broker 2 paused: no lag samples, no scrapes of broker 2


def _paused(t: float) -> bool:
    return PAUSE[0] < t < PAUSE[1]


def _timeseries() -> pd.DataFrame:
    """A 30 s run whose publish p99 climbs to 3,000 ms while a broker is paused."""
    t = np.arange(RUN_S)
    pause = (t >= 10) & (t <= 13)
    p99 = np.where(pause, 800.0 * (t - 9), 5.0).clip(max=3000.0)
    return pd.DataFrame({
        "produced": np.full(RUN_S, 1000), "delivered": np.where(pause, 0, 1000),
        "failed": np.where(t == 13, 40, 0), "consumed": np.where(pause, 0, 1000),
        "backlog": np.where(pause, 1000 * (t - 9), 0),
        "publish_latency_ms_p50": np.where(pause, 900.0, 2.0), "publish_latency_ms_p99": p99,
        "e2e_latency_ms_p50": np.where(pause, 1200.0, 3.0), "e2e_latency_ms_p99": p99 * 1.1,
    }, index=pd.Index(t, name="t"))


def _faults(rows=(("pause", 2, PAUSE[0], PAUSE[0] + 0.1), ("resume", 2, PAUSE[1], PAUSE[1] + 0.6))):
    """A faults frame (FaultObserver.frame()'s columns) from (action, node, started_s, ended_s)."""
    columns = ["fault", "action", "origin", "target", "node", "scheduled_s", "started_s",
               "ended_s", "outcome", "error", "command"]
    full = [(0, action, "schedule" if i == 0 else "duration", str(node), node, s, s, e, "ok", "", "")
            for i, (action, node, s, e) in enumerate(rows)]
    return pd.DataFrame(full, columns=columns).astype({"fault": "int64", "node": "Int64"})


def _lag() -> pd.DataFrame:
    """Two partitions sampled each second, none for 3.4 s while the broker was paused."""
    stamp = pd.Timestamp("2026-01-01", tz="UTC")
    times = [t + 0.3 for t in range(11)] + [t + 0.7 for t in range(13, RUN_S)]  # none 10.3 to 13.7 s
    rows = []
    for t in times:
        for p in (0, 1):
            lag = 4000 if t > PAUSE[1] and t < 16 else 10 + p
            rows.append((t, "g0", "topic", p, 100, 100 + lag, lag, lag / 1000.0, "OK", stamp))
    return lag_frame(rows)


def _broker_metrics() -> pd.DataFrame:
    """Two brokers scraped each second from before the run (t = -1); broker 2 silent while
    paused. Produce p99 of 2-5 ms, queue time p99 a tenth of it."""
    rows = []
    for t in np.arange(-1.0, RUN_S):
        for broker in ("1", "2"):
            if broker == "2" and _paused(t):
                continue
            produce = 2.0 + 3.0 * (t % 2)
            rows += [(t, broker, "kafka_server_brokertopicmetrics_messagesin_total", "", 500.0 * (t + 1)),
                     (t, broker, "kafka_network_requestmetrics_totaltimems", "quantile=0.99,request=Produce",
                      produce),
                     (t, broker, "kafka_network_requestmetrics_requestqueuetimems",
                      "quantile=0.99,request=Produce", produce / 10),
                     (t, broker, "jvm_gc_collection_seconds_sum", "gc=G1 Young Generation", 0.002 * (t + 1)),
                     (t, broker, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "",
                      0.95)]
    return pd.DataFrame(rows, columns=["t", "broker", "metric", "labels", "value"])


def _cluster_state() -> pd.DataFrame:
    """Sampled from 2.5 s before the producers started; partition 1 led by the paused broker."""
    samples = []
    for t in np.arange(-2.5, RUN_S, 0.5):
        paused = PAUSE[0] + 1 < t < PAUSE[1]
        samples += [(100.0 + t, "topic", 0, 1, 2, 2, ""),
                    (100.0 + t, "topic", 1, 1 if paused else 2, 2, 1 if paused else 2, "")]
    return cluster_state_frame(samples, 100.0)


def _rebalances(order) -> pd.DataFrame:
    """Members of group g taking partitions in the order given."""
    rows = [(float(i), "g", member, "assign", f"topic:{i}") for i, member in enumerate(order)]
    return pd.DataFrame(rows, columns=["t", "group", "member", "event", "partitions"])


def _line(x, y, **kw) -> go.Scatter:
    return go.Scatter(x=x, y=y, mode="lines", **kw)


def _time_figure(*traces) -> go.Figure:
    fig = go.Figure(list(traces))
    fig.update_layout(xaxis_title="time (s)", template=plots.TEMPLATE)
    return fig


# ------------------------------------------------------------------ the checker catches each defect


def test_two_legend_entries_alike_are_caught():
    fig = _time_figure(_line([0, 1], [1, 2], name="delivered (client)", line={"color": "#0072B2"}),
                       _line([0, 1], [3, 4], name="publish p99 (client)", line={"color": "#0072b2"}))
    assert ["'delivered (client)' and 'publish p99 (client)' look alike" in p
            for p in plots.figure_problems(fig)] == [True]
    fig.data[1].line.dash = "dash"
    assert plots.figure_problems(fig) == []
    # A trace kept out of the legend (another row of one entity) is not an entry.
    fig.add_trace(_line([0, 1], [1, 2], name="delivered (client)", line={"color": "#0072B2"},
                        showlegend=False, legendgroup="delivered"))
    assert plots.figure_problems(fig) == []
    bars = go.Figure([go.Bar(x=[1], y=[1], name="a", marker_color="red"),
                      go.Bar(x=[2], y=[1], name="b", marker_color="red")])
    assert len(plots.figure_problems(bars)) == 1
    bars.data[1].marker.pattern.shape = "/"
    assert plots.figure_problems(bars) == []


def test_unset_colours_are_the_colorway_in_trace_order():
    fig = go.Figure([_line([0, 1], [1, 2], name=str(i)) for i in range(len(plots.COLORS) + 1)])
    fig.update_layout(template=plots.TEMPLATE)
    assert ["'0' and '13' look alike" in p for p in plots.figure_problems(fig)] == [True]


def test_a_line_drawn_across_missing_samples_is_caught():
    t = [0.0, 1.0, 2.0, 3.0, 6.4, 7.0, 8.0]
    lag = [10, 10, 10, 4000, 5, 5, 5]
    problems = plots.figure_problems(_time_figure(_line(t, lag, name="p0")))
    assert len(problems) == 1 and "across 3.4 s" in problems[0]
    gapped = _time_figure(_line(t[:4] + [4.7] + t[4:], lag[:4] + [math.nan] + lag[4:], name="p0"))
    assert plots.figure_problems(gapped) == []
    gapped.data[0].connectgaps = True
    assert "connectgaps=False" in plots.figure_problems(gapped)[0]
    # One missing second of a per-second series is not a gap; steps of another axis (a sweep's
    # linger.ms) are not time.
    assert plots.figure_problems(_time_figure(_line([0, 1, 2, 4, 5], [1, 2, 3, 4, 5]))) == []
    sweep = go.Figure([_line([0, 1, 2, 5, 10, 50], [1, 2, 3, 4, 5, 6])])
    sweep.update_layout(xaxis_title="linger.ms (ms)")
    assert plots.figure_problems(sweep) == []


def test_series_of_different_scales_on_one_axis_are_caught():
    # The client_and_broker row: the client's publish p99 climbs to 3,000 ms, the
    # brokers' Produce p99 of a few ms lies flat at zero on the same axis.
    t = list(range(6))
    client = _line(t, [5, 5, 3000, 2000, 5, 5], name="publish p99 (client)", line={"color": "#0072B2"})
    broker = _line(t, [2, 5, 3, 4, 2, 3], name="Produce total time p99 (brokers)", line={"color": "#E69F00"})
    problems = plots.figure_problems(_time_figure(client, broker))
    assert len(problems) == 1 and "'Produce total time p99 (brokers)' (max 5) lies flat" in problems[0]
    apart = make_subplots(specs=[[{"secondary_y": True}]])
    apart.add_trace(client, secondary_y=False)
    apart.add_trace(broker, secondary_y=True)
    assert plots.figure_problems(apart) == []
    log = _time_figure(client, broker)
    log.update_yaxes(type="log")
    assert plots.figure_problems(log) == []
    # Lines that say they draw one quantity (the partitions of a lag) are compared on purpose.
    same = _time_figure(_line(t, [1, 1, 1, 1, 1, 1], meta={"scale": "lag"}, name="p0"),
                        _line(t, [0, 9e3, 0, 0, 0, 0], meta={"scale": "lag"}, name="p1"))
    assert plots.figure_problems(same) == []


def test_shared_x_axes_with_ranges_set_differently_are_caught():
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True)
    fig.update_xaxes(range=[0, 30])
    assert plots.figure_problems(fig) == []
    fig.update_xaxes(range=[-2.5, 30], row=1, col=1)
    assert ["are shared but their ranges differ" in p for p in plots.figure_problems(fig)] == [True]


def test_a_fault_band_running_past_the_line_that_ended_it_is_caught():
    fig = _time_figure()
    for x in (1.25, 2.25):
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", name="fault")
    fig.add_shape(type="rect", x0=1.25, x1=2.75, y0=0, y1=1, yref="paper", name="fault span")
    assert ["ends where no fault line is" in p for p in plots.figure_problems(fig)] == [True]
    fig.layout.shapes[-1].x1 = 2.25
    assert plots.figure_problems(fig) == []
    fig.layout.shapes[-1].x0 = 1.0
    assert ["starts where no fault line is" in p for p in plots.figure_problems(fig)] == [True]


def test_figures_of_one_run_with_different_time_axes_are_caught():
    figs = [_time_figure(), _time_figure(), _time_figure()]
    for fig, start in zip(figs, (0.0, -1.8, -2.5)):
        fig.update_xaxes(range=[start, 30])
    problems = plots.figures_aligned(figs)
    assert len(problems) == 1 and "x axis ranges differ" in problems[0]
    assert plots.figures_aligned(figs[:1]) == []
    unset = plots.figures_aligned([figs[0], _time_figure()])
    assert len(unset) == 1 and "figure 1" in unset[0] and "not set" in unset[0]


# ------------------------------------------------------------------ the plot functions keep the rules


def test_client_and_broker_gives_the_brokers_p99_its_own_axis():
    fig = plots.client_and_broker(_timeseries(), _broker_metrics(), faults=_faults())
    assert plots.figure_problems(fig) == []
    traces = {t.name: t for t in fig.data}
    client, broker = traces["publish p99 (client)"], traces["Produce total time p99 (brokers)"]
    assert np.nanmax(client.y) == 3000.0 and np.nanmax(broker.y) == 5.0
    assert client.yaxis != broker.yaxis and traces["Produce queue time p99 (brokers)"].yaxis == broker.yaxis
    assert fig.layout[f"yaxis{broker.yaxis[1:]}"].title.text == "broker Produce p99 (ms)"
    assert fig.layout[f"yaxis{client.yaxis[1:]}"].title.text == "client publish p99 (ms)"
    # The legend's two solid blues and two solid oranges are gone.
    shown = [(t.line.color, t.line.dash or "solid") for t in fig.data if t.showlegend is not False]
    assert len(shown) == len(set(shown))
    # Scrapes before the run are left out; broker 2's silence is a gap, not a bridge.
    assert min(np.nanmin(t.x) for t in fig.data) >= 0.0
    gc2 = traces["GC time ms/s (broker 2)"]
    assert any(PAUSE[0] < x < PAUSE[1] and math.isnan(y) for x, y in zip(gc2.x, gc2.y))


def test_lag_over_time_breaks_its_lines_where_the_sampler_had_no_samples():
    fig = plots.lag_over_time(_lag(), faults=_faults())
    assert plots.figure_problems(fig) == []
    for trace in fig.data:
        assert trace.connectgaps is False
        inside = [y for x, y in zip(trace.x, trace.y) if 10.3 < x < 13.7]
        assert inside and all(math.isnan(y) for y in inside), trace.name
        assert len(trace.customdata) == len(trace.x)  # status on hover stays with its point


def test_every_time_series_breaks_its_lines_at_missing_seconds():
    ts = _timeseries().drop(index=[20, 21, 22])
    for fig in (plots.throughput_over_time(ts), plots.latency_over_time(ts)):
        assert plots.figure_problems(fig) == []
        for trace in fig.data:
            assert trace.connectgaps is False and any(
                19 < x < 23 and math.isnan(y) for x, y in zip(trace.x, trace.y)), trace.name


def test_three_figures_of_a_run_share_their_time_axis():
    faults = _faults()
    figs = [plots.throughput_over_time(_timeseries(), faults=faults),
            plots.latency_over_time(_timeseries(), faults=faults),
            plots.cluster_state_over_time(_cluster_state(), faults)]
    for fig in figs:
        assert plots.figure_problems(fig) == [], fig.layout.title.text
    assert plots.figures_aligned(figs) == []
    assert tuple(figs[0].layout.xaxis.range) == (0.0, 30.0)  # to the end of the last second
    # The cluster state sampled from -2.5 s: those samples are left out, not drawn before 0.
    assert min(np.nanmin(t.x) for t in figs[2].data) == 0.0
    # A caller lines figures up exactly with x_range.
    lined = [plots.throughput_over_time(_timeseries(), faults=faults, x_range=(-1.0, 40.0)),
             plots.cluster_state_over_time(_cluster_state(), faults, x_range=(-1.0, 40.0)),
             plots.lag_over_time(_lag(), faults=faults, x_range=(-1.0, 40.0))]
    assert plots.figures_aligned(lined) == [] and tuple(lined[2].layout.xaxis2.range) == (-1.0, 40.0)


def test_run_x_range_starts_at_zero_or_at_an_earlier_fault():
    assert plots.run_x_range([0, 1, 29]) == (0.0, 30.0)
    assert plots.run_x_range([-2.5, 0.5, 29.7]) == (0.0, 30.0)
    early = _faults([("kill", 1, -1.5, -1.0), ("start", 1, 31.0, 32.5)])
    assert plots.run_x_range([0, 29], early) == (-1.5, 33.0)
    assert plots.run_x_range([]) is None


def test_the_fault_band_ends_on_the_line_of_the_action_that_ended_the_outage():
    fig = plots.throughput_over_time(_timeseries(), faults=_faults())
    lines = [s.x0 for s in fig.layout.shapes if s.name == "fault"]
    spans = [(s.x0, s.x1) for s in fig.layout.shapes if s.name == "fault span"]
    assert lines == [PAUSE[0], PAUSE[1]] and spans == [PAUSE]
    assert plots.figure_problems(fig) == []
    # The analysis keeps the node down until the resume ended; a lighter band shows that part.
    assert down_spans(_faults()) == [(PAUSE[0], PAUSE[1] + 0.6)]
    assert [(s.x0, s.x1) for s in fig.layout.shapes if s.name == "fault span: coming back"] == [
        (PAUSE[1], PAUSE[1] + 0.6)]
    (down,) = downtimes(_faults())
    assert (down.start_s, down.back_s, down.end_s, down.began, down.ended_by) == (
        PAUSE[0], PAUSE[1], PAUSE[1] + 0.6, 0, 1)


def test_a_restart_band_ends_on_a_line_where_the_restart_ended():
    faults = _faults([("restart", 2, 4.0, 9.0), ("kill", 1, 6.0, 6.2), ("start", 1, 7.0, 8.0)])
    fig = plots.throughput_over_time(_timeseries(), faults=faults)
    assert plots.figure_problems(fig) == []
    labels = {a.text: a.x for a in fig.layout.annotations if a.name == "fault"}
    assert labels["restart node 2 ended"] == 9.0
    assert sorted((s.x0, s.x1) for s in fig.layout.shapes if s.name == "fault span") == [(4.0, 9.0), (6.0, 7.0)]


def test_rebalance_timeline_keeps_each_members_colour_across_figures():
    first = plots.rebalance_timeline(_rebalances(["0-g0-c0", "0-g0-c1", "0-g0-c2"]), end_t=5.0)
    second = plots.rebalance_timeline(_rebalances(["0-g0-c2", "0-g0-c1-r1", "0-g0-c0", "0-g0-c1"]),
                                      end_t=5.0)
    styles = [{t.name: (t.marker.color, t.marker.pattern.shape) for t in fig.data} for fig in (first, second)]
    for member in ("0-g0-c0", "0-g0-c1", "0-g0-c2"):
        assert styles[0][member] == styles[1][member], member
    # A restarted member keeps its colour, hatched, so that it is still its own legend entry.
    assert styles[1]["0-g0-c1-r1"][0] == styles[1]["0-g0-c1"][0]
    assert styles[1]["0-g0-c1-r1"][1] != styles[1]["0-g0-c1"][1]
    for fig in (first, second):
        assert plots.figure_problems(fig) == []


def test_rebalance_timeline_colours_members_without_numbers_by_a_stable_hash():
    names = [f"consumer-{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    fig = plots.rebalance_timeline(_rebalances(names), end_t=30.0)
    again = plots.rebalance_timeline(_rebalances(names[::-1]), end_t=30.0)
    assert plots.figure_problems(fig) == []
    assert ({t.name: t.marker.color for t in fig.data} == {t.name: t.marker.color for t in again.data})


def test_users_and_processing_over_time_keep_the_rules():
    ts = pd.DataFrame({"users": [0, 2, 4, 4, 4, 4, 4, 0, 0, 4]}, index=pd.Index([0, 1, 2, 3, 4, 5, 6, 10, 11, 12], name="t"))
    planned = pd.DataFrame({"users": [2, 4] + [4] * 11}, index=pd.RangeIndex(13, name="t"))
    users = plots.users_over_time(ts, planned, faults=_faults())
    assert plots.figure_problems(users) == []
    assert any(math.isnan(y) for y in users.data[1].y)  # 6 s to 10 s: Locust wrote no row
    t = np.arange(20)
    inline = pd.DataFrame({"t": t, "done_latency_ms_p99": 30000.0 * (t > 5)})
    topics = pd.DataFrame({"t": t, "done_latency_ms_p99": np.full(20, 50.0)})
    assert plots.figure_problems(plots.processing_over_time({"inline": inline, "retry topics": topics})) == []


def test_latency_over_time_goes_logarithmic_when_its_lines_differ_in_scale():
    ts = _timeseries().assign(publish_latency_ms_p50=2.0)  # the median stays low, the p99 climbs
    fig = plots.latency_over_time(ts)
    assert fig.layout.yaxis.type == "log" and plots.figure_problems(fig) == []
    assert plots.figure_problems(plots.latency_over_time(ts, log_y=False))  # asked for it
    assert plots.latency_over_time(_timeseries().iloc[:9]).layout.yaxis.type == "linear"


def test_throughput_over_time_puts_a_few_failures_on_their_own_row():
    fig = plots.throughput_over_time(_timeseries())
    failed = next(t for t in fig.data if t.name == "failed")
    produced = next(t for t in fig.data if t.name == "produced")
    assert failed.yaxis != produced.yaxis and plots.figure_problems(fig) == []
    assert fig.layout.xaxis2.title.text == "time (s)"


def _sensitivity():
    return pd.DataFrame([{"input": name, "factor": f, "value": f * base, "partitions": round(f * out)}
                         for name, base, out in (("target_mb_s", 10.0, 12), ("retention_h", 24.0, 12))
                         for f in (0.5, 1.0, 1.5)])


@pytest.mark.parametrize("make", [
    lambda: plots.throughput_vs(pd.DataFrame({
        "producer.linger.ms": [0, 1, 2, 5, 10, 50, 100] * 2,
        "producer.compression.type": ["none"] * 7 + ["lz4"] * 7,
        "publish_rate": [1e4, 2e4, 3e4, 5e4, 6e4, 6.5e4, 6.6e4] * 2}),
        "producer.linger.ms", "publish_rate", "producer.compression.type"),
    lambda: plots.throughput_vs(pd.DataFrame({"producer.acks": ["0", "1", "all"], "publish_rate": [9e4, 7e4, 5e4]}),
                                "producer.acks", "publish_rate"),
    lambda: plots.latency_spectrum(pd.DataFrame(
        [(m, p, v * k) for m, k in (("publish_latency_us", 1), ("e2e_latency_us", 40))
         for p, v in ((50.0, 2.0), (99.0, 5.0), (99.9, 9.0))], columns=["metric", "percentile", "value_ms"])),
    lambda: plots.rate_vs_latency(pd.DataFrame({
        "publish_rate": [1e3, 1e4, 5e4, 6e4], "target_rate": [1e3, 1e4, 5e4, 1e5],
        "e2e_latency_ms_p50": [2.0, 3.0, 10.0, 500.0], "e2e_latency_ms_p99": [5.0, 9.0, 80.0, 9000.0]}),
        target="target_rate"),
    lambda: plots.capacity_sensitivity(_sensitivity(), "partitions"),
    lambda: plots.capacity_sensitivity(_sensitivity(), "partitions", kind="tornado"),
    lambda: plots.predicted_vs_measured(pd.DataFrame({"metric": ["partitions", "MB/s"], "predicted": [12, 50.0],
                                                      "measured": [12, 48.5]})),
    lambda: plots.partition_share(pd.DataFrame({"partition": [0, 1, 0, 1], "share": [0.6, 0.4, 0.5, 0.5],
                                                "messages": [60, 40, 50, 50], "strategy": ["a", "a", "b", "b"]})),
    lambda: plots.partition_heatmap(pd.DataFrame({"partition": [0, 1], "share": [0.6, 0.4], "strategy": ["a", "a"]})),
    lambda: plots.summary_table(pd.DataFrame({"run_id": ["r1"], "publish_rate": [1e4]})),
    lambda: plots.cluster_state_over_time(_cluster_state().iloc[:0]),
    lambda: plots.lag_over_time(_lag().iloc[:0]),
], ids=["throughput_vs", "throughput_vs_bars", "latency_spectrum", "rate_vs_latency", "sensitivity",
        "tornado", "predicted_vs_measured", "partition_share", "partition_heatmap", "summary_table",
        "empty_cluster_state", "empty_lag"])
def test_every_other_figure_keeps_the_rules(make):
    assert plots.figure_problems(make()) == []


def test_figures_of_one_run_put_the_same_second_at_the_same_place():
    faults = _faults()
    figs = [plots.throughput_over_time(_timeseries(), faults=faults),
            plots.latency_over_time(_timeseries(), faults=faults)]
    margins = {(f.layout.margin.l, f.layout.margin.r) for f in figs}
    assert margins == {(90, 90)}
    # The throughput figure has a right-hand backlog axis: its plot still spans the whole width.
    assert {tuple(axis.domain) for f in figs for axis in f.select_xaxes()} == {(0.0, 1.0)}
    for fig in figs:
        assert fig.layout.legend.orientation == "h"  # above the plot: no legend-wide right margin
        assert all(axis.automargin is False for axis in fig.select_yaxes())
    assert plots.figures_aligned(figs) == []


def test_a_figure_read_back_from_json_is_checked_as_drawn():
    # Notebooks store figures with plotly's typed arrays ({"dtype": "f8", "bdata": ...}).
    t = np.array([0.0, 1.0, 2.0, 6.0, 7.0])
    fig = go.Figure(go.Scatter(x=t, y=np.array([1.0, 2.0, 3.0, 4.0, 5.0]), mode="lines", name="lag"))
    fig.update_xaxes(title_text="time (s)")
    stored = go.Figure(json.loads(fig.to_json()))
    assert isinstance(stored.data[0].x, dict) or len(stored.data[0].x) == 5
    assert plots.figure_problems(stored) == plots.figure_problems(fig) != []


def test_figures_whose_plot_areas_differ_are_not_aligned():
    faults = _faults()
    aligned = plots.throughput_over_time(_timeseries(), faults=faults)
    other = plots.latency_over_time(_timeseries(), faults=faults)
    assert plots.figures_aligned([aligned, other]) == []
    other.update_xaxes(domain=[0.0, 0.94])  # as make_subplots leaves room for a right-hand axis
    assert any("plot areas differ" in p for p in plots.figures_aligned([aligned, other]))
