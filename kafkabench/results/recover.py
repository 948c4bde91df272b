"""The partial result of a run whose main process died, rebuilt from its journal
(`kafkabench.run.journal`): every worker's reports replayed into a fresh session's tally, the
result built by the same code a finished run uses (`kafkabench.run.summary.session_result`)."""

from __future__ import annotations

import json
import os
import pickle
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from kafkabench.core.errors import KafkabenchError
from kafkabench.engine.reportfile import read_records
from kafkabench.run.journal import CLOCK_FILE, JOURNAL_DIR, META_FILE, WORKERS_DIR
from kafkabench.run.result import RunResult
from kafkabench.run.session import RunSession
from kafkabench.run.summary import session_result

# How long `recover` waits for orphaned workers to write their final reports and exit.
WORKERS_EXIT_TIMEOUT_S = 90.0


def _alive(pid: int, started: float | None) -> bool:
    """Whether process `pid` (created at `started`, when known) still runs."""
    try:
        proc = psutil.Process(pid)
        return (started is None or abs(proc.create_time() - started) < 1.0) and \
            proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _workers(folder: Path) -> dict[str, tuple[int, list[Any]]]:
    """{worker: (its last process's pid, its reports)} from the report files (a worker name
    used twice, a backlog producer and the run's, appends to one file: a pid record each)."""
    out = {}
    for path in sorted((folder / WORKERS_DIR).glob("*.reports")):
        pid, reports = 0, []
        for record in read_records(path):
            if isinstance(record, dict):
                pid = record.get("pid", pid)
            else:
                reports.append(record)
        out[path.name.removesuffix(".reports")] = (pid, reports)
    return out


def _meta(folder: Path, run_folder: str | os.PathLike) -> dict[str, Any]:
    """What the journal in `folder` says the run is (`Journal.write_meta`).

    Raises:
        KafkabenchError: no journal there, or a damaged one.
    """
    try:
        return pickle.loads((folder / META_FILE).read_bytes())
    except FileNotFoundError:
        raise KafkabenchError(f"no run journal in {str(run_folder)!r}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types
        raise KafkabenchError(f"the run journal in {str(run_folder)!r} is damaged: {exc}") from None


def _replayed(plan: Any, folder: Path) -> RunSession:
    """A session of `plan` whose tally took every report of the journal in `folder`, in the
    order they were made, its clock and `failure` set as the dead run left them."""
    session = RunSession(plan)
    clock = folder / CLOCK_FILE
    t0 = json.loads(clock.read_text())["t0_wall"] if clock.is_file() else 0.0
    session.tally.t0_wall = t0
    reports = sorted((r for _, rs in _workers(folder).values() for r in rs), key=lambda r: r.wall)
    for r in reports:
        if r.kind in ("done", "error"):
            session.pool.done.add(r.worker)
        session.tally.add(r)
    last = max((r.wall for r in reports), default=t0)
    session.t_go, session.t_end = 0.0, max(0.0, last - t0) if t0 else 0.0
    expected = {s.worker for s in (*plan.producers, *plan.consumers)}
    missing = sorted(expected - session.pool.done)
    died = datetime.fromtimestamp(last).astimezone().strftime("%H:%M:%S")
    session.failure = (f"the run's main process ended without saving its result (killed or "
                       f"aborted; last report at {died}); this partial result was recovered from "
                       f"its journal" + (f"; no final report from {', '.join(missing)}" if missing else ""))
    return session


def rebuild(run_folder: str | os.PathLike, *, wait_s: float = WORKERS_EXIT_TIMEOUT_S) -> RunResult:
    """The partial result of a run whose main process died, from its journal (not saved:
    `kafkabench.results.store.recover` saves it).

    Args:
        run_folder: the run's folder, holding its journal.
        wait_s: how long to wait for the run's orphaned workers to send their final reports
            and exit (they notice within a second that their parent died).

    Returns:
        The partial `RunResult`: `complete` False, `recovered` True, the reason in `incomplete`.

    Raises:
        KafkabenchError: no journal there, or the run's main process still runs (the run is
            in progress, not dead).
    """
    folder = Path(run_folder) / JOURNAL_DIR
    meta = _meta(folder, run_folder)
    if _alive(meta["pid"], meta.get("pid_started")):
        raise KafkabenchError(f"run {meta['plan'].run_id} is still running (process {meta['pid']}); "
                              "its result is saved when it ends")
    deadline = time.monotonic() + wait_s
    while any(_alive(pid, None) for pid, _ in _workers(folder).values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    session = _replayed(meta["plan"], folder)
    session.warnings.append(session.failure)
    if session.plan.created:
        topics = [*session.plan.topics, *session.plan.stage_topics]
        session.warnings.append(f"the run's topics were left on the cluster: {', '.join(topics)} "
                                "(`kafkabench topic delete` removes them)")
    result = session_result(session, meta["workload"], meta["profile"], started_at=meta["started_at"],
                            bootstrap=meta["bootstrap"], commit=meta["commit"],
                            replication_factor=meta.get("replication_factor"))
    result.summary.update(meta.get("summary_extra", {}), recovered=True)
    return result


