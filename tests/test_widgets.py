"""widgets: panels driven through their buttons and controls, without a browser.

The producer tuning panel and the lag monitor run against the real embedded broker; the
partition explorer and the capacity planner are offline.
"""

import time
import uuid

import pandas as pd
import plotly.graph_objects as go
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkabench import widgets as kw
from kafkabench.cluster.admin import create_topic, delete_topics

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _mimes(output):
    return [list(o["data"]) for o in output.outputs]


# ------------------------------------------------------------------ offline panels


def test_partition_explorer_recomputes_when_a_control_changes():
    panel = kw.partition_explorer(strategies=("murmur2_random", "fnv1a-rr"), partitions=4, messages=2000)
    assert list(panel.table["strategy"]) == ["murmur2_random", "fnv1a-rr"]
    assert [t.name for t in panel.figure.data] == ["murmur2_random", "fnv1a-rr"]
    assert len(panel.figure.data[0].x) == 4
    assert PLOTLY_MIME in _mimes(panel.plot_area)[0]
    assert "text/html" in _mimes(panel.table_area)[0]

    panel.partitions.value = 8
    assert list(panel.table["partitions"]) == [8, 8] and list(panel.table["grow_to"]) == [8, 8]
    assert len(panel.figure.data[0].x) == 8
    panel.kind.value = "uniform"
    assert panel.skew.disabled
    assert panel.figure.layout.title.text == "uniform keys over 8 partitions"


def test_partition_explorer_shows_config_errors_as_a_message():
    panel = kw.partition_explorer(strategies=("priority",), partitions=2)
    panel.partitions.value = 1
    assert "ConfigError" in panel.message.value and "partitions" in panel.message.value
    assert panel.table.empty and panel.plot_area.outputs == ()
    panel.partitions.value = 3
    assert panel.message.value == "" and len(panel.table) == 1


def test_capacity_planner_prefills_from_measured_results():
    results = pd.DataFrame({"workload.partitions": [1, 4, 4], "publish_mb_s": [5.0, 12.0, 14.0],
                            "consume_mb_s": [6.0, 20.0, 24.0]})
    panel = kw.capacity_planner(results, target_mb_s=130.0)
    # best partition count 4: median 13 MB/s / 4 and 22 MB/s / 4
    assert panel.controls["produce_mb_s_per_partition"].value == 13.0 / 4
    assert panel.controls["consume_mb_s_per_partition"].value == 22.0 / 4
    table = panel.table.set_index("quantity")["value"]
    assert table["partitions"] == 40  # ceil(130 / 3.25)
    assert len(panel.figure.data) == len(panel.sensitivity["input"].unique())
    assert panel.figure.layout.yaxis.title.text == "partitions"

    panel.output.value = "brokers"
    panel.kind.value = "tornado"
    assert panel.figure.layout.xaxis.title.text == "brokers"
    assert [t.name for t in panel.figure.data] == ["input ×0.5", "input ×1.5"]


def test_capacity_planner_starts_from_the_plan_it_is_given():
    # 04: the plan said 2 partitions (2 consumers), the planner 1: it got the target, not the consumers.
    from kafkabench.analysis import capacity
    results = pd.DataFrame({"workload.partitions": [1, 3], "publish_mb_s": [150.0, 529.9],
                            "consume_mb_s": [200.0, 600.0]})
    measured = capacity.per_partition_throughput(results)
    inputs = capacity.CapacityInputs(target_mb_s=0.2 * 529.9,
                                     produce_mb_s_per_partition=measured.produce_mb_s_per_partition,
                                     consume_mb_s_per_partition=measured.consume_mb_s_per_partition,
                                     consumers=2, retention_days=7, replication_factor=3,
                                     max_partitions_per_broker=10)
    panel = kw.capacity_planner(results, inputs=inputs)
    assert panel.inputs == inputs  # every input, also those without a control
    planned = capacity.plan(inputs).as_dict()
    assert planned["partitions"] == 2
    assert panel.table.set_index("quantity")["value"].to_dict() == planned
    assert kw.capacity_planner(inputs=inputs, consumers=3).inputs.consumers == 3  # values win
    # the measured note: figures as the controls show them, "1 partition" in the singular
    assert "produce 176.6 MB/s (at 3 partitions)" in panel.children[0].value
    one = kw.capacity_planner(results.iloc[:1])
    assert "(at 1 partition)" in one.children[0].value and "1 partitions" not in one.children[0].value


def test_capacity_planner_shows_bad_inputs_as_a_message():
    panel = kw.capacity_planner()
    panel.controls["produce_mb_s_per_partition"].value = 0
    assert "produce_mb_s_per_partition" in panel.message.value
    assert panel.table.empty
    panel.controls["produce_mb_s_per_partition"].value = 10
    assert panel.message.value == "" and not panel.table.empty


def test_tuning_columns_are_summary_keys_of_the_contract():
    import subprocess
    import sys
    import textwrap

    from kafkabench.core.contract import summary_column

    assert [c for c in kw.TUNING_COLUMNS if summary_column(c) is None] == [
        "run", "compression.type", "acks", "linger.ms", "batch.size", "message_size"]
    # A key the contract no longer has stops the import (a child process: imports run once).
    script = textwrap.dedent("""
        import ipywidgets, plotly.graph_objects  # what widgets imports, imported before the change
        from kafkabench import runner
        from kafkabench.analysis import capacity
        from kafkabench.cluster import local as cluster
        from kafkabench.spec import profile as config
        from kafkabench.core import errors
        from kafkabench.cluster import lag
        from kafkabench.spec import partitioning
        from kafkabench.present import plots
        from kafkabench.results import store as results
        from kafkabench.spec import workload
        import kafkabench.core.contract as contract
        known = contract.summary_column
        contract.summary_column = lambda name: None if name == "publish_latency_ms_p99" else known(name)
        try:
            import kafkabench.widgets
        except ValueError as exc:
            print(exc)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "'publish_latency_ms_p99' is not a summary key" in child.stdout, child.stdout + child.stderr


# ------------------------------------------------------------------ broker panels


def test_producer_tuning_panel_runs_and_accumulates(bootstrap, tmp_path):
    panel = kw.producer_tuning_panel(bootstrap=bootstrap, duration_s=2, progress=False, out=tmp_path)
    panel.rate.value = 2000
    panel.message_size.value = 200
    panel.run_button.click()
    assert len(panel.runs) == 1, panel.message.value
    assert not panel.run_button.disabled
    assert "done" in panel.message.value
    run = panel.runs[0]
    assert run.summary["producer.linger.ms"] == 5 and run.summary["workload.message_size"] == 200
    assert run.summary["consumed"] > 0  # consumer group kept: end-to-end latency measured
    names = [t.name for t in panel.figure.data]
    assert any("end-to-end latency" in n for n in names) and any("publish latency" in n for n in names)
    assert all(len(t.x) > 0 for t in panel.figure.data)

    panel.compression.value = "lz4"
    panel.linger_ms.value = 20
    panel.acks.value = "1"
    panel.run_button.click()
    assert len(panel.runs) == 2, panel.message.value
    assert list(panel.table["compression.type"]) == ["none", "lz4"]
    assert list(panel.table["acks"]) == ["all", "1"]
    assert panel.table["publish_rate"].gt(0).all()
    assert len(panel.throughput_figure.data[0].x) == 2
    assert len(panel.figure.data) == 4
    assert PLOTLY_MIME in _mimes(panel.plot_area)[0]
    # The second run's latency chart: data, short legend names, and a fixed height that
    # JupyterLab's plotly renderer cannot collapse (a "responsive" figure lost it every other run).
    assert all(len(t.x) > 0 for t in panel.figure.data)
    # named by what differs between the runs, not by every setting
    assert [t.name for t in panel.figure.data][::2] == ["#1 none acks=all linger=5 · publish latency",
                                                        "#2 lz4 acks=1 linger=20 · publish latency"]
    assert list(panel.throughput_figure.data[0].x) == ["#1 none acks=all linger=5", "#2 lz4 acks=1 linger=20"]
    for area in (panel.plot_area, panel.bar_area):
        (bundle,) = area.outputs
        spec = bundle["data"][PLOTLY_MIME]
        assert "responsive" not in spec["config"] and spec["layout"]["height"] >= 300
    assert run.summary["workload.warmup_s"] == 1.0  # the cold start is not measured
    assert len(list(tmp_path.iterdir())) == 2  # both runs saved for a report

    panel.clear_button.click()
    assert panel.runs == [] and panel.table.empty and panel.plot_area.outputs == ()


def test_producer_tuning_panel_reports_a_failed_run_and_stays_usable(monkeypatch):
    # In a kernel, `with output:` swallowed the exception and run() then failed with an
    # UnboundLocalError: the panel must say what failed and re-raise a bug.
    def broken(*args, **kwargs):
        raise RuntimeError("worker exploded")

    monkeypatch.setattr(kw, "run_workload", broken)
    panel = kw.producer_tuning_panel(bootstrap="127.0.0.1:1", duration_s=1, progress=False)
    with pytest.raises(RuntimeError, match="worker exploded"):
        panel.run()
    assert "RuntimeError" in panel.message.value and "worker exploded" in panel.message.value
    assert not panel.run_button.disabled and panel.runs == []


def test_producer_tuning_panel_shows_cluster_errors_not_tracebacks():
    # Nothing listens on port 1: run_workload raises ClusterError after its reachability timeout.
    panel = kw.producer_tuning_panel(bootstrap="127.0.0.1:1", duration_s=1, progress=False)
    assert panel.run() is None
    assert "ClusterError" in panel.message.value
    assert not panel.run_button.disabled and panel.runs == []


def _lagging_group(bootstrap, per_partition=150, committed=50):
    """A topic of 2 partitions and a group (no members) committed at `committed` on each."""
    topic = f"kb-wlag-{uuid.uuid4().hex[:8]}"
    group = f"kb-wlag-g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in (0, 1):
        for _ in range(per_partition):
            producer.produce(topic, b"x", partition=p)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    # An empty group accepts commits from a client that never joined it.
    consumer.commit(offsets=[TopicPartition(topic, p, committed) for p in (0, 1)], asynchronous=False)
    consumer.close()
    return topic, group


def test_lag_monitor_draws_live_lag_and_stops_by_itself(bootstrap):
    topic, group = _lagging_group(bootstrap)
    try:
        # The sampler runs in a child process, which takes a second or two to start on a
        # busy machine: long enough for a few samples after it.
        monitor = kw.lag_monitor(group, bootstrap=bootstrap, interval_s=0.3, max_duration_s=6.0)
        assert monitor.running and monitor.start_button.disabled
        deadline = time.monotonic() + 30
        while monitor.running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not monitor.running, "monitor did not stop after max_duration_s"
        assert not monitor.start_button.disabled and monitor.stop_button.disabled
        frame = monitor.frame()
        assert frame["t"].nunique() >= 2
        assert int(frame.groupby("t")["lag_msgs"].sum().iloc[-1]) == 200
        lines = [t for t in monitor.figure.data if t.yaxis == "y"]
        assert len(lines) == 2 and all(len(t.x) >= 2 for t in lines)
        assert PLOTLY_MIME in _mimes(monitor.plot_area)[0]
        assert "stopped" in monitor.status.value

        monitor.start_button.click()  # restart, then stop by the button
        assert monitor.running
        monitor.stop_button.click()
        assert not monitor.running
    finally:
        delete_topics(bootstrap, [topic])


def test_lag_monitor_unreachable_bootstrap_is_a_message(monkeypatch):
    monkeypatch.delenv("KAFKABENCH_BOOTSTRAP", raising=False)
    monkeypatch.setenv("KAFKABENCH_HOME", "/nonexistent-kafkabench-home")
    monitor = kw.lag_monitor("g", start=True)
    assert not monitor.running
    assert "Error" in monitor.status.value
    assert isinstance(monitor.refresh(), (go.Figure, type(None)))
