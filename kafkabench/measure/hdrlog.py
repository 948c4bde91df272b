"""Per-second latency histograms as HdrHistogram interval logs, one file per histogram.

A run keeps every second's HdrHistogram; `write_interval_logs` writes them with hdrh's
`HistogramLogWriter` (the format of HdrHistogram's HistogramLogProcessor and OMB's
`*.hgrm` tooling), so p99.9 per second, or OMB-style 10 s windows, can be computed later
with any HdrHistogram port. Values are in microseconds; the log's max column is in ms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from kafkabench.core.errors import KafkabenchError
from kafkabench.measure.stats import LatencyRecorder

#: Folder of a saved run that holds `<histogram name>.hlog` files.
INTERVAL_DIR = "intervals"
SUFFIX = ".hlog"
_US_PER_MS = 1000.0
_LINE = re.compile(r"^(?:Tag=[^,]*,)?([\d.]+),([\d.]+),([\d.]+),(\S+)$")
_START = re.compile(r"^#\[StartTime: *([\d.]+)")


def write_interval_logs(folder: str | Path, intervals: Mapping[tuple[int, str], LatencyRecorder],
                        t0_wall: float) -> list[Path]:
    """Write one interval log per histogram name.

    Args:
        folder: Where to write (created when missing).
        intervals: {(second of the run, histogram name): the histogram of that second}.
        t0_wall: The run's start (epoch seconds): the logs' StartTime; interval timestamps
            are seconds since it.

    Returns:
        The files written, one per histogram name that has data.
    """
    folder = Path(folder)
    by_name: dict[str, list[tuple[int, LatencyRecorder]]] = {}
    for (t, name), recorder in intervals.items():
        if recorder.count:
            by_name.setdefault(name, []).append((t, recorder))
    written = []
    for name, seconds in sorted(by_name.items()):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}{SUFFIX}"
        with path.open("w") as f:
            writer = HistogramLogWriter(f)
            writer.output_comment(f"kafkabench {name}: per-second latency in microseconds")
            writer.output_log_format_version()
            # hdrh's output_start_time() cannot format its own date: write the line it means.
            start = datetime.fromtimestamp(t0_wall, UTC).isoformat(sep=" ")
            f.write(f"#[StartTime: {t0_wall:.3f} (seconds since epoch), {start}]\n")
            writer.output_legend()
            for t, recorder in sorted(seconds, key=lambda item: item[0]):
                histogram = HdrHistogram.decode(recorder.encode())
                writer.output_interval_histogram(histogram, start_time_stamp_sec=float(t) or 1e-9,
                                                 end_time_stamp_sec=float(t + 1),
                                                 max_value_unit_ratio=_US_PER_MS)
        written.append(path)
    return written


def read_interval_log(path: str | Path) -> tuple[float, list[tuple[float, LatencyRecorder]]]:
    """Read a log written by `write_interval_logs` (or any HdrHistogram interval log).

    Returns:
        (StartTime in epoch seconds or NaN, [(interval start s, histogram), ...]).

    Raises:
        KafkabenchError: The file is missing or a line is not an interval histogram.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KafkabenchError(f"cannot read interval log {path}: {exc}") from exc
    start, out = math.nan, []
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            match = _START.match(line)
            if match:
                start = float(match.group(1))
            continue
        if line.startswith('"StartTimestamp"') or not line.strip():
            continue
        match = _LINE.match(line.strip())
        try:
            if match is None:
                raise ValueError("not 'start,length,max,histogram'")
            recorder = LatencyRecorder.decode(match.group(4))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a corrupt file
            raise KafkabenchError(f"interval log {path}, line {number}: {exc}") from None
        # A first interval at 0 s is written as 1e-9: hdrh's writer treats 0 as "unset".
        out.append((round(float(match.group(1))), recorder))
    return start, out


def window_percentiles(intervals: Iterable[tuple[float, LatencyRecorder]], *, window_s: int = 1,
                       percentiles: Iterable[str] = ("p50", "p99", "p99_9", "max"),
                       unit: str = "ms") -> pd.DataFrame:
    """Latency percentiles per window of `window_s` seconds (OMB reports 10 s windows).

    Args:
        intervals: `read_interval_log(...)[1]`.
        window_s: Window length in whole seconds.
        percentiles: `LatencyRecorder.percentiles` keys.
        unit: "us", "ms" or "s".

    Returns:
        Index t (window start, s); columns count and the percentiles.
    """
    if window_s < 1:
        raise ValueError(f"window_s={window_s!r}: expected a whole number of seconds >= 1")
    windows: dict[int, LatencyRecorder] = {}
    for t, recorder in intervals:
        start = int(t // window_s) * window_s
        windows.setdefault(start, LatencyRecorder()).merge(recorder)
    keys = tuple(percentiles)
    rows = {t: {"count": h.count, **h.percentiles(unit, keys)} for t, h in sorted(windows.items())}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["count", *keys])
    frame.index.name = "t"
    return frame
