"""The run journal: report files that survive a kill, and a run whose main process is
SIGKILLed mid-run, whose partial result loads and whose workers do not outlive it."""

import os
import signal
import sys
import textwrap
import time
import uuid

import psutil
import pytest

from conftest import explain, run_child
from kafkabench.cluster.admin import delete_topics
from kafkabench.core.errors import KafkabenchError
from kafkabench.engine.reportfile import ReportFile, read_records
from kafkabench.engine.workers import Report
from kafkabench.results.store import load, recover
from kafkabench.run.journal import JOURNAL_DIR, Journal, has_journal


def test_report_file_round_trip_and_a_record_cut_short(tmp_path):
    path = tmp_path / "w.reports"
    f = ReportFile(str(path))
    reports = [Report(kind="interval", worker="w", role="producer", wall=float(i), counts={"sent": i})
               for i in range(3)]
    for r in reports:
        f.append(r)
    f.close()
    records = list(read_records(path))
    assert records[0] == {"pid": os.getpid()} and records[1:] == reports
    # A kill in the middle of a write leaves a short last record: everything before it reads.
    with open(path, "ab") as out:
        out.write(b"\xff\x00\x00\x00partial")
    assert list(read_records(path))[1:] == reports


def test_recover_refuses_a_run_whose_process_still_runs(tmp_path):
    from kafkabench.run.journal import journal_meta
    from kafkabench.run.plan import RunPlan
    from kafkabench.spec.profile import ClientProfile

    journal = Journal(tmp_path / "run-1")
    plan = RunPlan(run_id="run-1", topics=("t",), created=True, mode="thread")
    journal.write_meta(**journal_meta(plan, ClientProfile("p"), workload=None))
    assert has_journal(tmp_path / "run-1")
    with pytest.raises(KafkabenchError, match="still running"):
        recover(tmp_path / "run-1")
    with pytest.raises(KafkabenchError, match="no run journal"):
        recover(tmp_path)


SCRIPT = """
import sys
from kafkabench.runner import run_workload

if __name__ == "__main__":
    run_workload({"name": "journal-kill", "partitions": 2, "producers": 2, "producer_rate": 2000,
                  "duration_s": 60, "consumer_groups": 1, "consumers_per_group": 1},
                 bootstrap=sys.argv[1], out=sys.argv[2], mode="process", progress=False,
                 run_id=sys.argv[3])
"""


def test_a_killed_run_leaves_a_loadable_partial_result_and_no_worker(bootstrap, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "results"
    run_id = f"journal-kill-{uuid.uuid4().hex[:6]}"
    folder = out / run_id
    proc = psutil.Popen([sys.executable, str(script), bootstrap, str(out), run_id])
    try:
        clock = folder / JOURNAL_DIR / "clock.json"
        deadline = time.monotonic() + 120
        while not clock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert clock.exists(), "the run never started producing"
        time.sleep(5)  # a few whole seconds measured
        family = proc.children(recursive=True)
        assert len(family) >= 3  # 2 producers, a consumer (and the lag sampler)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # The workers notice within a second, flush and exit; none outlives the run.
        gone, alive = psutil.wait_procs(family, timeout=60)
        assert not alive, f"still running after their run died: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        delete_topics(bootstrap, [f"kb-{run_id}-0"])  # a killed run leaves its topics
    assert not (folder / "result.json").exists()
    result = load(folder)  # recovers from the journal
    s = result.summary
    assert s["recovered"] is True and s["complete"] is False
    assert any("main process ended without saving" in r for r in s["incomplete"]), s["incomplete"]
    assert s["run_id"] == run_id and s["name"] == "journal-kill"
    assert any(f"kb-{run_id}-0" in w for w in s["warnings"])  # the topics it left behind
    # Every worker's final report: the producers' totals, acknowledged or failed, add up.
    assert s["produced"] >= 2000 * 4 and s["delivered"] + s["failed"] == s["produced"], s
    assert s["consumed"] > 0
    assert len(result.timeseries) >= 4 and result.timeseries["delivered"].sum() == s["delivered"]
    assert not (folder / JOURNAL_DIR).exists()  # replaced by the saved result
    shown = run_child([sys.executable, "-m", "kafkabench", "results", "show", str(folder)], timeout=60)
    assert shown.returncode == 0 and run_id in shown.stdout, explain(shown)
