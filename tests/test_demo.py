"""``rdet demo`` (rdet/demo.py): which model it runs, and the whole pipeline on a given checkpoint (no training)."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import rdet
from rdet import demo, zoo
from rdet.checkpoint import save_checkpoint
from rdet.commands.demo import cli
from rdet.data import DOTA1_0
from rdet.models.build import build_model


def _args(**kw) -> Namespace:
    return Namespace(**{"model": None, "train": False, "retrain": False, **kw})


def test_a_cached_published_dota_model_is_used_preferred_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RDET_HOME", str(tmp_path))
    assert demo.cached_published_model() is None
    assert demo.choose_model(_args()) is None  # nothing cached: train

    hrsc = next(e.name for e in zoo.ENTRIES if e.dataset == "HRSC2016")
    other = next(e.name for e in zoo.ENTRIES if e.dataset.startswith("DOTA") and e.name != demo.PREFERRED)
    for name in (hrsc, other):
        zoo.cache_path(name).parent.mkdir(parents=True, exist_ok=True)
        zoo.cache_path(name).write_bytes(b"x")
    assert demo.cached_published_model() == other  # HRSC models are never picked for DOTA scenes
    zoo.cache_path(demo.PREFERRED).write_bytes(b"x")
    assert demo.choose_model(_args()) == demo.PREFERRED
    assert demo.choose_model(_args(train=True)) is None
    assert demo.choose_model(_args(retrain=True)) is None  # --retrain trains, whatever is cached
    assert demo.choose_model(_args(model="my.pt")) == "my.pt"


def test_model_and_train_exclude_each_other(capsys):
    assert cli(["--model", "x.pt", "--train"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_an_uncached_published_model_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RDET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RDET_ZOO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert cli(["--model", demo.PREFERRED, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1:9" in err[0], err


@pytest.mark.slow
def test_demo_runs_every_stage_on_a_given_checkpoint(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("RDET_HOME", str(tmp_path / "home"))  # an empty cache: nothing published is picked up
    torch.manual_seed(0)
    cfg = tiny_config(classes=tuple(DOTA1_0))
    cfg.data.img_size = (512, 512)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", build_model(cfg), cfg)
    out = tmp_path / "demo_out"
    assert cli(["--model", str(ckpt), "--output", str(out)]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "given" and summary["iterations"] == 0  # nothing trained
    assert (summary["tile"], summary["overlap"]) == (512, demo.PUBLISHED_GAP)  # the model's own input size
    assert 0.0 <= summary["held_out_mAP50"] <= 1.0
    assert (out / "model.source").read_text().strip() == str(ckpt)
    assert not (out / "train").exists()
    for kind in ("task1", "json", "png"):
        assert Path(summary["outputs"][kind]).exists(), (kind, summary["outputs"])
    served = rdet.load_checkpoint(out / "model.pt")  # what `make serve` serves
    assert served.class_names == list(DOTA1_0)
    # a later plain `rdet demo` does not mistake these weights for a trained demo model
    assert (out / "model.source").read_text().strip() != "trained"
