"""The `kafkabench` command: argument parsing only, each command calling the one entry
function of its action; user mistakes (`KafkabenchError`) are caught once and printed without
a traceback.

May import: everything.
"""

from kafkabench.cli.commands import (
    CONSUMER_PERFORMANCE_HEADER,
    DESCRIPTION,
    Handler,
    build_parser,
    consumer_performance_lines,
    main,
    producer_performance_line,
    read_properties,
)

__all__ = ["CONSUMER_PERFORMANCE_HEADER", "DESCRIPTION", "Handler", "build_parser",
           "consumer_performance_lines", "main", "producer_performance_line", "read_properties"]
