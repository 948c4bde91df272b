"""Reading Locust runs into DataFrames and a RunResult: a real run, plus synthetic CSV edge cases."""

from __future__ import annotations

import math
import textwrap
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

import kafkabench
from kafkabench.core.errors import ConfigError, KafkabenchError
from kafkabench.loadtest.locust_results import (
    FAILURES_COLUMNS,
    HISTORY_COLUMNS,
    LOCUSTFILES,
    STATS_COLUMNS,
    TIMESERIES_COLUMNS,
    LocustFrames,
    _delete_topics,
    error_counts,
    locust_timeseries,
    locustfile_path,
    processing_summary,
    read_failures,
    read_history,
    read_stats,
    run_locust,
)
from kafkabench.loadtest.shapes import planned_users
from kafkabench.present import plots
from kafkabench.results.store import load, save

RUN_S = 10


@pytest.fixture(scope="module")
def mixed_run(bootstrap, tmp_path_factory):
    """One real 10 s run of mixed.py in two steps (2 users, then 4)."""
    run = run_locust("mixed", users=4, spawn_rate=4, run_time_s=RUN_S, shape="step", steps=2,
                     bootstrap=bootstrap, out_dir=tmp_path_factory.mktemp("locust"),
                     timeout_s=RUN_S + 90, keep_topic=False)
    assert run.exit_code == 0, run.log[-3000:]
    return run


def test_stats_frame(mixed_run):
    stats = mixed_run.frames.stats
    assert list(stats.columns) == STATS_COLUMNS
    assert set(stats["Type"]) == {"produce", "consume", "rebalance", ""}
    assert stats["Name"].iloc[-1] == "Aggregated"
    assert (stats["Request Count"] > 0).all()


def test_history_frame(mixed_run):
    history = mixed_run.frames.history
    assert list(history.columns) == [*HISTORY_COLUMNS, "t"]
    aggregated = history[history["Name"] == "Aggregated"]
    # One row a second from start to exit (about the run time, plus startup and shutdown).
    assert RUN_S - 1 <= len(aggregated) <= RUN_S + 8
    assert aggregated["t"].iloc[0] == 0
    # With --csv-full-history, every type and name has its own rows once it has requests.
    assert {"produce", "consume"} <= set(history["Type"])


def test_failures_and_workers_frames(mixed_run):
    assert mixed_run.frames.failures.empty
    assert list(mixed_run.frames.failures.columns)[:4] == ["Method", "Name", "Error", "Occurrences"]
    assert mixed_run.frames.workers.empty


def test_timeseries_adds_up_to_the_totals(mixed_run):
    ts = mixed_run.result.timeseries
    assert list(ts.columns) == TIMESERIES_COLUMNS
    assert ts.index.name == "t"
    assert list(ts.index) == list(range(len(ts)))
    summary = mixed_run.summary
    assert ts["produced"].sum() == summary["produced"] > 0
    assert ts["consumed"].sum() == summary["consumed"] > 0
    assert ts["failed"].sum() == 0
    assert ts["users"].max() == 4
    assert ts["publish_latency_ms_p99"].dropna().ge(0).all()
    assert ts["publish_delay_us_p99"].isna().all()


def test_summary(mixed_run):
    s = mixed_run.summary
    assert s["failures"] == 0 and s["failed"] == 0 and s["errors"] == {}
    assert s["publish_rate"] > 0 and s["consume_rate"] > 0
    assert s["publish_mb_s"] > 0
    keys = ["avg", "p50", "p75", "p95", "p99", "p99_9", "p99_99", "max"]
    publish = [s[f"publish_latency_ms_{k}"] for k in keys[1:]]
    assert publish == sorted(publish) and publish[0] >= 0
    e2e = [s[f"e2e_latency_ms_{k}"] for k in keys[1:]]
    assert e2e == sorted(e2e)
    assert s["rebalances"] >= 1
    assert s["exit_code"] == 0 and s["shape"] == "step"
    assert s["profile.name"] == "default"
    assert not math.isnan(s["lag_max_msgs"])
    assert not [k for k in s if k.startswith("processing_")]  # no stage: no keys, not zeros


def test_lag_and_rebalances(mixed_run):
    lag, rebalances = mixed_run.result.lag, mixed_run.result.rebalances
    assert set(lag["group"]) == {mixed_run.summary["group"]}
    assert lag["partition"].nunique() == 6
    assert lag["t"].between(-5, RUN_S + 30).all()
    assert (rebalances["event"] == "assign").sum() == mixed_run.summary["rebalances"]


def test_result_saves_and_plots(mixed_run, tmp_path):
    folder = save(mixed_run.result, tmp_path)
    loaded = load(folder)
    assert loaded.summary["produced"] == mixed_run.summary["produced"]
    pd.testing.assert_frame_equal(loaded.timeseries, mixed_run.result.timeseries,
                                  check_index_type=False)
    ts = mixed_run.result.timeseries
    for fig in (plots.throughput_over_time(ts), plots.latency_over_time(ts),
                plots.lag_over_time(mixed_run.result.lag, mixed_run.result.rebalances),
                plots.users_over_time(ts, planned_users("step", users=4, spawn_rate=4,
                                                        run_time_s=RUN_S, steps=2))):
        assert len(fig.data) > 0


def test_locust_that_overruns_is_stopped(bootstrap, tmp_path):
    # 60 s asked, 5 s allowed: Locust is stopped (SIGTERM) and the error quotes its log.
    topic = f"lr-overrun-{tmp_path.name[-8:]}"
    with pytest.raises(KafkabenchError, match="did not finish within 5 s and was stopped; its log"):
        run_locust("producer_load", run_time_s=60, rate=10, bootstrap=bootstrap, topic=topic,
                   out_dir=tmp_path, lag=False, timeout_s=5)
    assert (tmp_path / "producer_load.log").is_file()


# --- no broker needed --------------------------------------------------------------------


def test_error_counts():
    failures = pd.DataFrame({
        "Error": ["KafkaDeliveryError('MSG_SIZE_TOO_LARGE: Broker: Message size too large')",
                  "KafkaDeliveryError('_MSG_TIMED_OUT: Local: Message timed out')",
                  "KafkaDeliveryError('MSG_SIZE_TOO_LARGE: Broker: Message size too large')",
                  "ValueError('boom')"],
        "Occurrences": [3, 2, 1, 4]})
    assert error_counts(failures) == {"MSG_SIZE_TOO_LARGE": 4, "_MSG_TIMED_OUT": 2,
                                      "ValueError('boom')": 4}


def _history_row(ts, users, type_, name, total, failures=0, p50=5.0):
    row = dict.fromkeys(HISTORY_COLUMNS, 0)
    row.update({"Timestamp": ts, "User Count": users, "Type": type_, "Name": name, "50%": p50,
                "99%": p50 * 2, "100%": p50 * 3, "Total Request Count": total,
                "Total Failure Count": failures, "Total Max Response Time": p50 * 3})
    return row


def test_timeseries_evens_out_skipped_and_repeated_seconds(tmp_path):
    # Locust skipped second 102 and wrote second 104 twice.
    rows = []
    for ts, total in ((100, 0), (101, 100), (103, 300), (104, 350), (104, 400), (105, 500)):
        rows.append(_history_row(ts, 2, "produce", "orders", total, failures=total // 100))
        rows.append(_history_row(ts, 2, "", "Aggregated", total, failures=total // 100))
    path = tmp_path / "run_stats_history.csv"
    pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(path, index=False)
    ts = locust_timeseries(read_history(tmp_path / "run"))
    assert ts["produced"].tolist() == [0, 100, 100, 100, 100, 100]
    assert ts["produced"].sum() == 500
    assert ts["failed"].sum() == 5
    assert ts["delivered"].sum() == 495
    assert ts["consumed"].sum() == 0 and ts["e2e_latency_ms_p50"].isna().all()
    assert ts["publish_latency_ms_p50"].iloc[1] == 5.0


def test_not_a_locust_file(tmp_path):
    (tmp_path / "x_stats.csv").write_text("a,b\n1,2\n")
    with pytest.raises(KafkabenchError, match="lacks Locust's columns"):
        read_stats(tmp_path / "x")
    with pytest.raises(KafkabenchError, match="no Locust CSV file"):
        read_stats(tmp_path / "missing")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="shape"):
        run_locust("mixed", shape="ramp", bootstrap="127.0.0.1:1")
    with pytest.raises(ConfigError, match="users=0"):
        run_locust("mixed", users=0, bootstrap="127.0.0.1:1")


def test_locustfiles_come_with_the_package():
    assert LOCUSTFILES == Path(kafkabench.__file__).parent / "locustfiles"
    assert {p.stem for p in LOCUSTFILES.glob("*.py")} >= {"producer_load", "consumer_load", "mixed"}


def test_locustfile_by_name_file_name_or_path(tmp_path, monkeypatch):
    mixed = LOCUSTFILES / "mixed.py"
    assert locustfile_path("mixed") == locustfile_path("mixed.py") == mixed
    assert locustfile_path(mixed) == locustfile_path(str(mixed)) == mixed
    own = tmp_path / "mine.py"
    own.write_text("")
    assert locustfile_path(own) == own
    # A file of that name where the user is wins over kafkabench's own.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mixed.py").write_text("")
    assert locustfile_path("mixed.py") == Path("mixed.py")
    assert locustfile_path("mixed") == mixed


@pytest.mark.parametrize("name", ["nope", "nope.py", "sub/mixed.py", "/no/such/file.py"])
def test_unknown_locustfile_lists_kafkabenchs(name):
    with pytest.raises(ConfigError) as info:
        locustfile_path(name)
    assert f"no locustfile {name!r}" in str(info.value)
    assert "consumer_load, mixed, producer_load" in str(info.value)


def test_a_real_locust_run_keeps_the_result_contract(mixed_run, tmp_path):
    from kafkabench.core.contract import check_frame, check_summary

    result = mixed_run.result
    assert check_summary(result.summary, "locust") == []
    for kind in ("timeseries", "lag", "rebalances"):
        assert check_frame(kind, getattr(result, kind), "locust") == [], kind
    # And after a save and load, as results.load_results and the report read it.
    loaded = load(save(result, tmp_path))
    assert check_summary(loaded.summary, "locust") == []
    for kind in ("timeseries", "lag", "rebalances"):
        assert check_frame(kind, getattr(loaded, kind), "locust") == [], kind


# --- a consumer user's processing stage ---------------------------------------------------

STAGE_USER = """
    from locust import task
    from kafkabench.loadtest.locust_user import KafkaConsumerUser

    class Service(KafkaConsumerUser):
        @task
        def handle(self):
            self.client.consume(self.batch)
"""


def _fill(bootstrap: str, topic: str, messages: int, partitions: int) -> dict[int, tuple[int, int]]:
    """Create `topic`, write `messages` to it; returns its watermarks {partition: (low, high)}."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from kafkabench.cluster.admin import create_topic

    create_topic(bootstrap, topic, partitions=partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(messages):
        producer.produce(topic, b"order-%d" % i, partition=i % partitions)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(partitions)}
    finally:
        consumer.close()


def test_processing_stage_counts_are_the_injected_ones(bootstrap, tmp_path):
    from kafkabench.core.contract import check_summary
    from kafkabench.spec.processing import FILTERED, OK, POISON, TRANSIENT, Processing

    topic = f"lr-stage-{uuid.uuid4().hex[:8]}"
    watermarks = _fill(bootstrap, topic, 2000, partitions=3)
    locustfile = tmp_path / "service.py"
    locustfile.write_text(textwrap.dedent(STAGE_USER))
    # Transient messages fail once and succeed from <topic>.retry.1; poison fails there too
    # and is a dead letter; which ones is fixed by (partition, offset) and the seed.
    stage = Processing(poison_fraction=0.02, transient_fraction=0.05, filter_fraction=0.1,
                       retry="topics", backoff={"initial_ms": 50, "max_attempts": 2}, seed=7)
    expected = stage.expected(watermarks)
    assert expected[POISON] > 0 and expected[TRANSIENT] > 0 and expected[FILTERED] > 0
    run = run_locust(locustfile, users=1, spawn_rate=1, run_time_s=8, bootstrap=bootstrap,
                     topic=topic, out_dir=tmp_path / "out", lag=False, timeout_s=90,
                     processing=stage.to_dict())
    assert run.exit_code == 1, run.log[-3000:]  # dead letters are Locust failures
    s = run.summary
    assert s["processing_dead_lettered"] == s["processing_failed"] == expected[POISON]
    assert s["processing_filtered"] == expected[FILTERED]
    assert s["processing_forwarded"] == expected[POISON] + expected[TRANSIENT]
    assert s["processing_processed"] == expected[OK] + expected[TRANSIENT]
    assert s["processing_stage_errors"] == 0
    # Every message read (the retry topic's included) is processed, dead, dropped or forwarded.
    assert s["consumed"] == 2000 + s["processing_forwarded"] == (
        s["processing_processed"] + s["processing_dead_lettered"] + s["processing_filtered"]
        + s["processing_forwarded"])
    assert 0 <= s["processing_latency_ms_p50"] <= s["processing_latency_ms_p99"] \
        <= s["processing_latency_ms_max"]
    assert check_summary(s, "locust") == []
    # The stage went to Locust as a file, and the run's config says what it was.
    stage_file = tmp_path / "out" / "service.processing.yaml"
    assert run.command[run.command.index("--kafka-processing") + 1] == str(stage_file)
    assert Processing(**yaml.safe_load(stage_file.read_text())) == stage
    assert run.result.config["locust"]["processing"] == stage.to_dict()
    _delete_topics(bootstrap, topic, {})


def test_processing_stage_topics_go_with_the_run_topic(bootstrap):
    from kafkabench.cluster.admin import create_topic, list_topics

    topic = f"lr-gone-{uuid.uuid4().hex[:8]}"
    kept = f"{topic}-other"
    for name in (topic, f"{topic}.retry.1", f"{topic}.dlq", f"{topic}.out", kept):
        create_topic(bootstrap, name, partitions=1)
    _delete_topics(bootstrap, topic, {})
    left = [t for t in list_topics(bootstrap) if t.startswith(topic)]
    assert left == [kept]
    _delete_topics(bootstrap, kept, {})


@pytest.mark.parametrize(("processing", "says"), [
    ({"poison_fraction": 2}, "processing.poison_fraction=2: expected a number between 0 and 1"),
    ({"poison": 0.1}, "processing: unknown keys ['poison']"),
    ({"retry": "topics", "backoff": {"max_attempts": 0}}, "processing.backoff.max_attempts=0"),
    ("file", "processing file '{file}': processing.retry='later'"),
    ("empty", "processing file '{file}' is empty"),
    ("missing", "processing file '{file}': no such file"),
])
def test_bad_processing_stage_fails_before_locust_starts(tmp_path, processing, says):
    file = tmp_path / "stage.yaml"
    if processing == "file":
        file.write_text("time_ms: 1\nretry: later\n")
    elif processing == "empty":
        file.write_text("")
    if isinstance(processing, str):
        processing = file
    out = tmp_path / "out"
    # No cluster at that address: the stage is refused before anything looks for one.
    with pytest.raises(ConfigError) as info:
        run_locust(LOCUSTFILES / "service_consumer.py", processing=processing,
                   bootstrap="127.0.0.1:1", out_dir=out)
    assert says.format(file=file) in str(info.value)
    assert not out.exists()


def _stats_row(type_, name, requests, failures=0, p50=0.0, p99=0.0, p100=0.0):
    row = dict.fromkeys(STATS_COLUMNS, 0)
    row.update({"Type": type_, "Name": name, "Request Count": requests, "Failure Count": failures,
                "Average Response Time": p50, "50%": p50, "99%": p99, "100%": p100})
    return row


def test_processing_summary_from_locusts_statistics(tmp_path):
    stats = [_stats_row("consume", "t", 160), _stats_row("consume", "t.retry.1", 30),
             _stats_row("process", "t", 100, 5, p50=2, p99=9, p100=12),
             _stats_row("process", "t.retry.1", 20, 3, p50=3, p99=15, p100=20),
             _stats_row("process", "processing stage produce", 2, 2),
             _stats_row("retry", "t", 30), _stats_row("filter", "t", 10),
             _stats_row("", "Aggregated", 352, 10)]
    pd.DataFrame(stats, columns=STATS_COLUMNS).to_csv(tmp_path / "run_stats.csv", index=False)
    failures = [("process", "t", "ProcessingError('injected poison failure')", 5),
                ("process", "t.retry.1",
                 "ProcessingError('failed its last attempt (dropped: dead_letter is false)')", 3),
                ("process", "processing stage produce",
                 "KafkaDeliveryError('_MSG_TIMED_OUT: Local: Message timed out')", 2)]
    pd.DataFrame(failures, columns=FAILURES_COLUMNS).to_csv(tmp_path / "run_failures.csv", index=False)
    frames = LocustFrames(stats=read_stats(tmp_path / "run"), history=pd.DataFrame(),
                          failures=read_failures(tmp_path / "run"), workers=pd.DataFrame())
    assert processing_summary(frames) == {
        "processing_processed": 112, "processing_failed": 8, "processing_dead_lettered": 5,
        "processing_forwarded": 30, "processing_filtered": 10, "processing_stage_errors": 2,
        # The highest of the names' percentiles, as for every other request type.
        "processing_latency_ms_p50": 3.0, "processing_latency_ms_p99": 15.0,
        "processing_latency_ms_max": 20.0}
    # No stage: no keys.
    frames.stats = frames.stats[frames.stats["Type"].isin(["consume", ""])]
    assert processing_summary(frames) == {}
