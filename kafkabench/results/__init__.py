"""Saved runs: a run as a folder of JSON and parquet (`store`: save, load, load_results,
compare, find_run), results of earlier schema versions migrated on load, and the partial
result of a run whose main process died, recovered from its journal (`recover`).

May import: everything below `kafkabench.runner`.

The public names of the flat module `kafkabench.results` are re-exported here.
"""

from kafkabench.results.store import (
    HEADLINE,
    RESULT_FILE,
    SCHEMA_VERSION,
    compare,
    find_run,
    list_results,
    load,
    load_many,
    load_results,
    recover,
    save,
)
from kafkabench.run.result import (
    REBALANCE_COLUMNS,
    TIMESERIES_COLUMNS,
    RunResult,
    empty_lag,
    empty_librdkafka,
    empty_rebalances,
    empty_timeseries,
    make_run_id,
)

__all__ = [
    "HEADLINE", "REBALANCE_COLUMNS", "RESULT_FILE", "SCHEMA_VERSION", "TIMESERIES_COLUMNS", "RunResult",
    "compare", "empty_lag", "empty_librdkafka", "empty_rebalances", "empty_timeseries", "find_run",
    "list_results", "load", "load_many", "load_results", "make_run_id", "recover", "save",
]
