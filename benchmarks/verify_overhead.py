"""What delivery verification costs the producer: the same max-rate run with and without it.

One producer (in its own worker process) sends --messages 100 B messages at max rate to a
6-partition topic, no consumers (the read-back is timed on its own), alternating plain and
verified runs after one unmeasured warm-up of each. Per run: delivery rate, producer CPU per
message (its process, librdkafka's threads included), and for verified runs the read-back's
time per message. Prints the medians and the ratios verified / plain; the last line is one
JSON object.

    python benchmarks/verify_overhead.py [--bootstrap HOST:PORT] [--messages 300000] [--reps 3]

Note: the broker and kafkabench share this machine's cores; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import statistics

from kafkabench.cluster.local import resolve_bootstrap
from kafkabench.runner import run_workload


def _run(bootstrap: str, messages: int, verify: bool) -> dict[str, float]:
    result = run_workload({"name": "verify-overhead", "partitions": 6, "message_size": 100,
                           "message_count": messages, "consumer_groups": 0, "verify": verify},
                          bootstrap=bootstrap, progress=False, mode="process",
                          stats_interval_ms=None)
    s = result.summary
    row = {"delivery_rate": s["delivery_rate"],
           "producer_cpu_us_per_msg": s["producer_cpu_us_per_msg"]}
    if verify:
        if s["verify_lost"] or not s["verify_complete"]:
            raise SystemExit(f"verification found a problem: {s['verify_lost']} lost, "
                             f"{s['verify_error']!r}")
        row["read_back_us_per_msg"] = s["verify_read_s"] * 1e6 / max(s["verify_read"], 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="bootstrap servers (default: the embedded cluster)")
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    bootstrap = resolve_bootstrap(args.bootstrap)
    for verify in (False, True):  # warm-up, unmeasured
        _run(bootstrap, args.messages // 3, verify)
    rows: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for rep in range(args.reps):
        for verify in ((False, True) if rep % 2 == 0 else (True, False)):
            rows[verify].append(_run(bootstrap, args.messages, verify))
            print(f"rep {rep} {'verified' if verify else 'plain   '}: "
                  + "  ".join(f"{k} {v:,.2f}" for k, v in rows[verify][-1].items()), flush=True)
    med = {v: {k: statistics.median(r[k] for r in rows[v]) for k in rows[v][0]} for v in rows}
    out = {"messages": args.messages, "reps": args.reps,
           "plain": med[False], "verified": med[True],
           "rate_ratio": med[True]["delivery_rate"] / med[False]["delivery_rate"],
           "cpu_ratio": med[True]["producer_cpu_us_per_msg"] / med[False]["producer_cpu_us_per_msg"]}
    print(f"median delivery rate: plain {med[False]['delivery_rate']:,.0f}/s, verified "
          f"{med[True]['delivery_rate']:,.0f}/s (ratio {out['rate_ratio']:.2f})")
    print(f"median producer CPU: plain {med[False]['producer_cpu_us_per_msg']:.2f} us/msg, verified "
          f"{med[True]['producer_cpu_us_per_msg']:.2f} us/msg (ratio {out['cpu_ratio']:.2f}); "
          f"read-back {med[True]['read_back_us_per_msg']:.2f} us/msg")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
