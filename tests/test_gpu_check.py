"""``benchmarks/gpu_check.sh`` starts and reports correctly on a machine without a GPU (the GPU run itself needs a
lent CUDA machine): argument errors, the skip logic, the JSON summary, ``--emulate``, and a run stopped by its
time limit keeping what it had measured."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["environment", "ops", "kernels", "sanitizer", "timing", "tensorrt"]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: run the real check")


def run(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def test_cpu_run_skips_every_gpu_step_and_says_why(tmp_path):
    out = tmp_path / "sub" / "summary.json"
    proc = run("--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert [s["name"] for s in summary["steps"]] == STEPS
    assert summary["counts"] == {"passed": 1, "failed": 0, "skipped": 5}
    env = summary["steps"][0]
    assert env["status"] == "passed" and env["details"]["cuda_available"] is False
    assert all(s["reason"] == "no CUDA device visible to torch" for s in summary["steps"][1:])
    assert summary["commit"] and summary["started"] <= summary["finished"] and not summary["emulated"]


def test_arguments():
    listed = run("--list")
    assert listed.returncode == 0 and listed.stdout.split() == STEPS
    bad = run("--only", "kernel")
    assert bad.returncode == 2 and "unknown step 'kernel'" in bad.stderr
    assert run("--budget", "0").returncode == 2


def test_emulated_ops_step_runs_its_comparisons(tmp_path):
    out = tmp_path / "summary.json"
    proc = run("--emulate", "--only", "ops", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.loads(out.read_text())["steps"]}
    ops = steps["ops"]
    assert ops["status"] == "passed" and ops["details"]["device"] == "cpu"
    assert ops["details"]["export_op_batch4_equal"] is True and ops["details"]["nms_class_wise_iou0.1_kept"] > 0
    assert steps["kernels"]["reason"] == "not selected (--only / --skip)"


def test_time_limit_keeps_the_summary(tmp_path):
    """The hard limit stops a long step; the JSON then records what finished and that the run was interrupted."""
    out = tmp_path / "summary.json"
    proc = run("--emulate", "--only", "kernels", "--output", str(out), GPU_CHECK_TIMEOUT="25")
    assert proc.returncode == 124, proc.stdout + proc.stderr  # timeout(1)'s status for a run it stopped
    summary = json.loads(out.read_text())
    assert "SIGTERM" in summary["interrupted"]
    assert summary["steps"][0]["status"] == "passed" and summary["counts"]["passed"] == 1
    assert not list(tmp_path.glob("*.tmp"))
