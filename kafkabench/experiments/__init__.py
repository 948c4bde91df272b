"""Experiments made of runs: grids of settings (`sweep`, resumable), the named fault scenarios
(`scenarios`, each run in a child process), the notebooks' studies (`studies`: scaling,
strategies, capacity checks, service patterns, rebalancing) and the quick start (`quickstart`).

May import: `kafkabench.runner` and everything below it.

The public names of the flat module `kafkabench.experiments` are re-exported here.
"""

from kafkabench.experiments.studies import (
    REBALANCE_VARIANTS,
    ProfileSpec,
    WorkloadSpec,
    check_capacity_plan,
    ci_mode,
    commit_strategy_crashes,
    compare_strategies_live,
    consumer_balance,
    exactly_once_curve,
    group_ids,
    lag_status,
    live_summary,
    offline_shares,
    peak_rate,
    rate_latency_curve,
    rebalance_comparison,
    rebalance_profile,
    results_dir,
    run_options,
    run_watched,
    scaling_consumers,
    service_patterns,
    size,
)

__all__ = [
    "REBALANCE_VARIANTS", "ProfileSpec", "WorkloadSpec", "check_capacity_plan", "ci_mode",
    "commit_strategy_crashes", "compare_strategies_live", "consumer_balance", "exactly_once_curve",
    "group_ids", "lag_status", "live_summary", "offline_shares", "peak_rate", "rate_latency_curve",
    "rebalance_comparison", "rebalance_profile", "results_dir", "run_options", "run_watched",
    "scaling_consumers", "service_patterns", "size",
]
