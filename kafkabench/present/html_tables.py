"""`readable`, `readable_dict`: result frames and dicts of figures as HTML tables people can
read, in JupyterLab and in the report.

Key columns come first; every column stays whole (the table scrolls sideways in its own box,
text never wraps over lines); cells are written as `kafkabench.present.plots.tables` writes
every table cell (counts "1,000", seconds "10.4", epoch times as local times, no exponents, no
numpy type names); text is left-aligned and numbers right-aligned. The result is a pandas
`Styler` (`ReadableTable`), so it can be styled further.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from kafkabench.present.plots.tables import column_formatter, format_cell

__all__ = ["ReadableTable", "readable", "readable_dict"]

# JupyterLab lays tables out fixed, wraps cells and right-aligns everything
# (`.jp-RenderedHTMLCommon`): these selectors, under the table's id, outrank its rules.
_STYLES = [
    {"selector": "", "props": "table-layout: auto; border-collapse: collapse; margin: 0 0 0.5em 0; "
                              "font-size: 12px; width: auto;"},
    {"selector": "th, td", "props": "white-space: nowrap; padding: 4px 7px; max-width: none; "
                                    "vertical-align: top; text-align: left;"},
    {"selector": "thead th", "props": "background-color: #E8EEF4; border-bottom: 1px solid #C8D2DC; "
                                      "white-space: normal; overflow-wrap: normal;"},
    {"selector": "tbody tr:nth-child(even)", "props": "background-color: #F6F8FA;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold; padding: 4px 0;"},
]
_RIGHT = "text-align: right;"
_WRAP = "white-space: normal; min-width: 24ch; max-width: 60ch; overflow-wrap: anywhere;"
_BOX = '<div class="kb-readable" style="overflow-x: auto; max-width: 100%;">{}</div>'


class ReadableTable(Styler):
    """A `Styler` whose HTML (as JupyterLab shows it, and `html()`) sits in a box that scrolls
    sideways, so a wide table is never clipped at the output's right edge."""

    def html(self) -> str:
        """The table's HTML (`to_html()`) inside a `<div>` that scrolls sideways."""
        return _BOX.format(self.to_html())

    def _repr_html_(self) -> str:
        return self.html()


def readable(df: pd.DataFrame | pd.Series, *, key: str | Sequence[str] = (),
             columns: Sequence[str] | None = None, title: str | None = None,
             max_text: int | None = None, wrap: Sequence[str] = ()) -> ReadableTable:
    """A frame as an HTML table people can read (JupyterLab shows it; `.html()` gives it).

    Args:
        df: the rows (a Series is shown as one column).
        key: the columns that name a row (scenario, variant, run): shown first.
        columns: the other columns to show, in order (default: all the others, in their order).
        title: a caption above the table.
        max_text: cut text longer than this many characters, ending it with "…" (default:
            never cut); numbers and times are never cut.
        wrap: text columns whose cells wrap over lines (a description, a PromQL expression),
            at most 60 characters wide, so the table fits beside them; the others never wrap.

    Returns:
        A `ReadableTable` (a pandas `Styler`): cells written by `column_formatter` (counts
        "1,000", `*_s` seconds "10.4" / "0.35", other numbers to 4 significant digits without
        exponents, epoch and datetime columns as local times, bools "yes"/"no", dicts "k: v",
        lists "a, b"), NaN blank; text left-aligned and never wrapped, numbers right-aligned;
        the index shown only when it means something (named, or not integers).

    Raises:
        ValueError: a `key` or `columns` name that the frame lacks (the message lists the
            frame's columns), or `max_text` below 1.
    """
    frame = df.to_frame() if isinstance(df, pd.Series) else df
    if max_text is not None and max_text < 1:
        raise ValueError(f"max_text={max_text!r}: expected a number of characters, 1 or more")
    order = _column_order(frame, key, columns)
    frame = frame.loc[:, order]
    right = {c for c in order if _is_number_column(frame[c])}
    writers = {c: _cell_writer(column_formatter(frame[c], _name(c)), None if c in right else max_text)
               for c in order}
    styler = _styled(frame, writers, right, title)
    unknown = [c for c in wrap if c not in order]
    if unknown:
        raise ValueError(f"wrap={unknown!r}: not among the columns shown, {order!r}")
    styler.set_table_styles({c: [{"selector": "td", "props": _WRAP}] for c in wrap}, overwrite=False)
    if _meaningful(frame.index):
        styler.format_index(_index_writer(frame.index), axis=0)
    else:
        styler.hide(axis="index")
    return styler


def readable_dict(d: Mapping[Any, Any], *, title: str | None = None) -> ReadableTable:
    """A dict of figures as a two-column HTML table, "quantity" and "value".

    For cells that would show a raw dict (`{"delivered": np.int64(24000), "ratio":
    np.float64(1.0285)}`): each value is written by its own type and its key's name, as
    `format_cell` writes it ("24,000", "1.028", a `*_s` key's seconds, a list "a, b").

    Args:
        d: the figures, by name.
        title: a caption above the table.

    Returns:
        A `ReadableTable` (a pandas `Styler` of the written texts): numbers right-aligned,
        text left-aligned, no index.
    """
    names = [str(k) for k in d]
    frame = pd.DataFrame({"quantity": names,
                          "value": [format_cell(v, n) for n, v in zip(names, d.values())]})
    writers = {c: _cell_writer(str, None) for c in frame.columns}
    styler = _styled(frame, writers, set(), title)
    styler.set_table_styles({"value": [{"selector": "td", "props": _WRAP}]}, overwrite=False)
    # Numbers right-aligned row by row (a rule per cell id would lose to the table's `td` rule).
    styler.set_table_styles({i: [{"selector": "td.col1", "props": _RIGHT}]
                             for i, v in enumerate(d.values()) if _is_number(v)}, axis=1, overwrite=False)
    return styler.hide(axis="index")


def _column_order(frame: pd.DataFrame, key: str | Sequence[str], columns: Sequence[str] | None) -> list:
    """`key` then `columns` (default: the others in frame order), each once; missing ones an error."""
    key = [key] if isinstance(key, str) else list(key)
    rest = [c for c in frame.columns if c not in key] if columns is None else list(columns)
    order = list(dict.fromkeys([*key, *rest]))
    missing = [c for c in order if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {missing!r} not in the frame; its columns are {list(frame.columns)!r}")
    return order


def _styled(frame: pd.DataFrame, writers: Mapping[Any, Callable[[Any], str]], right: set,
            title: str | None) -> ReadableTable:
    """The frame as a ReadableTable: cells written by `writers`, `right` columns right-aligned
    (the others left-aligned, as every cell is by default)."""
    styler = ReadableTable(frame)
    # The writers escape their text (so a cut never splits an entity): no escaping here.
    styler.format(dict(writers), escape=None)
    styler.format_index(_header, axis=1)
    styler.set_table_styles(_STYLES)
    styler.set_table_styles({c: [{"selector": "td", "props": _RIGHT}, {"selector": "th", "props": _RIGHT}]
                             for c in frame.columns if c in right}, overwrite=False)
    if title:
        styler.set_caption(html.escape(title))
    return styler


def _header(label: Any) -> str:
    """A column name, HTML-escaped, that may break over lines after `_` and `.` only (a
    `<wbr>`): headers are what makes a table of short numbers wide."""
    return re.sub(r"([_.])", r"\1<wbr>", html.escape(str(label)))


def _cell_writer(write: Callable[[Any], str], max_text: int | None) -> Callable[[Any], str]:
    """`write`, its text cut to `max_text` characters (the last one "…") and HTML-escaped."""
    def cell(value: Any) -> str:
        text = write(value)
        if max_text is not None and len(text) > max_text:
            text = text[:max_text - 1] + "…"
        return html.escape(text)

    return cell


def _name(label: Any) -> str:
    """A column's name for its cells' rules: the last level of a MultiIndex label."""
    return str(label[-1] if isinstance(label, tuple) and label else label)


def _index_writer(index: pd.Index) -> Callable[[Any], str]:
    """How to write the labels of a meaningful index (a MultiIndex: each label by its type)."""
    if isinstance(index, pd.MultiIndex):
        return _cell_writer(format_cell, None)
    return _cell_writer(column_formatter(index.to_series(), str(index.name or "")), None)


def _meaningful(index: pd.Index) -> bool:
    """Whether an index says something: named, or not row numbers (a RangeIndex, or the
    unnamed integers left after filtering rows)."""
    if isinstance(index, pd.RangeIndex) and index.name is None:
        return False
    return any(n is not None for n in index.names) or not pd.api.types.is_integer_dtype(index)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_number_column(values: pd.Series) -> bool:
    """Whether a column holds numbers or times (right-aligned), rather than text."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return True
    present = values.dropna()
    return len(present) > 0 and all(_is_number(v) for v in present)
