# worker-lab: `make lab` runs the verdict matrix, `make test` runs the tests.
# Both install what is missing first (Debian packages, the venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What the lab runs, as command:Debian package (gcc builds the redis host-crash shim of `make faults`;
# PostgreSQL's initdb is not on PATH in Debian, so its need is a path).
APT_NEEDS := nginx:nginx redis-server:redis-server memcached:memcached wrk:wrk cc:gcc cc:libc6-dev \
  /usr/lib/postgresql/*/bin/initdb:postgresql
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup lab quick list expected serve test test-fast lint clean stability

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Install Debian packages and the venv (idempotent)
	@missing=""; for need in $(APT_NEEDS); do b=$${need%%:*}; \
	  command -v $$b >/dev/null || [ -x /usr/sbin/$$b ] || ls $$b >/dev/null 2>&1 || missing="$$missing $${need#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt services/app/requirements.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

ENGINE ?= native

lab: setup ## Run the default matrix (every scenario x strategy); APP=path/to/worker-lab.toml: your app's; ENGINE=compose, ARGS="--quick" etc. pass through
	$(PY) -m workerlab run --engine $(ENGINE) $(if $(APP),--app $(APP)) $(ARGS)

quick: setup ## The matrix at a few hundred requests per cell
	$(PY) -m workerlab run --quick $(ARGS)

list: setup ## Show scenarios and strategies
	$(PY) -m workerlab list

expected: setup ## Print the declared expected verdict of every cell
	$(PY) -m workerlab expected $(ARGS)

serve: setup ## Keep one stack up: make serve SCENARIO=gevent-x4
	@test -n "$(SCENARIO)" || { echo "usage: make serve SCENARIO=name (make list shows them)"; exit 2; }
	$(PY) -m workerlab serve $(SCENARIO) $(ARGS)

test: setup ## Run the tests (real redis, memcached, nginx, gunicorn, PostgreSQL); browser and docker tests have their own targets
	$(PY) -m pytest -q -m "not browser and not docker" $(ARGS)

test-fast: setup ## Only the tests that start no server
	$(PY) -m pytest -q -m "not stack and not docker" $(ARGS)

lint: setup ## ruff
	$(VENV)/bin/ruff check .

clean: ## Remove results and caches (keeps the venv)
	rm -rf results .pytest_cache .ruff_cache

-include compose/compose.mk
-include mk/*.mk

RUNS ?= 5
stability: setup ## Run the matrix RUNS times (default 5) with ARGS and list every cell whose verdict changed
	$(PY) -m workerlab stability --runs $(RUNS) $(ARGS)
