"""What people look at: plotly figures from result frames (`plots`: takes DataFrames, returns
a `Figure`, never computes a statistic, never shows), readable HTML tables (`html_tables`) and
the self-contained HTML report (`report`).

`readable` and `readable_dict` (frames and dicts of figures as HTML tables) are re-exported here.

May import: everything below `kafkabench.widgets` except the interfaces.
"""

from kafkabench.present.html_tables import ReadableTable, readable, readable_dict

__all__ = ["ReadableTable", "readable", "readable_dict"]
