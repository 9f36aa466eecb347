"""rdet against the real MMRotate (dev-1.x @ 3ff004e) on the same weights and inputs: tests/data/parity.

The fixtures (tests/data/parity/README.md) hold two small ResNet-18 checkpoints in MMRotate's format (Rotated
RetinaNet, R3Det), two real 256 px DOTA crops with their ground truth, and what MMRotate computed from them:
per-level outputs, anchors, decoded boxes, detections, every loss of five RetinaNet and six R3Det settings and
gradients. Everything here compares rdet with those numbers; nothing is computed by MMRotate code at test time.

Assignment ties: a small object wholly inside several anchors of one shape has mathematically equal IoUs with
them. rdet's anchors of one shape are identical and its assigner IoU is exact to float32 rounding, so it keeps all
tied anchors as positives; MMRotate's anchors differ by float noise (``x2 - x1`` in float32) and its IoU kernel
rounds, so it keeps only some (docs/architecture.md, "Assignment ties"). The loss tests therefore give rdet
MMRotate's anchors and MMRotate's recorded positives (and check that everything else of the assignment, the
negatives and ignored anchors, agrees), so that everything after the assignment is compared exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rdet
from rdet import mmrotate, ops
from rdet.config import load_config
from rdet.data.dataset import read_image
from rdet.models import anchors as A
from rdet.models.detector import flatten_levels
from rdet.models.heads import Targets

DATA = Path(__file__).resolve().parent / "data" / "parity"
SMALL = ["model.backbone.depth=18", "model.neck.out_channels=64", "model.head.feat_channels=64",
         "model.head.stacked_convs=2", "model.backbone.weights=None"]  # fmt: skip
R3DET_SMALL = SMALL + ["model.refine.stacked_convs=2"]
RETINANET = "rotated_retinanet_r18_small.pth"
R3DET = "r3det_r18_small.pth"
GWD = ["model.head.reg_decoded_bbox=True", "model.head.loss_bbox.type=gwd", "model.head.loss_bbox.stable=True",
       "model.head.loss_bbox.fun=log1p", "model.head.loss_bbox.tau=0.0", "model.head.loss_bbox.alpha=1.0",
       "model.head.loss_bbox.normalize=True", "model.head.loss_bbox.loss_weight=5.0"]  # fmt: skip
# fixture setting -> rdet config (+ overrides): MMRotate's gwd config is the base + GDLoss(gwd, loss_weight=5) with
# GDLoss's defaults (log1p, tau=0, alpha=1, normalize=True); rdet ships no rbox-le90 GWD config.
RETINANET_SETTINGS = {
    "rbox_le90_l1": ("rotated-retinanet-rbox-le90_r50_fpn_1x_dota", []),
    "hbox_oc_l1": ("rotated-retinanet-hbox-oc_r50_fpn_1x_dota", []),
    "rbox_le90_kld_stable": ("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota", []),
    "rbox_le90_kld": ("rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota", []),
    "rbox_le90_gwd": ("rotated-retinanet-rbox-le90_r50_fpn_1x_dota", GWD),
}
R3DET_SETTINGS = {
    "r3det_oc": "r3det-oc_r50_fpn_1x_dota",
    "r3det_oc_kld": "r3det-oc_r50_fpn_kld_1x_dota",
    "r3det_oc_kld_stable": "r3det-oc_r50_fpn_kld-stable_1x_dota",
}
SIZES = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]  # P3-P7 of a 256 x 256 input


@pytest.fixture(scope="module")
def inputs():
    return torch.load(DATA / "inputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def retina_fx():
    return torch.load(DATA / "rotated_retinanet_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def r3det_fx():
    return torch.load(DATA / "r3det_outputs.pt", weights_only=True)


def targets_of(inputs) -> list[dict]:
    """The ground truth the MMRotate models trained on: ``gt.rboxes`` (cv2.minAreaRect of the polygons)."""
    return [{"boxes": g["rboxes"], "labels": g["labels"]} for g in inputs["gt"]]


def load(file: str, config_name: str, overrides: list[str]):
    return rdet.load_checkpoint(DATA / file, config=load_config(config_name, overrides))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (not elementwise: the references hold zeros)."""
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def corners(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, 5] -> [N, 4, 2]`` float64 corners."""
    cx, cy, w, h, t = boxes.double().unbind(-1)
    c, s = torch.cos(t), torch.sin(t)
    u = torch.stack([w / 2 * c, w / 2 * s], -1)
    v = torch.stack([-h / 2 * s, h / 2 * c], -1)
    ctr = torch.stack([cx, cy], -1)
    return torch.stack([ctr - u - v, ctr + u - v, ctr + u + v, ctr - u + v], -2)


def corner_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per pair of boxes ``[N, 5]``, the largest corner distance, minimised over the 8 ways to describe one
    rectangle (MMRotate and rdet may write the same rectangle with other (w, h, angle))."""
    ca, cb = corners(a), corners(b)
    best = torch.full((a.shape[0],), float("inf"), dtype=torch.float64)
    for cbb in (cb, cb.flip(-2)):
        for k in range(4):
            best = torch.minimum(best, (ca - cbb.roll(k, -2)).norm(dim=-1).max(-1).values)
    return best


def assert_same_rectangles(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    """Boxes ``[..., 5]`` describe the same rectangles: corners within ``rel`` of the box size (+ 1 px)."""
    a, b = a.reshape(-1, 5), b.reshape(-1, 5)
    scale = b[:, 2:4].abs().max(-1).values.double() + 1.0
    assert float((corner_dist(a, b) / scale).max()) < rel


def assert_same_detections(mine, theirs) -> None:
    """Every MMRotate detection has an rdet one (same label, score within 1e-5, corners within 0.01 px), and
    there are no others."""
    for d, m in zip(mine, theirs):
        assert len(d.scores) == len(m["scores"])
        used: set[int] = set()
        for i in range(len(m["scores"])):
            cand = [j for j in range(len(d.scores)) if j not in used and int(d.labels[j]) == int(m["labels"][i])]
            assert cand, f"MMRotate detection {i} has no rdet detection of its class"
            dist = corner_dist(d.boxes[cand].float(), m["bboxes"][i : i + 1].expand(len(cand), 5))
            dscore = (d.scores[cand].double() - float(m["scores"][i])).abs()
            k = int((dist + 1e4 * dscore).argmin())
            assert dist[k] < 1e-2 and dscore[k] < 1e-5, (i, float(dist[k]), float(dscore[k]))
            used.add(cand[k])


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("file,config,overrides,tensors", [
    (RETINANET, "rotated-retinanet-rbox-le90_r50_fpn_1x_dota", SMALL, 148),
    (R3DET, "r3det-oc_r50_fpn_1x_dota", R3DET_SMALL, 166),
])  # fmt: skip
def test_checkpoints_load_key_for_key(file, config, overrides, tensors):
    ckpt = torch.load(DATA / file, weights_only=True)
    model = load(file, config, overrides)  # raises on any missing or unexpected key
    state = model.state_dict()
    assert set(state) == set(ckpt["state_dict"]) and len(state) == tensors
    for key, value in ckpt["state_dict"].items():  # float16 in the file, float32 in the model, as MMEngine loads
        assert torch.equal(state[key], value.float() if value.is_floating_point() else value), key
    assert model.class_names == ckpt["meta"]["dataset_meta"]["classes"]
    # the file's config says FakeRotatedAnchorGenerator(angle_version=None): 0.x's angle-0 anchors
    assert model.config.model.anchors.mmrotate_version == "0.x"


def test_r3det_with_0x_key_names_loads_the_same_weights(tmp_path, inputs):
    mapping = json.loads((DATA / "r3det_r18_small_0x_keys.json").read_text())["dev1x_to_0x"]
    assert all(mmrotate.rdet_to_r3det_0x(k) == v for k, v in mapping.items())  # MMRotate's key-map script's map
    ckpt = torch.load(DATA / R3DET, weights_only=True)
    old = tmp_path / "r3det_0x_keys.pth"
    torch.save({"meta": ckpt["meta"], "state_dict": {mapping[k]: v for k, v in ckpt["state_dict"].items()}}, old)
    assert any(k.startswith("refine_head.0.") for k in torch.load(old, weights_only=True)["state_dict"])
    config = load_config("r3det-oc_r50_fpn_1x_dota", R3DET_SMALL)
    model = rdet.load_checkpoint(old, config=config)
    reference = load(R3DET, "r3det-oc_r50_fpn_1x_dota", R3DET_SMALL)
    assert set(model.state_dict()) == set(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


# ------------------------------------------------------------------------------------------ network outputs
def test_preprocessing_of_the_pngs_equals_mmrotates_data_preprocessor(inputs):
    model = load(RETINANET, "rotated-retinanet-rbox-le90_r50_fpn_1x_dota", SMALL)
    for i, image_id in enumerate(inputs["image_ids"]):
        rgb = torch.from_numpy(read_image(DATA / "inputs" / "images" / f"{image_id}.png")).permute(2, 0, 1)[None]
        assert torch.allclose(model.preprocess_image(rgb)[0], inputs["inputs"][i], rtol=0, atol=1e-6)


def test_anchors_match_mmrotates(retina_fx):
    stored = retina_fx["anchors"]  # FakeRotatedAnchorGenerator(angle_version=None): angle 0
    exact = A.grid_anchors(SIZES, (8, 16, 32, 64, 128), 4.0, 3, (1.0, 0.5, 2.0))
    mmdet = A.mmdet_grid_anchors(SIZES, (8, 16, 32, 64, 128), 4.0, 3, (1.0, 0.5, 2.0))
    for a, m, s in zip(exact, mmdet, stored):
        assert (a - s).abs().max() < 1e-4  # rdet's exact sizes vs x2 - x1 in float32
        assert torch.equal(m, s)  # MMDetection's float32 arithmetic, bit for bit


def test_dev1x_anchors_turn_tall_and_square_anchors(retina_fx):
    stored = torch.cat(retina_fx["anchors"]).reshape(-1, 3, 3, 5)  # [locations, ratio (1, 0.5, 2), scale, 5]
    strides = (8, 16, 32, 64, 128)
    le90 = torch.cat(A.grid_anchors(SIZES, strides, 4.0, 3, (1.0, 0.5, 2.0), None, "1.x", "le90")).reshape(-1, 3, 3, 5)
    oc = torch.cat(A.grid_anchors(SIZES, strides, 4.0, 3, (1.0, 0.5, 2.0), None, "1.x", "oc")).reshape(-1, 3, 3, 5)
    swapped = stored[..., [0, 1, 3, 2, 4]].clone()
    swapped[..., 4] = -torch.pi / 2
    # oc: every anchor becomes (h, w, -pi/2)
    assert torch.allclose(oc, swapped, rtol=0, atol=1e-6)
    # le90: wide anchors (ratio h/w = 0.5) unchanged, tall ones (2.0) turned ...
    assert torch.equal(le90[:, 1], stored[:, 1])
    assert torch.allclose(le90[:, 2], swapped[:, 2], rtol=0, atol=1e-6)
    # ... and the square ones too, except where float32 rounding made x2 - x1 > y2 - y1 (MMRotate's own rule)
    kept = stored[:, 0, :, 2] > stored[:, 0, :, 3]
    assert 0 < int(kept.sum()) < kept.numel() // 4
    assert torch.equal(le90[:, 0][kept], stored[:, 0][kept])
    assert torch.allclose(le90[:, 0][~kept], swapped[:, 0][~kept], rtol=0, atol=1e-6)


def test_retinanet_outputs_and_decoded_boxes_equal_mmrotates(inputs, retina_fx):
    model = load(RETINANET, "rotated-retinanet-rbox-le90_r50_fpn_1x_dota", SMALL)
    with torch.no_grad():
        feats = model.neck(model.backbone(inputs["inputs"]))
        cls, reg = model.bbox_head(feats)
        out = model.head_outputs(inputs["inputs"], normalized=True)
    for level, (c, r) in enumerate(zip(cls, reg)):
        assert rel_err(c, retina_fx["cls_scores"][level]) < 1e-5, f"logits P{level + 3}"
        assert rel_err(r, retina_fx["bbox_preds"][level]) < 1e-5, f"deltas P{level + 3}"
    decoded = model.decode_boxes(out)  # every anchor, rbox-le90 coder, no clamp
    reference = retina_fx["eval"]["rbox_le90"]["decoded"]
    assert_same_rectangles(decoded, reference)


def test_r3det_refinement_equals_mmrotates(inputs, r3det_fx, retina_fx):
    model = load(R3DET, "r3det-oc_r50_fpn_1x_dota", R3DET_SMALL)
    ev = r3det_fx["eval"]
    with torch.no_grad():
        out = model.head_outputs(inputs["inputs"], normalized=True)
    init, refine = out.stages
    assert rel_err(init.cls, flatten_levels(retina_fx["cls_scores"], 15)) < 1e-5  # the init stage is the RetinaNet
    assert rel_err(init.reg, flatten_levels(retina_fx["bbox_preds"], 5)) < 1e-5
    rois = torch.cat(ev["rois"], 1)
    assert_same_rectangles(refine.anchors, rois)
    assert rel_err(refine.cls, flatten_levels(ev["refine_cls_scores"], 15)) < 1e-5
    assert rel_err(refine.reg, flatten_levels(ev["refine_bbox_preds"], 5)) < 1e-5
    decoded = model.decode_boxes(out)
    # the rois' 6e-5 px anchor rounding, through the FRM's bilinear sampling and the deltas: <= 0.005 px here
    assert_same_rectangles(decoded, ev["decoded"], rel=1e-4)


@pytest.mark.parametrize("setting,config", [
    ("rbox_le90", "rotated-retinanet-rbox-le90_r50_fpn_1x_dota"),
    ("hbox_oc", "rotated-retinanet-hbox-oc_r50_fpn_1x_dota"),
])  # fmt: skip
def test_retinanet_detections_equal_mmrotates(inputs, retina_fx, setting, config):
    # MMRotate's predict clamps decoded centres into the image before NMS; so does rdet's
    model = load(RETINANET, config, SMALL)
    assert_same_detections(model.predict(inputs["inputs"], normalized=True), retina_fx["eval"][setting]["detections"])


def test_r3det_detections_equal_mmrotates(inputs, r3det_fx):
    model = load(R3DET, "r3det-oc_r50_fpn_1x_dota", R3DET_SMALL)
    assert_same_detections(model.predict(inputs["inputs"], normalized=True), r3det_fx["eval"]["detections"])


# ------------------------------------------------------------------------------------------ losses, gradients
def with_mmrotate_positives(model, anchors: torch.Tensor, targets: list[dict], record: dict) -> Targets:
    """rdet's assignment of ``anchors`` with MMRotate's recorded positives (anchor index, gt index) in place of
    its own; rdet's positives that MMRotate did not keep become background or ignored by their best IoU, as in
    MaxIoUAssigner. Checks that the negatives and ignored anchors then agree with MMRotate's counts."""
    tg = model.assign(anchors, targets, 0)
    h = model.cfg.head
    labels, weights = tg.labels.clone(), tg.label_weights.clone()
    gt_boxes, pos = torch.zeros_like(tg.gt_boxes), torch.zeros_like(tg.pos)
    for b, t in enumerate(targets):
        mine = tg.pos[b]
        labels[b, mine] = h.num_classes
        weights[b, mine] = (tg.max_iou[b, mine] < h.neg_iou_thr).to(weights.dtype)
        idx, gt = record["pos_anchor_idx"][b].long(), record["pos_gt_idx"][b].long()
        labels[b, idx], weights[b, idx] = t["labels"][gt], 1.0
        gt_boxes[b, idx], pos[b, idx] = t["boxes"][gt], True
        assert int(((weights[b] > 0) & ~pos[b]).sum()) == record["num_neg"][b]
        assert int((weights[b] == 0).sum()) == record["num_ignored"][b]
    return Targets(labels, weights, gt_boxes, pos, tg.max_iou, max(float(pos.sum()), 1.0))


def assert_losses_and_grads(model, losses: dict, train: dict) -> None:
    assert set(losses) == set(train["losses"])
    for name, value in train["losses"].items():
        mine = float(losses[name].detach())
        assert abs(mine - value) <= 1e-5 * abs(value), (name, mine, value)
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    assert train["grads"]
    for name, grad in train["grads"].items():
        assert params[name].grad is not None, name
        assert rel_err(params[name].grad, grad) < 1e-5, name


@pytest.mark.parametrize("setting", list(RETINANET_SETTINGS))
def test_retinanet_losses_and_gradients_equal_mmrotates(inputs, retina_fx, setting):
    config, extra = RETINANET_SETTINGS[setting]
    train = retina_fx["train"][setting]
    model = load(RETINANET, config, SMALL + extra).train()
    model.anchors = lambda sizes, device: [a.clone() for a in retina_fx["anchors"]]  # MMRotate's, float noise and all
    targets = targets_of(inputs)
    out = model.forward_features(inputs["inputs"])
    tg = with_mmrotate_positives(model, out.anchors, targets, train["assign"]["bbox_head"])
    assert_losses_and_grads(model, model.loss_from_outputs(out, targets, [tg]), train)


@pytest.mark.parametrize("init_iou", ["rotated", "horizontal"])
@pytest.mark.parametrize("setting", list(R3DET_SETTINGS))
def test_r3det_losses_and_gradients_equal_mmrotates(inputs, retina_fx, r3det_fx, setting, init_iou):
    train = r3det_fx["train"][f"{setting}_init_{init_iou}"]
    model = load(R3DET, R3DET_SETTINGS[setting], R3DET_SMALL + [f"model.head.assign_iou={init_iou}"]).train()
    model.anchors = lambda sizes, device: [a.clone() for a in retina_fx["anchors"]]
    targets = targets_of(inputs)
    out = model.forward_features(inputs["inputs"])
    init = with_mmrotate_positives(model, out.stages[0].anchors, targets, train["assign"]["init"])
    refine = model.assign(out.stages[1].anchors, targets, 1)  # rdet's own: no ties on the refined boxes
    record = train["assign"]["refine_0"]
    for b in range(2):
        assert set(refine.pos[b].nonzero().squeeze(1).tolist()) == set(record["pos_anchor_idx"][b].tolist())
    assert_losses_and_grads(model, model.loss_from_outputs(out, targets, [init, refine]), train)


def test_gdloss_v1_normalisation_is_mmrotates_not_the_positive_count(inputs, retina_fx):
    # issue 16 bug (2): MMRotate's GDLoss_v1 ignores avg_factor; MMEngine averages each FPN level and sums them.
    train = retina_fx["train"]["rbox_le90_kld"]
    model = load(RETINANET, "rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota", SMALL)
    assert model.cfg.head.loss_bbox.reduction == "level_means"
    model.anchors = lambda sizes, device: [a.clone() for a in retina_fx["anchors"]]
    targets = targets_of(inputs)
    with torch.no_grad():
        out = model.forward_features(inputs["inputs"])
        tg = with_mmrotate_positives(model, out.anchors, targets, train["assign"]["bbox_head"])
        level_means = float(model.loss_from_outputs(out, targets, [tg])["loss_bbox"])
        model.cfg.head.loss_bbox.reduction = "num_pos"  # the alternative: divide by all positives of the batch
        num_pos = float(model.loss_from_outputs(out, targets, [tg])["loss_bbox"])
    assert level_means == pytest.approx(train["losses"]["loss_bbox"], rel=1e-5)  # 1.451421: P3 and P4 positives
    assert num_pos == pytest.approx(0.6433408, rel=1e-5)  # what rdet computed before (check_rdet's report)


# ------------------------------------------------------------------------------------------ implementations
@pytest.mark.parametrize("iou", ["rotated", "horizontal"])
def test_compiled_and_pure_pytorch_ops_pick_the_same_positives(inputs, iou):
    # issue 18: training with and without the compiled ops diverged from iteration 1 because their float32 IoUs
    # broke the ties between equal anchors differently. The assigner now computes the IoU in float64 and rounds it.
    if not ops.has_compiled():
        pytest.skip("the compiled ops are not built")
    model = load(RETINANET, "rotated-retinanet-rbox-le90_r50_fpn_1x_dota", SMALL + [f"model.head.assign_iou={iou}"])
    anchors = torch.cat(model.anchors(SIZES, "cpu"))
    targets = targets_of(inputs)
    compiled = model.assign(anchors, targets)
    with ops.reference_only():
        reference = model.assign(anchors, targets)
    assert torch.equal(compiled.pos, reference.pos) and torch.equal(compiled.labels, reference.labels)
    assert torch.equal(compiled.label_weights, reference.label_weights)
    if iou == "rotated":
        # rdet keeps every tied anchor: 65 and 111 positives where MMRotate's float noise kept 64 and 59
        assert [int(p.sum()) for p in compiled.pos] == [65, 111]
