# `make run` and `make test` do their own set-up: venv, packages, FashionMNIST.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := $(VENV)/.extras
# MkDocs prints a banner about its next major version on every build; the build is what counts.
export NO_MKDOCS_2_WARNING := 1

.PHONY: run check test lint format docs data clean

# Two tiers of tests (docs/development.md), both on every core (pytest-xdist; a module's
# shared cluster keeps its tests on one worker by its xdist_group). `make check` leaves out
# what pyproject.toml marks slow, service or benchmark; `make test` runs everything.
TEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup
FAST_TIER := not slow and not service and not benchmark

run: $(STAMP) data ## train the default model (pass overrides as ARGS="epochs=3 ...")
	$(PY) run.py $(ARGS)

check: $(STAMP) $(EXTRAS) data ## lint, format check and the fast tier: while you work
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTEST) -m "$(FAST_TIER)" --durations=10 $(PYTEST_ARGS)

test: $(STAMP) $(EXTRAS) data ## lint, format check, the manual's strict build, then every test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mkdocs build --strict
	$(PYTEST) --durations=15 $(PYTEST_ARGS)

docs: $(EXTRAS) ## build the manual (docs/, mkdocs.yml) into site/; open site/index.html
	$(VENV)/bin/mkdocs build --strict

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

# TensorBoard and MLflow (logger=..., analysis/export.py) and MkDocs: extras, so `make run`
# stays light.
$(EXTRAS): $(STAMP) pyproject.toml
	$(PY) -m pip install -e ".[trackers,docs]"
	touch $@

clean:
	rm -rf $(VENV) outputs multirun site .pytest_cache .ruff_cache
