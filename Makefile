# Two entry points: `make demo` (install, then run the main job) and `make test` (install, then test).
# Torch goes in first, pinned to the CPU build this machine keeps on disk: an unpinned torch
# pulled in by another requirement would download a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: demo test install dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" || $(BIN)/pip install --quiet "torch>=2.4"

# constraints.txt pins what changes results (scikit-learn, numpy, MuJoCo, ...): same numbers on every install
install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[leaderboard]"

dev: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"

demo: install
	$(BIN)/python scripts/demo.py

test: dev
	$(BIN)/python -m pytest -n 2
