"""Rotated RetinaNet: ResNet + FPN + RetinaHead, with the delta-xywht coder and rotated NMS.

The interface (pre-processing, ``predict``, ``loss``, ``decode``, ``head_outputs``) is
:class:`~rdet.models.detector.DenseDetector`'s; this module adds the head and its assignment/losses.
``bbox_head.*`` parameter names follow MMDetection's RetinaHead, so MMRotate checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rdet.config import HeadConfig, ModelConfig
from rdet.models.detector import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DenseDetector,
    HeadOutputs,
    flatten_levels,
    level_sizes,
    rows_per_level,
)
from rdet.models.heads import RetinaHead, Targets, assign_batch, distribution_to_deltas


class RotatedRetinaNet(DenseDetector):
    """Rotated RetinaNet (``rotated-retinanet-{hbox,rbox}-*`` configs), optionally with a general-distribution
    regression head (``cfg.head.reg_max > 0``, Rotated-LD).

    Args:
        class_names: one name per class.
        cfg: settings (default: ``ModelConfig`` with ``head.num_classes = len(class_names)``: R-50, le90, L1).
        backbone, neck, pixel_mean, pixel_std: see :class:`~rdet.models.detector.DenseDetector`.
        bbox_head: a :class:`~rdet.models.heads.RetinaHead` (default: built from ``cfg.head`` on the neck's
            ``out_channels``).
    """

    bbox_head: RetinaHead

    def __init__(
        self,
        class_names: Sequence[str],
        cfg: ModelConfig | None = None,
        *,
        backbone: nn.Module | None = None,
        neck: nn.Module | None = None,
        bbox_head: RetinaHead | None = None,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
    ):
        cfg = cfg if cfg is not None else ModelConfig(head=HeadConfig(num_classes=len(class_names)))
        super().__init__(class_names, cfg, backbone, neck, pixel_mean, pixel_std)
        h = cfg.head
        if bbox_head is None:
            bbox_head = RetinaHead(
                h.num_classes, self.neck_channels, self.num_anchors, h.stacked_convs, h.feat_channels, h.reg_max
            )
        self.bbox_head = bbox_head

    def forward_features(self, x: Tensor) -> HeadOutputs:
        """``x [B, 3, H, W]`` -> rows ``N = sum(H_l * W_l * A)``: ``cls [B, N, C]``, ``reg [B, N, R]``."""
        cls, reg = self.bbox_head(self.neck(self.backbone(x)))
        sizes = level_sizes(cls)
        anchors = self.anchors(sizes, x.device)
        return HeadOutputs(
            flatten_levels(cls, self.cfg.head.num_classes),
            flatten_levels(reg, self.bbox_head.reg_channels),
            torch.cat(anchors),
            rows_per_level(sizes, self.num_anchors),
        )

    def deltas(self, reg: Tensor) -> Tensor:
        """Box deltas from flattened regression outputs ``[..., R]`` -> ``[..., 5]`` (bins -> expectation)."""
        h = self.cfg.head
        if h.reg_max > 0:
            return distribution_to_deltas(reg, h.reg_max, h.reg_range, h.angle_range)
        return reg

    def assign(self, anchors: Tensor, targets: list[dict], stage: int = 0) -> Targets:
        """MaxIoU assignment (``cfg.head`` thresholds and IoU kind) of anchors ``[N, 5]`` to each image's
        ``targets[i] = {'boxes': [G, 5], 'labels': [G]}``. One stage only."""
        if stage != 0:
            raise ValueError(f"RotatedRetinaNet has one stage, got stage={stage}")
        h = self.cfg.head
        return assign_batch(
            anchors,
            targets,
            h.num_classes,
            h.pos_iou_thr,
            h.neg_iou_thr,
            h.min_pos_iou,
            horizontal=h.assign_iou == "horizontal",
            all_ties=h.gt_max_assign_all,
        )

    def loss_from_outputs(
        self, out: HeadOutputs, targets: list[dict], assigned: list[Targets] | None = None
    ) -> dict[str, Tensor]:
        """``{'loss_cls', 'loss_bbox'}``: focal loss over non-ignored anchors, regression loss over positives."""
        tg = assigned[0] if assigned else self.assign(out.anchors, targets)
        h = self.cfg.head
        loss_cls, loss_bbox = self.dense_losses(out, tg, h.loss_bbox, h.reg_decoded_bbox)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}
