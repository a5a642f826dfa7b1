# google-token-operator — `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when a project definition changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sandbox/pyproject.toml | cksum | cut -d' ' -f1)
# The tests, the demo and the image all use the same wheels (the operator, and the sandbox
# Google for tests and demo), rebuilt when a source changes.
WHEEL_STAMP := $(VENV)/.wheel-installed
PACKAGE_SOURCES := $(shell find operator sandbox -type f \( -name '*.py' -o -name '*.html' -o -name 'py.typed' -o -name pyproject.toml \)) pyproject.toml
# hack/devkit (local control plane, background servers) is imported from the checkout.
DEVKIT := PYTHONPATH=$(CURDIR)/hack

.PHONY: help venv kube-binaries go-tools chart-lint chart-readme browser chaos-tools shells unit chaos test lint run demo dev release-prepare release bench clean

# image, kind-up, kind-load, deploy, undeploy, e2e-kind: for people with Docker and kind.
include hack/kind.mk
# node-deps, node-up, node-down, e2e-node: a single-node cluster on this machine (root).
include hack/node.mk

help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@echo "==> Installing the operator, the sandbox and the test tools into $(VENV) (a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[test]' ./sandbox
	rm -f $(VENV)/.installed-* $(WHEEL_STAMP)
	touch $@

# The wheels go to .venv/wheels: dist/ holds a release's artifacts (make release).
WHEELS := $(VENV)/wheels
$(WHEEL_STAMP): $(STAMP) $(PACKAGE_SOURCES)
	@echo "==> Building and installing the operator's and the sandbox's wheels"
	# build/ too: setuptools keeps copying a module that was moved or removed from there.
	rm -rf $(WHEELS) build sandbox/build
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(WHEELS) . ./sandbox
	$(BIN)/pip install --quiet --force-reinstall --no-deps $(WHEELS)/*.whl
	touch $@

venv: $(WHEEL_STAMP) ## Create .venv with the operator and the sandbox (from their wheels) and the test tools

kube-binaries: $(WHEEL_STAMP) ## Find or build (once, cached outside the repo) etcd, kube-apiserver, kubectl
	$(DEVKIT) $(BIN)/python -m devkit build

go-tools: $(WHEEL_STAMP) ## Find or build (once, cached outside the repo) helm and promtool
	$(DEVKIT) $(BIN)/python -m devkit.gotools

CHART := charts/google-token-operator
chart-lint: go-tools ## helm lint --strict the chart: defaults, and every optional part switched on
	helm="$$($(DEVKIT) $(BIN)/python -m devkit.gotools helm)"; \
	"$$helm" lint --strict $(CHART); \
	"$$helm" lint --strict $(CHART) --set-json 'watchNamespaces=["reviews"]' \
	  --set ingress.enabled=true,serviceMonitor.enabled=true,prometheusRule.enabled=true \
	  --set podDisruptionBudget.enabled=true,serviceAccount.annotations.team=reviews \
	  --set migrateStorage.enabled=true \
	  --set-json 'extraArgs=["--verbose"]' --set crds.keep=false

chart-readme: $(WHEEL_STAMP) ## Write the chart's README.md from its values.yaml (tests/unit/test_chart_readme.py)
	$(BIN)/python hack/chart_readme.py

browser: ## Install Debian's chromium for the browser tests (apt-get; needs root)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

chaos-tools: ## Install Debian's faketime for the clock-skew run (apt-get; needs root)
	@if ! command -v faketime >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "the fault runs need faketime: run 'sudo apt-get install faketime'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; \
	fi

shells: ## Install Debian's zsh and fish for the completion tests (apt-get; needs root)
	@if ! command -v zsh >/dev/null || ! command -v fish >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "the completion tests need zsh and fish: run 'sudo apt-get install zsh fish'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh fish >/dev/null; \
	fi

unit: $(WHEEL_STAMP) ## Fast tests: pure code, sandbox Google, callback app (no cluster, no browser)
	$(BIN)/pytest -q tests/unit tests/sandbox tests/callback

chaos: $(WHEEL_STAMP) kube-binaries chaos-tools ## Only the fault runs (kills, freeze, clock skew, restarts, outages)
	$(BIN)/python hack/check_leftovers.py --sweep-stale
	$(BIN)/pytest -q -s tests/chaos
	$(BIN)/python hack/check_leftovers.py

# The tests mostly wait, so more workers than cores; tests/fixtures/workers.py says what
# stays together on one worker and what starts first. The slowest tests are listed at the end.
TEST_WORKERS ?= 4
test: $(WHEEL_STAMP) kube-binaries go-tools browser chaos-tools shells node-deps ## Every tier: unit, sandbox, cluster, chart, alerts, browser, fault runs, node
	$(BIN)/python hack/check_leftovers.py --sweep-stale
	$(BIN)/pytest -q -raP --numprocesses $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations 30
	$(BIN)/python hack/check_leftovers.py

lint: $(WHEEL_STAMP) ## ruff (lint + format check), mypy --strict and the import contracts (lint-imports)
	$(BIN)/ruff check operator sandbox tests hack
	$(BIN)/ruff format --check operator sandbox tests hack
	$(BIN)/mypy
	PYTHONPATH=operator $(BIN)/lint-imports --no-cache --no-logo

run: $(WHEEL_STAMP) ## Run the operator against the current kubeconfig (apply crds/, create its namespace first)
	$(BIN)/google-token-operator run

demo: $(WHEEL_STAMP) kube-binaries ## Control plane + sandbox Google + operator, end to end, on this machine
	$(BIN)/python hack/demo.py

dev: $(WHEEL_STAMP) kube-binaries ## A local loop until Ctrl-C: control plane, sandbox Google, operator, callback, the examples
	$(BIN)/python hack/dev.py

# docs/development/releasing.md: prepare (a commit), then build from that commit.
release-prepare: $(WHEEL_STAMP) ## Set VERSION=X.Y.Z in pyproject.toml, the chart (and its README) and the production overlay; CHANGELOG's Unreleased becomes X.Y.Z
	$(DEVKIT) $(BIN)/python -m devkit.release prepare "$(VERSION)"
	$(BIN)/python hack/chart_readme.py  # the chart's README names its version

release: $(WHEEL_STAMP) node-deps ## Build release VERSION=X.Y.Z (= pyproject's, committed) into dist/: image (OCI), chart, CRDs, install.yaml, SHA256SUMS
	$(DEVKIT) $(BIN)/python -m devkit.release build "$(VERSION)"

BENCH_SIZES ?= 500,2000,5000
BENCH_NOISE ?= 10000
BENCH_JSON ?= bench/results.json
# The namespaced mode: this many watched namespaces with --leader-election, 60 s tokens.
BENCH_NAMESPACES ?= 100
BENCH_NAMESPACES_JSON ?= bench/namespaces.json
bench: $(WHEEL_STAMP) kube-binaries ## Scale benchmark (not in test; ~30 min): tables, bench/results.json and bench/namespaces.json
	$(DEVKIT) $(BIN)/python hack/bench.py --sizes $(BENCH_SIZES) --noise $(BENCH_NOISE) --json $(BENCH_JSON)
	$(DEVKIT) $(BIN)/python hack/bench.py --namespaces $(BENCH_NAMESPACES) --observe 300 --json $(BENCH_NAMESPACES_JSON)
	$(BIN)/python hack/check_leftovers.py

clean: ## Remove .venv and build/test output (the kube binary cache stays)
	rm -rf $(VENV) build dist bin operator/*.egg-info sandbox/*.egg-info sandbox/build .pytest_cache .mypy_cache .ruff_cache test-output
