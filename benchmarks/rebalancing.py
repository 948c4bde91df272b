"""What a join, a clean leave and a crash cost a consumer group under each rebalance protocol.

A 3-broker embedded cluster (started for the run unless --bootstrap is given): 3 members
read a 6-partition topic (replication factor 3) while producers send --rate msgs/s; a fourth
member joins (3 s), member 1 leaves (10 s), member 0 is SIGKILLed (17 s). Every protocol/assignor of
`kafkabench.experiments.REBALANCE_VARIANTS` runs with and without static membership, the
same session timeout (6 s) and heartbeat (1 s) for all, commits after each batch and on
revoke (--commit). Prints, per event type, the medians of --repeats runs of: detection, time to a
stable assignment, longest partition and group pauses, partitions moved, records read twice,
lag peak. The last line is one JSON object.

    python benchmarks/rebalancing.py [--bootstrap HOST:PORT] [--repeats 3] [--quick]

Note: the brokers and every member share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack

import pandas as pd
import psutil

from kafkabench.cluster.local import LocalCluster
from kafkabench.core.errors import KafkabenchError
from kafkabench.experiments.studies import REBALANCE_VARIANTS, rebalance_comparison

FIGURES = ["detect_s", "stable_s", "partition_pause_s", "group_pause_s", "partitions_moved",
           "duplicates", "lag_peak_msgs"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="bootstrap servers (default: a 3-broker embedded cluster "
                                            "started for the run)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; medians are printed")
    parser.add_argument("--rate", type=float, default=1000.0, help="producer msgs/s (default: %(default)s)")
    parser.add_argument("--commit", default="sync", choices=("auto", "async", "sync", "sync-message"),
                        help="the members' commits (default: %(default)s: after each batch and on "
                             "revoke; auto: librdkafka's every 5 s, so a crash redelivers)")
    parser.add_argument("--quick", action="store_true", help="1 repetition, two variants, no static")
    args = parser.parse_args()
    if args.repeats < 1 or args.rate <= 0:
        parser.error("--repeats must be >= 1 and --rate > 0")
    variants = ["cooperative-sticky", "KIP-848 uniform"] if args.quick else list(REBALANCE_VARIANTS)
    statics = [False] if args.quick else [False, True]
    repeats = 1 if args.quick else args.repeats
    workload = {"name": "rebalancing", "partitions": 6, "replication_factor": 3, "message_size": 256,
                "producer_rate": args.rate, "duration_s": 26, "consumers_per_group": 3}
    # 7 s apart, more than the 6 s session timeout: a static member's leave (no LeaveGroup) is
    # noticed at its session timeout, which must fall in its own event's window.
    events = [{"at_s": 3, "action": "join"}, {"at_s": 10, "action": "leave", "member": 1},
              {"at_s": 17, "action": "crash", "member": 0}]
    with ExitStack() as stack:
        bootstrap = args.bootstrap or stack.enter_context(LocalCluster(
            brokers=3, base_dir=tempfile.mkdtemp(prefix="kb-bench-"))).bootstrap_servers
        print(f"broker(s) {bootstrap}; 6 partitions, RF 3, {args.rate:g} msgs/s, 3 members; join at 3 s, "
              f"leave at 10 s, crash at 17 s; commit {args.commit}; {repeats} run(s) per variant; the brokers and the members "
              f"share this machine's {psutil.cpu_count()} cores", flush=True)
        tables = []
        for rep in range(repeats):
            t = rebalance_comparison(variants, workload, events, static=statics, bootstrap=bootstrap,
                                     commit=args.commit,
                                     progress=False, out=tempfile.mkdtemp(prefix="kb-bench-results-"))
            tables.append(t.assign(rep=rep))
            print(f"  repetition {rep + 1} done", flush=True)
    table = pd.concat(tables, ignore_index=True)
    medians = table.groupby(["action", "variant", "static"], sort=False)[FIGURES].median()
    pd.set_option("display.width", 200)
    for action in ("join", "leave", "crash"):
        print(f"\n{action} (medians of {repeats}):")
        print(medians.loc[action].round(2).to_string())
    print(json.dumps({"repeats": repeats, "rate": args.rate, "commit": args.commit, "cores": psutil.cpu_count(),
                      "medians": [{"action": a, "variant": v, "static": bool(s),
                                   **{k: (None if pd.isna(x) else round(float(x), 3)) for k, x in row.items()}}
                                  for (a, v, s), row in medians.iterrows()]}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkabenchError as exc:
        print(f"rebalancing: {exc}", file=sys.stderr)
        sys.exit(1)
