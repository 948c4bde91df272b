"""librdkafka's log lines routed into Python logging: `librdkafka_logger()` is the one `logger`
object every client config gets, writing to the `kafkabench.librdkafka` logger (its warnings and errors at
INFO, the rest at DEBUG), so they show with kafkabench's own `-v`, not on stderr.

In a notebook (`warnings_as_lines`), kafkabench's warnings are one plain line each on stdout,
not Python's last-resort stderr output (a pink box in JupyterLab that reads as a failure).

May import: the standard library only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

#: Where librdkafka's own log lines go (see `librdkafka_logger`); `kafkabench -v` shows them.
LIBRDKAFKA_LOG = logging.getLogger("kafkabench.librdkafka")


class _LibrdkafkaLogger:
    """A confluent-kafka `logger` forwarding librdkafka's lines to `LIBRDKAFKA_LOG`.

    librdkafka logs a refused connection as an error, every second, per broker: for a
    benchmark tool that is detail, not news (the failure itself is reported once, clearly),
    so its warnings and errors arrive at INFO (`kafkabench -v`) and the rest at DEBUG.
    Stateless, so a client config holding it can be pickled for spawned workers.
    """

    def log(self, level: int, fmt: str, *args: Any) -> None:
        LIBRDKAFKA_LOG.log(logging.INFO if level >= logging.WARNING else logging.DEBUG,
                           "librdkafka: " + fmt, *args)


_LIBRDKAFKA_LOGGER = _LibrdkafkaLogger()


def librdkafka_logger() -> _LibrdkafkaLogger:
    """The `logger` setting for every confluent-kafka client kafkabench creates.

    Without a `logger`, librdkafka writes its lines to stderr itself (hundreds of
    "Connection refused" lines when the cluster is down). With it, they are queued and
    handed over by the client's `poll()`/`consume()` (an AdminClient's never, unless
    polled) to the `kafkabench.librdkafka` logger at INFO/DEBUG.
    """
    return _LIBRDKAFKA_LOGGER




class _LinesUnlessConfigured(logging.StreamHandler):
    """One line per warning, "kafkabench warning: ...", on the current `sys.stdout`; silent
    once the application configured logging itself (the root logger has a handler): its
    handlers then show the record."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)

    def format(self, record: logging.LogRecord) -> str:
        return f"kafkabench {record.levelname.lower()}: {record.getMessage()}"

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        self.setStream(sys.stdout)  # a notebook replaces sys.stdout per cell
        super().emit(record)


def warnings_as_lines(logger: str = "kafkabench") -> bool:
    """Show `logger`'s warnings as one line each on stdout, if nothing shows them yet.

    Without a handler, Python prints a library's warnings to stderr (its last-resort
    handler): in JupyterLab a pink box, which a reader takes for a failure, and glued to
    any progress bar on the same stream. Called when kafkabench is imported in a Jupyter
    kernel, and in the child processes kafkabench runs scenarios in (their stderr reaches
    the notebook too).

    Args:
        logger: the logger to give the handler.

    Returns:
        Whether the handler was added (not when `logger` already has a handler).
    """
    target = logging.getLogger(logger)
    if target.handlers:
        return False
    target.addHandler(_LinesUnlessConfigured())
    return True


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter (ipykernel) kernel."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = shell.get_ipython()
    return ip is not None and hasattr(ip, "kernel")
