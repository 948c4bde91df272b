"""A run: the plan (`plan`: names and worker specs, pure), the session that carries it out
(`session`: start workers, drain reports, stop; `RunObserver` hooks at start, each second and
at the end), the tally of every report (`tally`: generic, with the parts features register;
`timeline`: the producers' acknowledgement and error timelines), the result
(`result.RunResult`) and its summary (`summary`), the built-in observers (`observers`: lag,
progress bar) and the journal that outlives a dead main process (`journal`).

May import: `kafkabench.core`, `kafkabench.spec`, `kafkabench.measure`, `kafkabench.cluster`,
`kafkabench.engine`.
"""
