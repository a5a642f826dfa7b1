# google-token-operator — `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when the project definition changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# The tests, the demo and the image all use the same wheel, rebuilt when a source changes.
WHEEL_STAMP := $(VENV)/.wheel-installed
PACKAGE_SOURCES := $(shell find operator -type f \( -name '*.py' -o -name '*.html' -o -name 'py.typed' \)) pyproject.toml
# The devcluster finds hack/kube-binaries through this when installed from the wheel.
export GTO_REPO_ROOT := $(CURDIR)

.PHONY: help venv kube-binaries browser unit test lint run demo clean

# image, kind-up, kind-load, deploy, undeploy, e2e-kind: for people with Docker and kind.
include hack/kind.mk

help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[test]'
	rm -f $(VENV)/.installed-* $(WHEEL_STAMP)
	touch $@

$(WHEEL_STAMP): $(STAMP) $(PACKAGE_SOURCES)
	rm -rf dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .
	$(BIN)/pip install --quiet --force-reinstall --no-deps dist/google_token_operator-*.whl
	touch $@

venv: $(WHEEL_STAMP) ## Create .venv with the operator (installed from its wheel) and the test tools

kube-binaries: $(WHEEL_STAMP) ## Find or build (once, cached outside the repo) etcd, kube-apiserver, kubectl
	$(BIN)/python -m google_token_operator.devcluster build

browser: ## Install Debian's chromium for the browser tests (apt-get; needs root)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

unit: $(WHEEL_STAMP) ## Fast tests: pure code, sandbox Google, callback app (no cluster, no browser)
	$(BIN)/pytest -q tests/unit tests/sandbox tests/callback

test: $(WHEEL_STAMP) kube-binaries browser ## Every tier: unit, sandbox, cluster (real kube-apiserver), browser
	$(BIN)/pytest -q
	$(BIN)/python hack/check_leftovers.py

lint: $(WHEEL_STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check operator tests hack
	$(BIN)/ruff format --check operator tests hack
	$(BIN)/mypy

run: $(WHEEL_STAMP) ## Run the operator against the current kubeconfig (apply crds/ first)
	$(BIN)/google-token-operator run

demo: $(WHEEL_STAMP) kube-binaries ## Control plane + sandbox Google + operator, end to end, on this machine
	$(BIN)/python hack/demo.py

clean: ## Remove .venv and build/test output (the kube binary cache stays)
	rm -rf $(VENV) build dist bin operator/*.egg-info .pytest_cache .mypy_cache .ruff_cache test-output
