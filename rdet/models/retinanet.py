"""Rotated RetinaNet: ResNet + FPN + RetinaHead, with the delta-xywht coder and rotated NMS.

``model(images)`` returns raw per-level head outputs; ``model.loss(images, targets)`` the training losses;
``model.predict(images)`` a :class:`~rdet.detections.Detections` per image. Images are
``Tensor[B, 3, H, W]`` float, normalised RGB (ImageNet mean/std, see ``rdet.data.transforms``), H and W
divisible by 32.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import Tensor, nn

from rdet.config import ModelConfig
from rdet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rdet.detections import Detections
from rdet.models import anchors as A
from rdet.models.backbone import ResNet
from rdet.models.coder import DeltaXYWHTCoder
from rdet.models.fpn import FPN
from rdet.models.heads import (
    RetinaHead,
    Targets,
    assign_batch,
    detections_per_image,
    distribution_to_deltas,
    flatten_levels,
    regression_loss,
    sigmoid_focal,
)

# ImageNet statistics in RGB order, as the published configs (`data_preprocessor`); one definition, in the
# transforms that apply them to training images.
PIXEL_MEAN, PIXEL_STD = IMAGENET_MEAN, IMAGENET_STD


class RotatedRetinaNet(nn.Module):
    def __init__(self, cfg: ModelConfig, class_names: list[str]):
        super().__init__()
        if len(class_names) != cfg.head.num_classes:
            raise ValueError(f"{len(class_names)} class names for model.head.num_classes={cfg.head.num_classes}")
        self.cfg, self.class_names = cfg, list(class_names)
        self.backbone = ResNet(cfg.backbone.depth, cfg.backbone.frozen_stages, cfg.backbone.norm_eval)
        if cfg.backbone.weights:
            self.backbone.load_weights(cfg.backbone.weights)
        n = cfg.neck
        self.neck = FPN(self.backbone.out_channels, n.out_channels, n.start_level, n.num_outs, n.add_extra_convs)
        h = cfg.head
        self.num_anchors = A.num_base_anchors(cfg.anchors.scales_per_octave, cfg.anchors.ratios)
        self.bbox_head = RetinaHead(
            h.num_classes, n.out_channels, self.num_anchors, h.stacked_convs, h.feat_channels, h.reg_max
        )
        self.coder = DeltaXYWHTCoder(**asdict(cfg.coder))
        self._anchor_cache: dict = {}

    # ----------------------------------------------------------------- forward

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        """Raw head outputs per level (``cls [B, A*C, H_l, W_l]``, ``reg [B, A*R, H_l, W_l]``), or the
        training losses when ``targets`` are given (so DistributedDataParallel sees one ``forward``)."""
        outs = self.bbox_head(self.neck(self.backbone(images)))
        if targets is None:
            return outs
        cls, reg, anchors = self._flatten(outs, images)
        return self.loss_from_outputs(cls, reg, anchors, self.assign(anchors, targets))

    def anchors(self, featmap_sizes: list[tuple[int, int]], device) -> list[Tensor]:
        """Angle-0 anchors per level, ``Tensor[H_l * W_l * A, 5]`` (cached per feature-map sizes)."""
        key = (tuple(featmap_sizes), str(device))
        if key not in self._anchor_cache:
            a = self.cfg.anchors
            self._anchor_cache[key] = A.grid_anchors(
                featmap_sizes, a.strides, a.octave_base_scale, a.scales_per_octave, a.ratios, device
            )
        return self._anchor_cache[key]

    def deltas(self, reg: Tensor) -> Tensor:
        """Box deltas from flattened regression outputs ``[..., R]`` -> ``[..., 5]``."""
        h = self.cfg.head
        if h.reg_max > 0:
            return distribution_to_deltas(reg, h.reg_max, h.reg_range, h.angle_range)
        return reg

    def flat_outputs(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, list[int]]:
        """Forward and flatten: ``cls [B, N, C]``, ``reg [B, N, R]``, ``anchors [N, 5]``, anchors per level."""
        outs = self(images)
        cls, reg, anchors = self._flatten(outs, images)
        return cls, reg, anchors, [math.prod(c.shape[-2:]) * self.num_anchors for c in outs[0]]

    def _flatten(self, outs, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cls, reg = outs
        anchors = self.anchors([tuple(c.shape[-2:]) for c in cls], images.device)
        return (
            flatten_levels(cls, self.cfg.head.num_classes),
            flatten_levels(reg, self.bbox_head.reg_channels),
            torch.cat(anchors),
        )

    def decode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Every anchor's decoded box and class probabilities, no selection (the export graph's ``none`` mode).

        Returns:
            boxes (Tensor[B, N, 5]), scores (Tensor[B, N, C]).
        """
        cls, reg, anchors, _ = self.flat_outputs(images)
        boxes = self.coder.decode(anchors[None].expand(reg.shape[0], -1, -1), self.deltas(reg))
        return boxes, cls.sigmoid()

    # ----------------------------------------------------------------- training

    def assign(self, anchors: Tensor, targets: list[dict]) -> Targets:
        """Assign anchors ``[N, 5]`` to each image's ``targets[i] = {'boxes': [G, 5], 'labels': [G]}``."""
        h = self.cfg.head
        return assign_batch(
            anchors,
            targets,
            h.num_classes,
            h.pos_iou_thr,
            h.neg_iou_thr,
            h.min_pos_iou,
            horizontal=h.assign_iou == "horizontal",
        )

    def loss_from_outputs(self, cls: Tensor, reg: Tensor, anchors: Tensor, tg: Targets) -> dict[str, Tensor]:
        """Focal loss over non-ignored anchors and the regression loss over positives, both / num_pos."""
        h = self.cfg.head
        valid = tg.label_weights > 0
        loss_cls = (
            sigmoid_focal(cls[valid].float(), tg.labels[valid], h.num_classes, h.loss_cls.gamma, h.loss_cls.alpha).sum()
            / tg.num_pos
            * h.loss_cls.loss_weight
        )
        pos = tg.pos
        anchors_b = anchors[None].expand(cls.shape[0], -1, -1)
        deltas = self.deltas(reg[pos].float())
        if h.reg_decoded_bbox:
            pred = self.coder.decode(anchors_b[pos], deltas)
            target = tg.gt_boxes[pos]
        else:
            pred, target = deltas, self.coder.encode(anchors_b[pos], tg.gt_boxes[pos])
        loss_bbox = regression_loss(h.loss_bbox, pred, target).sum() / tg.num_pos * h.loss_bbox.loss_weight
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def loss(self, images: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        """Training losses for a batch. ``targets[i]``: ``{'boxes': Tensor[G, 5], 'labels': Tensor[G]}``."""
        return self(images, targets)

    # ----------------------------------------------------------------- inference

    @torch.no_grad()
    def predict(self, images: Tensor, score_thr: float | None = None, iou_thr: float | None = None) -> list[Detections]:
        """Detections per image (boxes regularised to the model's angle version)."""
        cls, reg, anchors, per_level = self.flat_outputs(images)
        boxes = self.coder.decode(anchors[None].expand(reg.shape[0], -1, -1), self.deltas(reg).float())
        return detections_per_image(
            cls, boxes, per_level, self.cfg.test, self.cfg.coder.angle_version, self.class_names, score_thr, iou_thr
        )
