# karte_assets: `make demo` runs the graph on the local default, `make test` passes the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, or bootstrapped into .karte/bootstrap by `python3 -m venv` + pip.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.karte/bootstrap/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
export KARTE_HOME ?= $(CURDIR)/.karte
export DAGSTER_HOME ?= $(KARTE_HOME)/dagster

# The demo backfills the first DEMO_DAYS days of history in one run.
DEMO_DAYS ?= 90
DEMO_START := $(or $(KARTE_PARTITIONS_START),2026-06-01)
DEMO_END := $(shell date -d "$(DEMO_START) + $$(( $(DEMO_DAYS) - 1 )) days" +%F)

.PHONY: help setup demo report export dev test lint format audit browser bench evaluate

help:
	@echo "make demo    set up, backfill $(DEMO_DAYS) days of synthetic events through the graph, print the scores"
	@echo "make test    lint and run the test suite"
	@echo "make dev     open the Dagster UI (http://127.0.0.1:3000) with the daemon: schedule and sensor run"
	@echo "make report  print the newest scores again"
	@echo "make export DAY=YYYY-MM-DD  the day's coupon audience as Parquet and CSV under $$KARTE_HOME/exports"
	@echo "make browser install Debian's chromium and chromium-driver (the browser test needs them; CI runs it)"
	@echo "make evaluate the model on a real purchase log (CDNOW) beside frequency, BG/NBD and Pareto/NBD; see EVALUATION.md"
	@echo "make bench   measure throughput, memory, backfill and scoring on this machine; writes BENCHMARKS.md (~30 min)"

$(CURDIR)/.karte/bootstrap/bin/uv:
	python3 -m venv $(CURDIR)/.karte/bootstrap
	$(CURDIR)/.karte/bootstrap/bin/pip install --quiet uv

setup: $(UV)
	$(UV) sync --frozen
	@mkdir -p "$(DAGSTER_HOME)"
	@cp -n dagster.yaml "$(DAGSTER_HOME)/dagster.yaml" 2>/dev/null || true

demo: setup
	$(UV) run dagster asset materialize -m karte_assets.definitions --select '*' \
		--partition-range $(DEMO_START)...$(DEMO_END)
	@$(MAKE) --no-print-directory report

report:
	@$(UV) run python -m karte_assets.report

export:
	@test -n "$(DAY)" || { echo "usage: make export DAY=YYYY-MM-DD" >&2; exit 2; }
	@$(UV) run python -m karte_assets.export --day $(DAY)

# Benchmarks (not part of `make test`): BENCH_ARGS selects parts, e.g. BENCH_ARGS='--part features --sizes 1e6'.
bench: setup
	$(UV) run python -m bench.run $(BENCH_ARGS)

# The evaluation (not part of `make test`): its dependencies are the `evaluate` group, outside the default install.
evaluate: $(UV)
	$(UV) sync --frozen --group evaluate
	$(UV) run --frozen --group evaluate python -m evaluation.run $(EVALUATE_ARGS)

dev: setup
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: $(UV)
	$(UV) run ruff check karte_assets karte_assets_tests
	$(UV) run ruff format --check karte_assets karte_assets_tests

format: $(UV)
	$(UV) run ruff format karte_assets karte_assets_tests
	$(UV) run ruff check --fix karte_assets karte_assets_tests

# Known vulnerabilities in the locked dependencies; needs PyPI's JSON API (the GitHub workflow runs it).
audit: $(UV)
	@mkdir -p .karte
	$(UV) export --frozen --no-hashes --no-emit-project > .karte/requirements-audit.txt
	$(UV) tool run --from pip-audit pip-audit --disable-pip --no-deps --strict -r .karte/requirements-audit.txt

# Debian's Chromium and its driver, for karte_assets_tests/test_ui_browser.py; installed only when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: setup lint
	$(UV) run pytest
