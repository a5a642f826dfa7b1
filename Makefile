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

.PHONY: help venv kube-binaries browser unit test lint run demo clean

# image, kind-up, kind-load, deploy, undeploy, e2e-kind: for people with Docker and kind.
include hack/kind.mk
# node-deps, node-up, node-down, e2e-node: a single-node cluster on this machine (root).
include hack/node.mk

help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[test]' ./sandbox
	rm -f $(VENV)/.installed-* $(WHEEL_STAMP)
	touch $@

$(WHEEL_STAMP): $(STAMP) $(PACKAGE_SOURCES)
	rm -rf dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist . ./sandbox
	$(BIN)/pip install --quiet --force-reinstall --no-deps dist/*.whl
	touch $@

venv: $(WHEEL_STAMP) ## Create .venv with the operator and the sandbox (from their wheels) and the test tools

kube-binaries: $(WHEEL_STAMP) ## Find or build (once, cached outside the repo) etcd, kube-apiserver, kubectl
	$(DEVKIT) $(BIN)/python -m devkit build

browser: ## Install Debian's chromium for the browser tests (apt-get; needs root)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

unit: $(WHEEL_STAMP) ## Fast tests: pure code, sandbox Google, callback app (no cluster, no browser)
	$(BIN)/pytest -q tests/unit tests/sandbox tests/callback

test: $(WHEEL_STAMP) kube-binaries browser $(NODE_PREREQUISITES) ## Every tier: unit, sandbox, cluster (real kube-apiserver), browser, node
	$(BIN)/pytest -q
	$(BIN)/python hack/check_leftovers.py

lint: $(WHEEL_STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check operator sandbox tests hack
	$(BIN)/ruff format --check operator sandbox tests hack
	$(BIN)/mypy

run: $(WHEEL_STAMP) ## Run the operator against the current kubeconfig (apply crds/, create its namespace first)
	$(BIN)/google-token-operator run

demo: $(WHEEL_STAMP) kube-binaries ## Control plane + sandbox Google + operator, end to end, on this machine
	$(BIN)/python hack/demo.py

clean: ## Remove .venv and build/test output (the kube binary cache stays)
	rm -rf $(VENV) build dist bin operator/*.egg-info sandbox/*.egg-info sandbox/build .pytest_cache .mypy_cache .ruff_cache test-output
