"""Consumer groups in motion, as observers: `MembershipObserver` crashes, restarts, adds and
stops members on schedule (`kafkabench.spec.membership`), `GroupSettings` sets group configs;
the figures of each event come from `kafkabench.analysis.rebalance`.

May import: everything below `kafkabench.runner` except the other features.

The public names of the flat module `kafkabench.membership` are re-exported here.
"""

from kafkabench.analysis.rebalance import (
    DRAIN_BASELINE_S,
    event_figures,
    member_identity,
    ownership,
    read_traces,
)
from kafkabench.groups.observer import GroupSettings, MembershipObserver, membership_frame
from kafkabench.spec.membership import ACTIONS, MemberEvent, event_dict, parse_member_events

__all__ = ["ACTIONS", "DRAIN_BASELINE_S", "GroupSettings", "MemberEvent", "MembershipObserver",
           "event_dict", "event_figures", "member_identity", "membership_frame", "ownership",
           "parse_member_events", "read_traces"]
