"""Session-wide embedded Kafka clusters for tests and notebook (nbval) runs.

Clusters start on first use and stop when the session ends. Set KAFKABENCH_TEST_BOOTSTRAP
to run the broker tests against an external cluster instead (3-broker tests then skip).

With pytest-xdist (`make test` runs `-n`), the controlling process starts one 1-broker and two
3-broker clusters before the workers start, and every worker attaches to them by name
(KAFKABENCH_TEST_CLUSTER1, KAFKABENCH_TEST_CLUSTER3, KAFKABENCH_TEST_CLUSTER3B): one set of
broker JVMs for the suite, not one per worker. Tests that kill, pause or restart nodes (the `cluster3` fixture or marker, a
private `own_cluster`) go to one worker, in order (`xdist_group`), and so do the cells of one
notebook, which share a kernel, and the browser tests, which share one JupyterLab.

Notebooks nbval ran are saved executed (outputs, execution counts and widget state) in
KAFKABENCH_EXECUTED_NOTEBOOKS when that is set (`make test` sets it): the browser test opens
those instead of running every notebook a second time.

`run_child` and `explain` are for tests that run a child process: every assertion about a
child shows what it printed (`from conftest import explain, run_child`).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack

import pytest

from kafkabench.cluster.local import LocalCluster

_clusters: dict[int, LocalCluster] = {}
# `with`-owned clusters: their brokers die with this process even if it crashes.
_stack = ExitStack()


# Characters of a child's stdout and of its stderr that `explain` shows (the end of each).
EXPLAIN_CHARS = 6000


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    output = (output or "").rstrip()
    if len(output) > EXPLAIN_CHARS:
        output = f"[... {len(output) - EXPLAIN_CHARS} characters cut ...]\n" + output[-EXPLAIN_CHARS:]
    return output or "(nothing)"


def ctrl_c_works() -> None:
    """A child's `preexec_fn`: Ctrl-C (SIGINT) handled by default, as in a terminal.

    A test suite started in the background by a non-interactive shell (`make test &`)
    inherits SIGINT ignored, and so would every child: Python then installs no
    KeyboardInterrupt handler, and a test sending Ctrl-C would see it ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def explain(proc: subprocess.CompletedProcess | subprocess.TimeoutExpired) -> str:
    """A child's command, exit status, stdout and stderr, for an assertion message.

    Args:
        proc: what `run_child` (or `subprocess.run(..., capture_output=True)`) returned, or
            the `TimeoutExpired` it raised.
    """
    args = proc.args if isinstance(proc, subprocess.CompletedProcess) else proc.cmd
    args = args if isinstance(args, str) else " ".join(str(a) for a in args)
    status = (f"exit status {proc.returncode}" if isinstance(proc, subprocess.CompletedProcess)
              else f"killed after its {proc.timeout:g} s timeout")
    return (f"child `{args[:300]}`: {status}\n"
            f"--- stdout ---\n{_text(proc.stdout)}\n--- stderr ---\n{_text(proc.stderr)}")


def run_child(args: Sequence[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process to its end, capturing its output as text.

    Args:
        args: the command.
        timeout: seconds; a child still running then is killed and the test fails, showing
            what it printed so far.
        **kwargs: more `subprocess.run` arguments (env, cwd, input).

    Returns:
        The CompletedProcess; assert on it with `explain(proc)` as the message.
    """
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(explain(exc), pytrace=False)


#: Shared clusters by key: "1" and "3", and under xdist "3b", a second 3-broker cluster for the
#: node-control tests of SECOND_CLUSTER3_MODULES, so two groups of fault tests run side by side.
CLUSTER_KEYS = {"1": 1, "3": 3, "3B": 3}
SECOND_CLUSTER3_MODULES = frozenset({"test_survive.py", "test_scenarios.py", "test_librdkafka_abort.py"})


def embedded_cluster(brokers: int, key: str | None = None) -> LocalCluster:
    """The session's embedded cluster of `brokers` nodes, started on first use.

    A named cluster, as `kafkabench cluster up --name` makes, so that what finds a user's
    embedded cluster by its bootstrap servers (a fault schedule, `scenario run
    --bootstrap-server`) finds it too; its folder is deleted when the session ends.
    KAFKABENCH_TEST_CLUSTER<key> names one already running (key: "1", "3", "3B").
    """
    key = key or str(brokers)
    if key not in _clusters:
        shared = os.environ.get(f"KAFKABENCH_TEST_CLUSTER{key}")
        if shared:  # started by the xdist controller (or by hand): attach, never stop it here
            _clusters[key] = LocalCluster.attach(shared)
            return _clusters[key]
        cluster = LocalCluster(brokers=brokers, name=f"pytest-{os.getpid()}-{key.lower()}")
        _stack.callback(shutil.rmtree, cluster.base_dir, True)
        _clusters[key] = _stack.enter_context(cluster)
    return _clusters[key]


def _external() -> str | None:
    return os.environ.get("KAFKABENCH_TEST_BOOTSTRAP")


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """Bootstrap servers of a 1-broker cluster (or the external test cluster)."""
    return _external() or embedded_cluster(1).bootstrap_servers


@pytest.fixture
def cluster3(request) -> LocalCluster:
    """The 3-broker embedded cluster, for replication and fault tests, every node running:
    a node an earlier fault test left down or paused is started or resumed first, so one
    failed fault test does not fail every later one.

    KAFKABENCH_TEST_CLUSTER3=N uses a running one, started with `kafkabench cluster up
    --brokers 3 --name N` (development: saves starting one per session). Under xdist the
    tests of SECOND_CLUSTER3_MODULES get the second one (KAFKABENCH_TEST_CLUSTER3B)."""
    if _external():
        pytest.skip("3-broker fault tests need the embedded cluster")
    second = request.node.path.name in SECOND_CLUSTER3_MODULES and os.environ.get("KAFKABENCH_TEST_CLUSTER3B")
    cluster = embedded_cluster(3, "3B" if second else "3")
    _every_node_running(cluster)
    return cluster


def _every_node_running(cluster: LocalCluster) -> None:
    from kafkabench.cluster.nodes import start_node

    cluster.refresh()
    for n in cluster.nodes:
        if n.alive and n.paused:
            cluster.resume(n.id)
        elif not n.alive:
            start_node(cluster, n.id)


def _xdist_controller(config) -> bool:
    """This process hands tests to pytest-xdist workers (it runs none itself)."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    if _xdist_controller(config) and not _external():
        # Before the workers start, so they inherit the names (see the module docstring); the
        # three start side by side.
        from concurrent.futures import ThreadPoolExecutor

        keys = [k for k in CLUSTER_KEYS if not os.environ.get(f"KAFKABENCH_TEST_CLUSTER{k}")]
        with ThreadPoolExecutor(len(keys) or 1) as pool:
            started = list(pool.map(lambda k: LocalCluster(brokers=CLUSTER_KEYS[k],
                                                           name=f"pytest-{os.getpid()}-{k.lower()}"), keys))
            for cluster in started:  # stopped (then their folders deleted) when the session ends
                _stack.callback(shutil.rmtree, cluster.base_dir, True)
                _stack.push(cluster)
            list(pool.map(LocalCluster.__enter__, started))
        for key, cluster in zip(keys, started, strict=True):
            _clusters[key] = cluster
            os.environ[f"KAFKABENCH_TEST_CLUSTER{key}"] = cluster.name


# Tests that kill, pause or restart brokers: one worker per cluster runs them, in order.
NODE_CONTROL_FIXTURES = frozenset({"cluster3", "own_cluster"})


def _xdist_group(item) -> str | None:
    if item.path.suffix == ".ipynb":
        return f"notebook-{item.path.name}"
    if item.get_closest_marker("browser"):  # one JupyterLab and one Chromium, shared
        return "browser"
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("cluster3") or fixtures & NODE_CONTROL_FIXTURES:
        return "node-control-b" if item.path.name in SECOND_CLUSTER3_MODULES else "node-control"
    info = getattr(item, "_fixtureinfo", None)
    if info is not None and any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values()):
        return f"module-{item.path.name}"  # its module-scoped fixture runs once, not once per worker
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns the group into the node id
def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        group = _xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    # Notebooks find their cluster through KAFKABENCH_BOOTSTRAP, which nbval's kernels
    # inherit when they start, after collection.
    if any(item.path.suffix == ".ipynb" for item in items):
        os.environ["KAFKABENCH_BOOTSTRAP"] = _external() or embedded_cluster(1).bootstrap_servers
        os.environ.setdefault("KAFKABENCH_CI", "1")


def pytest_sessionfinish(session, exitstatus) -> None:
    _stack.close()
    _clusters.clear()


def pytest_collection_finish(session) -> None:
    _check_groups_hold(session.config, session.items)


def _check_groups_hold(config, items) -> None:
    """Under xdist's loadgroup, a grouped test's node id carries its group (`...@group`): if
    this pytest no longer lets xdist write it (pytest-xdist#1386), groups silently stop
    holding, and fault tests would kill brokers under each other. Fail instead."""
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    lost = [i.nodeid for i in items if _xdist_group(i) and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup did not group {len(lost)} tests (e.g. {lost[0]}): "
                                f"this pytest and pytest-xdist disagree on node ids (pytest-xdist#1386)")


# ---------------------------------------------------------------- notebooks nbval executed

#: The widget state of a notebook's kernel, as JupyterLab saves it in a notebook's metadata.
WIDGET_STATE = ("__import__('json').dumps(__import__('ipywidgets').Widget.get_manager_state("
                "drop_defaults=True)['state'])")
WIDGET_STATE_TIMEOUT_S = 60
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem) -> None:
    """After a notebook's last cell, before nbval stops its kernel: save it executed."""
    folder = os.environ.get("KAFKABENCH_EXECUTED_NOTEBOOKS")
    if not folder or item.path.suffix != ".ipynb" or not hasattr(item, "test_outputs"):
        return
    notebook = item.parent
    if nextitem is not None and nextitem.parent is notebook:
        return
    cells = [i for i in notebook.session.items if i.parent is notebook]
    if any(getattr(c, "test_outputs", None) is None for c in cells):
        return  # a cell did not run (a failure stopped the notebook, or deselected): nothing to show
    executed = copy.deepcopy(notebook.nb)
    code = [c for c in executed.cells if c.cell_type == "code"]
    for count, (cell, ran) in enumerate(zip(code, cells, strict=True), start=1):
        cell.outputs = ran.test_outputs
        cell.execution_count = count
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count
    state = _widget_state(notebook.kernel)
    if state is not None:
        executed.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "version_major": 2, "version_minor": 0, "state": state}}
        for cell in code:  # a widget closed in the kernel (a finished tqdm bar) shows nothing live
            cell.outputs = [o for o in cell.outputs if _shown(o, state)]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, item.path.name), "w") as f:
        json.dump(executed, f)


def _shown(output, state: dict) -> bool:
    """Whether a saved output still shows: anything but a view of a widget no longer in `state`."""
    view = output.get("data", {}).get(WIDGET_VIEW)
    return view is None or view.get("model_id") in state


def _widget_state(kernel) -> dict | None:
    """Every widget model of the kernel (None: no widgets module, or no answer in time)."""
    if kernel is None or not kernel.is_alive():
        return None
    msg_id = kernel.kc.execute("", store_history=False, user_expressions={"state": WIDGET_STATE})
    try:
        while True:
            reply = kernel.get_message("shell", timeout=WIDGET_STATE_TIMEOUT_S)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        kernel.await_idle(msg_id, WIDGET_STATE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - queue.Empty: the notebook is saved without widget state
        return None
    value = reply["content"].get("user_expressions", {}).get("state", {})
    if value.get("status") != "ok":
        return None
    return json.loads(ast.literal_eval(value["data"]["text/plain"]))
