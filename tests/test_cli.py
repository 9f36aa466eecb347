import json
import subprocess
import sys
from pathlib import Path

from rdet.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_an_error(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_train_print_config_resolves_overrides(capsys):
    cfg = ROOT / "configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py"
    assert main(["train", str(cfg), "--print-config", "--set", "train.lr=0.01"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["train"]["lr"] == 0.01
    assert printed["model"]["head"]["loss_bbox"]["loss_weight"] == 5.5


def test_import_rdet_imports_no_heavy_optional_modules():
    code = (
        "import sys, rdet, rdet.boxes, rdet.ops, rdet.data, rdet.models, rdet.engine.train\n"
        "bad = [m for m in ('gradio', 'onnx', 'onnxruntime', 'tensorrt') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
