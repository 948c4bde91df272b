"""What several commands print: a run's summary in the units users know from Kafka's perf
tools (`print_summary`), one JSON object per line with plain JSON types (`print_json`), and
tables as the notebooks write them (`text_table`: counts whole, no exponents).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any


def text_table(frame: Any) -> str:
    """A frame as aligned text, every cell written as notebooks and the report write it
    (`kafkabench.present.plots.tables.format_column`: counts "6,076", not "6,076.00"; rates to
    4 significant digits; seconds to 1-2 decimals; no exponents).

    Args:
        frame: a pandas DataFrame.

    Returns:
        The table, without the index.
    """
    import pandas as pd

    from kafkabench.present.plots.tables import format_column

    text = pd.DataFrame({c: format_column(frame[c], str(c)) for c in frame.columns}, index=frame.index)
    return text.to_string(index=False)


def print_json(value: Any) -> None:
    """Print `value` as one line of JSON, flushed.

    NaN and infinities become null, numpy scalars numbers, timestamps ISO text, anything else
    unknown its text (`json.dumps` would fail on them, or write NaN, which is not JSON).

    Args:
        value: Dicts, lists and scalars.
    """
    print(json.dumps(_json_safe(value), allow_nan=False), flush=True)


def _json_safe(value: Any) -> Any:
    """`value` with plain JSON types only (see `print_json`)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    """One scalar as a plain JSON type."""
    import pandas as pd  # deferred: not imported at `kafkabench --help`

    if hasattr(value, "dtype") and hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if pd.api.types.is_scalar(value) and pd.isna(value):  # pd.NA, pd.NaT
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def print_summary(summary: dict, file: Any = None) -> None:
    """Print the headline figures of a run (`summary_lines`).

    Args:
        summary: A run's summary (`RunResult.summary`).
        file: Where to print (default: stdout).
    """
    print("\n".join(summary_lines(summary)), file=file or sys.stdout)


def summary_lines(s: dict) -> list[str]:
    """The lines of `print_summary`: counts and publish figures, then the optional sections.

    Args:
        s: A run's summary; a figure it lacks (or holds as NaN) is shown as "-", a section
            whose figures it lacks is left out.

    Returns:
        The lines, without line ends.
    """
    f = _figure_formatter(s)
    lines = [f"run {s['run_id']} ({s['duration_s']:.1f} s)",
             f"  produced {s['produced']:,}  delivered {s['delivered']:,}  "
             f"failed {s['failed']:,}  consumed {s['consumed']:,}",
             f"  publish   {f('publish_rate')} msg/s  {f('publish_mb_s', '.2f')} MB/s   "
             f"latency ms p50 {f('publish_latency_ms_p50', '.2f')}  p99 {f('publish_latency_ms_p99', '.2f')}  "
             f"p99.9 {f('publish_latency_ms_p99_9', '.2f')}  max {f('publish_latency_ms_max', '.2f')}"]
    for section in (_schedule_lines, _transaction_lines, _loadgen_lines, _consume_lines, _trust_lines,
                    _problem_lines):
        lines += section(s, f)
    return lines


def _figure_formatter(summary: dict) -> Callable[..., str]:
    """`f(key, fmt)`: a summary figure formatted, "-" when missing or NaN."""
    def f(key: str, fmt: str = ",.0f") -> str:
        value = summary.get(key)
        return "-" if value is None or value != value else format(value, fmt)
    return f


def _trust_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """Delivery verification and fault figures, when the run had them."""
    lines = []
    if "verify_acked" in s:
        lines.append(f"  verify    acked {f('verify_acked')}  lost {f('verify_lost')}  "
                     f"duplicated {f('verify_duplicated')}  reordered {f('verify_reordered')}  "
                     f"failed-but-present {f('verify_failed_but_present')}  read {f('verify_read')}")
        if s.get("verify_complete") is False:
            lines.append(f"            INCOMPLETE read-back: {s.get('verify_error')}")
    if "faults" in s:
        lines.append(f"  faults    {f('faults')} actions ({f('faults_failed')} failed)  "
                     f"leader changes {f('leader_changes')}  under-replicated max "
                     f"{f('under_replicated_max')}  offline max {f('offline_max')}")
        lines.append(f"  recovery  outage {f('outage_s', '.2f')} s  first ack {f('first_ack_s', '.2f')} s  "
                     f"back to 90% {f('recovery_s', '.2f')} s")
    return lines


def _transaction_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """What transactional producers committed and aborted, when the run had transactions."""
    if "transactions_committed" not in s:
        return []
    return [f"  transactions committed {f('transactions_committed')}  aborted "
            f"{f('transactions_aborted')} ({f('aborted_messages')} msgs)   commit ms p50 "
            f"{f('transaction_latency_ms_p50', '.2f')}  p99 {f('transaction_latency_ms_p99', '.2f')}"]


def _schedule_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """The schedule a rate-controlled run kept; none at max rate (0) or unmeasured (Locust: NaN)."""
    target = s.get("target_rate")
    if not target or target != target:
        return []
    lines = [f"  schedule  target {f('target_rate')} msg/s, held: {s.get('rate_held')}   "
             f"publish delay us p50 {f('publish_delay_us_p50')}  p99 {f('publish_delay_us_p99')}  "
             f"max {f('publish_delay_us_max')}"]
    if s.get("held_reason"):
        lines.append(f"            {s['held_reason']}")
    return lines


def _loadgen_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """The load generator's CPU, when it was measured."""
    if s.get("loadgen_cpu_s") is None:
        return []
    return [f"  loadgen   CPU {f('loadgen_cpu_s', '.1f')} s ({f('loadgen_cores', '.2f')} cores), "
            f"{f('cpu_us_per_msg', '.2f')} us per message "
            f"(producers {f('producer_cpu_us_per_msg', '.2f')} us)"]


def _consume_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """Consume rate, end-to-end latency and lag, when something was consumed."""
    if not s.get("consumed"):
        return []
    return [f"  consume   {f('consume_rate')} msg/s  {f('consume_mb_s', '.2f')} MB/s   "
            f"end-to-end ms p50 {f('e2e_latency_ms_p50', '.2f')}  p99 {f('e2e_latency_ms_p99', '.2f')}  "
            f"p99.9 {f('e2e_latency_ms_p99_9', '.2f')}  max {f('e2e_latency_ms_max', '.2f')}",
            f"  lag       max {f('lag_max_msgs')} msgs / {f('lag_max_s', '.2f')} s, "
            f"status {s.get('lag_status', '-')}, rebalances {s.get('rebalances', 0)}"]


def _problem_lines(s: dict, f: Callable[..., str]) -> list[str]:
    """Errors, lag sampler errors, warnings and what made the run incomplete."""
    lines = _error_lines(s)
    if s.get("lag_errors"):
        lines.append(f"  lag sampler errors: {s['lag_errors']}, e.g. "
                     f"{'; '.join(s.get('lag_error_messages') or [])[:300]}")
    lines += [f"  warning:  {w}" for w in s.get("warnings") or []]
    if s.get("complete") is False:
        lines.append(f"  INCOMPLETE: {'; '.join(s.get('incomplete') or [])}")
    return lines


def _error_lines(s: dict) -> list[str]:
    """Failures by Kafka error code, with the first messages of each."""
    if not s.get("errors"):
        return []
    return [f"  errors    {s['errors']}"] + [
        f"            {code}: {text.splitlines()[0][:300]}"
        for code, texts in (s.get("error_messages") or {}).items() for text in texts]
