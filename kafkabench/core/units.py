"""Units in command-line values: durations such as `90`, `90s`, `5m`, `1h30m`, `250ms`."""

from __future__ import annotations

import re

from kafkabench.core.errors import ConfigError

_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds"}
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
# Units largest first, each at most once, as Locust and Go write durations: 1h30m, 2m30s.
_DURATION = re.compile("".join(f"(?:(?P<{u}>{_NUMBER}){u})?" for u in ("h", "m", "s", "ms")))


def parse_duration(text: str | float, *, unit: str = "s") -> float:
    """A duration in seconds from `90`, `90s`, `1.5s`, `250ms`, `5m`, `1h` or `1h30m`.

    Args:
        text: The value; a bare number is in `unit`.
        unit: The unit of a bare number: "s" (default) or "ms" (as Kafka's `--timeout`).

    Returns:
        Seconds, zero or more.

    Raises:
        ConfigError: Not a duration, or negative, quoting the value.
    """
    value = str(text).strip().lower()
    if re.fullmatch(_NUMBER, value):
        return float(value) * _SECONDS[unit]
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.groups()):
        raise ConfigError(f"duration {text!r}: expected a number of {_UNIT_NAMES[unit]} or a "
                          "number with units h, m, s, ms, e.g. 90, 90s, 5m, 1h30m")
    return sum(float(n) * _SECONDS[u] for u, n in match.groupdict().items() if n is not None)

