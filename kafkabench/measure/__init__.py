"""Measurement maths: latency in HdrHistograms (`stats`), HdrHistogram interval logs
(`hdrlog`), and lag in messages, seconds and Burrow statuses (`lagmath`). Numbers in, numbers
out: no cluster, no threads.

May import: `kafkabench.core`, `kafkabench.spec`.
"""
