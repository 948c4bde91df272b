"""The notebooks as a user sees them: JupyterLab driven by Playwright in Debian's Chromium.

Each notebook is opened in JupyterLab and checked for error output, for any stderr output at
all (a reader takes a pink box for a failure), for tables and charts wider than their output
area (columns out of sight), for figures that break the figure rules (`plots.figure_problems`
on each figure the executed notebook holds), and for the number of plotly charts and widget
panels it renders. Under `make test` the notebooks are the ones nbval
has just executed and saved, widget state included (KAFKABENCH_EXECUTED_NOTEBOOKS, see
conftest.py), so none runs twice; the producer tuning panel is then run live (its notebook's
imports and the panel's cell only), a control changed, and it must redraw its charts. Run on
its own (no saved notebook), each notebook is run here with Run > Run All Cells in CI size
(KAFKABENCH_CI=1) against the test session's cluster. Screenshots and the notebooks are kept
under pytest's temporary folder (named in every failure).

Needs Chromium at /usr/bin/chromium (KAFKABENCH_CHROMIUM elsewhere; `make browser-deps`
installs Debian's `chromium`) and the `playwright` package; Playwright's own browser download
is never used. Skips without them, unless KAFKABENCH_REQUIRE_BROWSER=1 (CI) makes that a
failure. Deselect with `-m "not browser"`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

#: What each notebook renders after Run All in CI size: (plotly charts, widget panels).
#: Charts count every plotly figure on the page, those drawn inside panels included
#: (`summary_table` figures are plotly charts too); tqdm progress bars are not panels.
EXPECTED: dict[str, tuple[int, int]] = {
    "00-quickstart": (5, 0),
    "01-producer-tuning": (5, 1),  # 3 sweep charts + the tuning panel's latency and throughput
    "02-consumer-groups-and-lag": (4, 1),  # 3 charts + the lag monitor's chart
    "03-partition-strategies": (5, 1),  # 4 charts + the partition explorer's chart
    "04-capacity-planning": (6, 1),  # 5 charts + the capacity planner's sensitivity chart
    "05-end-to-end-latency": (4, 0),
    "06-sustained-load-with-locust": (5, 0),
    "07-faults-and-delivery-guarantees": (6, 0),  # CI size: 2 scenarios x 3 charts
    "08-service-patterns": (6, 0),  # e2e through the stage, 2 lag charts, 2 exactly-once curves, crashes
    "09-rebalancing-and-offsets": (2, 0),  # two partition-ownership timelines
    "10-observability": (2, 0),  # client and broker on one axis, lag
}

CHROMIUM = Path(os.environ.get("KAFKABENCH_CHROMIUM", "/usr/bin/chromium"))
# Headless on a closed network: no sandbox (root), no GPU, nothing that phones home.
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_S = 120
KERNEL_READY_S = 120
RUN_ALL_S = 420  # one notebook, CI size, on 2 busy cores
PANEL_RUN_S = 120
CHARTS_DRAWN_S = 60  # a saved notebook's charts and restored widgets, drawn

#: Where nbval saved the notebooks it executed in this session (conftest.py), if anywhere.
EXECUTED = os.environ.get("KAFKABENCH_EXECUTED_NOTEBOOKS")

# JupyterLab user settings for the test server: start the kernel without asking, attach every
# cell to the DOM (the default windowing leaves off-screen outputs unrendered), no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

pytestmark = [pytest.mark.browser, pytest.mark.timeout(RUN_ALL_S + 300)]

# Per code cell: execution prompt, charts, top-level widget panels, and error text.
_INSPECT_JS = r"""() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
.map((cell, index) => {
  const outputs = [...cell.querySelectorAll(
      '.jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output')];
  const views = outputs.map(o => o.querySelector(':scope > .jupyter-widgets')).filter(Boolean);
  const errors = [...cell.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent)
    .filter(t => /Traceback \(most recent call last\)|^\w*(Error|Exception)(: |$)/m.test(t));
  for (const o of outputs) {
    if (/Error displaying widget|Error rendering output/.test(o.textContent)) errors.push(o.textContent);
  }
  // A panel shows its own failures (KafkabenchError) in red instead of raising.
  for (const e of cell.querySelectorAll('.jupyter-widgets span[style*="#B00020"]')) {
    errors.push(e.textContent);
  }
  // Any stderr at all (warnings, progress bars): in a notebook that ran clean it reads as a failure.
  const stderr = [...cell.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent.trim().slice(0, 300));
  // Tables and charts wider than their output area: columns or traces a reader cannot see.
  const clipped = [];
  for (const o of outputs) {
    const room = o.getBoundingClientRect().width;
    for (const t of o.querySelectorAll('table, .js-plotly-plot')) {
      const wide = Math.max(t.scrollWidth, t.getBoundingClientRect().width);
      if (wide > room + 2) {
        const heads = [...t.querySelectorAll('thead th')].map(h => h.textContent.trim()).filter(Boolean);
        clipped.push(`${t.tagName === 'TABLE' ? 'table' : 'chart'} ${Math.round(wide)} px wide in ` +
                     `${Math.round(room)} px` + (heads.length ? ` (columns: ${heads.join(', ')})` : ''));
      }
    }
  }
  return {
    index,
    stderr,
    clipped,
    source: (cell.querySelector('.jp-InputArea-editor')?.textContent || '').trim().slice(0, 80),
    prompt: (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim(),
    charts: cell.querySelectorAll('.js-plotly-plot').length,
    // tqdm's notebook progress bar is an HBox around a progress widget.
    panels: views.filter(v => !v.querySelector(':scope > .widget-hprogress, :scope > .widget-vprogress'))
      .length,
    errors: errors.map(t => t.trim().slice(-1500)),
  };
})"""

_KERNEL_IDLE_JS = r"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
  .some(e => /\|\s*Idle\s*$/.test(e.textContent))"""

_RUNNING_JS = r"""() => [...document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt')]
  .some(e => e.textContent.includes('*'))"""

# What a panel's charts show: trace names and x values (run labels for the bar chart).
# Each chart's data: trace names, x values and, for tables, the cells (the panel's comparison
# table names each run's settings; its charts label runs "#1", "#2", ...).
_CHARTS_JS = r"""panel => [...panel.querySelectorAll('.js-plotly-plot')].map(
  g => JSON.stringify((g.data || []).map(t => [t.name, Array.from(t.x || []),
                                               t.cells ? t.cells.values : null])))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a copy of the notebooks, and a Chromium driving it."""

    def __init__(self, bootstrap: str, workdir: Path, artifacts: Path):
        self.workdir = workdir
        self.artifacts = artifacts
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.pages: dict[str, object] = {}  # run
        self._opened: dict[str, object] = {}  # opened, not run yet
        self.server: subprocess.Popen | None = None
        self.log_path = artifacts / "jupyterlab.log"
        self._playwright = None
        self.browser = None
        # A copy, so that saving (ours and JupyterLab's autosave) never touches the repository.
        shutil.copytree(NOTEBOOKS, artifacts / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "results"))
        for name, values in LAB_SETTINGS.items():
            path = workdir / "lab-settings" / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.env = {**os.environ, "KAFKABENCH_CI": "1", "KAFKABENCH_BOOTSTRAP": bootstrap,
                    "KAFKABENCH_RESULTS": str(workdir / "results"),
                    "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
                    "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
                    "JUPYTERLAB_SETTINGS_DIR": str(workdir / "lab-settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces")}

    # ------------------------------------------------------------------ server and browser

    def start(self) -> None:
        """Start JupyterLab and Chromium; fail (with the server log) if either does not come up."""
        log = self.log_path.open("w")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", "--ServerApp.password=",
             f"--ServerApp.root_dir={self.artifacts}",
             # Should this process die without its teardown: Chromium goes with Playwright's
             # driver, the kernels are culled once no page is connected, then the server exits.
             "--ServerApp.shutdown_no_activity_timeout=900",
             "--MappingKernelManager.cull_idle_timeout=900", "--MappingKernelManager.cull_interval=60"],
            cwd=self.artifacts, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.server.returncode}:\n{self._log_tail()}")
            try:
                self._api("GET", "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self._log_tail()}")
                time.sleep(0.5)

        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch_persistent_context(
            str(self.workdir / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        self.browser.set_default_timeout(60_000)

    def stop(self) -> None:
        """Close Chromium, then shut JupyterLab and its kernels down (bounded: killed after 45 s)."""
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            try:
                if self._playwright is not None:
                    self._playwright.stop()
            finally:
                self._stop_server()

    def _stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        try:
            self._api("POST", "/api/shutdown")  # shuts the kernels down first
        except (OSError, urllib.error.URLError):
            self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=45)
        except subprocess.TimeoutExpired:
            # Kernels run in sessions of their own and exit when their parent does.
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=15)

    def _api(self, method: str, path: str) -> object:
        request = urllib.request.Request(self.base + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def _log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # ------------------------------------------------------------------ notebooks

    def saved(self, name: str):
        """The page of notebook `name` as nbval executed and saved it, or None if it did not
        (run on its own, or nbval's run of it failed: then `executed` runs it here)."""
        path = Path(EXECUTED or "", f"{name}.ipynb")
        if not EXECUTED or not path.is_file():
            return None
        if name not in self.pages:
            copy = self.artifacts / "notebooks" / path.name
            shutil.copyfile(path, copy)
            # Trusted, as a notebook one ran oneself is: JupyterLab draws widget panels (from the
            # saved widget state) only for trusted notebooks, and shows their text otherwise.
            trust = subprocess.run([sys.executable, "-m", "jupyter", "trust", str(copy)], env=self.env,
                                   capture_output=True, text=True, timeout=60)
            assert trust.returncode == 0, f"jupyter trust {copy}: {trust.stderr[-2000:]}"
            page = self._open(name)
            try:  # plotly draws each chart, and the widget manager restores each panel, when it can
                page.wait_for_function(
                    "n => document.querySelectorAll('.jp-NotebookPanel .js-plotly-plot').length >= n",
                    arg=EXPECTED[name][0], timeout=CHARTS_DRAWN_S * 1000, polling=500)
            except Exception:  # noqa: BLE001 - the counts are asserted, with a screenshot, by the test
                pass
            self.pages[name] = page
        return self.pages[name]

    def run_cells(self, page, name: str, sources: list[str]) -> None:
        """Run, live, the code cells whose source contains each of `sources`, in that order."""
        cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
        texts = [cells.nth(i).locator(".jp-InputArea-editor").text_content() or ""
                 for i in range(cells.count())]
        for needle in sources:
            index = next((i for i, t in enumerate(texts) if needle in t), None)
            assert index is not None, f"{name}: no code cell contains {needle!r}"
            cells.nth(index).locator(".jp-InputPrompt").click()
            page.keyboard.press("Control+Enter")
            page.wait_for_function(_RUNNING_JS, timeout=30_000, polling=100)
            page.wait_for_function(f"() => !({_RUNNING_JS})() && ({_KERNEL_IDLE_JS})()",
                                   timeout=PANEL_RUN_S * 1000, polling=500)

    def executed(self, name: str, then: str | None = None):
        """The page of notebook `name` after Run All Cells (run now, or earlier in this session).

        While it runs, notebook `then` (the next one to test) is opened and its kernel started.
        """
        if name not in self.pages:
            page = self._opened.pop(name, None) or self._open(name)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            page.wait_for_function(_RUNNING_JS, timeout=60_000, polling=100)
            started = time.monotonic()
            if then is not None and then not in self.pages and then not in self._opened:
                try:
                    self._opened[then] = self._open(then)
                except AssertionError:
                    pass  # fails again, and is reported, in its own test
            try:
                page.wait_for_function(f"() => !({_RUNNING_JS})() && ({_KERNEL_IDLE_JS})()",
                                       timeout=RUN_ALL_S * 1000, polling=1000)
            except Exception as exc:
                shot = self.screenshot(page, name)
                page.close()
                self._shut_kernel_down(name)  # stop it taking CPU from the next notebooks
                raise AssertionError(f"{name}: Run All Cells did not finish within {RUN_ALL_S} s "
                                     f"(screenshot: {shot})") from exc
            print(f"{name}: Run All Cells took {time.monotonic() - started:.0f} s")
            page.keyboard.press("Control+s")  # keep the executed notebook with the artifacts
            self.pages[name] = page
        return self.pages[name]

    def _open(self, name: str):
        """A new page with notebook `name` open and its kernel idle."""
        page = self.browser.new_page()
        # A workspace per notebook: JupyterLab would otherwise reopen (and start the kernels
        # of) the notebooks of earlier pages.
        page.goto(f"{self.base}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb?token={self.token}")
        try:
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=KERNEL_READY_S * 1000)
            page.wait_for_function(_KERNEL_IDLE_JS, timeout=KERNEL_READY_S * 1000, polling=500)
        except Exception as exc:
            shot = self.screenshot(page, name)
            page.close()
            raise AssertionError(f"{name}: the notebook's kernel was not idle within {KERNEL_READY_S} s "
                                 f"(screenshot: {shot})") from exc
        return page

    def close(self, name: str) -> None:
        """Close the page of notebook `name` and shut its kernel down."""
        page = self.pages.pop(name, None)
        if page is not None:
            page.close()
        self._shut_kernel_down(name)

    def _shut_kernel_down(self, name: str) -> None:
        for session in self._api("GET", "/api/sessions"):
            if session["path"] == f"notebooks/{name}.ipynb":
                self._api("DELETE", f"/api/sessions/{session['id']}")

    def screenshot(self, page, name: str, cell: int | None = None) -> Path:
        """Save a screenshot of `page`, scrolled to code cell `cell` if given."""
        if cell is not None:
            page.locator(".jp-NotebookPanel .jp-CodeCell").nth(cell).scroll_into_view_if_needed()
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path))
        return path


def _browser_unavailable() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the `playwright` package is not installed: pip install -e '.[dev]'"
    if not os.access(CHROMIUM, os.X_OK):
        return (f"Chromium not found at {CHROMIUM}: `make browser-deps` installs it (as root, "
                f"apt-get install chromium chromium-driver), or set KAFKABENCH_CHROMIUM")
    return None


@pytest.fixture(scope="module")
def lab(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a copy of the notebooks, with Chromium; both stopped at the end."""
    if reason := _browser_unavailable():
        if os.environ.get("KAFKABENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KAFKABENCH_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    artifacts = tmp_path_factory.mktemp("browser")
    with tempfile.TemporaryDirectory(prefix="kafkabench-lab-") as workdir:
        lab = Lab(bootstrap, Path(workdir), artifacts)
        try:
            lab.start()
            yield lab
        finally:
            lab.stop()


def test_expected_table_lists_every_notebook():
    assert sorted(EXPECTED) == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")), (
        "tests/test_browser.py EXPECTED must list every notebook with its chart and panel counts")


# The notebooks whose pages a later test uses: kept open after their own test.
KEEP_OPEN = {"01-producer-tuning"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_clean_and_renders(lab: Lab, name: str):
    order = sorted(EXPECTED)
    page = lab.saved(name)
    how = "saved by nbval" if page is not None else "Run All Cells here"
    if page is None:
        page = lab.executed(name, then=order[order.index(name) + 1] if name != order[-1] else None)
    cells = page.evaluate(_INSPECT_JS)
    failed = next((c for c in cells if c["errors"] or not re.fullmatch(r"\[\d+\]:?", c["prompt"])), None)
    shot = lab.screenshot(page, name, failed["index"] if failed else None)
    charts = sum(c["charts"] for c in cells)
    panels = sum(c["panels"] for c in cells)
    where = (f"\nscreenshot: {shot}\nexecuted notebook: {lab.artifacts / 'notebooks' / (name + '.ipynb')}"
             f"\nper cell (charts, panels): " + "; ".join(
                 f"[{c['index']}] {c['charts']},{c['panels']} {c['source'][:40]!r}"
                 for c in cells if c["charts"] or c["panels"]))
    print(f"{name} ({how}): {charts} charts, {panels} panels")
    if name not in KEEP_OPEN:
        lab.close(name)
    for c in cells:
        assert not c["errors"], f"{name} cell {c['index']} ({c['source']!r}) shows an error:\n" + \
            "\n".join(c["errors"]) + where
    unrun = [c for c in cells if not re.fullmatch(r"\[\d+\]:?", c["prompt"])]
    assert not unrun, f"{name} ({how}): cells left unexecuted: {[c['index'] for c in unrun]}" + where
    noisy = [f"cell {c['index']} ({c['source'][:40]!r}): {t!r}" for c in cells for t in c["stderr"]]
    assert not noisy, (f"{name}: stderr output in a notebook that ran without error (a reader takes it "
                       f"for a failure; show warnings as lines, progress as a widget):\n" + "\n".join(noisy) + where)
    clipped = [f"cell {c['index']} ({c['source'][:40]!r}): {t}" for c in cells for t in c["clipped"]]
    assert not clipped, (f"{name}: tables or charts wider than their output area (what the text refers to "
                         f"may be out of sight):\n" + "\n".join(clipped) + where)
    assert (charts, panels) == EXPECTED[name], (
        f"{name}: rendered {charts} plotly charts and {panels} widget panels, expected "
        f"{EXPECTED[name]} (update EXPECTED in tests/test_browser.py if the notebook changed)" + where)
    broken = _figure_problems(lab.artifacts / "notebooks" / f"{name}.ipynb")
    assert not broken, f"{name}: figures that break the figure rules (plots.figure_problems):\n" + \
        "\n".join(broken) + where


def _figure_problems(notebook: Path) -> list[str]:
    """`plots.figure_problems` of every plotly figure the executed notebook shows."""
    import plotly.graph_objects as go

    from kafkabench import plots

    found = []
    for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        for output in cell.get("outputs", []):
            spec = output.get("data", {}).get("application/vnd.plotly.v1+json")
            if spec:
                found += [f"cell {i}: {p}" for p in plots.figure_problems(go.Figure(spec, skip_invalid=True))]
    return found


def test_tuning_panel_redraws_after_a_control_changes(lab: Lab):
    name = "01-producer-tuning"
    page = lab.saved(name)
    if page is not None:  # its imports and the panel, live; the sweeps above stay as nbval ran them
        lab.run_cells(page, name, ["from kafkabench import", "widgets.producer_tuning_panel("])
    else:
        page = lab.executed(name)
    panel = page.locator(".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output"
                         " > .jupyter-widgets", has_text="compression.type").last
    shot = lab.artifacts / f"{name}-panel.png"
    try:
        panel.scroll_into_view_if_needed()
        before = panel.evaluate(_CHARTS_JS)
        assert before, "the tuning panel shows no chart before the rerun"
        compression = panel.locator(".widget-dropdown", has_text="compression.type").locator("select")
        value = "zstd" if compression.input_value() == "lz4" else "lz4"
        compression.select_option(value)
        panel.locator("button", has_text=re.compile(r"^\s*Run\s*$")).click()
        # The comparison table (a chart of the panel) names the new run's compression.type.
        page.wait_for_function(
            f"([panel, before, value]) => ({_CHARTS_JS})(panel)"
            f".some((c, i) => c.includes(value) && !(before[i] || '').includes(value))",
            arg=[panel.element_handle(), before, value], timeout=PANEL_RUN_S * 1000, polling=1000)
        errors = [e for c in page.evaluate(_INSPECT_JS) for e in c["errors"]]
        assert not errors, "\n".join(errors)
    except Exception as exc:
        raise AssertionError(f"{name}: the tuning panel did not redraw with the new compression.type "
                             f"after Run: {exc}\nscreenshot: {shot}") from exc
    finally:
        page.screenshot(path=str(shot))
        lab.close(name)
