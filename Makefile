# gpuplan: two commands set everything up on a fresh machine.
#   make demo   create .venv, install, run the demo on bundled data
#   make test   create .venv, install with dev extras, lint, type-check, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test lint typecheck bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(VENV)/bin/gpuplan demo --output demo-output

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check solver formulations benchmarks tests
	$(VENV)/bin/mypy solver formulations

test: lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks --help

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
