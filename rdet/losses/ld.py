"""Localization distillation (LD) and classification distillation (KD) in the valuable localization region.

Zheng et al., *Localization Distillation for Object Detection* (CVPR 2022 / TPAMI 2023), rotated version
Zzh-tju/Rotated-LD (``LDRotatedRetinaHead``). A general-distribution head predicts, for each of the five
deltas ``(x, y, w, h, angle)`` of every anchor, ``reg_max + 1`` bin logits (``rdet.models.heads``). LD is
the temperature-softened KL divergence between the teacher's and the student's bin distributions, KD the
same on the class logits:

    LD = sum_{anchors a, deltas d} w_a * T^2 * KL(softmax(t_ad / T) || softmax(s_ad / T)) / |{a: w_a > 0}|
    KD = sum_{anchors a}           w_a * T^2 * KL(softmax(t_a  / T) || softmax(s_a  / T)) / |{a: w_a > 0}|

with the KL averaged over the bins (classes) rather than summed (``class_reduction='mean'``, MMDetection's
``KnowledgeDistillationKLDivLoss``, which the published loss weights assume), and the sums normalised per
FPN level and then added over levels when ``num_level_anchors`` is given (the reference computes every loss
level by level, each with its own ``avg_factor``).

The **valuable localization region** (VLR, :func:`vlr_weights`) of a ground-truth box is the set of anchors
whose IoU with it is at least ``alpha * (mean + std)`` of the IoUs of its ATSS-style candidates (the
``topk`` anchors nearest to its centre on every level); Rotated-LD (``get_ld_region``) weights each such
anchor by that IoU. The reference computes the IoU of *axis-aligned* boxes, dropping the angle of both
anchors and ground truths (``horizontal=True`` reproduces it); rdet's default is the rotated IoU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rdet import ops
from rdet.losses.distill import knowledge_distillation_kl_div

# --------------------------------------------------------------------------- the region


def _axis_aligned_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of ``(cx, cy, w, h)`` read as axis-aligned boxes, the angle dropped. ``[N, 5] x [M, 5] -> [N, M]``.

    Not the enclosing horizontal box: Rotated-LD's ``get_ld_region`` keeps ``w`` and ``h`` and ignores the angle.
    """

    def xyxy(b: Tensor) -> Tensor:
        return torch.cat([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], 1)

    a, b = xyxy(boxes1), xyxy(boxes2)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (boxes1[:, 2] * boxes1[:, 3])[:, None] + (boxes2[:, 2] * boxes2[:, 3])[None, :] - inter
    return inter / union.clamp(min=1e-6)


def _check_boxes(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 5 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float Tensor[N, 5], got {list(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
        )


def vlr_weights(
    anchors: Tensor,
    gt_boxes: Tensor,
    alpha: float,
    horizontal: bool = False,
    num_level_anchors: list[int] | None = None,
    topk: int = 9,
) -> Tensor:
    """Valuable-localization-region weight of every anchor: its IoU with a gt whose region it is in, else 0.

    Args:
        anchors (Tensor[N, 5]): all anchors of an image, level after level.
        gt_boxes (Tensor[G, 5]): ground-truth boxes.
        alpha: region threshold factor (Rotated-LD: 0.25).
        horizontal: IoU of the boxes read as axis-aligned, angles dropped (Rotated-LD); else rotated IoU.
        num_level_anchors: anchors per FPN level (sums to ``N``); ``None``: one level.
        topk: candidates per level and gt whose IoUs set the threshold (ATSS, Rotated-LD: 9).

    Returns:
        Tensor[N]: for each anchor, the largest IoU among the gts ``g`` with
        ``IoU(anchor, g) >= alpha * (mean_g + std_g)`` (mean and unbiased std over ``g``'s candidates);
        0 if there is none. Anchors of IoU 0 are never in the region (their weight would be 0 anyway).
    """
    _check_boxes(anchors, "anchors")
    _check_boxes(gt_boxes, "gt_boxes")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    n = anchors.shape[0]
    levels = [n] if num_level_anchors is None else list(num_level_anchors)
    if sum(levels) != n:
        raise ValueError(f"num_level_anchors sums to {sum(levels)}, but there are {n} anchors")
    if gt_boxes.shape[0] == 0 or n == 0:
        return anchors.new_zeros(n)
    gt_boxes = gt_boxes.to(anchors)
    iou = _axis_aligned_iou(anchors, gt_boxes) if horizontal else ops.box_iou_rotated(anchors, gt_boxes)  # [N, G]
    candidates = []
    start = 0
    for count in levels:
        if count > 0:  # ATSS-style candidates: the topk nearest anchor centres of every level
            dist = torch.cdist(
                anchors[start : start + count, :2].float(),
                gt_boxes[:, :2].float(),
                compute_mode="donot_use_mm_for_euclid_dist",
            )  # [n_l, G], exact differences
            idx = dist.topk(min(topk, count), dim=0, largest=False).indices + start  # [k, G]
            candidates.append(iou.gather(0, idx))
        start += count
    cand = torch.cat(candidates, 0)  # [K, G]
    std = cand.std(0) if cand.shape[0] > 1 else torch.zeros_like(cand[0])
    thr = alpha * (cand.mean(0) + std)  # [G]
    inside = (iou >= thr[None, :]) & (iou > 0)
    return torch.where(inside, iou, torch.zeros_like(iou)).max(1).values


def vlr_mask(
    anchors: Tensor,
    gt_boxes: Tensor,
    alpha: float,
    horizontal: bool = False,
    num_level_anchors: list[int] | None = None,
    topk: int = 9,
) -> Tensor:
    """The valuable localization region as a mask: ``Tensor[N] bool`` (:func:`vlr_weights` ``> 0``)."""
    return vlr_weights(anchors, gt_boxes, alpha, horizontal, num_level_anchors, topk) > 0


# --------------------------------------------------------------------------- the losses


def _weights(mask: Tensor, shape: torch.Size, name: str) -> Tensor:
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must be a Tensor of shape {list(shape)} (one weight per anchor), got "
            f"{list(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}"
        )
    return mask.float() if mask.dtype == torch.bool else mask


def _region_kl(
    student: Tensor,
    teacher: Tensor,
    mask: Tensor,
    T: float,
    bins: int,
    num_level_anchors: list[int] | None,
    class_reduction: str,
) -> Tensor:
    """The temperature-scaled KL of ``bins``-wide softmaxes inside the region, normalised (``ld_loss``/``kd_loss``)."""
    weight = _weights(mask, student.shape[:-1], "mask")
    kl = _kl_rows(student, teacher.detach(), weight > 0, T, bins, class_reduction)
    return _normalise(kl, weight.to(kl.dtype), num_level_anchors)


def _normalise(loss: Tensor, weight: Tensor, num_level_anchors: list[int] | None) -> Tensor:
    """``sum(w * loss) / max(#(w > 0), 1)`` per level, summed over levels. ``loss, weight [..., N] -> []``."""
    n = loss.shape[-1]
    levels = [n] if num_level_anchors is None else list(num_level_anchors)
    if sum(levels) != n:
        raise ValueError(f"num_level_anchors sums to {sum(levels)}, but the outputs have {n} anchors")
    total = loss.new_zeros(())
    for lw, ll in zip(weight.split(levels, -1), loss.split(levels, -1)):
        total = total + (lw * ll).sum() / (lw > 0).sum().clamp(min=1)
    return total


def _kl_rows(student: Tensor, teacher: Tensor, keep: Tensor, T: float, bins: int, class_reduction: str) -> Tensor:
    """Per-anchor KL summed over the groups of ``bins`` logits, computed only where ``keep``. ``-> [..., N]``."""
    out = student.new_zeros(keep.shape, dtype=torch.float64 if student.dtype == torch.float64 else torch.float32)
    if keep.any():
        s = student[keep].reshape(-1, bins)
        t = teacher[keep].reshape(-1, bins)
        kl = knowledge_distillation_kl_div(s, t, T, class_reduction).reshape(int(keep.sum()), -1).sum(1)
        out = out.index_put((keep,), kl)  # out of place: gradients reach `student` through `kl`
    return out


def ld_loss(
    student_reg_logits: Tensor,
    teacher_reg_logits: Tensor,
    mask: Tensor,
    T: float,
    num_level_anchors: list[int] | None = None,
    class_reduction: str = "mean",
) -> Tensor:
    """Localization distillation over the five deltas' bin distributions.

    Args:
        student_reg_logits (Tensor[..., N, 5 * (reg_max + 1)]): student bin logits, delta-major.
        teacher_reg_logits (Tensor[..., N, 5 * (reg_max + 1)]): teacher bin logits (detached).
        mask (Tensor[..., N]): bool region, or float weights (Rotated-LD: the anchor's IoU), 0 outside.
        T: temperature; the KL is multiplied by ``T^2``.
        num_level_anchors: anchors per FPN level: normalise each level by its count of weighted anchors
            and sum the levels (the reference); ``None``: one normalisation over all anchors.
        class_reduction: ``'mean'`` (KL averaged over the ``reg_max + 1`` bins, the reference) or ``'sum'``.

    Returns:
        Tensor[]: ``sum_{a, d} w_a T^2 KL_ad / max(#(w > 0), 1)``; 0 when student == teacher.
    """
    if student_reg_logits.shape != teacher_reg_logits.shape:
        raise ValueError(
            f"student regression logits {list(student_reg_logits.shape)} and teacher "
            f"{list(teacher_reg_logits.shape)} differ (same anchors and reg_max needed)"
        )
    r = student_reg_logits.shape[-1]
    if r % 5 or r < 10:
        raise ValueError(f"regression logits need 5 * (reg_max + 1) channels with reg_max >= 1, got {r}")
    return _region_kl(student_reg_logits, teacher_reg_logits, mask, T, r // 5, num_level_anchors, class_reduction)


def kd_loss(
    student_cls: Tensor,
    teacher_cls: Tensor,
    mask: Tensor,
    T: float,
    num_level_anchors: list[int] | None = None,
    class_reduction: str = "mean",
) -> Tensor:
    """Classification distillation: softened softmax over the class logits of each anchor in the region.

    Args:
        student_cls (Tensor[..., N, C]), teacher_cls (Tensor[..., N, C]): class logits (teacher detached).
        mask (Tensor[..., N]): bool region or float weights, 0 outside.
        T, num_level_anchors, class_reduction: as :func:`ld_loss` (``'mean'``: averaged over the C classes).

    Returns:
        Tensor[]: ``sum_a w_a T^2 KL_a / max(#(w > 0), 1)``; 0 when student == teacher, and always 0 with a
        single class (a softmax over one logit is constant; the reference behaves the same).
    """
    if student_cls.shape != teacher_cls.shape:
        raise ValueError(
            f"student class logits {list(student_cls.shape)} and teacher {list(teacher_cls.shape)} "
            "differ (same anchors and class list needed)"
        )
    return _region_kl(student_cls, teacher_cls, mask, T, student_cls.shape[-1], num_level_anchors, class_reduction)
