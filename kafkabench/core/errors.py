"""Errors kafkabench raises for user mistakes and unusable environments.

The CLI catches `KafkabenchError` once and prints its message without a traceback;
anything else is a bug and keeps its traceback.
"""


class KafkabenchError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class ConfigError(KafkabenchError):
    """A bad setting, quoted with its key and value."""


class InstallError(KafkabenchError):
    """Java or the Kafka distribution is missing or unusable."""


class ClusterError(KafkabenchError):
    """The embedded cluster could not be started, found or controlled."""


class NoClusterError(ClusterError):
    """No bootstrap servers were given and no embedded cluster is running."""
