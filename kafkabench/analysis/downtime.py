"""When a run's nodes were down, from its fault frame (`RunResult.faults`,
`FaultObserver.frame()`): when each action started (`started_s`) and the spans during which a
node was down or paused (`down_spans`), where the frame shows both ends.

`downtimes` pairs each such span with the rows that began and ended it. Frames in, numbers
out; `kafkabench.present.plots.mark_faults` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kafkabench.spec.faults import UNDO

#: Actions that take a node away and bring it back themselves: down from started_s to ended_s.
ROUND_TRIPS = ("restart", "rolling_restart")


def _missing(value: Any) -> bool:
    """NaN, None, pd.NA; False for anything pandas cannot judge (a list)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    """A cell as text, "" when missing."""
    return "" if _missing(value) else str(value)


def _seconds(value: Any) -> float:
    """A time cell as a float, NaN when missing or infinite."""
    return float(value) if not _missing(value) and math.isfinite(float(value)) else math.nan


def started_s(row: Mapping[str, Any]) -> float:
    """When a fault action started, in seconds of the run.

    Args:
        row: One row of a fault frame (`faults.to_dict("records")`).

    Returns:
        Its `started_s`; NaN when it never started (e.g. skipped at the end of the run).
    """
    return _seconds(row.get("started_s"))


def _ended_s(row: Mapping[str, Any]) -> float:
    """When an action ended: its ended_s, else when it started."""
    end = _seconds(row.get("ended_s"))
    return end if not math.isnan(end) else started_s(row)


def _same_node(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two actions hit the same node (by id, else by the target they named)."""
    if not _missing(a.get("node")) and not _missing(b.get("node")):
        return int(a["node"]) == int(b["node"])
    return bool(_text(a.get("target"))) and _text(a.get("target")) == _text(b.get("target"))


def _undoes(back: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether `back` brings back the node that `row` took away."""
    if back.get("action") != UNDO.get(_text(row.get("action"))) or back.get("outcome") != "ok":
        return False
    return (back.get("origin") == "duration" and back.get("fault") == row.get("fault")) or \
        _same_node(back, row)


@dataclass(frozen=True, slots=True)
class Downtime:
    """One time a node was down or paused, in seconds of the run.

    Attributes:
        start_s: when the action that took it away (kill, stop, pause, restart) started.
        back_s: when the action that brought it back (start, resume) started, where figures
            draw its line; a restart, which brings its node back itself, when it ended.
        end_s: when that action ended (the node answering again): `down_spans`' end.
        began: the index of the row that took the node away.
        ended_by: the index of the row that brought it back; None for a restart.
    """

    start_s: float
    back_s: float
    end_s: float
    began: int
    ended_by: int | None


def downtimes(faults: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[Downtime]:
    """Each time a node was down or paused, where the faults show both ends.

    A kill/stop/pause ends at the first later start/resume of the same node (or the undo
    after its duration_s); a restart ends when it did. A fault that failed, or whose node
    the frame never shows coming back, gets none.

    Args:
        faults: A fault frame, or its rows as mappings.

    Returns:
        The downtimes, in the order the actions that began them started.
    """
    rows = faults.to_dict("records") if isinstance(faults, pd.DataFrame) else list(faults)
    order = sorted((i for i in range(len(rows)) if not math.isnan(started_s(rows[i]))),
                   key=lambda i: started_s(rows[i]))
    used: set[int] = set()
    out = []
    for i in order:
        row, start = rows[i], started_s(rows[i])
        if row.get("outcome") != "ok":
            continue
        if row.get("action") in ROUND_TRIPS:
            if _ended_s(row) > start:
                out.append(Downtime(start, _ended_s(row), _ended_s(row), i, None))
            continue
        back = next((j for j in order if j not in used and started_s(rows[j]) >= start
                     and _undoes(rows[j], row)), None)
        if back is not None:
            used.add(back)
            out.append(Downtime(start, started_s(rows[back]), max(_ended_s(rows[back]), start), i, back))
    return out


def down_spans(faults: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(from, to) of each time a node was down or paused, where the faults show both ends:
    from the start of the action that took it away to the end of the one that brought it back
    (see `downtimes`).

    Args:
        faults: A fault frame, or its rows as mappings.

    Returns:
        The spans in seconds of the run, in the order the actions that began them started.
    """
    return [(d.start_s, d.end_s) for d in downtimes(faults)]
