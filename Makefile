# Quick start: `make demo` (a rollout on a local cluster) and `make test` (unit and e2e tests).
SHELL := bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER ?= kwok
CLUSTER_NAME ?= llmrollout
export CLUSTER CLUSTER_NAME

.PHONY: help setup demo test unit e2e lint crds lock cluster-up cluster-down kubeconfig binaries run bench bench-scale

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## install Prometheus, the Python venv and the cached control-plane binaries
	@bash hack/setup.sh

binaries: ## build the control-plane binaries into the cache (once per version)
	@bash hack/build-binaries.sh

demo: setup ## run the demo on the local cluster and print what happens
	@bash hack/demo.sh

# pytest-xdist workers, each starting a local cluster of its own and taking one test at a time; against a
# given KUBECONFIG one process, since each worker's operator acts on every namespace of its cluster.
TEST_WORKERS ?= $(if $(KUBECONFIG),0,2)

test: setup ## run unit and e2e tests (starts local clusters unless KUBECONFIG is set)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --maxschedchunk=1

unit: setup ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit

e2e: setup ## e2e tests only
	$(PY) -m pytest tests/e2e -n $(TEST_WORKERS) --maxschedchunk=1

bench: setup ## the decision benchmark in quick mode (the full run: $(PY) -m bench.decisions --out bench/results)
	$(PY) -m bench.decisions --quick --out $${BENCH_OUT:-$$(mktemp -d)}

bench-scale: setup ## the scale benchmark, quick (the full run: $(PY) -m bench.scale --n 100,300,1000)
	$(PY) -m bench.scale --quick

lint: setup ## ruff and mypy --strict
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests hack bench
	$(VENV)/bin/mypy operator/llmrollout

crds: ## regenerate the CRD from the pydantic models (crds/ and the chart)
	$(PY) -m llmrollout.api.crd > crds/llmdeployments.llmrollout.io.yaml
	cp crds/llmdeployments.llmrollout.io.yaml charts/llmrollout/crds/

lock: ## regenerate the image's hashed requirements from pyproject.toml (needs uv: pip install uv)
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --python-platform linux -o requirements.lock
	uv pip compile requirements-build.in --generate-hashes --python-version 3.11 --python-platform linux -o requirements-build.lock

cluster-up: ## start the local cluster (CLUSTER=kwok by default; CLUSTER=kind needs Docker)
	@bash hack/cluster-up.sh

cluster-down: ## stop and remove the local cluster
	@bash hack/cluster-down.sh

kubeconfig: ## print the local cluster's kubeconfig path
	@bash -c '. hack/lib.sh && echo "$$KUBECONFIG_FILE"'

run: setup ## run the operator against $$KUBECONFIG (or the local cluster), all namespaces
	KUBECONFIG=$${KUBECONFIG:-$$($(MAKE) -s kubeconfig)} $(VENV)/bin/llmrollout run --all-namespaces --standalone
