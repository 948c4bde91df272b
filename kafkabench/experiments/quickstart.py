"""The quick-start benchmark behind `make run`: a small compression x acks sweep with a
consumer group, saved as results and summarised in one self-contained HTML report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kafkabench.analysis.sweeps import summarize
from kafkabench.experiments.sweep import SweepSpec, run_sweep
from kafkabench.present.report import write_report
from kafkabench.results.store import load_many
from kafkabench.spec.profile import ClientProfile, load_profile
from kafkabench.spec.workload import Workload

#: Realistic keyed JSON events at a fixed rate, read by a group of two consumers. An explicit
#: replication_factor=1 (the default before it became optional) keeps saved runs resumable.
WORKLOAD = Workload(name="quickstart", partitions=6, replication_factor=1, message_size=512,
                    payload="text", key_distribution="zipf", key_count=1000, producer_rate=5000,
                    consumer_groups=1, consumers_per_group=2, duration_s=8, warmup_s=2)
GRID = {"producer.compression.type": ["none", "lz4", "zstd"], "producer.acks": ["1", "all"]}
#: An unrecorded run before the first point: on a just-started broker, the first measured run
#: had e2e and publish p99 near 2.7 s (the JVM warming up) against 13-366 ms for the others.
WARMUP_RUN_S = 6.0


def run_quickstart(*, out: str | Path = "results", report: str | Path = "report.html",
                   bootstrap: str | None = None, progress: bool = True,
                   profile: ClientProfile | Mapping[str, Any] | str | Path | None = None
                   ) -> tuple[pd.DataFrame, Path | None]:
    """Run the quick-start sweep and write its report.

    Args:
        out: results folder; points already there are not run again.
        report: the HTML report to write.
        bootstrap: bootstrap servers (default: the running embedded cluster).
        progress: show progress bars.
        profile: client profile the quick start's own settings (`GRID`) are laid over, e.g.
            TLS/SASL settings in its `common` for a secured cluster (anything `load_profile`
            takes; default: the default preset).

    Returns:
        The sweep's table (one row per run) and the report's path; None when Ctrl-C stopped
        the sweep (`table.attrs["interrupted"]`): no report is written then.
    """
    spec = SweepSpec(name="quickstart", workload=WORKLOAD, profile=load_profile(profile),
                     grid=GRID, repetitions=1, warmup_run_s=WARMUP_RUN_S)
    table = run_sweep(spec, bootstrap=bootstrap, out=out, progress=progress)
    if table.attrs.get("interrupted"):
        return table, None
    path = write_report(load_many(list(table["path"])), report, title="kafkabench quick start",
                        sweep=summarize(table, spec))
    return table, Path(path)
