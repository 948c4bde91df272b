"""One run's result: `RunResult`, saved as a folder of JSON + parquet, loaded and compared.

A saved run is `<out_dir>/<run_id>/` with `result.json` (schema_version, summary, config,
HdrHistogram-encoded histograms, kafkabench version) and one parquet file per DataFrame.
`load_results` reads only the JSON files, so listing hundreds of runs stays fast. Readers of
many runs (`load_results`, `list_results`, `load_many`, `compare`) skip a damaged run folder
with a logged warning naming it, so one bad file never hides the good runs; `load` of a single
damaged run raises `KafkabenchError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow import ArrowException

from kafkabench import __version__
from kafkabench.core.contract import FRAMES, summary_names
from kafkabench.core.errors import KafkabenchError
from kafkabench.measure.hdrlog import INTERVAL_DIR, write_interval_logs
from kafkabench.measure.stats import LatencyRecorder
from kafkabench.results.recover import WORKERS_EXIT_TIMEOUT_S, rebuild
from kafkabench.run.journal import has_journal
from kafkabench.run.result import (
    RunResult,
    _empty,
    empty_lag,
    empty_librdkafka,
    empty_rebalances,
    empty_timeseries,
    make_run_id,
)

log = logging.getLogger(__name__)

#: Version of the result.json layout; bump it and add a step to `_MIGRATIONS` on every change.
SCHEMA_VERSION = 1

RESULT_FILE = "result.json"


#: {RunResult attribute: parquet file}: one per frame of the contract.
_FRAME_FILES = {kind: f"{kind}.parquet" for kind in FRAMES}
# Frames only some runs have (faults, verification): saved when they have rows.
_OPTIONAL_FRAMES = ("faults", "cluster_state", "verify", "recovery", "processing", "dead_letters",
                    "membership", "broker_metrics")

#: Summary figures `list_results` shows and `compare` compares by default.
HEADLINE = list(summary_names(
    "publish_rate", "publish_mb_s", "consume_rate", "publish_latency_ms_p50", "publish_latency_ms_p99",
    "publish_latency_ms_p99_9", "e2e_latency_ms_p50", "e2e_latency_ms_p99", "publish_delay_us_p99",
    "lag_max_msgs", "lag_max_s"))


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars, timestamps and paths found in summaries and configs."""
    if hasattr(value, "item") and callable(value.item):  # numpy and pandas scalars
        return value.item()
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if value is pd.NA:
        return None
    raise TypeError(f"cannot save {type(value).__name__} value {value!r} in result.json")


def save(result: RunResult, out_dir: str | os.PathLike = "results", *,
         overwrite: bool = False) -> Path:
    """Write a run to `<out_dir>/<run_id>/`, atomically.

    Everything is written to a hidden temporary folder next to the target and renamed into
    place, so an interrupted save leaves no partial result folder.

    Args:
        result: the run; `summary["run_id"]` is set from its name and started_at when missing.
        out_dir: parent folder, created if needed.
        overwrite: replace an existing folder of the same run_id.

    Returns:
        The run folder.

    Raises:
        KafkabenchError: the folder exists and `overwrite` is False.
    """
    if not result.summary.get("run_id"):
        started = result.summary.get("started_at")
        started = pd.Timestamp(started).to_pydatetime() if started else None
        result.summary["run_id"] = make_run_id(str(result.summary.get("name") or "run"), started)
    run_id = result.summary["run_id"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / run_id
    if final.exists() and not overwrite:
        raise KafkabenchError(f"result folder {str(final)!r} exists already")
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".tmp", dir=out_dir))
    try:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kafkabench_version": __version__,
            "run_id": run_id,
            "saved_at": datetime.now(UTC).isoformat(),
            "summary": result.summary,
            "config": result.config,
            "histograms": {name: rec.encode() for name, rec in result.histograms.items()},
        }
        with open(tmp / RESULT_FILE, "w", encoding="utf-8") as f:
            # NaN (a figure not measured) is written as JSON NaN, which Python and pandas read.
            json.dump(doc, f, indent=1, default=_json_default)
        for attr, filename in _FRAME_FILES.items():
            frame = getattr(result, attr)
            if attr in _OPTIONAL_FRAMES and frame.empty:
                continue  # a run without faults or verification has no file for them
            frame.to_parquet(tmp / filename, engine="pyarrow")
        _write_intervals(result, tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_intervals(result: RunResult, folder: Path) -> None:
    """The per-second histograms as interval logs, timed by the timeseries' `time` column."""
    ts = result.timeseries
    if not result.intervals or not len(ts) or "time" not in ts:
        return
    t0_wall = ts["time"].iloc[0].timestamp() - float(ts.index[0])
    write_interval_logs(folder / INTERVAL_DIR, result.intervals, t0_wall)


def _migrate(doc: dict[str, Any], source: str = "result.json") -> dict[str, Any]:
    """Bring a result document up to SCHEMA_VERSION, one step at a time.

    Raises:
        KafkabenchError: not a kafkabench result, or written by a newer kafkabench.
    """
    version = doc.get("schema_version")
    if not isinstance(version, int):
        raise KafkabenchError(f"{source} is not a kafkabench result (no schema_version)")
    if version > SCHEMA_VERSION:
        raise KafkabenchError(
            f"{source} has schema_version {version}, newer than this kafkabench "
            f"{__version__} reads ({SCHEMA_VERSION}); upgrade kafkabench to load it")
    while version < SCHEMA_VERSION:
        doc = _MIGRATIONS[version](doc)
        version = doc["schema_version"]
    return doc


#: {from_version: function(doc) -> doc at from_version + 1}.
_MIGRATIONS: dict[int, Any] = {}


def _result_json(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.is_file() else path / RESULT_FILE


def _read_doc(path: str | os.PathLike) -> dict[str, Any]:
    """The migrated result.json of a run; KafkabenchError says what is wrong with it."""
    file = _result_json(path)
    try:
        with open(file, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise KafkabenchError(f"no kafkabench result at {str(path)!r} (missing {RESULT_FILE})") from None
    except OSError as exc:
        raise KafkabenchError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:  # bad JSON, or bytes that are not UTF-8
        raise KafkabenchError(f"{str(file)!r} is damaged: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise KafkabenchError(f"{str(file)!r} is not a kafkabench result "
                              f"(a JSON {type(doc).__name__}, not an object)")
    doc = _migrate(doc, repr(str(file)))
    if not isinstance(doc.get("summary"), dict):
        raise KafkabenchError(f"{str(file)!r} is damaged: it has no summary")
    if not isinstance(doc.get("histograms", {}), dict):
        raise KafkabenchError(f"{str(file)!r} is damaged: histograms is not an object")
    return doc


def _read_frame(file: Path) -> pd.DataFrame | None:
    """A saved DataFrame, None when the file is absent (older or partial saves)."""
    if not file.exists():
        return None
    try:
        return pd.read_parquet(file, engine="pyarrow")
    except (OSError, ValueError, ArrowException) as exc:
        raise KafkabenchError(f"{str(file)!r} is damaged: not a readable parquet file ({exc})") from None


def load(path: str | os.PathLike) -> RunResult:
    """Read a run saved by `save`.

    Args:
        path: the run folder or its result.json.

    Raises:
        KafkabenchError: no result there, a newer schema_version, or a damaged file
            (result.json, a parquet file or an encoded histogram), named in the message.
    """
    _recover_if_needed(path)
    doc = _read_doc(path)
    folder = _result_json(path).parent
    frames = {attr: _read_frame(folder / filename) for attr, filename in _FRAME_FILES.items()}
    defaults = {"timeseries": empty_timeseries, "lag": empty_lag,
                "rebalances": empty_rebalances, "librdkafka": empty_librdkafka,
                **{kind: _empty(kind) for kind in _OPTIONAL_FRAMES}}
    histograms = {}
    for name, encoded in doc.get("histograms", {}).items():
        try:
            histograms[name] = LatencyRecorder.decode(encoded)
        except Exception as exc:  # noqa: BLE001 - hdrh and zlib raise their own types
            raise KafkabenchError(f"{str(folder / RESULT_FILE)!r} is damaged: histogram {name!r} "
                                  f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    return RunResult(
        summary=doc["summary"],
        config=doc.get("config", {}),
        histograms=histograms,
        **{attr: frame if frame is not None else defaults[attr]() for attr, frame in frames.items()},
    )


def recover(run_folder: str | os.PathLike, *, wait_s: float = WORKERS_EXIT_TIMEOUT_S) -> Path:
    """Build and save the partial result of a run whose main process died (`load` and the
    readers of many runs do it by themselves for a folder with a journal and no result).

    Args:
        run_folder: the run's folder, holding its journal.
        wait_s: how long to wait for the run's orphaned workers to send their final reports
            and exit (they notice within a second that their parent died).

    Returns:
        The run folder, now holding the result; the journal is gone.

    Raises:
        KafkabenchError: no journal there, or the run's main process still runs (the run is
            in progress, not dead).
    """
    result = rebuild(run_folder, wait_s=wait_s)
    return save(result, Path(run_folder).parent, overwrite=True)


def _recover_if_needed(path: str | os.PathLike) -> None:
    """A run folder with a journal and no result (its process died): build the partial result
    (`recover`) so that it loads like any other."""
    path = Path(path)
    if path.is_dir() and not (path / RESULT_FILE).exists() and has_journal(path):
        log.warning("run folder %s has no result but a journal: its process died; "
                    "recovering the partial result", path)
        recover(path)


def _run_folders(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Run folders: a run folder as is, a folder of runs expanded, in run_id order."""
    if isinstance(paths_or_dir, (str, os.PathLike)):
        paths_or_dir = [paths_or_dir]
    out = []
    for p in map(Path, paths_or_dir):
        _recover_if_needed(p)
        if _result_json(p).is_file():
            out.append(_result_json(p).parent)
        elif p.is_dir():
            for d in sorted(p.iterdir()):
                if d.is_dir() and not d.name.startswith("."):
                    try:
                        _recover_if_needed(d)
                    except KafkabenchError as exc:  # a run in progress, a damaged journal
                        _skip(d, exc)
            out.extend(sorted(d for d in p.iterdir()
                              if not d.name.startswith(".") and (d / RESULT_FILE).is_file()))
        else:
            raise KafkabenchError(f"no kafkabench result at {str(p)!r}")
    return out


def _skip(folder: Path, exc: KafkabenchError) -> None:
    log.warning("skipped run folder %s: %s", folder, exc)


def _summaries(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]
               ) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, summary) of every readable run; damaged ones are skipped with a warning."""
    out = []
    for folder in _run_folders(paths_or_dir):
        try:
            out.append((folder, _read_doc(folder)["summary"]))
        except KafkabenchError as exc:
            _skip(folder, exc)
    return out


def load_results(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike] = "results") -> pd.DataFrame:
    """Summaries of many runs, one row each (only the result.json files are read).

    A run whose result.json is damaged (not JSON, `{}`, a newer schema_version) is left out
    with a logged warning naming its folder.

    Args:
        paths_or_dir: a folder of runs, a run folder, or a list of either.

    Returns:
        DataFrame of the summaries plus a `path` column, in run_id order; keys a run lacks are
        NaN. With no readable run, an empty frame with only the `path` column.

    Raises:
        KafkabenchError: a path given is neither a run folder nor a folder.
    """
    rows = [{**summary, "path": str(folder)} for folder, summary in _summaries(paths_or_dir)]
    if not rows:
        return pd.DataFrame(columns=["path"])
    frame = pd.DataFrame(rows)
    if "run_id" in frame:
        frame = frame.sort_values("run_id", kind="stable").reset_index(drop=True)
    return frame


def load_many(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike] = "results"
              ) -> list[RunResult]:
    """Every readable run of folders of runs and run folders, in run_id order.

    A damaged run (its result.json, a parquet file or a histogram) is left out with a logged
    warning naming its folder, so one bad file does not stop a report of the others.

    Args:
        paths_or_dir: a folder of runs, a run folder, or a list of either.

    Raises:
        KafkabenchError: a path given is neither a run folder nor a folder.
    """
    runs = []
    for folder in load_results(paths_or_dir)["path"]:
        try:
            runs.append(load(folder))
        except KafkabenchError as exc:
            _skip(Path(folder), exc)
    return runs


def find_run(run: str | os.PathLike, out_dir: str | os.PathLike = "results") -> Path:
    """The folder of a run given as a path, a run id or the start of a run id.

    Args:
        run: an existing path (returned as is), or a run id looked up in `out_dir` and in
            its sweeps (`out_dir/sweeps/<name>/`); a prefix of one run id is enough.
        out_dir: the results folder run ids are looked up in.

    Raises:
        KafkabenchError: no such path or run, or a prefix matching several runs.
    """
    path = Path(run)
    if path.exists():
        return path
    out_dir = Path(out_dir)
    parents = [out_dir, *sorted(d for d in (out_dir / "sweeps").glob("*") if d.is_dir())]
    folders = [d for parent in parents if parent.is_dir() for d in sorted(parent.iterdir())
               if d.is_dir() and not d.name.startswith(".")]
    for match in ([d for d in folders if d.name == str(run)],
                  [d for d in folders if d.name.startswith(str(run))]):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            shown = ", ".join(d.name for d in match[:5]) + (", ..." if len(match) > 5 else "")
            raise KafkabenchError(f"run {str(run)!r} matches {len(match)} runs in "
                                  f"{str(out_dir)!r} ({shown}); give more of the run id")
    raise KafkabenchError(f"no run {str(run)!r}: no such folder, and no run id starting so in "
                          f"{str(out_dir)!r}; `kafkabench results list {out_dir}` shows the run "
                          "ids (pass --dir for another results folder)")


def list_results(out_dir: str | os.PathLike = "results") -> pd.DataFrame:
    """Saved runs with their headline figures (damaged runs are skipped with a warning).

    Returns:
        DataFrame with columns run_id, name, started_at, duration_s, the `HEADLINE` figures and
        path; empty (same columns) when `out_dir` holds no runs or does not exist.
    """
    columns = ["run_id", "name", "started_at", "duration_s", *HEADLINE, "path"]
    if not Path(out_dir).is_dir():
        return pd.DataFrame(columns=columns)
    frame = load_results(out_dir)
    return frame.reindex(columns=columns)


def compare(runs: Iterable[str | os.PathLike | RunResult] | pd.DataFrame,
            metrics: Iterable[str] = HEADLINE) -> pd.DataFrame:
    """Runs side by side, with ratios against the first.

    Args:
        runs: run folders, RunResults, or a `load_results` frame (in the order to compare);
            a damaged run folder is left out with a logged warning naming it.
        metrics: summary keys to compare.

    Returns:
        DataFrame indexed by metric, one column of values per run_id, then a column
        "<run_id> / <first run_id>" of ratios for every other run (NaN where the first is 0
        or a figure is missing).
    """
    if isinstance(runs, pd.DataFrame):
        summaries = runs.to_dict("records")
    else:
        summaries = []
        for run in runs:
            if isinstance(run, RunResult):
                summaries.append(run.as_dict())
            else:
                summaries.extend(summary for _, summary in _summaries(run))
    metrics = list(metrics)
    ids = [str(s.get("run_id") or f"run{i}") for i, s in enumerate(summaries)]
    if len(set(ids)) != len(ids):
        raise KafkabenchError(f"compare needs distinct runs, got run_ids {ids!r}")
    table = pd.DataFrame({rid: [_float(s.get(m)) for m in metrics] for rid, s in zip(ids, summaries)},
                         index=pd.Index(metrics, name="metric"), dtype="float64")
    if ids:
        base = table[ids[0]].where(table[ids[0]] != 0)
        for rid in ids[1:]:
            table[f"{rid} / {ids[0]}"] = table[rid] / base
    return table


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
