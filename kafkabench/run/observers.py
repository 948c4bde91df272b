"""The run observers that come with kafkabench: lag sampling and the progress bar.

Each is a `kafkabench.session.RunObserver`: the session calls it at start, when the
producers go, about once a second and at the end, and it adds its own frames and figures
to the result. New capabilities around a run are new observers, not branches in the runner.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from kafkabench.cluster.lag import IsolatedLagSampler
from kafkabench.core.sidecar import note_restarts
from kafkabench.measure.lagmath import group_status
from kafkabench.run.session import RunObserver

if TYPE_CHECKING:
    from kafkabench.run.result import RunResult
    from kafkabench.run.session import RunSession

log = logging.getLogger(__name__)


class LagObserver(RunObserver):
    """Samples the run's consumer groups' lag in the background, once more at the end.

    The sampler runs in a supervised child process (`IsolatedLagSampler`): a client-library
    abort while a broker dies costs a gap in the lag frame (GAP rows), not the run.

    Adds the `lag` frame (with `t` relative to the run's start) and the lag figures:
    lag_max_msgs, lag_max_s, lag_final_msgs, lag_status, lag_errors, lag_error_messages,
    and its restarts to sampler_restarts.
    """

    def __init__(self, bootstrap: str, groups: Iterable[str], *, interval_s: float = 1.0,
                 conf: Mapping[str, Any] | None = None,
                 group_topics: Mapping[str, Iterable[str]] | None = None):
        # Consumers start from the earliest offset: count uncommitted partitions from there too.
        # group_topics: no coordinator Admin requests (see `LagSampler`; runs always pass it).
        self.sampler = IsolatedLagSampler(bootstrap, list(groups), interval_s=interval_s, conf=conf,
                                          missing_committed="earliest", group_topics=group_topics)
        self._t0_wall = 0.0

    def on_start(self, session: RunSession) -> None:
        self.sampler.start()

    def on_end(self, session: RunSession) -> None:
        self._t0_wall = session.tally.t0_wall
        try:
            self.sampler.sample_once()  # the final, settled committed offsets
        except Exception as exc:  # noqa: BLE001 - a last sample is a nicety
            log.debug("final lag sample failed: %s", exc)
        self.sampler.stop()

    def caught_up(self, group: str, since_wall: float) -> bool:
        """Whether the latest sample, taken after `since_wall` (epoch s), has every partition
        of `group` at lag 0."""
        latest = self.sampler.latest()
        if latest.empty:
            return False
        rows = latest[latest["group"] == group]
        if rows.empty or rows["time"].min() < pd.Timestamp(since_wall, unit="s", tz="UTC"):
            return False
        lag = rows.loc[rows["partition"] >= 0, "lag_msgs"]
        return bool(len(lag)) and bool(lag.notna().all()) and int(lag.max()) == 0

    def contribute(self, result: RunResult) -> None:
        lag = self.sampler.frame()
        if len(lag):
            lag = lag.assign(t=(lag["time"] - pd.Timestamp(self._t0_wall, unit="s", tz="UTC")
                                ).dt.total_seconds())
            result.summary.update(self._figures(lag))
        result.lag = lag
        note_restarts(result.summary, self.sampler.restarts)

    def _figures(self, lag: pd.DataFrame) -> dict[str, Any]:
        """Peak and final lag, the groups' status and the sampler's own errors."""
        def peak(col: str) -> float:
            return float(lag[col].max()) if lag[col].notna().any() else float("nan")

        final = self.sampler.latest()
        final = final[final["status"] != "DELETED"]
        errors = self.sampler.errors()
        known = len(final) and final["lag_msgs"].notna().all() and not (final["status"] == "ERR").any()
        return {"lag_max_msgs": peak("lag_msgs"), "lag_max_s": peak("lag_s"),
                # Unknown (NaN) when the last sample could not read every partition's lag: not 0.
                "lag_final_msgs": float(final["lag_msgs"].sum()) if known else float("nan"),
                "lag_status": group_status(list(self.sampler.group_status().values())),
                "lag_errors": len(errors),
                "lag_error_messages": list(dict.fromkeys(errors["error"]))[:5]}


class ProgressBar(RunObserver):
    """A tqdm bar over the run's duration (or message count): rate, consumed, errors."""

    def __init__(self, desc: str, *, duration_s: float, messages: int | None = None):
        self.desc, self.duration_s, self.messages = desc, duration_s, messages
        self._bar: Any = None
        self._t_go = 0.0

    def on_go(self, session: RunSession) -> None:
        from tqdm.auto import tqdm

        self._t_go = time.monotonic()
        self._bar = tqdm(total=self.messages or self.duration_s, desc=self.desc,
                         unit="msg" if self.messages else "s", leave=False,
                         bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} {postfix}")

    def on_second(self, session: RunSession) -> None:
        if self._bar is None:
            return
        tally = session.tally
        if self.messages:
            position = sum(c.get("sent", 0) for c in tally.counts.values())
        else:
            position = min(time.monotonic() - self._t_go, self._bar.total)
        self._bar.update(position - self._bar.n)
        # The newest second is still filling in (reports arrive one by one): show the one before.
        last = tally.counts.get(max(tally.counts, default=0) - 1, Counter())
        failed = sum(c.get("failed", 0) for c in tally.counts.values())
        self._bar.set_postfix_str(
            f"{last.get('delivered', 0):,} msg/s, consumed {last.get('consumed', 0):,}/s, "
            f"errors {sum(tally.errors.counts.values()) + failed}")

    def on_end(self, session: RunSession) -> None:
        if self._bar is not None:
            self._bar.close()
