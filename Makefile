# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# A .venv in the repo root; torch==2.13.0 (CPU wheel) is installed only when no torch is importable,
# so a GPU user's own torch is kept (the package itself accepts any torch >= 2.4).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rdet-installed

.PHONY: setup test test-all demo serve bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[dev,export]"
	$(BIN)/python -c "import rdet.ops as o; print('rdet: compiled C++ ops:', o.has_compiled())"
	touch $@

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/python -m rdet.demo

serve: setup
	$(BIN)/python -m pip install -q -e ".[demo]"
	$(BIN)/rdet serve --model demo_out/model.pt

bench: setup
	$(BIN)/python benchmarks/bench_geometry.py

clean:
	rm -rf build *.egg-info rdet/*.so demo_out
