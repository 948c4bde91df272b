"""`kafkabench sweep SPEC` and `kafkabench quickstart`: grids of workload fields and client
settings (`kafkabench.experiments.sweep.run_sweep`, `kafkabench.experiments.quickstart`), their
medians per point, and an HTML report.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from kafkabench.cli.options import DIR, add_command, client_profile, complete_path
from kafkabench.cli.output import text_table


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `sweep` and `quickstart` commands.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    p = add_command(sub, "sweep", "run a grid of workload fields and librdkafka settings (resumable)",
                    ["kafkabench sweep sweeps/linger.yaml --report linger.html"], parents=[client],
                    description="Run a grid of workload fields and librdkafka settings; runs already "
                                "saved are not run again. --profile replaces the spec's profile; "
                                "--command-config and --command-property lay settings over it.")
    complete_path(p.add_argument("spec", help="sweep YAML: name, workload, profile, grid, repetitions"))
    complete_path(p.add_argument("--out", default="results", help="results folder (default: %(default)s)"),
                  DIR)
    complete_path(p.add_argument("--report", help="also write an HTML report to this file"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sweep)

    p = add_command(sub, "quickstart", "compression x acks sweep with a consumer group, and a report",
                    ["kafkabench cluster up && kafkabench quickstart",
                     "kafkabench quickstart --bootstrap-server broker1:9093 --command-config client.properties"],
                    parents=[client],
                    description="Compression x acks sweep with a consumer group, and a report. --profile, "
                                "--command-config and --command-property (e.g. TLS/SASL settings) lie "
                                "under the sweep's own compression.type and acks.")
    complete_path(p.add_argument("--out", default="results", help="results folder (default: %(default)s)"),
                  DIR)
    complete_path(p.add_argument("--report", default="report.html",
                                 help="HTML report file (default: %(default)s)"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_quickstart)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from kafkabench.analysis.sweeps import summarize
    from kafkabench.experiments.sweep import SweepSpec, run_sweep

    spec = SweepSpec.from_yaml(args.spec)
    if args.profile or args.command_config or args.command_property:
        spec = dataclasses.replace(spec, profile=client_profile(args, base=spec.profile))
    table = run_sweep(spec, bootstrap=args.bootstrap, out=args.out, progress=not args.no_progress)
    summary = summarize(table, spec)
    if len(summary):
        print(summary.to_string(index=False))
    if table.attrs.get("interrupted"):
        # run_sweep has said how many points and runs are saved, and where.
        if args.report:
            print(f"kafkabench: no report written to {args.report}: the sweep was interrupted",
                  file=sys.stderr)
        return 130
    if args.report:
        from kafkabench.present.report import write_report
        from kafkabench.results.store import load_many

        runs = load_many(list(table["path"]))  # a damaged run is skipped with a warning
        print(f"report written to {write_report(runs, args.report, sweep=summary)}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from kafkabench.experiments.quickstart import run_quickstart

    table, report = run_quickstart(out=args.out, report=args.report, bootstrap=args.bootstrap,
                                   progress=not args.no_progress, profile=client_profile(args))
    cols = [c for c in _quickstart_columns() if c in table.columns]
    if len(table):
        print(text_table(table[cols]))
    if report is None:  # interrupted: run_sweep has said what is saved where
        return 130
    print(f"\nresults in {Path(args.out).resolve()}, report: {report.resolve()}")
    return 0


def _quickstart_columns() -> tuple[str, ...]:
    """The summary keys `quickstart` prints, one row per run."""
    from kafkabench.core.contract import summary_names

    return summary_names("producer.compression.type", "producer.acks", "publish_rate", "publish_mb_s",
                         "publish_latency_ms_p99", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
                         "lag_max_msgs", "consume_rate", "rate_held", "complete")
