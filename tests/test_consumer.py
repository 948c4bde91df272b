"""Consumer plumbing that needs no broker: the one commit-mode check."""

import pytest

from kafkabench.core.errors import ConfigError
from kafkabench.engine.consumer import COMMIT_MODES, ConsumerSpec, check_commit_mode


@pytest.mark.parametrize("mode", COMMIT_MODES)
def test_every_commit_mode_passes(mode):
    assert check_commit_mode(mode) == mode


def test_a_bad_commit_mode_is_named_with_the_modes_allowed():
    with pytest.raises(ConfigError, match=r"run\.commit='manual' .* auto, sync, async"):
        check_commit_mode("manual", "run.commit")


def test_a_spec_with_a_bad_commit_mode_is_refused_before_any_worker_starts():
    # It used to run: any mode but "auto" turned auto-commit off and committed on close only.
    with pytest.raises(ConfigError, match=r"consumer 'g0-consumer-0': commit='Sync'"):
        ConsumerSpec(worker="g0-consumer-0", group="g0", config={}, topics=("t",), commit="Sync")
