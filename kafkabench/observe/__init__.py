"""Observability, as observers and servers: Prometheus metrics out of runs, Locust and the lag
exporter (`metrics`), the brokers' JMX exporter metrics in (`brokermetrics`), and a real
Prometheus with kafkabench's alert rules (`prometheus`).

May import: everything below `kafkabench.runner` except the other features.

The public names of the flat module `kafkabench.observe` (the Prometheus server) are
re-exported here.
"""

from kafkabench.observe.prometheus import (
    ALERTS_FILE,
    BROKER_JOB,
    CLIENT_JOB,
    DASHBOARD_FILE,
    DEFAULT_LAG_THRESHOLD,
    DEFAULT_PORT,
    HTTP_TIMEOUT_S,
    INSTALL_HINT,
    JOBS,
    LAG_ALERT,
    READY_TIMEOUT_S,
    RETENTION,
    STATE_FILE,
    STOP_TIMEOUT_S,
    SYNTHETIC_SERIES,
    ObserveState,
    add_targets,
    alerts,
    metric_names_used,
    missing_reason,
    observe_down,
    observe_home,
    observe_status,
    observe_up,
    prometheus_binary,
    prometheus_config,
    promql_metric_names,
    promtool_binary,
    queries,
    query,
    remove_targets,
    render_rules,
    require_prometheus,
    target_health,
)

__all__ = [
    "ALERTS_FILE", "BROKER_JOB", "CLIENT_JOB", "DASHBOARD_FILE", "DEFAULT_LAG_THRESHOLD", "DEFAULT_PORT",
    "HTTP_TIMEOUT_S", "INSTALL_HINT", "JOBS", "LAG_ALERT", "READY_TIMEOUT_S", "RETENTION", "STATE_FILE",
    "STOP_TIMEOUT_S", "SYNTHETIC_SERIES", "ObserveState", "add_targets", "alerts", "metric_names_used",
    "missing_reason", "observe_down", "observe_home", "observe_status", "observe_up", "prometheus_binary",
    "prometheus_config", "promql_metric_names", "promtool_binary", "queries", "query", "remove_targets",
    "render_rules", "require_prometheus", "target_health",
]
