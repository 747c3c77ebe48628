# physworld -- `make help` lists the targets. Every target installs the venv first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The oldest supported versions (requirements/lowest.txt, pyproject.toml's lower bounds), in a venv of their own.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo evaluate report test test-all test-lowest bench lint format clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv: torch==2.13.0 (CPU build) first, then the package with its dev tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## The main job: the four phases end to end on small data, then a report (2-core CPU, about 29 min)
	$(BIN)/python scripts/pipeline.py experiment=demo

# RUN: a training run folder for `make evaluate`, a run or pipeline folder for `make report` (default: the newest
# run in outputs/train/runs with a checkpoints/best.ckpt; the folder names start with the time, so sorting them
# sorts by age, and runs that stopped before their first checkpoint are passed over).
RUN ?= $(patsubst %/checkpoints/best.ckpt,%,$(lastword $(sort $(wildcard outputs/train/runs/*/checkpoints/best.ckpt))))

evaluate: $(STAMP) ## Evaluate RUN's best checkpoint on its test split: metrics.json + figures in RUN/evaluate/
	@test -n "$(RUN)" || { echo "make evaluate: no run with checkpoints/best.ckpt in outputs/train/runs; pass RUN=<run folder>" >&2; exit 2; }
	$(BIN)/python scripts/evaluate.py ckpt_path=$(RUN)/checkpoints/best.ckpt

report: $(STAMP) ## Write RUN/report.md and RUN/report.html (RUN: a run or pipeline folder)
	@test -n "$(RUN)" || { echo "make report: no run with checkpoints/best.ckpt in outputs/train/runs; pass RUN=<folder>" >&2; exit 2; }
	$(BIN)/python scripts/report.py $(RUN)

test: $(STAMP) ## Fast test suite (a few minutes on 2 CPU cores)
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP) ## Every test but the GPU ones, slow ones included
	$(BIN)/python -m pytest -q -m "not gpu"

# pip takes requirements/lowest.txt as constraints: the package and its dev tools at exactly those versions (on
# PyPI, torch 2.5.1 for Linux is the CUDA build, a few GB with its nvidia-* packages).
$(LOWEST_STAMP): pyproject.toml requirements/lowest.txt
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -c requirements/lowest.txt -e '.[dev]'
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP) ## Fast suite and ruff on the oldest supported versions (requirements/lowest.txt), in .venv-lowest
	$(LOWEST)/bin/python -m pytest -q -m "not slow and not gpu"
	$(LOWEST)/bin/ruff check .
	$(LOWEST)/bin/ruff format --check .

bench: $(STAMP) ## Benchmark (minutes): outputs/benchmarks/<time>.{json,md}; BENCH_ARGS="--quick", "--threads 1", ...
	$(BIN)/python scripts/benchmark.py $(BENCH_ARGS)

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove caches (keeps data/ and outputs/)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +
