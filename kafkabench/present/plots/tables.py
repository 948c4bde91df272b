"""Summary rows (runs, sweep points, plan rows) as a plotly Table (`summary_table`), numbers
in plain notation (`format_number`), column names kept whole over as many header lines as
they need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from kafkabench.present.plots._common import _figure, format_number

_CHAR_PX = 7.2  # width of a character of the 12 px table font, plus a little
_HEADER_LINE_PX = 17
_NOTEBOOK_PX = 900  # about the width of a JupyterLab output area


def _header_lines(name: str, width: int) -> list[str]:
    """A column name broken after `_`, `.` or spaces into lines of at most `width` characters
    (plotly wraps table text only at spaces, and clips a long name at its column's edge)."""
    lines: list[str] = []
    for token in re.findall(r"[^_.\s]*[_.\s]*", name):
        if token and lines and len(lines[-1]) + len(token) <= width:
            lines[-1] += token
        elif token:
            lines.append(token)
    return [line.strip() for line in lines] or [""]


def summary_table(df: pd.DataFrame, columns: Sequence[str] | None = None, *,
                  title: str | None = None, transpose: bool | None = None) -> go.Figure:
    """A plotly Table of summary rows (runs, sweep points, plan rows).

    Column names are kept as they are (they are what code refers to) but broken after `_`
    and `.` over as many header lines as their column's width needs; a table wider than a
    notebook is drawn at its natural width (scroll sideways) instead of clipping its text.

    Args:
        df: the rows.
        columns: columns to show, in order (default all; missing ones are shown blank).
        title: figure title.
        transpose: show one row per column instead: a "quantity" column of the column names
            and a "value" column (one column per row of `df`, headed by its index, when
            there are several). Default: transposed when `df` has one row and more than four
            columns, which reads better than one long line.

    Returns:
        The figure: one Table trace; numbers to 4 significant digits (`format_number`),
        NaN blank.
    """
    columns = list(df.columns) if columns is None else list(columns)
    if transpose is None:
        transpose = len(df) == 1 and len(columns) > 4
    if transpose:
        df, columns = _transposed(df, columns)
    cells = [[format_number(v) for v in df[c]] if c in df else [""] * len(df) for c in columns]
    fig = _figure(title, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    stripes = (["#FFFFFF", "#F6F8FA"] * (len(df) // 2 + 1))[:len(df)]
    widths, headers = _column_layout(columns, cells)
    lines = max(map(len, headers), default=1)
    fig.add_trace(go.Table(
        columnwidth=widths,
        header={"values": ["<b>" + "<br>".join(h) + "</b>" for h in headers], "fill_color": "#E8EEF4",
                "align": "left", "font": {"size": 12}, "height": 10 + _HEADER_LINE_PX * lines},
        cells={"values": cells, "align": ["left"] + ["right"] * (len(columns) - 1),
               "fill_color": [stripes] * len(columns), "font": {"size": 12}, "height": 26}))
    rows_px = 10 + _HEADER_LINE_PX * lines + 26 * len(df)
    fig.update_layout(height=max(120, min(900, rows_px + 30)) + (40 if title else 0))
    natural = sum(widths) * _CHAR_PX + 20
    if natural > _NOTEBOOK_PX or transpose:  # a quantity/value list reads best narrow
        fig.update_layout(width=max(360, round(natural)), autosize=False)
    return fig


def _transposed(df: pd.DataFrame, columns: list) -> tuple[pd.DataFrame, list]:
    """The rows as columns: "quantity" (the column names), then "value" (one row) or a column
    per row headed by its index label; with the new frame's column names."""
    values = {"quantity": [str(c) for c in columns]}
    for label, row in df.iterrows():
        values["value" if len(df) == 1 else str(label)] = [row[c] if c in df else None for c in columns]
    return pd.DataFrame(values), list(values)


def _column_layout(columns: Sequence, cells: Sequence[Sequence[str]]) -> tuple[list[int], list[list[str]]]:
    """Width in characters and header lines of each column.

    A column is as wide as its longest cell or header; when that makes the table wider than
    a notebook, headers break into lines and only their longest unbreakable part counts.
    """
    longest = [max(map(len, column), default=0) for column in cells]
    widths = [max(n, len(str(c))) + 2 for c, n in zip(columns, longest)]
    if sum(widths) * _CHAR_PX + 20 <= _NOTEBOOK_PX:
        return widths, [[str(c)] for c in columns]
    widths, headers = [], []
    for c, n in zip(columns, longest):
        width = max(n, min(len(str(c)), 10), *map(len, re.split(r"(?<=[_.\s])", str(c))))
        widths.append(width + 2)
        headers.append(_header_lines(str(c), width))
    return widths, headers
