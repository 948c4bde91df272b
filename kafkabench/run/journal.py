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
from pathlib import Path
from typing import Any

import psutil

#: The journal's folder inside a run folder.
JOURNAL_DIR = "journal"
META_FILE = "meta.pickle"
CLOCK_FILE = "clock.json"
WORKERS_DIR = "workers"


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

    from kafkabench.spec.profile import ClientProfile, redact

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
    from kafkabench.cluster.install import kafkabench_home

    return kafkabench_home() / "unsaved" / run_id


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def has_journal(run_folder: str | os.PathLike) -> bool:
    """Whether a run folder holds a journal that can be recovered."""
    return (Path(run_folder) / JOURNAL_DIR / META_FILE).is_file()


