# `make run` and `make test` do their own set-up: venv, packages, FashionMNIST.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TRACKERS := $(VENV)/.trackers

.PHONY: run test lint format data clean

run: $(STAMP) data ## train the default model (pass overrides as ARGS="epochs=3 ...")
	$(PY) run.py $(ARGS)

test: $(STAMP) $(TRACKERS) data ## lint, format check, then the test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

data: $(STAMP)
	@./scripts/get_fashion_mnist.sh $(PY)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

# TensorBoard and MLflow (logger=..., analysis/export.py): an extra, so `make run` stays light.
$(TRACKERS): $(STAMP)
	$(PY) -m pip install -e ".[trackers]"
	touch $@

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
