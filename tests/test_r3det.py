"""R3Det: FRM sampling (known answers), refine-stage anchors, losses, predict, ONNX export, training, configs."""

import math
from pathlib import Path

import pytest
import torch

import rdet
from rdet.config import Config, LossConfig, load_config
from rdet.mmrotate import convert_state_dict
from rdet.models.build import build_model
from rdet.models.frm import FRM, bilinear_sample, rotated_feature_align, sample_points
from rdet.models.r3det import R3Det

ROOT = Path(__file__).resolve().parents[1]


def _loss(loss: str) -> LossConfig:
    if loss == "kld":
        return LossConfig(type="kld", stable=False, fun="log1p", tau=1.0, sqrt=False)
    return LossConfig(type="smooth_l1", beta=0.11)


def _with_loss(c: Config, loss: str) -> Config:
    """The same loss in both stages (as the published R3Det configs); nothing frozen, so every weight learns."""
    c.model.backbone.frozen_stages, c.model.backbone.norm_eval = 0, False
    c.model.head.loss_bbox = c.model.refine.loss_bbox = _loss(loss)
    c.model.head.reg_decoded_bbox = loss == "kld"
    return c


@pytest.fixture(scope="module")
def r3det_config(tiny_config):
    """``r3det_config(stages=1, loss='smooth_l1')``: a 16-channel R3Det with classes a, b."""
    return lambda stages=1, loss="smooth_l1": _with_loss(
        tiny_config(("a", "b"), width=16, r3det_stages=stages, name="tiny_r3det"), loss
    )


# --------------------------------------------------------------------------- FRM


def ramp(h=4, w=5):
    """f(x, y) = 10 y + x + x y on a [1, 1, h, w] map: bilinear interpolation reproduces it exactly."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return (10 * y + x + x * y)[None, None]


def f(x, y):
    return 10 * y + x + x * y


def test_sample_points_centre_and_corners():
    box = torch.tensor([16.0, 8.0, 16.0, 8.0, math.pi / 2])
    # swap_xy (mmcv's kernel): the centre is read as (y, x) = (cx, cy)
    assert sample_points(box, 1, swap_xy=True).tolist() == [[8.0, 16.0]]
    pts = sample_points(box, 5, swap_xy=False)
    # a = pi/2: u = (w/2)(cos, sin) = (0, 8), v = (h/2)(-sin, cos) = (-4, 0); order c, c+u+v, c-u+v, c-u-v, c+u-v
    expected = [[16, 8], [12, 16], [12, 0], [20, 0], [20, 16]]
    torch.testing.assert_close(pts, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="points"):
        sample_points(box, 3)


def test_bilinear_sample_matches_mmcv_rules():
    feat = ramp()  # H=4, W=5
    xy = torch.tensor([[[2.5, 1.0], [0.25, 2.75], [-0.5, 1.0], [4.5, 3.5], [-1.5, 1.0], [2.0, 4.5], [-1.0, -1.0]]])
    out = bilinear_sample(feat, xy[:, None])[0, 0, 0]
    expected = [
        f(2.5, 1),
        f(0.25, 2.75),
        f(0, 1),  # x in [-1, 0): clamped to the first column
        f(4, 3),  # x in (W-1, W], y in (H-1, H]: clamped to the last pixel
        0.0,
        0.0,  # x < -1 or y > H: outside, contributes 0
        f(0, 0),
    ]  # exactly -1 is still inside
    torch.testing.assert_close(out, torch.tensor(expected), atol=1e-4, rtol=0)


def test_rotated_feature_align_known_answer_and_gradient():
    feat = ramp().requires_grad_(True)
    boxes = torch.zeros(1, 4, 5, 5)
    boxes[..., 0] = -100.0  # every other location samples far outside: adds 0
    boxes[0, 1, 2] = torch.tensor([20.0, 8.0, 16.0, 8.0, 0.0])  # centre (2.5, 1) at stride 8
    out = rotated_feature_align(feat, boxes, 8, points=1, swap_xy=False)
    exp = ramp().clone()
    exp[0, 0, 1, 2] += f(2.5, 1)
    torch.testing.assert_close(out, exp, atol=1e-4, rtol=0)
    # mmcv's transposed read: the centre is sampled at (x, y) = (cy, cx) / stride = (1, 2.5)
    out_t = rotated_feature_align(feat, boxes, 8, points=1, swap_xy=True)
    assert out_t[0, 0, 1, 2].item() == pytest.approx(f(2, 1) + f(1, 2.5), abs=1e-4)
    # five points: centre (2.5, 1), u = (1, 0), v = (0, 0.5)
    out5 = rotated_feature_align(feat, boxes, 8, points=5, swap_xy=False)
    pts = [(2.5, 1), (3.5, 1.5), (1.5, 1.5), (1.5, 0.5), (3.5, 0.5)]
    assert out5[0, 0, 1, 2].item() == pytest.approx(f(2, 1) + sum(f(*p) for p in pts), abs=1e-3)
    # gradient: identity + bilinear weights of (2.5, 1): half to (x=2, y=1), half to (x=3, y=1)
    out.sum().backward()
    g = torch.ones(4, 5)
    g[1, 2] += 0.5
    g[1, 3] += 0.5
    torch.testing.assert_close(feat.grad[0, 0], g)


def test_frm_module_shapes_names_and_errors():
    frm = FRM(8, (8, 16))
    assert {k for k in frm.state_dict()} == {f"conv_{n}.{p}" for n in ("5_1", "1_5", "1_1") for p in ("weight", "bias")}
    assert tuple(frm.conv_5_1.weight.shape) == (8, 8, 5, 1) and tuple(frm.conv_1_5.weight.shape) == (8, 8, 1, 5)
    feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]
    boxes = [torch.rand(2, 4, 4, 5) * 32, torch.rand(2, 2, 2, 5) * 32]
    out = frm(feats, boxes)
    assert [o.shape for o in out] == [x.shape for x in feats]
    with pytest.raises(ValueError, match="strides"):
        frm(feats[:1], boxes[:1])
    with pytest.raises(ValueError, match=r"\[B, H, W, 5\]"):
        frm(feats, [boxes[1], boxes[0]])
    with pytest.raises(ValueError, match="points"):
        FRM(8, (8,), points=4)


# --------------------------------------------------------------------------- the detector


def test_checkpoint_key_names_and_0x_conversion(r3det_config):
    model = build_model(r3det_config())
    assert isinstance(model, R3Det)
    keys = set(model.state_dict())
    for k in (
        "bbox_head_init.cls_convs.0.conv.weight",
        "bbox_head_init.retina_reg.bias",
        "bbox_head_refine.0.reg_convs.0.conv.weight",
        "bbox_head_refine.0.retina_cls.weight",
        "bbox_head_refine.0.feat_refine_module.conv_5_1.weight",
        "neck.fpn_convs.4.conv.bias",
    ):
        assert k in keys
    # one anchor per location in the refine head: 2 classes, 5 deltas
    assert tuple(model.bbox_head_refine[0].retina_cls.weight.shape)[0] == 2
    assert tuple(model.bbox_head_init.retina_cls.weight.shape)[0] == 9 * 2
    old = {}
    for k, v in model.state_dict().items():  # the same weights under MMRotate 0.x names
        k = k.replace("bbox_head_init.", "bbox_head.")
        k = k.replace("bbox_head_refine.0.feat_refine_module.", "feat_refine_module.0.")
        old[k.replace("bbox_head_refine.", "refine_head.")] = v
    assert "feat_refine_module.0.conv_1_1.weight" in old and "refine_head.0.retina_reg.weight" in old
    assert build_model(r3det_config()).load_state_dict(convert_state_dict(old, "r3det", "0.x"), strict=True)


def _set_head(head, cls_bias, reg_bias):
    with torch.no_grad():
        head.retina_cls.weight.zero_()
        head.retina_cls.bias.copy_(cls_bias)
        head.retina_reg.weight.zero_()
        head.retina_reg.bias.copy_(reg_bias)


def test_refine_anchors_are_the_decoded_best_init_boxes(r3det_config):
    torch.manual_seed(0)
    model = build_model(r3det_config(stages=2)).eval()
    # init head: anchor 4 (ratio 0.5, scale 2^(1/3)), class 1 has the top logit everywhere; deltas (0.5, 0, 0, 0, 0.1)
    cls_bias = torch.zeros(9 * 2)
    cls_bias[4 * 2 + 1] = 3.0
    _set_head(model.bbox_head_init, cls_bias, torch.tensor([0.5, 0, 0, 0, 0.1]).repeat(9))
    # refine stage 0: deltas (0, 0.25, log 2, 0, -0.3) move the rois that stage 1 receives
    _set_head(model.bbox_head_refine[0], torch.zeros(2), torch.tensor([0.0, 0.25, math.log(2), 0.0, -0.3]))
    seen = []
    model.bbox_head_refine[0].feat_refine_module.register_forward_hook(lambda m, inp, out: seen.append(inp[1]))
    x = torch.randn(2, 3, 64, 64)
    out = model(x, normalized=True)
    stages = out.stages
    assert out.num_per_level == [64, 16, 4, 1, 1] and len(stages) == 3 and stages[-1].cls is out.cls
    assert stages[0].num_per_level == [64 * 9, 16 * 9, 4 * 9, 9, 9]
    s = 8 * 4 * 2 ** (1 / 3)  # anchor 4 at stride 8: w = s / sqrt(0.5), h = s * sqrt(0.5)
    w, h = s / math.sqrt(0.5), s * math.sqrt(0.5)
    # location (row 1, col 2) of P3: anchor centre (16, 8); dx = 0.5 in image axes (proj_xy=False) moves x by w/2
    roi = stages[1].anchors[1, 1 * 8 + 2]
    torch.testing.assert_close(roi, torch.tensor([16 + 0.5 * w, 8.0, w, h, 0.1]), atol=1e-4, rtol=0)
    assert not stages[1].anchors.requires_grad
    torch.testing.assert_close(seen[0][0][1, 1, 2], roi)  # the FRM samples at these rois
    # every location: the independent rule (argmax over anchors of the max class logit, then decode)
    init = stages[0]
    for b in range(2):
        for loc in (0, 17, 63, 64, 84):
            logits = init.cls[b, loc * 9 : (loc + 1) * 9]
            a = int(logits.max(1).values.argmax())
            expected = model.coder.decode(init.anchors[loc * 9 + a], init.reg[b, loc * 9 + a])
            torch.testing.assert_close(stages[1].anchors[b, loc], expected)
    # stage 2's rois: stage 1's decoded by its deltas (dy = 0.25 h, w doubled, angle - 0.3)
    torch.testing.assert_close(
        stages[2].anchors[1, 1 * 8 + 2], torch.tensor([16 + 0.5 * w, 8 + 0.25 * h, 2 * w, h, -0.2]), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("loss", ["smooth_l1", "kld"])
def test_forward_loss_backward_predict(loss, r3det_config):
    torch.manual_seed(0)
    model = build_model(r3det_config(stages=1, loss=loss)).train()
    images = torch.randn(2, 3, 64, 64)
    # a gt equal to a P3 anchor (32 x 32 at (40, 40)) is a positive of the init stage
    targets = [
        {"boxes": torch.tensor([[40.0, 40, 32, 32, -0.01], [20, 44, 40, 14, -0.6]]), "labels": torch.tensor([1, 0])},
        {"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    losses = model.loss(images, targets)
    assert set(losses) == {"loss_cls_init", "loss_bbox_init", "loss_cls_refine_0", "loss_bbox_refine_0"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_bbox_init"] > 0
    sum(losses.values()).backward()
    for p in (
        model.bbox_head_init.retina_reg.weight,
        model.bbox_head_refine[0].retina_cls.weight,
        model.bbox_head_refine[0].feat_refine_module.conv_1_1.weight,
        model.backbone.conv1.weight,
    ):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # forward(images, targets) is the loss (one forward call for DDP)
    with torch.no_grad():
        again = model(images, targets)
    for k in losses:
        torch.testing.assert_close(again[k], losses[k].detach())
    model.eval()
    dets = model.predict(images, score_thr=0.0)
    assert len(dets) == 2 and dets[0].boxes.shape[1] == 5 and len(dets[0]) > 0
    assert (dets[0].scores[:-1] >= dets[0].scores[1:]).all()
    a = dets[0].boxes[:, 4]
    assert ((a >= -math.pi / 2) & (a < 0)).all()  # regularised to 'oc'
    boxes, scores = model.decode(images)
    assert boxes.shape == (2, 8 * 8 + 16 + 4 + 1 + 1, 5) and scores.shape == (2, boxes.shape[1], 2)


def test_refine_thresholds_step_per_stage(r3det_config):
    model = build_model(r3det_config(stages=2))
    gt = torch.tensor([[50.0, 50, 40, 20, -0.3]])
    # rois with rotated IoU 1.0, ~0.67 and ~0.55 with the gt (the same box, wider by 1.5x and 1.8x)
    rois = torch.tensor([[[50.0, 50, 40, 20, -0.3], [50, 50, 60, 20, -0.3], [50, 50, 72, 20, -0.3]]])
    t = [{"boxes": gt, "labels": torch.tensor([1])}]
    first = model.assign(rois, t, stage=1)  # refine 0: pos >= 0.6, neg < 0.5
    second = model.assign(rois, t, stage=2)  # refine 1: pos >= 0.7, neg < 0.6
    assert first.pos[0].tolist() == [True, True, False] and first.label_weights[0].tolist() == [1, 1, 0]
    assert second.pos[0].tolist() == [True, False, False] and second.label_weights[0].tolist() == [1, 0, 1]


def test_onnx_export_of_decode_matches_torch(tmp_path, r3det_config):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    class Decode(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, images):
            return self.model.decode(images)

    torch.manual_seed(0)
    model = build_model(r3det_config()).eval()
    with torch.no_grad():  # random, non-trivial refine deltas so the export sees real rois
        model.bbox_head_init.retina_reg.bias.normal_(0, 0.3)
        model.bbox_head_refine[0].retina_reg.bias.normal_(0, 0.3)
    x = torch.randn(1, 3, 64, 96)
    path = tmp_path / "r3det.onnx"
    torch.onnx.export(
        Decode(model).eval(),
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=["boxes", "scores"],
    )
    proto = onnx.load(str(path))
    assert "GridSample" in {n.op_type for n in proto.graph.node}
    boxes, scores = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    ref_boxes, ref_scores = model.decode(x)
    torch.testing.assert_close(torch.from_numpy(boxes), ref_boxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(scores), ref_scores, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_short_training_run_and_checkpoint(tmp_path, train_config):
    from rdet.data.classes import SYNTHETIC

    c = _with_loss(train_config(tmp_path / "run", r3det_stages=1), "kld")
    c.model.anchors.octave_base_scale = 2.0  # 16 px anchors at P3 for the small objects of 64 px scenes
    t = c.train
    t.warmup_iters, t.optimizer, t.lr = 1, "adamw", 1e-3
    res = rdet.train(c, max_iters=3, progress=False)
    assert res["iterations"] == 3
    log = (tmp_path / "run/log.jsonl").read_text()
    assert "loss_bbox_refine_0" in log and "loss_cls_init" in log
    model = rdet.load_checkpoint(res["checkpoint"])
    assert isinstance(model, R3Det) and not model.training
    dets = model.predict(torch.zeros(1, 3, 64, 64), score_thr=0.0)
    assert dets[0].class_names == list(SYNTHETIC) and dets[0].boxes.shape[1] == 5


# --------------------------------------------------------------------------- configs and bad input


def _write(tmp_path, body: str) -> Path:
    p = tmp_path / "cfg.py"
    base = ROOT / "configs/r3det/r3det-oc_r50_fpn_1x_dota.py"
    p.write_text(f"from rdet.config import load_base\nconfig = load_base({str(base)!r})\n{body}\n")
    return p


def test_bad_refine_stage_count_or_strides_fail_at_load(tmp_path, r3det_config):
    with pytest.raises(ValueError, match="model.refine.stage_loss_weights"):
        load_config(_write(tmp_path, "config.model.refine.num_stages = 2"))
    with pytest.raises(ValueError, match="model.anchors.strides"):
        load_config(_write(tmp_path, "config.model.anchors.strides = (8, 16, 32, 64)"))
    with pytest.raises(ValueError, match="model.anchors.strides"):
        load_config(_write(tmp_path, "config.model.anchors.strides = (8, 16, 32, 64, 256)"))
    with pytest.raises(ValueError, match="model.refine"):
        load_config(_write(tmp_path, "config.model.refine = None"))
    # the model checks too when handed an unvalidated config
    c = r3det_config(stages=2)
    c.model.refine.stage_loss_weights = (1.0,)
    with pytest.raises(ValueError, match="model.refine.stage_loss_weights"):
        R3Det(["a", "b"], c.model)
    c = r3det_config()
    c.model.anchors.strides = (8, 16, 32, 64)
    with pytest.raises(ValueError, match="model.anchors.strides"):
        R3Det(["a", "b"], c.model)


PUBLISHED = {
    # file: (init stacked convs, refine stacked convs, loss type, stable, loss weight)
    "r3det/r3det-oc_r50_fpn_1x_dota.py": (4, 4, "smooth_l1", False, 1.0),
    "r3det/r3det-tiny-oc_r50_fpn_1x_dota.py": (2, 2, "smooth_l1", False, 1.0),
    "kld/r3det-oc_r50_fpn_kld_1x_dota.py": (4, 4, "kld", False, 1.0),
    "kld/r3det-oc_r50_fpn_kld-stable_1x_dota.py": (4, 4, "kld", True, 5.0),
    "kld/r3det-tiny-oc_r50_fpn_kld_1x_dota.py": (4, 2, "kld", False, 1.0),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_config_values(name):
    c = load_config(ROOT / "configs" / name)
    m = c.model
    init_convs, refine_convs, loss, stable, weight = PUBLISHED[name]
    assert c.name == Path(name).stem and c.reference.endswith(name)
    assert m.type == "r3det" and m.backbone.depth == 50 and m.neck.out_channels == 256
    assert (m.coder.angle_version, m.coder.edge_swap, m.coder.proj_xy, m.coder.norm_factor) == (
        "oc",
        False,
        False,
        None,
    )
    assert (m.head.stacked_convs, m.refine.stacked_convs) == (init_convs, refine_convs)
    assert (m.head.pos_iou_thr, m.head.neg_iou_thr, m.refine.pos_iou_thr, m.refine.neg_iou_thr) == (0.5, 0.4, 0.6, 0.5)
    assert m.refine.num_stages == 1 and m.refine.stage_loss_weights == (1.0,)
    for lc in (m.head.loss_bbox, m.refine.loss_bbox):
        assert (lc.type, lc.loss_weight) == (loss, weight)
        if loss == "smooth_l1":
            assert lc.beta == 0.11
        else:
            assert (lc.stable, lc.fun, lc.tau, lc.sqrt) == (stable, "log1p", 1.0, False)
    assert m.head.reg_decoded_bbox == (loss == "kld")
    assert (m.test.nms_pre, m.test.score_thr, m.test.iou_thr, m.test.max_per_img) == (2000, 0.05, 0.1, 2000)
    assert c.data.img_size == (1024, 1024) and c.data.flip == (0.25, 0.25, 0.25) and c.train.lr == 0.0025


def test_published_model_shapes():
    c = load_config(ROOT / "configs/r3det/r3det-oc_r50_fpn_1x_dota.py")
    c.model.backbone.weights = None
    state = build_model(c).state_dict()
    # shapes of MMRotate dev-1.x's r3det-oc_r50_fpn_1x_dota state_dict
    assert tuple(state["bbox_head_init.retina_cls.weight"].shape) == (9 * 15, 256, 3, 3)
    assert tuple(state["bbox_head_init.retina_reg.weight"].shape) == (9 * 5, 256, 3, 3)
    assert tuple(state["bbox_head_refine.0.retina_cls.weight"].shape) == (15, 256, 3, 3)
    assert tuple(state["bbox_head_refine.0.retina_reg.weight"].shape) == (5, 256, 3, 3)
    assert tuple(state["bbox_head_refine.0.feat_refine_module.conv_1_5.weight"].shape) == (256, 256, 1, 5)
    assert "bbox_head_refine.0.cls_convs.3.conv.weight" in state and "bbox_head_init.reg_convs.3.conv.weight" in state


def test_quickstart_config_builds():
    c = load_config(ROOT / "configs/quickstart/r3det-oc_r18_fpn_kld_synthetic.py")
    assert c.model.type == "r3det" and c.model.backbone.depth == 18 and c.data.class_list == "synthetic"
    assert c.model.refine.loss_bbox.type == "kld" and c.model.head.reg_decoded_bbox
    assert isinstance(build_model(c), R3Det)
