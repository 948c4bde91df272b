"""html_tables (`readable`, `readable_dict`) and the table cells of plots.tables: frames as HTML
tables people can read in JupyterLab and in the report. Pure: no broker."""

import html
import math
import re
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from kafkabench.core import contract
from kafkabench.present import ReadableTable, readable, readable_dict
from kafkabench.present.plots import summary_table
from kafkabench.present.plots.tables import format_cell, format_column
from kafkabench.present.report import write_report
from kafkabench.run.result import RunResult

EPOCH_MS = 1765000000123  # 2025-12-06 05:46:40.123 UTC
IN_UTC = "2025-12-06 05:46:40.123"
IN_KOLKATA = "2025-12-06 11:16:40.123"  # UTC+05:30, no summer time


def _headers(styler) -> list[str]:
    """The column names as the table shows them (a header breaks only at its `<wbr>`s)."""
    return [html.unescape(h.replace("<wbr>", ""))
            for h in re.findall(r'class="col_heading level0 col\d+" >(.*?)</th>', styler.to_html())]


def _rows(styler) -> list[dict[str, str]]:
    """The table's body as {header: cell text} per row, as the HTML shows it."""
    page, headers = styler.to_html(), _headers(styler)
    cells: dict[int, dict[str, str]] = {}
    for r, c, text in re.findall(r'<td id="T_\w+_row(\d+)_col(\d+)" class="[^"]*" >(.*?)</td>', page, re.S):
        cells.setdefault(int(r), {})[headers[int(c)]] = html.unescape(text)
    return [cells[r] for r in sorted(cells)]


def _column(styler, name: str) -> list[str]:
    return [row[name] for row in _rows(styler)]


def _right_aligned(styler) -> set[str]:
    """Headers of the columns the table's CSS right-aligns."""
    page, headers = styler.to_html(), _headers(styler)
    return {headers[int(i)] for i in re.findall(r"#T_\w+ td\.col(\d+) \{\s*text-align: right;", page)}


@pytest.fixture
def zone(monkeypatch):
    """Sets the process's local time zone (TZ) for the test, and restores it after."""
    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


# ----------------------------------------------------------------------------- numbers


def test_counts_are_integers_with_thousands_separators():
    df = pd.DataFrame({"acked": [1000, 24000, 3], "partitions_moved": [1.0, 1000.0, math.nan],
                       "duplicates": pd.array([2, None, 2039049], dtype="Int64")})
    t = readable(df)
    assert _column(t, "acked") == ["1,000", "24,000", "3"]
    assert _column(t, "partitions_moved") == ["1", "1,000", ""]  # never "1.0"; NaN blank
    assert _column(t, "duplicates") == ["2", "", "2,039,049"]
    assert ">1.0<" not in t.to_html() and ">nan<" not in t.to_html()


def test_numbers_never_in_scientific_notation_nor_past_four_significant_digits():
    df = pd.DataFrame({"rate": [2.039049e6, 5.000000e00, 1.23e-5, 176.62524663, 1e20, 0.5]})
    cells = _column(readable(df), "rate")
    assert cells == ["2,039,049", "5", "0.0000123", "176.6", "100,000,000,000,000,000,000", "0.5"]
    assert not [c for c in cells if re.search(r"\de[+-]?\d", c)]
    assert "e+" not in readable(df).to_html()


def test_seconds_columns_to_a_tenth_from_ten_seconds_else_a_hundredth():
    df = pd.DataFrame({"drain_s": [10.42, 8.0, math.nan], "lag_s": [0.354, 1.0, 2.5],
                       "full_s": [120.0, 60.0, 30.0], "publish_mb_s": [2.5678, 1.0, 0.5],
                       "outage_s": [10.5, 0.004, 0.0]})
    t = readable(df)
    assert _column(t, "drain_s") == ["10.4", "8.0", ""]
    assert _column(t, "lag_s") == ["0.35", "1.00", "2.50"]
    assert _column(t, "full_s") == ["120", "60", "30"]  # whole seconds: no "120.0"
    assert _column(t, "publish_mb_s") == ["2.568", "1", "0.5"]  # MB/s is a rate, not seconds
    assert _column(t, "outage_s") == ["10.5", "0.004", "0.0"]  # too small for a tenth: 4 digits


def test_milliseconds_and_other_floats_to_four_significant_digits():
    df = pd.DataFrame({"e2e_latency_ms_p99": [1354.23, 0.012346, 111.26], "ratio": [1.0286, 64050.4, 0.1]})
    t = readable(df)
    assert _column(t, "e2e_latency_ms_p99") == ["1,354", "0.01235", "111.3"]
    assert _column(t, "ratio") == ["1.029", "64,050", "0.1"]


def test_infinity_reads_as_infinity():
    assert format_column([math.inf, 1.5], "first_ack_s") == ["∞", "1.50"]


# ----------------------------------------------------------------------------- times


def test_epoch_milliseconds_and_seconds_are_local_times(zone):
    zone("UTC")
    df = pd.DataFrame({"failed_at": [EPOCH_MS, math.nan], "created_at": [EPOCH_MS / 1000, 5.0],
                       "timestamp": [EPOCH_MS, EPOCH_MS + 1000], "retry_at_ms": [EPOCH_MS, EPOCH_MS]})
    t = readable(df)
    assert _column(t, "failed_at") == [IN_UTC, ""]
    assert _column(t, "created_at") == [IN_UTC, "5"]  # a number that is no time stays a number
    assert _column(t, "timestamp") == [IN_UTC, "2025-12-06 05:46:41.123"]
    assert _column(t, "retry_at_ms") == [IN_UTC] * 2
    zone("IST-5:30")  # POSIX TZ: UTC+05:30, local time shown
    assert _column(readable(df), "failed_at") == [IN_KOLKATA, ""]


def test_numbers_in_other_columns_are_not_times(zone):
    zone("UTC")
    assert format_column([EPOCH_MS], "offset") == ["1,765,000,000,123"]
    assert format_column([1.2, 3.0], "at_s") == ["1.20", "3.00"]  # seconds since the start


def test_every_time_column_of_the_result_contract_is_a_time(zone):
    zone("UTC")
    stamp = pd.Timestamp(EPOCH_MS, unit="ms", tz="UTC")
    found = []
    for kind, columns in contract.FRAMES.items():
        for column in columns:
            if column.dtype.startswith("datetime64"):
                series = pd.Series([stamp, pd.NaT], dtype=column.dtype)
                assert format_column(series, column.name) == [IN_UTC, ""], (kind, column.name)
                found.append(column.name)
            if "Unix time" in column.description:
                assert format_column([EPOCH_MS / 1000, math.nan], column.name) == [IN_UTC, ""], (kind, column.name)
                found.append(column.name)
    # `failed_at` as the dead-letter header carries it, before it becomes a datetime
    assert format_column([EPOCH_MS], "failed_at") == [IN_UTC]
    assert {"time", "wall", "failed_at"} <= set(found)


def test_utc_datetimes_in_local_time_and_naive_ones_as_they_are(zone):
    zone("IST-5:30")
    aware = pd.Series(pd.to_datetime([EPOCH_MS], unit="ms", utc=True))
    assert format_column(aware, "time") == [IN_KOLKATA]
    naive = pd.Series(pd.to_datetime(["2026-12-07 23:07:26.123456"]))
    assert format_column(naive, "time") == ["2026-12-07 23:07:26.123"]


# ----------------------------------------------------------------------------- other values


def test_bools_dicts_lists_and_bytes_as_text():
    df = pd.DataFrame({
        "passed": [True, False],
        "failed_checks": [["lost == 0", "duplicated == 0"], np.array(["x"], dtype=object)],
        "headers": [{"error": "poison", "retry_count": np.int64(2), "lag_s": np.float64(0.354)}, {}],
        "key": [b"order-17", b"\xff\x00"]})
    t = readable(df)
    assert _column(t, "passed") == ["yes", "no"]
    assert _column(t, "failed_checks") == ["lost == 0, duplicated == 0", "x"]
    assert _column(t, "headers") == ["error: poison, retry_count: 2, lag_s: 0.35", ""]
    assert _column(t, "key") == ["order-17", "0xff00"]
    assert format_cell(None) == format_cell(pd.NA) == format_cell(math.nan) == ""


def test_numpy_scalars_never_show_their_type():
    values = pd.Series([np.float64(1.0286), np.int64(24000), np.bool_(True), None], dtype=object)
    t = readable(pd.DataFrame({"figure": values}))
    assert _column(t, "figure") == ["1.029", "24,000", "yes", ""]
    assert not re.search(r"np\.|float64|int64|bool_", "".join(_column(t, "figure")))


def test_text_is_html_escaped():
    t = readable(pd.DataFrame({"error": ["<b>bad</b> & worse"], "a<b": [1]}))
    page = t.to_html()
    assert "<b>bad" not in page and "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in page
    assert "a&lt;b" in page


# ----------------------------------------------------------------------------- layout


def test_key_columns_first_then_the_named_columns():
    df = pd.DataFrame({"acked": [1], "lost": [0], "scenario": ["s"], "passed": [True], "variant": ["v"]})
    assert _headers(readable(df, key="scenario")) == ["scenario", "acked", "lost", "passed", "variant"]
    assert _headers(readable(df, key=["variant", "scenario"])) == ["variant", "scenario", "acked", "lost", "passed"]
    assert _headers(readable(df, key="scenario", columns=["passed", "scenario", "lost"])) == \
        ["scenario", "passed", "lost"]


def test_a_missing_column_is_an_error_naming_it_and_the_frames_columns():
    df = pd.DataFrame({"acked": [1], "scenario": ["s"]})
    with pytest.raises(ValueError, match=r"\['nope'\].*\['acked', 'scenario'\]"):
        readable(df, columns=["acked", "nope"])
    with pytest.raises(ValueError, match="variant"):
        readable(df, key="variant")


def test_text_left_and_unwrapped_numbers_right():
    df = pd.DataFrame({"topic": ["kb-dlq.patterns-retry-topics-20261207-230726-abcd"], "count": [3],
                       "drain_s": [1.5], "passed": [True], "when": pd.to_datetime([EPOCH_MS], unit="ms", utc=True),
                       "mixed": pd.Series([np.float64(1.5)], dtype=object)})
    t = readable(df)
    assert _right_aligned(t) == {"count", "drain_s", "when", "mixed"}
    page = t.to_html()
    assert re.search(r"#T_\w+ +td \{[^}]*white-space: nowrap;[^}]*text-align: left;", page)
    assert "table-layout: auto" in page  # JupyterLab's tables are `table-layout: fixed`


def test_long_text_is_cut_only_when_asked():
    topic = "kb-dlq." + "x" * 60
    df = pd.DataFrame({"topic": [topic], "failed_at": [EPOCH_MS], "value_bytes": [123456789]})
    assert _column(readable(df), "topic") == [topic]
    cut = readable(df, max_text=12)
    assert _column(cut, "topic") == ["kb-dlq.xxxx…"] and len(_column(cut, "topic")[0]) == 12
    assert _column(cut, "value_bytes") == ["123,456,789"]  # numbers and times are never cut
    assert len(_column(cut, "failed_at")[0]) == len(IN_UTC)
    with pytest.raises(ValueError, match="max_text"):
        readable(df, max_text=0)


def test_the_index_is_shown_only_when_it_means_something():
    df = pd.DataFrame({"acked": [1000, 2000, 3000]})
    assert "row_heading" not in readable(df).to_html()  # a RangeIndex
    assert "row_heading" not in readable(df[df["acked"] > 1000]).to_html()  # rows left after a filter
    by_t = readable(df.set_axis(pd.Index([0, 1, 2], name="t")))
    assert re.findall(r'class="row_heading level0 row\d+" >(.*?)</th>', by_t.to_html()) == ["0", "1", "2"]
    named = readable(df.set_axis(["leader-kill", "pause", "restart"]))
    assert "leader-kill" in named.to_html() and "row_heading" in named.to_html()


def test_the_table_scrolls_sideways_in_its_own_box_in_jupyterlab():
    wide = pd.DataFrame({f"column_{i}": [1.5] for i in range(30)})
    t = readable(wide, title="thirty columns")
    assert isinstance(t, ReadableTable)
    shown = t._repr_html_()  # what JupyterLab renders
    assert re.match(r'<div class="kb-readable" style="overflow-x: auto;[^"]*">\s*<style', shown)
    assert shown.rstrip().endswith("</table>\n</div>") and "<caption>thirty columns</caption>" in shown
    assert t.html() == shown


def test_multiindex_columns_are_written_by_their_last_level_name():
    df = pd.DataFrame([[10.42, 0.354]], columns=pd.MultiIndex.from_tuples([("drain", "p50_s"), ("drain", "p99_s")]))
    assert re.findall(r'<td[^>]*>(.*?)</td>', readable(df).to_html()) == ["10.4", "0.35"]


def test_a_series_is_one_column():
    t = readable(pd.Series([1.0, 2.0], name="lag_msgs"))
    assert _headers(t) == ["lag_msgs"] and _column(t, "lag_msgs") == ["1", "2"]


# ----------------------------------------------------------------------------- readable_dict


def test_readable_dict_writes_each_value_by_its_type_and_name(zone):
    zone("UTC")
    figures = {"delivered": np.int64(24000), "ratio": np.float64(1.0286), "warnings": ["a", "b"],
               "drain_s": np.float64(10.42), "failed_at": EPOCH_MS, "rate_held": np.bool_(True),
               "errors": {"_MSG_TIMED_OUT": np.int64(2)}, "metrics_url": None}
    t = readable_dict(figures, title="run")
    assert _headers(t) == ["quantity", "value"]
    rows = {row["quantity"]: row["value"] for row in _rows(t)}
    assert rows == {"delivered": "24,000", "ratio": "1.029", "warnings": "a, b", "drain_s": "10.4",
                    "failed_at": IN_UTC, "rate_held": "yes", "errors": "_MSG_TIMED_OUT: 2",
                    "metrics_url": ""}
    page = t._repr_html_()
    assert "np.float64" not in page and "np.int64" not in page and "overflow-x: auto" in page
    # numbers right-aligned row by row, text left
    right = set(re.findall(r"#T_\w+ td\.col1\.row(\d+) \{\s*text-align: right;", page))
    assert right == {"0", "1", "3", "4"}


# ----------------------------------------------------------------------------- the same cells elsewhere


def test_summary_table_writes_cells_as_readable_does():
    df = pd.DataFrame({"run_id": ["a", "b"], "acked": [1000.0, 2.0], "drain_s": [10.42, 8.0],
                       "rate_held": [True, False]})
    cells = [list(c) for c in summary_table(df).data[0].cells.values]
    assert cells == [_column(readable(df), c) for c in df.columns]
    one = summary_table(df.head(1), transpose=True).data[0]
    assert isinstance(one, go.Table) and list(one.cells.values[1]) == ["a", "1,000", "10.4", "yes"]


def _run_with_recovery() -> RunResult:
    t = pd.Index([0, 1, 2], name="t")
    timeseries = pd.DataFrame({"produced": [1000] * 3, "delivered": [1000] * 3, "failed": [0] * 3,
                               "consumed": [0] * 3, "backlog": [0] * 3}, index=t)
    summary = {"name": "faulted", "run_id": "faulted-1", "started_at": "2026-11-26T10:00:00+00:00",
               "duration_s": 30.0, "publish_rate": 2.039049e6, "publish_mb_s": 2.5678, "errors": {},
               "failed": 0, "workload.partitions": 3}
    result = RunResult(summary=summary, timeseries=timeseries, histograms={})
    result.recovery = pd.DataFrame({
        "fault": [0], "action": ["kill"], "node": pd.array([1], dtype="Int64"), "t_s": [4.0],
        "first_ack_s": [math.inf], "outage_s": [12.345], "recovery_s": [0.354], "pre_rate": [2039049.0],
        "publish_latency_ms_max": [1354.23], "e2e_latency_ms_p99": [math.nan], "failed": [3],
        "errors": ["_MSG_TIMED_OUT:3"]})
    return result


def test_report_tables_are_readable_tables(tmp_path):
    page = write_report(_run_with_recovery(), tmp_path / "r.html").read_text(encoding="utf-8")
    tables = re.findall(r'<div class="wide"><style type="text/css">.*?</table>\s*</div>', page, re.S)
    assert len(tables) == 2  # the summary of runs, the recovery per fault
    summary, recovery = (re.sub(r"<[^>]+>", "|", t) for t in tables)
    assert "|2,039,049|" in summary and "|30|" in summary and "|2.568|" in summary
    for cell in ("|kill|", "|∞|", "|12.3|", "|0.35|", "|1,354|", "|2,039,049|"):
        assert cell in recovery, cell
    assert "e+06" not in page and "2039049.0" not in page
    assert "white-space: nowrap" in tables[0]


def test_wrap_lets_named_text_columns_wrap_and_refuses_unknown_ones():
    frame = pd.DataFrame({"name": ["lag"], "expr": ["sum by (group) (kafka_consumergroup_group_lag) > 10000"]})
    html = readable(frame, key="name", wrap=["expr"]).html()
    assert re.search(r"td\.col1 \{[^}]*white-space: normal;[^}]*max-width: 60ch", html)
    assert "max-width: 60ch" not in readable(frame, key="name").html()
    with pytest.raises(ValueError, match="wrap=\\['query'\\]"):
        readable(frame, wrap=["query"])


def test_headers_break_only_after_underscores_and_dots():
    html_text = readable(pd.DataFrame({"partitions_moved": [1], "producer.linger.ms": [5], "a<b": [1]})).html()
    assert ">partitions_<wbr>moved</th>" in html_text and ">producer.<wbr>linger.<wbr>ms</th>" in html_text
    assert ">a&lt;b</th>" in html_text  # escaped, no break inserted
    assert re.search(r"thead th \{[^}]*white-space: normal", html_text)


def test_dict_values_wrap_so_a_long_warning_does_not_widen_the_table():
    html_text = readable_dict({"warnings": ["broker metrics: " + "x" * 200]}).html()
    assert re.search(r"td\.col1 \{[^}]*white-space: normal;[^}]*max-width: 60ch", html_text)


def test_the_cli_prints_tables_by_the_same_rules():
    from kafkabench.cli.output import text_table

    text = text_table(pd.DataFrame({"producer.acks": ["1", "all"], "lag_max_msgs": [6076.0, 7295.0],
                                    "publish_rate": [4995.0, 4993.02], "e2e_latency_ms_p99": [24.03, 1e-5]}))
    assert "6,076" in text and "6,076.00" not in text and "4,993" in text
    assert "e-05" not in text and "0.00001" in text
