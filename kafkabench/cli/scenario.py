"""`kafkabench scenario list | run`: named fault scenarios with delivery verification and their
expectations checked (`kafkabench.experiments.scenarios`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from kafkabench.cli.options import DIR, add_command, client_profile, complete_path, duration, pairs
from kafkabench.cli.output import print_json, print_summary


def register(sub: Any, client: argparse.ArgumentParser) -> None:
    """Add the `scenario` command and its actions.

    Args:
        sub: The top-level parser's `add_subparsers()` object.
        client: `client_options()`, the parent parser of commands that talk to a cluster.
    """
    scenario = add_command(sub, "scenario", "named fault scenarios with delivery verification",
                           ["kafkabench scenario list", "kafkabench scenario run leader-kill-acks-all"]
                           ).add_subparsers(dest="action", required=True)
    p = add_command(scenario, "list", "the scenarios: fault, run lengths and expectations",
                    ["kafkabench scenario list"])
    p.set_defaults(func=_cmd_scenario_list)
    p = add_command(scenario, "run", "run a scenario, check delivery and recovery (exit 1 if an "
                                     "expectation failed)", [
        "kafkabench scenario run leader-kill-acks-all",
        "kafkabench scenario run isr-below-min --size ci --json",
        "kafkabench scenario run leader-kill-acks-1 --bootstrap-server broker1:9092 "
        "--fault-command 'kill=ssh kafka{node} pkill -9 java' "
        "--fault-command 'start=ssh kafka{node} systemctl start kafka'"], parents=[client],
        description="Run a scenario, check delivery and recovery. Without --bootstrap-server it "
                    "starts its own 3-broker embedded cluster (deleted afterwards). --profile, "
                    "--command-config and --command-property give the connection settings "
                    "(common: TLS/SASL) only: the scenario sets the producer's.")
    p.add_argument("name", help="scenario name (see `kafkabench scenario list`)")
    p.add_argument("--seconds", type=duration, metavar="DURATION",
                   help="run length; fault times scale with it (default: the --size's)")
    p.add_argument("--size", choices=("full", "ci"), default="full",
                   help="full, or ci: short runs for tests (default: %(default)s)")
    p.add_argument("--fault-command", action="append", default=[], metavar="ACTION=COMMAND",
                   help="shell command of a fault action on a cluster kafkabench did not start, "
                        "repeatable; {node} and {action} are replaced")
    p.add_argument("--json", action="store_true",
                   help="print the scenario row as one JSON object on the last line of stdout "
                        "(NaN and infinity as null); other text goes to stderr")
    complete_path(p.add_argument("--out", default="results",
                                 help="results folder (default: %(default)s; '' saves nothing)"), DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_scenario_run)


def _cmd_scenario_list(args: argparse.Namespace) -> None:
    from kafkabench.experiments.scenarios import list_scenarios

    table = list_scenarios()
    print(table.to_string(index=False, formatters={"full_s": "{:g}".format, "ci_s": "{:g}".format}))


def _cmd_scenario_run(args: argparse.Namespace) -> int:
    from kafkabench.experiments.scenarios import get_scenario, run_scenario

    get_scenario(args.name)  # an unknown name fails before anything starts
    common = dict(client_profile(args).common)
    commands = pairs(args.fault_command, "--fault-command")
    # With --json, stdout holds the JSON line only: anything else printed goes to stderr.
    text_out = sys.stderr if args.json else sys.stdout
    with contextlib.redirect_stdout(text_out):
        outcome = run_scenario(args.name, seconds=args.seconds, size=args.size, bootstrap=args.bootstrap,
                               out=args.out or None, progress=not (args.no_progress or args.json),
                               fault_commands=commands, common=common)
    row = outcome.row
    if args.json:
        print_json({**row, "run_id": outcome.result.run_id, "checks": outcome.checks})
    else:
        print_summary(outcome.result.summary)
        verdict = "passed" if outcome.passed else f"FAILED: {row['failed_checks']}"
        print(f"scenario {row['scenario']} ({row['seconds']:g} s): {verdict}")
    if args.out:
        print(f"saved to {Path(args.out) / outcome.result.run_id}", file=text_out)
    return 0 if outcome.passed else 1
