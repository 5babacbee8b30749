# radar_app: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: all run test lint format worker bench clean

all:
	@echo "make run     - install, migrate, start Redis, simulator, workers and web; Ctrl-C stops"
	@echo "              them all, a running job resumes on the next run. Login, API token and"
	@echo "              ports stay the same (kept in instance/). Settings: PORT, REDIS_PORT,"
	@echo "              WORKERS, INSTANCE_DIR, DEVSTACK_STOP_TIMEOUT, PRICE_PER_EXPORT"
	@echo "make test    - install and run the whole test suite"
	@echo "make lint    - ruff check, format check, mypy and the import rules (docs/architecture.md)"
	@echo "make format  - ruff format"
	@echo "make worker  - start one more worker (REDIS_URL must point at the running Redis)"
	@echo "make bench   - performance benchmark (BENCH_ARGS=--quick for the CI-sized run)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/python -m devstack

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_architecture.py

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: $(VENV)/.installed
	$(BIN)/python worker.py

bench: $(VENV)/.installed
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts
