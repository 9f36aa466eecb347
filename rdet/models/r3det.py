"""R3Det: a refined single-stage rotated detector (Yang et al., AAAI 2021), MMRotate's semantics.

Pipeline (MMRotate dev-1.x ``RefineSingleStageDetector`` + ``R3Head`` / ``R3RefineHead``; 0.x ``R3Det``)::

    feats = FPN(ResNet(images))
    init stage:    RetinaHead on angle-0 anchors (A per location)  -> cls0, reg0
    rois          = per location, the anchor whose best class logit is highest, decoded with its deltas
                    (``filter_bboxes``), detached
    refine stage i: x_i = FRM_i(feats, rois)   (features re-sampled at the rois, rdet.models.frm)
                    RetinaHead with 1 "anchor" per location = the roi   -> cls_i, reg_i
                    rois = decode(rois, reg_i), detached (``refine_bboxes``), for stage i + 1
    detections    = the last stage's boxes decoded from its rois, class-wise rotated NMS

Module names follow dev-1.x (``bbox_head_init.*``, ``bbox_head_refine.{i}.*`` with the FRM at
``bbox_head_refine.{i}.feat_refine_module.*``); ``rdet.load_checkpoint`` renames 0.x keys
(``bbox_head.*``, ``refine_head.{i}.*``, ``feat_refine_module.{i}.*``), the checkpoints behind the
published numbers (:mod:`rdet.mmrotate`).

Losses are named like dev-1.x: ``loss_cls_init``, ``loss_bbox_init``, ``loss_cls_refine_{i}``,
``loss_bbox_refine_{i}`` (refine losses multiplied by ``refine.stage_loss_weights[i]``).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rdet.config import HeadConfig, ModelConfig, RefineConfig
from rdet.losses.regression import REGRESSION_LOSSES
from rdet.models.coder import DeltaXYWHTCoder
from rdet.models.detector import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DenseDetector,
    HeadOutputs,
    flatten_levels,
    level_sizes,
    rows_per_level,
)
from rdet.models.frm import FRM
from rdet.models.heads import RetinaHead, Targets, assign_batch

# Settings the config schema (rdet.config.RefineConfig) does not hold; the values are the published ones.
# Refine stage i > 0 raises both IoU thresholds by 0.1 per stage (r3det-refine-oc: 0.6/0.5 then 0.7/0.6).
# Proposed field: refine.pos_iou_thrs / refine.neg_iou_thrs tuples, one per stage.
REFINE_IOU_STEP = 0.1
# min_pos_iou=0 in every published refine assigner.
REFINE_MIN_POS_IOU = 0.0
# The refine stages use the init stage's coder settings and focal loss (identical in every published config),
# and regress decoded boxes exactly when their loss compares decoded boxes (reg_decoded_bbox=True in the KLD
# configs): the `decoded` column of the loss table.


class RefineHead(RetinaHead):
    """A RetinaHead with one anchor per location and its feature refinement module (dev-1.x ``R3RefineHead``)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int,
        feat_channels: int,
        strides: tuple[int, ...],
        frm_points: int = 1,
        frm_swap_xy: bool = True,
    ):
        super().__init__(num_classes, in_channels, 1, stacked_convs, feat_channels)
        self.feat_refine_module = FRM(in_channels, strides, frm_points, frm_swap_xy)


def best_boxes(cls: Tensor, reg: Tensor, anchors: Tensor, num_anchors: int, coder: DeltaXYWHTCoder) -> Tensor:
    """Per location, the anchor with the highest class logit (over classes, then anchors), decoded.

    MMRotate's ``filter_bboxes``: the max over raw logits equals the max over sigmoid scores; ties go to
    the first anchor.

    Args:
        cls (Tensor[B, L*A, C]), reg (Tensor[B, L*A, 5]): location-major then anchor (``flatten_levels``).
        anchors (Tensor[L*A, 5]).

    Returns:
        Tensor[B, L, 5]: detached float32 boxes.
    """
    b = cls.shape[0]
    best = cls.reshape(b, -1, num_anchors, cls.shape[-1]).max(-1).values.argmax(-1)  # [B, L]
    idx = best[:, :, None, None].expand(-1, -1, 1, 5)
    deltas = reg.reshape(b, -1, num_anchors, 5).gather(2, idx).squeeze(2)
    base = anchors.reshape(1, -1, num_anchors, 5).expand(b, -1, -1, -1).gather(2, idx).squeeze(2)
    return coder.decode(base, deltas.float()).detach()


def _levels(boxes: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
    """``Tensor[B, sum(H*W), 5]`` -> per level ``Tensor[B, H, W, 5]``."""
    parts = boxes.split([h * w for h, w in sizes], 1)
    return [p.reshape(p.shape[0], h, w, 5) for p, (h, w) in zip(parts, sizes)]


def _check(cfg: ModelConfig, class_names) -> RefineConfig:
    """Fail on settings an R3Det cannot build, naming the config field (``validate`` checks most at load);
    returns ``cfg.refine``."""
    if len(class_names) != cfg.head.num_classes:
        raise ValueError(f"{len(class_names)} class names for model.head.num_classes={cfg.head.num_classes}")
    r = cfg.refine
    if r is None:
        raise ValueError("config field model.refine: an r3det model needs a RefineConfig")
    if r.num_stages < 1 or len(r.stage_loss_weights) != r.num_stages:
        raise ValueError(
            f"config field model.refine.stage_loss_weights: {len(r.stage_loss_weights)} weights for "
            f"model.refine.num_stages={r.num_stages}"
        )
    if len(cfg.anchors.strides) != cfg.neck.num_outs:
        raise ValueError(
            f"config field model.anchors.strides: {len(cfg.anchors.strides)} strides (the FRM's "
            f"strides too) for {cfg.neck.num_outs} FPN levels"
        )
    if cfg.head.reg_max:
        raise ValueError("config field model.head.reg_max: R3Det has no distribution head (use 0)")
    return r


class R3Det(DenseDetector):
    """R3Det / R3Det-tiny (``cfg.refine.stacked_convs``): a :class:`~rdet.models.detector.DenseDetector` whose
    :class:`~rdet.models.detector.HeadOutputs` are the last refine stage's, with every stage in ``stages``.

    Args:
        class_names: one name per class.
        cfg: settings with a ``refine`` section (default: ``ModelConfig(type='r3det')`` with one refine stage).
        backbone, neck, pixel_mean, pixel_std: see :class:`~rdet.models.detector.DenseDetector`.
        bbox_head_init: the init stage's :class:`~rdet.models.heads.RetinaHead` (default: from ``cfg.head``).
        bbox_head_refine: one :class:`RefineHead` per refine stage (default: from ``cfg.refine``).
    """

    bbox_head_init: RetinaHead

    def __init__(
        self,
        class_names: Sequence[str],
        cfg: ModelConfig | None = None,
        *,
        backbone: nn.Module | None = None,
        neck: nn.Module | None = None,
        bbox_head_init: RetinaHead | None = None,
        bbox_head_refine: Sequence[RefineHead] | None = None,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
    ):
        if cfg is None:
            cfg = ModelConfig(type="r3det", head=HeadConfig(num_classes=len(class_names)), refine=RefineConfig())
        r = _check(cfg, class_names)
        super().__init__(class_names, cfg, backbone, neck, pixel_mean, pixel_std)
        h, channels = cfg.head, self.neck_channels
        if bbox_head_init is None:
            bbox_head_init = RetinaHead(h.num_classes, channels, self.num_anchors, h.stacked_convs, h.feat_channels)
        self.bbox_head_init = bbox_head_init
        if bbox_head_refine is None:
            strides = tuple(cfg.anchors.strides)
            bbox_head_refine = [
                RefineHead(
                    h.num_classes, channels, r.stacked_convs, h.feat_channels, strides, r.frm_points, r.frm_swap_xy
                )
                for _ in range(r.num_stages)
            ]
        self.bbox_head_refine = nn.ModuleList(bbox_head_refine)
        self.refine = r

    # ----------------------------------------------------------------- forward

    def forward_features(self, x: Tensor) -> HeadOutputs:
        """Every stage on ``x [B, 3, H, W]``; returns the last stage with ``stages`` = all of them, init first.

        Init stage rows: ``sum(H_l * W_l * A)`` anchors; refine stage rows: ``L = sum(H_l * W_l)`` rois.
        """
        feats = self.neck(self.backbone(x))
        c = self.cfg.head.num_classes
        cls, reg = self.bbox_head_init(feats)
        sizes = level_sizes(cls)
        anchors = torch.cat(self.anchors(sizes, x.device))
        init = HeadOutputs(
            flatten_levels(cls, c), flatten_levels(reg, 5), anchors, rows_per_level(sizes, self.num_anchors)
        )
        stages = [init]
        rois = best_boxes(init.cls, init.reg, anchors, self.num_anchors, self.coder)  # [B, L, 5]
        for i, head in enumerate(typing.cast(list[RefineHead], self.bbox_head_refine)):
            refined = head.feat_refine_module(feats, _levels(rois, sizes))
            cls, reg = head(refined)
            stages.append(HeadOutputs(flatten_levels(cls, c), flatten_levels(reg, 5), rois, rows_per_level(sizes, 1)))
            if i + 1 < len(self.bbox_head_refine):
                rois = self.coder.decode(rois, stages[-1].reg.float()).detach()
        last = stages[-1]
        return HeadOutputs(last.cls, last.reg, last.anchors, last.num_per_level, stages)

    # ----------------------------------------------------------------- training

    def assign(self, anchors: Tensor, targets: list[dict], stage: int = 0) -> Targets:
        """MaxIoU assignment of ``stage``'s anchors ``[N, 5]`` (init, shared) or rois ``[B, N, 5]`` (refine).

        Stage 0 (init): ``model.head`` thresholds and IoU kind; refine stage ``i = stage - 1``: rotated IoU,
        ``model.refine`` thresholds ``+ REFINE_IOU_STEP * i``.
        """
        h = self.cfg.head
        if stage == 0:
            pos, neg, min_pos, horizontal = h.pos_iou_thr, h.neg_iou_thr, h.min_pos_iou, h.assign_iou == "horizontal"
        else:
            step = REFINE_IOU_STEP * (stage - 1)
            pos, neg = self.refine.pos_iou_thr + step, self.refine.neg_iou_thr + step
            min_pos, horizontal = REFINE_MIN_POS_IOU, False
        all_ties = h.gt_max_assign_all if stage == 0 else True  # the refine stages' rois do not tie
        return assign_batch(anchors, targets, h.num_classes, pos, neg, min_pos, horizontal, all_ties)

    def loss_from_outputs(
        self, out: HeadOutputs, targets: list[dict], assigned: list[Targets] | None = None
    ) -> dict[str, Tensor]:
        """``{'loss_cls_init', 'loss_bbox_init', 'loss_cls_refine_0', 'loss_bbox_refine_0', ...}`` (refine
        losses times ``refine.stage_loss_weights[i]``)."""
        h, r = self.cfg.head, self.refine
        losses = {}
        for index, stage in enumerate(out.stages):
            tg = assigned[index] if assigned else self.assign(stage.anchors, targets, index)
            if index == 0:
                c, b = self.dense_losses(stage, tg, h.loss_bbox, h.reg_decoded_bbox)
                losses["loss_cls_init"], losses["loss_bbox_init"] = c, b
            else:
                i = index - 1
                c, b = self.dense_losses(stage, tg, r.loss_bbox, REGRESSION_LOSSES[r.loss_bbox.type].decoded)
                w = r.stage_loss_weights[i]
                losses[f"loss_cls_refine_{i}"], losses[f"loss_bbox_refine_{i}"] = c * w, b * w
        return losses
