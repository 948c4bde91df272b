"""Table cells as people read them, and summary rows as a plotly Table (`summary_table`).

`format_cell` and `column_formatter` write every cell of a kafkabench table, here and in the
HTML tables of `kafkabench.present.html_tables` (notebooks and the report): counts "1,000"
(never "1.0"), other numbers to 4 significant digits in plain notation (`format_number`, never
an exponent), seconds (`*_s` columns) to a tenth or a hundredth, epoch times (`*_at`,
`*_timestamp`, the contract's `wall` and `failed_at`) and datetime columns as local times
"2026-12-07 23:07:26.123", bools "yes"/"no", dicts "k: v, k: v", lists "a, b", bytes as UTF-8
text, numpy scalars without their type, NaN and None blank. `summary_table` keeps column names
whole over as many header lines as they need.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kafkabench.core.contract import column_names
from kafkabench.present.plots._common import _figure, _missing, _num, format_number

_CHAR_PX = 7.2  # width of a character of the 12 px table font, plus a little
_HEADER_LINE_PX = 17
_NOTEBOOK_PX = 900  # about the width of a JupyterLab output area

#: Result-frame columns that hold a point in time as a number: `wall` (Unix seconds) and
#: `failed_at` (the dead-letter header, epoch milliseconds, before it is made a datetime); the
#: contract's other times (`time`, `failed_at` as saved) are datetime64 columns.
EPOCH_COLUMNS = frozenset((*column_names("rebalances", "wall"), *column_names("membership", "wall"),
                           *column_names("dead_letters", "failed_at")))
#: Name endings of other columns read as points in time when they hold epoch numbers.
EPOCH_SUFFIXES = ("_at", "_at_ms", "timestamp", "timestamp_ms")
_EPOCH_MS = 1e11  # numbers above are epoch milliseconds (1e11 seconds is the year 5138)
_EPOCH_S = 1e9  # numbers above are epoch seconds (2001-09-09 on); smaller ones are not times
_WHOLE_MAX = 1e15  # as `format_number`: whole floats below are written as integers


def format_cell(value: Any, name: str = "") -> str:
    """One value as table text, by its type and the name of its column (or dict key).

    Examples: 1000.0 -> "1,000", np.float64(1.0285) -> "1.029", ("drain_s", 10.42) -> "10.4",
    ("failed_at", 1765000000123) -> a local time "2025-12-06 05:46:40.123" (in UTC),
    True -> "yes", {"a": 1} -> "a: 1", ["a", "b"] -> "a, b", b"key" -> "key", None -> "".

    Args:
        value: a cell value (numpy scalars and arrays, pandas NA, Timestamps included).
        name: its column or key: `*_s` are seconds, `*_at` epoch times (see the module).

    Returns:
        The text (not HTML-escaped).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_cell(v, str(k))}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return ", ".join(format_cell(v, name) for v in value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decoded(bytes(value))
    if _missing(value):
        return ""
    if isinstance(value, (datetime, np.datetime64)):  # a pd.Timestamp is a datetime
        return _time_text(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number_formatter(np.array([float(value)]), name)(value)
    return str(value)


def column_formatter(values: pd.Series, name: str = "") -> Callable[[Any], str]:
    """The function that writes each cell of a column, chosen once from its dtype, name and values.

    A float column whose values are all whole is written as counts; a `*_s` column of seconds
    with 1 decimal when its largest value is 10 or more, else 2 ("10.4", "8.0"; "0.35"); an
    epoch-time column (see the module) as local times; anything else as `format_cell` writes it.

    Args:
        values: the column.
        name: its name (default: the series' name).

    Returns:
        A function of one cell value (NaN, None and NA included) returning its text.
    """
    name = str(name or values.name or "")
    if pd.api.types.is_datetime64_any_dtype(values):
        return _time_text
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return partial(format_cell, name=name)
    return _number_formatter(_num(values), name)


def format_column(values: Sequence[Any] | pd.Series, name: str = "") -> list[str]:
    """Every cell of a column as text (`column_formatter`).

    Args:
        values: the column (a Series, or any sequence of values).
        name: its name (default: the series' name).

    Returns:
        One text per value, in order.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=None)
    write = column_formatter(series, name)
    return [write(v) for v in series]


def is_epoch_name(name: str) -> bool:
    """Whether a column of this name holding numbers past 1e9 holds points in time."""
    return name in EPOCH_COLUMNS or name.endswith(EPOCH_SUFFIXES)


def _is_seconds(name: str) -> bool:
    return name.endswith("_s") and not name.endswith("_mb_s")  # MB/s is a rate


def _number_formatter(values: np.ndarray, name: str) -> Callable[[Any], str]:
    """How to write the numbers of a column of these float values."""
    finite = values[np.isfinite(values)]
    if is_epoch_name(name) and bool((finite > _EPOCH_S).any()):
        return _time_text
    whole = bool(np.all((finite == np.round(finite)) & (np.abs(finite) < _WHOLE_MAX)))
    if _is_seconds(name) and not whole:
        return partial(_seconds_text, decimals=1 if np.abs(finite).max() >= 10 else 2)
    return format_number  # whole numbers as counts "1,000", others to 4 significant digits


def _seconds_text(value: Any, decimals: int) -> str:
    """Seconds to `decimals` places ("10.4", "0.35"); one too small for them to 4 significant digits."""
    if _missing(value) or not np.isfinite(float(value)):
        return format_number(value)
    text = f"{float(value):,.{decimals}f}"
    return format_number(value) if float(value) != 0 and float(text.replace(",", "")) == 0 else text


def _time_text(value: Any) -> str:
    """A point in time as local time to the millisecond; epoch numbers (s or ms) included.

    A timezone-aware time and an epoch number are shown in the machine's local time zone; a
    naive one as it is (its zone is unknown). Numbers too small to be epoch times are numbers.
    """
    if _missing(value):
        return ""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        seconds = float(value)
        if not seconds > _EPOCH_S:
            return format_number(value)
        moment = datetime.fromtimestamp(seconds / 1000 if seconds > _EPOCH_MS else seconds)
    else:
        stamp = pd.Timestamp(value)
        # fromtimestamp applies the local zone's rules of that date (summer time included).
        moment = datetime.fromtimestamp(stamp.timestamp()) if stamp.tzinfo else stamp.to_pydatetime(warn=False)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def _decoded(data: bytes) -> str:
    """Bytes as UTF-8 text, or as hex when they are not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()


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
        The figure: one Table trace; cells as `column_formatter` writes them (a transposed
        table's values as `format_cell` writes each by its quantity's name), NaN blank.
    """
    columns = list(df.columns) if columns is None else list(columns)
    if transpose is None:
        transpose = len(df) == 1 and len(columns) > 4
    if transpose:
        columns, cells = _transposed(df, columns)
    else:
        cells = [format_column(df[c], c) if c in df else [""] * len(df) for c in columns]
    rows = len(cells[0]) if cells else 0
    fig = _figure(title, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    stripes = (["#FFFFFF", "#F6F8FA"] * (rows // 2 + 1))[:rows]
    widths, headers = _column_layout(columns, cells)
    lines = max(map(len, headers), default=1)
    fig.add_trace(go.Table(
        columnwidth=widths,
        header={"values": ["<b>" + "<br>".join(h) + "</b>" for h in headers], "fill_color": "#E8EEF4",
                "align": "left", "font": {"size": 12}, "height": 10 + _HEADER_LINE_PX * lines},
        cells={"values": cells, "align": ["left"] + ["right"] * (len(columns) - 1),
               "fill_color": [stripes] * len(columns), "font": {"size": 12}, "height": 26}))
    rows_px = 10 + _HEADER_LINE_PX * lines + 26 * rows
    fig.update_layout(height=max(120, min(900, rows_px + 30)) + (40 if title else 0))
    natural = sum(widths) * _CHAR_PX + 20
    if natural > _NOTEBOOK_PX or transpose:  # a quantity/value list reads best narrow
        fig.update_layout(width=max(360, round(natural)), autosize=False)
    return fig


def _transposed(df: pd.DataFrame, columns: list) -> tuple[list[str], list[list[str]]]:
    """The rows as columns: header names and cells of "quantity" (the column names), then
    "value" (one row) or a column per row headed by its index label; each value written by
    its quantity's name."""
    names = [str(c) for c in columns]
    headers, cells = ["quantity"], [names]
    for label, row in df.iterrows():
        headers.append("value" if len(df) == 1 else str(label))
        cells.append([format_cell(row[c], n) if c in df else "" for c, n in zip(columns, names)])
    return headers, cells


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
