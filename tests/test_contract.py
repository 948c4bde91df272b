"""The result contract: its checks, DESIGN.md generated from it, and real runs keeping it."""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.core import contract
from kafkabench.core.contract import (
    FRAMES,
    HISTOGRAMS,
    check_frame,
    check_summary,
    empty_frame,
    group_name,
    member_name,
    percentile_columns,
    producer_name,
    summary_names,
)
from kafkabench.measure.lagmath import lag_frame
from kafkabench.measure.stats import SUMMARY_KEYS, LatencyRecorder, parse_statistics
from kafkabench.results.store import load, save
from kafkabench.runner import consume_topic, run_workload
from kafkabench.spec.workload import Workload

DESIGN = Path(__file__).resolve().parents[1] / "DESIGN.md"
BEGIN, END = "<!-- contract:begin -->", "<!-- contract:end -->"


def _timeseries(**overrides) -> pd.DataFrame:
    """A one-second timeseries as a run makes it."""
    types = contract.dtypes("timeseries")
    row = {c: pd.Timestamp("2026-01-01", tz="UTC") if c == "time" else 1
           for c in contract.columns("timeseries")}
    frame = pd.DataFrame([row], index=pd.Index([0], dtype="int64", name="t"))
    frame = frame.astype({c: types[c] for c in row})
    for column, value in overrides.items():
        frame[column] = value
    return frame


# ----------------------------------------------------------------------------- check_frame


def test_check_frame_accepts_a_frame_that_keeps_the_contract():
    assert check_frame("timeseries", _timeseries()) == []
    for kind in FRAMES:
        assert check_frame(kind, empty_frame(kind)) == [], kind


def test_check_frame_names_a_missing_column():
    problems = check_frame("timeseries", _timeseries().drop(columns="backlog"))
    assert problems == ["timeseries: column 'backlog' is missing"]


def test_check_frame_names_a_wrong_dtype():
    problems = check_frame("timeseries", _timeseries(produced=1.0))
    assert problems == ["timeseries: column 'produced' has dtype float64, the contract says int64"]
    problems = check_frame("lag", lag_frame().astype({"lag_msgs": "float64"}))
    assert problems == ["lag: column 'lag_msgs' has dtype float64, the contract says Int64"]


def test_check_frame_names_an_unexpected_column_and_a_wrong_index():
    frame = _timeseries(surprise=1).reset_index(drop=True)
    assert check_frame("timeseries", frame) == [
        "timeseries: index is None (int64), the contract says 't' (int64)",
        "timeseries: column 'surprise' is not in the contract"]


def test_check_frame_asks_each_source_for_its_own_columns():
    locust = empty_frame("timeseries", source="locust")
    assert {"users", "requests"} <= set(locust.columns) and "bytes" not in locust.columns
    assert check_frame("timeseries", locust, source="locust") == []
    assert "timeseries: column 'bytes' is missing" in check_frame("timeseries", locust, source="run")
    with pytest.raises(ValueError, match="frame kind 'lags'"):
        check_frame("lags", locust)


def test_check_summary_names_missing_unknown_and_mistyped_keys():
    problems = check_summary({"run_id": "r", "produced": 1.5, "nonsense": 1, "producer.acks": "all",
                              "rate_held": 1})
    assert "summary: key 'name' is missing" in problems
    assert "summary: key 'producer.*' is missing" not in problems
    assert "summary: key 'rate_held' is missing" not in problems  # only with a target rate
    assert "summary: key 'nonsense' is not in the contract" in problems
    assert "summary: 'produced' is float 1.5, the contract says int" in problems
    assert "summary: 'rate_held' is int 1, the contract says bool" in problems


# ----------------------------------------------------------------------------- the rest of the contract


def test_the_contract_agrees_with_the_modules_that_emit_frames():
    pdt.assert_frame_equal(empty_frame("lag"), lag_frame())
    pdt.assert_frame_equal(empty_frame("librdkafka"), parse_statistics([]))
    # Frames with rows, parsed from real librdkafka statistics of both roles.
    data = Path(__file__).parent / "data"
    for role in ("producer", "consumer"):
        frame = parse_statistics([(1.0, (data / f"librdkafka_stats_{role}.json").read_text())])
        assert len(frame) and check_frame("librdkafka", frame) == [], role


def test_percentile_columns_for_the_summary_and_the_timeseries():
    rec = LatencyRecorder()
    for us in range(1, 1001):
        rec.record(us)
    summary = percentile_columns("publish_latency_us", rec)
    assert list(summary) == [f"publish_latency_ms_{k}" for k in SUMMARY_KEYS]
    assert summary["publish_latency_ms_p50"] == pytest.approx(0.5, rel=0.01)
    assert percentile_columns("publish_delay_us", rec, "timeseries") == {
        "publish_delay_us_p99": pytest.approx(990, rel=0.01)}
    empty = percentile_columns("e2e_latency_us", None, "timeseries")
    assert list(empty) == ["e2e_latency_ms_p50", "e2e_latency_ms_p99"]
    assert all(math.isnan(v) for v in empty.values())
    assert all(math.isnan(v) for v in percentile_columns("e2e_latency_us", LatencyRecorder()).values())
    with pytest.raises(ValueError, match="histogram 'latency_us'"):
        percentile_columns("latency_us", rec)
    ts = [c for h in HISTOGRAMS for c in h.columns("timeseries")]
    assert set(ts) <= set(contract.columns("timeseries"))


def test_names_follow_the_runs_rule():
    w = Workload(name="n", topics=2)
    topic = w.topic_names("RUN")[1]
    assert group_name(topic, 0) == "kb-RUN-1-g0"
    assert member_name(group_name(topic, 0), 2, topic_prefix="kb", run_id="RUN") == "1-g0-c2"
    assert member_name(group_name("orders", 1), 0, topic_prefix="kb", run_id="RUN") == "orders-g1-c0"
    assert producer_name(1, 0, topics=2) == "producer-1-0"
    assert producer_name(0, 3, topics=1) == "producer-3"


def test_summary_names_refuses_a_key_the_contract_lacks():
    assert summary_names("publish_rate", "producer.linger.ms") == ("publish_rate", "producer.linger.ms")
    with pytest.raises(ValueError, match="'publish_rate_p99' is not a summary key"):
        summary_names("publish_rate_p99")
    assert contract.column_names("lag", "lag_s") == ("lag_s",)
    with pytest.raises(ValueError, match="'lag' is not a column of .*'lag'"):
        contract.column_names("lag", "lag")


def test_design_md_holds_the_generated_tables():
    text = DESIGN.read_text(encoding="utf-8")
    found = re.search(re.escape(BEGIN) + r"\n(.*)" + re.escape(END), text, re.S)
    assert found, f"DESIGN.md has no {BEGIN} ... {END} section"
    assert found.group(1) == contract.markdown(), (
        "DESIGN.md's result tables differ from the contract: run "
        "`python -m kafkabench.core.contract --write DESIGN.md`")


def test_markdown_from_the_command_line(capsys):
    assert contract.main(["--markdown"]) == 0
    assert capsys.readouterr().out == contract.markdown()


# ----------------------------------------------------------------------------- real runs


def _check_time(ts: pd.DataFrame, source: str) -> None:
    assert check_frame("timeseries", ts, source) == []
    assert (ts["time"].diff().dropna() == pd.Timedelta(seconds=1)).all()


def _problems(result, source: str) -> list[str]:
    ts = result.timeseries
    problems = check_frame("timeseries", ts.drop(columns="time", errors="ignore"), source)
    problems = [p for p in problems if p != "timeseries: column 'time' is missing"]
    for kind in ("lag", "rebalances", "librdkafka"):
        problems += check_frame(kind, getattr(result, kind), source)
    return problems + check_summary(result.summary, source)


@pytest.fixture(scope="module")
def run(bootstrap, tmp_path_factory):
    workload = Workload(name="c", partitions=2, producers=1, consumer_groups=1, consumers_per_group=1,
                        producer_rate=200, duration_s=2, warmup_s=0)
    out = tmp_path_factory.mktemp("contract")
    result = run_workload(workload, None, bootstrap=bootstrap, out=out, progress=False, mode="thread")
    return result, out / result.run_id


def test_a_run_keeps_the_contract(run):
    result, _ = run
    assert result.summary["complete"] is True, result.summary["incomplete"]
    assert len(result.timeseries) and len(result.lag) and len(result.rebalances) and len(result.librdkafka)
    assert _problems(result, "run") == []
    assert result.summary["rate_held"] in (True, False)  # a rate-controlled run judges its schedule
    _check_time(result.timeseries, "run")


def test_a_saved_run_loads_with_the_contracts_dtypes(run):
    result, folder = run
    back = load(folder)
    for kind in FRAMES:
        pdt.assert_frame_equal(getattr(back, kind), getattr(result, kind), check_index_type=True)
    assert _problems(back, "run") == []
    _check_time(back.timeseries, "run")


def test_consume_topic_keeps_the_contract(bootstrap, tmp_path):
    topic = f"contract-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 2, 1)
    try:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(100):
            producer.produce(topic, f"m{i}".encode())
        assert producer.flush(10) == 0
        result = consume_topic(topic, messages=100, bootstrap=bootstrap, timeout_s=10, progress=False)
    finally:
        delete_topics(bootstrap, [topic], timeout_s=10)
    assert result.summary["consumed"] == 100
    assert _problems(result, "consume") == []
    back = load(save(result, tmp_path))
    assert _problems(back, "consume") == []
    _check_time(result.timeseries, "consume")


def test_write_markdown_leaves_the_file_as_it_was_when_the_tables_fail(tmp_path, monkeypatch):
    # It opened the file for writing (truncating it) before building the tables: a table that
    # failed to build left an empty DESIGN.md.
    doc = tmp_path / "DESIGN.md"
    text = f"intro\n{contract.BEGIN}\nold tables\n{contract.END}\noutro\n"
    doc.write_text(text)

    def broken() -> str:
        raise KeyError("faults")

    monkeypatch.setattr(contract, "markdown", broken)
    with pytest.raises(KeyError):
        contract.write_markdown(str(doc))
    assert doc.read_text() == text
