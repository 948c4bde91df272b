"""The quick start on a real broker, with its workload and grid made tiny."""

from __future__ import annotations

import pytest

from kafkabench.experiments import quickstart
from kafkabench.results.store import load_many
from kafkabench.spec.profile import ClientProfile
from kafkabench.spec.workload import Workload


def test_the_profile_lies_under_the_quickstart_settings(bootstrap, tmp_path, monkeypatch):
    # Two producer-only runs of 200 messages: a couple of seconds each.
    monkeypatch.setattr(quickstart, "WORKLOAD", Workload(
        name="quickstart", partitions=1, replication_factor=1, message_size=100, duration_s=0,
        message_count=200, consumer_groups=0))
    monkeypatch.setattr(quickstart, "GRID", {"producer.acks": ["1", "all"]})
    monkeypatch.setattr(quickstart, "WARMUP_RUN_S", 0.0)
    profile = ClientProfile(name="secured", common={"client.id": "kb-quickstart-test"},
                            producer={"acks": "0", "linger.ms": 7})
    table, report = quickstart.run_quickstart(out=tmp_path / "results", report=tmp_path / "r.html",
                                              bootstrap=bootstrap, progress=False, profile=profile)
    assert report is not None and report.exists()
    runs = load_many(list(table["path"]))
    assert sorted(r.summary["producer.acks"] for r in runs) == ["1", "all"]  # the grid wins
    for run in runs:
        s = run.summary
        assert s["common.client.id"] == "kb-quickstart-test" and s["producer.linger.ms"] == 7, s
        assert s["profile.name"] == "secured" and s["delivered"] == 200


def test_a_bad_profile_is_refused_before_anything_runs(tmp_path):
    from kafkabench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown client profile 'nope'"):
        quickstart.run_quickstart(out=tmp_path, report=tmp_path / "r.html", bootstrap="127.0.0.1:9",
                                  profile="nope")
    assert not any(tmp_path.iterdir())
