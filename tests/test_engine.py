"""Training engine: config errors, exact resume, NaN stop, DDP on gloo, checkpoints."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

import rdet
from rdet.checkpoint import read_checkpoint
from rdet.config import Config, load_config
from rdet.data.synthetic import make_synthetic_dataset
from rdet.engine.train import lr_at, resolve_config, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(root / "train", 6, size=64, seed=0, objects=(1, 3))
    return root


def tiny_config(root, work_dir) -> Config:
    c = Config(name="tiny")
    m = c.model
    m.backbone.depth, m.backbone.frozen_stages, m.backbone.norm_eval = 18, 0, False
    m.neck.out_channels = m.head.feat_channels = 16
    m.head.stacked_convs = 1
    m.head.num_classes = 4
    c.data.class_list = "synthetic"
    c.data.train_images, c.data.train_labels = str(root / "train/images"), str(root / "train/labelTxt")
    c.data.img_size = (64, 64)
    t = c.train
    t.batch_size, t.workers, t.warmup_iters, t.log_interval, t.eval_interval = 2, 0, 2, 1, 0
    t.work_dir = str(work_dir)
    return c


def test_config_typo_names_closest_key(tmp_path):
    cfg = tmp_path / "bad.py"
    cfg.write_text("from rdet.config import Config\nconfig = Config()\nconfig.train.lrr = 0.1\n")
    with pytest.raises(ValueError, match="lrr"):
        load_config(cfg)
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        resolve_config(Config(), sets=["train.lrr=0.1"])
    with pytest.raises(ValueError, match="expected int"):
        resolve_config(Config(), sets=["train.epochs='x'"])
    c = resolve_config(Config(), {"lr": 0.01, "train__epochs": 3})
    assert c.train.lr == 0.01 and c.train.epochs == 3


def test_lr_schedule_warmup_and_steps():
    c = Config()  # lr 0.0025, warm-up 500 iterations from 1/3, steps at epochs 8 and 11
    assert lr_at(c, 0, 0) == pytest.approx(0.0025 / 3)
    assert lr_at(c, 250, 0) == pytest.approx(0.0025 * (1 / 3 + 2 / 3 * 0.5))
    assert lr_at(c, 600, 7) == pytest.approx(0.0025)
    assert lr_at(c, 10_000, 8) == pytest.approx(0.00025)
    assert lr_at(c, 20_000, 11) == pytest.approx(0.000025)


def _weights(path):
    return read_checkpoint(path)["model"]


def test_resume_continues_exactly(tiny_data, tmp_path):
    # 6 images, batch 2: 3 iterations per epoch. Stop at iteration 4 (mid-epoch 2) and resume to 7.
    full = train(tiny_config(tiny_data, tmp_path / "full"), max_iters=7, progress=False)
    part = tiny_config(tiny_data, tmp_path / "part")
    train(part, max_iters=4, progress=False)
    assert read_checkpoint(tmp_path / "part/last.pt")["iteration"] == 4
    res = train(part, max_iters=7, resume=True, progress=False)
    assert res["iterations"] == 7
    a, b = _weights(full["checkpoint"]), _weights(res["checkpoint"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    # logs, loss curve and the config are written
    assert (tmp_path / "full/loss.png").is_file()
    rows = [json.loads(x) for x in (tmp_path / "full/log.jsonl").read_text().splitlines()]
    assert rows[-1]["iter"] == 7 and "loss_cls" in rows[-1]


def test_checkpoint_rebuilds_model_and_predicts(tiny_data, tmp_path):
    res = train(tiny_config(tiny_data, tmp_path), max_iters=1, progress=False)
    model = rdet.load_checkpoint(res["checkpoint"])
    assert model.class_names == ["plane", "ship", "small-vehicle", "storage-tank"]
    dets = model.predict(torch.zeros(1, 3, 64, 64), score_thr=0.0)
    assert dets[0].boxes.shape[1] == 5
    ckpt = read_checkpoint(res["checkpoint"])
    assert ckpt["config"]["model"]["backbone"]["depth"] == 18


def test_nan_loss_stops_with_iteration_and_component(tiny_data, tmp_path, monkeypatch):
    from rdet.models.retinanet import RotatedRetinaNet

    original = RotatedRetinaNet.loss_from_outputs
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out["loss_bbox"] = out["loss_bbox"] * float("nan")
        return out

    monkeypatch.setattr(RotatedRetinaNet, "loss_from_outputs", poisoned)
    with pytest.raises(FloatingPointError, match=r"iteration 1 .*loss_bbox=nan"):
        train(tiny_config(tiny_data, tmp_path), max_iters=3, progress=False)
    assert read_checkpoint(tmp_path / "last_good.pt")["iteration"] == 1


def test_images_without_objects_train(tmp_path):
    make_synthetic_dataset(tmp_path / "train", 2, size=64, seed=3, objects=(0, 0))
    res = train(tiny_config(tmp_path, tmp_path / "run"), max_iters=2, progress=False)
    assert res["iterations"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, root, work_dir, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    cfg = tiny_config(root, work_dir)
    cfg.train.device = "cpu"
    import rdet.engine.train as T

    captured = {}
    real_build = T.build_model

    def capture(config):
        captured["model"] = real_build(config)
        return captured["model"]

    T.build_model = capture
    try:
        T.train(cfg, max_iters=2, progress=False)
    finally:
        T.build_model = real_build
    params = {k: v.detach() for k, v in captured["model"].named_parameters()}
    torch.save(params, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_data, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), tiny_data, str(tmp_path / "run"), str(tmp_path)), nprocs=2)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:  # gradients are averaged across ranks, so both replicas' parameters stay identical
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert (tmp_path / "run/last.pt").is_file()
    assert read_checkpoint(tmp_path / "run/last.pt")["iteration"] == 2
