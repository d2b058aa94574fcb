# Whistle on one box. The two commands: `make run` (the platform) and `make test`.
# Both first install what is missing (.venv, node_modules/, RabbitMQ/Redis via apt) and
# start the services that are not answering; see scripts/services.sh for the details.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV       := .venv
PY_STAMP   := $(VENV)/.stamp-pyproject
NODE_STAMP := node_modules/.stamp-package-json
SERVICES   := scripts/services.sh
TEST_VHOST := whistle_test
OUT        := test-output
PYTEST_ARGS ?=

.PHONY: help run test lint services services-test status stop-services bench clean distclean

help:
	@echo "make run            install what is missing, start the services, run the platform (whistle up)"
	@echo "make test           install what is missing, start the services, ruff check + pytest"
	@echo "make lint           ruff check ."
	@echo "make services       only bring RabbitMQ (5672), Redis (6379), pouchdb-server (5984) up"
	@echo "make status         which services answer"
	@echo "make stop-services  stop the pouchdb-server this checkout started (system services stay)"
	@echo "make bench          run every benchmark in bench/ (listed first), one after the other"
	@echo "make clean          remove caches and $(OUT)/;  make distclean: also .venv, node_modules, data"

run: $(PY_STAMP) services
	@echo "==> whistle up (Ctrl-C stops it; the services keep running)"
	@exec $(VENV)/bin/whistle up

# ruff and pytest both run, so a lint error does not hide test results; either fails the target
# (so does pytest's exit code 5, "no tests collected"). Narrow with PYTEST_ARGS="-k registrar".
test: $(PY_STAMP) services-test
	@rc=0; \
	echo "==> ruff check ."; $(VENV)/bin/ruff check . || rc=1; \
	echo "==> pytest (log and junit xml in $(OUT)/)"; mkdir -p $(OUT); \
	$(VENV)/bin/pytest --junitxml=$(OUT)/junit.xml $(PYTEST_ARGS) 2>&1 | tee $(OUT)/pytest.log || rc=1; \
	exit $$rc

lint: $(PY_STAMP)
	@echo "==> ruff check ."
	@$(VENV)/bin/ruff check .

services: $(NODE_STAMP)
	@$(SERVICES) up

services-test: services
	@$(SERVICES) vhost $(TEST_VHOST)
	@$(SERVICES) tools

status:
	@$(SERVICES) status

stop-services:
	@$(SERVICES) down

# the benchmark scripts (bench/ also holds their shared modules)
BENCHES ?= esl_parse cache_cost registrar registrar_start auth_storm event_firehose route_storm \
	register_storm cdr_firehose api_load callflow_routes callflow_calls soak

bench: $(PY_STAMP) services
	@$(SERVICES) tools
	@echo "==> the benchmarks, one command each (BENCHES=\"...\" picks some): $(BENCHES)"
	@rc=0; \
	for f in $(addprefix bench/,$(addsuffix .py,$(BENCHES))); do \
	  echo "==> $(VENV)/bin/python $$f"; $(VENV)/bin/python "$$f" || { echo "FAILED: $$f"; rc=1; }; \
	done; exit $$rc

clean:
	@echo "==> removing caches and $(OUT)/"
	@rm -rf $(OUT) .pytest_cache .ruff_cache .hypothesis build dist
	@find . \( -path ./$(VENV) -o -path ./node_modules -o -path ./.git \) -prune -o \
	  \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0r rm -rf

distclean: stop-services clean
	@echo "==> removing $(VENV), node_modules, .pouchdb (CouchDB data), .run"
	@rm -rf $(VENV) node_modules package-lock.json .pouchdb .run

# --- installs, redone only when their inputs change (stamp files) ---------------------

$(VENV)/bin/python:
	@echo "==> creating $(VENV) (python3 -m venv)"
	@python3 -m venv $(VENV) || { echo "python3 -m venv failed; on Debian: sudo apt-get install -y python3-venv" >&2; exit 1; }

$(PY_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing whistle with its dev extras into $(VENV) (pip install -e '.[dev]')"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json
	@command -v npm >/dev/null || { echo "npm not found; on Debian: sudo apt-get install -y nodejs npm" >&2; exit 1; }
	@echo "==> installing pouchdb-server into node_modules/ (npm install; about 2 min the first time)"
	@npm install --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@
