"""Smoke tests of the benchmark harness (benchmarks/): FLOP counting by hand, and each script end to end on a
tiny model. No timing assertions: the machines are shared. The scripts run in subprocesses, because they set
OMP_WAIT_POLICY before importing torch (spinning OpenMP threads are 10-50x slower on busy cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from rdet.bench.flops import conv2d_flops, count_flops, gpu_peak, linear_flops, model_flops  # noqa: E402
from rdet.bench.fps import PUBLISHED_HEADER  # noqa: E402
from rdet.bench.models import MODELS, bench_config, parse_input  # noqa: E402


def _run(*args: str, timeout: int = 120, env: dict | None = None) -> str:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {}))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ------------------------------------------------------------------------------------------ flops
@pytest.mark.parametrize("method", ["hooks", "torch"])
def test_single_conv_by_hand(method):
    # 3 -> 8 channels, 3x3, padding 1, on 10x10: 8 * 10 * 10 outputs, each 3 * 3 * 3 = 27 MACs -> 2 * 21600 FLOPs.
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(1, 3, 10, 10)
    assert count_flops(conv, lambda: conv(x), method).total == 43_200


@pytest.mark.parametrize("method", ["hooks", "torch"])
def test_strided_grouped_conv_and_linear_by_hand(method):
    # 4 -> 8 channels in 2 groups, 3x3, stride 2 on 2 x 8x8: out [2, 8, 4, 4] = 256 outputs x (2 * 9) MACs = 4608.
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert count_flops(conv, lambda: conv(torch.randn(2, 4, 8, 8)), method).total == 9_216
    # 3 rows through 4 -> 5: 60 MACs.
    lin = nn.Linear(4, 5)
    assert count_flops(lin, lambda: lin(torch.randn(3, 4)), method).total == 120


def test_formula_helpers():
    assert conv2d_flops(1, 3, 8, (3, 3), (10, 10)) == 43_200
    assert linear_flops(3, 4, 5) == 120
    with pytest.raises(ValueError, match="groups"):
        conv2d_flops(1, 3, 8, (3, 3), (10, 10), groups=2)
    with pytest.raises(ValueError, match="method"):
        count_flops(nn.Linear(1, 1), lambda: None, "fvcore")


def test_retinanet_flops_at_1024():
    """R-50 / R-18 Rotated RetinaNet, DOTA configs (15 classes, 9 anchors), 1024 x 1024: the issue's ~430 / ~328."""
    r50 = model_flops(bench_config(MODELS["retinanet-r50"], "dota"), (1024, 1024))
    # Head by hand: FPN locations 128^2 + 64^2 + 32^2 + 16^2 + 8^2 = 21,824; per location 8 convs 256 -> 256 3x3
    # (4 stacked per branch) + cls 256 -> 9 * 15 and reg 256 -> 9 * 5, all 3x3.
    head = 2 * 21_824 * 9 * 256 * (8 * 256 + 135 + 45)
    assert r50.by_module["bbox_head"] == head
    assert r50.total == model_flops(bench_config(MODELS["retinanet-r50"], "dota"), (1024, 1024), method="torch").total
    assert abs(r50.gflop - 430.26) < 0.01
    r18 = model_flops(bench_config(MODELS["retinanet-r18"], "dota"), (1024, 1024))
    assert r18.by_module["bbox_head"] == head
    assert abs(r18.gflop - 327.78) < 0.01


def test_gpu_peak_table():
    assert gpu_peak("NVIDIA H100 80GB HBM3", "fp16") == 989e12
    assert gpu_peak("NVIDIA H100 PCIe", "fp16") == 756e12
    assert gpu_peak("NVIDIA GeForce RTX 2080 Ti", "tf32") == 13.4e12  # Turing: no tf32, fp32 instead
    assert gpu_peak("Some Future GPU", "fp16") is None


# ------------------------------------------------------------------------------------------ bench_fps
def parse_args(argv):
    from rdet.bench.fps import finalize_args
    from rdet.commands.bench import parser

    p = parser()
    return finalize_args(p.parse_args(argv), p.error)


def test_parse_input_and_args():
    assert parse_input("dota") == ("dota", (1024, 1024))
    assert parse_input("hrsc") == ("hrsc", (512, 800))
    assert parse_input("800x512") == ("dota", (512, 800))  # width x height
    with pytest.raises(ValueError, match="multiples of 32"):
        parse_input("100x100")
    with pytest.raises(SystemExit):
        parse_args(["--device", "cpu", "--iters", "5"])  # < 50 without --allow-few-iters
    args = parse_args(["--device", "cpu", "--iters", "5", "--allow-few-iters", "--backends", "all"])
    assert "trt" in args.backends and args.batch == [1]


@pytest.mark.slow
def test_bench_fps_quick_end_to_end(tmp_path):
    out = _run("-m", "rdet.cli", "bench", "--quick", "--backends", "eager", "onnx", env={"TMPDIR": str(tmp_path)})
    assert not list(tmp_path.glob("rdet_bench_*"))  # its exported files went to a temporary folder, removed
    assert PUBLISHED_HEADER in out
    rows = [line for line in out.splitlines() if line.startswith("| tiny")]
    # batch 1 and 2 x 2 backends x with/without NMS
    assert len(rows) == 8, out
    assert {r.split("|")[3].strip() for r in rows} == {"1", "2"}
    assert "FEWER than 50" in out and "2048^3 fp32 matmuls, measured after each row" in out


# ------------------------------------------------------------------------------------------ train + tiled
def test_bench_train_tiny():
    out = _run(
        "benchmarks/bench_train.py",
        "--models",
        "tiny",
        "--inputs",
        "64x64",
        "--batch",
        "2",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--device",
        "cpu",
    )
    row = next(line for line in out.splitlines() if line.startswith("| tiny"))
    assert "| 64x64 | 2 | fp32 | 1 |" in row and "peak RSS" in row


def test_bench_tiled_tiny(tmp_path):
    out = _run(
        "benchmarks/bench_tiled.py",
        "--model",
        "tiny",
        "--scale-down",
        "20",
        "--tile",
        "256",
        "--overlap",
        "64",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--workdir",
        str(tmp_path),
    )
    # a 500 x 500 scene in 256-px windows with stride 192: starts 0, 192, 244 -> 3 x 3 windows
    assert "| 500x500 | 9 | 256/64 | 4 |" in out
    assert "SCALED DOWN 20x" in out
