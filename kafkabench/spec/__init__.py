"""Specs: what a workload, a client profile, a fault schedule, a membership schedule, a
processing stage and a partitioning strategy *are*: data and its validation, nothing that runs.

`workload.Workload` (what load to apply), `profile.ClientProfile` (how the clients are tuned,
librdkafka settings passed through), `faults.Fault`, `membership.MemberEvent`,
`processing.Processing`, `partitioning` strategies. Each loads from YAML and from Python and
refuses bad input with a `ConfigError` naming it, before anything runs.

May import: `kafkabench.core`.
"""
