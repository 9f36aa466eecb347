"""A malicious checkpoint through every entry point that reads one: nothing runs, the error names the file.

The payload would create a marker file when unpickled (``os.system('touch ...')``). Entry points: the API
(``rdet.load_checkpoint``), ``rdet predict --model``, ``rdet export``, ``rdet eval --checkpoint``, the teacher of
``rdet distill``, ``rdet train --resume`` (a poisoned ``last.pt``) and ``rdet serve --model``.
"""

import os

import cv2
import numpy as np
import pytest
import torch

import rdet
from rdet.checkpoint import CheckpointError
from rdet.cli import main
from rdet.config import to_dict
from rdet.data.synthetic import make_synthetic_dataset
from rdet.models.build import build_model


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory, tiny_config):
    """A checkpoint that looks like rdet's (weights, config) with one entry that runs a command when unpickled."""
    root = tmp_path_factory.mktemp("evil")
    torch.manual_seed(0)
    cfg = tiny_config()
    marker = root / "PWNED"
    path = root / "evil.pt"
    torch.save({"model": build_model(cfg).state_dict(), "config": to_dict(cfg), "payload": Evil(marker)}, path)
    scene = root / "scene.png"
    cv2.imwrite(str(scene), np.zeros((64, 64, 3), np.uint8))
    return path, marker, scene


def refused(argv, capsys, path) -> None:
    """Run ``rdet <argv>`` in-process: it must fail (an exit status or a CheckpointError) naming ``path``."""
    try:
        code = main(argv)
        err = capsys.readouterr().err
    except CheckpointError as e:  # commands without their own error handling (train, distill) raise it
        code, err = "raised", str(e)
    assert code != 0, argv
    assert str(path) in err and "refused" in err, err


def test_api(poisoned):
    path, marker, _ = poisoned
    with pytest.raises(CheckpointError, match="refused"):
        rdet.load_checkpoint(path)
    assert not marker.exists()


def test_predict(poisoned, capsys, tmp_path):
    path, marker, scene = poisoned
    refused(["predict", str(scene), "--model", str(path), "--out", str(tmp_path / "out")], capsys, path)
    assert not marker.exists()


def test_export(poisoned, capsys, tmp_path):
    pytest.importorskip("onnx")
    path, marker, _ = poisoned
    refused(["export", str(path), "--output", str(tmp_path / "m.onnx"), "--imgsz", "64"], capsys, path)
    assert not marker.exists()


def test_eval(poisoned, capsys):
    path, marker, _ = poisoned
    refused(["eval", "--checkpoint", str(path)], capsys, path)
    assert not marker.exists()


def test_distill_teacher(poisoned, capsys, tmp_path):
    path, marker, _ = poisoned
    student = rdet.config.find_config("rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic")
    argv = ["distill", str(student), "--teacher-weights", str(path), "--set", f"train.work_dir='{tmp_path}'"]
    refused(argv, capsys, path)
    assert not marker.exists()


def test_train_resume(poisoned, capsys, tmp_path):
    path, marker, _ = poisoned
    data = tmp_path / "data"
    make_synthetic_dataset(data, 2, size=64, seed=0, objects=(1, 2))
    work = tmp_path / "run"
    work.mkdir()
    (work / "last.pt").write_bytes(path.read_bytes())
    cfg = tmp_path / "tiny.py"
    cfg.write_text(
        "from rdet.config import Config\n"
        "config = Config(name='tiny')\n"
        "config.model.backbone.depth = 18\n"
        "config.model.neck.out_channels = config.model.head.feat_channels = 16\n"
        "config.model.head.stacked_convs = 1\n"
        "config.model.head.num_classes = 4\n"
        "config.data.class_list = 'synthetic'\n"
        f"config.data.train_images = {str(data / 'images')!r}\n"
        f"config.data.train_labels = {str(data / 'labelTxt')!r}\n"
        "config.data.img_size = (64, 64)\n"
        "config.train.batch_size, config.train.workers, config.train.eval_interval = 2, 0, 0\n"
        f"config.train.work_dir = {str(work)!r}\n"
    )
    refused(["train", str(cfg), "--resume"], capsys, work / "last.pt")
    assert not marker.exists()


def test_serve(poisoned, capsys, monkeypatch):
    pytest.importorskip("gradio")
    from rdet.serve import app

    def launch(*args, **kwargs):  # reaching it would mean the model loaded: fail instead of serving forever
        raise AssertionError("rdet serve started with a poisoned checkpoint")

    monkeypatch.setattr(app, "launch", launch)
    path, marker, _ = poisoned
    refused(["serve", "--model", str(path), "--port", "1"], capsys, path)
    assert not marker.exists()
