"""The hot loops of this checkout against another checkout's, on the same broker in the same run.

For a change to the engine (the producer's and consumer's loops): each case runs once per
checkout per repetition, alternating which goes first, each in a child process with
PYTHONPATH set to its checkout, and the script prints per case the median of each checkout
and the ratio this/baseline. Cases: a max-rate producer (msgs/s and producer CPU per
message), a verified max-rate producer (every message carries `kb-seq`), a fixed-rate
producer (publish delay p99 and CPU per message) and a producer with one consumer group
(consume rate). The last line is one JSON object.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_hot_loops.py --baseline /tmp/before [--bootstrap HOST:PORT] [--reps 5]

Note: the broker and both load generators share this machine's cores; compare the ratios of
one run, not absolute figures across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

#: (case, workload fields, summary keys to compare)
CASES = [
    ("max-rate", {"message_count": 2_000_000, "duration_s": 0, "producer_rate": 0},
     ["publish_rate", "producer_cpu_us_per_msg"]),
    ("max-rate-verified", {"message_count": 1_000_000, "duration_s": 0, "producer_rate": 0, "verify": True},
     ["publish_rate", "producer_cpu_us_per_msg"]),
    ("fixed-rate-20k", {"duration_s": 8, "producer_rate": 20_000},
     ["publish_delay_us_p99", "producer_cpu_us_per_msg", "publish_rate"]),
    ("produce-and-consume", {"duration_s": 8, "producer_rate": 0, "consumer_groups": 1},
     ["consume_rate", "publish_rate"]),
]

CHILD = """
import json, sys
from kafkabench.runner import run_workload
workload = {"name": "ab", "partitions": 3, "message_size": 100, "producers": 1,
            "consumer_groups": 0, "consumers_per_group": 1, **json.loads(sys.argv[1])}
r = run_workload(workload, bootstrap=sys.argv[2], progress=False, mode="process")
print(json.dumps({k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                  for k, v in r.summary.items()}))
"""


def _run(tree: Path, fields: dict, bootstrap: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(fields), bootstrap], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tree)
    if proc.returncode != 0:
        raise SystemExit(f"run in {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="another kafkabench checkout")
    parser.add_argument("--bootstrap", help="use this cluster instead of starting an embedded one")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", nargs="*", default=[c[0] for c in CASES])
    args = parser.parse_args()
    if not (args.baseline / "kafkabench" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a kafkabench checkout (no kafkabench/__init__.py)")
    unknown = set(args.cases) - {c[0] for c in CASES}
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; known: {[c[0] for c in CASES]}")
    with ExitStack() as stack:
        bootstrap = args.bootstrap
        if bootstrap is None:
            from kafkabench.cluster.local import LocalCluster

            bootstrap = stack.enter_context(LocalCluster(brokers=1)).bootstrap_servers
        out: dict[str, dict] = {}
        for case, fields, keys in CASES:
            if case not in args.cases:
                continue
            seen: dict[str, dict[str, list[float]]] = {"this": {k: [] for k in keys},
                                                        "baseline": {k: [] for k in keys}}
            for rep in range(args.reps):
                order = [("this", HERE), ("baseline", args.baseline)]
                for name, tree in (order if rep % 2 == 0 else order[::-1]):
                    summary = _run(tree, fields, bootstrap)
                    for k in keys:
                        seen[name][k].append(float(summary.get(k) or float("nan")))
                print(f"{case} rep {rep + 1}/{args.reps}: " + ", ".join(
                    f"{k} this {seen['this'][k][-1]:.4g} baseline {seen['baseline'][k][-1]:.4g}" for k in keys),
                    file=sys.stderr, flush=True)
            out[case] = {}
            for k in keys:
                this, base = statistics.median(seen["this"][k]), statistics.median(seen["baseline"][k])
                out[case][k] = {"this": this, "baseline": base, "ratio": this / base if base else float("nan")}
                print(f"{case:22s} {k:26s} this {this:12.4g}  baseline {base:12.4g}  ratio {out[case][k]['ratio']:.3f}")
        print(json.dumps({"reps": args.reps, "cases": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
