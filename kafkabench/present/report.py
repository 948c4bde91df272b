"""`write_report`: runs (and optionally a sweep) as one self-contained HTML file.

The file works offline and can be mailed around: plotly.js is inlined once, with the first
figure, and every other figure reuses it. Tables are HTML tables written as notebooks show them
(`kafkabench.present.html_tables.readable`), figures in text as `format_cell` writes them.
Sections: a summary table of all runs, comparison
charts when there are several runs (throughput against each setting the runs differ in,
latency spectra overlaid, latency against throughput), an optional sweep section, then one
section per run (throughput, latency, latency spectrum, lag with rebalances).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from kafkabench import __version__
from kafkabench.analysis.sweeps import summarize
from kafkabench.core.contract import SETTING_PREFIXES, summary_names
from kafkabench.present import plots
from kafkabench.present.html_tables import ReadableTable, readable
from kafkabench.present.plots.tables import format_cell
from kafkabench.results.store import HEADLINE, load_many
from kafkabench.run.result import RunResult

__all__ = ["write_report", "load_runs", "differing_settings"]

#: Settings compared first when runs differ in them, in this order; others follow.
COMPARED_SETTINGS = summary_names("producer.compression.type", "producer.acks", "producer.linger.ms",
                                  "producer.batch.size", "workload.message_size", "workload.partitions",
                                  "workload.producer_rate", "workload.producers",
                                  "workload.consumers_per_group", "workload.replication_factor",
                                  "profile.name")
# Settings that differ between any two runs without meaning anything.
_IGNORED_SETTINGS = set(summary_names("workload.name", "workload.topic_prefix", "bootstrap", "topics"))
_SETTING_PREFIXES = SETTING_PREFIXES
_MAX_COMPARISONS = 4
_UNSET = "(default)"

_CSS = """
body { font-family: Inter, Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.5rem; color: #333; }
.meta, .note { color: #666; font-size: 0.9rem; }
.settings { font-family: ui-monospace, Menlo, monospace; font-size: 0.8rem; color: #444; }
nav a { margin-right: 1rem; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0.5rem; }
.wide { overflow-x: auto; margin: 0.5rem 0; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
"""


Runs = str | os.PathLike | RunResult | Iterable[str | os.PathLike | RunResult]


def load_runs(results: Runs) -> list[RunResult]:
    """Runs from run folders, folders of runs and RunResult objects, in the order given.

    Args:
        results: one or a list of: a run folder, a folder containing run folders, a RunResult.

    Returns:
        The loaded runs (folders of runs expand in run_id order).

    Raises:
        KafkabenchError: a path holds no kafkabench result.
    """
    if isinstance(results, (str, os.PathLike, RunResult)):
        results = [results]
    runs: list[RunResult] = []
    for item in results:
        if isinstance(item, RunResult):
            runs.append(item)
        else:
            # A damaged run is skipped with a warning naming its folder, not fatal.
            runs.extend(load_many(item))
    return runs


def differing_settings(summaries: pd.DataFrame) -> list[str]:
    """Setting columns (producer./consumer./common./workload./profile.) whose values differ.

    Args:
        summaries: one row per run (`load_results()` or `RunResult.as_dict()` rows).

    Returns:
        Column names, `COMPARED_SETTINGS` first in their order, then the rest sorted.
    """
    found = []
    for column in summaries.columns:
        if column in _IGNORED_SETTINGS or not column.startswith(_SETTING_PREFIXES):
            continue
        values = {_setting_text(v) for v in summaries[column]}
        if len(values) > 1:
            found.append(column)
    order = {c: i for i, c in enumerate(COMPARED_SETTINGS)}
    return sorted(found, key=lambda c: (order.get(c, len(order)), c))


def _setting_text(value: Any) -> str:
    """A setting as its display text: unset (NaN/None) as "(default)", 1.0 as "1"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _UNSET
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return repr(value)
    return str(value)


def _present(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    """Those of `names` that are columns of `frame`, in order."""
    return [c for c in names if c in frame]


def _labels(runs: Sequence[RunResult]) -> list[str]:
    """Short unique run labels: the name, or name + run_id when names repeat."""
    names = [r.name or r.run_id or f"run {i + 1}" for i, r in enumerate(runs)]
    out = []
    for i, (name, run) in enumerate(zip(names, runs)):
        if names.count(name) > 1:
            name = f"{name} ({run.run_id or i + 1})"
        out.append(str(name))
    return out


class _Html:
    """Collects report parts; inlines plotly.js with the first figure only."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._plotlyjs_written = False
        self._n = 0

    def text(self, markup: str) -> None:
        self.parts.append(markup)

    def table(self, table: ReadableTable) -> None:
        # Every column whole: a table wider than the page scrolls sideways.
        self.parts.append(f'<div class="wide">{table.to_html()}</div>')

    def figure(self, fig: go.Figure) -> None:
        self._n += 1
        markup = fig.to_html(
            full_html=False, include_plotlyjs=not self._plotlyjs_written, div_id=f"kb-fig-{self._n}",
            default_height=f"{fig.layout.height or 450}px",
            config={"displaylogo": False, "responsive": True})
        # A figure wider than the page (a table of many columns) scrolls sideways.
        self.parts.append(f'<div class="wide">{markup}</div>' if fig.layout.width else markup)
        self._plotlyjs_written = True


def write_report(results: Runs, out: str | os.PathLike = "report.html", *, title: str = "kafkabench report",
                 sweep: pd.DataFrame | None = None, sweep_x: str | Sequence[str] | None = None) -> Path:
    """Write one self-contained HTML report of runs (and optionally a sweep).

    Args:
        results: run folders, folders containing runs, or RunResult objects (one or a list).
        out: the HTML file to write (parent folders are created).
        title: the report's title.
        sweep: a sweep summary, one row per sweep point (setting columns such as
            `producer.linger.ms` plus metric columns such as `publish_rate_median`,
            `publish_rate_min`, `publish_rate_max`).
        sweep_x: the swept setting column(s) (default: setting columns of `sweep` with more
            than one value); a second one colours the lines.

    Returns:
        The path of the written file.

    Raises:
        KafkabenchError: a path holds no kafkabench result.
    """
    runs = load_runs(results)
    labels = _labels(runs)
    summaries = pd.DataFrame([r.as_dict() for r in runs])
    if not summaries.empty:
        summaries.insert(0, "run", labels)
    differ = differing_settings(summaries) if len(runs) > 1 else []

    doc = _Html()
    doc.text(f"<h1>{html.escape(title)}</h1>")
    doc.text(f'<p class="meta">{len(runs)} run(s) · written {datetime.now():%Y-%m-%d %H:%M} '
             f"by kafkabench {html.escape(__version__)}</p>")
    nav = ['<a href="#summary">summary</a>']
    if len(runs) > 1:
        nav.append('<a href="#comparison">comparison</a>')
    if sweep is not None:
        nav.append('<a href="#sweep">sweep</a>')
    nav += [f'<a href="#run-{i}">{html.escape(label)}</a>' for i, label in enumerate(labels)]
    doc.text(f"<nav>{''.join(nav)}</nav>")

    doc.text('<h2 id="summary">Summary</h2>')
    if runs:
        # The run_id only where a run's label does not already hold it (labels are
        # "name (run_id)"): a second copy would take a fifth of the table's width.
        named = all(str(r) in str(label) for r, label in zip(summaries.get("run_id", []), summaries.get("run", [])))
        columns = ["run", *([] if named else ["run_id"]), *differ, "duration_s", *HEADLINE, "failed", "rebalances"]
        table = summaries.copy()
        for column in differ:
            table[column] = table[column].map(_setting_text)
        doc.table(readable(table, key="run", columns=_present(table, dict.fromkeys(columns))))
    else:
        doc.text('<p class="note">No runs.</p>')

    if len(runs) > 1:
        _comparison(doc, runs, labels, summaries, differ)
    if sweep is not None:
        _sweep(doc, sweep, sweep_x)
    for i, (run, label) in enumerate(zip(runs, labels)):
        _run_section(doc, i, run, label)

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(doc.parts) + "\n</body>\n</html>\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _comparison(doc: _Html, runs: Sequence[RunResult], labels: Sequence[str],
                summaries: pd.DataFrame, differ: Sequence[str]) -> None:
    doc.text('<h2 id="comparison">Comparison</h2>')
    if differ:
        doc.text('<p class="note">Settings that differ between the runs: '
                 + ", ".join(f"<code>{html.escape(c)}</code>" for c in differ) + "</p>")
    frame = summaries.copy()
    for column in differ:
        # Settings as text, so that unset values get a bar of their own.
        frame[column] = frame[column].map(_setting_text)
    for column in differ[:_MAX_COMPARISONS]:
        _throughput_by_setting(doc, frame, column, next((c for c in differ[:2] if c != column), None))
    spectra = [r.spectrum().assign(run=label) for r, label in zip(runs, labels)]
    spectra = [s for s in spectra if not s.empty]
    if spectra:
        doc.figure(plots.latency_spectrum(pd.concat(spectra, ignore_index=True), log_y=True,
                                          title="latency by percentile, all runs"))
    _latency_by_rate(doc, frame)


def _throughput_by_setting(doc: _Html, frame: pd.DataFrame, column: str, color: str | None) -> None:
    """Publish throughput of the runs against one setting they differ in, coloured by another."""
    keys = [column] + ([color] if color else [])
    title = f"publish throughput by {plots.axis_title(column)}"
    if _repeats(frame, keys):
        # Runs that differ in more settings share a bar: show their median, min to max.
        points = summarize(frame.drop(columns="point", errors="ignore"), keys, metrics=["publish_mb_s"])
        doc.figure(plots.throughput_vs(points, column, "publish_mb_s_median", color, error_y=True,
                                       hover_data=["runs"], title=f"{title} (median of runs)"))
    else:
        doc.figure(plots.throughput_vs(frame, column, "publish_mb_s", color,
                                       hover_data=["run", "run_id"], title=title))


def _latency_by_rate(doc: _Html, frame: pd.DataFrame) -> None:
    """End-to-end (else publish) latency of the runs against their publish rate, each run's
    target rate marked when every run had one."""
    y = [c for c in ("e2e_latency_ms_p50", "e2e_latency_ms_p99") if c in frame and frame[c].notna().any()]
    y = y or [c for c in ("publish_latency_ms_p50", "publish_latency_ms_p99") if c in frame]
    if not y or "publish_rate" not in frame:
        return
    targets = pd.to_numeric(frame.get("target_rate"), errors="coerce") if "target_rate" in frame else None
    # Max-rate runs have target 0: no target to mark.
    rate_limited = targets is not None and bool((targets > 0).all())
    ordered = frame.sort_values("target_rate", kind="stable") if rate_limited else frame
    doc.figure(plots.rate_vs_latency(ordered, "publish_rate", y,
                                     target="target_rate" if rate_limited else None,
                                     hover_data=["run"], title="latency vs publish rate, all runs"))


def _repeats(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    """Whether rows repeat a combination of `keys` (compared as display text)."""
    return bool(frame[list(keys)].map(_setting_text).duplicated().any())


def _sweep_params(sweep: pd.DataFrame) -> list[str]:
    params = []
    for column in sweep.columns:
        if column.startswith(_SETTING_PREFIXES) and sweep[column].map(_setting_text).nunique() > 1:
            params.append(column)
    return params


def _sweep(doc: _Html, sweep: pd.DataFrame, sweep_x: str | Sequence[str] | None) -> None:
    doc.text('<h2 id="sweep">Sweep</h2>')
    params = [sweep_x] if isinstance(sweep_x, str) else list(sweep_x or _sweep_params(sweep))
    doc.table(readable(sweep, key=_present(sweep, params), title=f"{len(sweep)} sweep point(s)"))
    if not params or sweep.empty:
        doc.text('<p class="note">No swept setting found to plot against.</p>')
        return
    for metric in ("publish_rate", "publish_mb_s"):
        y = next((c for c in (f"{metric}_median", f"{metric}_mean", metric) if c in sweep), None)
        if y is not None:
            _sweep_throughput(doc, sweep, params, metric, y)
    _sweep_latency(doc, sweep, params)


def _sweep_latency(doc: _Html, sweep: pd.DataFrame, params: Sequence[str]) -> None:
    """End-to-end latency against publish rate over the sweep points, when the sweep has both."""
    latency = [c for c in ("e2e_latency_ms_p50_median", "e2e_latency_ms_p99_median",
                           "e2e_latency_ms_p50", "e2e_latency_ms_p99")
               if c in sweep and sweep[c].notna().any()]
    rate = next((c for c in ("publish_rate_median", "publish_rate") if c in sweep), None)
    if latency and rate:
        doc.figure(plots.rate_vs_latency(sweep, rate, latency[:2], hover_data=params,
                                         title="latency vs publish rate over the sweep"))


def _sweep_throughput(doc: _Html, sweep: pd.DataFrame, params: Sequence[str], metric: str, y: str) -> None:
    """Column `y` (of `metric`) against the first swept setting, a line per value of the second."""
    x, color = params[0], (params[1] if len(params) > 1 else None)
    keys = [x] + ([color] if color else [])
    if _repeats(sweep, keys):
        # Points that differ in the other swept settings: the median over them.
        points = summarize(sweep.drop(columns="point", errors="ignore"), keys, metrics=[y])
        points = points.rename(columns={f"{y}_median": y})
        doc.figure(plots.throughput_vs(points, x, y, color, error_y=(f"{y}_min", f"{y}_max"),
                                       title=f"{plots.axis_title(y)} vs {plots.axis_title(x)}, "
                                             f"median over {', '.join(params[len(keys):])}"))
        return
    base = y.rsplit("_", 1)[0] if y != metric else metric
    bars = (f"{base}_min", f"{base}_max")
    error_y = bars if all(b in sweep for b in bars) else None
    doc.figure(plots.throughput_vs(sweep, x, y, color, error_y=error_y))


def _run_section(doc: _Html, i: int, run: RunResult, label: str) -> None:
    s = run.summary
    doc.text(f'<h2 id="run-{i}">{html.escape(label)}</h2>')
    doc.text(f'<p class="meta">run_id <code>{html.escape(str(run.run_id))}</code> · started '
             f"{html.escape(str(s.get('started_at', '?')))} · {format_cell(s.get('duration_s'), 'duration_s')} s"
             + (" · <b>interrupted</b>" if s.get("interrupted") else "") + "</p>")
    settings = {k: v for k, v in s.items()
                if k.startswith(("producer.", "workload.partitions", "workload.message_size",
                                 "workload.producer_rate", "workload.consumer", "profile.name"))}
    if settings:
        doc.text('<p class="settings">' + " · ".join(
            f"{html.escape(k)}={html.escape(_setting_text(v))}" for k, v in settings.items()) + "</p>")
    errors = s.get("errors") or {}
    if errors:
        doc.text(f'<p class="note">errors: {html.escape(format_cell(errors))}</p>')
    faults = run.faults if len(run.faults) else None
    _trust_text(doc, run)
    doc.text('<div class="grid">')
    doc.figure(plots.throughput_over_time(run.timeseries, faults=faults))
    doc.figure(plots.latency_over_time(run.timeseries, faults=faults))
    doc.text("</div>")
    doc.figure(plots.latency_spectrum(run.spectrum(), log_y=True))
    if run.lag.empty:
        doc.text('<p class="note">No lag sampled: the run had no consumer groups.</p>')
    else:
        doc.figure(plots.lag_over_time(run.lag, run.rebalances, faults=faults))
    if len(run.cluster_state):
        doc.figure(plots.cluster_state_over_time(run.cluster_state, faults=faults))
    if len(run.recovery):
        doc.table(readable(run.recovery, key=_present(run.recovery, ("fault", "action")),
                           title="recovery per fault"))
    if len(run.broker_metrics):
        doc.text('<p class="settings">broker metrics (JMX exporter, scraped each second): '
                 f"bytes in {format_cell(s.get('broker_bytes_in_total'))} · messages in "
                 f"{format_cell(s.get('broker_messages_in_total'))} · most under-replicated "
                 f"{format_cell(s.get('broker_under_replicated_max'))} · failed scrapes "
                 f"{format_cell(s.get('broker_scrape_errors'))}</p>")
        doc.figure(plots.client_and_broker(run.timeseries, run.broker_metrics, faults=faults))


def _trust_text(doc: _Html, run: RunResult) -> None:
    """The delivery verification's counts, when the run was verified."""
    s = run.summary
    if "verify_acked" not in s:
        return
    counts = " · ".join(f"{k.removeprefix('verify_').replace('_', ' ')} {format_cell(s.get(k))}"
                        for k in ("verify_acked", "verify_lost", "verify_duplicated",
                                  "verify_reordered", "verify_failed_but_present"))
    bad = any(s.get(k) for k in ("verify_lost", "verify_duplicated", "verify_reordered"))
    incomplete = "" if s.get("verify_complete", True) else (
        f" · <b>read-back incomplete</b>: {html.escape(str(s.get('verify_error')))}")
    doc.text(f'<p class="{"note" if bad or incomplete else "settings"}">delivery verified: '
             f"{html.escape(counts)}{incomplete}</p>")
