# physworld -- `make help` lists the targets. Every target installs the venv first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint format clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv: torch==2.13.0 (CPU build) first, then the package with its dev tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## The main job: generate a small Moving MNIST set and train the reconstruction phase (CPU, minutes)
	$(BIN)/python scripts/generate_data.py experiment=demo
	$(BIN)/python train.py experiment=demo

test: $(STAMP) ## Fast test suite (a few minutes on 2 CPU cores)
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP) ## Every test but the GPU ones, slow ones included
	$(BIN)/python -m pytest -q -m "not gpu"

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove caches (keeps data/ and outputs/)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +
