"""Localization distillation: LD/KD known answers, the valuable localization region, the distill engine."""

import json
import math
from pathlib import Path

import pytest
import torch

import rdet
from rdet.checkpoint import read_checkpoint, save_checkpoint
from rdet.commands.distill import cli
from rdet.config import DistillConfig
from rdet.engine.data import build_loader
from rdet.engine.distill import Teacher, check_compatible, distill, distill_losses
from rdet.losses.ld import kd_loss, ld_loss, vlr_mask, vlr_weights
from rdet.models.build import build_model

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ LD / KD known answers


def test_ld_and_kd_are_zero_when_student_equals_teacher():
    g = torch.Generator().manual_seed(0)
    reg = torch.randn(2, 30, 5 * 9, generator=g) * 3
    cls = torch.randn(2, 30, 4, generator=g) * 3
    mask = torch.rand(2, 30, generator=g) > 0.5
    assert ld_loss(reg, reg.clone(), mask, T=5.0).item() == pytest.approx(0.0, abs=1e-7)
    assert kd_loss(cls, cls.clone(), mask, T=5.0, num_level_anchors=[20, 10]).item() == pytest.approx(0.0, abs=1e-7)


def _kl_to_uniform(p: float) -> float:
    """KL([p, 1 - p] || [1/2, 1/2]) by hand."""
    return p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0])
def test_ld_temperature_scaling_known_answer(T):
    # reg_max = 1 (2 bins per delta). Student logits 0 (uniform); teacher logits (ln 3, 0) for every delta.
    # softmax((ln 3, 0) / T) = (3^(1/T), 1) / (3^(1/T) + 1). Per delta: T^2 * KL / 2 (mean over the 2 bins);
    # 5 deltas; one anchor of weight 1 -> normalised by 1.
    student = torch.zeros(1, 10, dtype=torch.float64)
    teacher = torch.tensor([[math.log(3.0), 0.0] * 5], dtype=torch.float64)
    p = 3 ** (1 / T) / (3 ** (1 / T) + 1)
    expected = 5 * T * T * _kl_to_uniform(p) / 2
    got = ld_loss(student, teacher, torch.tensor([True]), T=T)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # T = 1: p = 3/4, KL = 3/4 ln 1.5 + 1/4 ln 0.5 = 0.130812; LD = 5 * 0.130812 / 2
    if T == 1.0:
        assert got.item() == pytest.approx(0.3270302, rel=1e-6)
    # class_reduction='sum' is twice the mean over 2 bins
    assert ld_loss(student, teacher, torch.tensor([True]), T=T, class_reduction="sum").item() == pytest.approx(
        2 * expected, rel=1e-9
    )


def test_weights_and_per_level_normalisation_known_answer():
    # KD with 2 classes. Anchor 0 (level 0): teacher (ln 3, 0), weight 1. Anchors 1, 2 (level 1): same teacher,
    # weights 0.5 and 0.5. Anchor 3 (level 1): weight 0, ignored. Per level: sum(w * KL) / #(w > 0), then summed.
    k = _kl_to_uniform(0.75) / 2  # T = 1, mean over 2 classes
    student = torch.zeros(4, 2, dtype=torch.float64)
    teacher = torch.tensor([[math.log(3.0), 0.0]] * 4, dtype=torch.float64)
    w = torch.tensor([1.0, 0.5, 0.5, 0.0], dtype=torch.float64)
    assert kd_loss(student, teacher, w, T=1.0, num_level_anchors=[1, 3]).item() == pytest.approx(k + k / 2)
    assert kd_loss(student, teacher, w, T=1.0).item() == pytest.approx(2 * k / 3)  # one normaliser: 3 anchors


def test_gradient_flows_only_into_the_student_logits():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 45, generator=g).requires_grad_()
    t = torch.randn(6, 45, generator=g).requires_grad_()
    loss = ld_loss(s, t, torch.ones(6, dtype=torch.bool), T=5.0) + kd_loss(s[:, :4], t[:, :4], torch.ones(6), T=5.0)
    loss.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        ld_loss(torch.zeros(3, 45), torch.zeros(3, 50), torch.ones(3, dtype=torch.bool), T=5.0)
    with pytest.raises(ValueError, match="5 \\* \\(reg_max \\+ 1\\)"):
        ld_loss(torch.zeros(3, 5), torch.zeros(3, 5), torch.ones(3, dtype=torch.bool), T=5.0)


# ------------------------------------------------------------------ the valuable localization region


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_vlr_hand_built_case():
    # gt 10x10 at the origin; 10x10 anchors at (0,0) IoU 1, (5,0) and (0,5) IoU 50/150 = 1/3, (5,5) IoU 25/175 = 1/7,
    # (10,0) IoU 0. Candidates (topk=3 nearest centres): IoUs 1, 1/3, 1/3 -> mean 5/9, unbiased std sqrt(12)/9,
    # mean + std = 0.94046.
    anchors = _boxes([[0, 0, 10, 10, 0], [5, 0, 10, 10, 0], [0, 5, 10, 10, 0], [5, 5, 10, 10, 0], [10, 0, 10, 10, 0]])
    gt = _boxes([[0, 0, 10, 10, 0]])
    thr = 5 / 9 + math.sqrt(12) / 9
    assert thr == pytest.approx(0.940456, abs=1e-6)
    assert vlr_mask(anchors, gt, alpha=1.0, topk=3).tolist() == [True, False, False, False, False]
    # alpha 0.25: threshold 0.2351 -> 1/3 in, 1/7 out
    w = vlr_weights(anchors, gt, alpha=0.25, topk=3)
    torch.testing.assert_close(w, torch.tensor([1.0, 1 / 3, 1 / 3, 0.0, 0.0]))
    # alpha 0.1: threshold 0.0940 -> 1/7 in; IoU 0 never
    assert vlr_mask(anchors, gt, alpha=0.1, topk=3).tolist() == [True, True, True, True, False]
    # the same in the paper's horizontal mode (all angles 0 here)
    assert vlr_mask(anchors, gt, alpha=0.1, horizontal=True, topk=3).tolist() == [True, True, True, True, False]
    # no ground truth: empty region
    assert not vlr_mask(anchors, gt[:0], alpha=0.25).any()


def test_vlr_rotated_versus_horizontal():
    # gt 20x10 turned by 90 degrees: on screen 10 wide, 20 tall. Anchors 10x10 at (0,0), (7.5,0), (0,7.5).
    # rotated IoU: 0.5, 25/275 = 1/11, 75/225 = 1/3. The paper drops the angle (a 20 wide, 10 tall box):
    # 0.5, 1/3, 1/11. Candidates are all three either way: mean + std = 0.51379, alpha 0.5 -> threshold 0.2569.
    anchors = _boxes([[0, 0, 10, 10, 0], [7.5, 0, 10, 10, 0], [0, 7.5, 10, 10, 0]])
    gt = _boxes([[0, 0, 20, 10, math.pi / 2]])
    torch.testing.assert_close(
        vlr_weights(anchors, gt, 0.5, topk=3), torch.tensor([0.5, 0.0, 1 / 3]), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(vlr_weights(anchors, gt, 0.5, horizontal=True, topk=3), torch.tensor([0.5, 1 / 3, 0.0]))


def test_vlr_candidates_are_taken_per_level_and_an_anchor_keeps_its_best_gt():
    # level 0: anchors at (0,0) and (5,0); level 1: a 20x20 anchor at (0,0). topk=1 per level:
    # gt A = 10x10 at the origin: candidates (0,0) IoU 1 and the big anchor IoU 100/400 = 1/4 -> mean 0.625,
    # std 0.5303 -> thr 1.155 * alpha. alpha 0.25 -> 0.289: (0,0) and (5,0) (IoU 1/3) in, big anchor out.
    anchors = _boxes([[0, 0, 10, 10, 0], [5, 0, 10, 10, 0], [0, 0, 20, 20, 0]])
    gt = _boxes([[0, 0, 10, 10, 0], [5, 0, 10, 10, 0]])  # gt B sits exactly on anchor 1
    w = vlr_weights(anchors, gt, 0.25, num_level_anchors=[2, 1], topk=1)
    # gt B: candidates anchor 1 (IoU 1) and the big anchor (B lies inside it: 100/400 = 1/4) -> same threshold.
    # anchor 0: IoU 1 with A, 1/3 with B -> keeps 1; anchor 1: 1/3 with A, 1 with B -> 1; anchor 2: 1/4 < 0.289.
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="num_level_anchors"):
        vlr_weights(anchors, gt, 0.25, num_level_anchors=[2, 2])


# ------------------------------------------------------------------ the engine


@pytest.fixture(scope="module")
def tiny(train_config):
    """``tiny(work_dir, **options)``: the engine's tiny training config with a distribution head (reg_max 4)."""
    return lambda work_dir, **kw: train_config(work_dir, **{"reg_max": 4, **kw})


@pytest.fixture(scope="module")
def teacher_ckpt(tiny, tmp_path_factory):
    """An untrained but perturbed 'teacher' (24-channel head), so its outputs differ clearly from a student's."""
    cfg = tiny("unused", width=24)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for conv in (model.bbox_head.retina_cls, model.bbox_head.retina_reg):
            conv.weight.normal_(0, 0.3)
    return save_checkpoint(tmp_path_factory.mktemp("teacher") / "teacher.pt", model, cfg), cfg


def test_mismatched_teacher_is_rejected_before_training(tiny, teacher_ckpt, tmp_path):
    path, tcfg = teacher_ckpt
    student = tiny(tmp_path / "s")
    student.data.train_images = str(tmp_path / "missing")  # the check must come before any data is read
    other = tiny("x", width=24)
    other.data.class_list, other.data.classes = "synthetic", ("plane", "ship", "storage-tank", "small-vehicle")
    with pytest.raises(ValueError, match="class lists differ"):
        distill(student, teacher=other, teacher_weights=path, progress=False)
    other = tiny("x", width=24)
    other.model.coder.angle_version = "oc"
    with pytest.raises(ValueError, match="box conventions differ.*angle_version"):
        distill(student, teacher=other, teacher_weights=path, progress=False)
    other = tiny("x", width=24, reg_max=8)
    with pytest.raises(ValueError, match="reg_max differs: student model.head.reg_max=4 vs teacher 8"):
        distill(student, teacher=other, teacher_weights=path, progress=False)
    assert not (tmp_path / "s").exists()
    # every problem is listed at once
    other.model.coder.angle_version = "le135"
    with pytest.raises(ValueError, match="(?s)box conventions.*reg_max"):
        check_compatible(student, other)
    # no distribution head anywhere and LD requested
    with pytest.raises(ValueError, match="LD needs general-distribution heads"):
        check_compatible(tiny("a", reg_max=0), tiny("b", reg_max=0))


def _batch(config):
    loader, _ = build_loader(config, "train")
    loader.dataset.set_epoch(1)  # flips on: the cache key must follow the augmented input
    return next(iter(loader))


def test_online_and_cached_teacher_give_the_same_loss(tiny, teacher_ckpt, tmp_path):
    path, _ = teacher_ckpt
    cfg = tiny(tmp_path / "s")
    cfg.distill = DistillConfig(ld_weight=10.0, kd_weight=20.0, vlr_alpha=0.25)
    torch.manual_seed(1)
    student = build_model(cfg).train()
    teacher_model = rdet.load_checkpoint(path)
    batch = _batch(cfg)
    images, targets = batch["images"], [{"boxes": t["boxes"], "labels": t["labels"]} for t in batch["targets"]]
    online = distill_losses(student, images, targets, Teacher(teacher_model), cfg.distill)
    cached = Teacher(teacher_model, tmp_path / "cache", "f" * 64)
    first = distill_losses(student, images, targets, cached, cfg.distill)  # misses: computed and stored
    second = distill_losses(student, images, targets, cached, cfg.distill)  # hits: read from disk
    assert (cached.misses, cached.hits) == (2, 2)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2
    assert online["loss_ld"] > 1e-3 and online["loss_kd"] > 1e-3  # a real signal, not 0 == 0
    for k in online:
        assert first[k].item() == second[k].item() == online[k].item(), k
    # the key is the exact network input (pre-processed by the student) and the ground truth: another
    # augmentation of the same image (here a flip) is another key; the same input, the same key
    x = student.preprocess_image(images)
    keys = Teacher.keys(x, batch["targets"])
    assert len(list((tmp_path / "cache").rglob(f"{keys[0]}.pt"))) == 1
    images = x
    flipped = [dict(t, boxes=t["boxes"] * 0 + 1) for t in batch["targets"]]
    assert not set(Teacher.keys(images.flip(-1), batch["targets"])) & set(keys)
    assert not set(Teacher.keys(images, flipped)) & set(keys)
    assert Teacher.keys(images.clone(), batch["targets"]) == keys


def test_gradient_reaches_only_the_student_model(tiny, teacher_ckpt, tmp_path):
    path, _ = teacher_ckpt
    cfg = tiny(tmp_path / "s")
    cfg.distill = DistillConfig()
    student = build_model(cfg).train()
    teacher = Teacher(rdet.load_checkpoint(path))
    batch = _batch(cfg)
    targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in batch["targets"]]
    losses = distill_losses(student, batch["images"], targets, teacher, cfg.distill)
    losses["loss_ld"].backward(retain_graph=True)
    assert student.bbox_head.retina_reg.weight.grad.abs().sum() > 0
    losses["loss_kd"].backward()
    assert student.bbox_head.retina_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.model.parameters())
    assert not teacher.model.training


def test_few_iteration_distill_run_writes_a_checkpoint(tiny, teacher_ckpt, tmp_path):
    path, tcfg = teacher_ckpt
    cfg = tiny(tmp_path / "run")
    # teacher config from the checkpoint itself; a cache that is reused in the second epoch (no flips)
    cfg.data.flip = (0.0, 0.0, 0.0)
    cfg.distill = DistillConfig(teacher_weights=str(path), cache_dir=str(tmp_path / "cache"), vlr_alpha=0.25)
    result = distill(cfg, max_iters=6, progress=False)  # 3 batches per epoch: 2 epochs
    assert result["iterations"] == 6
    assert (result["cache_misses"], result["cache_hits"]) == (6, 6)  # the second epoch is served from disk
    ckpt = read_checkpoint(result["checkpoint"])
    assert ckpt["iteration"] == 6 and ckpt["config"]["distill"]["teacher_weights"] == str(path)
    model = rdet.load_checkpoint(result["checkpoint"])  # the student alone, ready for inference
    assert model.cfg.backbone.depth == 18 and model.cfg.neck.out_channels == 16
    rows = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert all({"loss_cls", "loss_bbox", "loss_ld", "loss_kd"} <= set(r) for r in rows)
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_quickstart_and_published_configs():
    s = rdet.load_config(ROOT / "configs/quickstart/ld_r18_r34_synthetic.py")
    t = rdet.load_config(ROOT / "configs/quickstart/ld_r34_teacher_synthetic.py")
    check_compatible(s, t)
    assert (s.model.backbone.depth, t.model.backbone.depth) == (18, 34)
    # Zzh-tju/Rotated-LD configs/ld/*_r18_r34_*: loss_ld / loss_kd weights, T = 5, reg_max = 8, alpha 0.25
    for name, ld, kd in (("kld", 15.0, 15.0), ("gwd", 10.0, 20.0)):
        prefix = ROOT / f"configs/ld/rotated_retinanet_distribution_hbb_{name}"
        student = rdet.load_config(f"{prefix}_r18_r34_fpn_1x_dota_oc.py")
        teacher = rdet.load_config(f"{prefix}_r34_fpn_2x_dota_oc.py")
        check_compatible(student, teacher)
        d = student.distill
        assert (d.ld_weight, d.kd_weight, d.temperature, d.vlr_alpha, d.vlr_horizontal) == (ld, kd, 5.0, 0.25, True)
        assert (student.model.head.reg_max, student.model.head.reg_range, student.model.head.angle_range) == (
            8,
            (-2.0, 2.0),
            (-5.0, 2.0),
        )
        assert (
            student.model.backbone.depth,
            student.train.epochs,
            teacher.model.backbone.depth,
            teacher.train.epochs,
            teacher.train.milestones,
        ) == (18, 12, 34, 24, (16, 22))
        assert student.model.head.loss_bbox.type == name and student.model.coder.angle_version == "oc"
    assert cli([str(ROOT / "configs/quickstart/ld_r18_r34_synthetic.py"), "--print-config"]) == 0


def test_distill_resume_continues_exactly(tiny, teacher_ckpt, tmp_path):
    path, _ = teacher_ckpt

    def cfg(name):
        c = tiny(tmp_path / name)
        c.distill = DistillConfig(teacher_weights=str(path), vlr_alpha=0.25)
        return c

    full = distill(cfg("full"), max_iters=3, progress=False)
    part = cfg("part")
    distill(part, max_iters=2, progress=False)
    res = distill(cfg("part"), max_iters=3, resume=True, progress=False)
    assert res["iterations"] == 3
    a, b = read_checkpoint(full["checkpoint"])["model"], read_checkpoint(res["checkpoint"])["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
