"""What a capacity sensitivity frame (`kafkabench.analysis.capacity.sensitivity`) says about one
plan output: for each input, the output at the plan (factor 1) and at the smallest and the
largest factor (`tornado`), the inputs that change nothing left out.

Frames in, frames out; `kafkabench.present.plots.capacity_sensitivity` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The columns of `Tornado.bars`.
TORNADO_COLUMNS = ("input", "factor", "base", "output", "value")


@dataclass(frozen=True, slots=True)
class Tornado:
    """The bars of a tornado chart of one plan output.

    Attributes:
        low: The smallest factor of the frame.
        high: The largest factor of the frame.
        bars: One row per (input that changes the output, factor in (low, high)), inputs in
            the frame's order, `low` first: `input`, `factor`, `base` (the output at factor 1),
            `output` (the output at `factor`) and `value` (the input's value at `factor`).
    """

    low: float
    high: float
    bars: pd.DataFrame


def tornado(sens: pd.DataFrame, output: str) -> Tornado:
    """How far one output moves when each input moves to the smallest and the largest factor.

    Args:
        sens: `capacity.sensitivity()`: columns input, factor, value and the plan outputs.
        output: The output column (partitions, brokers, storage_total_gb, ...).

    Returns:
        The `Tornado`. An input is left out when the frame lacks its row at factor 1, at the
        smallest or at the largest factor, or when the output is the same at all three.
    """
    factors = pd.to_numeric(sens["factor"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    low, high = np.nanmin(factors), np.nanmax(factors)
    rows = []
    for name, part in sens.groupby("input", sort=False):
        at = {float(f): (float(v), float(o)) for f, v, o in
              zip(_floats(part["factor"]), _floats(part["value"]), _floats(part[output]))}
        if 1.0 not in at or low not in at or high not in at:
            continue
        base = at[1.0][1]
        if at[low][1] == base and at[high][1] == base:
            continue
        rows += [(str(name), f, base, at[f][1], at[f][0]) for f in (low, high)]
    bars = pd.DataFrame(rows, columns=list(TORNADO_COLUMNS))
    return Tornado(low=float(low), high=float(high), bars=bars)


def _floats(values: pd.Series) -> np.ndarray:
    """A column as floats, NaN for anything that is not a number."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
