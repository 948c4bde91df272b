"""Fidelity of the measurement engine against a real broker: counts, lag, rates, pauses, faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import ctrl_c_works, explain, run_child
from kafkabench.cluster.admin import create_topic, delete_topics
from kafkabench.cluster.install import install_kafka
from kafkabench.cluster.lag import LagSampler
from kafkabench.cluster.local import LocalCluster
from kafkabench.core.errors import ConfigError
from kafkabench.results.store import load
from kafkabench.run.session import RunObserver
from kafkabench.runner import consume_topic, run_workload


def _workload(**fields) -> dict:
    return {"name": "test", "partitions": 3, "message_size": 200, "duration_s": 3, **fields}


def test_every_message_consumed_once_per_group(bootstrap, tmp_path):
    result = run_workload(_workload(message_count=20_000, duration_s=0, consumer_groups=2,
                                    consumers_per_group=2, key_distribution="random"),
                          None, bootstrap=bootstrap, out=tmp_path, progress=False)
    s = result.summary
    assert s["produced"] == s["delivered"] == 20_000
    assert s["failed"] == 0
    assert s["consumed"] == 40_000
    assert sorted(s["consumed_by_group"].values()) == [20_000, 20_000]
    assert s["warnings"] == []
    # Two members per group: each group had rebalances, the first assignment included.
    groups = set(result.rebalances["group"])
    assert len(groups) == 2
    # Saved and loaded back, the summary is the same.
    loaded = load(tmp_path / result.run_id)
    assert loaded.summary["consumed"] == 40_000
    assert loaded.histograms["e2e_latency_us"].count == 40_000


def test_fixed_rate_is_held_within_two_percent(bootstrap):
    result = run_workload(_workload(producer_rate=2000, duration_s=5, consumer_groups=0), None,
                          bootstrap=bootstrap, progress=False)
    s = result.summary
    assert s["rate_held"] is True
    assert abs(s["publish_rate"] - 2000) / 2000 < 0.02, s["publish_rate"]
    assert s["publish_delay_us_p50"] < 5_000
    # The per-second series shows the rate, second by second.
    assert (result.timeseries["produced"].iloc[1:4].between(1900, 2100)).all()


def test_infeasible_rate_is_reported_not_hidden(bootstrap):
    # 5 million msgs/s is far beyond one Python producer on this machine.
    result = run_workload(_workload(producer_rate=5_000_000, duration_s=3, consumer_groups=0,
                                    message_size=100), None, bootstrap=bootstrap, progress=False)
    s = result.summary
    assert s["rate_held"] is False
    assert s["publish_rate"] < 0.98 * 5_000_000
    # How late the sends were grows through the run: the coordinated-omission correction.
    assert s["publish_delay_us_max"] > 1_000_000
    assert any("not held" in w for w in s["warnings"])


def test_lag_matches_kafka_consumer_groups_describe(bootstrap):
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-g-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions=3)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(3000):
        p.produce(topic, b"x" * 10, key=b"k%d" % i)
        p.poll(0)
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    consumed = 0
    deadline = time.monotonic() + 30
    while consumed < 1200 and time.monotonic() < deadline:
        msgs = c.consume(100, timeout=1)
        consumed += len(msgs)
        if msgs:
            c.commit(asynchronous=False)
    c.close()  # stopped, so the lag stands still while both tools look

    ours = LagSampler(bootstrap, [group]).sample_once()
    dist = install_kafka()
    proc = run_child(dist.java_command(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server",
        bootstrap, "--describe", "--group", group), timeout=120)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    theirs = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == topic:
            # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
            theirs[int(cols[2])] = (cols[3], cols[4], cols[5])
    # The tool lists only partitions with a committed offset; ours has the others as NA.
    assert theirs and set(theirs) <= {0, 1, 2}, out
    for row in ours.itertuples():
        if row.partition not in theirs:
            assert ours.loc[ours["partition"] == row.partition, "committed"].isna().all()
            continue
        current, log_end, lag = theirs[row.partition]
        assert (str(row.committed), str(row.log_end), str(row.lag_msgs)) == (current, log_end, lag)
    assert int(ours["lag_msgs"].fillna(0).sum()) == sum(int(v[2]) for v in theirs.values())
    delete_topics(bootstrap, [topic])


def test_config_errors_before_anything_runs(bootstrap):
    with pytest.raises(ConfigError, match="producer_rate"):
        run_workload(_workload(producer_rate=-5), None, bootstrap=bootstrap)
    with pytest.raises(ConfigError, match="partitions"):
        run_workload(_workload(partitions=0), None, bootstrap=bootstrap)
    with pytest.raises(ConfigError, match="no.such.key"):
        run_workload(_workload(), {"producer": {"no.such.key": 1}}, bootstrap=bootstrap)
    with pytest.raises(ConfigError, match="commit='sometimes'"):
        run_workload(_workload(), None, bootstrap=bootstrap, commit="sometimes")
    with pytest.raises(ConfigError, match="nonsense"):
        run_workload(_workload(), "nonsense", bootstrap=bootstrap)


def test_consume_topic_like_consumer_perf_test(bootstrap):
    topic = f"cons-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=2)
    run_workload(_workload(message_count=5000, duration_s=0, consumer_groups=0), None,
                 bootstrap=bootstrap, topics=[topic], progress=False)
    result = consume_topic(topic, messages=5000, bootstrap=bootstrap, progress=False)
    s = result.summary
    assert s["consumed"] >= 5000
    assert s["consume_rate"] > 0 and s["rebalance_time_ms"] > 0
    assert s["consumed_bytes"] >= 5000 * 200
    delete_topics(bootstrap, [topic])


def test_consume_topic_commits_as_asked(bootstrap):
    """sync-message commits once per message; every mode leaves the group's offsets at the
    end of what it read (auto commits on close)."""
    topic = f"cons-commit-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=2)
    run_workload(_workload(message_count=400, duration_s=0, consumer_groups=0), None,
                 bootstrap=bootstrap, topics=[topic], progress=False)
    try:
        for mode in ("auto", "sync", "sync-message"):
            group = f"commit-{mode}-{uuid.uuid4().hex[:6]}"
            s = consume_topic(topic, messages=400, bootstrap=bootstrap, progress=False, commit=mode,
                              group=group, timeout_s=10).summary
            assert s["consumed"] == 400 and s["commit"] == mode
            if mode == "sync-message":
                assert s["offset_commits"] >= 400
            probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
            committed = probe.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
            ends = [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)]
            probe.close()
            assert [tp.offset if tp.offset >= 0 else 0 for tp in committed] == ends, mode
        with pytest.raises(ConfigError, match="commit"):
            consume_topic(topic, messages=1, bootstrap=bootstrap, commit="sometimes")
    finally:
        delete_topics(bootstrap, [topic])


def test_workload_headers_are_on_every_message(bootstrap):
    topic = f"hdr-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1)
    headers = {"event-type": "OrderCreated", "version": "1"}
    run_workload(_workload(message_count=300, duration_s=0, consumer_groups=0, headers=headers),
                 None, bootstrap=bootstrap, topics=[topic], progress=False)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hdr-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen, deadline = [], time.monotonic() + 30
    while len(seen) < 300 and time.monotonic() < deadline:
        seen += [m.headers() for m in consumer.consume(500, 0.5) if m.error() is None]
    consumer.close()
    delete_topics(bootstrap, [topic])
    assert len(seen) == 300
    assert all(h == [("event-type", b"OrderCreated"), ("version", b"1")] for h in seen)


def test_saved_results_and_report_hold_no_secrets(bootstrap, tmp_path):
    # On a PLAINTEXT broker librdkafka ignores SASL settings (with a warning): the run works.
    profile = {"name": "with-secrets", "common": {"sasl.username": "bench",
                                                  "sasl.password": "hunter2-do-not-save"}}
    result = run_workload(_workload(message_count=200, duration_s=0, consumer_groups=0), profile,
                          bootstrap=bootstrap, out=tmp_path / "results", progress=False)
    assert result.summary["delivered"] == 200
    assert result.summary["common.sasl.password"] == "<redacted>"
    from kafkabench.present.report import write_report
    write_report([tmp_path / "results" / result.run_id], tmp_path / "report.html")
    loaded = load(tmp_path / "results" / result.run_id)
    assert loaded.config["profile"]["common"]["sasl.password"] == "<redacted>"
    assert "hunter2" not in repr(loaded.summary) + repr(loaded.config)
    # Parquet pages may be compressed; the JSON metadata and the HTML report are plain text.
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.suffix in (".json", ".html")]
    assert len(files) >= 2
    assert not [f for f in files if b"hunter2" in f.read_bytes()]


@pytest.fixture()
def own_cluster(tmp_path):
    """A private 1-broker cluster, for tests that pause or kill it."""
    if os.environ.get("KAFKABENCH_TEST_BOOTSTRAP"):
        pytest.skip("needs an embedded cluster it may pause and kill")
    with LocalCluster(brokers=1, base_dir=tmp_path / "own") as cluster:
        yield cluster


class _PauseFromOutside(RunObserver):
    """Freezes the broker (SIGSTOP) from a thread of its own, as another shell would, 2.5 s after
    the producers start (not after the test starts: on a busy machine setting up can take
    that long), and thaws it 3 s later."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self.thread: threading.Thread | None = None

    def on_go(self, session) -> None:
        def pause_for_a_while():
            time.sleep(2.5)
            self.cluster.pause(1)
            time.sleep(3)
            self.cluster.resume(1)

        self.thread = threading.Thread(target=pause_for_a_while, daemon=True)
        self.thread.start()


@pytest.mark.quiet  # asserts on timing: runs alone (make test)
def test_paused_broker_shows_in_delay_and_end_to_end(own_cluster):
    # A small local queue makes the producer block while the broker is frozen, as a real
    # service would: that is when sends fall behind schedule (publish delay).
    profile = {"producer": {"queue.buffering.max.messages": 500}}
    pauser = _PauseFromOutside(own_cluster)
    result = run_workload(_workload(producer_rate=1000, duration_s=9), profile,
                          bootstrap=own_cluster.bootstrap_servers, progress=False, observers=[pauser])
    assert pauser.thread is not None
    pauser.thread.join(timeout=30)
    s = result.summary
    assert s["failed"] == 0 and s["consumed"] == s["delivered"]
    assert s["e2e_latency_ms_max"] > 2500
    assert s["e2e_latency_ms_p99"] > 1000
    assert s["publish_latency_ms_max"] > 2000
    assert s["publish_delay_us_max"] > 1_000_000
    # The per-second series locates the pause.
    assert result.timeseries["e2e_latency_ms_p99"].max() > 2000


def test_dead_broker_is_errors_not_a_hang(own_cluster):
    def kill_soon():
        time.sleep(2)
        own_cluster.kill(1)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    t0 = time.monotonic()
    result = run_workload(_workload(producer_rate=500, duration_s=4, consumer_groups=0),
                          {"producer": {"message.timeout.ms": 3000}},
                          bootstrap=own_cluster.bootstrap_servers, progress=False)
    killer.join()
    s = result.summary
    assert time.monotonic() - t0 < 60
    assert s["failed"] > 0
    assert s["produced"] == s["delivered"] + s["failed"]
    assert s["errors"], s


def test_ctrl_c_keeps_the_partial_result(bootstrap, tmp_path):
    workload = tmp_path / "long.yaml"
    workload.write_text("name: long\npartitions: 2\nmessage_size: 100\nproducer_rate: 1000\n"
                        "duration_s: 60\n")
    proc = subprocess.Popen([sys.executable, "-m", "kafkabench.cli", "run", str(workload),
                             "--bootstrap", bootstrap, "--out", str(tmp_path / "res"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=ctrl_c_works)
    time.sleep(8)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    runs = list((tmp_path / "res").iterdir())
    assert len(runs) == 1
    s = load(runs[0]).summary
    assert s["interrupted"] is True
    assert 0 < s["delivered"] < 60_000
    assert s["produced"] == s["delivered"] + s["failed"]
    assert "interrupted" in out


# ---------------------------------------------------------------- issue 9: numbers under load

def test_manual_commits_are_rate_bounded_and_clean_runs_have_no_errors(bootstrap):
    # OMB's driver files turn auto-commit off: members commit themselves. They used to commit
    # after every consume batch (hundreds a second, flooding the coordinator on 3 brokers),
    # and the final commit's "nothing to commit" (_NO_OFFSET) was counted as an error.
    profile = {"consumer": {"enable.auto.commit": False}}
    t0 = time.monotonic()
    result = run_workload(_workload(producer_rate=20_000, duration_s=4, partitions=4,
                                    message_size=100), profile,
                          bootstrap=bootstrap, progress=False, mode="thread")
    s = result.summary
    assert s["complete"] is True, s["incomplete"]
    assert s["consumed"] == s["delivered"] > 50_000
    # ~1 per second per member, plus revoke/close commits; never one per batch.
    assert 1 <= s["offset_commits"] <= time.monotonic() - t0 + 5, s["offset_commits"]
    assert s["errors"] == {} and s["error_messages"] == {}
    assert s["lag_final_msgs"] == 0


def test_sync_commit_mode_counts_no_error_for_nothing_to_commit(bootstrap):
    result = run_workload(_workload(message_count=3000, duration_s=0), None, bootstrap=bootstrap,
                          progress=False, commit="sync", mode="thread")
    s = result.summary
    assert s["consumed"] == 3000
    assert s["errors"] == {}, s["error_messages"]


def test_group_that_never_reads_the_backlog_makes_the_run_incomplete(bootstrap, tmp_path):
    # Consumers joining after a backlog with auto.offset.reset=latest skip it: the run must
    # say it is incomplete, with the exact shortfall, rather than end quietly.
    result = run_workload(_workload(backlog_messages=2000, message_count=500, duration_s=0,
                                    partitions=2),
                          {"consumer": {"auto.offset.reset": "latest"}}, bootstrap=bootstrap,
                          progress=False, mode="thread", drain_timeout_s=2, out=tmp_path)
    s = result.summary
    assert s["delivered"] == 2500
    assert s["complete"] is False
    (group, short), = s["shortfall"].items()
    assert short == s["delivered"] - s["consumed_by_group"][group] >= 2000
    assert any("INCOMPLETE" in w for w in s["warnings"])
    assert load(tmp_path / result.run_id).summary["complete"] is False


def test_held_needs_the_rate_and_the_schedule():
    from kafkabench.run.summary import judge_schedule

    # Observed: 2.5 s behind schedule (publish delay p50), then 25% above target in the
    # measured window while catching up. Not held, and both reasons are named.
    late = {"target_rate": 10_000, "publish_rate": 12_500, "publish_delay_us_p50": 2_500_000,
            "publish_delay_us_p99": 9_000_000}
    warnings: list[str] = []
    late.update(judge_schedule(late, warnings))
    assert late["rate_held"] is False
    assert "+25.0%" in late["held_reason"] and "schedule slipped" in late["held_reason"]
    assert warnings
    # The rate alone is right, but sends were seconds late: still not held.
    slipped = {**late, "publish_rate": 10_050}
    slipped.update(judge_schedule(slipped, []))
    assert slipped["rate_held"] is False and "+0.5%" not in slipped["held_reason"]
    assert "schedule slipped" in slipped["held_reason"]
    ok = {**late, "publish_rate": 10_050, "publish_delay_us_p50": 300, "publish_delay_us_p99": 4_000}
    ok.update(judge_schedule(ok, []))
    assert ok["rate_held"] is True


def test_every_result_reports_the_load_generators_cpu(bootstrap):
    result = run_workload(_workload(producer_rate=5000, duration_s=3, consumer_groups=0,
                                    producers=2), None, bootstrap=bootstrap, progress=False,
                          mode="process")
    s = result.summary
    assert s["rate_held"] is True, s["held_reason"]
    assert s["loadgen_cpu_s"] > 0 and s["loadgen_cores"] > 0
    assert s["cpu_us_per_msg"] > 0 and s["producer_cpu_us_per_msg"] > 0
    # The producer processes' CPU is part of the whole load generator's.
    assert s["producer_cpu_us_per_msg"] * s["produced"] <= s["loadgen_cpu_s"] * 1e6 * 1.01


_UNGUARDED = """
from kafkabench.runner import run_workload
run_workload({{"name": "x", "partitions": 2, "duration_s": 3, "producer_rate": 100,
              "consumer_groups": 1, "consumers_per_group": 2}}, None,
             bootstrap={bootstrap!r}, progress=False)
print("finished")
"""


def test_script_without_main_guard_fails_fast_with_the_fix(bootstrap, tmp_path):
    # The README example saved as a script: spawned workers re-import it and die. It used
    # to hang forever at 0 msgs/s.
    script = tmp_path / "bench.py"
    script.write_text(_UNGUARDED.format(bootstrap=bootstrap))
    t0 = time.monotonic()
    proc = run_child([sys.executable, str(script)], timeout=180, cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    assert time.monotonic() - t0 < 120
    assert 'if __name__ == "__main__":' in proc.stderr, explain(proc)
    assert "ended without reporting" in proc.stderr, explain(proc)
    assert "finished" not in proc.stdout


def _spawned_workers(me) -> list:
    """This process's live worker processes (not the zombies of brokers earlier fault tests
    killed, whose command line psutil cannot read)."""
    import psutil

    out = []
    for p in me.children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.mark.parametrize("victim", ["consumer", "producer"])
def test_a_killed_worker_fails_the_run_within_seconds_and_keeps_the_partial_result(
        bootstrap, tmp_path, victim):
    import psutil

    from kafkabench.runner import RunFailed

    outcome: dict = {}

    def run():
        try:
            outcome["result"] = run_workload(
                _workload(producer_rate=2000, duration_s=60, consumers_per_group=1),
                None, bootstrap=bootstrap, progress=False, mode="process", out=tmp_path)
        except RunFailed as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    me, process, deadline = psutil.Process(), None, time.monotonic() + 60
    while process is None and time.monotonic() < deadline:
        time.sleep(0.5)
        workers = sorted(_spawned_workers(me), key=lambda p: p.create_time())
        # Consumers start first: the first worker is the consumer, the second the producer.
        process = workers[0 if victim == "consumer" else 1] if len(workers) >= 2 else None
    assert process is not None, "no worker processes appeared"
    # The producers go once the group owns its partitions: then let them produce a few seconds.
    while not list(tmp_path.glob("*/journal/clock.json")) and time.monotonic() < deadline + 60:
        time.sleep(0.2)
    time.sleep(4)
    process.kill()
    killed_at = time.monotonic()
    runner.join(90)
    assert not runner.is_alive(), "the run did not notice its dead worker"
    assert time.monotonic() - killed_at < 45
    error = outcome.get("error")
    assert error is not None, outcome
    assert "killed by signal 9" in str(error)
    s = error.result.summary
    assert s["complete"] is False and s["produced"] > 0
    # The partial run's figures cover the time it ran, whichever worker died.
    assert 3 < s["duration_s"] < 60, s["duration_s"]
    assert 0 < s["publish_rate"] < 2000 * 1.1, s["publish_rate"]
    assert load(tmp_path / error.result.run_id).summary["produced"] == s["produced"]


def test_oversized_messages_are_refused_before_anything_runs(bootstrap):
    from confluent_kafka.admin import AdminClient

    prefix = f"kbbig{uuid.uuid4().hex[:8]}"  # other tests create topics on this cluster meanwhile

    def run_topics() -> set[str]:
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
        return {t for t in topics if t.startswith(prefix)}

    before = run_topics()
    with pytest.raises(ConfigError, match=r"message\.max\.bytes \(1,000,000 B\)"):
        run_workload(_workload(message_size=2_000_000, message_count=10, duration_s=0, topic_prefix=prefix),
                     None, bootstrap=bootstrap, progress=False)
    # The producer allows it, the topic (broker default, ~1 MiB) does not: named too.
    with pytest.raises(ConfigError, match="max.message.bytes"):
        run_workload(_workload(message_size=2_000_000, message_count=10, duration_s=0, topic_prefix=prefix),
                     {"producer": {"message.max.bytes": 3_000_000}}, bootstrap=bootstrap,
                     progress=False)
    assert run_topics() == before  # nothing left behind


def test_large_messages_work_once_both_limits_are_raised(bootstrap):
    result = run_workload(_workload(message_size=1_500_000, message_count=20, duration_s=0,
                                    partitions=1, topic_config={"max.message.bytes": 2_000_000}),
                          {"producer": {"message.max.bytes": 2_000_000},
                           "consumer": {"fetch.max.bytes": 4_000_000}},
                          bootstrap=bootstrap, progress=False, mode="thread")
    s = result.summary
    assert s["delivered"] == s["consumed"] == 20 and s["errors"] == {}


def test_broker_refusals_keep_their_error_code_and_message(bootstrap):
    # Compressed, so the size check cannot know the batch size; random payloads do not
    # compress and the broker refuses every batch.
    topic = f"small-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1, config={"max.message.bytes": 2000})
    try:
        result = run_workload(_workload(message_size=5000, message_count=50, duration_s=0,
                                        consumer_groups=0),
                              {"producer": {"compression.type": "lz4"}}, bootstrap=bootstrap,
                              topics=[topic], progress=False, mode="thread")
    finally:
        delete_topics(bootstrap, [topic])
    s = result.summary
    assert s["delivered"] == 0 and s["failed"] == 50
    assert s["errors"] == {"MSG_SIZE_TOO_LARGE": 50}
    assert s["error_messages"]["MSG_SIZE_TOO_LARGE"][0].startswith("delivery: ")


@pytest.mark.cluster3
def test_omb_driver_profile_on_three_brokers_consumes_everything(cluster3):
    # Observed before: OMB's throughput driver (auto-commit off, acks=all, RF 3,
    # min.insync.replicas=2) on 3 brokers with a group committing after every batch flooded
    # the coordinator: OffsetCommit timeouts, a member lost its session, 193,754 delivered
    # messages never consumed, and the run still ended quietly.
    driver = Path(__file__).parent.parent / "workloads/omb/driver-kafka/kafka-throughput.yaml"
    t0 = time.monotonic()
    result = run_workload(_workload(producer_rate=5_000, duration_s=8, partitions=6,
                                    message_size=100, consumers_per_group=2), str(driver),
                          bootstrap=cluster3.bootstrap_servers, progress=False)
    s = result.summary
    assert s["replication_factor"] == 3
    # On 2 shared cores the brokers may time some produce requests out: those are failed,
    # not delivered, and the group must still consume every delivered message.
    assert s["complete"] is True, s["incomplete"]
    assert s["produced"] == s["delivered"] + s["failed"] and s["delivered"] > 20_000
    assert s["consumed"] >= s["delivered"]
    # At most ~1 a second per member (plus revoke and close); per batch it was thousands.
    wall_s = time.monotonic() - t0
    assert s["offset_commits"] <= 2 * (wall_s + 5), (s["offset_commits"], wall_s)
    commit_errors = [m for ms in s["error_messages"].values() for m in ms if "commit" in m]
    assert not commit_errors, s["error_messages"]


def test_progress_bar_run(bootstrap, capsys):
    # The bar's postfix reads the error tally every update: a run with progress on works.
    result = run_workload(_workload(producer_rate=500, duration_s=2, consumer_groups=0),
                          None, bootstrap=bootstrap, progress=True, mode="thread")
    assert result.summary["delivered"] == result.summary["produced"] > 0
