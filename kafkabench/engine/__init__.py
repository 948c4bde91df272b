"""The engine: what produces and consumes. Worker pools of threads or processes with one report
channel (`workers`, each worker's reports also on disk: `reportfile`), the producer and the
consumer-group member (`producer`, `consumer`), and the processing stage a member runs
(`stage`: the design source's service patterns).

May import: `kafkabench.core`, `kafkabench.spec`, `kafkabench.measure`.
"""
