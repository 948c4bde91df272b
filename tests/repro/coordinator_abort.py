#!/usr/bin/env python3
"""Reproducer: librdkafka 2.16 aborts the process when a coordinator-targeted Admin API
request times out while the group coordinator is unreachable and the coordinator then comes
back (confluent-kafka 2.16.2, bundled librdkafka 2.16.0):

    rdkafka_queue.h:1086: rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0' failed.
    -> SIGABRT, exit status 134 (-6 from subprocess)

One timed-out call is enough (a fresh client, one describe_consumer_groups(request_timeout=2)
sent after the coordinator was SIGKILLed: aborted 3 of 3 times, 13-16 s after the kill). A
NOT_COORDINATOR answer to list_consumer_group_offsets (a SIGSTOPped coordinator resuming) is
another crash, SIGSEGV in rd_kafka_cgrp_op (librdkafka issue #5040). See
docs/librdkafka-coordinator-abort.md for the analysis and the measured frequencies.

The `loop` command needs nothing but confluent-kafka: it hammers the chosen calls from a few
threads (each one call in flight at a time) and prints one line per second, while somebody
else SIGKILLs the group's coordinator broker:

    python coordinator_abort.py setup       --bootstrap HOST:PORT --group G --topic T
    python coordinator_abort.py coordinator --bootstrap HOST:PORT --group G   # prints its node id
    python coordinator_abort.py loop        --bootstrap HOST:PORT --group G --topic T \\
        --calls offsets,describe --request-timeout 5 --duration 120
    # meanwhile, in another shell: kill -9 <pid of the coordinator broker>

Calls (--calls, comma-separated; each thread goes round them):
    offsets    AdminClient.list_consumer_group_offsets   (OffsetFetch via Admin API, coordinator)
    describe   AdminClient.describe_consumer_groups      (DescribeGroups via Admin API, coordinator)
    committed  Consumer.committed (group.id, never subscribes)   (OffsetFetch via the consumer)
    metadata   AdminClient.list_topics                   (Metadata, any broker)

The `drive` command runs kill cycles on kafkabench's embedded cluster (needs kafkabench):
one `loop` child per variant, the coordinator found with describe_consumer_groups (in a child)
before every kill, an aborted child restarted for the next cycle:

    kafkabench cluster up --brokers 3 --name repro
    python tests/repro/coordinator_abort.py drive --cluster repro --cycles 20 \\
        --event kill-coordinator --variants admin,offsets,describe,short-lived,workaround
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter

# The text glibc's assert() prints when the bug hits (stderr), and the exit status.
ASSERTION = "rd_kafka_enq_once_del_source_return: Assertion"
ASSERTION_EXPR = "eonce->refcnt > 0"
ABORT_RETURNCODE = -signal.SIGABRT  # subprocess's; a shell says 134


def known_abort(returncode: int | None, stderr: str) -> bool:
    """Whether a child ended the way this bug ends it: SIGABRT with the assertion text."""
    return returncode == ABORT_RETURNCODE and ASSERTION in stderr and ASSERTION_EXPR in stderr


# --------------------------------------------------------------------------- the loop

def _client_conf(args) -> dict:
    conf = {"bootstrap.servers": args.bootstrap, "log_level": args.log_level,
            # A client never creates topics by asking for their metadata.
            "allow.auto.create.topics": False}
    if args.debug:
        conf["debug"] = args.debug
    for item in args.conf:
        key, _, value = item.partition("=")
        conf[key] = value
    return conf


def _partitions(admin, topic: str, timeout: float) -> list[int]:
    md = admin.list_topics(topic=topic, timeout=timeout).topics[topic]
    if md.error is not None:
        raise SystemExit(f"topic {topic!r}: {md.error} (create it with the `setup` command)")
    return sorted(md.partitions)


def cmd_setup(args) -> int:
    """Create the topic (if missing) and commit an offset of the group on every partition."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = _client_conf(args)
    admin = AdminClient(conf)
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, args.replication_factor)],
                                  request_timeout=30)
    try:
        futures[args.topic].result(timeout=60)
    except Exception as exc:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS is fine
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    deadline = time.monotonic() + 60
    while True:
        md = admin.list_topics(topic=args.topic, timeout=10).topics[args.topic]
        if md.error is None and md.partitions and all(p.leader >= 0 for p in md.partitions.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {args.topic} has no leaders after 60 s")
        time.sleep(0.2)
    parts = sorted(md.partitions)
    producer = Producer({**conf, "acks": "all"})
    for i in range(10 * len(parts)):
        producer.produce(args.topic, b"x", partition=i % len(parts))
    if producer.flush(30):
        raise SystemExit("messages not delivered in 30 s")
    consumer = Consumer({**conf, "group.id": args.group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(args.topic, p, 5) for p in parts], asynchronous=False)
    consumer.close()
    print(f"setup topic={args.topic} partitions={len(parts)} group={args.group} committed=5", flush=True)
    return 0


def cmd_coordinator(args) -> int:
    """Print the group coordinator's node id (describe_consumer_groups), nothing else."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_client_conf(args))
    desc = admin.describe_consumer_groups([args.group], request_timeout=args.request_timeout)[args.group]
    print(desc.result().coordinator.id, flush=True)
    return 0


class _Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = Counter()
        self.err = Counter()
        self.inflight = 0
        self.last_error = ""

    def done(self, call: str, error: BaseException | None) -> None:
        with self.lock:
            self.inflight -= 1
            if error is None:
                self.ok[call] += 1
            else:
                self.err[call] += 1
                self.last_error = f"{call}: {type(error).__name__}: {error}"[:160]


def _make_call(call: str, args, conf: dict, shared: dict, partitions: list[int]):
    """A function doing one `call` and waiting for its result (raises on error)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    t = args.request_timeout
    # The future's own wait: a bit longer than the request's timeout, so the request's
    # timeout (inside librdkafka) is what ends it.
    wait = t + 5

    def admin():
        return AdminClient(conf) if args.short_lived else shared["admin"]

    if call == "offsets":
        def fn():
            a = admin()
            req = [ConsumerGroupTopicPartitions(args.group)]
            a.list_consumer_group_offsets(req, request_timeout=t)[args.group].result(timeout=wait)
    elif call == "describe":
        def fn():
            a = admin()
            a.describe_consumer_groups([args.group], request_timeout=t)[args.group].result(timeout=wait)
    elif call == "committed":
        from confluent_kafka import Consumer
        consumer = Consumer({**conf, "group.id": args.group, "enable.auto.commit": False})
        tps = [TopicPartition(args.topic, p) for p in partitions]

        def fn():
            consumer.committed(tps, timeout=t)
    elif call == "metadata":
        def fn():
            admin().list_topics(topic=args.topic, timeout=t)
    else:
        raise SystemExit(f"unknown call {call!r}: offsets, describe, committed, metadata")
    return fn


def cmd_loop(args) -> int:
    from confluent_kafka import libversion, version
    from confluent_kafka.admin import AdminClient

    calls = [c.strip() for c in args.calls.split(",") if c.strip()]
    conf = _client_conf(args)
    shared = {"admin": AdminClient(conf)}
    partitions = _partitions(shared["admin"], args.topic, 30) if "committed" in calls else []
    print(f"start pid={os.getpid()} confluent-kafka={version()} librdkafka={libversion()[0]} "
          f"calls={','.join(calls)} threads={args.threads} request_timeout={args.request_timeout:g}s "
          f"short_lived={args.short_lived} group={args.group}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stats = _Stats()

    def worker(i: int) -> None:
        fns = [(c, _make_call(c, args, conf, shared, partitions)) for c in calls]
        k = i  # threads start on different calls
        while not stop.is_set():
            call, fn = fns[k % len(fns)]
            k += 1
            with stats.lock:
                stats.inflight += 1
            try:
                fn()
                stats.done(call, None)
            except Exception as exc:  # noqa: BLE001 - errors are counted, never fatal
                stats.done(call, exc)
            stop.wait(args.interval)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    for th in threads:
        th.start()
    t0 = time.monotonic()
    prev = 0
    while not stop.wait(1.0):
        t = time.monotonic() - t0
        with stats.lock:
            ok, err = sum(stats.ok.values()), sum(stats.err.values())
            per_call = " ".join(f"{c}={stats.ok[c]}/{stats.err[c]}" for c in calls)
            line = (f"progress t={t:.0f}s calls={ok + err} ok={ok} errors={err} "
                    f"rate={ok + err - prev}/s inflight={stats.inflight} [{per_call}] "
                    f"last_error={stats.last_error!r}")
            prev = ok + err
        print(line, flush=True)
        if args.duration and t >= args.duration:
            break
    stop.set()
    for th in threads:
        th.join(args.request_timeout + 10)
    with stats.lock:
        ok, err = sum(stats.ok.values()), sum(stats.err.values())
    print(f"done calls={ok + err} ok={ok} errors={err}", flush=True)
    return 0


# --------------------------------------------------------------------------- the driver
# Kill cycles on a kafkabench embedded cluster (LocalCluster); also used by
# tests/test_librdkafka_abort.py.

#: Variant name -> `loop` arguments.
VARIANTS = {
    "admin": ["--calls", "offsets,describe"],  # what kafkabench's LagSampler did
    "offsets": ["--calls", "offsets"],
    "describe": ["--calls", "describe"],
    "short-lived": ["--calls", "offsets,describe", "--short-lived"],
    "workaround": ["--calls", "committed,metadata"],
    "committed": ["--calls", "committed"],
    "metadata": ["--calls", "metadata"],
    # librdkafka's default Admin timeout (socket.timeout.ms): longer than the outage.
    "admin-60s": ["--calls", "offsets,describe", "--request-timeout", "60"],
    # The lag sampler's client setting: a silent (paused) broker's connection is closed after 5 s.
    "admin-sock5s": ["--calls", "offsets,describe", "--conf", "socket.timeout.ms=5000"],
}

EVENTS = ("kill-coordinator", "kill-other", "pause-coordinator")


class Child:
    """One `loop` child of a variant; restarted after it dies."""

    def __init__(self, variant: str, argv: list[str], logdir: str, incarnation: int):
        import subprocess

        self.variant = variant
        self.incarnation = incarnation
        base = os.path.join(logdir, f"{variant}.{incarnation}")
        self.out_path, self.err_path = base + ".out", base + ".err"
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        self.started = time.monotonic()
        self.ended: float | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit status, or None while running; notes when the end was first seen."""
        with self._lock:
            rc = self.proc.poll()
            if rc is not None and self.ended is None:
                self.ended = time.monotonic()
                self._out.close()
                self._err.close()
            return rc

    def stdout(self) -> str:
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def last_progress(self) -> dict:
        """The counters of the child's last progress (or done) line."""
        found: dict = {}
        for line in self.stdout().splitlines():
            if line.startswith(("progress ", "done ")):
                found = dict(kv.split("=", 1) for kv in line.split()[1:]
                             if "=" in kv and kv.split("=", 1)[0] in ("calls", "ok", "errors"))
        return {k: int(v) for k, v in found.items()}

    def working(self) -> bool:
        """Alive, and has completed a call successfully."""
        return self.poll() is None and self.last_progress().get("ok", 0) > 0

    def stop(self, timeout: float = 20) -> None:
        if self.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except Exception:  # noqa: BLE001 - TimeoutExpired
                self.proc.kill()
                self.proc.wait(10)
        self.poll()


def _script_argv(python: str) -> list[str]:
    return [python, os.path.abspath(__file__)]


def find_coordinator(bootstrap: str, group: str, python: str = sys.executable,
                     timeout: float = 30) -> int:
    """The group's coordinator (describe_consumer_groups), asked in a child process: an
    AdminClient of the caller's own never sends a coordinator request."""
    import subprocess

    proc = subprocess.run([*_script_argv(python), "coordinator", "--bootstrap", bootstrap,
                           "--group", group, "--request-timeout", "10"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"finding the coordinator failed (exit {proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr[-2000:]}")
    return int(proc.stdout.strip().splitlines()[-1])


def setup(bootstrap: str, group: str, topic: str, python: str = sys.executable) -> None:
    import subprocess

    proc = subprocess.run([*_script_argv(python), "setup", "--bootstrap", bootstrap,
                           "--group", group, "--topic", topic],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"setup failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-2000:]}")


def drive(cluster, *, variants: list[str], cycles: int, event: str = "kill-coordinator",
          down_s: float = 12.0, settle_s: float = 4.0, max_s: float | None = None,
          group: str = "abort-repro", topic: str = "abort-repro", request_timeout: float = 5.0,
          threads: int = 3, interval: float = 0.05, python: str = sys.executable,
          logdir: str | None = None, extra: dict[str, list[str]] | None = None,
          log=print) -> dict:
    """Run `cycles` fault cycles on `cluster` (a kafkabench LocalCluster, every node running)
    with one `loop` child per variant, and count what the children did.

    A cycle: find the coordinator (child, describe_consumer_groups) -> kill it (or another
    node, or SIGSTOP it) -> `down_s` -> restart (faults.start_node) or resume -> `settle_s`.
    A child's end is timed by a poller thread (0.1 s) and belongs to the cycle whose event came
    last before it. A child that died is restarted at the start of the next cycle; a cycle
    counts for a variant ("witnessed") when its child was alive and had completed a call at
    the moment of the event. Every node runs again when this returns (or raises).

    Returns:
        {"variants": {name: {"cycles", "aborts", "other_deaths", "calls", "ok", "errors",
        "abort_after_s": [...], "deaths": [...]}}, "cycles": [...], "elapsed_s", ...}
    """
    import tempfile

    from kafkabench.cluster.nodes import start_node

    logdir = logdir or tempfile.mkdtemp(prefix="coordinator-abort-")
    os.makedirs(logdir, exist_ok=True)
    bootstrap = cluster.bootstrap_servers
    setup(bootstrap, group, topic, python)
    t_start = time.monotonic()
    incarnations = Counter()
    children: dict[str, Child] = {}
    ended: list[Child] = []
    result = {name: {"cycles": 0, "aborts": 0, "other_deaths": 0, "calls": 0, "ok": 0, "errors": 0,
                     "abort_after_s": [], "deaths": []} for name in variants}
    cycle_rows: list[dict] = []
    # (monotonic time, cycle, phase, time of the cycle's event): what was going on when.
    timeline: list[tuple[float, int | None, str, float | None]] = [(t_start, None, "start", None)]

    def mark(cycle: int | None, phase: str, t_event: float | None) -> None:
        timeline.append((time.monotonic(), cycle, phase, t_event))

    def at(t: float) -> tuple[int | None, str, float | None]:
        entry = [e for e in timeline if e[0] <= t][-1]
        return entry[1], entry[2], entry[3]

    def spawn(name: str) -> None:
        incarnations[name] += 1
        argv = [*_script_argv(python), "loop", "--bootstrap", bootstrap, "--group", group,
                "--topic", topic, "--request-timeout", str(request_timeout), "--threads",
                str(threads), "--interval", str(interval), *VARIANTS[name],
                *(extra or {}).get(name, [])]
        children[name] = Child(name, argv, logdir, incarnations[name])

    def check_children(stopping: bool = False) -> None:
        for name, child in list(children.items()):
            rc = child.poll()
            if rc is None:
                continue
            del children[name]
            ended.append(child)
            if stopping and rc == 0:  # stopped by us (SIGTERM), exited cleanly
                continue
            err = child.stderr()
            cycle, phase, t_event = at(child.ended)
            since = None if t_event is None else round(child.ended - t_event, 1)
            death = {"incarnation": child.incarnation, "returncode": rc,
                     "known_abort": known_abort(rc, err), "cycle": cycle, "phase": phase,
                     "after_event_s": since, "stderr_tail": err[-600:]}
            r = result[name]
            r["deaths"].append(death)
            if death["known_abort"]:
                r["aborts"] += 1
                r["abort_after_s"].append(since)
            else:
                r["other_deaths"] += 1
            log(f"  [{child.ended - t_start:6.1f}s] {name} child #{child.incarnation} ended: "
                f"rc={rc} known_abort={death['known_abort']} cycle={cycle} "
                f"{since}s after the event ({phase})")

    def sleep_checking(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            check_children()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
        check_children()

    # Times every child's end to 0.1 s, also while the main thread waits in start_node().
    polling = threading.Event()

    def poller() -> None:
        while not polling.wait(0.1):
            for child in list(children.values()):
                child.poll()

    poll_thread = threading.Thread(target=poller, daemon=True)
    poll_thread.start()
    try:
        for name in variants:
            spawn(name)
        for cycle in range(1, cycles + 1):
            if max_s is not None and time.monotonic() - t_start > max_s:
                log(f"time limit {max_s:g} s reached after {cycle - 1} cycles")
                break
            for name in variants:
                if name not in children:
                    spawn(name)
            # Wait (bounded) until every child works: the cycle should count for all.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(c.working() for c in children.values()):
                sleep_checking(0.5)
            cluster.refresh()
            coordinator = find_coordinator(bootstrap, group, python)
            if event == "kill-other":
                target = next(n.id for n in cluster.nodes if n.id != coordinator)
            else:
                target = coordinator
            witnesses = [name for name, c in children.items() if c.working()]
            for name in witnesses:
                result[name]["cycles"] += 1
            row = {"cycle": cycle, "event": event, "coordinator": coordinator, "target": target,
                   "witnesses": witnesses, "t": round(time.monotonic() - t_start, 1)}
            log(f"cycle {cycle}: {event} node {target} (coordinator {coordinator}) "
                f"witnessed by {','.join(witnesses) or 'none'}")
            t_event = time.monotonic()
            mark(cycle, "down", t_event)
            if event == "pause-coordinator":
                cluster.pause(target)
            else:
                cluster.kill(target)
            sleep_checking(down_s)
            t_restore = time.monotonic()
            mark(cycle, "restart", t_event)
            row["restore_at_s"] = round(t_restore - t_event, 1)
            if event == "pause-coordinator":
                cluster.resume(target)
            else:
                start_node(cluster, target)
            mark(cycle, "after restart", t_event)
            row["restored_at_s"] = round(time.monotonic() - t_event, 1)
            sleep_checking(settle_s)
            cycle_rows.append(row)
    finally:
        check_children()
        mark(None, "stopping", None)
        for child in list(children.values()):
            child.stop(timeout=request_timeout + 15)
        check_children(stopping=True)  # one that died on the way out counts, known or not
        polling.set()
        poll_thread.join()
        # Every node running again, whatever happened.
        cluster.refresh()
        for n in cluster.nodes:
            if n.alive and n.paused:
                cluster.resume(n.id)
            elif not n.alive:
                start_node(cluster, n.id)
    for child in ended:
        counts = child.last_progress()
        r = result[child.variant]
        for k in ("calls", "ok", "errors"):
            r[k] += counts.get(k, 0)
    return {"variants": result, "cycles": cycle_rows, "elapsed_s": round(time.monotonic() - t_start, 1),
            "logdir": logdir, "event": event, "request_timeout": request_timeout}


def cmd_drive(args) -> int:
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    from kafkabench.cluster.local import LocalCluster

    cluster = LocalCluster.attach(args.cluster)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: {', '.join(VARIANTS)}")
    out = drive(cluster, variants=variants, cycles=args.cycles, event=args.event,
                down_s=args.down_s, settle_s=args.settle_s, max_s=args.max_s,
                group=args.group, topic=args.topic, request_timeout=args.request_timeout,
                threads=args.threads, interval=args.interval, logdir=args.logdir)
    print(f"\n{args.event}, request timeout {args.request_timeout:g} s, {len(out['cycles'])} cycles "
          f"in {out['elapsed_s']:.0f} s (logs: {out['logdir']})")
    print(f"{'variant':<12} {'cycles':>6} {'aborts':>6} {'other':>5} {'calls':>8} {'errors':>7}  abort s after event")
    for name, r in out["variants"].items():
        print(f"{name:<12} {r['cycles']:>6} {r['aborts']:>6} {r['other_deaths']:>5} {r['calls']:>8} "
              f"{r['errors']:>7}  {r['abort_after_s']}")
    phases = Counter((name, d["phase"], d["known_abort"], d["returncode"])
                     for name, r in out["variants"].items() for d in r["deaths"])
    for (name, phase, known, rc), n in sorted(phases.items(), key=str):
        print(f"  {name}: {n} x {'known abort' if known else f'other end (rc {rc})'} while {phase}")
    for row in out["cycles"]:
        print(f"  cycle {row['cycle']}: node {row['target']} restarting {row['restore_at_s']} s "
              f"-> up {row['restored_at_s']} s after the event")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def client_args(sp, *, group_topic: bool = True):
        sp.add_argument("--bootstrap", required=True)
        sp.add_argument("--group", required=True)
        if group_topic:
            sp.add_argument("--topic", default="abort-repro")
        sp.add_argument("--request-timeout", type=float, default=5.0,
                        help="each call's timeout in seconds (default 5, as kafkabench's lag sampler)")
        sp.add_argument("--log-level", type=int, default=3, help="librdkafka log_level (default 3)")
        sp.add_argument("--debug", default="", help="librdkafka debug contexts, e.g. admin,broker")
        sp.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="more librdkafka settings, e.g. socket.timeout.ms=5000 (repeatable)")

    sp = sub.add_parser("setup", help="create the topic and commit offsets for the group")
    client_args(sp)
    sp.add_argument("--partitions", type=int, default=3)
    sp.add_argument("--replication-factor", type=int, default=3)
    sp.set_defaults(fn=cmd_setup)

    sp = sub.add_parser("coordinator", help="print the group coordinator's node id")
    client_args(sp, group_topic=False)
    sp.set_defaults(fn=cmd_coordinator)

    sp = sub.add_parser("loop", help="hammer the calls, a line per second")
    client_args(sp)
    sp.add_argument("--calls", default="offsets,describe",
                    help="comma-separated: offsets, describe, committed, metadata")
    sp.add_argument("--threads", type=int, default=3, help="threads, each one call in flight")
    sp.add_argument("--interval", type=float, default=0.05, help="pause after each call (s)")
    sp.add_argument("--short-lived", action="store_true", help="a new AdminClient for every call")
    sp.add_argument("--duration", type=float, default=0, help="seconds (0: until SIGTERM/SIGINT)")
    sp.set_defaults(fn=cmd_loop)

    sp = sub.add_parser("drive", help="kill cycles on a kafkabench embedded cluster")
    sp.add_argument("--cluster", default="repro", help="embedded cluster name")
    sp.add_argument("--variants", default="admin,workaround", help=", ".join(VARIANTS))
    sp.add_argument("--event", choices=EVENTS, default="kill-coordinator")
    sp.add_argument("--cycles", type=int, default=20)
    sp.add_argument("--down-s", type=float, default=12.0)
    sp.add_argument("--settle-s", type=float, default=4.0)
    sp.add_argument("--max-s", type=float, default=None, help="stop starting cycles after this")
    sp.add_argument("--group", default="abort-repro")
    sp.add_argument("--topic", default="abort-repro")
    sp.add_argument("--request-timeout", type=float, default=5.0)
    sp.add_argument("--threads", type=int, default=3)
    sp.add_argument("--interval", type=float, default=0.05)
    sp.add_argument("--logdir", default=None)
    sp.add_argument("--json", default=None, help="write the counts here")
    sp.set_defaults(fn=cmd_drive)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - say what failed, exit 1
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
