# Telework Hub — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test check lint typecheck bench lock clean

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
