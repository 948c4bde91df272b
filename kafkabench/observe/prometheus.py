"""A real Prometheus server scraping the brokers' JMX exporters and kafkabench's endpoints.

`observe_up()` starts Debian's `prometheus` binary (`make observe` installs it) detached, with
a generated config (jobs `kafka-brokers` and `kafkabench`) and the packaged alert rules
(`kafkabench/prometheus/alerts.yml`); a state file lets `observe_status()`, `add_targets()`
and `observe_down()` find it from any later process. `query()` and `alerts()` read its HTTP API.

The metric names the alert rules and the Grafana dashboard use live only in those files;
`metric_names_used()` extracts them from the PromQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import yaml

from kafkabench.cluster.install import kafkabench_home
from kafkabench.cluster.local import _free_port, _port_in_use, _tail
from kafkabench.core.errors import ClusterError, ConfigError, NoClusterError

BROKER_JOB = "kafka-brokers"
CLIENT_JOB = "kafkabench"
JOBS = (BROKER_JOB, CLIENT_JOB)
DEFAULT_PORT = 9090
DEFAULT_LAG_THRESHOLD = 10000
LAG_ALERT = "KafkaConsumerLagHigh"
#: Where the packaged rules live (package data); docker/prometheus/alerts.yml is a copy.
ALERTS_FILE = resources.files("kafkabench") / "prometheus" / "alerts.yml"
#: The Grafana dashboard, in a source checkout only (docker/ is not package data).
DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards" / "kafkabench.json"
STATE_FILE = "state.json"
# Debian's 2.42 on 2 shared cores is ready in ~1 s; 30 s means it will not be.
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0
RETENTION = "7d"
INSTALL_HINT = ("`make observe` installs Debian's `prometheus` package (with promtool; needs root and "
                "apt-get), or put a Prometheus 2.x `prometheus` binary on PATH or in $KAFKABENCH_PROMETHEUS")

# Series Prometheus makes itself, never found in a scrape of an exporter.
SYNTHETIC_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
                              "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                              "scrape_series_added"})
_PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                           "group_left", "group_right", "inf", "nan", "Inf", "NaN", "atan2"})
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Servers this process started: reaped by `observe_status` once stopped (maybe by another process).
_children: list[subprocess.Popen] = []


@dataclass(frozen=True, slots=True)
class ObserveState:
    """A Prometheus started by `observe_up`, as recorded in its state file.

    Attributes:
        pid: the server's process id.
        port: its HTTP port on 127.0.0.1.
        home: the folder holding config, rules, data, log and this state.
        targets: `{job: [host:port, ...]}` it scrapes.
        lag_threshold: the messages threshold of `KafkaConsumerLagHigh` in its rules.
        alert_for_s: every rule's `for` when overridden, else None (the file's).
        scrape_interval_s: the scrape and rule evaluation interval.
        started_at: Unix time it started.
    """

    pid: int
    port: int
    home: str
    targets: dict[str, list[str]] = field(default_factory=dict)
    lag_threshold: float = DEFAULT_LAG_THRESHOLD
    alert_for_s: float | None = None
    scrape_interval_s: float = 1.0
    started_at: float = 0.0

    @property
    def url(self) -> str:
        """The server's base URL (web UI and HTTP API)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        """The generated prometheus.yml."""
        return Path(self.home) / "prometheus.yml"

    @property
    def rules_file(self) -> Path:
        """The rendered alert rules."""
        return Path(self.home) / "alerts.yml"

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr."""
        return Path(self.home) / "prometheus.log"

    @property
    def running(self) -> bool:
        """True while the recorded process is a live Prometheus (a reused pid is not)."""
        try:
            proc = psutil.Process(self.pid)
            return (proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - self.started_at) < 1
                    and f"--config.file={self.config_file}" in proc.cmdline())
        except (psutil.Error, OSError):
            return False


def observe_home() -> Path:
    """The default folder of `observe_up`'s server: `<kafkabench home>/prometheus`."""
    return kafkabench_home() / "prometheus"


def prometheus_binary() -> str | None:
    """The Prometheus server binary: `$KAFKABENCH_PROMETHEUS`, else `prometheus` on PATH, else None.

    `missing_reason("prometheus")` says why it is None.
    """
    return _binary("prometheus")


def promtool_binary() -> str | None:
    """`promtool` next to the Prometheus binary or on PATH, else None."""
    return _binary("promtool")


def _binary(name: str) -> str | None:
    env = os.environ.get("KAFKABENCH_PROMETHEUS")
    if env:
        path = Path(env) if name == "prometheus" else Path(env).with_name(name)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        if name == "prometheus":
            return None
    return shutil.which(name)


def missing_reason(name: str = "prometheus") -> str:
    """Why `prometheus_binary()` (or `promtool_binary()`) found nothing, and how to fix it."""
    env = os.environ.get("KAFKABENCH_PROMETHEUS")
    where = f"$KAFKABENCH_PROMETHEUS={env!r} is not an executable file" if env and name == "prometheus" \
        else f"no `{name}` on PATH"
    return f"{where}: {INSTALL_HINT}"


def require_prometheus() -> str:
    """The Prometheus binary's path.

    Raises:
        ConfigError: none found; the message says `make observe` installs it.
    """
    path = prometheus_binary()
    if path is None:
        raise ConfigError(missing_reason("prometheus"))
    return path


def _host_port(target: str, what: str) -> str:
    """`host:port` from `host:port` or an `http://host:port/metrics` URL."""
    text = target.strip()
    parsed = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("http", "") or not parsed.hostname or port is None \
            or parsed.path not in ("", "/", "/metrics") or parsed.query:
        raise ConfigError(f"{what} target {target!r} is not host:port or http://host:port/metrics")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{host}:{port}"


def _normalize(targets: dict[str, Iterable[str]]) -> dict[str, list[str]]:
    unknown = set(targets) - set(JOBS)
    if unknown:
        raise ConfigError(f"unknown scrape job(s) {sorted(unknown)!r}: use {list(JOBS)!r}")
    out: dict[str, list[str]] = {}
    for job in JOBS:
        seen: list[str] = []
        for t in targets.get(job, ()):
            hp = _host_port(t, job)
            if hp not in seen:
                seen.append(hp)
        out[job] = seen
    return out


def _seconds(value: float) -> str:
    """A Prometheus duration: whole milliseconds."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def prometheus_config(targets: dict[str, list[str]], rules_file: str | Path | None,
                      scrape_interval_s: float = 1) -> str:
    """The prometheus.yml scraping the given targets.

    Args:
        targets: `{"kafka-brokers": [...], "kafkabench": [...]}`, each `host:port` or
            `http://host:port/metrics` (the brokers' JMX exporters; kafkabench's run and lag
            endpoints). A job with no targets is still defined, so targets can be added later.
        rules_file: the alert rules to load, or None.
        scrape_interval_s: scrape and rule evaluation interval (> 0).

    Returns:
        The YAML text.

    Raises:
        ConfigError: an unknown job, a malformed target or a bad interval.
    """
    if not scrape_interval_s > 0:
        raise ConfigError(f"scrape interval {scrape_interval_s!r} must be > 0 seconds")
    jobs = _normalize(targets)
    interval = _seconds(scrape_interval_s)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   # A scrape never takes longer than its interval.
                   "scrape_timeout": interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}] if hosts else []}
                           for job, hosts in jobs.items()],
    }
    if rules_file is not None:
        config["rule_files"] = [str(rules_file)]
    return yaml.safe_dump(config, sort_keys=False)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_rules(lag_threshold: float = DEFAULT_LAG_THRESHOLD, alert_for_s: float | None = None) -> str:
    """The packaged alert rules with the lag threshold (and optionally every `for`) replaced.

    Args:
        lag_threshold: messages behind that fire `KafkaConsumerLagHigh` (the file's 10000 by default);
            its expression, `threshold` label and annotations all change.
        alert_for_s: when given, every rule's `for` (0 fires at the first evaluation).

    Returns:
        The rules YAML.

    Raises:
        ConfigError: a negative threshold or `for`.
    """
    if not lag_threshold >= 0:
        raise ConfigError(f"lag threshold {lag_threshold!r} must be >= 0 messages")
    if alert_for_s is not None and not alert_for_s >= 0:
        raise ConfigError(f"alert `for` {alert_for_s!r} must be >= 0 seconds")
    rules = yaml.safe_load(ALERTS_FILE.read_text())
    new = _number(lag_threshold)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if alert_for_s is not None:
                rule["for"] = _seconds(alert_for_s)
            if rule.get("alert") != LAG_ALERT:
                continue
            old = rule["labels"]["threshold"]
            expr, n = re.subn(rf">\s*{re.escape(old)}\s*$", f"> {new}", rule["expr"].strip())
            if n != 1:  # the packaged file was edited out of shape
                raise ConfigError(f"{ALERTS_FILE}: {LAG_ALERT}'s expr {rule['expr']!r} does not end in '> {old}'")
            rule["expr"] = expr
            rule["labels"]["threshold"] = new
            rule["annotations"] = {k: re.sub(rf"\b{re.escape(old)}\b", new, v)
                                   for k, v in rule["annotations"].items()}
    return yaml.safe_dump(rules, sort_keys=False, width=200)


# ------------------------------------------------------------------ server life cycle

def _state_path(home: Path) -> Path:
    return home / STATE_FILE


def _load_state(home: Path) -> ObserveState | None:
    try:
        data = json.loads(_state_path(home).read_text())
        return ObserveState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _save_state(state: ObserveState) -> None:
    path = _state_path(Path(state.home))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def observe_status(*, home: str | Path | None = None) -> ObserveState | None:
    """The running Prometheus started by `observe_up`, or None (a stale state file is removed).

    Args:
        home: its folder (default `observe_home()`).
    """
    _children[:] = [p for p in _children if p.poll() is None]
    home = Path(home) if home else observe_home()
    state = _load_state(home)
    if state is None:
        return None
    if not state.running:
        _state_path(home).unlink(missing_ok=True)
        return None
    return state


def _embedded_broker_exporters() -> list[str]:
    """The running embedded cluster's JMX exporter URLs, if it has any."""
    from kafkabench.cluster.local import LocalCluster

    try:
        cluster = LocalCluster.attach()
    except NoClusterError:
        return []
    return list(cluster.metrics_urls().values())


def _http(url: str, *, method: str = "GET", timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(proc: subprocess.Popen, state: ObserveState, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"Prometheus exited with status {proc.returncode} while starting "
                               f"(log {state.log_file}):\n{_tail(state.log_file)}")
        try:
            if _http(f"{state.url}/-/ready", timeout_s=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise ClusterError(f"Prometheus was not ready at {state.url}/-/ready within {timeout_s:g} s, "
                       f"stopped it (log {state.log_file}):\n{_tail(state.log_file)}")


def observe_up(*, brokers: Iterable[str] | None = None, clients: Iterable[str] = (), port: int | None = None,
               lag_threshold: float = DEFAULT_LAG_THRESHOLD, alert_for_s: float | None = None,
               scrape_interval_s: float = 1, home: str | Path | None = None,
               ready_timeout_s: float = READY_TIMEOUT_S) -> ObserveState:
    """Start Prometheus detached, scraping brokers and kafkabench endpoints, with the alert rules.

    Args:
        brokers: the brokers' JMX exporters (`host:port` or `http://host:port/metrics`); None means
            the running embedded cluster's (`LocalCluster.metrics_urls()`), if any.
        clients: kafkabench endpoints (a run's `--metrics-port`, `kafkabench lag --metrics-port`).
        port: HTTP port on 127.0.0.1; None means 9090, or a free port when 9090 is taken.
        lag_threshold: `KafkaConsumerLagHigh`'s threshold in messages (see `render_rules`).
        alert_for_s: override every rule's `for` (tests use 0).
        scrape_interval_s: scrape and evaluation interval.
        home: folder for config, rules, TSDB data (`data/`, 7 days kept), log and state
            (default `observe_home()`).
        ready_timeout_s: how long to wait for `/-/ready`.

    Returns:
        The running server's state (`.url`, `.pid`, ...).

    Raises:
        ConfigError: no prometheus binary (`make observe` installs it), a port in use, a bad target.
        ClusterError: one is running already in `home`, or it did not become ready (log tail quoted).
    """
    binary = require_prometheus()
    home = Path(home) if home else observe_home()
    running = observe_status(home=home)
    if running is not None:
        raise ClusterError(f"Prometheus is running already at {running.url} (pid {running.pid}): "
                           "`kafkabench observe down` stops it; add endpoints with add_targets()")
    if port is None:
        port = DEFAULT_PORT if not _port_in_use(DEFAULT_PORT) else _free_port()
    elif not 0 < port < 65536 or _port_in_use(port):
        raise ConfigError(f"Prometheus port {port!r} is in use or invalid: pick another or leave it out")
    broker_targets = _embedded_broker_exporters() if brokers is None else list(brokers)
    targets = _normalize({BROKER_JOB: broker_targets, CLIENT_JOB: list(clients)})
    home.mkdir(parents=True, exist_ok=True)
    state = ObserveState(pid=0, port=port, home=str(home), targets=targets, lag_threshold=lag_threshold,
                         alert_for_s=alert_for_s, scrape_interval_s=scrape_interval_s)
    state.rules_file.write_text(render_rules(lag_threshold, alert_for_s))
    state.config_file.write_text(prometheus_config(targets, state.rules_file, scrape_interval_s))
    args = [binary, f"--config.file={state.config_file}", f"--storage.tsdb.path={home / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}", f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle"]
    with open(state.log_file, "ab") as log:
        # Own session: Ctrl-C in the terminal that ran `observe up` does not reach it.
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=home)
    _children.append(proc)
    state = ObserveState(**{**asdict(state), "pid": proc.pid,
                            "started_at": psutil.Process(proc.pid).create_time()})
    _save_state(state)
    try:
        _wait_ready(proc, state, ready_timeout_s)
    except BaseException:
        _terminate(proc.pid, STOP_TIMEOUT_S)
        _state_path(home).unlink(missing_ok=True)
        raise
    return state


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; reaps it when it is our child."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            break
        # Polled rather than proc.wait(): when another process started it (the `observe up`
        # one, still alive), it stays a zombie here that only its parent can reap.
        deadline = time.monotonic() + timeout_s
        while not _gone(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _gone(proc):
            break
    try:
        proc.wait(0)  # reap our own child
    except (psutil.TimeoutExpired, psutil.NoSuchProcess, ChildProcessError):
        pass


def observe_down(*, home: str | Path | None = None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the Prometheus started by `observe_up` (its TSDB data stays in `home/data`).

    Args:
        home: its folder (default `observe_home()`).
        timeout_s: seconds after SIGTERM before SIGKILL.

    Returns:
        True if one was running.
    """
    home = Path(home) if home else observe_home()
    state = observe_status(home=home)
    if state is None:
        return False
    _terminate(state.pid, timeout_s)
    _state_path(home).unlink(missing_ok=True)
    return True


def _running_state(home: str | Path | None) -> ObserveState:
    state = observe_status(home=home)
    if state is None:
        raise ClusterError("no Prometheus started by kafkabench is running: `kafkabench observe up` starts one")
    return state


def _reload(state: ObserveState) -> None:
    state.config_file.write_text(prometheus_config(state.targets, state.rules_file, state.scrape_interval_s))
    status, body = _http(f"{state.url}/-/reload", method="POST", timeout_s=30)
    if status != 200:
        raise ClusterError(f"Prometheus at {state.url} refused the new config ({status}): "
                           f"{body.decode(errors='replace').strip()}")
    _save_state(state)


def add_targets(*, brokers: Iterable[str] = (), clients: Iterable[str] = (),
                home: str | Path | None = None) -> ObserveState:
    """Add scrape targets to the running Prometheus and reload it (`/-/reload`).

    Prometheus's target discovery passes changes on every 5 s, so the first scrape of a new
    target follows within about 5 s plus the scrape interval.

    Args:
        brokers: more JMX exporter endpoints.
        clients: more kafkabench endpoints (e.g. a run's metrics URL).
        home: its folder (default `observe_home()`).

    Returns:
        The updated state.

    Raises:
        ClusterError: none running, or the reload was refused.
        ConfigError: a malformed target.
    """
    state = _running_state(home)
    targets = _normalize({job: state.targets.get(job, []) + list(more)
                          for job, more in ((BROKER_JOB, brokers), (CLIENT_JOB, clients))})
    new = ObserveState(**{**asdict(state), "targets": targets})
    _reload(new)
    return new


def remove_targets(*, brokers: Iterable[str] = (), clients: Iterable[str] = (),
                   home: str | Path | None = None) -> ObserveState:
    """Remove scrape targets from the running Prometheus and reload it (arguments as `add_targets`)."""
    state = _running_state(home)
    gone = _normalize({BROKER_JOB: list(brokers), CLIENT_JOB: list(clients)})
    targets = {job: [t for t in state.targets.get(job, []) if t not in gone[job]] for job in JOBS}
    new = ObserveState(**{**asdict(state), "targets": targets})
    _reload(new)
    return new


# ------------------------------------------------------------------ HTTP API

def _api(path: str, params: dict[str, str] | None, url: str | None, home: str | Path | None,
         timeout_s: float) -> Any:
    base = (url or _running_state(home).url).rstrip("/")
    full = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        status, body = _http(full, timeout_s=timeout_s)
    except OSError as exc:
        raise ClusterError(f"no Prometheus answers at {base}: {exc}") from exc
    try:
        reply = json.loads(body)
    except ValueError as exc:
        raise ClusterError(f"{full} answered {status} with no JSON: {body[:200]!r}") from exc
    if reply.get("status") != "success":
        error = f"{reply.get('errorType', status)}: {reply.get('error', body[:200])}"
        if status == 400:
            raise ConfigError(f"Prometheus refused {params!r}: {error}")
        raise ClusterError(f"{full} failed: {error}")
    return reply["data"]


def query(promql: str, *, url: str | None = None, home: str | Path | None = None,
          timeout_s: float = HTTP_TIMEOUT_S) -> list[dict[str, Any]]:
    """An instant query through Prometheus's HTTP API (`/api/v1/query`).

    Args:
        promql: the expression.
        url: the server's base URL (default: the running `observe_up` server's).
        home: that server's folder when `url` is None.
        timeout_s: HTTP timeout.

    Returns:
        The result list: for a vector, `[{"metric": {labels}, "value": [t, "text"]}, ...]`.

    Raises:
        ConfigError: a malformed expression (Prometheus's reason quoted).
        ClusterError: no server answers.
    """
    data = _api("/api/v1/query", {"query": promql}, url, home, timeout_s)
    result = data["result"]
    # A scalar or string answer is one [t, "text"] pair, not a list of series.
    return result if data.get("resultType") in ("vector", "matrix") else [{"metric": {}, "value": result}]


def alerts(*, url: str | None = None, home: str | Path | None = None,
           timeout_s: float = HTTP_TIMEOUT_S) -> list[dict[str, Any]]:
    """Pending and firing alerts (`/api/v1/alerts`): dicts with `labels`, `annotations`, `state`."""
    return _api("/api/v1/alerts", None, url, home, timeout_s)["alerts"]


def target_health(*, url: str | None = None, home: str | Path | None = None,
                  timeout_s: float = HTTP_TIMEOUT_S) -> list[dict[str, str]]:
    """Each scrape target's health (`/api/v1/targets`): job, instance, health (up/down/unknown), last error."""
    data = _api("/api/v1/targets", None, url, home, timeout_s)
    return [{"job": t["labels"].get("job", ""), "instance": t["labels"].get("instance", ""),
             "health": t.get("health", ""), "last_error": t.get("lastError", "")}
            for t in data["activeTargets"]]


# ------------------------------------------------------------------ metric names in files

def promql_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords, labels left out).

    Grafana variables (`$__rate_interval`, `${group}`) are ignored. Names come back as written,
    so a histogram's `x_bucket` and a counter's `x_total` keep their suffixes: compare them with
    the sample names of a scrape (prometheus_client's parser: `sample.name`), not family names.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        name, start, rest = m.group(), m.start(), text[m.end():]
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # the unit of a duration (5m) or an exponent
        if name in _PROMQL_WORDS or rest.lstrip().startswith("("):
            continue  # a keyword, or a function / aggregation call
        names.add(name)
    return names


def _rule_exprs(path: Path) -> list[str]:
    rules = yaml.safe_load(path.read_text())
    return [r["expr"] for g in rules.get("groups", []) for r in g.get("rules", [])]


def _panels(path: Path) -> Iterable[dict]:
    """Every panel of a Grafana dashboard JSON, rows' nested panels included."""
    def walk(items: list[dict]) -> Iterable[dict]:
        for p in items:
            yield p
            yield from walk(p.get("panels", []))

    return walk(json.loads(path.read_text()).get("panels", []))


def _dashboard_exprs(path: Path) -> list[str]:
    return [t["expr"] for p in _panels(path) for t in p.get("targets", []) if t.get("expr")]


def metric_names_used(*, rules: str | Path | None = None, dashboard: str | Path | None = None,
                      strip_suffixes: bool = False) -> set[str]:
    """Every metric name the alert rules and the Grafana dashboard query.

    Args:
        rules: a rules file (default: the packaged alerts.yml).
        dashboard: a dashboard JSON (default: docker/grafana/dashboards/kafkabench.json when this
            is a source checkout; otherwise the rules alone).
        strip_suffixes: drop `_bucket`, `_sum` and `_count` (histogram and summary series) to get
            family names. Off by default, because JMX exporter meters end in `_count` as part of
            their name: the exact series names compare with a scrape's `sample.name`s.

    Returns:
        The names, without the series Prometheus makes itself (`up`, `ALERTS`, `scrape_*`).
    """
    exprs = _rule_exprs(Path(rules) if rules else Path(str(ALERTS_FILE)))
    board = Path(dashboard) if dashboard else DASHBOARD_FILE
    if dashboard or board.is_file():
        exprs += _dashboard_exprs(board)
    names = set().union(*(promql_metric_names(e) for e in exprs)) - SYNTHETIC_SERIES
    if strip_suffixes:
        names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    return names


def queries(*, rules: str | Path | None = None, dashboard: str | Path | None = None) -> pd.DataFrame:
    """The PromQL behind every dashboard panel and alert rule, one row per expression.

    Args:
        rules: a rules file (default: the packaged alerts.yml).
        dashboard: a dashboard JSON (default: docker/grafana/dashboards/kafkabench.json when this
            is a source checkout; otherwise the rules alone).

    Returns:
        Columns `source` ("dashboard" or "alert"), `name` (panel title or alert name),
        `legend` (the series' legend, or the alert's `for`), `expr`.
    """
    rows = []
    board = Path(dashboard) if dashboard else DASHBOARD_FILE
    if dashboard or board.is_file():
        for p in _panels(board):
            rows += [("dashboard", p.get("title", ""), t.get("legendFormat", ""), t["expr"])
                     for t in p.get("targets", []) if t.get("expr")]
    spec = yaml.safe_load((Path(rules) if rules else Path(str(ALERTS_FILE))).read_text())
    rows += [("alert", r["alert"], f"for {r.get('for', '0s')}", r["expr"].strip())
             for g in spec.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    return pd.DataFrame(rows, columns=["source", "name", "legend", "expr"])
