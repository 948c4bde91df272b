"""`kafkabench results list | show | compare` and `kafkabench report`: saved runs listed, shown
and compared side by side (`kafkabench.results.store`), and one self-contained HTML report of
them (`kafkabench.present.report.write_report`).
"""

from __future__ import annotations

import argparse
from typing import Any

from kafkabench.cli.options import DIR, add_command, complete_path
from kafkabench.cli.output import print_summary


def register(sub: Any) -> None:
    """Add the `report` and `results` commands.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
    """
    p = add_command(sub, "report", "one self-contained HTML report of saved runs",
                    ["kafkabench report results -o report.html"])
    complete_path(p.add_argument("results", nargs="+", help="run folders or folders containing runs"), DIR)
    complete_path(p.add_argument("-o", "--output", default="report.html",
                                 help="HTML file (default: %(default)s)"))
    p.add_argument("--title", default="kafkabench report", help="report title (default: %(default)s)")
    p.set_defaults(func=_cmd_report)

    results = add_command(sub, "results", "list, show and compare saved runs",
                          ["kafkabench results list", "kafkabench results compare RUN_A RUN_B"]
                          ).add_subparsers(dest="action", required=True)
    p = add_command(results, "list", "one line per saved run with its headline figures",
                    ["kafkabench results list results/"])
    complete_path(p.add_argument("dir", nargs="?", default="results",
                                 help="results folder (default: %(default)s)"), DIR)
    p.set_defaults(func=_cmd_results_list)
    run_dir_opt = argparse.ArgumentParser(add_help=False)
    complete_path(run_dir_opt.add_argument(
        "--dir", default="results", help="results folder run ids are looked up in (default: %(default)s)"), DIR)
    p = add_command(results, "show", "the summary of one saved run",
                    ["kafkabench results show 20260101-120000"], parents=[run_dir_opt])
    p.add_argument("run", help="a run folder, or a run id (or its start) from `results list`")
    p.set_defaults(func=_cmd_results_show)
    p = add_command(results, "compare", "saved runs side by side, as ratios to the first",
                    ["kafkabench results compare RUN_A RUN_B RUN_C"], parents=[run_dir_opt])
    p.add_argument("runs", nargs="+", help="run folders or run ids (the first is the baseline)")
    p.set_defaults(func=_cmd_results_compare)


def _cmd_results_list(args: argparse.Namespace) -> None:
    import pandas as pd  # deferred: not imported at `kafkabench --help`

    from kafkabench.results.store import list_results

    df = list_results(args.dir)
    if df.empty:
        print(f"no results in {args.dir}")
        return
    table = pd.DataFrame(index=df.index)
    for column, (title, fmt) in _results_list_columns().items():
        if fmt is None:  # text; run ids are shown whole, to be copied
            text = df[column].map(lambda v: "-" if pd.isna(v) else str(v))
            table[title] = text if column == "run_id" else text.map(
                lambda v: v if len(v) <= 24 else v[:23] + "~")
        else:
            numbers = pd.to_numeric(df[column], errors="coerce")
            table[title] = numbers.map(lambda v, f=fmt: "-" if pd.isna(v) else format(v, f))
    print(table.to_string(index=False))
    dir_opt = "" if args.dir == "results" else f" --dir {args.dir}"
    print(f"{len(df)} run(s) in {args.dir}; details: kafkabench results show RUN_ID{dir_opt}")


def _results_list_columns() -> dict[str, tuple[str, str | None]]:
    """`results list`'s columns, headline figures only (the full frame is far wider than a
    terminal): summary key -> (title, number format; None for text)."""
    from kafkabench.core.contract import summary_names  # imports pandas: not at `kafkabench --help`

    keys = summary_names("run_id", "name", "duration_s", "publish_rate", "publish_mb_s",
                         "publish_latency_ms_p99", "e2e_latency_ms_p99", "consume_rate", "lag_max_msgs")
    shown = [("run_id", None), ("name", None), ("secs", ",.1f"), ("msg/s", ",.0f"), ("MB/s", ",.2f"),
             ("p99 ms", ",.2f"), ("e2e p99 ms", ",.2f"), ("consumed/s", ",.0f"), ("max lag", ",.0f")]
    return dict(zip(keys, shown, strict=True))


def _cmd_results_show(args: argparse.Namespace) -> None:
    from kafkabench.results.store import find_run, load

    print_summary(load(find_run(args.run, args.dir)).summary)


def _cmd_results_compare(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import KafkabenchError
    from kafkabench.results.store import compare, find_run

    table = compare([find_run(run, args.dir) for run in args.runs])
    if table.columns.empty:
        raise KafkabenchError(f"no readable run among {' '.join(args.runs)}: nothing to compare")
    print(table.to_string())


def _cmd_report(args: argparse.Namespace) -> None:
    from kafkabench.core.errors import KafkabenchError
    from kafkabench.present.report import write_report
    from kafkabench.results.store import load_many

    # Loaded here so that a damaged run is skipped with a warning instead of stopping the report.
    runs = [run for item in args.results for run in load_many(item)]
    if not runs:
        raise KafkabenchError(f"no readable kafkabench run in {' '.join(args.results)}: "
                              "nothing to report")
    path = write_report(runs, args.output, title=args.title)
    print(f"report written to {path}")
