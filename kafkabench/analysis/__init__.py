"""Figures computed from a run's frames: recovery per fault (`recovery`), cluster state per
second (`cluster_state`), rebalance events (`rebalance`), capacity planning (`capacity`).
Frames in, frames and numbers out.

May import: `kafkabench.core`, `kafkabench.spec`, `kafkabench.measure`, `kafkabench.run`
(and below).
"""
