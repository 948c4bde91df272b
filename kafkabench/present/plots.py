"""DataFrames in, plotly Figures out: one look for every kafkabench chart.

Every function takes frames shaped as DESIGN.md's Results section describes (or a sweep /
capacity / partitioning frame) and returns a `plotly.graph_objects.Figure`. Nothing here
computes a statistic or calls `.show()`: the numbers come from `stats`, `results`,
`capacity` and `partitioning`; this module only chooses traces, axes, units and hover text.

All figures use the `kafkabench` template (registered in `plotly.io.templates`, not made the
default): white background, the Okabe-Ito colour sequence (readable by colour-blind
readers) extended with Paul Tol's, hover showing values. Lines past the palette's length
change dash style, so no two lines of a figure look alike. Numbers are shown in plain
decimal notation (64,050, not 6.405e+04); log axes label 1, 2, 5, 10, 20, 50, ... in full.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from kafkabench.core.contract import HISTOGRAMS
from kafkabench.core.errors import ConfigError

__all__ = [
    "TEMPLATE",
    "COLORS",
    "axis_title",
    "throughput_vs",
    "latency_spectrum",
    "latency_over_time",
    "throughput_over_time",
    "lag_over_time",
    "partition_share",
    "partition_heatmap",
    "capacity_sensitivity",
    "rate_vs_latency",
    "predicted_vs_measured",
    "summary_table",
    "users_over_time",
    "cluster_state_over_time",
    "mark_faults",
]

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
_SETTING_PREFIXES = ("producer.", "consumer.", "common.", "workload.", "profile.", "run.")
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
        if key in _TITLES:
            return _TITLES[key]
        if key.endswith(".ms"):
            return f"{key} (ms)"
        if key.endswith(".bytes") or key.endswith(".kbytes"):
            return f"{key} ({key.rsplit('.', 1)[1]})"
        if key.endswith("_s"):
            return f"{key[:-2].replace('_', ' ')} (s)"
        return key
    if column.endswith("_mb_s"):
        return f"{column[:-5].replace('_', ' ')} (MB/s)"
    if column.endswith("_gb"):
        return f"{column[:-3].replace('_', ' ')} (GB)"
    if column.endswith("_ms"):
        return f"{column[:-3].replace('_', ' ')} (ms)"
    if column.endswith("_s") and not column.endswith("_mb_s"):
        return f"{column[:-2].replace('_', ' ')} (s)"
    return column.replace("_", " ")


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


# ------------------------------------------------------------------------- throughput


def throughput_vs(df: pd.DataFrame, x: str, y: str = "publish_rate", color: str | None = None, *,
                  error_y: str | Sequence[str] | bool | None = None, log_x: bool = False,
                  title: str | None = None, hover_data: Sequence[str] | None = None) -> go.Figure:
    """Throughput against a swept parameter, one line per value of another.

    Args:
        df: one row per sweep point (a sweep summary or `load_results()` rows), e.g. columns
            `producer.linger.ms`, `publish_rate_median`, `publish_rate_min`, `publish_rate_max`.
        x: the swept column; numeric columns give lines, others (compression.type) bars.
        y: the throughput column.
        color: column whose values each get their own line (e.g. `producer.compression.type`).
        error_y: error bars: a `(low, high)` pair of column names (e.g. min and max), one
            column of symmetric half-widths, or True for `<base>_min`/`<base>_max` where `y`
            is `<base>_<aggregate>`.
        log_x: logarithmic x axis.
        title: figure title (default "<y> vs <x>").
        hover_data: more columns to show on hover (e.g. `run_id`).

    Returns:
        The figure: one trace per `color` value (one trace when `color` is None); the y axis
        starts at 0, so that a small difference looks small.

    Raises:
        ConfigError: several rows share one (x, color) point, as runs of a sweep do when
            other settings varied too. Plotly would stack them into one bar (or zig-zag a
            line through them); aggregate first, e.g. `sweep.summarize(runs, [x, color])`
            for the median per point, or colour by the other setting.
    """
    _one_row_per_point(df, x, color)
    if error_y is True:
        base = y.rsplit("_", 1)[0] if y.rsplit("_", 1)[-1] in _AGGREGATES else y
        error_y = (f"{base}_min", f"{base}_max")
    x_title, y_title = axis_title(x), axis_title(y)
    fig = _figure(title or f"{_bare(y_title)} vs {_bare(x_title)}", xaxis_title=x_title,
                  yaxis_title=y_title, legend_title_text=axis_title(color) if color else None)
    categorical = not _is_numeric(df[x])
    groups = ([((_bare(y_title),), df)] if color is None
              else list(df.groupby([color], sort=True, dropna=False)))
    for i, ((value,), part) in enumerate(groups):
        name = _key(value)
        if not categorical:
            part = part.sort_values(x, kind="stable")
        xs, ys = _axis_values(part[x]), _num(part[y])
        errors = None
        if isinstance(error_y, str):
            errors = {"type": "data", "array": _num(part[error_y]), "visible": True}
        elif error_y is not None:
            low, high = error_y
            errors = {"type": "data", "symmetric": False, "visible": True,
                      "array": _num(part[high]) - ys, "arrayminus": ys - _num(part[low])}
        custom, extra = _hover_columns(part, hover_data)
        colour, dash = line_style(i)
        common = {"x": xs, "y": ys, "name": name, "error_y": errors, "customdata": custom,
                  "marker_color": colour, "hovertemplate": _hover(x_title, y_title, extra=extra)}
        if categorical:
            fig.add_trace(go.Bar(**common))
        else:
            fig.add_trace(go.Scatter(mode="lines+markers", line={"color": colour, "dash": dash}, **common))
    fig.update_layout(showlegend=color is not None, barmode="group")
    fig.update_yaxes(rangemode="tozero")
    if log_x:
        _log_axis(fig, "x", [df[x]])
    if categorical:
        fig.update_xaxes(type="category")
    return fig


def _one_row_per_point(df: pd.DataFrame, x: str, color: str | None) -> None:
    """Raise ConfigError when rows repeat an (x, color) pair, naming what differs between them."""
    keys = [x] if color is None else [x, color]
    text = df[keys].map(_key)
    repeated = text.duplicated(keep=False)
    if not repeated.any():
        return
    first = text[repeated].iloc[0]
    rows = df[(text == first).all(axis=1)]
    differ = [c for c in df.columns if c not in keys and str(c).startswith(_SETTING_PREFIXES)
              and rows[c].map(_key).nunique() > 1]
    at = ", ".join(f"{k}={first[k]}" for k in keys)
    how = (f"they differ in {', '.join(differ)}: " if differ else "")
    raise ConfigError(
        f"{len(rows)} rows share the point {at}, so plotly would stack or zig-zag them; {how}"
        f"aggregate first, e.g. sweep.summarize(rows, {keys!r}) for the median per point, "
        "or pass color= the setting that tells them apart")


def throughput_over_time(timeseries: pd.DataFrame, *, title: str | None = None,
                         faults: pd.DataFrame | None = None) -> go.Figure:
    """Messages produced, delivered and consumed per second, with the backlog on a second axis.

    Args:
        timeseries: `RunResult.timeseries` (index t; columns produced, delivered, consumed,
            failed, backlog).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).

    Returns:
        The figure: a line per rate column present (failed only when some failed), and a
        shaded backlog line on the right axis.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(template=TEMPLATE, title=title or "throughput over time", hovermode="x unified")
    t = _time_index(timeseries)
    columns = [c for c in ("produced", "delivered", "consumed") if c in timeseries]
    if "failed" in timeseries and (_num(timeseries["failed"]) > 0).any():
        columns.append("failed")
    for i, column in enumerate(columns):
        color = "#D55E00" if column == "failed" else COLORS[i]
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries[column]), name=column, mode="lines",
                                 line={"color": color, "dash": DASHES[i % len(DASHES)]},
                                 hovertemplate="%{y:,.0f} msg/s"), secondary_y=False)
    if "backlog" in timeseries:
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries["backlog"]), name="backlog", mode="lines",
                                 line={"color": COLORS[6], "width": 1}, fill="tozeroy",
                                 fillcolor="rgba(153,153,153,0.15)", hovertemplate="%{y:,.0f} messages"),
                      secondary_y=True)
    fig.update_xaxes(title_text=axis_title("t"))
    fig.update_yaxes(title_text="messages per second (msg/s)", secondary_y=False, rangemode="nonnegative")
    # Plotly syncs an overlaying axis' ticks to the main grid (0, 247, 494, ...): ask for its
    # own round ticks. A backlog of 0 throughout would get a -1..1 range: show 0 alone.
    backlog = _num(timeseries["backlog"]) if "backlog" in timeseries else np.array([])
    fig.update_yaxes(title_text=axis_title("backlog"), secondary_y=True, showgrid=False,
                     rangemode="nonnegative", tickmode="auto", tickformat=",~r")
    if not (backlog > 0).any():
        fig.update_yaxes(secondary_y=True, range=[0, 1], tickmode="array", tickvals=[0])
    if not len(t):
        _empty(fig, "no time series recorded")
    return mark_faults(fig, faults)


def processing_over_time(frames: Mapping[str, pd.DataFrame], column: str = "done_latency_ms_p99", *,
                         title: str | None = None) -> go.Figure:
    """One column of several runs' `processing` frames over time, a line per run: e.g. inline
    retries against retry topics, where head-of-line blocking shows as done latency.

    Args:
        frames: label -> `RunResult.processing` (t, processed, ..., done_latency_ms_p99).
        column: the column to draw.
        title: figure title.

    Returns:
        The figure.
    """
    fig = _figure(title or f"{_bare(axis_title(column))} over time", hovermode="x unified")
    for i, (label, frame) in enumerate(frames.items()):
        if column not in frame:
            raise ConfigError(f"processing_over_time: no column {column!r}; the processing frame "
                              f"has {list(frame.columns)}")
        color, dash = line_style(i)
        fig.add_trace(go.Scatter(x=_num(frame["t"]), y=_num(frame[column]), name=str(label), mode="lines",
                                 line={"color": color, "dash": dash}))
    fig.update_xaxes(title_text=axis_title("t"))
    fig.update_yaxes(title_text=axis_title(column), rangemode="nonnegative")
    if not any(len(f) for f in frames.values()):
        _empty(fig, "no processing recorded")
    return fig


# ------------------------------------------------------------------------- latency

_PERCENTILE_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)


def _percentile_x(percentile: Any) -> np.ndarray:
    """HdrHistogram's percentile axis: 1 / (1 - p/100), so each extra nine is one decade."""
    p = _num(percentile)
    with np.errstate(divide="ignore"):
        return np.where(p < 100.0, 100.0 / (100.0 - p), np.nan)


def latency_spectrum(spectrum: pd.DataFrame, *, color: str = "metric", title: str | None = None,
                     log_y: bool = False) -> go.Figure:
    """Latency by percentile, on the log "number of nines" axis of HdrHistogram plots.

    Args:
        spectrum: `RunResult.spectrum()` (columns metric, percentile, value_ms); with an extra
            `run` column, several runs are compared: colour by run, dash by metric.
        color: column to colour by when there is no `run` column.
        title: figure title.
        log_y: logarithmic latency axis (long tails).

    Returns:
        The figure: one line per metric (per run and metric with a `run` column); the
        100th percentile (max) is left out, it has no place on this axis.
    """
    fig = _figure(title or "latency by percentile", xaxis_title="percentile",
                  yaxis_title=axis_title("value_ms"), hovermode="closest")
    if spectrum.empty:
        return _empty(fig, "no latency recorded")
    by_run = "run" in spectrum.columns
    keys = ["run", "metric"] if by_run else [color] + (["metric"] if color != "metric" else [])
    colours: dict[str, str] = {}
    dashes: dict[str, str] = {}
    for value, part in spectrum.groupby(keys, sort=False):
        value = value if isinstance(value, tuple) else (value,)
        first, metric = _key(value[0]), _key(value[-1])
        colour = colours.setdefault(first, COLORS[len(colours) % len(COLORS)])
        dash = dashes.setdefault(metric, DASHES[len(dashes) % len(DASHES)]) if len(value) > 1 else "solid"
        label = " · ".join(METRIC_NAMES.get(_key(v), _key(v)) for v in value)
        part = part[_num(part["percentile"]) < 100.0]
        fig.add_trace(go.Scatter(
            x=_percentile_x(part["percentile"]), y=_num(part["value_ms"]), name=label, mode="lines",
            line={"color": colour, "dash": dash}, customdata=_num(part["percentile"]),
            hovertemplate=f"<b>{label}</b><br>p%{{customdata:.3f}}: %{{y:,.4~r}} ms<extra></extra>"))
    fig.update_xaxes(type="log", tickvals=[100.0 / (100.0 - p) for p in _PERCENTILE_TICKS],
                     ticktext=[f"{p:g}%" for p in _PERCENTILE_TICKS])
    if log_y:
        _log_axis(fig, "y", [t.y for t in fig.data])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")
    return fig


# Per-second latency columns in ms (publish delay, in us, is drawn on its own).
_LATENCY_COLUMNS = tuple(c for h in HISTOGRAMS if h.unit == "ms" for c in h.columns("timeseries"))


def latency_over_time(timeseries: pd.DataFrame, *, columns: Sequence[str] | None = None,
                      title: str | None = None, log_y: bool = False,
                      faults: pd.DataFrame | None = None) -> go.Figure:
    """Per-second latency percentiles.

    Args:
        timeseries: `RunResult.timeseries` (index t).
        columns: latency columns to draw (default: publish and end-to-end p50 and p99 that
            have at least one value, so a run without consumers shows no empty e2e lines).
        title: figure title.
        log_y: logarithmic latency axis.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).

    Returns:
        The figure: one line per column, coloured by latency, dashed by percentile.
    """
    fig = _figure(title or "latency over time", xaxis_title=axis_title("t"),
                  yaxis_title="latency (ms)", hovermode="x unified")
    if columns is None:
        columns = [c for c in _LATENCY_COLUMNS if c in timeseries and timeseries[c].notna().any()]
    t = _time_index(timeseries)
    colours: dict[str, str] = {}
    dashes: dict[str, str] = {}
    for column in columns:
        m = _LATENCY.match(column)
        what, stat = (m.group(1), m.group(3)) if m else (column, "")
        colour = colours.setdefault(what, COLORS[len(colours) % len(COLORS)])
        dash = dashes.setdefault(stat, DASHES[len(dashes) % len(DASHES)])
        unit = _UNIT_WORDS.get(m.group(2), "") if m else ""
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries[column]), name=_bare(axis_title(column)),
                                 mode="lines+markers", marker={"size": 4},
                                 line={"color": colour, "dash": dash},
                                 hovertemplate=f"%{{y:,.4~r}} {unit}"))
    units = {m.group(2) for m in map(_LATENCY.match, columns) if m}
    fig.update_yaxes(title_text=f"latency ({_UNIT_WORDS[units.pop()]})" if len(units) == 1 else "latency")
    if log_y:
        _log_axis(fig, "y", [t.y for t in fig.data])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")
    if not columns or not len(t):
        _empty(fig, "no latency recorded")
    return mark_faults(fig, faults)


def rate_vs_latency(df: pd.DataFrame, x: str = "publish_rate",
                    y: str | Sequence[str] = ("e2e_latency_ms_p50", "e2e_latency_ms_p99"), *,
                    target: str | float | None = None, title: str | None = None,
                    log_y: bool = True, hover_data: Sequence[str] | None = None) -> go.Figure:
    """Latency against throughput, up to saturation: points joined in order of `x`.

    Args:
        df: one row per run or sweep point (any order).
        x: achieved rate column.
        y: latency column(s), one line each.
        target: a column of target rates (e.g. `target_rate`): each point gets a hollow
            marker at its target rate joined to the achieved one, so saturation shows as
            the gap; or a number: a vertical line at that required rate.
        title: figure title.
        log_y: logarithmic latency axis.
        hover_data: more columns to show on hover.

    Returns:
        The figure: a line per `y` column, plus the target markers or line.
    """
    ys = [y] if isinstance(y, str) else list(y)
    df = df.sort_values(x, kind="stable")  # a line through points out of x order zig-zags
    x_title = axis_title(x)
    fig = _figure(title or "latency vs throughput", xaxis_title=x_title,
                  yaxis_title="latency (ms)" if all("_ms_" in c for c in ys) else axis_title(ys[0]))
    custom, extra = _hover_columns(df, hover_data)
    xs = _num(df[x])
    for i, column in enumerate(ys):
        name = _bare(axis_title(column))
        colour, dash = line_style(i)
        fig.add_trace(go.Scatter(x=xs, y=_num(df[column]), name=name, mode="lines+markers",
                                 line={"color": colour, "dash": dash}, customdata=custom,
                                 hovertemplate=_hover(x_title, axis_title(column), extra=extra)))
    if isinstance(target, str):
        # One trace: target marker -> achieved marker per point, None-separated segments.
        tx, ty = _num(df[target]), _num(df[ys[-1]])
        seg_x = np.column_stack([tx, xs, np.full(len(xs), np.nan)]).ravel()
        seg_y = np.column_stack([ty, ty, np.full(len(ty), np.nan)]).ravel()
        fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", name="target → achieved",
                                 line={"color": COLORS[6], "width": 1, "dash": "dot"}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=tx, y=ty, mode="markers", name=_bare(axis_title(target)),
                                 marker={"symbol": "circle-open", "size": 9, "color": COLORS[6]},
                                 customdata=xs,
                                 hovertemplate=("target: %{x:,.4~r}<br>achieved: %{customdata:,.4~r}"
                                                "<extra></extra>")))
    elif target is not None and not _missing(target):
        fig.add_vline(x=float(target), line={"color": COLORS[3], "dash": "dash"},
                      annotation_text=f"target {format_number(float(target))}",
                      annotation_position="top left")
    fig.update_xaxes(rangemode="tozero")
    if log_y:
        _log_axis(fig, "y", [df[c] for c in ys])
    else:
        fig.update_yaxes(type="linear", rangemode="tozero")
    return fig


# ------------------------------------------------------------------------- lag

_EVENT_COLORS = {"assign": COLORS[2], "revoke": COLORS[3]}


def lag_over_time(lag: pd.DataFrame, rebalances: pd.DataFrame | None = None, *,
                  by: str = "partition", title: str | None = None,
                  faults: pd.DataFrame | None = None) -> go.Figure:
    """Consumer lag over time, in messages (top) and seconds (bottom), with rebalances marked.

    Args:
        lag: `LagSampler.frame()` / `RunResult.lag` (t, group, topic, partition, lag_msgs, lag_s).
        rebalances: `RunResult.rebalances` (t, group, member, event, partitions): a vertical
            line per event (green assign, red revoke), with its details on hover.
        by: "partition": one legend entry per group/topic/partition; "group": one colour and
            legend entry per group (its partitions still get their own line).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).

    Returns:
        The figure: two rows sharing the time axis; a line per partition in each.
    """
    if by not in ("partition", "group"):
        raise ValueError(f"by must be 'partition' or 'group', not {by!r}")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.update_layout(template=TEMPLATE, title=title or "consumer lag", hovermode="closest", height=560)
    fig.update_yaxes(title_text=axis_title("lag_msgs"), row=1, col=1, rangemode="nonnegative")
    fig.update_yaxes(title_text=axis_title("lag_s"), row=2, col=1, rangemode="nonnegative")
    fig.update_xaxes(title_text=axis_title("t"), row=2, col=1)
    lag = lag[lag["partition"] >= 0] if "partition" in lag else lag  # -1: a group-level error row
    if lag.empty:
        return mark_faults(_empty(fig, "no lag sampled (no consumer groups)"), faults)
    groups = list(dict.fromkeys(lag["group"]))
    in_legend: set[Any] = set()
    several_topics = lag["topic"].nunique() > 1
    for i, ((group, topic, partition), part) in enumerate(
            lag.groupby(["group", "topic", "partition"], sort=True)):
        gi = groups.index(group)
        label = f"p{partition}" if not several_topics else f"{topic}:{partition}"
        name = label if len(groups) == 1 and by == "partition" else f"{group} {label}"
        if by == "group":
            (colour, dash), legend, show = line_style(gi), str(group), group not in in_legend
            in_legend.add(group)
        else:
            (colour, dash), legend, show = line_style(i), f"{group}/{topic}/{partition}", True
        t = _num(part["t"])
        status = [_key(s) for s in part["status"]] if "status" in part else None
        for row, column in ((1, "lag_msgs"), (2, "lag_s")):
            unit = "messages" if column == "lag_msgs" else "s"
            fig.add_trace(go.Scatter(
                x=t, y=_num(part[column]), mode="lines", line={"color": colour, "dash": dash, "width": 1.5},
                name=str(group) if by == "group" else name, legendgroup=legend,
                showlegend=row == 1 and show,
                customdata=status,
                hovertemplate=(f"<b>{name}</b><br>t %{{x:.1f}} s: %{{y:,.4~r}} {unit}"
                               + ("<br>status %{customdata}" if status else "") + "<extra></extra>")),
                row=row, col=1)
    if rebalances is not None and not rebalances.empty:
        _mark_rebalances(fig, rebalances)
    return mark_faults(fig, faults)


def _mark_rebalances(fig: go.Figure, rebalances: pd.DataFrame) -> None:
    """Dotted vertical lines over both rows, and hoverable markers along the top edge."""
    t = _num(rebalances["t"])
    events = [_key(e) for e in rebalances["event"]]
    for x, event in zip(t, events):
        if not math.isnan(x):
            fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                          line={"color": _EVENT_COLORS.get(event, COLORS[6]), "width": 1, "dash": "dot"})
    # Markers on a hidden [0, 1] axis overlaying the top row: hover needs a trace, not a shape.
    fig.update_layout(yaxis3={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})
    details = np.array([[_key(rebalances[c].iloc[i]) if c in rebalances else ""
                         for c in ("group", "member", "partitions")] for i in range(len(rebalances))],
                       dtype=object)
    fig.add_trace(go.Scatter(
        x=t, y=np.full(len(t), 0.98), yaxis="y3", xaxis="x", mode="markers", name="rebalance",
        marker={"symbol": "triangle-down", "size": 9,
                "color": [_EVENT_COLORS.get(e, COLORS[6]) for e in events]},
        text=events, customdata=details,
        hovertemplate=("<b>%{text}</b> at %{x:.2f} s<br>group %{customdata[0]}<br>member "
                       "%{customdata[1]}<br>partitions %{customdata[2]}<extra></extra>")))


# ------------------------------------------------------------------------- Locust


def users_over_time(timeseries: pd.DataFrame, planned: pd.DataFrame | None = None, *,
                    title: str | None = None, faults: pd.DataFrame | None = None) -> go.Figure:
    """Locust users over time, with the load shape's planned users if given.

    Args:
        timeseries: `locust_results.locust_timeseries` / a Locust run's `RunResult.timeseries`
            (index t, column users).
        planned: `loadshapes.planned_users` (index t, column users).
        title: figure title.
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).

    Returns:
        The figure: running users as steps, planned users dashed.
    """
    fig = _figure(title or "Locust users", hovermode="x unified",
                  xaxis_title=axis_title("t"), yaxis_title="users")
    if planned is not None:
        fig.add_trace(go.Scatter(x=_time_index(planned), y=_num(planned["users"]), name="planned",
                                 mode="lines", line={"shape": "hv", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=_time_index(timeseries), y=_num(timeseries["users"]),
                             name="running", mode="lines", line={"shape": "hv"}))
    fig.update_yaxes(rangemode="tozero")
    if not len(timeseries):
        _empty(fig, "no users recorded")
    return mark_faults(fig, faults)


# ------------------------------------------------------------------------- faults, cluster state

#: Fault actions that take a node away, and the action that brings it back.
_UNDONE_BY = {"kill": "start", "stop": "start", "pause": "resume"}
#: Actions that take a node away and bring it back themselves: down from started_s to ended_s.
_ROUND_TRIPS = ("restart", "rolling_restart")
_FAULT_COLOR = COLORS[3]
_UNDO_COLOR = COLORS[2]
_FAULT_BAND = "rgba(213,94,0,0.10)"
# Labels of faults close in time would overlap: three heights, in turn.
_LABEL_ROWS = 3


def _fault_x(row: dict) -> float:
    """Where a fault is drawn: when it started (NaN: it never did, e.g. skipped at the end)."""
    value = row.get("started_s")
    return float(value) if not _missing(value) and math.isfinite(float(value)) else math.nan


def _fault_label(row: dict) -> str:
    """A fault's short label: "kill node 2", "pause leader:orders:0 (failed)"."""
    node, target = row.get("node"), _key(row.get("target"))
    who = f"node {int(node)}" if not _missing(node) else target
    label = f"{_key(row.get('action'))} {who}".strip()
    if row.get("origin") == "cleanup":
        label = f"cleanup: {label}"
    outcome = _key(row.get("outcome"))
    return f"{label} ({outcome})" if outcome and outcome != "ok" else label


def _fault_hover(row: dict) -> str:
    def seconds(column: str) -> str:
        value = row.get(column)
        return "-" if _missing(value) or not math.isfinite(float(value)) else f"{float(value):.2f} s"

    lines = [f"<b>{_fault_label(row)}</b>", f"target {_key(row.get('target'))} ({_key(row.get('origin'))})",
             f"scheduled {seconds('scheduled_s')}, started {seconds('started_s')}, "
             f"ended {seconds('ended_s')}", f"outcome {_key(row.get('outcome'))}"]
    lines += [f"{c} {_key(row.get(c))}" for c in ("error", "command") if _key(row.get(c))]
    return "<br>".join(lines)


def _same_node(a: dict, b: dict) -> bool:
    if not _missing(a.get("node")) and not _missing(b.get("node")):
        return int(a["node"]) == int(b["node"])
    return bool(_key(a.get("target"))) and _key(a.get("target")) == _key(b.get("target"))


def _end_s(row: dict) -> float:
    """When an action ended: its ended_s, else when it started."""
    end = row.get("ended_s")
    return float(end) if not _missing(end) and math.isfinite(float(end)) else _fault_x(row)


def _undoes(back: dict, row: dict) -> bool:
    """Whether `back` brings back the node that `row` took away."""
    if back.get("action") != _UNDONE_BY.get(_key(row.get("action"))) or back.get("outcome") != "ok":
        return False
    return (back.get("origin") == "duration" and back.get("fault") == row.get("fault")) or \
        _same_node(back, row)


def _down_spans(rows: list[dict]) -> list[tuple[float, float]]:
    """(from, to) of each time a node was down or paused, where the faults show both ends.

    A kill/stop/pause ends at the first later start/resume of the same node (or the undo
    after its duration_s); a restart ends when it did. A fault that failed, or whose node
    the frame never shows coming back, gets no span.
    """
    order = sorted((i for i in range(len(rows)) if not math.isnan(_fault_x(rows[i]))),
                   key=lambda i: _fault_x(rows[i]))
    used: set[int] = set()
    spans = []
    for i in order:
        row, start = rows[i], _fault_x(rows[i])
        if row.get("outcome") != "ok":
            continue
        if row.get("action") in _ROUND_TRIPS:
            if _end_s(row) > start:
                spans.append((start, _end_s(row)))
            continue
        back = next((j for j in order if j not in used and _fault_x(rows[j]) >= start
                     and _undoes(rows[j], row)), None)
        if back is not None:
            used.add(back)
            spans.append((start, max(_end_s(rows[back]), start)))
    return spans


def mark_faults(fig: go.Figure, faults: pd.DataFrame | None) -> go.Figure:
    """Mark a run's faults on a time-series figure (its x axis: seconds of the run).

    Args:
        fig: a figure whose x axis is the run's t (seconds since the producers started).
        faults: `RunResult.faults` (`FaultObserver.frame()`): a dashed vertical line at each
            action's started_s (none for one that never started), labelled "kill node 2",
            with its details on hover; start/resume in green, the others in red; a shaded
            band over the time a node was down or paused, when the frame shows it coming
            back. None or an empty frame leaves the figure as it is.

    Returns:
        The same figure.
    """
    if faults is None or faults.empty:
        return fig
    rows = faults.to_dict("records")
    for x0, x1 in _down_spans(rows):
        fig.add_shape(type="rect", x0=x0, x1=x1, xref="x", y0=0, y1=1, yref="paper",
                      fillcolor=_FAULT_BAND, line={"width": 0}, layer="below", name="fault span")
    drawn = 0
    for row in rows:
        x = _fault_x(row)
        if math.isnan(x):
            continue
        colour = _UNDO_COLOR if row.get("action") in ("start", "resume") else _FAULT_COLOR
        if row.get("origin") == "cleanup":
            colour = COLORS[6]
        fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                      line={"color": colour, "width": 1.5, "dash": "dash"}, name="fault")
        fig.add_annotation(x=x, xref="x", y=1 - 0.06 * (drawn % _LABEL_ROWS), yref="paper",
                           yanchor="top", xanchor="left", showarrow=False, text=_fault_label(row),
                           font={"size": 11, "color": colour}, bgcolor="rgba(255,255,255,0.7)",
                           hovertext=_fault_hover(row), name="fault")
        drawn += 1
    return fig


def cluster_state_over_time(cluster_state: pd.DataFrame, faults: pd.DataFrame | None = None, *,
                            title: str | None = None) -> go.Figure:
    """Under-replicated and offline partitions, leader changes and the smallest ISR over time.

    Args:
        cluster_state: `RunResult.cluster_state` (`ClusterStateObserver.frame()`), or its
            `kafkabench.clusterstate.cluster_state_per_second()` (t, under_replicated, offline,
            leader_changes, min_isr_size).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.

    Returns:
        The figure: partition counts as steps and leader changes as bars (top), the smallest
        in-sync replica set of any partition (bottom); seconds without an answer are gaps.
    """
    if "partition" in cluster_state.columns:
        from kafkabench.analysis.cluster_state import cluster_state_per_second

        cluster_state = cluster_state_per_second(cluster_state)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35])
    fig.update_layout(template=TEMPLATE, title=title or "cluster state", hovermode="x unified",
                      height=520, barmode="overlay")
    t = _time_index(cluster_state)
    for column, name, colour in (("under_replicated", "under-replicated", COLORS[1]),
                                 ("offline", "offline", COLORS[3])):
        fig.add_trace(go.Scatter(x=t, y=_num(cluster_state[column]), name=name, mode="lines",
                                 line={"color": colour, "shape": "hv"},
                                 hovertemplate="%{y:,.0f} partitions"), row=1, col=1)
    fig.add_trace(go.Bar(x=t, y=_num(cluster_state["leader_changes"]), name="leader changes",
                         marker_color=COLORS[0], opacity=0.6, hovertemplate="%{y:,.0f}"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=_num(cluster_state["min_isr_size"]), name="min ISR size",
                             mode="lines", line={"color": COLORS[2], "shape": "hv"},
                             hovertemplate="%{y:,.0f} replicas"), row=2, col=1)
    counts = _num(pd.concat([cluster_state[c] for c in ("under_replicated", "offline", "leader_changes",
                                                        "min_isr_size")]))
    counts = counts[np.isfinite(counts)]
    whole = {"dtick": 1} if not len(counts) or counts.max() <= 10 else {}  # no 2.5-partition ticks
    fig.update_yaxes(title_text=axis_title("partitions"), rangemode="nonnegative", row=1, col=1, **whole)
    fig.update_yaxes(title_text="min ISR size (replicas)", rangemode="nonnegative", row=2, col=1, **whole)
    fig.update_xaxes(title_text=axis_title("t"), row=2, col=1)
    if not len(t):
        _empty(fig, "no cluster state sampled")
    return mark_faults(fig, faults)


def _break_gaps(wide: pd.DataFrame) -> pd.DataFrame:
    """A NaN row in each gap longer than 1.5 scrape intervals, so lines break where a
    broker did not answer instead of bridging the silence."""
    t = wide.index.to_numpy(dtype=float)
    if len(t) < 3:
        return wide
    step = np.median(np.diff(t))
    gaps = t[:-1][np.diff(t) > 1.5 * step] + step
    if not len(gaps):
        return wide
    return pd.concat([wide, pd.DataFrame(np.nan, index=pd.Index(gaps, name=wide.index.name),
                                         columns=wide.columns)]).sort_index()


def client_and_broker(timeseries: pd.DataFrame, broker_metrics: pd.DataFrame, *,
                      faults: pd.DataFrame | None = None, title: str | None = None) -> go.Figure:
    """The client's and the brokers' view of one run on one time axis.

    Args:
        timeseries: `RunResult.timeseries` (delivered, publish_latency_ms_p99).
        broker_metrics: `RunResult.broker_metrics` (`kafkabench.brokermetrics`).
        faults: `RunResult.faults`: each fault marked (see `mark_faults`).
        title: figure title.

    Returns:
        Three rows: messages per second delivered (client) and taken in (brokers, all
        topics); publish p99 (client) beside the brokers' Produce request total and queue
        time p99 (Kafka's decaying histograms, worst broker); each broker's JVM GC time per
        second and request-handler idle share. A broker that did not answer a scrape (paused,
        down) leaves a gap.
    """
    from kafkabench.analysis.broker_metrics import to_wide

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("throughput", "latency", "broker JVM and request handlers"))
    fig.update_layout(template=TEMPLATE, title=title or "client and brokers", hovermode="x unified",
                      height=760)
    t = _time_index(timeseries)
    if "delivered" in timeseries:
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries["delivered"]), name="delivered (client)",
                                 mode="lines", line={"color": COLORS[0]}, hovertemplate="%{y:,.0f} msg/s"),
                      row=1, col=1)
    if "publish_latency_ms_p99" in timeseries:
        fig.add_trace(go.Scatter(x=t, y=_num(timeseries["publish_latency_ms_p99"]), name="publish p99 (client)",
                                 mode="lines", line={"color": COLORS[0]}, hovertemplate="%{y:,.1f} ms"),
                      row=2, col=1)

    def broker_line(row: int, metric: str, name: str, colour: str, *, labels: str | None = None,
                    agg: str = "sum", across: str = "sum", scale: float = 1.0, unit: str = "",
                    per_broker: bool = False, dash: str = "solid") -> None:
        wide = to_wide(broker_metrics, metric, labels=labels, agg=agg) if len(broker_metrics) else pd.DataFrame()
        if wide.empty:
            return
        wide = _break_gaps(wide)
        series = {f"{name} (broker {b})": wide[b] for b in wide.columns} if per_broker else {
            f"{name} (brokers)": wide.sum(axis=1, min_count=1) if across == "sum" else wide.max(axis=1)}
        for i, (label, values) in enumerate(series.items()):
            fig.add_trace(go.Scatter(x=wide.index.to_numpy(), y=_num(values) * scale, name=label, mode="lines",
                                     connectgaps=False, line={"color": colour, "dash": DASHES[i % len(DASHES)]
                                                              if per_broker else dash},
                                     hovertemplate=f"%{{y:,.1f}} {unit}"), row=row, col=1)

    broker_line(1, "kafka_server_brokertopicmetrics_messagesin_total", "messages in", COLORS[1],
                labels="", unit="msg/s")
    broker_line(2, "kafka_network_requestmetrics_totaltimems", "Produce total time p99", COLORS[1],
                labels="quantile=0.99,request=Produce", across="max", unit="ms")
    broker_line(2, "kafka_network_requestmetrics_requestqueuetimems", "Produce queue time p99", COLORS[2],
                labels="quantile=0.99,request=Produce", across="max", unit="ms", dash="dot")
    broker_line(3, "jvm_gc_collection_seconds_sum", "GC time ms/s", COLORS[3], scale=1000.0, unit="ms/s",
                per_broker=True)
    broker_line(3, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "handler idle %",
                COLORS[4], scale=100.0, unit="%", per_broker=True)
    fig.update_yaxes(title_text="msg/s", rangemode="nonnegative", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="nonnegative", row=2, col=1)
    fig.update_yaxes(title_text="ms/s, %", rangemode="nonnegative", row=3, col=1)
    fig.update_xaxes(title_text=axis_title("t"), row=3, col=1)
    if not len(t) and broker_metrics.empty:
        _empty(fig, "no client time series and no broker metrics")
    return mark_faults(fig, faults)


# ------------------------------------------------------------------------- partitioning


def partition_share(per_partition: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Share of messages per partition, against the even share.

    Args:
        per_partition: `PartitionAnalysis.per_partition` (columns partition, messages,
            share in [0, 1]); with a `strategy` column (several analyses concatenated), one
            bar group per strategy.
        title: figure title.

    Returns:
        The figure: a bar trace per strategy (one without a `strategy` column) and a dashed
        line at 1 / partitions, the share of a perfectly even spread.
    """
    fig = _figure(title or "share of messages per partition", xaxis_title=axis_title("partition"),
                  yaxis_title=axis_title("share"), barmode="group", bargap=0.15)
    groups = list(per_partition.groupby("strategy", sort=False)) if "strategy" in per_partition \
        else [(None, per_partition)]
    for i, (strategy, part) in enumerate(groups):
        name = _key(strategy[0] if isinstance(strategy, tuple) else strategy) or "share"
        fig.add_trace(go.Bar(
            x=_num(part["partition"]), y=_num(part["share"]), name=name,
            marker_color=COLORS[i % len(COLORS)],
            customdata=_num(part["messages"]) if "messages" in part else None,
            hovertemplate=(f"<b>{name}</b><br>partition %{{x}}: %{{y:.2%}}"
                           + ("<br>%{customdata:,.0f} messages" if "messages" in part else "")
                           + "<extra></extra>")))
    partitions = per_partition["partition"].nunique() if len(per_partition) else 0
    if partitions:
        fig.add_hline(y=1.0 / partitions, line={"color": COLORS[6], "dash": "dash", "width": 1},
                      annotation_text="even share", annotation_position="top right")
    fig.update_layout(showlegend=len(groups) > 1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(dtick=1 if partitions <= 32 else None)
    return fig


def partition_heatmap(df: pd.DataFrame, x: str = "partition", y: str = "strategy",
                      z: str = "share", *, title: str | None = None) -> go.Figure:
    """A heatmap of a per-partition figure across strategies (or key kinds, partition counts).

    Args:
        df: long format, one row per (y, x) cell, e.g. per_partition frames of several
            strategies concatenated with a `strategy` column.
        x: column along the x axis.
        y: column along the y axis.
        z: value column.
        title: figure title.

    Returns:
        The figure: one Heatmap trace; cells without a row are blank.
    """
    grid = df.pivot_table(index=y, columns=x, values=z, aggfunc="first", sort=False)
    is_share = z == "share"
    fig = _figure(title or f"{axis_title(z)} by {axis_title(x)} and {axis_title(y)}",
                  xaxis_title=axis_title(x), yaxis_title=axis_title(y))
    fig.add_trace(go.Heatmap(
        z=grid.to_numpy(dtype="float64", na_value=np.nan),
        x=[str(c) for c in grid.columns], y=[str(i) for i in grid.index],
        colorscale="Blues", colorbar={"title": {"text": axis_title(z)},
                                      "tickformat": ".0%" if is_share else None},
        hovertemplate=(f"{axis_title(y)} %{{y}}<br>{axis_title(x)} %{{x}}<br>{axis_title(z)}: "
                       f"%{{z:{'.2%' if is_share else ',.4~r'}}}<extra></extra>")))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


# ------------------------------------------------------------------------- capacity


def capacity_sensitivity(sens: pd.DataFrame, output: str = "partitions", *, kind: str = "line",
                         title: str | None = None) -> go.Figure:
    """How a capacity plan output responds to each input, from `capacity.sensitivity()`.

    Args:
        sens: columns input, factor, value and the `CapacityPlan.as_dict()` outputs.
        output: the output column to show (partitions, brokers, storage_total_gb, ...).
        kind: "line": output vs factor, a line per input; "tornado": per input, a bar from
            the output at factor 1 to the output at the smallest and at the largest factor
            (inputs that change nothing get no bar).
        title: figure title.

    Returns:
        The figure.
    """
    if kind not in ("line", "tornado"):
        raise ValueError(f"kind must be 'line' or 'tornado', not {kind!r}")
    out_title = axis_title(output)
    if kind == "line":
        fig = _figure(title or f"sensitivity of {_bare(out_title)}",
                      xaxis_title=axis_title("factor"), yaxis_title=out_title, hovermode="closest")
        for i, (name, part) in enumerate(sens.groupby("input", sort=False)):
            part = part.sort_values("factor", kind="stable")
            colour, dash = line_style(i)
            fig.add_trace(go.Scatter(
                x=_num(part["factor"]), y=_num(part[output]), name=str(name), mode="lines+markers",
                line={"color": colour, "dash": dash},
                customdata=_num(part["value"]),
                hovertemplate=(f"<b>{name}</b> = %{{customdata:,.4~r}} (×%{{x}})<br>"
                               f"{out_title}: %{{y:,.4~r}}<extra></extra>")))
        fig.update_xaxes(tickformat=".2~f", ticksuffix="×")
        values = _num(sens[output])
        values = values[np.isfinite(values)]
        if len(values) and (values == np.round(values)).all() and values.max() - values.min() <= 10:
            fig.update_yaxes(dtick=1)  # counts (partitions, brokers): no 2.5 partitions tick
        return fig
    factors = _num(sens["factor"])
    low, high = np.nanmin(factors), np.nanmax(factors)
    fig = _figure(title or f"sensitivity of {_bare(out_title)}",
                  xaxis_title=out_title, yaxis_title="input", barmode="overlay")
    names, bases = [], []
    bars: dict[float, list[tuple[float, float, float]]] = {low: [], high: []}
    for name, part in sens.groupby("input", sort=False):
        at = {float(f): (float(v), float(o)) for f, v, o in
              zip(_num(part["factor"]), _num(part["value"]), _num(part[output]))}
        if 1.0 not in at or low not in at or high not in at:
            continue
        base = at[1.0][1]
        if at[low][1] == base and at[high][1] == base:
            continue
        names.append(str(name))
        bases.append(base)
        for f in (low, high):
            bars[f].append((at[f][1] - base, at[f][1], at[f][0]))
    for i, f in enumerate((low, high)):
        widths = [b[0] for b in bars[f]]
        fig.add_trace(go.Bar(
            y=names, x=widths, base=bases, orientation="h", name=f"input ×{f:g}",
            marker_color=COLORS[3] if i == 0 else COLORS[0], opacity=0.85,
            customdata=np.array([[b[1], b[2]] for b in bars[f]], dtype=float).reshape(-1, 2),
            hovertemplate=(f"<b>%{{y}}</b> ×{f:g} = %{{customdata[1]:,.4~r}}<br>"
                           f"{out_title}: %{{customdata[0]:,.4~r}}<extra></extra>")))
    if bases:
        fig.add_vline(x=bases[0], line={"color": COLORS[6], "dash": "dash", "width": 1},
                      annotation_text="plan", annotation_position="top")
    else:
        _empty(fig, f"no input changes {output}")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def predicted_vs_measured(df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """A capacity plan checked against a run: predicted and measured side by side per metric.

    Args:
        df: columns metric, predicted, measured (and optionally unit); one row per metric.
            Metrics differ in unit, so each gets its own panel and y axis.
        title: figure title.

    Returns:
        The figure: a "predicted" and a "measured" Bar trace per metric panel.
    """
    n = max(1, len(df))
    names = [_key(m) for m in df["metric"]] if len(df) else [""]
    fig = make_subplots(rows=1, cols=n, subplot_titles=names, horizontal_spacing=min(0.08, 0.5 / n))
    fig.update_layout(template=TEMPLATE, title=title or "predicted vs measured", barmode="group",
                      showlegend=True, bargap=0.3)
    units = [_key(u) for u in df["unit"]] if "unit" in df else [""] * len(df)
    for i, (metric, predicted, measured, unit) in enumerate(
            zip(names, _num(df["predicted"]), _num(df["measured"]), units)):
        suffix = f" {unit}" if unit else ""
        for j, (label, value) in enumerate((("predicted", predicted), ("measured", measured))):
            fig.add_trace(go.Bar(
                x=[label], y=[value], name=label, legendgroup=label, showlegend=i == 0,
                marker_color=COLORS[6] if j == 0 else COLORS[0],
                hovertemplate=f"<b>{metric}</b><br>{label}: %{{y:,.4~r}}{suffix}<extra></extra>"),
                row=1, col=i + 1)
        fig.update_yaxes(title_text=axis_title(metric) if not unit else f"{metric} ({unit})",
                         row=1, col=i + 1, rangemode="tozero")
    if not len(df):
        _empty(fig, "nothing to compare")
    return fig


# ------------------------------------------------------------------------- tables


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
        values = {"quantity": [str(c) for c in columns]}
        for label, row in df.iterrows():
            values["value" if len(df) == 1 else str(label)] = [row[c] if c in df else None for c in columns]
        df, columns = pd.DataFrame(values), list(values)
    cells = [[format_number(v) for v in df[c]] if c in df else [""] * len(df) for c in columns]
    fig = _figure(title, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    stripes = (["#FFFFFF", "#F6F8FA"] * (len(df) // 2 + 1))[:len(df)]
    # Widths in characters: the longest cell or header; when that makes the table wider than
    # a notebook, headers break into lines and only their longest unbreakable part counts.
    longest = [max(map(len, column), default=0) for column in cells]
    widths = [max(n, len(str(c))) + 2 for c, n in zip(columns, longest)]
    headers = [[str(c)] for c in columns]
    if sum(widths) * _CHAR_PX + 20 > _NOTEBOOK_PX:
        widths, headers = [], []
        for c, n in zip(columns, longest):
            width = max(n, min(len(str(c)), 10), *map(len, re.split(r"(?<=[_.\s])", str(c))))
            widths.append(width + 2)
            headers.append(_header_lines(str(c), width))
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


def rebalance_timeline(rebalances: pd.DataFrame, membership: pd.DataFrame | None = None, *,
                       group: str | None = None, end_t: float | None = None,
                       title: str | None = None) -> go.Figure:
    """Who owned which partition when: a bar per ownership interval, a row per partition,
    a colour per member (`kafkabench.membership.ownership`), with the membership events
    as dashed lines.

    Args:
        rebalances: a run's `rebalances` frame.
        membership: its `membership` frame (crashes and leaves end ownership; events drawn).
        group: one group (default: the first).
        end_t: where intervals still open end (default: the last event).
        title: figure title.

    Returns:
        The figure.
    """
    from kafkabench.analysis.rebalance import ownership

    if group is None and rebalances is not None and len(rebalances):
        group = str(rebalances["group"].iloc[0])
    spans = ownership(rebalances, membership, group=group, end_t=end_t)
    fig = _figure(title or "partition ownership over time", barmode="overlay")
    members = list(dict.fromkeys(spans["member"]))
    for i, member in enumerate(members):
        rows = spans[spans["member"] == member]
        fig.add_trace(go.Bar(base=_num(rows["start_t"]), x=_num(rows["end_t"] - rows["start_t"]),
                             y=[f"p{p}" for p in rows["partition"]],
                             orientation="h", name=member, marker={"color": COLORS[i % len(COLORS)]},
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
