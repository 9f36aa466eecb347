"""``rdet bench --model PATH``: the user's own checkpoint or exported file (issue 19.2)."""

from __future__ import annotations

import pytest
import torch

from rdet.checkpoint import save_checkpoint
from rdet.commands.bench import cli
from rdet.models.build import build_model

FEW = ["--iters", "1", "--warmup", "0", "--allow-few-iters", "--device", "cpu", "--batch", "1"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_config):
    config = tiny_config(nms_pre=50, max_per_img=20)
    config.data.img_size = (96, 96)  # bench's default input for a checkpoint: its training size (rounded up to 32)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("bench") / "mine.pt", build_model(config).eval(), config)


def test_bench_times_the_users_checkpoint(tiny_checkpoint, tmp_path, capsys):
    report = tmp_path / "report.md"
    assert (
        cli(["--model", str(tiny_checkpoint), "--backends", "eager", "--nms", "yes", *FEW, "--output", str(report)])
        == 0
    )
    rows = [r for r in report.read_text().splitlines() if r.startswith("| mine.pt")]
    assert len(rows) == 1 and "| 96x96 | 1 | eager | yes |" in rows[0]  # only the user's model, at its size
    assert "Rotated RetinaNet R-50" not in report.read_text()


def test_bench_times_an_exported_onnx_file_as_it_is(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from rdet.export.onnx_export import export_onnx

    onnx = export_onnx(tiny_checkpoint, tmp_path / "mine.onnx", nms="onnx", imgsz=64)
    report = tmp_path / "report.md"
    assert cli(["--model", str(onnx), *FEW, "--output", str(report)]) == 0
    rows = [r for r in report.read_text().splitlines() if r.startswith("| mine.onnx")]
    assert len(rows) == 1 and "| 64x64 | 1 | onnx | yes |" in rows[0] and "| n/a |" in rows[0]


def test_bench_model_errors_are_one_line(tmp_path, capsys):
    assert cli(["--model", str(tmp_path / "missing.pt"), *FEW]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model: no such file" in err[0] and "missing.pt" in err[0]
