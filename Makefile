# Telework Hub — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run run-workers test check lint typecheck bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
	  || $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## Run the service on the embedded default (SQLite under var/, in-process stores, demo org).
run: install
	$(BIN)/python -m app serve

## Several web workers on one port (README, "Several workers"): needs REDIS_URL; make run-workers WORKERS=4
WORKERS ?= 2
run-workers: install
	@test -n "$(REDIS_URL)" || { echo "run-workers needs REDIS_URL (e.g. redis://127.0.0.1:6379/0)" >&2; exit 1; }
	$(BIN)/python -m app migrate
	if [ "$${APP_ENV:-dev}" = dev ]; then $(BIN)/python -m app seed; fi
	MIGRATE_ON_START=0 SEED_DEMO=0 $(BIN)/uvicorn app.main:create_app --factory --workers $(WORKERS) \
	  --host $${HOST:-127.0.0.1} --port $${PORT:-8000} --proxy-headers

## Run the whole test suite (PostgreSQL/Redis variants when DATABASE_URL/REDIS_URL are set).
test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/python -m bench

lock:
	rm -rf /tmp/telework-lock && $(PYTHON) -m venv /tmp/telework-lock
	/tmp/telework-lock/bin/pip install -q --upgrade pip && /tmp/telework-lock/bin/pip install -q ".[dev]"
	(echo "# Fully pinned dependencies (Python 3.11, Linux). Refresh: make lock"; \
	  /tmp/telework-lock/bin/pip freeze --exclude-editable | grep -v '^telework-hub') > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-results
