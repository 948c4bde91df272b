"""Consumer group membership: who owned which partition when, with members crashing,
leaving and joining marked (`rebalance_timeline`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go

from kafkabench.analysis.rebalance import member_identity, ownership
from kafkabench.present.plots._common import COLORS, _empty, _figure, _num, axis_title
from kafkabench.present.plots.faults import _FAULT_COLOR

#: Bar patterns telling apart members that share a colour: a restarted member's later workers
#: ("-r1", "-r2"), or members whose numbers are len(COLORS) apart.
_PATTERNS = ("", "/", "\\", "x", ".", "+", "-", "|")
_RESTART = re.compile(r"-r(\d+)$")
_INDEX = re.compile(r"(\d+)$")


def rebalance_timeline(rebalances: pd.DataFrame, membership: pd.DataFrame | None = None, *,
                       group: str | None = None, end_t: float | None = None,
                       title: str | None = None) -> go.Figure:
    """Who owned which partition when: a bar per ownership interval, a row per partition,
    a colour per member (`kafkabench.membership.ownership`), with the membership events
    as dashed lines.

    A member's colour comes from its number ("0-g1-c3" is member 3), not from when it first
    shows, so that it keeps its colour in every figure; a restarted member's later workers
    ("0-g1-c3-r1") keep it too, hatched.

    Args:
        rebalances: a run's `rebalances` frame.
        membership: its `membership` frame (crashes and leaves end ownership; events drawn).
        group: one group (default: the first).
        end_t: where intervals still open end (default: the last event).
        title: figure title.

    Returns:
        The figure.
    """
    if group is None and rebalances is not None and len(rebalances):
        group = str(rebalances["group"].iloc[0])
    spans = ownership(rebalances, membership, group=group, end_t=end_t)
    fig = _figure(title or "partition ownership over time", barmode="overlay")
    styles = _member_styles(spans["member"])
    for member, (colour, pattern) in styles.items():
        rows = spans[spans["member"] == member]
        fig.add_trace(go.Bar(base=_num(rows["start_t"]), x=_num(rows["end_t"] - rows["start_t"]),
                             y=[f"p{p}" for p in rows["partition"]], orientation="h", name=member,
                             marker={"color": colour, "pattern": {"shape": pattern}},
                             hovertemplate="%{y}: " + member + " from %{base:.2f} s for %{x:.2f} s<extra></extra>"))
    if membership is not None and len(membership):
        for row in membership[membership["t_s"].notna()].itertuples():
            fig.add_shape(type="line", x0=row.t_s, x1=row.t_s, xref="x", y0=0, y1=1, yref="paper",
                          line={"color": _FAULT_COLOR, "width": 1.5, "dash": "dash"})
            fig.add_annotation(x=row.t_s, xref="x", y=1.02, yref="paper", showarrow=False,
                               text=f"{row.action} {row.worker}", font={"size": 10})
    fig.update_xaxes(title_text=axis_title("t"))
    fig.update_yaxes(title_text="partition", categoryorder="category descending")
    if not len(spans):
        _empty(fig, "no assignments recorded")
    return fig


def _member_styles(members: Iterable[str]) -> dict[str, tuple[str, str]]:
    """member -> (colour, bar pattern), the same in every figure, in member order (number,
    then restart): the colour from the number ending the member's name (a stable hash of a
    name without one), the pattern from its restart; members that would look alike get the
    next pattern."""
    keys = {m: _member_key(m) for m in dict.fromkeys(str(m) for m in members)}
    styles: dict[str, tuple[str, str]] = {}
    for member in sorted(keys, key=lambda m: (keys[m], m)):
        index, restart = keys[member]
        colour, first = COLORS[index % len(COLORS)], restart + index // len(COLORS)
        patterns = [_PATTERNS[(first + k) % len(_PATTERNS)] for k in range(len(_PATTERNS))]
        styles[member] = colour, next((p for p in patterns if (colour, p) not in styles.values()),
                                      patterns[0])
    return styles


def _member_key(member: str) -> tuple[int, int]:
    """(number, restart) of a worker name: "0-g1-c3-r1" -> (3, 1); a name without a number
    gets a stable hash of itself (not Python's hash(), which changes per process)."""
    restart = _RESTART.search(member)
    found = _INDEX.search(member_identity(member))
    index = int(found.group(1)) if found else zlib.crc32(member_identity(member).encode())
    return index, int(restart.group(1)) if restart else 0
