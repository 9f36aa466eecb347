"""Training engine: config errors, exact resume, NaN stop, DDP on gloo, checkpoints."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

import rdet
from rdet.checkpoint import CheckpointError, read_checkpoint
from rdet.config import Config, load_config
from rdet.data.synthetic import make_synthetic_dataset
from rdet.engine.train import lr_at, resolve_config, train


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


def test_resume_continues_exactly(train_config, tmp_path):
    # 6 images, batch 2: 3 iterations per epoch. Stop at iteration 4 (mid-epoch 2) and resume to 7.
    full = train(train_config(tmp_path / "full"), max_iters=7, progress=False)
    part = train_config(tmp_path / "part")
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


def test_checkpoint_rebuilds_model_and_predicts(train_config, tmp_path):
    res = train(train_config(tmp_path), max_iters=1, progress=False)
    model = rdet.load_checkpoint(res["checkpoint"])
    assert model.class_names == ["plane", "ship", "small-vehicle", "storage-tank"]
    dets = model.predict(torch.zeros(1, 3, 64, 64), score_thr=0.0)
    assert dets[0].boxes.shape[1] == 5
    ckpt = read_checkpoint(res["checkpoint"])
    assert ckpt["config"]["model"]["backbone"]["depth"] == 18


def test_nan_loss_stops_with_iteration_and_component(train_config, tmp_path, monkeypatch):
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
        train(train_config(tmp_path), max_iters=3, progress=False)
    assert read_checkpoint(tmp_path / "last_good.pt")["iteration"] == 1


def test_images_without_objects_train(tmp_path, train_config):
    make_synthetic_dataset(tmp_path / "train", 2, size=64, seed=3, objects=(0, 0))
    res = train(train_config(tmp_path / "run", data=tmp_path), max_iters=2, progress=False)
    assert res["iterations"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
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
def test_ddp_two_processes_gloo(train_config, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), train_config(tmp_path / "run"), str(tmp_path)), nprocs=2)
    a, b = torch.load(tmp_path / "rank0.pt", weights_only=True), torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in a:  # gradients are averaged across ranks, so both replicas' parameters stay identical
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert (tmp_path / "run/last.pt").is_file()
    assert read_checkpoint(tmp_path / "run/last.pt")["iteration"] == 2


# ------------------------------------------------------------------ checkpoints kept, weights-only model, resume


def _epoch_files(work_dir):
    return sorted(p.name for p in work_dir.glob("epoch_*.pt"))


def test_keep_checkpoints_and_the_weights_only_model(train_config, tmp_path):
    # 3 iterations per epoch, 3 epochs: epoch_1 is deleted when epoch_3 is written (keep 2)
    res = train(train_config(tmp_path / "a"), max_iters=9, progress=False)
    assert _epoch_files(tmp_path / "a") == ["epoch_2.pt", "epoch_3.pt"]
    assert read_checkpoint(tmp_path / "a/epoch_3.pt")["iteration"] == 9
    weights = read_checkpoint(res["model"])
    assert res["model"] == str(tmp_path / "a/model.pt")
    assert "optimizer" not in weights and "rng" not in weights and weights["class_names"][0] == "plane"
    full, served = rdet.load_checkpoint(res["checkpoint"]), rdet.load_checkpoint(res["model"])
    for k, v in full.state_dict().items():
        assert torch.equal(v, served.state_dict()[k]), k
    cfg = train_config(tmp_path / "b")
    cfg.train.keep_checkpoints = 0
    train(cfg, max_iters=6, progress=False)
    assert _epoch_files(tmp_path / "b") == [] and (tmp_path / "b/last.pt").is_file()
    cfg.train.keep_checkpoints = -1
    with pytest.raises(ValueError, match="train.keep_checkpoints"):
        train(cfg, max_iters=6, progress=False)


def test_resume_rewrites_a_lost_epoch_checkpoint_and_never_logs_an_iteration_twice(train_config, tmp_path):
    import shutil

    work = tmp_path / "run"
    cfg = train_config(work)
    train(cfg, max_iters=3, progress=False)  # epoch 1 done: last.pt and epoch_1.pt at iteration 3
    shutil.copy(work / "last.pt", tmp_path / "at3.pt")
    train(train_config(work), max_iters=5, resume=True, progress=False)  # logs iterations 4, 5
    # killed at iteration 5 before last.pt moved on, and while epoch_1.pt was being written
    shutil.copy(tmp_path / "at3.pt", work / "last.pt")
    (work / "epoch_1.pt").unlink()
    with open(work / "log.jsonl", "a") as f:
        f.write('{"kind": "train", "iter": 6, "lo')  # a line torn by the kill
    res = train(train_config(work), max_iters=6, resume=True, progress=False)
    assert res["iterations"] == 6
    assert read_checkpoint(work / "epoch_1.pt")["iteration"] == 3  # written again by the resumed run
    assert read_checkpoint(work / "epoch_2.pt")["iteration"] == 6
    iters = [json.loads(line)["iter"] for line in (work / "log.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3, 4, 5, 6]


# main's layout (before DenseDetector): the sorted state_dict keys of the tiny models below hashed to these
# values, with 69 (RetinaNet) and 97 (R3Det, 2 refine stages) trainable parameters in this order.
MAIN_STATE_KEYS = {"rotated_retinanet": ("ff751e97d5bc7b58", 144, 69), "r3det": ("cacee7afbcfeff16", 172, 97)}


@pytest.mark.parametrize("kind", sorted(MAIN_STATE_KEYS))
def test_checkpoint_in_the_layout_written_before_the_detector_base_loads_and_resumes(kind, tiny_config, tmp_path):
    import hashlib
    import random

    import numpy as np

    from rdet.config import to_dict
    from rdet.engine.train import build_optimizer

    c = tiny_config(name=kind, r3det_stages=2 if kind == "r3det" else 0)
    torch.manual_seed(0)
    model = rdet.build_model(c)
    state = model.state_dict()
    digest, n_keys, n_params = MAIN_STATE_KEYS[kind]
    assert hashlib.sha256("\n".join(sorted(state)).encode()).hexdigest()[:16] == digest and len(state) == n_keys
    opt = build_optimizer(c, model)
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    sum(
        model.loss(images, [{"boxes": torch.tensor([[30.0, 30, 20, 10, -0.3]]), "labels": torch.tensor([1])}]).values()
    ).backward()
    opt.step()
    config = to_dict(c)
    del config["train"]["keep_checkpoints"]  # fields added since are absent from older files
    old = {  # exactly what rdet.checkpoint.save_checkpoint wrote before this change
        "model": model.state_dict(),
        "config": config,
        "class_names": ["plane", "ship"],
        "epoch": 1,
        "iteration": 3,
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "rdet_version": "0.1.0",
    }
    torch.save(old, tmp_path / "old.pt")
    loaded = rdet.load_checkpoint(tmp_path / "old.pt")
    assert loaded.config.train.keep_checkpoints == 2  # the default fills the new field
    model.eval()
    a, b = model.predict(images, score_thr=0.0)[0], loaded.predict(images, score_thr=0.0)[0]
    assert len(a) > 0 and torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    resumed = build_optimizer(loaded.config, loaded)  # resume: the optimizer state maps onto the same parameters
    resumed.load_state_dict(read_checkpoint(tmp_path / "old.pt")["optimizer"])
    assert len(resumed.state_dict()["state"]) == n_params
    for before, after in zip(opt.state_dict()["state"].values(), resumed.state_dict()["state"].values()):
        assert torch.equal(before["momentum_buffer"], after["momentum_buffer"])


def test_resume_with_another_model_is_one_line_naming_the_checkpoint(train_config, tmp_path):
    work = tmp_path / "run"
    train(train_config(work, width=16), max_iters=1, progress=False)
    with pytest.raises(CheckpointError) as e:
        train(train_config(work, width=32), max_iters=2, resume=True, progress=False)
    message = str(e.value)
    assert "\n" not in message and str(work / "last.pt") in message and "shape" in message, message


def test_ctrl_c_inside_a_step_saves_the_whole_step_and_resume_stays_exact(train_config, tmp_path, monkeypatch):
    import signal

    full = train(train_config(tmp_path / "full"), max_iters=4, progress=False)
    real_step = torch.amp.GradScaler.step
    calls = []

    def step_then_ctrl_c(self, optimizer, *args, **kwargs):
        out = real_step(self, optimizer, *args, **kwargs)  # the weights are updated ...
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # ... and Ctrl-C arrives before the iteration is counted
        return out

    monkeypatch.setattr(torch.amp.GradScaler, "step", step_then_ctrl_c)
    part = train_config(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        train(part, max_iters=4, progress=False)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "part/last.pt")["iteration"] == 2  # the interrupted step is in it, once
    res = train(part, max_iters=4, resume=True, progress=False)
    a, b = _weights(full["checkpoint"]), _weights(res["checkpoint"])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_an_evaluation_interrupted_at_the_end_of_training_runs_on_resume(train_config, tmp_path, monkeypatch):
    import rdet.engine.evaluate as E

    cfg = train_config(tmp_path / "run")
    cfg.data.val_images, cfg.data.val_labels = cfg.data.train_images, cfg.data.train_labels
    cfg.train.eval_interval = 1
    real = E.evaluate_model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the final evaluation: last.pt is already at iteration 3

    monkeypatch.setattr(E, "evaluate_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, max_iters=3, progress=False)  # one epoch of 3 iterations
    monkeypatch.setattr(E, "evaluate_model", real)
    res = train(cfg, max_iters=3, resume=True, progress=False)
    assert res["metrics"]["epoch"] == 1 and 0.0 <= res["metrics"]["mAP50"] <= 1.0
    rows = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "val"] == [1]
