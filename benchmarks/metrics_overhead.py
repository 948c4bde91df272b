"""What observing a run costs: max-rate produce with and without the Prometheus endpoint and
broker scraping.

Per repetition, the same max-rate produce (--messages records of --size bytes, one producer,
acks=1, no consumer) runs twice on the same broker, the order alternating between
repetitions:

  - off: no metrics endpoint, no broker scraping (`metrics_port=None, broker_metrics=False`);
  - on:  the run serves its metrics (`metrics_port=0`), a scraper reads that endpoint each
         second as Prometheus would, and kafkabench scrapes every broker's JMX exporter each
         second into `broker_metrics`.

Prints msgs/s of both and the ratio on/off per repetition, and their medians; the goal is a
ratio of at least 0.97 (no more than 3% slower). The last line is one JSON object.

    python benchmarks/metrics_overhead.py [--bootstrap HOST:PORT --broker-metrics URL ...]
                                         [--repeats 5] [--messages 8000000] [--quick]

Without --bootstrap it uses the running embedded cluster (its exporters), else starts a
1-broker one. Note: the broker, its exporter, the scraper and the producer share this
machine's cores; compare the ratio, not absolute figures across machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import urllib.request
from contextlib import ExitStack

import psutil

from kafkabench.cluster.local import LocalCluster, resolve_bootstrap
from kafkabench.core.errors import ConfigError, KafkabenchError, NoClusterError
from kafkabench.observe.brokermetrics import broker_metrics_urls
from kafkabench.observe.metrics import RunMetrics
from kafkabench.run.session import RunObserver
from kafkabench.runner import run_workload


class _Scraper(RunObserver):
    """Reads the run's metrics endpoint each second, as a Prometheus server would."""

    def __init__(self, metrics: RunMetrics) -> None:
        self.metrics, self.scrapes, self._stop = metrics, 0, threading.Event()

    def on_go(self, session) -> None:
        def scrape() -> None:
            while not self._stop.wait(1.0):
                try:
                    with urllib.request.urlopen(self.metrics.url, timeout=5) as response:
                        response.read()
                except OSError:
                    return  # the run ended and closed its endpoint
                self.scrapes += 1

        threading.Thread(target=scrape, daemon=True).start()

    def on_end(self, session) -> None:
        self._stop.set()


def produce(bootstrap: str, messages: int, size: int, urls: dict | None) -> dict:
    """One max-rate produce run; observed (endpoint served and scraped, brokers scraped) when
    `urls`, the brokers' exporters, is given."""
    workload = {"name": "metrics-overhead", "message_size": size, "message_count": messages,
                "duration_s": 0, "consumer_groups": 0, "partitions": 3}
    observers: list[RunObserver] = []
    if urls is not None:
        metrics = RunMetrics(0)
        observers = [metrics, _Scraper(metrics)]
    s = run_workload(workload, {"producer": {"acks": 1}}, bootstrap=bootstrap, progress=False,
                     mode="thread", observers=observers,
                     broker_metrics=urls if urls is not None else False).summary
    if s["delivered"] != messages:
        raise RuntimeError(f"{s['delivered']:,} of {messages:,} delivered: {s['errors']}")
    return {"rate": s["publish_rate"], "scrapes": observers[1].scrapes if observers else 0,
            "broker_scrape_errors": s.get("broker_scrape_errors", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="bootstrap servers (default: the running embedded "
                                            "cluster, else a 1-broker one started for the run)")
    parser.add_argument("--broker-metrics", action="append", metavar="URL",
                        help="an external broker's exporter URL, repeatable (default: the embedded "
                             "cluster's)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions; medians are printed")
    parser.add_argument("--messages", type=int, help="records per run (default: 8000000, about 10 s at max rate here; --quick: 1000000)")
    parser.add_argument("--size", type=int, default=100, help="record size in bytes (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="fewer messages, 2 repetitions")
    args = parser.parse_args()
    messages = args.messages or (1_000_000 if args.quick else 8_000_000)
    repeats = 2 if args.quick and args.repeats == 5 else args.repeats
    if min(messages, repeats, args.size) < 1:
        parser.error("--messages, --repeats and --size must be >= 1")

    rates: dict[str, list[float]] = {"off": [], "on": []}
    with ExitStack() as stack:
        try:
            bootstrap = resolve_bootstrap(args.bootstrap)
        except NoClusterError:
            bootstrap = stack.enter_context(LocalCluster(
                brokers=1, base_dir=tempfile.mkdtemp(prefix="kb-bench-"))).bootstrap_servers
        urls = ({u: u for u in args.broker_metrics} if args.broker_metrics
                else broker_metrics_urls(bootstrap))
        if not urls:
            raise ConfigError(f"no broker exporter to scrape at {bootstrap}: start the embedded cluster "
                              "with `kafkabench cluster up`, or pass --broker-metrics URL")
        print(f"broker {bootstrap}, exporters {', '.join(urls.values())}; {messages:,} records of "
              f"{args.size} B at max rate, {repeats} repetition(s); the broker, its exporter and the "
              f"producer share this machine's {psutil.cpu_count()} cores", flush=True)
        produce(bootstrap, min(messages, 50_000), args.size, None)  # JIT and page cache, not measured
        for rep in range(repeats):
            for mode in (("off", "on") if rep % 2 == 0 else ("on", "off")):
                r = produce(bootstrap, messages, args.size, urls if mode == "on" else None)
                rates[mode].append(r["rate"])
                print(f"  rep {rep + 1} {mode:>3}: {r['rate']:>10,.0f} msgs/s"
                      + (f" ({r['scrapes']} endpoint scrapes)" if mode == "on" else ""), flush=True)
    ratios = [on / off for on, off in zip(rates["on"], rates["off"])]
    ratio = statistics.median(ratios)
    print(f"\nmedians of {repeats} repetition(s): off {statistics.median(rates['off']):,.0f} msgs/s, "
          f"on {statistics.median(rates['on']):,.0f} msgs/s; ratio on/off {ratio:.3f} "
          f"(per repetition: {', '.join(f'{x:.3f}' for x in ratios)}); goal >= 0.970: "
          f"{'met' if ratio >= 0.97 else 'NOT met'}")
    print(json.dumps({"off_rate": round(statistics.median(rates["off"]), 1),
                      "on_rate": round(statistics.median(rates["on"]), 1), "ratio": round(ratio, 4),
                      "ratios": [round(x, 4) for x in ratios], "repeats": repeats, "messages": messages,
                      "size": args.size, "cores": psutil.cpu_count()}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkabenchError as exc:
        print(f"metrics_overhead: {exc}", file=sys.stderr)
        sys.exit(1)
