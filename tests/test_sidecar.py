"""Sidecars and one-off calls in child processes: what a client-library abort costs (a
restart and a recorded gap, or a `ChildDied`), never the caller."""

import os
import signal
import threading
import time

import pytest

from kafkabench.core.sidecar import ChildDied, Restart, Sidecar, call_in_child, describe_exit, note_restarts


class CountingProbe:
    """A probe that counts its samples and reports its own process id."""

    def __init__(self, start: int):
        self.n = start

    def sample(self):
        self.n += 1
        return (os.getpid(), self.n)


class FailingProbe:
    def __init__(self):
        raise ValueError("bogus.setting rejected")


def _abort():
    os.abort()


def _raise():
    raise KeyError("missing")


def test_call_in_child_returns_raises_and_survives_an_abort():
    assert call_in_child(divmod, (17, 5), name="division") == (3, 2)
    assert call_in_child(os.getpid) != os.getpid()
    with pytest.raises(KeyError, match="missing"):
        call_in_child(_raise)
    with pytest.raises(ChildDied, match="the reader's process was killed by SIGABRT") as info:
        call_in_child(_abort, name="reader")
    assert info.value.exitcode == -signal.SIGABRT


def test_a_sidecar_samples_and_is_restarted_after_an_abort():
    samples, restarts = [], []
    got = threading.Event()

    def take(sample):
        samples.append(sample)
        got.set()

    sidecar = Sidecar("counter", CountingProbe, (100,), on_sample=take, interval_s=0.1,
                      on_restart=restarts.append).start()
    try:
        assert got.wait(30), "no sample from the child"
        first_pid = sidecar.pid
        assert samples[0] == (first_pid, 101) and first_pid != os.getpid()
        os.kill(first_pid, signal.SIGABRT)  # what librdkafka's assert does
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(pid != first_pid for pid, _ in samples):
            time.sleep(0.1)
        after = [s for s in samples if s[0] != first_pid]
        assert after and after[0][1] == 101  # a new process: its probe starts afresh
        assert len(restarts) == 1 and restarts == sidecar.restarts
        assert restarts[0].exitcode == -signal.SIGABRT and "SIGABRT" in restarts[0].text
        # On demand, from the new process.
        pid, n = sidecar.sample_now(timeout_s=10)
        assert pid == sidecar.pid != first_pid and n > 101
    finally:
        sidecar.stop()
    assert sidecar._proc.poll() is not None


def test_a_probe_that_cannot_be_made_is_a_failure_not_a_restart_loop():
    sidecar = Sidecar("broken", FailingProbe, on_sample=lambda s: None, interval_s=0.1).start()
    try:
        assert sidecar.sample_now(timeout_s=30) is None
        assert "bogus.setting rejected" in sidecar.failure and sidecar.restarts == []
    finally:
        sidecar.stop()


def test_restarts_in_a_summary_and_exit_descriptions():
    summary = {"warnings": ["earlier"]}
    r = Restart("lag sampler", 100.0, 101.5, -6, describe_exit(-6))
    note_restarts(summary, [r])
    assert summary["sampler_restarts"] == 1 and summary["warnings"] == ["earlier", r.text]
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(134) == "exited with status 134 (a client-library abort)"
    assert describe_exit(None) == "stopped answering and was killed"
