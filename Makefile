# tfrec: `make run` trains, evaluates and exports DeepFM on MovieLens-100k;
# `make test` runs the whole suite (notebooks included). Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfrec-installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Test workers: one per core, at most 4 (each imports TensorFlow; tests/conftest.py groups them).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

.PHONY: run test bench notebooks lint data install clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

data: $(STAMP)
	$(PY) -m tfrec.cli data fetch --variant 100k

run: data
	$(PY) -m tfrec.cli run

test: data
	$(PY) -m ruff check tfrec tests benchmarks notebooks
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --durations=20

bench: data
	$(PY) benchmarks/run_all.py

notebooks: data
	$(PY) notebooks/execute.py notebooks/*.ipynb

lint: $(STAMP)
	$(PY) -m ruff check tfrec tests benchmarks notebooks
	$(PY) -m ruff format --check tfrec tests benchmarks notebooks

clean:
	rm -rf $(VENV) build *.egg-info
