"""Rotated RetinaNet head: the conv towers, target assignment and losses (test-time selection: selection.py).

Module names follow MMDetection's RetinaHead (``cls_convs.i.conv``, ``reg_convs.i.conv``, ``retina_cls``,
``retina_reg``) so MMRotate checkpoints' ``bbox_head.*`` keys load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdet import ops
from rdet.boxes import obb2hbox
from rdet.models.fpn import ConvModule


class RetinaHead(nn.Module):
    """Two towers of ``stacked_convs`` 3x3 convs + ReLU, then a class conv and a box conv.

    Shapes: for each level ``x [B, Cin, H, W]`` -> ``cls [B, A*C, H, W]``, ``reg [B, A*R, H, W]`` with
    ``R = 5`` (deltas) or ``5 * (reg_max + 1)`` (distribution logits, delta-major then bin).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        num_anchors: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        reg_max: int = 0,
    ):
        super().__init__()
        self.num_classes, self.num_anchors, self.reg_max = num_classes, num_anchors, reg_max
        self.reg_channels = 5 * (reg_max + 1) if reg_max > 0 else 5
        chans = [in_channels] + [feat_channels] * stacked_convs
        self.cls_convs = nn.ModuleList(ConvModule(chans[i], chans[i + 1], 3, relu=True) for i in range(stacked_convs))
        self.reg_convs = nn.ModuleList(ConvModule(chans[i], chans[i + 1], 3, relu=True) for i in range(stacked_convs))
        self.retina_cls = nn.Conv2d(chans[-1], num_anchors * num_classes, 3, padding=1)
        self.retina_reg = nn.Conv2d(chans[-1], num_anchors * self.reg_channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # every conv here has a bias
        # Focal-loss prior: every anchor starts at p = 0.01 so the background flood does not swamp training.
        nn.init.constant_(self.retina_cls.bias, -math.log((1 - 0.01) / 0.01))  # type: ignore[arg-type]

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c, r = x, x
        for conv in self.cls_convs:
            c = conv(c)
        for conv in self.reg_convs:
            r = conv(r)
        return self.retina_cls(c), self.retina_reg(r)

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        outs = [self.forward_single(x) for x in feats]
        return [o[0] for o in outs], [o[1] for o in outs]


def distribution_to_deltas(
    logits: Tensor, reg_max: int, reg_range: tuple[float, float], angle_range: tuple[float, float]
) -> Tensor:
    """Expected deltas of a general-distribution head.

    Args:
        logits (Tensor[..., 5 * (reg_max + 1)]): per-delta bin logits, delta-major.

    Returns:
        Tensor[..., 5]: ``sum_i softmax(logits)_i * bin_i`` with bins spanning ``reg_range`` (x, y, w, h)
        and ``angle_range`` (angle), as Rotated-LD's ``Integral`` layers.
    """
    probs = logits.reshape(*logits.shape[:-1], 5, reg_max + 1).float().softmax(-1)
    bins = torch.stack(
        [torch.linspace(reg_range[0], reg_range[1], reg_max + 1)] * 4
        + [torch.linspace(angle_range[0], angle_range[1], reg_max + 1)]
    )
    return (probs * bins.to(probs.device)).sum(-1)


# --------------------------------------------------------------------------- assignment


def horizontal_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of the enclosing axis-aligned boxes. ``[N, 5] x [M, 5] -> [N, M]`` (MMRotate ``FakeRBboxOverlaps2D``)."""
    a, b = obb2hbox(boxes1), obb2hbox(boxes2)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)


# gts whose float64 IoUs are computed at once (bounds the float64 block to ~100 MB at 200k anchors)
IOU_GT_CHUNK = 64


def assign_iou(gt: Tensor, anchors: Tensor, horizontal: bool) -> Tensor:
    """The assigner's IoU ``[G, 5] x [N, 5] -> [G, N]`` in ``anchors.dtype``, the same on every implementation.

    Rotated: ``ops.box_iou_rotated`` in float64, rounded to float32. The float32 kernels (CUDA, pure PyTorch) differ
    from each other and from the float64 CPU kernel by ~1e-7, so mathematically tied IoUs (an object inside several
    equal anchors) came out unequal in a path-dependent way and each path kept a different subset of the tied
    anchors (the same batch trained differently with and without the compiled ops). The float64 results of the
    paths differ by ~1e-16 and round to the same float32 unless they straddle a float32 rounding boundary (on the
    parity batch: 18 of 1.06 million IoUs, none a gt's best). Horizontal: :func:`horizontal_iou` (one formula).
    """
    if horizontal:
        return horizontal_iou(gt, anchors)
    a64 = anchors.double()
    return torch.cat([ops.box_iou_rotated(g.double(), a64).to(anchors.dtype) for g in gt.split(IOU_GT_CHUNK)])


def max_iou_assign(
    anchors: Tensor,
    gt: Tensor,
    pos_thr: float,
    neg_thr: float,
    min_pos_iou: float,
    horizontal: bool,
    all_ties: bool = True,
) -> tuple[Tensor, Tensor]:
    """MaxIoUAssigner (mmdet): each anchor -> a gt index, background or ignored.

    Args:
        anchors (Tensor[N, 5]), gt (Tensor[G, 5]).

    Returns:
        assigned (Tensor[N] int64): ``-1`` ignored, ``0`` background, ``g + 1`` matched to gt ``g``;
        max_iou (Tensor[N]).

    Rule: IoU < neg_thr -> background; >= pos_thr -> its best gt; then every gt claims the anchors of its
    highest IoU (all ties; only the first with ``all_ties=False``, mmdet's ``gt_max_assign_all``), if that IoU
    >= min_pos_iou. Unlike mmdet we also require that IoU to be > 0:
    with ``min_pos_iou=0`` mmdet would make *every* anchor a positive of a gt that overlaps none.

    Ties are real: a small object wholly inside several anchors of one shape has the same IoU with each of them,
    and all of them become its positives. So that every implementation of the rotated IoU (compiled CPU, CUDA,
    pure PyTorch) finds the same ties, it is computed in float64 and rounded to float32 (:func:`assign_iou`).
    """
    n = anchors.shape[0]
    assigned = anchors.new_full((n,), -1, dtype=torch.long)
    if gt.shape[0] == 0:
        assigned.zero_()
        return assigned, anchors.new_zeros(n)
    iou = assign_iou(gt, anchors, horizontal)  # [G, N]
    max_iou, argmax = iou.max(0)
    assigned[(max_iou >= 0) & (max_iou < neg_thr)] = 0
    pos = max_iou >= pos_thr
    assigned[pos] = argmax[pos] + 1
    gt_max, gt_argmax = iou.max(1)  # [G]
    for g in range(gt.shape[0]):  # in gt order, as mmdet: a later gt wins a shared best anchor
        if gt_max[g] >= min_pos_iou and gt_max[g] > 0:
            if all_ties:
                assigned[iou[g] == gt_max[g]] = g + 1
            else:
                assigned[gt_argmax[g]] = g + 1
    return assigned, max_iou


@dataclass
class Targets:
    """Assignment of every anchor of a batch.

    Attributes:
        labels (Tensor[B, N] int64): class index, ``num_classes`` for background.
        label_weights (Tensor[B, N]): 1 for positives and negatives, 0 for ignored anchors.
        gt_boxes (Tensor[B, N, 5]): the matched ground-truth box (zeros where not positive).
        pos (Tensor[B, N] bool): positive anchors.
        max_iou (Tensor[B, N]): best IoU of each anchor with any gt (0 without gts).
        num_pos (float): number of positives (at least 1), the losses' normaliser.
    """

    labels: Tensor
    label_weights: Tensor
    gt_boxes: Tensor
    pos: Tensor
    max_iou: Tensor
    num_pos: float


@torch.no_grad()
def assign_batch(
    anchors: Tensor,
    targets: list[dict],
    num_classes: int,
    pos_thr: float,
    neg_thr: float,
    min_pos_iou: float,
    horizontal: bool,
    all_ties: bool = True,
) -> Targets:
    """``max_iou_assign`` for every image of a batch.

    Args:
        anchors (Tensor[N, 5] shared, or Tensor[B, N, 5] per image, e.g. R3Det's refined boxes).
        targets: ``targets[i] = {'boxes': Tensor[G, 5], 'labels': Tensor[G]}``.
    """
    labels, weights, gts, poss, ious = [], [], [], [], []
    for b, t in enumerate(targets):
        anc = anchors[b] if anchors.dim() == 3 else anchors
        gt = t["boxes"].to(anc)
        assigned, max_iou = max_iou_assign(anc, gt, pos_thr, neg_thr, min_pos_iou, horizontal, all_ties)
        pos = assigned > 0
        lab = torch.full_like(assigned, num_classes)
        gtb = anc.new_zeros(anc.shape)
        if pos.any():
            idx = assigned[pos] - 1
            lab[pos] = t["labels"].to(anc.device)[idx]
            gtb[pos] = gt[idx]
        labels.append(lab)
        weights.append((assigned >= 0).to(anc.dtype))
        gts.append(gtb)
        poss.append(pos)
        ious.append(max_iou)
    pos = torch.stack(poss)
    return Targets(
        torch.stack(labels), torch.stack(weights), torch.stack(gts), pos, torch.stack(ious), max(float(pos.sum()), 1.0)
    )


# --------------------------------------------------------------------------- losses


def sigmoid_focal(logits: Tensor, labels: Tensor, num_classes: int, gamma: float, alpha: float) -> Tensor:
    """Sigmoid focal loss summed over classes. ``logits [P, C]``, ``labels [P]`` (``C`` = background) -> ``[P]``."""
    from rdet.losses.focal import focal_loss

    target = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    return focal_loss(logits, target, gamma=gamma, alpha=alpha).sum(-1)
