# Quick start targets: each creates (or reuses) .venv with the pinned dependencies.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgezoo-installed

.PHONY: demo test test-slow mutation-check bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,quantum]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgezoo demo

# Two workers, one test file each at a time (module fixtures stay in one process).
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

# Each mutation in tools/mutation_check.py must make its named tests fail (not in `make test`).
mutation-check: $(STAMP)
	$(BIN)/python tools/mutation_check.py

bench: $(STAMP)
	$(BIN)/python bench/micro_digits.py
	$(BIN)/python bench/converters_mlperf.py
	$(BIN)/python bench/cpu_latency.py --paper

clean:
	rm -rf $(VENV) artifacts
