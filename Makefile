# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# A .venv in the repo root; torch==2.13.0 (CPU wheel) is installed only when no torch is importable,
# so a GPU user's own torch is kept (the package itself accepts any torch >= 2.4).
PY ?= python3
VENV := .venv
# Spin-waiting OpenMP threads make PyTorch 10-50x slower on a busy 2-core machine (BENCHMARKS.md); libgomp reads
# this when torch is imported, so it is set for every command here.
export OMP_WAIT_POLICY ?= PASSIVE
BIN := $(VENV)/bin
STAMP := $(VENV)/.rdet-installed

.PHONY: setup test test-all lint browser demo serve bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[dev,export,demo,weights]"
	$(BIN)/python -c "import rdet.ops as o; print('rdet: compiled C++ ops:', o.has_compiled())"
	touch $@

setup: $(STAMP)

# The Gradio end-to-end test drives the system Chromium through Playwright (never a downloaded browser). It is
# an explicit, one-time step (it needs root and apt): `make browser`; without it the test skips and says so.
browser:
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@command -v chromium || command -v chromium-browser

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup
	$(BIN)/python -m pytest -q --durations=15 tests

demo: setup
	$(BIN)/python -m rdet.demo

serve: setup
	$(BIN)/rdet serve --model demo_out/model.pt

bench: setup
	$(BIN)/python benchmarks/bench_geometry.py

clean:
	rm -rf build *.egg-info rdet/*.so demo_out
