"""librdkafka's log lines routed into Python logging: `librdkafka_logger()` is the one `logger`
object every client config gets, writing to the `kafkabench.librdkafka` logger (its warnings and errors at
INFO, the rest at DEBUG), so they show with kafkabench's own `-v`, not on stderr.

May import: the standard library only.
"""

from __future__ import annotations

import logging
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


