"""What people look at: plotly figures from result frames (`plots`: takes DataFrames, returns
a `Figure`, never computes a statistic, never shows) and the self-contained HTML report
(`report`).

May import: everything below `kafkabench.widgets` except the interfaces.
"""
