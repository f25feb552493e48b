# WidgetApp Streaming: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: run test check lint venv services chromium migrate seed serve restart scale stop site site-stop bench docs

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

services:
	./scripts/ensure-services.sh

chromium:
	./scripts/ensure-chromium.sh

migrate: venv
	DJANGO_DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DJANGO_DEBUG=1 $(PY) manage.py seed_demo

## Embedded default: SQLite + in-memory layer, one daphne process on http://127.0.0.1:8000.
## The banner (addresses, demo accounts) is printed once it answers; requests go to run/access.log.
run: seed
	DJANGO_DEBUG=1 HOST=$(HOST) PORT=$(PORT) RUN_DIR=$(RUN_DIR) PY=$(PY) ./scripts/run-demo.sh

## Production: WORKERS daphne workers behind one socket on HOST:PORT under supervisord, in the
## foreground; reads DATABASE_URL, REDIS_URL (required when WORKERS > 1), DJANGO_*, PUBLIC_ORIGINS,
## TRUSTED_PROXIES, MAX_WORKERS, NOFILE. See docs/operations.md.
RUN_DIR ?= $(CURDIR)/run

serve: venv
	WORKERS=$(WORKERS) HOST=$(HOST) PORT=$(PORT) RUN_DIR=$(RUN_DIR) ./deploy/serve.sh

## Change the number of workers of a running `make serve` without an outage (new ones start first).
scale:
	WORKERS=$(WORKERS) HOST=$(HOST) PORT=$(PORT) RUN_DIR=$(RUN_DIR) ./deploy/scale.sh

## Rolling restart of a running `make serve`: one worker at a time, each draining first.
restart:
	HOST=$(HOST) PORT=$(PORT) RUN_DIR=$(RUN_DIR) ./deploy/restart.sh

## Stop every worker (each drains first) and supervisord.
stop:
	RUN_DIR=$(RUN_DIR) ./deploy/stop.sh

## nginx with TLS (self-signed on first run) on HTTPS_PORT in front of one stack per BACKEND_PORTS
## entry, each a `make serve` of WORKERS workers with its own RUN_DIR under SITE_DIR.
SITE_DIR ?= $(RUN_DIR)/site
HTTPS_PORT ?= 8443
HTTP_PORT ?= 8080
BACKEND_PORTS ?= 8001 8002

site: venv
	SITE_DIR=$(SITE_DIR) HTTPS_PORT=$(HTTPS_PORT) HTTP_PORT=$(HTTP_PORT) BACKEND_PORTS="$(BACKEND_PORTS)" \
		WORKERS=$(WORKERS) ./deploy/site.sh

site-stop:
	SITE_DIR=$(SITE_DIR) ./deploy/site-stop.sh

## The whole suite against real PostgreSQL and Redis (and Chromium for the browser tests), three
## test processes in parallel (each its own database and Redis key prefixes; a file stays together).
TEST_PROCESSES ?= 3
test: venv services chromium
	DJANGO_DEBUG=1 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

## Fast lane: lint plus the in-process tests on the embedded default (SQLite, in-memory layer; no
## PostgreSQL, Redis, Chromium or server processes needed).
check: lint
	env -u DATABASE_URL -u REDIS_URL DJANGO_DEBUG=1 $(VENV)/bin/pytest -q -p no:cacheprovider \
		-m "not slow and not process and not services and not browser" $(PYTEST_ARGS)

## The documentation as a site in site/ (MkDocs, Material theme); fails on any warning or broken link.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## Benchmarks side by side (ours, raw websockets ceiling, naive Channels); see bench/README.md.
bench: venv services
	test -d bench/node_modules/ws || (cd bench && npm ci --no-audit --no-fund)
	$(PY) bench/run.py $(BENCH_ARGS)
