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

.PHONY: setup browser-deps run test lab bench down clean

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

run: setup
	@$(KB) cluster status >/dev/null 2>&1 || $(KB) cluster up
	$(KB) quickstart --out $(RESULTS)
	@echo "The embedded cluster is still running: \`make down\` stops it, \`make lab\` opens the notebooks."

test: setup browser-deps
	$(BIN)/ruff check .
	KAFKABENCH_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -p no:cacheprovider tests notebooks --nbval-lax $(PYTEST_ARGS)

lab: setup
	@$(KB) cluster status >/dev/null 2>&1 || $(KB) cluster up
	$(BIN)/jupyter lab notebooks

bench: setup $(BENCH_STAMP)
	$(BIN)/python benchmarks/vs_kafka_perf_tools.py

down:
	@test -x $(KB) && $(KB) cluster down || true

clean: down
	rm -rf $(VENV) $(RESULTS) report.html *.egg-info
