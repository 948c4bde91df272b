"""kafkabench: observe and load-test Apache Kafka from Python and JupyterLab.

The package is layered; each subpackage's docstring says what lives there and what it may
import (DESIGN.md draws the layers, import-linter enforces them in `make test`):

    cli, widgets                      the interfaces
    present                           plots and the HTML report (DataFrames in, figures out)
    experiments, loadtest             sweeps, scenarios, experiments; Locust
    runner                            `run_workload`, `consume_topic`: the composition root
    results                           saved runs: save, load (a dead run's journal recovered), compare
    faults, verify, groups,           features that plug into a run as observers
      patterns, observe
    analysis                          figures computed from frames (recovery, capacity, rebalances)
    run                               plan, session, tally, summary, observers, journal, RunResult
    engine, cluster                   workers, producer, consumer, processing stage; the cluster and its clients
    measure                           latency histograms, interval logs, lag maths
    spec                              what a workload, profile, fault or stage is: data and validation
    core                              errors, units, the result contract, sidecars

The module paths of the flat package before it (`kafkabench.session`, `kafkabench.plots`,
`kafkabench.processing`, ...) still import: `_MOVED` maps each to its new home.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: The one place the version is set: pyproject.toml reads it (`[tool.setuptools.dynamic]`).
__version__ = "0.1.0"

#: The one place the Apache Kafka version is pinned (broker, tools and docker image).
KAFKA_VERSION = "4.4.0"

#: Modules of the flat package (up to kafkabench 0.1's layout) -> where they live now. Old
#: imports keep working: `import kafkabench.session` is `kafkabench.run.session`, the same
#: module object.
_MOVED: dict[str, str] = {
    "admin": "kafkabench.cluster.admin",
    "brokermetrics": "kafkabench.observe.brokermetrics",
    "capacity": "kafkabench.analysis.capacity",
    "clusterstate": "kafkabench.faults.clusterstate",
    "config": "kafkabench.spec.profile",
    "consumer": "kafkabench.engine.consumer",
    "contract": "kafkabench.core.contract",
    "errors": "kafkabench.core.errors",
    "hdrlog": "kafkabench.measure.hdrlog",
    "install": "kafkabench.cluster.install",
    "journal": "kafkabench.run.journal",
    "lag": "kafkabench.cluster.lag",
    "loadshapes": "kafkabench.loadtest.shapes",
    "locust_results": "kafkabench.loadtest.locust_results",
    "locust_user": "kafkabench.loadtest.locust_user",
    "membership": "kafkabench.groups",
    "metrics": "kafkabench.observe.metrics",
    "observers": "kafkabench.run.observers",
    "offsets": "kafkabench.experiments.offsets",
    "orders": "kafkabench.loadtest.orders",
    "partitioning": "kafkabench.spec.partitioning",
    "plan": "kafkabench.run.plan",
    "plots": "kafkabench.present.plots",
    "processing": "kafkabench.patterns",
    "producer": "kafkabench.engine.producer",
    "quickstart": "kafkabench.experiments.quickstart",
    "recovery": "kafkabench.analysis.recovery",
    "report": "kafkabench.present.report",
    "scenarios": "kafkabench.experiments.scenarios",
    "session": "kafkabench.run.session",
    "sidecar": "kafkabench.core.sidecar",
    "stats": "kafkabench.measure.stats",
    "summary": "kafkabench.run.summary",
    "sweep": "kafkabench.experiments.sweep",
    "units": "kafkabench.core.units",
    "workers": "kafkabench.engine.workers",
    "workload": "kafkabench.spec.workload",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `kafkabench.<old name>` as the module it moved to (the same object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        prefix, _, name = fullname.partition(".")
        if prefix == "kafkabench" and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def __init__(self) -> None:
        self._specs: dict[str, object] = {}

    def create_module(self, spec):
        module = importlib.import_module(_MOVED[spec.name.partition(".")[2]])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The import system set the alias's spec on the real module: give it its own back.
        module.__spec__ = self._specs.get(module.__name__, module.__spec__)


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def _notebook_warnings() -> None:
    """In a Jupyter kernel, warnings as one plain line each instead of a stderr box."""
    from kafkabench.core.log import in_jupyter_kernel, warnings_as_lines

    if in_jupyter_kernel():
        warnings_as_lines()


_notebook_warnings()
