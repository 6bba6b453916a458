# Two commands a newcomer needs: `make demo` and `make test` (both build on `make install`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and on its own: the pinned CPU build from local disk by default. A user with a CUDA
# torch keeps it: any torch already importable in $(VENV) is left alone (see README, "GPU").
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# optional extras installed with the project; CI adds `video` (.ci/run): `make install EXTRAS=dev,video`
EXTRAS ?= dev
STAMP := $(VENV)/.actrec-installed-$(EXTRAS)

# numba compiles kernels once and caches them here; DVC keeps its index inside the project.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR ?= $(CURDIR)/.cache/dvc

.PHONY: install demo test test-fast lint

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null \
	  && echo "keeping the installed torch $$($(BIN)/python -c 'import torch; print(torch.__version__)')" \
	  || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# The whole pipeline on the synthetic demo data (dvc.yaml): demo data -> ingest -> render -> 3 heatmap models and
# a graph network -> evaluate -> fuse.
# Re-running with nothing changed does nothing. The stages call actrec-etl/actrec-train: the venv goes on PATH.
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/actrec-etl report --html

test: install
	$(BIN)/python -m pytest -q

# The edit loop: everything but the tests marked slow (end-to-end DVC, DDP, SIGKILL/resume, long renders).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
