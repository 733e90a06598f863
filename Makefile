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

# An existing .venv with MuJoCo 3 (one wheel) upgraded to MuJoCo 4 (mujoco + mujoco-core + mujoco-studio)
# loses files to the old wheel's uninstall; reinstalling the three repairs it (MuJoCo's own advice).
REPAIR_MUJOCO = $(BIN)/python -c "import mujoco" 2>/dev/null || \
	$(BIN)/pip install --quiet --force-reinstall --no-deps -c constraints.txt mujoco mujoco-core mujoco-studio

# constraints.txt pins what changes results (scikit-learn, numpy, MuJoCo, ...): same numbers on every install
install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[leaderboard]"
	$(REPAIR_MUJOCO)

dev: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(REPAIR_MUJOCO)

demo: install
	$(BIN)/python scripts/demo.py

test: dev
	$(BIN)/python -m pytest -n 2
