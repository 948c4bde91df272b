"""The core: what every layer may use, importing nothing of kafkabench's.

Errors (`errors`), units (`units`), the result contract (`contract`: every summary key and
frame column with dtype and unit), shared checks of user input (`checks`), the librdkafka
logger every client gets (`log`), the one background-thread helper (`threads`), and
sidecars: probes and calls in supervised child processes (`sidecar`).

May import: the standard library and third-party packages only.
"""
