"""RunResult save/load round trip, schema versions, listing and comparing (synthetic, no broker)."""

import json
import math

import pandas as pd
import pandas.testing as pdt
import pytest

import kafkabench.results as res
from kafkabench.core import contract
from kafkabench.core.contract import check_frame, dtypes
from kafkabench.core.errors import KafkabenchError
from kafkabench.measure.lagmath import lag_frame
from kafkabench.measure.stats import LatencyRecorder, parse_statistics
from kafkabench.results.store import SCHEMA_VERSION, _migrate, compare, list_results, load, load_results, save
from kafkabench.run.result import RunResult, make_run_id


def _recorder(lo, hi):
    rec = LatencyRecorder()
    for v in range(lo, hi):
        rec.record(v)
    return rec


def _result(name="quickstart", rate=1000.0, p99=5.0, run_id=None):
    t = pd.Index(range(3), name="t")
    dtypes = contract.dtypes("timeseries")
    timeseries = pd.DataFrame({c: [1, 2, 3] for c in res.TIMESERIES_COLUMNS}, index=t).astype(
        {c: dtypes[c] for c in res.TIMESERIES_COLUMNS if c != "time"})
    timeseries["time"] = pd.to_datetime(timeseries["time"] + 1_800_000_000, unit="s", utc=True).dt.as_unit("ns")
    wall = pd.Timestamp("2026-11-26 21:37:00", tz="UTC")
    lag = lag_frame([
        (0.0, "g", "tp", 0, 10, 15, 5, 0.5, "OK", wall),
        (1.0, "g", "tp", 1, None, 15, None, math.nan, "OK", wall),
    ])
    rebalances = pd.DataFrame({"t": [0.5], "group": ["g"], "member": ["m-1"], "event": ["assign"],
                               "partitions": [["tp-0", "tp-1"]]})
    stats = parse_statistics([(0.0, json.dumps({"name": "p", "msg_cnt": 3, "txmsgs": 7}))])
    summary = {"name": name, "started_at": "2026-11-26T21:37:00+00:00", "duration_s": 10.0,
               "produced": 10000, "publish_rate": rate, "publish_latency_ms_p99": p99,
               "e2e_latency_ms_p99": math.nan, "errors": {"_MSG_TIMED_OUT": 2},
               "workload.partitions": 3, "producer.linger.ms": 5}
    if run_id:
        summary["run_id"] = run_id
    return RunResult(summary=summary, timeseries=timeseries, lag=lag, rebalances=rebalances,
                     librdkafka=stats,
                     histograms={"publish_latency_us": _recorder(100, 5000),
                                 "e2e_latency_us": LatencyRecorder()},
                     config={"workload": {"name": name, "partitions": 3},
                             "profile": {"producer": {"linger.ms": 5}}})


def test_make_run_id_sorts_by_time_and_is_a_safe_name():
    a = make_run_id("Quick start/1", pd.Timestamp("2026-11-26 21:37:00").to_pydatetime())
    assert a.startswith("20261126-213700-quick-start-1-") and len(a.rsplit("-", 1)[1]) == 4
    assert a != make_run_id("Quick start/1", pd.Timestamp("2026-11-26 21:37:00").to_pydatetime())


def test_save_load_round_trip(tmp_path):
    result = _result()
    folder = save(result, tmp_path)
    assert folder.parent == tmp_path and folder.name == result.run_id
    assert folder.name.startswith("20261126-213700-quickstart-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "lag.parquet", "librdkafka.parquet", "rebalances.parquet", "result.json", "timeseries.parquet"]
    doc = json.loads((folder / "result.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and "kafkabench_version" in doc

    back = load(folder)
    for attr in ("timeseries", "lag", "rebalances", "librdkafka"):
        pdt.assert_frame_equal(getattr(back, attr), getattr(result, attr))
    assert back.summary.keys() == result.summary.keys()
    for k, v in result.summary.items():
        assert back.summary[k] == v or (isinstance(v, float) and math.isnan(back.summary[k]))
    assert back.config == result.config
    assert back.histograms.keys() == result.histograms.keys()
    for name, rec in result.histograms.items():
        assert back.histograms[name].count == rec.count
        assert back.histograms[name].percentiles() == pytest.approx(rec.percentiles(), nan_ok=True)
    pdt.assert_frame_equal(back.spectrum(), result.spectrum())
    assert load(folder / "result.json").run_id == result.run_id


def test_empty_result_round_trips(tmp_path):
    result = RunResult(summary={"name": "empty"})
    back = load(save(result, tmp_path))
    for attr in ("timeseries", "lag", "librdkafka"):
        pdt.assert_frame_equal(getattr(back, attr), getattr(result, attr))
    assert list(back.rebalances.columns) == res.REBALANCE_COLUMNS and back.rebalances.empty
    assert back.spectrum().empty


def test_empty_frames_keep_the_contract_after_a_round_trip(tmp_path):
    # Before the contract, an empty timeseries had float counts and no byte columns, and an
    # empty rebalances frame had no count and wall.
    result = RunResult(summary={"name": "empty"})
    back = load(save(result, tmp_path))
    for kind in contract.FRAMES:
        assert contract.check_frame(kind, getattr(result, kind)) == [], kind
        assert contract.check_frame(kind, getattr(back, kind)) == [], kind
        pdt.assert_frame_equal(getattr(back, kind), getattr(result, kind))


def test_save_refuses_to_overwrite_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    result = _result(run_id="20260101-000000-x-0000")
    save(result, tmp_path)
    with pytest.raises(KafkabenchError, match="exists"):
        save(result, tmp_path)
    save(result, tmp_path, overwrite=True)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    broken = _result(run_id="20260101-000001-y-0000")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        save(broken, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260101-000000-x-0000"]


def test_newer_schema_is_a_clear_error(tmp_path):
    folder = save(_result(), tmp_path)
    doc = json.loads((folder / "result.json").read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    (folder / "result.json").write_text(json.dumps(doc))
    with pytest.raises(KafkabenchError, match="upgrade kafkabench"):
        load(folder)
    with pytest.raises(KafkabenchError, match="not a kafkabench result"):
        _migrate({"summary": {}})
    with pytest.raises(KafkabenchError, match="no kafkabench result"):
        load(tmp_path / "nothing-here")


def test_migrations_run_in_order(monkeypatch):
    from kafkabench.results import store

    monkeypatch.setattr(store, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store, "_MIGRATIONS", {
        1: lambda d: {**d, "schema_version": 2, "a": 1},
        2: lambda d: {**d, "schema_version": 3, "b": d["a"] + 1},
    })
    assert _migrate({"schema_version": 1}) == {"schema_version": 3, "a": 1, "b": 2}


def test_load_results_and_list_results(tmp_path):
    ids = ["20260101-000002-b-0000", "20260101-000001-a-0000"]
    for rid, rate in zip(ids, (2000.0, 1000.0)):
        save(_result(name=rid.split("-")[2], rate=rate, run_id=rid), tmp_path)
    (tmp_path / ".20260101-000003-c-0000.x.tmp").mkdir()  # a save in progress is not a run

    table = load_results(tmp_path)
    assert list(table["run_id"]) == sorted(ids)
    assert list(table["publish_rate"]) == [1000.0, 2000.0]
    assert "workload.partitions" in table and "path" in table
    assert len(load_results([tmp_path / ids[0]])) == 1

    listing = list_results(tmp_path)
    assert list(listing.columns[:4]) == ["run_id", "name", "started_at", "duration_s"]
    assert list(listing["name"]) == ["a", "b"]
    assert list_results(tmp_path / "missing").empty


def test_compare_gives_ratios_against_the_first_run(tmp_path):
    a = save(_result(rate=1000.0, p99=4.0, run_id="20260101-000001-a-0000"), tmp_path)
    b = save(_result(rate=1500.0, p99=2.0, run_id="20260101-000002-b-0000"), tmp_path)
    table = compare([a, b], metrics=["publish_rate", "publish_latency_ms_p99", "consume_rate"])
    ratio = "20260101-000002-b-0000 / 20260101-000001-a-0000"
    assert list(table.columns) == ["20260101-000001-a-0000", "20260101-000002-b-0000", ratio]
    assert table.loc["publish_rate", ratio] == 1.5
    assert table.loc["publish_latency_ms_p99", ratio] == 0.5
    assert math.isnan(table.loc["consume_rate", ratio])
    pdt.assert_frame_equal(compare(load_results(tmp_path), metrics=table.index), table)
    assert compare([load(a), load(b)], metrics=table.index).equals(table)


def _damage(tmp_path):
    """Two good runs and one damaged run folder of each kind; returns (good ids, damaged folders)."""
    good = ["20260101-000001-a-0000", "20260101-000005-e-0000"]
    for rid in good:
        save(_result(name=rid.split("-")[2], run_id=rid), tmp_path)
    damaged = {}
    for rid, text in (("20260101-000002-b-0000", "{"), ("20260101-000003-c-0000", "{}"),
                      ("20260101-000004-d-0000", "[1, 2]")):
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "result.json").write_text(text)
        damaged[rid] = tmp_path / rid
    newer = save(_result(run_id="20260101-000006-f-0000"), tmp_path)
    doc = json.loads((newer / "result.json").read_text())
    (newer / "result.json").write_text(json.dumps({**doc, "schema_version": SCHEMA_VERSION + 1}))
    damaged[newer.name] = newer
    return good, damaged


def test_damaged_runs_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    good, damaged = _damage(tmp_path)
    with caplog.at_level("WARNING", logger="kafkabench.results.store"):
        table = load_results(tmp_path)
    assert list(table["run_id"]) == good
    for folder in damaged.values():
        assert f"skipped run folder {folder}" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kafkabench.results.store"):
        assert list(list_results(tmp_path)["run_id"]) == good
    assert len(caplog.records) == len(damaged)
    # compare: named run folders too, damaged ones skipped.
    with caplog.at_level("WARNING", logger="kafkabench.results.store"):
        table = compare([tmp_path / good[0], damaged["20260101-000003-c-0000"], tmp_path / good[1]],
                        metrics=["publish_rate"])
    assert list(table.columns) == [good[0], good[1], f"{good[1]} / {good[0]}"]
    assert load_results(damaged["20260101-000002-b-0000"]).empty


def test_loading_one_damaged_run_is_a_clear_error(tmp_path):
    good, damaged = _damage(tmp_path)
    for rid, match in (("20260101-000002-b-0000", "is damaged: not valid JSON"),
                       ("20260101-000003-c-0000", r"not a kafkabench result \(no schema_version\)"),
                       ("20260101-000004-d-0000", r"not a kafkabench result \(a JSON list"),
                       ("20260101-000006-f-0000", "upgrade kafkabench")):
        with pytest.raises(KafkabenchError, match=match) as err:
            load(damaged[rid])
        assert rid in str(err.value)
    (tmp_path / good[0] / "lag.parquet").write_bytes(b"PAR1 not parquet at all")
    with pytest.raises(KafkabenchError, match=r"lag.parquet' is damaged: not a readable parquet"):
        load(tmp_path / good[0])
    doc = json.loads((tmp_path / good[1] / "result.json").read_text())
    doc["histograms"]["publish_latency_us"] = "HISTFAAAAnotahistogram"
    (tmp_path / good[1] / "result.json").write_text(json.dumps(doc))
    with pytest.raises(KafkabenchError, match="histogram 'publish_latency_us' cannot be decoded"):
        load(tmp_path / good[1])


def test_load_many_skips_damaged_parquet_files(tmp_path, caplog):
    good, _ = _damage(tmp_path)
    (tmp_path / good[0] / "timeseries.parquet").write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="kafkabench.results.store"):
        runs = res.load_many(tmp_path)
    assert [r.run_id for r in runs] == [good[1]]
    assert f"skipped run folder {tmp_path / good[0]}" in caplog.text
    assert "timeseries.parquet" in caplog.text
    assert res.load_many(tmp_path / "20260101-000003-c-0000") == []


def test_find_run_by_path_id_or_prefix(tmp_path):
    a = save(_result(run_id="20260101-000001-a-0000"), tmp_path)
    b = save(_result(run_id="20260101-000002-b-0000"), tmp_path)
    swept = save(_result(run_id="20260101-000003-s-abcd"), tmp_path / "sweeps" / "s")
    assert res.find_run(a) == a
    assert res.find_run(a.name, tmp_path) == a
    assert res.find_run("20260101-000002", tmp_path) == b
    assert res.find_run("20260101-000003-s-abcd", tmp_path) == swept
    with pytest.raises(KafkabenchError, match=r"matches 3 runs .*give more of the run id"):
        res.find_run("20260101", tmp_path)
    with pytest.raises(KafkabenchError, match=r"no run 'zzz'.*results list"):
        res.find_run("zzz", tmp_path)


def test_the_fault_and_verify_frames_round_trip_and_are_left_out_when_empty(tmp_path):
    result = _result()
    assert result.faults.empty and result.verify.empty
    plain = save(result, tmp_path / "plain")
    assert not any((plain / f"{k}.parquet").exists() for k in ("faults", "cluster_state", "verify", "recovery"))
    back = load(plain)
    for kind in ("faults", "cluster_state", "verify", "recovery"):
        assert check_frame(kind, getattr(back, kind)) == [] and getattr(back, kind).empty

    result.verify = pd.DataFrame({"topic": ["t"], "partition": [0], "producer": ["producer-0"],
                                  "acked": [10], "failed": [1], "read": [9], "lost": [1],
                                  "duplicated": [0], "reordered": [0], "failed_but_present": [0]}
                                 ).astype(dtypes("verify"))
    result.faults = pd.DataFrame({"fault": [0], "action": ["kill"], "origin": ["schedule"],
                                  "target": ["leader"], "node": [2], "scheduled_s": [5.0],
                                  "started_s": [5.01], "ended_s": [5.2], "outcome": ["ok"],
                                  "error": [""], "command": [""]}).astype(dtypes("faults"))
    back = load(save(result, tmp_path / "faulted"))
    pdt.assert_frame_equal(back.verify, result.verify)
    pdt.assert_frame_equal(back.faults, result.faults)
