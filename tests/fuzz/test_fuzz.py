"""Every fuzz target at a small budget (a few seconds in CI): no crash, nothing silently wrong.

The large-budget run with its table: ``python -m benchmarks.fuzz_report``."""

from __future__ import annotations

import os

import pytest

from .registry import load, run

TARGETS = load()
# CI budget per target; RDET_FUZZ_EXAMPLES raises it locally.
EXAMPLES = int(os.environ.get("RDET_FUZZ_EXAMPLES", "40"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name):
    counts = run(TARGETS[name], EXAMPLES, seed=0)
    bad = {k: counts[k] for k in ("crash", "silently wrong", "hang") if counts[k]}
    assert not bad, f"{name}: {bad}; first: {counts['examples']}"
    assert sum(counts[k] for k in ("accepted", "clear error")) == EXAMPLES
