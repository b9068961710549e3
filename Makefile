# The two set-up commands are `make up` (run the platform) and `make test` (run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

# requirements.lock: the project with every extra (what `make install` installs).
# requirements-runtime.lock: the project alone, on the same pins (what the image installs).
# One resolution for every platform and Python >= 3.11, with the hashes of every file.
# `make lock` keeps the pins that still fit pyproject.toml; `make lock LOCK_FLAGS=--upgrade`
# moves everything to the newest release that fits.
LOCK_FLAGS ?=
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)

.PHONY: install check-lock lock test fuzz lint bench docs up run clean

# Exactly the lock: pip only (nothing but python3 needed), every file checked against its
# hash, then the project itself without resolving anything, then whatever an older install
# left that the lock no longer names is removed.
$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python tools/check_lock.py --extraneous \
		| xargs --no-run-if-empty $(BIN)/python -m pip uninstall --quiet --yes
	touch $@

install: $(BIN)/.installed

check-lock: install ## the locks fit pyproject.toml, and the venv is exactly the lock
	$(BIN)/python tools/check_lock.py

lock: install ## refresh both lock files from pyproject.toml, then install the new lock
	$(COMPILE) --extra dev --extra embedded -o requirements.lock
	$(COMPILE) --constraint requirements.lock -o requirements-runtime.lock
	$(MAKE) install

test: check-lock ## the whole suite against the local PostgreSQL and Redis
	$(BIN)/ruff check .
	$(BIN)/pytest

fuzz: install ## the property-based tests at length; never part of `make test`
	HYPOTHESIS_PROFILE=long $(BIN)/pytest -m fuzz -p no:randomly

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install ## slow benchmarks; never part of `make test`
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python benchmarks/renewal_day.py --slow-smtp-ms 200
	$(BIN)/python benchmarks/partition_migration.py
	$(BIN)/python benchmarks/growth.py

docs: install ## docs/configuration.md, generated from the Settings class (core/settings.py)
	$(BIN)/python -m core.configuration_docs --write

up: install ## the whole platform on this machine (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set)
	$(BIN)/billing up

run: up

clean:
	rm -rf $(VENV) var *.egg-info
