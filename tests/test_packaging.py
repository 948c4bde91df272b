"""The package as users install it (a wheel, not the checkout); environment.yml in step with
pyproject.toml; the docker compose file consistent with itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

import kafkabench

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
PACKAGE = ROOT / "kafkabench"
# The Jupyter stack: only kafkabench.widgets (and the notebooks) may need it.
JUPYTER = ("ipywidgets", "IPython", "ipykernel", "jupyterlab", "jupyter_server", "jupyter_client",
           "notebook", "nbformat", "comm")


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(*extras: str) -> dict[str, str]:
    reqs = PROJECT["dependencies"] + [r for e in extras for r in PROJECT["optional-dependencies"][e]]
    return {_name(r): r.replace(" ", "") for r in reqs}


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_reqs = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    # What `make run` / `make test` install: the package with its jupyter and dev extras.
    assert pip_reqs == _requirements("jupyter", "dev")
    assert f"python{PROJECT['requires-python']}" in conda
    assert "openjdk>=17" in conda and "maven" in conda


def test_makefile_installs_the_extras_and_checks_the_same_python():
    makefile = (ROOT / "Makefile").read_text()
    assert "'.[jupyter,dev]'" in makefile and "bench]'" in makefile
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", PROJECT["requires-python"]).groups()
    assert f"sys.version_info >= ({minimum[0]}, {minimum[1]})" in makefile


def test_version_lives_in_one_place():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "kafkabench.__version__"}


def test_core_dependencies_leave_out_the_jupyter_stack():
    core = set(_requirements())
    assert not core & {"jupyterlab", "ipywidgets", "ipykernel"}
    assert {"numpy", "plotly", "locust", "pandas"} <= core
    assert {"jupyterlab", "ipywidgets"} <= set(_requirements("jupyter"))


def test_every_package_data_pattern_matches_files():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["kafkabench"]
    for pattern in patterns:
        assert [p for p in PACKAGE.glob(pattern) if p.is_file()], f"{pattern!r} matches nothing"
    # The checkout keeps `locust -f locustfiles/...` and `workloads/...` working.
    for folder in ("locustfiles", "workloads"):
        assert (ROOT / folder).is_symlink() and (ROOT / folder).resolve() == PACKAGE / folder


def _blocked_jupyter() -> str:
    return (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {JUPYTER!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked by the test)')\n"
        "sys.meta_path.insert(0, Block())\n"
    )


def test_cli_and_every_module_but_widgets_import_without_the_jupyter_stack(tmp_path):
    # What a Locust worker machine or a CLI-only install has: `pip install kafkabench`, no extras.
    code = _blocked_jupyter() + (
        "import importlib, pkgutil, contextlib, io\n"
        "import kafkabench\n"
        "for m in pkgutil.iter_modules(kafkabench.__path__):\n"
        "    if m.name != 'widgets':\n"
        "        importlib.import_module(f'kafkabench.{m.name}')\n"
        "from kafkabench.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert 'usage: kafkabench' in out.getvalue(), out.getvalue()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


# --- the wheel ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (the build leaves build/ and egg-info behind)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "kafkabench", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: offline, with the setuptools of the dev extra.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (path,) = out.glob("kafkabench-*.whl")
    return path


def _data_files(folder: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (PACKAGE / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_wheel_carries_locustfiles_workloads_and_typing_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    locustfiles, workloads = _data_files("locustfiles"), _data_files("workloads")
    assert "kafkabench/locustfiles/producer_load.py" in locustfiles <= names
    assert {"kafkabench/workloads/quickstart.yaml",
            "kafkabench/workloads/omb/driver-kafka/kafka-latency.yaml",
            "kafkabench/workloads/omb/payload/payload-100b.data"} <= workloads <= names
    assert "kafkabench/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "notebooks/"))]


def test_wheel_metadata(wheel):
    z = zipfile.ZipFile(wheel)
    dist = f"kafkabench-{kafkabench.__version__}.dist-info"
    meta = z.read(f"{dist}/METADATA").decode()
    assert f"\nVersion: {kafkabench.__version__}\n" in meta
    assert "\nLicense-Expression: Apache-2.0\n" in meta and "\nRequires-Python: >=3.11\n" in meta
    assert "Apache License" in z.read(f"{dist}/licenses/LICENSE").decode()[:200]
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [line for line in core if re.search(r"ipywidgets|jupyterlab|ipykernel", line)], core


def test_installed_wheel_finds_its_locustfiles_and_workloads_from_any_folder(wheel, tmp_path):
    # A non-editable install outside the checkout, run from an unrelated folder.
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = (
        "import json, importlib.resources\n"
        "import kafkabench\n"
        "from kafkabench.spec.profile import load_profile\n"
        "from kafkabench.loadtest.locust_results import locustfile_path\n"
        "from kafkabench.spec.workload import load_workload\n"
        "omb = load_workload('workloads/omb/1-topic-6-partition-100b.yaml')\n"
        "print(json.dumps({\n"
        "    'package': kafkabench.__file__,\n"
        "    'locustfile': str(locustfile_path('producer_load')),\n"
        "    'quickstart': load_workload('workloads/quickstart.yaml').name,\n"
        "    'bare': load_workload('quickstart').name,\n"
        "    'payload': omb.payload,\n"
        "    'driver': load_profile('workloads/omb/driver-kafka/kafka-latency.yaml').name,\n"
        "    'typed': (importlib.resources.files('kafkabench') / 'py.typed').is_file(),\n"
        "}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    inside = target / "kafkabench"
    assert Path(got["package"]).parent == inside, got
    assert Path(got["locustfile"]) == inside / "locustfiles" / "producer_load.py", got
    assert Path(got["payload"]) == inside / "workloads" / "omb" / "payload" / "payload-100b.data"
    assert got["quickstart"] == got["bare"] == "quickstart" and got["driver"] == "kafka-latency"
    assert got["typed"] is True
    # The console script of the installed wheel.
    proc = subprocess.run([str(target / "bin" / "kafkabench"), "--help"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage: kafkabench" in proc.stdout, proc.stderr[-3000:]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())


def _env(service: dict) -> dict:
    return {k: str(v) for k, v in service["environment"].items()}


def test_compose_uses_pinned_kafka_version():
    brokers = {k: v for k, v in _compose()["services"].items() if k.startswith("kafka-") and
               k != "kafka-ui"}
    assert len(brokers) == 3
    for svc in brokers.values():
        assert svc["image"] == f"apache/kafka:{kafkabench.KAFKA_VERSION}"


def test_compose_listeners_ports_and_quorum_are_consistent():
    services = _compose()["services"]
    brokers = {k: v for k, v in services.items() if re.fullmatch(r"kafka-\d", k)}
    node_ids = set()
    voters = None
    for name, svc in brokers.items():
        env = _env(svc)
        node_ids.add(int(env["KAFKA_NODE_ID"]))
        listeners = dict(re.match(r"(\w+)://([^:]*):(\d+)", x).group(1, 3)
                         for x in env["KAFKA_LISTENERS"].split(","))
        advertised = {m.group(1): (m.group(2), m.group(3)) for m in
                      (re.match(r"(\w+)://([^:]*):(\d+)", x) for x in
                       env["KAFKA_ADVERTISED_LISTENERS"].split(","))}
        protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert set(listeners) <= set(protocols)
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
        # The host reaches the EXTERNAL listener: published on the same port it advertises.
        host, port = advertised["EXTERNAL"]
        assert host == "localhost" and port == listeners["EXTERNAL"]
        assert f"{port}:{port}" in svc["ports"]
        assert advertised["INTERNAL"][0] == svc["hostname"] == name
        voters = voters or env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert f"{env['KAFKA_NODE_ID']}@{name}:{listeners['CONTROLLER']}" in voters.split(",")
    assert node_ids == {1, 2, 3}
    ui = _env(services["kafka-ui"])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    assert sorted(ui.split(",")) == sorted(f"{n}:9092" for n in brokers)


def test_compose_cluster_id_is_a_kafka_uuid():
    import base64

    env = _env(_compose()["services"]["kafka-1"])
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
