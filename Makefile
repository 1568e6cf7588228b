# The two quick-start commands: `make demo` (set up, train the embedded default, evaluate it)
# and `make test` (set up, run the offline test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed only when the venv has no torch yet, so pip never resolves a multi-GB CUDA build by
# accident. Elsewhere pick your build, e.g.
#   make setup TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# `make test` runs the suite on this many pytest-xdist workers, one torch thread each (tests/conftest.py),
# a file at a time, the README test first (it is the longest); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: setup demo lint test bench clean

# The serving kernel (C) is compiled by the install: a changed source or hook reinstalls.
$(VENV)/.installed: pyproject.toml hatch_build.py maskctl/masking/kernels/flip_terms.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[demo,serve,test,ray]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(OFFLINE) $(VENV)/bin/maskctl train --output masks/bbc-news-minilm.bundle --overwrite
	$(OFFLINE) $(VENV)/bin/maskctl eval masks/bbc-news-minilm.bundle --split test

# Lint and format check (ruff) and the type check of the public API (mypy), as configured in
# pyproject.toml; `make test` runs it first, so CI enforces it.
LINT_PATHS := maskctl tests bench examples hatch_build.py
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

test: setup lint
	$(OFFLINE) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) masks finetuned .pytest_cache .mypy_cache .ruff_cache
