import math

import pytest
import torch

from rdet.boxes import regularize
from rdet.config import HeadConfig, ModelConfig
from rdet.models import anchors as A
from rdet.models.backbone import ResNet
from rdet.models.build import build_model
from rdet.models.coder import DeltaXYWHTCoder, clamp_centres
from rdet.models.detector import IMAGENET_MEAN, IMAGENET_STD, HeadOutputs
from rdet.models.fpn import FPN
from rdet.models.heads import RetinaHead, distribution_to_deltas, max_iou_assign
from rdet.models.r3det import R3Det
from rdet.models.retinanet import RotatedRetinaNet


def test_resnet_torchvision_names_and_sizes():
    r50 = ResNet(50)
    names = set(r50.state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.downsample.0.weight",
        "layer4.2.bn3.running_var",
        "layer3.5.conv2.weight",
    ):
        assert key in names
    # torchvision resnet50 has 25,557,032 parameters, 2,049,000 of them in fc (not used here).
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032 - 2_049_000
    # resnet18: 11,689,512 - fc 513,000.
    assert sum(p.numel() for p in ResNet(18).parameters()) == 11_689_512 - 513_000
    feats = ResNet(18)(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 16, 24), (1, 128, 8, 12), (1, 256, 4, 6), (1, 512, 2, 3)]


def test_resnet_frozen_stages_and_norm_eval():
    r = ResNet(18, frozen_stages=1, norm_eval=True).train()
    assert not r.conv1.weight.requires_grad and not r.layer1[0].conv1.weight.requires_grad
    assert r.layer2[0].conv1.weight.requires_grad
    assert all(not m.training for m in r.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_resnet_loads_local_weights_and_reports(tmp_path, capsys):
    src = ResNet(18)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # the ImageNet classifier is ignored silently
    del state["layer4.1.bn2.weight"]
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    dst = ResNet(18)
    missing, unexpected = dst.load_weights(path)
    assert missing == ["layer4.1.bn2.weight"] and unexpected == []
    assert torch.equal(dst.conv1.weight, state["conv1.weight"])
    assert "1 missing keys" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        dst.load_weights(tmp_path / "nope.pth")


def test_base_anchors_match_mmdet_layout():
    # stride 8, octave base scale 4, 3 scales, ratios (1, 0.5, 2): first anchor is 32x32, ratio-major order.
    base = A.base_anchors(8, 4, 3, (1.0, 0.5, 2.0))
    wh = base[:, 2:] - base[:, :2]
    s = [32 * 2 ** (k / 3) for k in range(3)]
    r = math.sqrt(0.5)
    expected = [(x, x) for x in s] + [(x / r, x * r) for x in s] + [(x / math.sqrt(2), x * math.sqrt(2)) for x in s]
    torch.testing.assert_close(wh, torch.tensor(expected), atol=1e-4, rtol=0)
    grid = A.grid_anchors([(2, 3)], [8], 4, 3, (1.0, 0.5, 2.0))[0]
    assert grid.shape == (2 * 3 * 9, 5)
    # location-major: anchors 9..17 are at (x=8, y=0); centre offset 0 as mmdet.
    assert grid[9, :2].tolist() == [8.0, 0.0] and grid[27, :2].tolist() == [0.0, 8.0]
    assert (grid[:, 4] == 0).all()


@pytest.mark.parametrize(
    "version,edge_swap,proj_xy",
    [("le90", True, True), ("oc", False, False), ("le135", True, True), ("le90", False, True)],
)
def test_coder_round_trip(version, edge_swap, proj_xy):
    g = torch.Generator().manual_seed(0)
    n = 500
    anchors = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 500,
            torch.rand(n, 2, generator=g) * 60 + 20,
            (torch.rand(n, 1, generator=g) - 0.5) * math.pi,
        ],
        1,
    )
    gt = torch.cat(
        [
            anchors[:, :2] + torch.randn(n, 2, generator=g) * 5,
            anchors[:, 2:4] * (0.5 + torch.rand(n, 2, generator=g)),
            (torch.rand(n, 1, generator=g) - 0.5) * 4 * math.pi,
        ],
        1,
    )
    coder = DeltaXYWHTCoder(
        angle_version=version, edge_swap=edge_swap, proj_xy=proj_xy, means=(0.1, 0, 0, 0.2, 0), stds=(0.5, 0.5, 1, 1, 2)
    )
    back = coder.decode(anchors, coder.encode(anchors, gt))
    expected = regularize(gt, version)
    if not edge_swap:
        back = regularize(back, version)
    torch.testing.assert_close(back, expected, atol=2e-3, rtol=1e-4)


def test_coder_known_deltas():
    coder = DeltaXYWHTCoder(angle_version="le90", edge_swap=True, proj_xy=True)
    anchor = torch.tensor([[10.0, 10.0, 20.0, 10.0, 0.0]])
    gt = torch.tensor([[12.0, 11.0, 40.0, 10.0, 0.1]])
    d = coder.encode(anchor, gt)[0]
    torch.testing.assert_close(d, torch.tensor([2 / 20, 1 / 10, math.log(2), 0.0, 0.1]), atol=1e-6, rtol=0)
    # edge swap: a tall target 10x40 at angle 0.1 is the same rectangle as 40x10 at 0.1 - pi/2 ...
    tall = torch.tensor([[10.0, 10.0, 10.0, 40.0, 0.1]])
    d2 = coder.encode(anchor, tall)[0]
    # ... regularised to le90 it is (40, 10, 0.1 - pi/2 + pi) wrapped: delta -1.4708, or swapped back: 0.1 + ... the
    # coder picks the smaller |delta|: angle 0.1 + pi/2 - pi/2 with w/h swapped -> (log(10/20), log(40/10), 0.1)
    torch.testing.assert_close(d2[2:], torch.tensor([math.log(0.5), math.log(4.0), 0.1]), atol=1e-6, rtol=0)


def test_max_iou_assign_hand_case():
    anchors = torch.tensor(
        [[10.0, 10, 10, 10, 0], [14.0, 10, 10, 10, 0], [50.0, 50, 10, 10, 0], [100.0, 100, 10, 10, 0]]
    )
    gt = torch.tensor([[11.0, 10, 10, 10, 0], [52.0, 50, 10, 10, 0.5]])
    assigned, max_iou = max_iou_assign(anchors, gt, 0.5, 0.4, 0.0, horizontal=False)
    # anchor0: IoU 9/11 > 0.5 -> gt0; anchor1: IoU 7/13 = 0.538 -> gt0; anchor2: best of gt1 -> pos via low quality;
    # anchor3: no overlap -> background.
    assert assigned.tolist() == [1, 1, 2, 0]
    assert abs(max_iou[0].item() - 9 / 11) < 1e-5 and abs(max_iou[1].item() - 7 / 13) < 1e-5
    none, _ = max_iou_assign(anchors, gt[:0], 0.5, 0.4, 0.0, horizontal=False)
    assert none.tolist() == [0, 0, 0, 0]


def test_distribution_expectation():
    logits = torch.full((1, 5 * 9), -1e4)
    logits.view(5, 9)[:, 4] = 0  # all mass on the middle bin
    d = distribution_to_deltas(logits, 8, (-2.0, 2.0), (-5.0, 2.0))
    torch.testing.assert_close(d, torch.tensor([[0.0, 0.0, 0.0, 0.0, -1.5]]))


@pytest.fixture
def tiny_model(tiny_config):
    """The 2-class tiny RetinaNet, seeded, in eval mode."""
    torch.manual_seed(0)
    return build_model(tiny_config(("a", "b"))).eval()


def test_mmrotate_checkpoint_key_names(tiny_config):
    keys = set(build_model(tiny_config()).state_dict())
    for k in (
        "backbone.conv1.weight",
        "neck.lateral_convs.0.conv.weight",
        "neck.fpn_convs.4.conv.bias",
        "bbox_head.cls_convs.0.conv.weight",
        "bbox_head.retina_cls.bias",
        "bbox_head.retina_reg.weight",
    ):
        assert k in keys


@pytest.mark.parametrize("reg_max", [0, 8])
def test_forward_loss_backward_predict(reg_max, tiny_config):
    torch.manual_seed(0)
    cfg = tiny_config(("a", "b"), reg_max=reg_max)
    model = build_model(cfg).train()
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    targets = [
        {"boxes": torch.tensor([[40.0, 40, 50, 20, 0.3]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    losses = model.loss(images, targets)
    assert set(losses) == {"loss_cls", "loss_bbox"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.bbox_head.retina_reg.weight.grad.abs().sum() > 0
    model.eval()
    dets = model.predict(images, score_thr=0.0)
    assert len(dets) == 2 and dets[0].boxes.shape[1] == 5
    assert (dets[0].scores[:-1] >= dets[0].scores[1:]).all()
    boxes, scores = model.decode(images)
    assert boxes.shape[:2] == scores.shape[:2] and scores.shape[2] == 2


def test_build_rejects_class_count_mismatch(tiny_config):
    cfg = tiny_config(("a", "b"))
    cfg.data.classes = ("a", "b", "c")
    with pytest.raises(ValueError, match="num_classes"):
        build_model(cfg)


# --------------------------------------------------------------------------- DenseDetector: pre-processing


def test_preprocess_normalises_uint8_and_float_alike_and_pads_to_32(tiny_model):
    model = tiny_model
    raw = torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8)
    x = model.preprocess_image(raw)
    assert x.shape == (2, 3, 64, 96) and x.dtype == torch.float32  # 50 -> 64, 70 -> 96
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(x[:, :, :50, :70], (raw.float() - mean) / std, rtol=0, atol=0)
    assert float(x[:, :, 50:].abs().sum() + x[:, :, :, 70:].abs().sum()) == 0  # padding = the mean colour
    torch.testing.assert_close(model.preprocess_image(raw.float()), x, rtol=0, atol=0)
    # already normalised: only padded
    torch.testing.assert_close(model.preprocess_image(x[:, :, :50, :70], normalized=True), x, rtol=0, atol=0)
    # a list of differently sized images: each normalised, then padded to the largest, then to 32
    batch = model.preprocess_image([raw[0], raw[1, :, :33, :40]])
    assert batch.shape == (2, 3, 64, 96)
    torch.testing.assert_close(batch[1, :, :33, :40], x[1, :, :33, :40], rtol=0, atol=0)
    assert float(batch[1, :, 33:].abs().sum()) == 0
    assert "pixel_mean" not in model.state_dict()  # old and MMRotate checkpoints carry no pixel statistics
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model.preprocess_image(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="uint8 or float"):
        model.preprocess_image(torch.zeros(1, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="empty"):
        model.preprocess_image([])


def test_predict_takes_raw_images_or_normalized_tensors(tiny_model):
    model = tiny_model
    with torch.no_grad():
        model.bbox_head.retina_cls.bias.zero_()  # scores near 0.5: a random model detects
    raw = torch.randint(0, 256, (1, 3, 100, 90), dtype=torch.uint8)
    a = model.predict(raw)[0]
    # a normalised batch counts as given (its size is the clamp's image size): un-padded, it equals raw input
    b = model.predict(model.preprocess_image(raw)[:, :, :100, :90], normalized=True)[0]
    c = model.predict([raw[0]])[0]
    assert len(a) > 0
    for other in (b, c):
        torch.testing.assert_close(other.boxes, a.boxes, rtol=0, atol=0)
        torch.testing.assert_close(other.scores, a.scores, rtol=0, atol=0)
    boxes, scores = model.decode(raw)
    out = model.head_outputs(raw)
    assert isinstance(out, HeadOutputs) and out.stages == []
    assert boxes.shape == (1, sum(out.num_per_level), 5) and scores.shape == (1, boxes.shape[1], 2)
    assert out.levels().tolist() == [i for i, n in enumerate(out.num_per_level) for _ in range(n)]


def test_models_build_from_components_without_the_config_system(tiny_config):
    torch.manual_seed(0)
    backbone = ResNet(18, frozen_stages=0, norm_eval=False)
    neck = FPN(backbone.out_channels, out_channels=32)
    model = RotatedRetinaNet(["plane", "ship"], backbone=backbone, neck=neck)
    assert model.cfg.head.num_classes == 2 and model.config is None and model.backbone is backbone
    assert model.bbox_head.cls_convs[0].conv.in_channels == 32  # the default head sits on the given neck
    head = RetinaHead(2, 32, 9, stacked_convs=1, feat_channels=16)
    small = RotatedRetinaNet(["plane", "ship"], backbone=ResNet(18), neck=FPN((64, 128, 256, 512), 32), bbox_head=head)
    assert small.bbox_head is head
    dets = small.eval().predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), score_thr=0.0)
    assert dets[0].class_names == ["plane", "ship"] and dets[0].boxes.shape[1] == 5
    r3 = R3Det(["a"], backbone=ResNet(18), neck=FPN((64, 128, 256, 512), 16))
    assert r3.cfg.type == "r3det" and len(r3.bbox_head_refine) == 1
    assert len(r3.eval().head_outputs(torch.zeros(1, 3, 64, 64)).stages) == 2
    with pytest.raises(ValueError, match="num_classes"):
        RotatedRetinaNet(["a", "b"], ModelConfig(head=HeadConfig(num_classes=3)))
    # build_model keeps the config it was built from (checkpoints store it)
    cfg = tiny_config()
    assert build_model(cfg).config is cfg


# --------------------------------------------------------------------------- test-time centre clamp


def test_clamp_centres_known_answers():
    """MMRotate's ``max_shape`` clamp: cx into [0, W - 1], cy into [0, H - 1]; sizes and angles untouched."""
    boxes = torch.tensor([[[-5.0, 300, 10, 4, 0.3], [50.5, 20, 8, 8, -1.0], [120, -0.5, 3, 2, 0.0]]])
    want = torch.tensor([[[0.0, 199, 10, 4, 0.3], [50.5, 20, 8, 8, -1.0], [99, 0, 3, 2, 0.0]]])
    torch.testing.assert_close(clamp_centres(boxes, torch.tensor([[200, 100]])), want, rtol=0, atol=0)
    # per image sizes [B, 2]: the second image (H 40, W 30) clamps at its own border
    two = clamp_centres(boxes.expand(2, -1, -1), torch.tensor([[200, 100], [40, 30]]))
    torch.testing.assert_close(two[0], want[0], rtol=0, atol=0)
    assert two[1, :, 0].tolist() == [0.0, 29.0, 29.0] and two[1, :, 1].tolist() == [39.0, 20.0, 0.0]


def test_predict_clamps_decoded_centres_into_each_image(tiny_model):
    """A head that pushes every centre 3 anchor widths right: ``predict`` and ``decode`` clamp the centres to
    ``W - 1`` of each image (before NMS, as MMRotate), the raw decode does not."""
    model = tiny_model
    with torch.no_grad():
        model.bbox_head.retina_cls.bias.zero_()
        model.bbox_head.retina_reg.weight.zero_()
        bias = torch.zeros(model.num_anchors, 5)
        bias[:, 0] = 3.0  # dx: + 3 anchor widths (angle-0 anchors: along +x)
        model.bbox_head.retina_reg.bias.copy_(bias.reshape(-1))
    big = torch.randint(0, 256, (3, 96, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    small = big[:, :50, :40].clone()
    with torch.no_grad():
        raw = model.decode_boxes(model.head_outputs([big, small]))
    assert float(raw[0, :, 0].max()) > 79 + 50  # far outside without the clamp
    for dets, (h, w) in zip(model.predict([big, small], score_thr=0.0), ((96, 80), (50, 40))):
        cx, cy = dets.boxes[:, 0], dets.boxes[:, 1]
        assert len(dets) > 0 and float(cx.min()) >= 0 and float(cx.max()) == w - 1
        assert float(cy.min()) >= 0 and float(cy.max()) <= h - 1
    boxes, _ = model.decode(big[None])  # the exported ``none`` graph's boxes: clamped too
    assert float(boxes[..., 0].max()) == 79 and float(boxes[..., 0].min()) >= 0
    with torch.no_grad():
        torch.testing.assert_close(boxes[..., 2:], model.decode_boxes(model.head_outputs(big[None]))[..., 2:])


def test_max_iou_assign_keeps_every_tied_anchor_or_the_first():
    # a 4 x 4 px object wholly inside three equal 16 x 16 anchors: IoU 16 / 256 with each, exactly tied
    anchors = torch.tensor([[8.0, 8, 16, 16, 0], [12, 8, 16, 16, 0], [16, 8, 16, 16, 0], [60, 60, 16, 16, 0]])
    gt = torch.tensor([[12.0, 8, 4, 4, 0]])
    for horizontal in (False, True):
        all_ties, iou = max_iou_assign(anchors, gt, 0.5, 0.4, 0.0, horizontal=horizontal)
        assert all_ties.tolist() == [1, 1, 1, 0] and iou[:3].tolist() == [0.0625] * 3
        first, _ = max_iou_assign(anchors, gt, 0.5, 0.4, 0.0, horizontal=horizontal, all_ties=False)
        assert first.tolist() == [1, 0, 0, 0]  # the others stay background (IoU < 0.4), as mmdet's argmax
