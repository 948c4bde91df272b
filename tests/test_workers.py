"""Worker plumbing that needs no broker: the GC setting workers share."""

import gc
import sys
import threading
import time

import psutil
import pytest

from conftest import run_child
from kafkabench.engine.workers import WORKER_GC_THRESHOLD, fewer_gc_pauses


def test_gc_threshold_raised_while_any_worker_runs_and_restored_after():
    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def worker():
        with fewer_gc_pauses():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    with fewer_gc_pauses():
        assert gc.get_threshold()[0] == max(WORKER_GC_THRESHOLD, before[0])
        t.start()
        assert inside.wait(5)
    # The thread's worker still runs: the setting stays until the last one ends.
    assert gc.get_threshold()[0] == max(WORKER_GC_THRESHOLD, before[0])
    release.set()
    t.join(5)
    assert gc.get_threshold() == before


def test_gc_threshold_restored_when_the_worker_raises():
    before = gc.get_threshold()
    try:
        with fewer_gc_pauses():
            raise RuntimeError("worker failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


_ORPHAN_SCRIPT = '''
import os, sys, time
from kafkabench.engine.workers import Report, WorkerPool

def waits(spec, ctl):
    ctl.wait_start("waits", "producer")

def floods(spec, ctl):
    ctl.wait_start("floods", "producer")
    while not ctl.stopped():
        time.sleep(0.05)
    for _ in range(300):  # far more than a pipe holds, with nobody left to read it
        ctl.report(Report(kind="interval", worker="floods", role="producer", wall=time.time(),
                          message="x" * 10000))

if __name__ == "__main__":
    pool = WorkerPool("process")
    pool.start(waits, None, "waits", "producer")
    pool.start(floods, None, "floods", "producer")
    deadline = time.time() + 60
    while not {"waits", "floods"} <= pool.ready and time.time() < deadline:
        list(pool.reports(0.2))
    if sys.argv[1] == "go":
        pool.go()
    print(" ".join(str(w.pid) for w in pool._workers), flush=True)
    os._exit(0)  # dies without stopping its workers, as a killed or aborted parent does
'''


@pytest.mark.parametrize("released", ["wait", "go"])
def test_worker_processes_exit_when_their_parent_dies(tmp_path, released):
    # They waited for "go" forever, or hung at exit flushing reports into a pipe nobody read
    # (every worker holds its read end open), after a parent that librdkafka aborted.
    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = run_child([sys.executable, str(script), released], timeout=120)
    assert proc.returncode == 0, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    for p in alive:
        psutil.Process(p).kill()
    assert alive == [], f"worker processes {alive} outlived their parent"


def _until_stopped(spec, ctl):
    from kafkabench.engine.workers import Report

    ctl.wait_start(spec, "consumer")
    while not ctl.stopped():
        time.sleep(0.01)
    ctl.report(Report(kind="done", worker=spec, role="consumer", wall=time.time()))


def test_stop_worker_stops_that_worker_alone():
    from kafkabench.core.errors import KafkabenchError
    from kafkabench.engine.workers import WorkerPool

    pool = WorkerPool("thread")
    for name in ("a", "b"):
        pool.start(_until_stopped, name, name, "consumer")
    pool.go()
    pool.stop_worker("a")
    deadline = time.monotonic() + 5
    while "a" not in pool.done and time.monotonic() < deadline:
        list(pool.reports(0.1))
    assert pool.done == {"a"}  # b goes on
    with pytest.raises(KafkabenchError, match="cannot stop worker 'a'"):
        pool.stop_worker("a")  # it has ended
    with pytest.raises(KafkabenchError, match="cannot stop worker 'c'"):
        pool.stop_worker("c")
    pool.stop()
    while "b" not in pool.done and time.monotonic() < deadline:
        list(pool.reports(0.1))
    assert pool.done == {"a", "b"}
    pool.join(5)
