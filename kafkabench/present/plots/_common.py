"""The look every kafkabench figure shares, and the helpers the plot modules build it from.

The `kafkabench` template (registered in `plotly.io.templates`, not made the default): white
background, the Okabe-Ito colour sequence (readable by colour-blind readers) extended with
Paul Tol's, hover showing values; `line_style` changes dash style past the palette's length,
so no two lines of a figure look alike. Numbers are shown in plain decimal notation (64,050,
not 6.405e+04; `format_number`, `NUMBER_FORMAT`); log axes label 1, 2, 5, 10, 20, 50, ... in
full. `axis_title` turns a kafkabench column name into an axis title with its unit.

The underscored helpers (figure, axis, hover and value conversions) are shared by the plot
modules of this package only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from kafkabench.present.plots.rules import SCALE, gap_limit

#: Okabe-Ito, reordered so the first colours are the most distinct on white, then Paul Tol's
#: muted colours that Okabe-Ito lacks (both readable by colour-blind readers).
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#999999",
          "#000000", "#F0E442", "#882255", "#44AA99", "#332288", "#999933"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
#: d3 format of numbers in hover text and ticks: 4 significant digits, never an exponent.
NUMBER_FORMAT = ",.4~r"

TEMPLATE = "kafkabench"
_template = go.layout.Template(pio.templates["plotly_white"])
_template.layout.colorway = COLORS
_template.layout.font = {"family": "Inter, Helvetica, Arial, sans-serif", "size": 13}
_template.layout.title = {"x": 0.02, "xanchor": "left", "font": {"size": 16}}
_template.layout.margin = {"l": 70, "r": 30, "t": 60, "b": 60}
_template.layout.legend = {"bgcolor": "rgba(255,255,255,0.6)"}
_template.layout.hoverlabel = {"namelength": -1}
pio.templates[TEMPLATE] = _template

#: Display names of the histograms in `RunResult.spectrum()`.
METRIC_NAMES = {
    "publish_latency_us": "publish latency",
    "publish_delay_us": "publish delay",
    "e2e_latency_us": "end-to-end latency",
    "processing_latency_us": "processing latency",
    "done_latency_us": "done latency",
    "processing_done_latency_us": "done latency",
    "output_e2e_latency_us": "end-to-end latency through the stage",
    "processing_output_e2e_latency_us": "end-to-end latency through the stage",
}

_TITLES = {
    "t": "time (s)",
    "publish_rate": "publish rate (msg/s)",
    "delivery_rate": "delivery rate (msg/s)",
    "consume_rate": "consume rate (msg/s)",
    "target_rate": "target rate (msg/s)",
    "publish_mb_s": "publish throughput (MB/s)",
    "consume_mb_s": "consume throughput (MB/s)",
    "lag_msgs": "lag (messages)",
    "lag_s": "lag (s)",
    "lag_max_msgs": "max lag (messages)",
    "lag_max_s": "max lag (s)",
    "lag_final_msgs": "final lag (messages)",
    "backlog": "backlog (messages)",
    "produced": "produced (msg/s)",
    "delivered": "delivered (msg/s)",
    "consumed": "consumed (msg/s)",
    "failed": "failed (msg/s)",
    "share": "share of messages",
    "messages": "messages",
    "partition": "partition",
    "partitions": "partitions",
    "strategy": "strategy",
    "factor": "factor applied to the input",
    "value_ms": "latency (ms)",
    "percentile": "percentile",
    "skew": "skew (max / mean)",
    "cv": "coefficient of variation",
    "keys_moved": "keys moved (fraction)",
    "message_size": "message size (bytes)",
    "producer_rate": "producer rate (msg/s)",
    "batch.size": "batch.size (bytes)",
    "brokers": "brokers",
}
_AGGREGATES = ("median", "mean", "min", "max", "std")
_LATENCY = re.compile(r"^(publish_latency|e2e_latency|publish_delay|processing_done_latency|"
                      r"processing_latency|done_latency|processing_output_e2e_latency|"
                      r"output_e2e_latency)_(ms|us)_(\w+)$")
_UNIT_WORDS = {"ms": "ms", "us": "µs"}


def axis_title(column: str) -> str:
    """A human axis title with its unit for a kafkabench column name.

    Examples: "publish_rate" -> "publish rate (msg/s)", "producer.linger.ms" ->
    "linger.ms (ms)", "e2e_latency_ms_p99_9" -> "end-to-end latency p99.9 (ms)",
    "publish_rate_median" -> "publish rate, median (msg/s)".

    Args:
        column: a summary, timeseries, sweep or capacity column name.

    Returns:
        The title; unknown names come back with underscores as spaces.
    """
    column = str(column)
    if column in _TITLES:
        return _TITLES[column]
    for agg in _AGGREGATES:
        if column.endswith("_" + agg) and len(column) > len(agg) + 1:
            base = axis_title(column[: -len(agg) - 1])
            head, sep, unit = base.rpartition(" (")
            return f"{head}, {agg} ({unit}" if sep else f"{base}, {agg}"
    m = _LATENCY.match(column)
    if m:
        what = METRIC_NAMES.get(f"{m.group(1)}_us", m.group(1).replace("_", " "))
        stat = m.group(3).replace("_", ".")
        return f"{what} {stat} ({_UNIT_WORDS[m.group(2)]})"
    section, dot, key = column.partition(".")
    if dot and section in ("producer", "consumer", "common", "workload", "topic", "profile"):
        return _setting_title(key)
    if column.endswith("_mb_s"):
        return f"{column[:-5].replace('_', ' ')} (MB/s)"
    if column.endswith("_gb"):
        return f"{column[:-3].replace('_', ' ')} (GB)"
    if column.endswith("_ms"):
        return f"{column[:-3].replace('_', ' ')} (ms)"
    if column.endswith("_s") and not column.endswith("_mb_s"):
        return f"{column[:-2].replace('_', ' ')} (s)"
    return column.replace("_", " ")



def _setting_title(key: str) -> str:
    """The axis title of a setting column without its section: "linger.ms" -> "linger.ms (ms)"."""
    if key in _TITLES:
        return _TITLES[key]
    if key.endswith(".ms"):
        return f"{key} (ms)"
    if key.endswith(".bytes") or key.endswith(".kbytes"):
        return f"{key} ({key.rsplit('.', 1)[1]})"
    if key.endswith("_s"):
        return f"{key[:-2].replace('_', ' ')} (s)"
    return key

# ------------------------------------------------------------------------- helpers


def line_style(i: int) -> tuple[str, str]:
    """Colour and dash of the i-th line of a figure: colours first, then dash styles.

    Args:
        i: the line's position (0-based).

    Returns:
        (colour, dash): lines 0 to len(COLORS) - 1 are solid in distinct colours; later
        lines reuse the colours with the next dash style.
    """
    return COLORS[i % len(COLORS)], DASHES[(i // len(COLORS)) % len(DASHES)]


def _plain(value: float) -> str:
    """A tick number in plain notation: 0.005, 20, 2,000, 5M."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value:,.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:,.0f}"


def _log_axis(fig: go.Figure, axis: str, data: Sequence[Any], **selector: Any) -> None:
    """Make an axis logarithmic with ticks labelled in full at 1, 2, 5, 10, 20, 50, ...

    Plotly alone labels the 2s and 5s of a short log axis as bare "2" and "5", which read
    as wrong values. Over more than three decades only the powers of ten are labelled.
    """
    values = _num(np.concatenate([_num(d) for d in data])) if len(data) else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    low, high = (values.min(), values.max()) if len(values) else (1.0, 10.0)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    mantissas = (1,) if last - first > 3 else (1, 2, 5)
    ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in mantissas]
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(type="log", tickmode="array", tickvals=ticks, ticktext=[_plain(t) for t in ticks], **selector)


def _figure(title: str | None = None, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=title, **layout)
    return fig


def _num(values: Any) -> np.ndarray:
    """Float array; NA (nullable ints, None) becomes NaN, which plotly leaves as a gap."""
    series = pd.Series(values)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _axis_values(series: pd.Series) -> list[Any] | np.ndarray:
    """Numeric columns as floats, anything else (compression.type, acks) as strings."""
    return _num(series) if _is_numeric(series) else [_key(v) for v in series]


def _hover_columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> tuple[np.ndarray | None, str]:
    """customdata holding `columns` as text, and the hovertemplate lines showing them
    (columns the frame lacks are left out)."""
    columns = [c for c in columns or () if c in frame]
    if not columns:
        return None, ""
    custom = np.array([[_key(v) for v in frame[c]] for c in columns], dtype=object).T
    return custom, "".join(f"<br>{c}: %{{customdata[{j}]}}" for j, c in enumerate(columns))


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _hover(x_title: str, y_title: str, *, y_format: str = NUMBER_FORMAT, extra: str = "") -> str:
    return (f"<b>%{{fullData.name}}</b><br>{x_title}: %{{x}}<br>{y_title}: %{{y:{y_format}}}"
            f"{extra}<extra></extra>")


def _gapped(x: Any, y: Any, *extra: Any) -> tuple[Any, ...]:
    """x and y with a NaN point inside each step longer than `rules.gap_limit` of the series'
    steps, so that plotly breaks the line where samples are missing instead of drawing across
    the silence (draw with connectgaps=False); per-point `extra` arrays (customdata) get None
    there, and None stays None."""
    x, y = _num(x), _num(y)
    joined = np.isfinite(y[:-1]) & np.isfinite(y[1:]) & (np.diff(x) > gap_limit(x))
    at = np.flatnonzero(joined) + 1
    if not len(at):
        return (x, y, *extra)
    middle = (x[at - 1] + x[at]) / 2
    return (np.insert(x, at, middle), np.insert(y, at, np.nan),
            *[None if e is None else np.insert(np.asarray(e, dtype=object), at, None) for e in extra])


def _scale(quantity: str) -> dict[str, str]:
    """A trace's `meta` naming the quantity it draws: lines of one quantity (the partitions of
    a lag, the brokers of a metric) are compared on one axis on purpose (`rules.SCALE`)."""
    return {SCALE: quantity}


def _time_index(frame: pd.DataFrame) -> np.ndarray:
    """The t axis of a timeseries: its `t` column, else its index."""
    return _num(frame["t"] if "t" in frame.columns else frame.index)


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font={"size": 14, "color": "#666"})
    return fig


def _key(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _bare(title: str) -> str:
    """An axis title without its unit: "publish rate (msg/s)" -> "publish rate"."""
    return title.split(" (")[0]


def format_number(value: Any) -> str:
    """A value as table text: numbers to 4 significant digits in plain notation, NaN blank.

    Examples: 64050.4 -> "64,050", 176.62524663 -> "176.6", 0.01234567 -> "0.01235",
    3.0 -> "3", True -> "True", {"a": 1} -> "a: 1".

    Args:
        value: a cell value.

    Returns:
        The text.
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        decimals = 3 - math.floor(math.log10(abs(value)))
        text = f"{value:,.{decimals}f}".rstrip("0").rstrip(".")
        return text if text not in ("0", "-0") else f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_number(v)}" for k, v in value.items())
    if _missing(value):
        return ""
    return str(value)

