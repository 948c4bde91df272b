"""The `kafkabench` command: argument parsing only, each command calling the one entry
function of its action; user mistakes (`KafkabenchError`) are caught once and printed without
a traceback.

One module per command group, each registering its subcommands and holding their handlers:
`cluster` (kafka install, cluster up/status/down and node actions), `topic`, `run`, `sweep`
(sweep, quickstart), `locust`, `perf` (produce, consume: the Kafka perf-tool look-alikes),
`lag`, `offsets`, `scenario`, `results` (results, report), `observe`. `parser` builds the
top-level parser and holds `main`; `options` the shared options and argument types; `output`
what several commands print. `commands` is the module path before the split.

May import: everything.
"""

from kafkabench.cli.options import Handler, read_properties
from kafkabench.cli.parser import DESCRIPTION, build_parser, main
from kafkabench.cli.perf import (
    CONSUMER_PERFORMANCE_HEADER,
    consumer_performance_lines,
    producer_performance_line,
)

__all__ = ["CONSUMER_PERFORMANCE_HEADER", "DESCRIPTION", "Handler", "build_parser",
           "consumer_performance_lines", "main", "producer_performance_line", "read_properties"]
