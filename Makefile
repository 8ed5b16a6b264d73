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

.PHONY: help setup demo report export dev test test-slow lint format audit browser bench zetasql gpu-check evaluate

help:
	@echo "make demo    set up, backfill $(DEMO_DAYS) days of synthetic events through the graph, print the scores"
	@echo "make test    lint and run the test suite (the end-to-end graph runs are in make test-slow)"
	@echo "make dev     open the Dagster UI (http://127.0.0.1:3000) with the daemon: schedule and sensor run"
	@echo "make report  print the newest scores again"
	@echo "make serve   the real-time lookup service on the newest published scores (http://127.0.0.1:8080)"
	@echo "make export DAY=YYYY-MM-DD  the day's coupon audience as Parquet and CSV under $$KARTE_HOME/exports"
	@echo "make zetasql install Google's GoogleSQL analyzer (ZetaSQL) for the tests, from npm, into .karte/zetasql"
	@echo "make browser install Debian's chromium and chromium-driver (the browser test needs them; CI runs it)"
	@echo "make gpu-check  in the training image's environment, LightGBM on GPU vs CPU: time and AUC at 1M rows (needs a GPU)"
	@echo "make evaluate the model on a real purchase log (CDNOW) beside frequency, BG/NBD and Pareto/NBD; see EVALUATION.md"
	@echo "             EVALUATE_ARGS='--log completejourney': the same on The Complete Journey's grocery baskets"
	@echo "             EVALUATE_ARGS='--part anomaly': the anomaly detectors on planted bots and cheaters"
	@echo "             EVALUATE_ARGS='--part demand': the demand forecaster on Walmart's weekly sales beside seasonal naive and AutoETS"
	@echo "make bench   measure throughput, memory, backfill and scoring on this machine; writes BENCHMARKS.md (~30 min)"
	@echo "             BENCH_ARGS='--part anomaly': 1M users' anomaly features and scores for one day"

$(CURDIR)/.karte/bootstrap/bin/uv:
	python3 -m venv $(CURDIR)/.karte/bootstrap
	$(CURDIR)/.karte/bootstrap/bin/pip install --quiet uv

setup: $(UV)
	$(UV) sync --frozen --compile-bytecode
	@mkdir -p "$(DAGSTER_HOME)"
	@cp -n dagster.yaml "$(DAGSTER_HOME)/dagster.yaml" 2>/dev/null || true

demo: setup
	$(UV) run dagster asset materialize -m karte_assets.definitions --select 'group:loyalty' \
		--partition-range $(DEMO_START)...$(DEMO_END)
	@$(MAKE) --no-print-directory report

report:
	@$(UV) run python -m karte_assets.report

export:
	@test -n "$(DAY)" || { echo "usage: make export DAY=YYYY-MM-DD" >&2; exit 2; }
	@$(UV) run python -m karte_assets.export --day $(DAY)

# Benchmarks (not part of `make test`): BENCH_ARGS selects parts, e.g. BENCH_ARGS='--part features --sizes 1e6';
# BENCH_ARGS='--part serving' is the lookup service against Redis with wrk (make bench-tools first).
bench: setup
	$(UV) run --frozen --group bench python -m bench.run $(BENCH_ARGS)

# The training image's Python environment (the lock's training group) in its own venv, GPU vs CPU.
gpu-check: $(UV)
	UV=$(UV) python3 bench/gpu_check.py $(GPU_CHECK_ARGS)

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

# Debian's wrk (load generator) and redis-server (the peer) for the serving benchmark
# (`make bench BENCH_ARGS='--part serving'`, bench/serving.py); installed only when missing.
.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null && command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-server; }

# Google's GoogleSQL analyzer (ZetaSQL's local gRPC server, Linux x86-64) from the npm package that
# ships it, and Python stubs for its protos; the tests analyze every SQL file with it. Cached: the
# download and the stubs happen once (docs/googlesql.md).
ZETASQL_VERSION := 1.13.0
ZETASQL_DIR := $(CURDIR)/.karte/zetasql
ZETASQL_SERVER := $(ZETASQL_DIR)/package/lib/zetasql/remote_server.so
ZETASQL_STUBS := $(ZETASQL_DIR)/python/local_service_pb2_grpc.py

zetasql: $(ZETASQL_STUBS)

$(ZETASQL_SERVER):
	@rm -rf $(ZETASQL_DIR)/download && mkdir -p $(ZETASQL_DIR)/download
	cd $(ZETASQL_DIR)/download && npm pack --silent @fivetrandevelopers/zetasql@$(ZETASQL_VERSION) \
		&& tar xzf fivetrandevelopers-zetasql-$(ZETASQL_VERSION).tgz \
			package/lib/zetasql/remote_server.so package/lib/zetasql/protos
	@rm -rf $(ZETASQL_DIR)/package && mv $(ZETASQL_DIR)/download/package $(ZETASQL_DIR)/package
	@rm -rf $(ZETASQL_DIR)/download && touch $@

$(ZETASQL_STUBS): $(ZETASQL_SERVER) | setup
	@rm -rf $(ZETASQL_DIR)/python.partial && mkdir -p $(ZETASQL_DIR)/python.partial
	cd $(ZETASQL_DIR)/package/lib/zetasql/protos && $(UV) run --project $(CURDIR) --frozen python -m grpc_tools.protoc \
		-I . --python_out=$(ZETASQL_DIR)/python.partial --grpc_python_out=$(ZETASQL_DIR)/python.partial \
		$$(find . -name '*.proto' -printf '%P\n')
	@rm -rf $(ZETASQL_DIR)/python && mv $(ZETASQL_DIR)/python.partial $(ZETASQL_DIR)/python

# The deploy pipeline, offline (no Docker engine, no Dagster+): the workflow with actionlint,
# dagster_cloud.yaml with `dagster-cloud ci check` (--dagster-cloud-connect-check=skip: the other
# check calls Dagster+). The images' dependency lists and a dry run of the deploy script are tests
# (karte_assets_tests/test_deploy.py) that `make test` runs.
.PHONY: deploy-check
deploy-check: setup
	$(UV) run --no-sync actionlint .github/workflows/ci-cd.yml
	$(UV) run --no-sync dagster-cloud ci check --project-dir=. --dagster-cloud-connect-check=skip

# The lean suite; the end-to-end runs of the whole graph are marked slow and run by test-slow
# (CI runs both: .ci/run).
test: setup lint zetasql
	$(UV) run pytest -m "not slow"

test-slow: setup zetasql
	$(UV) run pytest -m slow

# The lookup service (karte_assets/serving) on this $KARTE_HOME's snapshots, at http://127.0.0.1:$(SERVE_PORT).
# Without KARTE_SERVING_API_KEYS (JSON client -> key) it runs without keys, on loopback only.
SERVE_PORT ?= 8080
SERVE_CLIENTS ?= default
.PHONY: serve
serve: setup
	$(UV) run --no-sync python -m karte_assets.serving --store "$(KARTE_HOME)/models" --port $(SERVE_PORT) \
		--clients $(SERVE_CLIENTS) $(if $(KARTE_SERVING_API_KEYS),,--auth none) $(SERVE_ARGS)
