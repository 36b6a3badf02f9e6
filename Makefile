# One venv, built on first use; every target below installs what it needs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv test unit lint codegen codegen-check demo bench clean

help:
	@echo "make demo           run the bulk-export demo against the embedded sandbox"
	@echo "make test           codegen-check + lint + the whole test suite"
	@echo "make lint           ruff + mypy --strict"
	@echo "make codegen        regenerate amili_async/models from openapi/"
	@echo "make codegen-check  fail when the committed models are stale"
	@echo "make bench          benchmarks (not part of make test; ARGS=--quick, --write-results)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

test: $(STAMP) codegen-check lint unit

unit: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check amili_async tests codegen bench
	$(BIN)/ruff format --check amili_async tests codegen bench
	$(BIN)/mypy

codegen: $(STAMP)
	$(BIN)/python codegen/generate.py

codegen-check: $(STAMP)
	$(BIN)/python codegen/generate.py --check

demo: $(STAMP)
	$(BIN)/amili-async demo

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
