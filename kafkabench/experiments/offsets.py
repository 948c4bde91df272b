"""Group offsets, and the replay experiment: rewind an inactive group to a time and measure how
long it takes to catch up (`replay`, a `consume_topic` run). The offset commands themselves
(`show`, `plan_reset`, `reset`, `seek_to_timestamp`) live in `kafkabench.cluster.offsets` and are
re-exported here, where the flat package's `kafkabench.offsets` now points."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kafkabench.cluster.offsets import (
    PLAN_COLUMNS,
    SHOW_COLUMNS,
    SPEC_KINDS,
    TIMEOUT_S,
    ResetSpec,
    parse_datetime,
    parse_spec,
    parse_topics,
    plan_reset,
    reset,
    seek_to_timestamp,
    show,
)
from kafkabench.core.errors import ConfigError


def replay(group: str, topic: str, *, to_datetime: str | datetime | None = None,
           by_duration: str | float | None = None, bootstrap: str | None = None,
           conf: Mapping[str, Any] | None = None, profile: Any = None,
           timeout_s: float = 30.0) -> dict[str, Any]:
    """Rewind an inactive group to a time, consume until it has caught up, and measure it.

    The reset is executed (`reset`), then one consumer of the group
    (`kafkabench.runner.consume_topic`) reads exactly the lag the reset made.

    Args:
        group: the consumer group; it must have no active members.
        topic: the topic to replay.
        to_datetime: rewind to this time (ISO 8601 with its zone, or an aware datetime) ...
        by_duration: ... or this long before now ("10m", "1h30m", seconds).
        bootstrap: bootstrap servers.
        conf: extra client settings (security), laid over the profile's common settings.
        profile: client profile of the replaying consumer (`config.load_profile`).
        timeout_s: give up when no message arrived for this long.

    Returns:
        group, topic, timestamp_ms (the time rewound to), lag_before (messages behind after
        the reset), messages (replayed), seconds (from subscribing to the last replayed
        message: the time to zero lag, the group's join included), join_s (of those, until
        the consumer owned its partitions), rate (messages / seconds, msgs/s), lag_after.

    Raises:
        ConfigError: what `reset` raises; neither or both of to_datetime and by_duration.
        ClusterError: the cluster is unreachable or did not answer.
    """
    from kafkabench.runner import consume_topic
    from kafkabench.spec.profile import load_profile

    if (to_datetime is None) == (by_duration is None):
        raise ConfigError("replay: give exactly one of to_datetime and by_duration")
    spec = {"to_datetime": to_datetime} if to_datetime is not None else {"by_duration": by_duration}
    prof = load_profile(profile).with_settings(common=conf)
    common = dict(prof.common)
    plan = reset(group, spec, topics=[topic], bootstrap=bootstrap, conf=common, execute=True,
                 timeout_s=min(timeout_s, TIMEOUT_S))
    lag_before = int((plan["log_end"] - plan["new"]).sum())
    messages, seconds, join_s = 0, 0.0, float("nan")
    if lag_before:
        result = consume_topic(topic, messages=lag_before, group=group, profile=prof,
                               bootstrap=bootstrap, timeout_s=timeout_s, progress=False,
                               record_latency=False)
        s = result.summary
        messages, seconds = int(s["consumed"]), float(s["duration_s"])
        join_s = s["rebalance_time_ms"] / 1000.0
    after = show(group, topics=[topic], bootstrap=bootstrap, conf=common)
    return {"group": group, "topic": topic, "timestamp_ms": plan.attrs["timestamp_ms"],
            "lag_before": lag_before, "messages": messages, "seconds": seconds, "join_s": join_s,
            "rate": messages / seconds if seconds > 0 else float("nan"),
            "lag_after": int(after["lag"].sum())}


__all__ = ["PLAN_COLUMNS", "SHOW_COLUMNS", "SPEC_KINDS", "TIMEOUT_S", "ResetSpec", "parse_datetime",
           "parse_spec", "parse_topics", "plan_reset", "replay", "reset", "seek_to_timestamp", "show"]
