"""Brokers killed from outside during verified runs: does every run end with a saved result,
and do its delivery counts match an independent read of the topic?

Each run is `run_workload` in a process of its own (as `kafkabench run` is): a verified
workload on the 3-broker embedded cluster (6 partitions, RF 3, min.insync.replicas 2, one
consumer group). This script, another process, SIGKILLs a broker `--kill-at` seconds after
the producers go, as a broker dies in production (not through kafkabench's fault schedule),
and starts it again `--down` seconds later. Targets: the leader of partition 0, the active
KRaft controller, the group's coordinator, or two brokers at once (the leader of partition 0
and the next one).

Per run it records the run process's exit (an abort is SIGABRT / status 134), whether a
result was saved (or recovered from the run's journal), the sampler restarts, and the verify
figures against a read of the topic by kcat (Debian's, its own librdkafka 2.0) or, without
kcat, a plain confluent-kafka consumer: records and distinct `kb-seq` values read must equal
the verifier's read, read - duplicated, and acked - lost + failed_but_present.

    python benchmarks/survive_broker_kills.py [--runs 10] [--target leader|controller|coordinator|two]
        [--duration 40] [--rate 5000] [--kill-at 12] [--down 12] [--acks all]

The cluster is the embedded one named --cluster (default kb-survive, started if need be and
left running). The last line is one JSON object. Broker, run and driver share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from kafkabench.cluster.admin import admin_client, delete_topics
from kafkabench.cluster.local import LocalCluster
from kafkabench.cluster.nodes import active_controller, start_node
from kafkabench.core.errors import KafkabenchError
from kafkabench.results.store import load
from kafkabench.run.journal import CLOCK_FILE, JOURNAL_DIR
from kafkabench.verify.readback import VERIFY_HEADER

TARGETS = ("leader", "controller", "coordinator", "two")

RUN_SCRIPT = """
import json, sys
from kafkabench.runner import run_workload

if __name__ == "__main__":
    workload, out, run_id, acks = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    run_workload(workload, {"name": "survive", "producer": {"acks": acks}}, bootstrap=sys.argv[5],
                 out=out, run_id=run_id, keep_topics=True, progress=False, mode="process")
"""


def workload(run_id: str, *, duration_s: float, rate: int) -> dict[str, Any]:
    """The verified workload of one run (its topic is `kb-<run_id>-0`)."""
    return {"name": "survive-kill", "partitions": 6, "replication_factor": 3,
            "topic_config": {"min.insync.replicas": "2"}, "message_size": 100,
            "producer_rate": rate, "duration_s": duration_s, "consumer_groups": 1,
            "consumers_per_group": 1, "verify": True}


def java_hash(text: str) -> int:
    """Java's String.hashCode (the group coordinator is the leader of __consumer_offsets
    partition abs(hash) % partitions)."""
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: leader} from a Metadata request (no coordinator Admin request: see
    docs/librdkafka-coordinator-abort.md)."""
    md = admin_client(bootstrap).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def targets(cluster: LocalCluster, target: str, topic: str, group: str) -> list[int]:
    """The node ids to kill."""
    bootstrap = cluster.bootstrap_servers
    if target == "controller":
        return [active_controller(cluster)]
    if target == "coordinator":
        offsets = leaders(bootstrap, "__consumer_offsets")
        return [offsets[(java_hash(group) & 0x7FFFFFFF) % len(offsets)]]
    first = leaders(bootstrap, topic)[0]
    if target == "leader":
        return [first]
    others = sorted(n.id for n in cluster.nodes if n.id != first)
    return [first, others[0]]


def read_seqs(bootstrap: str, topic: str) -> tuple[Counter, str]:
    """{kb-seq value: times read} of every record of `topic`, by kcat if there is one, and
    which reader it was."""
    if shutil.which("kcat"):
        proc = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-J", "-q",
                               "-X", "isolation.level=read_committed"],
                              capture_output=True, timeout=300, check=True)
        seqs: Counter = Counter()
        # One JSON object a line; split on b"\n" only (kcat escapes it in strings): the header
        # values are binary, and str.splitlines() would also split at U+2028, U+0085, ...
        for line in filter(None, proc.stdout.split(b"\n")):
            headers = json.loads(line.decode("utf-8", "surrogateescape")).get("headers") or []
            pairs = dict(zip(headers[::2], headers[1::2], strict=False))
            if VERIFY_HEADER in pairs:
                seqs[pairs[VERIFY_HEADER].encode("utf-8", "surrogateescape")] += 1
        return seqs, "kcat"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kb-survive-check",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: the beginning
        left, seqs = set(parts), Counter()
        deadline = time.monotonic() + 300
        while left and time.monotonic() < deadline:
            for m in consumer.consume(1000, 1.0):
                if m.error() is not None:
                    if m.error().code() == -191:  # end of partition
                        left.discard(m.partition())
                    continue
                value = dict(m.headers() or []).get(VERIFY_HEADER)
                if value is not None:
                    seqs[value] += 1
        return seqs, "confluent-kafka consumer"
    finally:
        consumer.close()


def _has_records(bootstrap: str, topic: str) -> bool:
    """Whether `topic` exists and holds records (ListOffsets, no coordinator request)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kb-survive-probe"})
    try:
        md = consumer.list_topics(topic, timeout=5)
        parts = md.topics.get(topic)
        if parts is None or parts.error is not None:
            return False
        return any(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] > 0
                   for p in parts.partitions)
    except Exception:  # noqa: BLE001 - not there yet
        return False
    finally:
        consumer.close()


def wait_for_go(folder: Path, proc: subprocess.Popen, bootstrap: str, topic: str,
                timeout_s: float = 180.0) -> bool:
    """Wait until the run's producers went (its journal's clock; for a kafkabench without
    journals, the first records in the topic), or the run process ended."""
    clock = folder / JOURNAL_DIR / CLOCK_FILE
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if clock.exists() or _has_records(bootstrap, topic):
            return True
        time.sleep(0.5)
    return False


def one_run(cluster: LocalCluster, target: str, *, duration_s: float = 40, rate: int = 5000,
            kill_at_s: float = 12, down_s: float = 12, acks: str = "all",
            out: Path | None = None, source: str | None = None) -> dict[str, Any]:
    """One verified run with `target` killed from outside; its figures as a flat dict.

    Args:
        source: a kafkabench source tree the run process imports instead of this one (an
            earlier version, for a before/after comparison).
    """
    if target not in TARGETS:
        raise KafkabenchError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    bootstrap = cluster.bootstrap_servers
    run_id = f"survive-{target}-{uuid.uuid4().hex[:6]}"
    topic, group = f"kb-{run_id}-0", f"kb-{run_id}-0-g0"
    own_out = out is None
    out = Path(tempfile.mkdtemp(prefix="kb-survive-")) if out is None else out
    script = out / "run_survive.py"
    script.write_text(textwrap.dedent(RUN_SCRIPT))
    row: dict[str, Any] = {"target": target, "run_id": run_id, "acks": acks}
    env = {**os.environ, "PYTHONPATH": source} if source else None
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(workload(run_id, duration_s=duration_s, rate=rate)),
                             str(out), run_id, acks, bootstrap], env=env)
    killed: list[int] = []
    try:
        if not wait_for_go(out / run_id, proc, bootstrap, topic):
            raise KafkabenchError(f"run {run_id} did not start producing (exit {proc.poll()})")
        time.sleep(kill_at_s)
        if proc.poll() is None:
            killed = targets(cluster, target, topic, group)
            for node in killed:
                os.kill(cluster.node(node).pid, signal.SIGKILL)  # as a broker dies, from outside
            row["killed"] = killed
            time.sleep(down_s)
            for node in killed:
                start_node(cluster.refresh(), node)
            killed = []
        row["exit_code"] = proc.wait(timeout=duration_s + 600)
    finally:
        for node in killed:  # the cluster stays whole for the next run
            if not cluster.refresh().node(node).alive:
                start_node(cluster, node)
        if proc.poll() is None:
            proc.kill()
            row["exit_code"] = proc.wait()
    code = row["exit_code"]
    row["aborted"] = code in (-signal.SIGABRT, 128 + signal.SIGABRT)
    try:
        s = load(out / run_id).summary
        row.update(saved=True, recovered=bool(s.get("recovered")), complete=s.get("complete"),
                   sampler_restarts=s.get("sampler_restarts", 0),
                   **{k: s.get(k) for k in ("produced", "delivered", "failed", "consumed",
                                            "verify_acked", "verify_lost", "verify_duplicated",
                                            "verify_failed_but_present", "verify_read",
                                            "verify_complete")})
    except KafkabenchError as exc:
        row.update(saved=False, error=str(exc))
    if row.get("saved"):
        seqs, reader = read_seqs(bootstrap, topic)
        row.update(reader=reader, read_records=sum(seqs.values()), read_distinct=len(seqs))
        row["match"] = (row["verify_read"] == row["read_records"]
                        and row["verify_read"] - row["verify_duplicated"] == row["read_distinct"]
                        and row["verify_acked"] - row["verify_lost"] + row["verify_failed_but_present"]
                        == row["read_distinct"])
    try:
        delete_topics(bootstrap, [topic], timeout_s=30)
    except KafkabenchError:
        pass
    if own_out:
        shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--target", choices=TARGETS, default="leader")
    parser.add_argument("--duration", type=float, default=40)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--kill-at", type=float, default=12)
    parser.add_argument("--down", type=float, default=12)
    parser.add_argument("--acks", default="all")
    parser.add_argument("--cluster", default="kb-survive", help="embedded 3-broker cluster's name")
    parser.add_argument("--source", help="a kafkabench source tree for the run processes (e.g. a git "
                                         "worktree of an earlier commit: the 'before' of a comparison)")
    args = parser.parse_args()
    try:
        cluster = LocalCluster.attach(args.cluster)
    except KafkabenchError:
        cluster = LocalCluster(brokers=3, name=args.cluster).start()
    rows = []
    for i in range(args.runs):
        row = one_run(cluster, args.target, duration_s=args.duration, rate=args.rate,
                      kill_at_s=args.kill_at, down_s=args.down, acks=args.acks, source=args.source)
        rows.append(row)
        print(f"run {i + 1}/{args.runs} {row['target']} killed {row.get('killed')}: exit {row['exit_code']}"
              f"{' ABORTED' if row['aborted'] else ''}, saved {row.get('saved')}"
              f"{' (recovered)' if row.get('recovered') else ''}, restarts {row.get('sampler_restarts')}, "
              f"acked {row.get('verify_acked')} lost {row.get('verify_lost')} dup {row.get('verify_duplicated')}"
              f" | {row.get('reader')}: {row.get('read_records')} records, {row.get('read_distinct')} distinct"
              f" -> match {row.get('match')}", flush=True)
    summary = {"target": args.target, "acks": args.acks, "source": args.source or "this tree", "runs": len(rows),
               "aborts": sum(r["aborted"] for r in rows), "saved": sum(bool(r.get("saved")) for r in rows),
               "recovered": sum(bool(r.get("recovered")) for r in rows),
               "matches": sum(bool(r.get("match")) for r in rows),
               "sampler_restarts": sum(r.get("sampler_restarts") or 0 for r in rows),
               "lost": sum(r.get("verify_lost") or 0 for r in rows)}
    print(json.dumps(summary))
    return 0 if summary["aborts"] == 0 and summary["saved"] == summary["matches"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
