"""Load shapes of Locust runs: how many users run at each second, as plain maths.

`kafkabench.locust_user.KafkaLoadShape` (a Locust `LoadTestShape`) asks `shape_tick` every
second; `planned_users` draws the same plan second by second for a chart. Nothing here imports
locust (which monkey-patches the process with gevent), so notebooks and tests can use it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: Load shapes `--kafka-shape` accepts.
SHAPES = ("constant", "step", "spike")

# Locust's options when a run does not give them (-u, -r, -t; --kafka-shape, --kafka-steps).
DEFAULT_SHAPE = "step"
DEFAULT_STEPS = 4
DEFAULT_RUN_TIME_S = 60.0


def shape_tick(shape: str, t: float, *, users: int, spawn_rate: float, run_time_s: float,
               steps: int = DEFAULT_STEPS) -> tuple[int, float] | None:
    """Users and spawn rate at `t` seconds into a shaped run (what `KafkaLoadShape` returns).

    Args:
        shape: "constant", "step" or "spike".
        t: seconds since the start.
        users: peak users (-u).
        spawn_rate: users started (or stopped) per second (-r).
        run_time_s: length of the run (-t); None is returned from then on.
        steps: number of steps of the step shape.

    Returns:
        (users, spawn_rate), or None when the run is over.

    Raises:
        ValueError: an unknown shape.
    """
    if t >= run_time_s:
        return None
    if shape == "constant":
        return users, spawn_rate
    if shape == "step":
        steps = max(1, min(steps, users))
        step = min(steps, int(t // (run_time_s / steps)) + 1)
        return math.ceil(users * step / steps), spawn_rate
    if shape == "spike":
        # A spike arrives at once: users start (and leave) as fast as -u per second.
        fast = max(spawn_rate, float(users))
        base = max(1, users // 4)
        return (users if 0.4 * run_time_s <= t < 0.6 * run_time_s else base), fast
    raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def options_tick(options: Any, t: float) -> tuple[int, float] | None:
    """`shape_tick` with its arguments taken from Locust's parsed options.

    Args:
        options: `environment.parsed_options` (attributes kafka_shape, num_users, spawn_rate,
            run_time, kafka_steps); a missing or empty one takes its default: step shape,
            1 user, 1 user/s, 60 s, 4 steps.
        t: seconds since the start.

    Returns:
        (users, spawn_rate), or None when the run is over.
    """
    return shape_tick(getattr(options, "kafka_shape", None) or DEFAULT_SHAPE, t,
                      users=getattr(options, "num_users", None) or 1,
                      spawn_rate=getattr(options, "spawn_rate", None) or 1.0,
                      run_time_s=getattr(options, "run_time", None) or DEFAULT_RUN_TIME_S,
                      steps=getattr(options, "kafka_steps", None) or DEFAULT_STEPS)


def planned_users(shape: str, *, users: int, spawn_rate: float, run_time_s: float,
                  steps: int = DEFAULT_STEPS) -> pd.DataFrame:
    """The users a shape asks for, second by second (before spawning catches up).

    Args:
        shape: "constant", "step" or "spike".
        users: peak users (-u).
        spawn_rate: users started per second (-r).
        run_time_s: length of the run (-t).
        steps: number of steps of the step shape.

    Returns:
        DataFrame indexed by t (whole seconds) with a column `users`.
    """
    ts = range(int(math.ceil(run_time_s)))
    counts = [shape_tick(shape, t, users=users, spawn_rate=spawn_rate, run_time_s=run_time_s,
                         steps=steps)[0] for t in ts]
    return pd.DataFrame({"users": counts}, index=pd.Index(ts, name="t", dtype="int64"))


__all__ = ["SHAPES", "shape_tick", "options_tick", "planned_users"]
