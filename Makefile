# kafkabench: `make run` (set up, start the embedded cluster, run the quick-start benchmark,
# write results and a report) and `make test` (set up, run every test and notebook).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KB := $(BIN)/kafkabench
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
RESULTS ?= results
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser-deps kcat observe run test lab bench down clean

# Everything: the package, the notebooks' Jupyter stack and the test tools. A Locust worker
# machine needs only `pip install .` (no extras).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed (pandas 3, tomllib)"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[jupyter,dev]'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[jupyter,dev,bench]'
	@touch $@

setup: $(STAMP)
	@$(KB) kafka install

# Debian's Chromium for the browser test (tests/test_browser.py drives it with Playwright;
# Playwright's own browser download is never used). Without it that test skips.
browser-deps:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium and chromium-driver for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
			|| echo "warning: apt-get could not install chromium: the browser test will skip (fail under .ci/run)"; \
	else \
		echo "note: no Chromium at $(CHROMIUM), and installing it needs root and apt-get: the browser test will skip (fail under .ci/run)"; \
	fi

# Debian's kcat (its own librdkafka): the independent reader the broker-kill tests and
# benchmarks/survive_broker_kills.py check the verifier's counts against. Without it they read
# with a plain confluent-kafka consumer instead. Never fails the build.
kcat:
	@if command -v kcat >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's kcat for the broker-kill tests"; \
		{ apt-get install -y -qq kcat >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; }; } \
			|| echo "warning: apt-get could not install kcat: the broker-kill tests read with a plain consumer"; \
	else \
		echo "note: no kcat, and installing it needs root and apt-get: the broker-kill tests read with a plain consumer"; \
	fi

# Debian's Prometheus server and promtool for `kafkabench observe` and tests/test_observe.py
# (without them those tests skip). Never fails the build. The package's postinst enables and
# starts a system Prometheus on :9090 where systemd (or an init script) runs services; ours is
# started by `kafkabench observe up`, so that one is stopped and disabled again.
observe:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then \
		prometheus --version 2>&1 | head -1; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's prometheus (with promtool) for kafkabench observe"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
			|| echo "warning: apt-get could not install prometheus: the Prometheus tests will skip"; \
		if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service >/dev/null 2>&1 || true; fi; \
		if [ -x /etc/init.d/prometheus ]; then \
			/etc/init.d/prometheus stop >/dev/null 2>&1 || true; \
			update-rc.d prometheus disable >/dev/null 2>&1 || true; \
		fi; \
		command -v prometheus >/dev/null 2>&1 && prometheus --version 2>&1 | head -1 || true; \
	else \
		echo "note: no prometheus/promtool on PATH, and installing them needs root and apt-get (package \`prometheus\`): the Prometheus tests will skip"; \
	fi

run: setup
	@$(KB) cluster status >/dev/null 2>&1 || $(KB) cluster up
	$(KB) quickstart --out $(RESULTS)
	@echo "The embedded cluster is still running: \`make down\` stops it, \`make lab\` opens the notebooks."

# The suite on TEST_WORKERS pytest-xdist workers sharing one 1-broker and one 3-broker cluster
# (conftest.py); node-killing tests and each notebook's cells stay on one worker, in order.
# Most tests wait on a broker or a timed run, not on a core, so 4 workers suit 2 cores. Then,
# alone: the tests marked `quiet` (they assert on timing) and the browser test, which opens the
# notebooks nbval saved executed (EXECUTED_NOTEBOOKS) in JupyterLab: no notebook runs twice.
# PYTEST_ARGS go to both phases (a second phase that selects nothing passes).
TEST_WORKERS ?= 4
EXECUTED_NOTEBOOKS ?= $(VENV)/executed-notebooks
TEST_ENV = KAFKABENCH_CHROMIUM=$(CHROMIUM) KAFKABENCH_EXECUTED_NOTEBOOKS=$(abspath $(EXECUTED_NOTEBOOKS))
test: setup browser-deps kcat
	$(BIN)/ruff check .
	@rm -rf $(EXECUTED_NOTEBOOKS)
	@start=$$(date +%s); \
	$(TEST_ENV) $(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup \
		--durations=30 -m "not browser and not quiet" tests notebooks --nbval-lax $(PYTEST_ARGS); status=$$?; \
	$(TEST_ENV) $(BIN)/python -m pytest -p no:cacheprovider --durations=10 -m "browser or quiet" tests $(PYTEST_ARGS); \
	browser=$$?; [ $$browser = 5 ] && browser=0; [ $$status = 0 ] && status=$$browser; \
	echo "make test: $$(( $$(date +%s) - start )) s wall time (exit $$status)"; exit $$status

lab: setup
	@$(KB) cluster status >/dev/null 2>&1 || $(KB) cluster up
	$(BIN)/jupyter lab notebooks

bench: setup $(BENCH_STAMP)
	$(BIN)/python benchmarks/vs_kafka_perf_tools.py

down:
	@test -x $(KB) && $(KB) cluster down || true

clean: down
	rm -rf $(VENV) $(RESULTS) report.html *.egg-info
