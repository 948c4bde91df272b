"""Brokers killed from outside during verified runs on the 3-broker cluster (the run in a process
of its own, as `kafkabench run` is): no run aborts, every run ends with a saved result, and its
delivery counts equal an independent read of the topic (kcat, or a plain consumer).

benchmarks/survive_broker_kills.py repeats these (10 runs per target); here each target once,
the leader twice, with shorter runs.
"""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "survive_broker_kills", Path(__file__).resolve().parent.parent / "benchmarks" / "survive_broker_kills.py")
survive = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(survive)


@pytest.mark.cluster3
@pytest.mark.parametrize("target", ["leader", "leader", "controller", "coordinator", "two"])
def test_a_broker_killed_from_outside_never_costs_the_result(cluster3, target, tmp_path, record_property):
    row = survive.one_run(cluster3, target, duration_s=14, rate=2000, kill_at_s=3, down_s=6,
                          out=tmp_path)
    record_property("survive", row)
    print(row)
    assert row.get("killed"), f"nothing was killed (the run ended first): {row}"
    assert row["exit_code"] == 0 and not row["aborted"], row
    assert row["saved"] and not row.get("recovered"), row
    assert row["verify_complete"] is True, row
    # The verifier's counts are the topic's, as another client reads it.
    assert row["match"], row
    assert row["verify_acked"] > 0 and row["produced"] == row["delivered"] + row["failed"], row
