"""Sweeps: grid names and validation offline; running, resuming and interrupting on a real broker."""

from __future__ import annotations

import pandas as pd
import pytest

import kafkabench.runner
from kafkabench.analysis.sweeps import summarize
from kafkabench.core.contract import check_summary
from kafkabench.core.errors import ConfigError
from kafkabench.experiments.sweep import SweepSpec, load_sweep, points, run_sweep, sweep_dir
from kafkabench.results.store import load_many

# Producer only, 200 messages per run: a run takes about two seconds.
TINY = {"name": "tiny", "partitions": 2, "message_size": 100, "duration_s": 0, "message_count": 200,
        "consumer_groups": 0}


def _spec(**kwargs) -> SweepSpec:
    args = {"name": "tiny", "workload": TINY, "profile": "default",
            "grid": {"linger.ms": [0, 5], "message_size": [100]}, "repetitions": 2, **kwargs}
    return SweepSpec(**args)


def test_grid_names_are_canonical_and_points_are_the_product():
    spec = SweepSpec("s", TINY, None, {"linger.ms": [0, 5], "partitions": [1, 2, 3],
                                       "consumer.fetch.wait.max.ms": [10], "acks": ["1", "all"],
                                       "run.commit": ["sync"]})
    assert spec.params == ["producer.linger.ms", "workload.partitions", "consumer.fetch.wait.max.ms",
                           "producer.acks", "run.commit"]
    pts = points(spec)
    assert len(pts) == 12 and spec.runs == 12
    assert pts[0] == {"producer.linger.ms": 0, "workload.partitions": 1, "consumer.fetch.wait.max.ms": 10,
                      "producer.acks": "1", "run.commit": "sync"}
    assert points(SweepSpec("s", TINY, None, {})) == [{}]


@pytest.mark.parametrize("grid, match", [
    ({"workload.partitons": [1]}, "'partitons' is not a Workload field"),
    ({"partitons": [1]}, r"partitons.*No such configuration property.*Workload field"),
    ({"linger.ms": ["soon"]}, r"linger.ms='soon'"),
    ({"producer.fetch.wait.max.ms": [5]}, "consumer setting"),
    ({"partitions": [2, 0]}, r"partitions=0"),
    ({"linger.ms": []}, "has no values"),
    ({"linger.ms": 5}, "expected a list"),
    ({"linger.ms": [5, 5]}, "repeats a value"),
    ({"linger.ms": [1], "producer.linger.ms": [2]}, "given twice"),
    ({"run.partitioner": ["nope"]}, "unknown partitioning strategy 'nope'"),
    ({"run.timeout": [1]}, "run.<option>"),
])
def test_bad_grid_is_a_config_error_naming_it(grid, match):
    with pytest.raises(ConfigError, match=match):
        SweepSpec("bad", TINY, None, grid).validate()


@pytest.mark.parametrize("fields, match", [
    ({"name": "a b"}, r"^sweep name='a b': use letters, digits"),
    ({"grid": 3}, r"^sweep 'tiny': grid=3: expected a mapping of parameter -> list of values"),
    ({"repetitions": 0}, r"^sweep 'tiny': repetitions=0: expected an integer >= 1"),
    ({"run_options": 3}, r"^sweep 'tiny': run=3: expected a mapping"),
    ({"run_options": {"mode": "thread", "x": 1}}, r"^sweep 'tiny': run: unknown keys \['x'\]; expected some of"),
    ({"workload": {"partitons": 1}}, r"unknown workload keys \['partitons'\]"),
])
def test_bad_sweep_fields_are_config_errors_naming_them(fields, match):
    with pytest.raises(ConfigError, match=match):
        _spec(**fields)


def test_every_point_is_checked_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(kafkabench.runner, "run_workload", lambda *a, **k: pytest.fail("ran"))
    spec = SweepSpec("bad", TINY, None, {"message_size": [100, 200], "linger.ms": [0, -1]})
    with pytest.raises(ConfigError, match="linger.ms=-1"):
        run_sweep(spec, bootstrap="127.0.0.1:1", out=tmp_path, progress=False)
    assert not (tmp_path / "sweeps").exists()


def test_sweep_spec_or_workload_given_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sweep spec .* is a folder"):
        SweepSpec.from_yaml(tmp_path)
    (tmp_path / "w").mkdir()
    (tmp_path / "s.yaml").write_text("name: s\nworkload: w\ngrid: {}\n")
    with pytest.raises(ConfigError, match="workload .*w' is a folder"):
        SweepSpec.from_yaml(tmp_path / "s.yaml")


def test_a_damaged_saved_run_is_skipped_and_rerun(tmp_path, caplog):
    spec = _spec(name="damaged", repetitions=1)
    folder = sweep_dir(spec, tmp_path)
    (folder / "20260101-000000-damaged-x-r0").mkdir(parents=True)
    (folder / "20260101-000000-damaged-x-r0" / "result.json").write_text("{")
    with caplog.at_level("WARNING", logger="kafkabench.results.store"):
        assert load_sweep(spec, tmp_path).empty
    assert "skipped run folder" in caplog.text and "20260101-000000-damaged-x-r0" in caplog.text


def test_from_yaml_resolves_paths_and_rejects_unknown_keys(tmp_path):
    (tmp_path / "w.yaml").write_text("name: w\npartitions: 3\nduration_s: 1\n")
    (tmp_path / "p.yaml").write_text("name: p\nproducer: {acks: all}\n")
    (tmp_path / "s.yaml").write_text("name: s\nworkload: w.yaml\nprofile: p.yaml\n"
                                     "grid: {compression.type: [none, lz4], acks: [1, all]}\n"
                                     "repetitions: 3\nrun: {mode: thread}\n")
    spec = SweepSpec.from_yaml(tmp_path / "s.yaml")
    assert spec.workload.partitions == 3 and spec.profile.producer["acks"] == "all"
    assert spec.params == ["producer.compression.type", "producer.acks"] and spec.runs == 12
    assert spec.run_options == {"mode": "thread"}
    (tmp_path / "bad.yaml").write_text("name: s\nworkload: w.yaml\ngrid: {}\nrepeat: 3\n")
    with pytest.raises(ConfigError, match="unknown sweep keys.*repeat"):
        SweepSpec.from_yaml(tmp_path / "bad.yaml")


def test_point_ids_change_with_the_base_setup():
    a = load_ids(_spec())
    assert len(set(a)) == 2 and a == load_ids(_spec(name="other"))
    longer = load_ids(_spec(workload={**TINY, "message_count": 300}))
    assert not set(a) & set(longer)


def load_ids(spec: SweepSpec) -> list[str]:
    from kafkabench.experiments.sweep import _plan

    return [p.id for p in _plan(spec)]


def test_sweep_runs_saves_and_resumes(bootstrap, tmp_path, monkeypatch):
    spec = _spec()
    table = run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    assert len(table) == 4
    assert list(table["repetition"]) == [0, 1, 0, 1]
    assert list(table["producer.linger.ms"]) == [0, 0, 5, 5]
    assert table["point"].nunique() == 2 and set(table["sweep"]) == {"tiny"}
    assert (table["delivered"] == 200).all()
    assert len(list(sweep_dir(spec, tmp_path).iterdir())) == 4
    # A sweep's runs keep the contract, with the keys the sweep adds.
    for run in load_many(sweep_dir(spec, tmp_path)):
        assert check_summary(run.summary, ("run", "sweep")) == []

    # A rerun runs nothing and rebuilds the same table from the saved runs.
    monkeypatch.setattr(kafkabench.runner, "run_workload", lambda *a, **k: pytest.fail("ran again"))
    again = run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again, table)
    pd.testing.assert_frame_equal(load_sweep(spec, tmp_path), table)

    summary = summarize(table, spec)
    assert list(summary["producer.linger.ms"]) == [0, 5]
    assert list(summary["runs"]) == [2, 2]
    rate = table.groupby("point", sort=False)["publish_rate"]
    assert list(summary["publish_rate_median"]) == pytest.approx(list(rate.median()))
    assert list(summary["publish_rate_max"]) == pytest.approx(list(rate.max()))
    assert {"e2e_latency_ms_p99_min", "publish_mb_s_median"} <= set(summary.columns)


def test_interrupted_sweep_keeps_done_runs_and_resumes(bootstrap, tmp_path, monkeypatch, capsys):
    spec = _spec(name="interrupted", repetitions=1)
    real, calls = kafkabench.runner.run_workload, []

    def second_call_interrupts(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kafkabench.runner, "run_workload", second_call_interrupts)
    partial = run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    assert list(partial["producer.linger.ms"]) == [0]
    assert partial.attrs["interrupted"] is True  # the CLI exits 130 on it
    said = capsys.readouterr().err
    assert f"1 of 2 points complete, 1 of 2 runs saved in {sweep_dir(spec, tmp_path)}" in said
    monkeypatch.setattr(kafkabench.runner, "run_workload", real)
    done = run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    assert list(done["producer.linger.ms"]) == [0, 5]
    assert done.attrs["interrupted"] is False
    assert done["run_id"].iloc[0] == partial["run_id"].iloc[0]


def test_warmup_run_comes_first_and_is_not_saved(bootstrap, tmp_path, monkeypatch):
    spec = _spec(name="warm", repetitions=1, warmup_run_s=1)
    real, runs = kafkabench.runner.run_workload, []

    def recording(workload, *args, **kwargs):
        result = real(workload, *args, **kwargs)
        runs.append((workload.name, workload.message_count, result.summary["delivered"]))
        return result

    monkeypatch.setattr(kafkabench.runner, "run_workload", recording)
    table = run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    # One timed warm-up run (no message cap), then the two points; only the points are saved.
    assert [name for name, _, _ in runs] == ["warm-warmup", "warm", "warm"]
    assert runs[0][1] is None and runs[0][2] > 0
    assert len(table) == 2 and len(list(sweep_dir(spec, tmp_path).iterdir())) == 2
    # Nothing left to run: no warm-up either.
    runs.clear()
    run_sweep(spec, bootstrap=bootstrap, out=tmp_path, progress=False)
    assert runs == []


@pytest.mark.parametrize("value", [-1, "soon", True, float("inf")])
def test_bad_warmup_run_is_a_config_error(value):
    with pytest.raises(ConfigError, match="warmup_run_s="):
        _spec(warmup_run_s=value)


def test_summarize_without_point_column_groups_by_params():
    df = pd.DataFrame({"producer.acks": ["1", "1", "all"], "publish_rate": [10.0, 30.0, 5.0]})
    summary = summarize(df, ["producer.acks"], metrics=["publish_rate", "e2e_latency_ms_p99"])
    assert list(summary["producer.acks"]) == ["1", "all"]
    assert list(summary["publish_rate_median"]) == [20.0, 5.0]
    assert summary["e2e_latency_ms_p99_median"].isna().all()
    assert summarize(df.iloc[:0], ["producer.acks"]).empty


@pytest.mark.parametrize("workload", ["workloads/quickstart.yaml", "quickstart.yaml", "quickstart"])
def test_a_sweep_file_anywhere_names_a_packaged_workload(workload, tmp_path, monkeypatch):
    from kafkabench.spec.profile import WORKLOADS_DIR
    from kafkabench.spec.workload import load_workload

    sweeps, elsewhere = tmp_path / "sweeps", tmp_path / "elsewhere"
    sweeps.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (sweeps / "s.yaml").write_text(f"name: s\nworkload: {workload}\ngrid: {{linger.ms: [0, 5]}}\n")
    spec = SweepSpec.from_yaml(sweeps / "s.yaml")
    assert spec.workload == load_workload(WORKLOADS_DIR / "quickstart.yaml")
    # A file of that name beside the sweep file still wins.
    (sweeps / "quickstart.yaml").write_text("name: mine\nduration_s: 1\n")
    if workload == "quickstart.yaml":
        assert SweepSpec.from_yaml(sweeps / "s.yaml").workload.name == "mine"
