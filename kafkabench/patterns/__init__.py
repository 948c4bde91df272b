"""The design source's service patterns in a run, as an observer: `ProcessingObserver` adds the
processing stage's frames and figures (the stage itself runs in each member:
`kafkabench.engine.stage`; what it is: `kafkabench.spec.processing`).

May import: everything below `kafkabench.runner` except the other features.

The public names of the flat module `kafkabench.processing` are re-exported here.
"""

from kafkabench.engine.producer import TXN_TIMEOUT_S
from kafkabench.engine.stage import Abort, Stage, Stopped, now_ms
from kafkabench.patterns.observer import (
    DEAD_LETTERS_MAX,
    OutputLatency,
    ProcessingObserver,
    dead_letters_frame,
    output_counts,
    processing_frame,
    read_records,
)
from kafkabench.spec.processing import (
    DLQ_HEADERS,
    FILTERED,
    OK,
    POISON,
    RETRY_HEADERS,
    RETRY_MODES,
    SOURCE_HEADER,
    TIME_DISTRIBUTIONS,
    TRANSIENT,
    Backoff,
    Processing,
    dlq_topic,
    load_processing_file,
    output_topic,
    processing_from_spec,
    retry_topic,
)

__all__ = [
    "DEAD_LETTERS_MAX", "DLQ_HEADERS", "FILTERED", "OK", "POISON", "RETRY_HEADERS", "RETRY_MODES",
    "SOURCE_HEADER", "TIME_DISTRIBUTIONS", "TRANSIENT", "TXN_TIMEOUT_S", "Abort", "Backoff",
    "OutputLatency", "Processing", "ProcessingObserver", "Stage", "Stopped", "dead_letters_frame",
    "dlq_topic", "load_processing_file", "now_ms", "output_counts", "output_topic", "processing_frame",
    "processing_from_spec", "read_records", "retry_topic",
]
