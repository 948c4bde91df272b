"""ipywidgets panels: each wires a few controls to one kafkabench call and shows its plot.

Every panel is one call in a notebook (`producer_tuning_panel()`, `partition_explorer()`,
`capacity_planner()`, `lag_monitor(groups)`) returning a widget. The panels are VBox
subclasses whose work is a plain method (`run()`, `update()`, `start()`/`stop()`), so tests
and notebooks can drive them without a browser; the last figure and table are kept as
attributes (`figure`, `table`).

Figures are shown in `ipywidgets.Output` areas as plotly's own mimetype (rendered by the
jupyterlab-plotly extension that ships with plotly), because `plotly.graph_objects.FigureWidget`
needs the optional `anywidget` package in plotly 6+. They are not plotly-"responsive": see
`_bundle`.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from kafkabench.analysis import capacity
from kafkabench.cluster.lag import IsolatedLagSampler
from kafkabench.cluster.local import resolve_bootstrap
from kafkabench.core.contract import summary_names
from kafkabench.core.errors import ConfigError, KafkabenchError
from kafkabench.present import plots, readable
from kafkabench.results.store import load_results
from kafkabench.run.result import RunResult
from kafkabench.runner import run_workload
from kafkabench.spec import partitioning
from kafkabench.spec.profile import ClientProfile, load_profile
from kafkabench.spec.workload import Workload, load_workload

__all__ = [
    "producer_tuning_panel",
    "partition_explorer",
    "capacity_planner",
    "lag_monitor",
    "ProducerTuningPanel",
    "PartitionExplorer",
    "CapacityPlanner",
    "LagMonitor",
]

_STYLE = {"description_width": "initial"}
#: Height of a panel's figure that does not set its own.
FIGURE_HEIGHT_PX = 420
WorkloadSpec = Workload | Mapping[str, Any] | str | Path | None
ProfileSpec = ClientProfile | Mapping[str, Any] | str | Path | None


# ------------------------------------------------------------------------- display helpers


def _bundle(item: Any) -> dict[str, Any]:
    """A display_data output for a figure, a DataFrame or text."""
    if isinstance(item, go.Figure):
        spec = json.loads(pio.to_json(item, validate=False))
        # Not `responsive`: the JupyterLab renderer gives a figure without a height 360 px and
        # then calls Plots.resize, which deletes width and height from a figure that lacks
        # either; a responsive figure's container is then sized "100%" of an auto-height
        # parent, i.e. 0 px. Whether that happens depended on the new output node's height
        # when plotly first drew, which alternated between redraws of the same Output area:
        # the tuning panel lost its latency chart on every other run.
        spec["config"] = {"displaylogo": False}
        spec["layout"].setdefault("height", FIGURE_HEIGHT_PX)
        data = {"application/vnd.plotly.v1+json": spec,
                "text/plain": f"<plotly Figure: {item.layout.title.text or ''}>"}
    elif isinstance(item, pd.DataFrame):
        shown = item.apply(lambda column: column.map(_cell)) if len(item) else item
        # The table as the notebooks show theirs (`readable`): headers break at `_` and `.`,
        # counts whole, and a wide table scrolls in its own box.
        data = {"text/html": readable(item).html() if len(item.columns) else shown.to_html(index=False, border=0),
                "text/plain": shown.to_string(index=False)}
    else:
        data = {"text/plain": str(item)}
    return {"output_type": "display_data", "data": data, "metadata": {}}


def _cell(value: Any) -> str:
    """A table cell as text: numbers to 4 significant digits in plain notation, NaN blank."""
    return plots.format_number(value)


def _show(output: widgets.Output, *items: Any) -> None:
    """Replace what `output` shows; safe from background threads (no `with output:`)."""
    output.outputs = tuple(_bundle(i) for i in items if i is not None)


def _error_html(exc: BaseException) -> str:
    import html

    return f'<span style="color:#B00020"><b>{type(exc).__name__}</b>: {html.escape(str(exc))}</span>'


def _info_html(text: str) -> str:
    import html

    return f'<span style="color:#555">{html.escape(text)}</span>'


# ------------------------------------------------------------------------- producer tuning

COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
BATCH_SIZES = (16_384, 65_536, 262_144, 1_000_000)  # librdkafka's default is 1000000
LINGER_MS = (0, 1, 5, 10, 20, 50, 100)  # librdkafka's default is 5
ACKS = ("all", "1", "0")
MESSAGE_SIZES = (100, 200, 500, 1_000, 4_000, 10_000, 100_000)
RATES = (0, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)

# `ProducerTuningPanel.table` columns named after a setting: column -> the summary key it shows.
_TUNING_SETTINGS = dict(zip(
    ("compression.type", "acks", "linger.ms", "batch.size", "message_size"),
    summary_names("producer.compression.type", "producer.acks", "producer.linger.ms",
                  "producer.batch.size", "workload.message_size")))
# ... and the summary keys it shows under their own names.
_TUNING_FIGURES = summary_names("target_rate", "publish_rate", "publish_mb_s", "publish_latency_ms_p50",
                                "publish_latency_ms_p99", "e2e_latency_ms_p50", "e2e_latency_ms_p99",
                                "failed", "run_id")
#: Columns of `ProducerTuningPanel.table`, in order.
TUNING_COLUMNS = ["run", *_TUNING_SETTINGS, *_TUNING_FIGURES]


def _size(n: int) -> str:
    for unit, factor in (("M", 1_000_000), ("K", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n:,}"


class ProducerTuningPanel(widgets.VBox):
    """Controls for producer settings, a Run button, and the accumulated runs compared.

    Each run is `run_workload` with the base workload (consumer groups kept, at least one, so
    end-to-end latency is measured) and the base profile with the chosen producer settings.

    Attributes:
        runs: every RunResult so far, oldest first.
        table: one row per run (`TUNING_COLUMNS`).
        figure: latency by percentile of all runs (publish and end-to-end).
        throughput_figure: publish MB/s per run.
    """

    def __init__(self, *, bootstrap: str | None = None, workload: WorkloadSpec = None,
                 profile: ProfileSpec = None, duration_s: float = 5, warmup_s: float | None = None,
                 out: str | Path | None = None, progress: bool = True):
        self.bootstrap = bootstrap
        base = load_workload(workload) if workload is not None else Workload(
            name="tuning", partitions=3, consumer_groups=1, consumers_per_group=1, warmup_s=1.0)
        self.base_workload = dataclasses.replace(
            base, consumer_groups=max(1, base.consumer_groups),
            warmup_s=base.warmup_s if warmup_s is None else float(warmup_s))
        self.base_profile = load_profile(profile)
        self.out = out
        self.progress = progress
        self.runs: list[RunResult] = []
        self.labels: list[str] = []
        self.table = pd.DataFrame(columns=TUNING_COLUMNS)
        self.figure: go.Figure | None = None
        self.throughput_figure: go.Figure | None = None

        producer = {**self.base_profile.producer}
        rate = int(self.base_workload.producer_rate) or 5_000
        size = self.base_workload.message_size if isinstance(self.base_workload.message_size, int) else 1_000
        self.compression = widgets.Dropdown(options=COMPRESSION_TYPES, description="compression.type",
                                            value=str(producer.get("compression.type", "none")), style=_STYLE)
        self.batch_size = widgets.SelectionSlider(
            options=[(_size(b), b) for b in _with(BATCH_SIZES, producer.get("batch.size"))],
            value=int(producer.get("batch.size", 1_000_000)), description="batch.size (bytes)", style=_STYLE)
        self.linger_ms = widgets.SelectionSlider(
            options=_with(LINGER_MS, producer.get("linger.ms")), value=int(producer.get("linger.ms", 5)),
            description="linger.ms", style=_STYLE)
        acks = str(producer.get("acks", "all")).replace("-1", "all")
        self.acks = widgets.ToggleButtons(options=ACKS, value=acks, description="acks",
                                          style={**_STYLE, "button_width": "48px"})
        self.message_size = widgets.SelectionSlider(
            options=[(_size(s) if s >= 1024 else str(s), s) for s in _with(MESSAGE_SIZES, size)], value=size,
            description="message size (bytes)", style=_STYLE)
        self.rate = widgets.SelectionSlider(
            options=[("max" if r == 0 else f"{r:,}", r) for r in _with(RATES, rate)], value=rate,
            description="rate (msg/s)", style=_STYLE)
        self.duration = widgets.BoundedIntText(value=int(duration_s), min=1, max=600,
                                               description="duration (s)", style=_STYLE,
                                               layout={"width": "160px"})
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.clear_button = widgets.Button(description="Clear", icon="trash")
        self.message = widgets.HTML()
        self.progress_area = widgets.Output()
        self.plot_area = widgets.Output(layout={"width": "60%"})
        self.bar_area = widgets.Output(layout={"width": "40%"})
        self.table_area = widgets.Output()
        self.run_button.on_click(lambda _: self.run())
        self.clear_button.on_click(lambda _: self.clear())
        controls = widgets.VBox([
            widgets.HBox([self.compression, self.acks]),
            widgets.HBox([self.batch_size, self.linger_ms]),
            widgets.HBox([self.message_size, self.rate]),
            widgets.HBox([self.duration, self.run_button, self.clear_button, self.message]),
        ])
        super().__init__([controls, self.progress_area, widgets.HBox([self.plot_area, self.bar_area]),
                          self.table_area])

    def settings(self) -> dict[str, Any]:
        """The control values: producer settings plus message_size, producer_rate, duration_s."""
        return {"compression.type": self.compression.value, "batch.size": self.batch_size.value,
                "linger.ms": self.linger_ms.value, "acks": self.acks.value,
                "message_size": self.message_size.value, "producer_rate": self.rate.value,
                "duration_s": self.duration.value}

    def workload_and_profile(self) -> tuple[Workload, ClientProfile]:
        """The workload and profile the next run uses, from the control values.

        Raises:
            ConfigError: librdkafka rejects the combination.
        """
        s = self.settings()
        workload = dataclasses.replace(self.base_workload, message_size=s["message_size"],
                                       producer_rate=float(s["producer_rate"]),
                                       duration_s=float(s["duration_s"]))
        spec = self.base_profile.to_dict()
        spec["name"] = f"{self.base_profile.name}-tuned"
        spec["producer"] = {**spec["producer"], **{k: s[k] for k in
                                                   ("compression.type", "batch.size", "linger.ms", "acks")}}
        return workload, ClientProfile.from_dict(spec)

    def run(self) -> RunResult | None:
        """Run once with the current settings, add the run to the comparison.

        Returns:
            The run, or None when it failed (the error is shown in the panel).

        Raises:
            Exception: anything but a `KafkabenchError` (a bug), after showing it in the panel.
        """
        self.run_button.disabled = True
        self.message.value = _info_html("running…")
        s = self.settings()
        failure: Exception | None = None
        try:
            workload, profile = self.workload_and_profile()
            # Captures the progress bar in a notebook (a no-op elsewhere). In a kernel, an
            # exception leaving `with output:` is printed there and swallowed: catch it inside.
            with self.progress_area:
                try:
                    result = run_workload(workload, profile, bootstrap=self.bootstrap, out=self.out,
                                          progress=self.progress)
                except Exception as exc:  # noqa: BLE001 - reported below, bugs re-raised
                    failure = exc
            self.progress_area.clear_output()
        except KafkabenchError as exc:
            failure = exc
        finally:
            self.run_button.disabled = False
        if failure is not None:
            self.message.value = _error_html(failure)
            if isinstance(failure, KafkabenchError):
                return None
            raise failure
        n = len(self.runs) + 1
        self.runs.append(result)
        size = s["message_size"]
        rate = f"{s['producer_rate']:,}/s" if s["producer_rate"] else "max"
        self.labels.append(f"#{n} {s['compression.type']} acks={s['acks']} linger={s['linger.ms']} "
                           f"batch={_size(s['batch.size'])} size={_size(size)} "
                           f"rate={rate}")
        warnings = result.summary.get("warnings") or []
        self.message.value = _info_html("; ".join([f"run #{n} done", *map(str, warnings)]))
        self._render()
        return result

    def clear(self) -> None:
        """Forget the runs so far."""
        self.runs.clear()
        self.labels.clear()
        self.message.value = ""
        self._render()

    def _render(self) -> None:
        rows = []
        for label, run in zip(self.labels, self.runs):
            s = run.summary
            rows.append({"run": label, **{c: s.get(key) for c, key in _TUNING_SETTINGS.items()},
                         **{c: s.get(c) for c in _TUNING_FIGURES}})
            rows[-1]["compression.type"] = rows[-1]["compression.type"] or "none"
        self.table = pd.DataFrame(rows, columns=TUNING_COLUMNS)
        short = _short_labels(self.labels)
        spectra = [r.spectrum().assign(run=n) for n, r in zip(short, self.runs)]
        spectra = [s[s["metric"].isin(["publish_latency_us", "e2e_latency_us"])]
                   for s in spectra if not s.empty]
        if self.runs:
            self.figure = plots.latency_spectrum(pd.concat(spectra, ignore_index=True) if spectra else
                                                 pd.DataFrame(columns=["metric", "percentile", "value_ms"]),
                                                 log_y=True, title="latency by percentile")
            chart = self.table.assign(settings=self.table["run"], run=short)
            self.throughput_figure = plots.throughput_vs(chart, "run", "publish_mb_s",
                                                         hover_data=["settings", "publish_rate", "run_id"],
                                                         title="publish throughput")
            self.throughput_figure.update_xaxes(title_text=None)
        else:
            self.figure = self.throughput_figure = None
        _show(self.plot_area, self.figure)
        _show(self.bar_area, self.throughput_figure)
        # Shown: the run's short label (its settings are the columns beside it), without the
        # run_id (in `self.table`, and on the bar chart's hover), so the table fits the panel.
        shown = self.table.assign(run=short).drop(columns=["run_id"])
        _show(self.table_area, shown if self.runs else None)


def _short_labels(labels: list[str]) -> list[str]:
    """Run labels for charts: "#n" and only the settings that differ between the runs.

    The full labels ("#1 none acks=all linger=5 batch=1M") made the latency chart's legend
    wider than the chart, squeezing its plot to a few pixels; the table keeps them.
    """
    parts = [label.split(" ") for label in labels]
    differ = [i for i in range(1, max(map(len, parts), default=1))
              if len({tuple(p[i:i + 1]) for p in parts}) > 1]
    return [" ".join([p[0], *(p[i] for i in differ if i < len(p))]) for p in parts]


def _count(n: int, noun: str) -> str:
    """The count and its noun, plural unless 1: "1 partition", "3 partitions"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _with(options: Iterable[int], value: Any) -> list[int]:
    """The preset options plus `value` (a setting of the base profile) if it is not one."""
    options = list(options)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return options
    return sorted({*options, value})


def producer_tuning_panel(*, bootstrap: str | None = None, workload: WorkloadSpec = None,
                          duration_s: float = 5, warmup_s: float | None = None, profile: ProfileSpec = None,
                          out: str | Path | None = None, progress: bool = True) -> ProducerTuningPanel:
    """A panel to try producer settings against a cluster and compare the runs.

    Args:
        bootstrap: bootstrap servers (default: KAFKABENCH_BOOTSTRAP or the embedded cluster).
        workload: base workload (default: 3 partitions, one consumer group of one consumer,
            a 1 s warm-up).
        duration_s: initial run duration (measured, after the warm-up).
        warmup_s: unmeasured seconds at the start of every run (default: the workload's).
            Without one, a short run's p99 latency is mostly the cold start of a fresh topic
            and new clients (measured on a CPU-starved 2-core machine: p99 25-106 ms without
            a 1 s warm-up, 10 ms with it).
        profile: base client profile; the panel's controls override its producer settings.
        out: folder to save every run in (for `write_report` later), or None.
        progress: show a progress bar while running.

    Returns:
        The panel; `panel.run()` runs once, as the Run button does.
    """
    return ProducerTuningPanel(bootstrap=bootstrap, workload=workload, profile=profile,
                               duration_s=duration_s, warmup_s=warmup_s, out=out, progress=progress)


# ------------------------------------------------------------------------- partitioning

DEFAULT_STRATEGIES = ("murmur2_random", "consistent_random", "fnv1a-rr")


class PartitionExplorer(widgets.VBox):
    """Strategies, key distribution and partition counts -> share chart + comparison table.

    Offline: keys come from `partitioning.key_sample`, no broker is involved.

    Attributes:
        table: `partitioning.compare_strategies` of the current settings.
        per_partition: the strategies' per-partition shares, stacked with a `strategy` column.
        figure: `plots.partition_share` of `per_partition`.
    """

    def __init__(self, *, strategies: Iterable[str] = DEFAULT_STRATEGIES, kind: str = "zipf",
                 n_keys: int = 1_000, messages: int = 20_000, partitions: int = 6,
                 grow_to: int | None = None):
        self.table = pd.DataFrame()
        self.per_partition = pd.DataFrame()
        self.figure: go.Figure | None = None
        self.strategies = widgets.SelectMultiple(options=list(partitioning.STRATEGIES),
                                                 value=tuple(strategies), description="strategies",
                                                 rows=6, style=_STYLE)
        self.kind = widgets.Dropdown(options=partitioning.KEY_KINDS, value=kind, description="keys",
                                     style=_STYLE)
        self.skew = widgets.FloatSlider(value=1.1, min=0.2, max=2.5, step=0.1, description="zipf s",
                                        continuous_update=False, style=_STYLE)
        self.n_keys = widgets.SelectionSlider(options=[10, 100, 1_000, 10_000, 100_000], value=n_keys,
                                              description="distinct keys", continuous_update=False,
                                              style=_STYLE)
        self.messages = widgets.BoundedIntText(value=messages, min=1, max=2_000_000, step=1_000,
                                               description="messages", style=_STYLE)
        self.partitions = widgets.IntSlider(value=partitions, min=1, max=128, description="partitions N",
                                            continuous_update=False, style=_STYLE)
        self.grow_to = widgets.IntSlider(value=grow_to or 2 * partitions, min=1, max=256,
                                         description="grow to M", continuous_update=False, style=_STYLE)
        self.message = widgets.HTML()
        self.plot_area = widgets.Output()
        self.table_area = widgets.Output()
        controls = [self.strategies, self.kind, self.skew, self.n_keys, self.messages, self.partitions,
                    self.grow_to]
        for control in controls:
            control.observe(lambda _: self.update(), names="value")
        super().__init__([widgets.HBox([self.strategies, widgets.VBox(controls[1:])]), self.message,
                          self.plot_area, self.table_area])
        self.update()

    def update(self) -> pd.DataFrame:
        """Analyse the key sample with the current settings and redraw.

        Returns:
            The comparison table (empty, with the error shown, when the settings are invalid).
        """
        kind = self.kind.value
        self.skew.disabled = kind not in ("zipf", "user_ids")
        try:
            if not self.strategies.value:
                raise ConfigError("choose at least one strategy")
            keys = partitioning.key_sample(kind, self.messages.value, self.n_keys.value, seed=0,
                                           s=None if self.skew.disabled else self.skew.value)
            n = self.partitions.value
            self.table = partitioning.compare_strategies(self.strategies.value, keys, n,
                                                         grow_to=self.grow_to.value)
            self.per_partition = pd.concat(
                [partitioning.analyze(s, keys, n).per_partition.assign(strategy=s)
                 for s in self.strategies.value], ignore_index=True)
        except KafkabenchError as exc:
            self.message.value = _error_html(exc)
            self.table = pd.DataFrame()
            _show(self.plot_area)
            _show(self.table_area)
            return self.table
        self.message.value = ""
        self.figure = plots.partition_share(
            self.per_partition, title=f"{kind} keys over {n} partitions")
        _show(self.plot_area, self.figure)
        _show(self.table_area, self.table)
        return self.table


def partition_explorer(**kwargs: Any) -> PartitionExplorer:
    """A panel comparing partitioning strategies on a key sample (offline, no broker).

    Args:
        **kwargs: initial values: strategies, kind (`partitioning.KEY_KINDS`), n_keys
            (10, 100, 1000, 10000 or 100000), messages, partitions, grow_to.

    Returns:
        The panel; `panel.update()` recomputes, as changing a control does.
    """
    return PartitionExplorer(**kwargs)


# ------------------------------------------------------------------------- capacity

SENSITIVITY_OUTPUTS = ("partitions", "brokers", "storage_total_gb", "network_egress_mb_s")


class CapacityPlanner(widgets.VBox):
    """`CapacityInputs` as controls -> `capacity.plan` table + `capacity.sensitivity` chart.

    Attributes:
        inputs: the CapacityInputs of the last update.
        table: the plan as rows (quantity, value).
        sensitivity: `capacity.sensitivity(inputs)`.
        figure: `plots.capacity_sensitivity` of it.
        measured: the `PartitionThroughput` the per-partition inputs were prefilled from, or None.
    """

    def __init__(self, results: pd.DataFrame | str | Path | None = None, *,
                 inputs: capacity.CapacityInputs | None = None, **values: Any):
        self.measured: capacity.PartitionThroughput | None = None
        self.inputs: capacity.CapacityInputs | None = None
        # Inputs without a control (daily_ingress_gb, max_partitions_per_broker) come from here.
        self._base = inputs
        self.table = pd.DataFrame()
        self.sensitivity = pd.DataFrame()
        self.figure: go.Figure | None = None
        self.message = widgets.HTML()
        note = ""
        defaults = {"target_mb_s": 100.0, "produce_mb_s_per_partition": 10.0,
                    "consume_mb_s_per_partition": 20.0}
        if results is not None:
            frame = results if isinstance(results, pd.DataFrame) else load_results(results)
            try:
                self.measured = capacity.per_partition_throughput(frame)
            except KafkabenchError as exc:
                note = _error_html(exc)
            else:
                m = self.measured
                defaults["produce_mb_s_per_partition"] = m.produce_mb_s_per_partition
                if m.consume_mb_s_per_partition == m.consume_mb_s_per_partition:  # not NaN
                    defaults["consume_mb_s_per_partition"] = m.consume_mb_s_per_partition
                note = _info_html(
                    f"per-partition throughput measured in {_count(m.runs, 'run')}: produce "
                    f"{_cell(m.produce_mb_s_per_partition)} MB/s (at "
                    f"{_count(m.produce_partitions, 'partition')}), consume "
                    f"{_cell(m.consume_mb_s_per_partition)} MB/s"
                    + (f" (at {_count(m.consume_partitions, 'partition')})" if m.consume_partitions else ""))
        given = dataclasses.asdict(inputs) if inputs is not None else {}
        if inputs is not None and results is not None:
            note += _info_html(" · the inputs given replace the measured figures")
        values = {**{f.name: f.default for f in dataclasses.fields(capacity.CapacityInputs)
                     if f.default is not dataclasses.MISSING}, **defaults, **given, **values}

        def number(name: str, description: str, lo: float, hi: float,
                   step: float) -> widgets.BoundedFloatText:
            return widgets.BoundedFloatText(value=values[name], min=lo, max=hi, step=step,
                                            description=description, style=_STYLE)

        self.controls: dict[str, widgets.ValueWidget] = {
            "target_mb_s": number("target_mb_s", "target (MB/s)", 0, 1e6, 10),
            "produce_mb_s_per_partition": number("produce_mb_s_per_partition",
                                                 "produce per partition (MB/s)", 0, 1e5, 1),
            "consume_mb_s_per_partition": number("consume_mb_s_per_partition",
                                                 "consume per partition (MB/s)", 0, 1e5, 1),
            "consumers": widgets.BoundedIntText(value=values["consumers"], min=1, max=100_000,
                                                description="consumers", style=_STYLE),
            "retention_days": number("retention_days", "retention (days)", 0, 3650, 1),
            "replication_factor": widgets.BoundedIntText(value=values["replication_factor"], min=1, max=7,
                                                         description="replication factor", style=_STYLE),
            "consumer_fanout": number("consumer_fanout", "consumer fan-out (groups)", 0, 100, 1),
            "broker_storage_gb": number("broker_storage_gb", "disk per broker (GB)", 1, 1e6, 100),
            "broker_network_mb_s": number("broker_network_mb_s", "NIC per broker (MB/s)", 1, 1e5, 125),
            "utilisation_target": widgets.FloatSlider(value=values["utilisation_target"], min=0.1, max=1.0,
                                                      step=0.05, description="utilisation target",
                                                      continuous_update=False, style=_STYLE),
        }
        self.output = widgets.Dropdown(options=SENSITIVITY_OUTPUTS, value="partitions",
                                       description="sensitivity of", style=_STYLE)
        self.kind = widgets.ToggleButtons(options=["line", "tornado"], value="line", style=_STYLE)
        for control in [*self.controls.values(), self.output, self.kind]:
            control.observe(lambda _: self.update(), names="value")
        self.plot_area = widgets.Output(layout={"width": "62%"})
        self.table_area = widgets.Output(layout={"width": "38%"})
        boxes = list(self.controls.values())
        super().__init__([
            widgets.HTML(note),
            widgets.HBox([widgets.VBox(boxes[:5]), widgets.VBox(boxes[5:])]),
            widgets.HBox([self.output, self.kind]), self.message,
            widgets.HBox([self.plot_area, self.table_area]),
        ])
        self.update()

    def capacity_inputs(self) -> capacity.CapacityInputs:
        """The CapacityInputs of the current control values (and of `inputs=` for the rest)."""
        values = {name: c.value for name, c in self.controls.items()}
        if self._base is not None:
            return dataclasses.replace(self._base, **values)
        return capacity.CapacityInputs(**values)

    def update(self) -> pd.DataFrame:
        """Plan with the current inputs and redraw.

        Returns:
            The plan table (empty, with the error shown, for invalid inputs).
        """
        try:
            self.inputs = self.capacity_inputs()
            row = capacity.plan(self.inputs).as_dict()
            self.sensitivity = capacity.sensitivity(self.inputs)
        except KafkabenchError as exc:
            self.message.value = _error_html(exc)
            self.table = pd.DataFrame()
            _show(self.plot_area)
            _show(self.table_area)
            return self.table
        self.message.value = ""
        self.table = pd.DataFrame({"quantity": list(row), "value": [str(v) if isinstance(v, str) else v
                                                                    for v in row.values()]})
        self.figure = plots.capacity_sensitivity(self.sensitivity, self.output.value, kind=self.kind.value)
        _show(self.plot_area, self.figure)
        _show(self.table_area, self.table)
        return self.table


def capacity_planner(results: pd.DataFrame | str | Path | None = None, *,
                     inputs: capacity.CapacityInputs | None = None, **values: Any) -> CapacityPlanner:
    """A panel planning partitions, storage, network and brokers, with a sensitivity chart.

    Pass the `CapacityInputs` a notebook planned with as `inputs=`, so the panel starts from
    the same plan (every input, not only the target: consumers alone can change the
    partition count).

    Args:
        results: measured runs (`load_results()` frame or a results folder): the
            per-partition throughputs are prefilled with `capacity.per_partition_throughput`.
        inputs: initial inputs, all of them; they win over `results`.
        **values: initial `CapacityInputs` values (e.g. target_mb_s=250); they win over both.

    Returns:
        The panel; `panel.update()` replans, as changing a control does.
    """
    return CapacityPlanner(results, inputs=inputs, **values)


# ------------------------------------------------------------------------- lag


class LagMonitor(widgets.VBox):
    """A live lag chart: a `LagSampler` thread samples, each sample redraws the chart.

    Stops on the Stop button, on `stop()`, or after `max_duration_s`. Stop it before the
    watched topics are deleted (`experiments.run_watched` does), or its last samples are
    errors.

    Attributes:
        sampler: the running (or last) IsolatedLagSampler, None before the first start.
        figure: the last `plots.lag_over_time` drawn.
    """

    def __init__(self, groups: str | Iterable[str], *, bootstrap: str | None = None, interval_s: float = 1.0,
                 max_duration_s: float = 600.0, conf: Mapping[str, Any] | None = None,
                 missing_committed: str = "earliest"):
        self.groups = [groups] if isinstance(groups, str) else list(groups)
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        self.max_duration_s = max_duration_s
        self.conf = conf
        self.missing_committed = missing_committed
        self.sampler: IsolatedLagSampler | None = None
        self.figure: go.Figure | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.status = widgets.HTML()
        self.plot_area = widgets.Output()
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__([widgets.HBox([self.start_button, self.stop_button, self.status]), self.plot_area])

    @property
    def running(self) -> bool:
        """Whether the sampler thread is running."""
        return self._timer is not None

    def start(self) -> None:
        """Start sampling (a no-op when running); errors are shown, not raised."""
        with self._lock:
            if self.running:
                return
            try:
                bootstrap = resolve_bootstrap(self.bootstrap)
                # In a child process: a client-library abort must not take the kernel down.
                self.sampler = IsolatedLagSampler(bootstrap, self.groups, interval_s=self.interval_s,
                                                  conf=self.conf, missing_committed=self.missing_committed)
            except KafkabenchError as exc:
                self.status.value = _error_html(exc)
                return
            self.sampler.on_sample = lambda _frame: self.refresh()
            # The timer thread stops the sampler: the sampler's own thread cannot join itself.
            self._timer = threading.Timer(self.max_duration_s, self.stop)
            self._timer.daemon = True
            self.start_button.disabled, self.stop_button.disabled = True, False
            self.status.value = _info_html(f"sampling {', '.join(self.groups)} every {self.interval_s:g} s")
            self.sampler.start()
            self._timer.start()

    def stop(self) -> None:
        """Stop sampling and draw the final chart."""
        with self._lock:
            timer = self._timer
            if timer is None:
                return
            timer.cancel()
            if self.sampler is not None:
                self.sampler.stop()
            self._draw(stopped=True)
            # Only now "not running": the sampler thread is over and the chart final.
            self.start_button.disabled, self.stop_button.disabled = False, True
            self._timer = None

    def frame(self) -> pd.DataFrame:
        """All samples so far (`LagSampler.frame()`); empty before the first start."""
        return self.sampler.frame() if self.sampler is not None else pd.DataFrame()

    def refresh(self) -> go.Figure | None:
        """Redraw the chart from the samples so far.

        Returns:
            The figure, or None before the first sample.
        """
        return self._draw(stopped=not self.running)

    def _draw(self, stopped: bool) -> go.Figure | None:
        if self.sampler is None:
            return None
        lag = self.sampler.frame()
        self.figure = plots.lag_over_time(lag, title=f"lag of {', '.join(self.groups)}")
        statuses = self.sampler.group_status()
        errors = self.sampler.errors()
        text = (f"{'stopped' if stopped else 'sampling'} · {lag['t'].nunique()} sample(s) · "
                + ", ".join(f"{g}: {s}" for g, s in statuses.items()))
        if len(errors):
            text += f" · last error: {errors['error'].iloc[-1]}"
        self.status.value = _info_html(text)
        _show(self.plot_area, self.figure)
        return self.figure


def lag_monitor(groups: str | Iterable[str], *, bootstrap: str | None = None, interval_s: float = 1.0,
                max_duration_s: float = 600.0, start: bool = True,
                missing_committed: str = "earliest") -> LagMonitor:
    """A live lag chart of consumer groups, refreshed at every sample.

    The groups of a run are named `<topic_prefix>-<run_id>-<topic index>-g<group index>`
    (e.g. `kb-myrun-0-g0`): pass `run_id="myrun"` to `run_workload` to know them in advance,
    and run it with `experiments.run_watched(workload, monitor, run_id=...)`, which stops the
    monitor before the run deletes its topics. The chart keeps refreshing while the
    notebook runs another cell.

    Args:
        groups: consumer group id(s).
        bootstrap: bootstrap servers (default: KAFKABENCH_BOOTSTRAP or the embedded cluster).
        interval_s: seconds between samples.
        max_duration_s: stop by itself after this long.
        start: start sampling right away (else on the Start button).
        missing_committed: lag of a partition the group has not committed yet: "earliest"
            (the default, as `run_workload` measures: from the log start, where a new
            kafkabench consumer starts reading; a group commits only every 5 s, so a short run
            would otherwise show no lag at all) or "nan" (unknown, as `kafka-consumer-groups`).

    Returns:
        The monitor; `monitor.stop()` stops it, `monitor.frame()` has the samples.
    """
    monitor = LagMonitor(groups, bootstrap=bootstrap, interval_s=interval_s, max_duration_s=max_duration_s,
                         missing_committed=missing_committed)
    if start:
        monitor.start()
    return monitor
