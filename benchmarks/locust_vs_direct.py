"""One Locust worker process running producer_load.py vs kafkabench's direct producer runner
and vs locust-plugins' KafkaUser, on the same broker in the same minutes.

Each repetition runs, in alternating order:
- kafkabench's Locust user: `locustfiles/producer_load.py`, one process, --users users at
  full speed (order events, ~550 B on average, headers, keyed by order id);
- the same with `--kafka-producer-per-user` (one producer per user instead of per process);
- locust-plugins' `KafkaUser` (`locust_plugins.users.kafka`) sending the same order events
  from the same number of users (it calls `producer.poll()` with no timeout after each send);
- `kafkabench.runner.run_workload`: one producer, consumer_groups=0, the same mean message
  size (measured from the Locust run), text payloads, random keys, the same two headers
  (event-type, version), the same partitions and client profile.
Rates: delivery reports (Locust requests) per second while all users ran (Locust's
per-second history, first and last second left out; Locust's own whole-run Requests/s, which
counts spawning and the final flush too, is printed beside it), and the runner's
publish_rate.
The last line is one JSON object with the median ratios.

    python benchmarks/locust_vs_direct.py [--bootstrap HOST:PORT] [--reps 3] [--seconds 15]

Needs locust-plugins (`pip install -e .[bench]`). The broker, Locust and the runner share this
machine's cores: compare the ratios, not the absolute figures across machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import textwrap
import uuid
from contextlib import ExitStack
from pathlib import Path

from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.cluster.local import LocalCluster
from kafkabench.loadtest.locust_results import run_locust
from kafkabench.runner import run_workload
from kafkabench.spec.workload import Workload

PARTITIONS = 6

# locust-plugins' KafkaUser, sending kafkabench's order events (its send() takes no headers).
PLUGIN_LOCUSTFILE = '''
import itertools, random
from locust import task
from locust_plugins.users.kafka import KafkaUser
from kafkabench.loadtest.locust_user import order_messages  # also registers --kafka-* options

class PluginOrderProducer(KafkaUser):
    bootstrap_servers = {bootstrap!r}

    def on_start(self):
        pool = order_messages()
        self.orders = itertools.islice(itertools.cycle(pool), random.randrange(len(pool)), None)
        self.topic = self.environment.parsed_options.kafka_topic

    @task
    def send_order(self):
        key, value, _headers = next(self.orders)
        self.client.send(self.topic, value, key)
'''


def steady_rate(run, users: int) -> float:
    """Requests/s while all users ran, from Locust's per-second history: the first and the
    last of those seconds (spawning, stopping) are left out."""
    ts = run.result.timeseries
    full = ts[ts["users"] == users]["requests"]
    if len(full) < 3:
        raise RuntimeError(f"only {len(full)} s with all {users} users: run longer")
    return float(full.iloc[1:-1].mean())


def locust_rate(bootstrap: str, locustfile: str | Path, users: int, seconds: float,
                folder: Path, extra: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """Steady msgs/s, whole-run msgs/s (Locust's Requests/s) and mean message size of one
    single-process Locust run on a fresh topic."""
    topic = f"bench-locust-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    try:
        run = run_locust(locustfile, users=users, spawn_rate=users, run_time_s=seconds,
                         bootstrap=bootstrap, topic=topic, lag=False, extra_args=extra,
                         out_dir=folder / topic, timeout_s=seconds + 120)
    finally:
        delete_topics(bootstrap, [topic], timeout_s=10)
    stats = run.frames.stats
    failures = int(stats["Failure Count"].sum())
    if failures:
        raise RuntimeError(f"{locustfile}: {failures} failures: {run.summary['errors']}")
    aggregated = stats[stats["Name"] == "Aggregated"].iloc[0]
    return (steady_rate(run, users), float(aggregated["Requests/s"]),
            float(aggregated["Average Content Size"]))


def direct_rate(bootstrap: str, size: int, seconds: float) -> float:
    """msgs/s of kafkabench's producer runner: one producer, no consumers."""
    workload = Workload(name="bench-direct", partitions=PARTITIONS, message_size=size,
                        payload="text", key_distribution="random", consumer_groups=0,
                        duration_s=seconds, topic_prefix="bench-direct",
                        headers={"event-type": "order.created", "version": "1"})
    result = run_workload(workload, "default", bootstrap=bootstrap, progress=False,
                          mode="thread", stats_interval_ms=None)
    if result.summary["failed"]:
        raise RuntimeError(f"direct runner: {result.summary['errors']}")
    return float(result.summary["publish_rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="use this cluster instead of starting an embedded one")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    parser.add_argument("--users", type=int, default=5, help="Locust users of each Locust run")
    args = parser.parse_args()
    # Imported by the plugin's locustfile in Locust's subprocess: say so here, not in its log.
    if importlib.util.find_spec("locust_plugins") is None:
        sys.exit("locust_vs_direct.py needs locust-plugins: `make bench` or pip install -e '.[bench]'")

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-bench-")))
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            cluster = stack.enter_context(LocalCluster(name="bench-locust",
                                                       base_dir=folder / "cluster"))
            bootstrap = cluster.bootstrap_servers
        plugin_file = folder / "plugin_kafka_user.py"
        plugin_file.write_text(textwrap.dedent(PLUGIN_LOCUSTFILE.format(bootstrap=bootstrap)))
        print(f"broker {bootstrap}; {args.reps} repetitions of {args.seconds:g} s, "
              f"{args.users} Locust users, {PARTITIONS} partitions, profile 'default'")

        rates: dict[str, list[float]] = {"locust": [], "locust_per_user": [], "direct": [],
                                         "locust_plugins": [], "locust_whole_run": []}
        sizes: list[float] = []
        for rep in range(args.reps):
            order = ["locust", "locust_per_user", "locust_plugins", "direct"]
            if rep % 2:
                order.reverse()
            size = round(sizes[-1]) if sizes else 590  # the first direct run may come first
            for what in order:
                whole = None
                if what == "locust":
                    rate, whole, measured = locust_rate(bootstrap, "producer_load", args.users,
                                                        args.seconds, folder)
                    sizes.append(measured)
                    rates["locust_whole_run"].append(whole)
                elif what == "locust_per_user":
                    rate, _, _ = locust_rate(bootstrap, "producer_load", args.users,
                                             args.seconds, folder, ("--kafka-producer-per-user",))
                elif what == "locust_plugins":
                    rate, _, _ = locust_rate(bootstrap, plugin_file, args.users, args.seconds,
                                             folder)
                else:
                    rate = direct_rate(bootstrap, size, args.seconds)
                rates[what].append(rate)
                note = f"  (whole run {whole:,.0f})" if whole is not None else ""
                print(f"rep {rep + 1} {what:<16} {rate:>10,.0f} msg/s{note}", flush=True)

        median = {k: statistics.median(v) for k, v in rates.items()}
        ratios = {
            "locust_vs_direct": median["locust"] / median["direct"],
            "locust_whole_run_vs_direct": median["locust_whole_run"] / median["direct"],
            "locust_vs_locust_plugins": median["locust"] / median["locust_plugins"],
            "shared_vs_per_user_producer": median["locust"] / median["locust_per_user"],
        }
        for name, value in median.items():
            print(f"median {name:<16} {value:>10,.0f} msg/s")
        print(f"locust/direct {ratios['locust_vs_direct']:.2f} (goal >= 0.5), "
              f"locust/locust-plugins {ratios['locust_vs_locust_plugins']:.1f}x (goal >= 10), "
              f"shared/per-user producer {ratios['shared_vs_per_user_producer']:.2f}")
        print(json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()},
                          "msgs_per_s": {k: round(v) for k, v in median.items()},
                          "message_size_avg": round(statistics.median(sizes)),
                          "setup": {"reps": args.reps, "seconds": args.seconds,
                                    "users": args.users, "partitions": PARTITIONS,
                                    "profile": "default",
                                    "cluster": args.bootstrap or "embedded, 1 broker"}}))


if __name__ == "__main__":
    main()
