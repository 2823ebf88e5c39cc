# `make run` and `make test` do their own set-up: venv, packages, FashionMNIST.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := $(VENV)/.extras
# MkDocs prints a banner about its next major version on every build; the build is what counts.
export NO_MKDOCS_2_WARNING := 1

.PHONY: run test lint format docs data clean

run: $(STAMP) data ## train the default model (pass overrides as ARGS="epochs=3 ...")
	$(PY) run.py $(ARGS)

test: $(STAMP) $(EXTRAS) data ## lint, format check, the manual's strict build, then the test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mkdocs build --strict
	$(PY) -m pytest $(PYTEST_ARGS)

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
