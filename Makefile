# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint lock bench clean viewer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.test-installed: requirements-test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements-test.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

## make viewer: the prebuilt OHIF viewer from the npm registry (pinned in
## archive/viewer/ohif.lock.json). Without npm it says so and the rest still runs.
viewer:
	@$(PYTHON) scripts/install_viewer.py || [ $$? -eq 2 ]

## make run: the product on its embedded defaults at http://127.0.0.1:8000
run: $(VENV)/.run-installed viewer
	scripts/run_embedded.sh

## make test: install what the tests need, start their servers, run the suite
test: $(VENV)/.test-installed viewer
	scripts/install_test_tools.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make lock: re-pin dependencies after editing pyproject.toml
lock: | $(BIN)/python
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --extra test --no-emit-index-url --no-emit-find-links -o requirements-test.lock pyproject.toml

bench: $(VENV)/.test-installed viewer
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache
