# Likeness: `make run` sets up and serves the demo study; `make test` checks style and types, then
# runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test test-fast lint fmt typecheck install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	@echo
	@$(BIN)/flask urls --host $(HOST) --port $(PORT)
	@echo
	$(BIN)/flask run --host $(HOST) --port $(PORT)

# Style (ruff) and types (mypy on analysis/): what CI fails on before any test runs.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: install-dev
	$(BIN)/mypy

# Rewrite the tree as lint wants it: safe autofixes (import order, `X | None`, ...), then format.
fmt: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Lint, then the whole suite in one pytest session: every test on SQLite, and every test that
# uses the database on PostgreSQL too when TEST_DATABASE_URL is set (less those marked `once`;
# the browser tests run on PostgreSQL only). More workers than the two cores: browser tests and
# job workers wait, and the other workers use the cores meanwhile.
test: lint
	@[ -n "$$TEST_DATABASE_URL" ] || echo "TEST_DATABASE_URL is not set: the tests run on SQLite only."
	LIKENESS_TEST_DB="$$TEST_DATABASE_URL" $(BIN)/python -m pytest -n 4 --dist loadfile

# Everything but the browser and slow tests, on SQLite only: the quick check while working.
test-fast: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not browser and not slow"

bench: install-dev
	$(BIN)/python bench/analysis.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
