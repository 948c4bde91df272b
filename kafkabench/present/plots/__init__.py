"""DataFrames in, plotly Figures out: one look for every kafkabench chart.

Every function takes frames shaped as DESIGN.md's Results section describes (or a sweep /
capacity / partitioning frame) and returns a `plotly.graph_objects.Figure`. Nothing here
computes a statistic or calls `.show()`: the numbers come from `measure`, `results` and
`analysis` (capacity, partitioning, cluster state, broker series, downtime); these modules
only choose traces, axes, units and hover text.

The figures by domain, all re-exported here (`from kafkabench import plots; plots.x(...)`):

    _common      the `kafkabench` template, colours, `axis_title`, `format_number`, helpers
    throughput   throughput_vs, throughput_over_time, users_over_time
    latency      latency_spectrum, latency_over_time, rate_vs_latency, processing_over_time
    lag          lag_over_time (rebalances marked)
    groups       rebalance_timeline (partition ownership)
    faults       mark_faults, cluster_state_over_time, run_x_range (the time axis a run's
                 figures share; every run time-series figure takes `x_range=`)
    observe      client_and_broker (broker metrics beside the client's)
    partitions   partition_share, partition_heatmap
    capacity     capacity_sensitivity, predicted_vs_measured
    tables       summary_table
    rules        figure_problems, figures_aligned: the rules every figure keeps, checked

May import: everything below `kafkabench.widgets` except the interfaces (as `kafkabench.present`).
"""

from kafkabench.present.plots._common import (
    COLORS,
    DASHES,
    METRIC_NAMES,
    NUMBER_FORMAT,
    TEMPLATE,
    axis_title,
    format_number,
    line_style,
)
from kafkabench.present.plots.capacity import capacity_sensitivity, predicted_vs_measured
from kafkabench.present.plots.faults import cluster_state_over_time, mark_faults, run_x_range
from kafkabench.present.plots.groups import rebalance_timeline
from kafkabench.present.plots.lag import lag_over_time
from kafkabench.present.plots.latency import (
    latency_over_time,
    latency_spectrum,
    processing_over_time,
    rate_vs_latency,
)
from kafkabench.present.plots.observe import client_and_broker
from kafkabench.present.plots.partitions import partition_heatmap, partition_share
from kafkabench.present.plots.rules import figure_problems, figures_aligned
from kafkabench.present.plots.tables import summary_table
from kafkabench.present.plots.throughput import throughput_over_time, throughput_vs, users_over_time

__all__ = [
    "TEMPLATE",
    "COLORS",
    "DASHES",
    "METRIC_NAMES",
    "NUMBER_FORMAT",
    "axis_title",
    "format_number",
    "line_style",
    "throughput_vs",
    "throughput_over_time",
    "users_over_time",
    "latency_spectrum",
    "latency_over_time",
    "rate_vs_latency",
    "processing_over_time",
    "lag_over_time",
    "rebalance_timeline",
    "mark_faults",
    "cluster_state_over_time",
    "run_x_range",
    "client_and_broker",
    "partition_share",
    "partition_heatmap",
    "capacity_sensitivity",
    "predicted_vs_measured",
    "summary_table",
    "figure_problems",
    "figures_aligned",
]
