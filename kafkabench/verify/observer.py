"""Delivery verification as a run observer: the producers' ledgers in, the `verify` frame out.

Verified producers (`ProducerSpec.verify_id`) send their delivery ledger in their final
report (`Report.extras["verify"]`). `DeliveryLedgers` is the tally part that keeps them
(registered by `VerifyObserver.on_start`, read as `session.tally.verify_parts`), and
`VerifyObserver.on_end` reads every partition back and checks them (`verify_delivery`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kafkabench.core.errors import KafkabenchError
from kafkabench.core.sidecar import ChildDied, call_in_child
from kafkabench.run.session import RunObserver
from kafkabench.verify.ledger import Ledger, VerifyReport
from kafkabench.verify.readback import verify_delivery

if TYPE_CHECKING:
    from kafkabench.engine.workers import Report
    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession
    from kafkabench.run.tally import Tally


# The read-back's time budget after Ctrl-C.
INTERRUPTED_TIMEOUT_S = 15.0


# Beyond the read-back's own budget: the child's start and its report's way back.
CHILD_SLACK_S = 60.0


class DeliveryLedgers:
    """The verification's part of a run's tally (`kafkabench.run.tally.TallyPart`): the
    delivery ledger of every verified producer (`DeliveryLedger.part`), from its final
    report, in the order they arrived."""

    name = "verify_parts"

    def __init__(self) -> None:
        self.parts: list[dict] = []

    def merge(self, report: Report, tally: Tally) -> None:
        """Keep the ledger of a producer's final report."""
        if report.kind == "done" and "verify" in report.extras:
            self.parts.append(report.extras["verify"])

    def __iter__(self) -> Iterator[dict]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)


class VerifyObserver(RunObserver):
    """Verifies delivery at the end of a run: adds the `verify` frame and the verify_* figures.

    Args:
        bootstrap: bootstrap servers.
        topics: the run's topics.
        conf: extra client settings (security, `isolation.level`).
        isolation_level: overrides `conf`'s; librdkafka's default is read_committed.
        timeout_s: time budget of the read-back.
        drain_timeout_s: how long the run let its consumer groups go without progress before
            the read-back (`run_workload`'s `drain_timeout_s`), added to the summary as
            `drain_timeout_s`; None adds nothing.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], *, conf: Mapping[str, Any] | None = None,
                 isolation_level: str | None = None, timeout_s: float = 60.0,
                 drain_timeout_s: float | None = None):
        self.bootstrap, self.topics = bootstrap, list(topics)
        self.conf, self.isolation_level, self.timeout_s = conf, isolation_level, timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.report: VerifyReport | None = None

    def on_start(self, session: RunSession) -> None:
        session.tally.register(DeliveryLedgers())

    def on_end(self, session: RunSession) -> None:
        # After Ctrl-C the user wants the run to stop: a short read-back of what is there,
        # not the whole budget.
        timeout_s = (min(self.timeout_s, INTERRUPTED_TIMEOUT_S) if getattr(session, "interrupted", False)
                     else self.timeout_s)
        died = []
        # In a child process: the read-back follows brokers dying, exactly when librdkafka may
        # abort (docs/librdkafka-coordinator-abort.md); an abort costs an attempt, not the run.
        for _attempt in range(2):
            try:
                self.report = call_in_child(
                    verify_delivery, (self.bootstrap, self.topics, list(session.tally.verify_parts)),
                    {"conf": self.conf, "isolation_level": self.isolation_level, "timeout_s": timeout_s},
                    timeout_s=timeout_s + CHILD_SLACK_S, name="verification reader")
                break
            except ChildDied as exc:
                died.append(str(exc))
            except (KafkabenchError, ValueError) as exc:
                self.report = _failed(f"verification did not run: {exc}")
                break
        else:
            self.report = _failed(f"verification did not finish: {'; then '.join(died)}")
        if died and self.report is not None:
            session.warnings.append(f"{died[0]}; the read-back was done again")

    def contribute(self, result: RunResult) -> None:
        report = self.report or _failed("verification did not run: the run ended before it")
        result.verify = report.frame
        result.summary.update(report.summary)
        if self.drain_timeout_s is not None:
            result.summary["drain_timeout_s"] = self.drain_timeout_s


def _failed(error: str) -> VerifyReport:
    """The report of a verification that could not run."""
    ledger = Ledger(())
    frame = ledger.frame()
    summary = {**ledger.summary(frame), "verify_complete": False, "verify_read_s": 0.0,
               "verify_error": error}
    return VerifyReport(frame=frame, summary=summary)


