"""Sweeps: a grid over workload fields and librdkafka settings, with repetitions, resumable.

A sweep runs `run_workload` once per (point, repetition) of the grid's Cartesian product and
saves every run as it completes in `<out>/sweeps/<name>/`, tagged with the sweep's name, the
point's id and the repetition. The sweep's table is always rebuilt from those saved runs, so a
rerun skips what is there, and Ctrl-C loses at most the run in progress.

Grid parameters:

| parameter | meaning |
| --- | --- |
| `message_size`, `partitions`, ... or `workload.<field>` | a `Workload` field |
| `producer.<key>`, `consumer.<key>`, `common.<key>` | a librdkafka setting of that section |
| `linger.ms`, `acks`, ... (any other name) | a librdkafka producer setting |
| `run.<option>` | a `run_workload` option: `partitioner`, `commit`, `mode` |
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from kafkabench.analysis.sweeps import DEFAULT_METRICS, _json_value, summarize
from kafkabench.cluster.local import resolve_bootstrap
from kafkabench.core.checks import (
    Check,
    check_fields,
    integer,
    known_keys,
    mapping,
    number,
    parsed_by,
    refuse,
    safe_name,
)
from kafkabench.core.contract import summary_names
from kafkabench.core.errors import ConfigError
from kafkabench.engine.consumer import check_commit_mode
from kafkabench.engine.workers import check_mode
from kafkabench.results.store import RESULT_FILE, load_results, save
from kafkabench.run.result import make_run_id
from kafkabench.spec.profile import PRESETS, ClientProfile, FrozenDict, load_profile, read_yaml
from kafkabench.spec.workload import Workload, load_workload

__all__ = ["SweepSpec", "points", "point_id", "run_sweep", "load_sweep", "summarize",
           "sweep_dir", "DEFAULT_METRICS", "RUN_OPTIONS"]

#: `run_workload` options a sweep may set (in `run_options`) or vary (as `run.<option>`).
RUN_OPTIONS = ("partitioner", "commit", "mode", "record_latency", "lag_interval_s")
_SECTIONS = ("producer", "consumer", "common")
# The sweep names its runs; varying the name would only hide what was varied.
_WORKLOAD_FIELDS = tuple(f.name for f in fields(Workload) if f.name != "name")
_SPEC_KEYS = {"name", "description", "workload", "profile", "grid", "repetitions", "run",
              "warmup_run_s"}


def _canonical(param: Any) -> str:
    """The column name of a grid parameter: `workload.<field>`, `<section>.<key>` or `run.<option>`."""
    if not isinstance(param, str) or not param:
        raise ConfigError(f"grid parameter {param!r}: expected a non-empty string")
    head, dot, rest = param.partition(".")
    if head == "workload" and dot:
        if rest not in _WORKLOAD_FIELDS:
            raise ConfigError(f"grid parameter {param!r}: {rest!r} is not a Workload field; "
                              f"expected one of {', '.join(_WORKLOAD_FIELDS)}")
        return param
    if head == "run" and dot:
        if rest not in RUN_OPTIONS:
            raise ConfigError(f"grid parameter {param!r}: expected run.<option> with one of "
                              f"{', '.join(RUN_OPTIONS)}")
        return param
    if head in _SECTIONS and dot and rest:
        return param
    if param in _WORKLOAD_FIELDS:
        return f"workload.{param}"
    if param == "name":
        raise ConfigError("grid parameter 'name': the sweep names its runs; vary something else")
    return f"producer.{param}"


def _grid(label: str, grid: Any) -> FrozenDict:
    """The grid with canonical parameter names (`_canonical`), each with a list of distinct values."""
    if not isinstance(grid, Mapping):
        refuse(label, grid, "expected a mapping of parameter -> list of values")
    checked: dict[str, tuple] = {}
    for param, values in grid.items():
        column = _canonical(param)
        if column in checked:
            raise ConfigError(f"{label} parameter {param!r} is given twice (as {column!r})")
        checked[column] = _values(f"{label} parameter {param!r}", values)
    return FrozenDict(checked)


def _values(where: str, values: Any) -> tuple:
    """One grid parameter's values: a non-empty list, no value twice."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise ConfigError(f"{where}: expected a list of values, got {values!r}")
    if not values:
        raise ConfigError(f"{where} has no values")
    keys = [json.dumps(_json_value(v), sort_keys=True) for v in values]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where} repeats a value in {list(values)!r}")
    return tuple(values)


def _run_options(label: str, options: Any) -> FrozenDict:
    """`run_workload` options, by name (`RUN_OPTIONS`); their values are checked per point."""
    options = mapping(label, options)
    known_keys(label, options, RUN_OPTIONS)
    return FrozenDict(options)


#: Each field's check, in the order they run (`core.checks`).
_FIELDS: dict[str, Check] = {
    "workload": parsed_by(load_workload),
    "profile": parsed_by(load_profile),
    "grid": _grid,
    "repetitions": integer(1),
    "run_options": _run_options,
    "warmup_run_s": number(0, finite=True, noun="seconds"),
}


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A grid of runs: the base load and tuning, what to vary, and how often to repeat.

    Args:
        name: Names the results folder `<out>/sweeps/<name>/` and every run; letters,
            digits, '.', '_' and '-'.
        workload: The base load (a `Workload`, or anything `load_workload` takes).
        profile: The base client tuning (a `ClientProfile`, or anything `load_profile` takes).
        grid: Parameter -> list of values (see the module docstring for parameter names).
            Names are stored canonically (`linger.ms` becomes `producer.linger.ms`).
        repetitions: Runs per point.
        run_options: `run_workload` options for every run (`RUN_OPTIONS`), e.g. `{"mode": "thread"}`.
        warmup_run_s: Seconds of an unrecorded run of the first point to run before the sweep's
            first run, when there is one to do (0: none). A just-started broker warms up (JIT,
            page cache) in it instead of in the first point's tail latencies.
    """

    name: str
    workload: Workload
    profile: ClientProfile
    grid: Mapping[str, tuple] = field(default_factory=FrozenDict)
    repetitions: int = 1
    run_options: Mapping[str, Any] = field(default_factory=FrozenDict)
    warmup_run_s: float = 0.0

    def __post_init__(self) -> None:
        safe_name("sweep name", self.name)
        check_fields(self, _FIELDS, f"sweep {self.name!r}: ", labels={"run_options": "run"})

    @property
    def params(self) -> list[str]:
        """The swept parameters' column names, in grid order."""
        return list(self.grid)

    @property
    def runs(self) -> int:
        """Runs in the whole sweep: points x repetitions."""
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n * self.repetitions

    def validate(self) -> SweepSpec:
        """Build every point's workload, profile and run options, as a run would.

        Returns:
            The spec itself.

        Raises:
            ConfigError: A point librdkafka or `Workload` rejects, naming the parameter and value.
        """
        _plan(self)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> SweepSpec:
        """Build and validate a sweep from its YAML form.

        Args:
            data: `name`, `workload` (a YAML path or a mapping), `profile` (a preset, a YAML
                path or a mapping; default the default preset), `grid` (parameter -> list),
                `repetitions` (default 1), `run` (run options, optional), `description`.
            base_dir: Folder that relative workload and profile paths are resolved against;
                one not found there is looked up as `load_workload` / `load_profile` do
                (the current folder, then kafkabench's packaged files).

        Returns:
            The spec, with every point checked (`validate`).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a sweep spec must be a mapping, got {data!r}")
        unknown = sorted(set(data) - _SPEC_KEYS)
        if unknown:
            raise ConfigError(f"unknown sweep keys {unknown}; expected some of {sorted(_SPEC_KEYS)}")
        for key in ("name", "workload", "grid"):
            if key not in data:
                raise ConfigError(f"sweep spec has no {key!r}")
        base = Path(base_dir or ".")
        workload, profile = data["workload"], data.get("profile")
        # A path relative to the sweep file when there is one; else as given, so that
        # `workload: quickstart` finds the packaged file (`config.resolve_yaml`).
        if isinstance(workload, str) and (base / workload).exists():
            workload = base / workload
        if isinstance(profile, str) and profile not in PRESETS and (base / profile).exists():
            profile = base / profile
        return cls(name=data["name"], workload=workload, profile=profile, grid=data["grid"] or {},
                   repetitions=data.get("repetitions", 1), run_options=data.get("run") or {},
                   warmup_run_s=data.get("warmup_run_s", 0.0)).validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> SweepSpec:
        """Load a sweep YAML; relative workload and profile paths resolve against its folder.

        Example:
            name: compression
            workload: quickstart.yaml
            profile: throughput
            grid: {producer.compression.type: [none, lz4, zstd], linger.ms: [0, 5, 50]}
            repetitions: 3
        """
        return cls.from_dict(read_yaml(path, "sweep spec"), base_dir=Path(path).parent)


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The grid's Cartesian product, in grid order (the last parameter varies fastest).

    Returns:
        One dict per point: column name -> value. An empty grid is one point, `{}`.
    """
    return [dict(zip(spec.grid, combo)) for combo in itertools.product(*spec.grid.values())]


@dataclass(frozen=True, slots=True)
class _Point:
    """One point, ready to run."""

    index: int
    id: str
    params: dict[str, Any]
    workload: Workload
    profile: ClientProfile
    options: dict[str, Any]


def _apply(spec: SweepSpec, params: Mapping[str, Any],
           cache: dict[str, ClientProfile]) -> tuple[Workload, ClientProfile, dict[str, Any]]:
    """The workload, profile and run options of one point; ConfigError names the bad value."""
    changes = {k.partition(".")[2]: v for k, v in params.items() if k.startswith("workload.")}
    where = f"sweep {spec.name!r}, point {params!r}"
    try:
        workload = replace(spec.workload, name=spec.name, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    profile = _point_profile(spec, params, cache, where)
    options = {**spec.run_options,
               **{k.partition(".")[2]: v for k, v in params.items() if k.startswith("run.")}}
    _check_options(where, options, workload)
    return workload, profile, options


def _point_profile(spec: SweepSpec, params: Mapping[str, Any], cache: dict[str, ClientProfile],
                   where: str) -> ClientProfile:
    """The base profile with the point's client settings laid over it, built once per setting."""
    client = {k: v for k, v in params.items() if k.partition(".")[0] in _SECTIONS}
    layers: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    for column, value in client.items():
        section, _, key = column.partition(".")
        layers[section][key] = value
    key = json.dumps(layers, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = spec.profile.with_settings(**layers)
        except ConfigError as exc:
            bare = sorted(c.partition(".")[2] for c in client
                          if c.startswith("producer.") and "." not in c.partition(".")[2])
            hint = (f" (a grid parameter such as {bare[0]!r} without a section is a librdkafka "
                    f"producer setting unless it is a Workload field: {', '.join(_WORKLOAD_FIELDS)})"
                    if bare else "")
            raise ConfigError(f"{where}: {exc}{hint}") from None
    return cache[key]


def _check_options(where: str, options: Mapping[str, Any], workload: Workload) -> None:
    if "partitioner" in options and options["partitioner"] is not None:
        from kafkabench.spec.partitioning import get_strategy

        try:
            get_strategy(options["partitioner"], workload.partitions)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if "commit" in options:
        check_commit_mode(options["commit"], f"{where}: commit")
    if "mode" in options:
        try:
            check_mode(options["mode"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def point_id(workload: Workload, profile: ClientProfile, options: Mapping[str, Any] | None = None) -> str:
    """A stable 10-hex-digit id of what a run does: its workload, client settings and run options.

    Names are left out, so the same load under another sweep or profile name has the same id;
    any other change (a longer duration, a different base profile) gives a new id, so a
    resumed sweep never mixes runs of different setups.
    """
    doc = {"workload": {k: v for k, v in workload.to_dict().items() if k != "name"},
           "profile": {k: v for k, v in profile.to_dict().items() if k != "name"},
           "run": {k: str(v) for k, v in (options or {}).items()}}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _plan(spec: SweepSpec) -> list[_Point]:
    cache: dict[str, ClientProfile] = {}
    plan = []
    for i, params in enumerate(points(spec)):
        workload, profile, options = _apply(spec, params, cache)
        plan.append(_Point(i, point_id(workload, profile, options), params, workload, profile, options))
    ids = [p.id for p in plan]
    if len(set(ids)) != len(ids):
        # e.g. linger.ms and queue.buffering.max.ms in one grid: two names of one setting.
        raise ConfigError(f"sweep {spec.name!r}: two grid points describe the same run; "
                          "does the grid name one setting twice?")
    return plan


def sweep_dir(spec: SweepSpec | str, out: str | Path = "results") -> Path:
    """The folder a sweep's runs are saved in: `<out>/sweeps/<name>/`."""
    return Path(out) / "sweeps" / (spec.name if isinstance(spec, SweepSpec) else spec)


def run_sweep(spec: SweepSpec, *, bootstrap: str | None = None, out: str | Path = "results",
              progress: bool = True) -> pd.DataFrame:
    """Run every (point, repetition) of a sweep not saved yet, then return the whole table.

    Every point is validated before the first run. Each run is saved as soon as it completes;
    Ctrl-C stops the sweep between or during runs (the run in progress is dropped) and returns
    the table of the runs saved so far: run the sweep again to resume.

    Args:
        spec: The sweep.
        bootstrap: Bootstrap servers (default: KAFKABENCH_BOOTSTRAP or the embedded cluster).
        out: Results folder; the sweep's runs go to `<out>/sweeps/<name>/`.
        progress: Show a progress bar over the sweep's runs (and each run's own bar).

    Returns:
        One row per run of this spec (see `load_sweep`), in point then repetition order;
        `table.attrs["interrupted"]` is True when Ctrl-C stopped the sweep.

    Raises:
        ConfigError: A bad point (before anything runs).
        ClusterError: The cluster cannot be reached.
    """
    plan = _plan(spec)
    bootstrap = resolve_bootstrap(bootstrap)
    folder = sweep_dir(spec, out)
    done = set(_saved(folder, spec).set_index(["point", "repetition"]).index) if folder.is_dir() else set()
    todo = [(p, r) for p in plan for r in range(spec.repetitions) if (p.id, r) not in done]
    bar = _bar(spec, len(done), progress)
    interrupted = False
    try:
        if todo and spec.warmup_run_s > 0:
            _warm_up(spec, todo[0][0], bootstrap, progress)
        for p, rep in todo:
            bar.set_postfix_str(", ".join(f"{k.partition('.')[2]}={v}" for k, v in p.params.items()))
            from kafkabench.runner import run_workload  # runner imports the worker machinery

            result = run_workload(p.workload, p.profile, bootstrap=bootstrap, progress=progress,
                                  run_id=make_run_id(f"{spec.name}-{p.id}-r{rep}"), **p.options)
            if result.summary.get("interrupted"):
                interrupted = True  # run_workload caught Ctrl-C itself: drop the partial run
                break
            result.summary.update(sweep=spec.name, point=p.id, point_index=p.index, repetition=rep,
                                  sweep_params=_json_value(p.params))
            save(result, folder)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    table = _table(spec, folder, plan)
    table.attrs["interrupted"] = interrupted
    if interrupted:
        complete = int((table.groupby("point").size() == spec.repetitions).sum()) if len(table) else 0
        print(f"kafkabench: sweep {spec.name!r} interrupted: {complete} of {len(plan)} points "
              f"complete, {len(table)} of {spec.runs} runs saved in {folder}; run the sweep again "
              "to resume", file=sys.stderr)
    return table


def _warm_up(spec: SweepSpec, p: Any, bootstrap: str, progress: bool) -> None:
    """An unrecorded run of point `p` for `spec.warmup_run_s` seconds; nothing is saved."""
    from kafkabench.runner import run_workload

    workload = replace(p.workload, name=f"{spec.name}-warmup", duration_s=spec.warmup_run_s,
                       warmup_s=0.0, message_count=None)
    result = run_workload(workload, p.profile, bootstrap=bootstrap, progress=progress,
                          run_id=make_run_id(f"{spec.name}-warmup"), **p.options)
    if result.summary.get("interrupted"):
        raise KeyboardInterrupt


def _bar(spec: SweepSpec, done: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=spec.runs, initial=done, desc=f"sweep {spec.name}", unit="run",
                disable=not enabled)


def _saved(folder: Path, spec: SweepSpec) -> pd.DataFrame:
    """Saved, complete runs of this sweep's name in `folder` (any point)."""
    columns = list(summary_names("point", "repetition"))
    if not folder.is_dir() or not any((d / RESULT_FILE).is_file() for d in folder.iterdir()):
        return pd.DataFrame(columns=columns)
    frame = load_results(folder)
    if not set(columns) <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    keep = frame["sweep"].eq(spec.name) & frame["point"].notna()
    if "interrupted" in frame:
        keep &= frame["interrupted"].ne(True)
    frame = frame[keep]
    return frame.astype({"repetition": "int64"}).drop_duplicates(columns, keep="first")


def _table(spec: SweepSpec, folder: Path, plan: list[_Point]) -> pd.DataFrame:
    frame = _saved(folder, spec)
    by_id = {p.id: p for p in plan}
    frame = frame[frame["point"].isin(list(by_id)) & (frame["repetition"] < spec.repetitions)]
    frame = frame.assign(point_index=[by_id[i].index for i in frame["point"]])
    frame = frame.sort_values(["point_index", "repetition"], kind="stable").reset_index(drop=True)
    for column in spec.grid:
        values = [by_id[i].params[column] for i in frame["point"]]
        frame[column] = pd.Series([json.dumps(v) if isinstance(v, (Mapping, list, tuple)) else v
                                   for v in values], index=frame.index, dtype=object)
    return frame


def load_sweep(spec: SweepSpec, out: str | Path = "results") -> pd.DataFrame:
    """A sweep's table from its saved runs, without running anything.

    Returns:
        One row per saved run of this spec: the `load_results` columns (summary and `path`)
        plus `sweep`, `point` (`point_id`), `point_index`, `repetition` and one column per
        grid parameter, holding the value as given in the grid (mappings as JSON text).
    """
    return _table(spec, sweep_dir(spec, out), _plan(spec))


