# poisonguard developer tasks. Every target creates the virtual environment in $(VENV) when it is missing.
#   make demo         install the package and run the demo (poison a small data set, scan it, compare)
#   make test         install with the dev extras, lint, run the tests
#   make lint         ruff only
#   make bench-scale  run the scaling benchmark
#   make bench-detection  the detection benchmark, quick mode (installs the optional comparators)
#   make bench-service    the monitoring service's ingest benchmark (uvicorn + SQLite, batches of 100 and 1,000)
#   make bench-incremental  incremental against full scans on adult and bank_marketing (70% trusted, 30% new)
#   make bench-clean-tasks  false alarms on real, unpoisoned tables under 17 labels and 3 sample sizes
#   make bench-classes    the representation split's class-level decision (real null data, CNN backdoors; CPU torch)
#   make clean        remove caches, build files and the demo output
#   make distclean    clean, and remove the virtual environment too

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# OpenMP worker threads that spin while they wait can slow a scan from seconds to minutes on a machine that is
# busy with other work; a short spin keeps the speed of an idle machine. A value set by the caller wins.
export GOMP_SPINCOUNT ?= 10000

.PHONY: demo test lint bench-scale bench-detection bench-service bench-incremental bench-clean-tasks bench-classes clean distclean install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# stamps: reinstall only when the package metadata changes (the install is editable, so code changes need none)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/poisonguard demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

bench-scale: $(VENV)/.installed
	$(BIN)/python benchmarks/scale.py

bench-detection: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/detection/run.py --quick

bench-service: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/service/run.py
bench-incremental: $(VENV)/.installed
	$(BIN)/python benchmarks/incremental/run.py
bench-clean-tasks: $(VENV)/.installed
	$(BIN)/python benchmarks/clean_tasks/run.py
# torch pinned: 2.13.0 is a CPU build; an unpinned torch pulls a CUDA build of several GB
bench-classes: $(VENV)/.installed
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/python benchmarks/representation/classes.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache .hypothesis demo_out scan_out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) src/*.egg-info
