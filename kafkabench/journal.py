"""A run's journal: what survives the run's main process being killed or aborting.

Every worker appends each report it sends to a file of its own (`workers/<name>.reports`:
length-prefixed pickles, flushed report by report), so what reached the parent's queue is on
disk too, and a worker whose parent died still writes its final report there before it
exits. The session writes what the run is (`meta.pickle`: plan, workload, profile, ...) before
any worker starts, and the run's clock (`clock.json`) when the producers go.

`recover(folder)` replays every worker's reports into a fresh session's tally and builds the
partial result with the same code a finished run uses, marked `complete: False` with the
reason; `kafkabench.results.load` calls it for a run folder that holds a journal and no result.
A finished run's save replaces its folder, journal included.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import struct
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from kafkabench.errors import KafkabenchError

#: The journal's folder inside a run folder.
JOURNAL_DIR = "journal"
META_FILE = "meta.pickle"
CLOCK_FILE = "clock.json"
WORKERS_DIR = "workers"
_HEADER = struct.Struct("<I")
# How long `recover` waits for orphaned workers to write their final reports and exit.
WORKERS_EXIT_TIMEOUT_S = 90.0


class ReportFile:
    """A worker's report file, opened on the first report; one write and flush per report."""

    def __init__(self, path: str):
        self.path = path
        self._file: Any = None

    def append(self, report: Any) -> None:
        """Add one report (never raises: a full disk must not stop the measurement)."""
        try:
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the worker's life
                self._file.write(_record({"pid": os.getpid()}))
            data = _record(report)
            self._file.write(data)
            self._file.flush()
        except (OSError, pickle.PicklingError):
            pass

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _record(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def read_records(path: Path) -> Iterator[Any]:
    """The records of a report file; a record cut short by a kill ends it, silently."""
    with open(path, "rb") as f:
        while True:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            (size,) = _HEADER.unpack(head)
            data = f.read(size)
            if len(data) < size:
                return
            try:
                yield pickle.loads(data)
            except Exception:  # noqa: BLE001 - a damaged record ends what can be read
                return


class Journal:
    """The journal of one run, in `<run folder>/journal/`.

    Args:
        run_folder: the run's folder (`<out>/<run_id>`), created if needed.
    """

    def __init__(self, run_folder: str | os.PathLike):
        self.run_folder = Path(run_folder)
        self.folder = self.run_folder / JOURNAL_DIR
        (self.folder / WORKERS_DIR).mkdir(parents=True, exist_ok=True)

    def worker_file(self, worker: str) -> str:
        """Where worker `worker` appends its reports."""
        return str(self.folder / WORKERS_DIR / f"{worker}.reports")

    def write_meta(self, **meta: Any) -> None:
        """What the run is (pickled): plan, workload, profile, bootstrap, ... and this process."""
        me = psutil.Process()
        meta = {**meta, "pid": me.pid, "pid_started": me.create_time()}
        _write_atomic(self.folder / META_FILE, pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL))

    def write_clock(self, t0_wall: float) -> None:
        """The run's t = 0 (Unix time), written when the producers go."""
        _write_atomic(self.folder / CLOCK_FILE, json.dumps({"t0_wall": t0_wall}).encode())

    def discard(self) -> None:
        """Remove the journal (the result was saved, or there is nothing to keep)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.run_folder.rmdir()  # only when nothing else is in it


def journal_meta(plan: Any, profile: Any, **meta: Any) -> dict[str, Any]:
    """What a journal keeps of a run: the plan and profile without secrets or payloads (the
    recovered result needs their names and shapes, not their bytes or passwords)."""
    from dataclasses import fields, replace

    from kafkabench.config import ClientProfile, redact

    def light(spec: Any) -> Any:
        names = {f.name for f in fields(spec)}
        changes = {"config": redact(spec.config)} if "config" in names else {}
        changes.update({k: () for k in ("payloads", "keys") if k in names})
        return replace(spec, **changes)

    plan = replace(plan, producers=tuple(map(light, plan.producers)),
                   consumers=tuple(map(light, plan.consumers)))
    profile = ClientProfile(profile.name, redact(profile.common), redact(profile.producer),
                            redact(profile.consumer), profile.replication_factor, profile.topic_config)
    return {"plan": plan, "profile": profile, **meta}


def unsaved_folder(run_id: str) -> Path:
    """Where the journal of a run that saves no result goes (`run_workload(out=None)`):
    `<kafkabench home>/unsaved/<run_id>`, removed when the run ends."""
    from kafkabench.install import kafkabench_home

    return kafkabench_home() / "unsaved" / run_id


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def has_journal(run_folder: str | os.PathLike) -> bool:
    """Whether a run folder holds a journal that can be recovered."""
    return (Path(run_folder) / JOURNAL_DIR / META_FILE).is_file()


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


def recover(run_folder: str | os.PathLike, *, wait_s: float = WORKERS_EXIT_TIMEOUT_S) -> Path:
    """Build and save the partial result of a run whose main process died.

    Args:
        run_folder: the run's folder, holding its journal.
        wait_s: how long to wait for the run's orphaned workers to send their final reports
            and exit (they notice within a second that their parent died).

    Returns:
        The run folder, now holding a result (`kafkabench.results.load` reads it); the
        journal is removed.

    Raises:
        KafkabenchError: no journal there, or the run's main process still runs (the run is
            in progress, not dead).
    """
    from kafkabench.results import save
    from kafkabench.session import RunSession
    from kafkabench.summary import session_result

    folder = Path(run_folder) / JOURNAL_DIR
    try:
        meta = pickle.loads((folder / META_FILE).read_bytes())
    except FileNotFoundError:
        raise KafkabenchError(f"no run journal in {str(run_folder)!r}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types
        raise KafkabenchError(f"the run journal in {str(run_folder)!r} is damaged: {exc}") from None
    if _alive(meta["pid"], meta.get("pid_started")):
        raise KafkabenchError(f"run {meta['plan'].run_id} is still running (process {meta['pid']}); "
                              "its result is saved when it ends")
    deadline = time.monotonic() + wait_s
    while any(_alive(pid, None) for pid, _ in _workers(folder).values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    workers = _workers(folder)
    session = RunSession(meta["plan"])
    clock = folder / CLOCK_FILE
    t0 = json.loads(clock.read_text())["t0_wall"] if clock.is_file() else 0.0
    session.tally.t0_wall = t0
    reports = sorted((r for _, rs in workers.values() for r in rs), key=lambda r: r.wall)
    for r in reports:
        if r.kind in ("done", "error"):
            session.pool.done.add(r.worker)
        session.tally.add(r)
    last = max((r.wall for r in reports), default=t0)
    session.t_go, session.t_end = 0.0, max(0.0, last - t0) if t0 else 0.0
    expected = {s.worker for s in (*session.plan.producers, *session.plan.consumers)}
    missing = sorted(expected - session.pool.done)
    died = datetime.fromtimestamp(last).astimezone().strftime("%H:%M:%S")
    session.failure = (f"the run's main process ended without saving its result (killed or "
                       f"aborted; last report at {died}); this partial result was recovered from "
                       f"its journal" + (f"; no final report from {', '.join(missing)}" if missing else ""))
    session.warnings.append(session.failure)
    if session.plan.created:
        topics = [*session.plan.topics, *session.plan.stage_topics]
        session.warnings.append(f"the run's topics were left on the cluster: {', '.join(topics)} "
                                "(`kafkabench topic delete` removes them)")
    result = session_result(session, meta["workload"], meta["profile"], started_at=meta["started_at"],
                            bootstrap=meta["bootstrap"], commit=meta["commit"],
                            replication_factor=meta.get("replication_factor"))
    result.summary.update(meta.get("summary_extra", {}), recovered=True)
    saved = save(result, Path(run_folder).parent, overwrite=True)
    return saved
