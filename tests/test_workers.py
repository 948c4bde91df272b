"""Worker plumbing that needs no broker: the GC setting workers share."""

import gc
import threading

from kafkabench.workers import WORKER_GC_THRESHOLD, fewer_gc_pauses


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
