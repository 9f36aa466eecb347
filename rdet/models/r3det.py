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

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rdet.config import LossConfig, ModelConfig
from rdet.detections import Detections
from rdet.models import anchors as A
from rdet.models.backbone import ResNet
from rdet.models.coder import DeltaXYWHTCoder
from rdet.models.fpn import FPN
from rdet.models.frm import FRM
from rdet.models.heads import (
    RetinaHead,
    Targets,
    assign_batch,
    detections_per_image,
    flatten_levels,
    regression_loss,
    sigmoid_focal,
)

# Settings the config schema (rdet.config.RefineConfig) does not hold; the values are the published ones.
# Refine stage i > 0 raises both IoU thresholds by 0.1 per stage (r3det-refine-oc: 0.6/0.5 then 0.7/0.6).
# Proposed field: refine.pos_iou_thrs / refine.neg_iou_thrs tuples, one per stage.
REFINE_IOU_STEP = 0.1
# min_pos_iou=0 in every published refine assigner.
REFINE_MIN_POS_IOU = 0.0
# The refine stages use the init stage's coder settings and focal loss (identical in every published config),
# and regress decoded boxes exactly when their loss is Gaussian (reg_decoded_bbox=True in the KLD configs).
GAUSSIAN_LOSSES = ("kld", "gwd")


@dataclass
class Stage:
    """Flattened outputs of one stage.

    Attributes:
        cls (Tensor[B, N, C]): class logits.
        reg (Tensor[B, N, 5]): box deltas.
        anchors (Tensor[N, 5] | Tensor[B, N, 5]): the init stage's anchors (shared) or a refine stage's
            rois (per image, detached).
    """

    cls: Tensor
    reg: Tensor
    anchors: Tensor

    def anchors_per_image(self) -> Tensor:
        """``Tensor[B, N, 5]``."""
        a = self.anchors
        return a if a.dim() == 3 else a[None].expand(self.reg.shape[0], -1, -1)


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


def _check(cfg: ModelConfig, class_names) -> None:
    """Fail on settings an R3Det cannot build, naming the config field (``validate`` checks most at load)."""
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


class R3Det(nn.Module):
    """R3Det / R3Det-tiny (``cfg.refine.stacked_convs``), same public interface as ``RotatedRetinaNet``.

    Images are ``Tensor[B, 3, H, W]`` normalised RGB, H and W divisible by 32.
    """

    def __init__(self, cfg: ModelConfig, class_names: list[str]):
        super().__init__()
        _check(cfg, class_names)
        self.cfg, self.class_names = cfg, list(class_names)
        self.backbone = ResNet(cfg.backbone.depth, cfg.backbone.frozen_stages, cfg.backbone.norm_eval)
        if cfg.backbone.weights:
            self.backbone.load_weights(cfg.backbone.weights)
        n, h, r = cfg.neck, cfg.head, cfg.refine
        self.neck = FPN(self.backbone.out_channels, n.out_channels, n.start_level, n.num_outs, n.add_extra_convs)
        self.num_anchors = A.num_base_anchors(cfg.anchors.scales_per_octave, cfg.anchors.ratios)
        self.bbox_head_init = RetinaHead(
            h.num_classes, n.out_channels, self.num_anchors, h.stacked_convs, h.feat_channels
        )
        self.bbox_head_refine = nn.ModuleList(
            RefineHead(
                h.num_classes,
                n.out_channels,
                r.stacked_convs,
                h.feat_channels,
                tuple(cfg.anchors.strides),
                r.frm_points,
                r.frm_swap_xy,
            )
            for _ in range(r.num_stages)
        )
        self.coder = DeltaXYWHTCoder(**asdict(cfg.coder))
        self._anchor_cache: dict = {}

    # ----------------------------------------------------------------- forward

    def anchors(self, featmap_sizes: list[tuple[int, int]], device) -> list[Tensor]:
        """The init stage's angle-0 anchors per level, ``Tensor[H_l * W_l * A, 5]`` (cached)."""
        key = (tuple(featmap_sizes), str(device))
        if key not in self._anchor_cache:
            a = self.cfg.anchors
            self._anchor_cache[key] = A.grid_anchors(
                featmap_sizes, a.strides, a.octave_base_scale, a.scales_per_octave, a.ratios, device
            )
        return self._anchor_cache[key]

    def stages(self, images: Tensor) -> tuple[list[Stage], list[int]]:
        """Run every stage. Returns the stages (init first) and the locations per level ``H_l * W_l``."""
        feats = self.neck(self.backbone(images))
        c = self.cfg.head.num_classes
        cls, reg = self.bbox_head_init(feats)
        sizes = [tuple(x.shape[-2:]) for x in cls]
        anchors = torch.cat(self.anchors(sizes, images.device))
        out = [Stage(flatten_levels(cls, c), flatten_levels(reg, 5), anchors)]
        rois = best_boxes(out[0].cls, out[0].reg, anchors, self.num_anchors, self.coder)  # [B, L, 5]
        for i, head in enumerate(self.bbox_head_refine):
            x = head.feat_refine_module(feats, _levels(rois, sizes))
            cls, reg = head(x)
            out.append(Stage(flatten_levels(cls, c), flatten_levels(reg, 5), rois))
            if i + 1 < len(self.bbox_head_refine):
                rois = self.coder.decode(rois, out[-1].reg.float()).detach()
        return out, [h * w for h, w in sizes]

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        """All stages (``(stages, locations per level)``, see :meth:`stages`), or the training losses when
        ``targets`` are given (so DistributedDataParallel sees one ``forward``)."""
        out, per_level = self.stages(images)
        if targets is None:
            return out, per_level
        return self.loss_from_stages(out, targets)

    def flat_outputs(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, list[int]]:
        """The last stage: ``cls [B, L, C]``, ``reg [B, L, 5]``, its rois ``[B, L, 5]`` (per image, unlike
        RotatedRetinaNet's shared anchors) and the locations per level."""
        out, per_level = self.stages(images)
        last = out[-1]
        return last.cls, last.reg, last.anchors, per_level

    def decode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Every location's final box and class probabilities, no selection (the export graph's ``none`` mode).

        Returns:
            boxes (Tensor[B, L, 5]), scores (Tensor[B, L, C]), ``L = sum(H_l * W_l)``.
        """
        cls, reg, rois, _ = self.flat_outputs(images)
        return self.coder.decode(rois, reg.float()), cls.sigmoid()

    # ----------------------------------------------------------------- training

    def assign(
        self,
        anchors: Tensor,
        targets: list[dict],
        pos_iou_thr: float,
        neg_iou_thr: float,
        min_pos_iou: float,
        horizontal: bool,
    ) -> Targets:
        """MaxIoU assignment of anchors ``[N, 5]`` (shared) or ``[B, N, 5]`` (per image) to each image's
        ``targets[i] = {'boxes': [G, 5], 'labels': [G]}``."""
        return assign_batch(
            anchors, targets, self.cfg.head.num_classes, pos_iou_thr, neg_iou_thr, min_pos_iou, horizontal
        )

    def stage_targets(self, index: int, stage: Stage, targets: list[dict]) -> Targets:
        """Assignment of stage ``index`` (0 = init: ``model.head`` thresholds and IoU kind; refine stage
        ``i = index - 1``: rotated IoU, ``model.refine`` thresholds + ``REFINE_IOU_STEP * i``)."""
        h = self.cfg.head
        if index == 0:
            return self.assign(
                stage.anchors,
                targets,
                h.pos_iou_thr,
                h.neg_iou_thr,
                h.min_pos_iou,
                horizontal=h.assign_iou == "horizontal",
            )
        r, step = self.cfg.refine, REFINE_IOU_STEP * (index - 1)
        return self.assign(
            stage.anchors, targets, r.pos_iou_thr + step, r.neg_iou_thr + step, REFINE_MIN_POS_IOU, horizontal=False
        )

    def stage_loss(self, stage: Stage, tg: Targets, loss_bbox: LossConfig, reg_decoded: bool) -> tuple[Tensor, Tensor]:
        """Focal loss over non-ignored locations/anchors and the box loss over positives, both / num_pos."""
        fc = self.cfg.head.loss_cls
        valid = tg.label_weights > 0
        loss_cls = (
            sigmoid_focal(
                stage.cls[valid].float(), tg.labels[valid], self.cfg.head.num_classes, fc.gamma, fc.alpha
            ).sum()
            / tg.num_pos
            * fc.loss_weight
        )
        anchors = stage.anchors_per_image()[tg.pos]
        deltas = stage.reg[tg.pos].float()
        if reg_decoded:
            pred, target = self.coder.decode(anchors, deltas), tg.gt_boxes[tg.pos]
        else:
            pred, target = deltas, self.coder.encode(anchors, tg.gt_boxes[tg.pos])
        loss_box = regression_loss(loss_bbox, pred, target).sum() / tg.num_pos * loss_bbox.loss_weight
        return loss_cls, loss_box

    def loss_from_stages(self, stages: list[Stage], targets: list[dict]) -> dict[str, Tensor]:
        """``{'loss_cls_init', 'loss_bbox_init', 'loss_cls_refine_0', 'loss_bbox_refine_0', ...}``."""
        h, r = self.cfg.head, self.cfg.refine
        losses = {}
        for index, stage in enumerate(stages):
            tg = self.stage_targets(index, stage, targets)
            if index == 0:
                c, b = self.stage_loss(stage, tg, h.loss_bbox, h.reg_decoded_bbox)
                losses["loss_cls_init"], losses["loss_bbox_init"] = c, b
            else:
                i = index - 1
                c, b = self.stage_loss(stage, tg, r.loss_bbox, r.loss_bbox.type in GAUSSIAN_LOSSES)
                w = r.stage_loss_weights[i]
                losses[f"loss_cls_refine_{i}"], losses[f"loss_bbox_refine_{i}"] = c * w, b * w
        return losses

    def loss(self, images: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        """Training losses for a batch. ``targets[i]``: ``{'boxes': Tensor[G, 5], 'labels': Tensor[G]}``."""
        return self(images, targets)

    # ----------------------------------------------------------------- inference

    @torch.no_grad()
    def predict(self, images: Tensor, score_thr: float | None = None, iou_thr: float | None = None) -> list[Detections]:
        """Detections per image from the last stage (boxes regularised to the model's angle version)."""
        cls, reg, rois, per_level = self.flat_outputs(images)
        boxes = self.coder.decode(rois, reg.float())
        return detections_per_image(
            cls, boxes, per_level, self.cfg.test, self.cfg.coder.angle_version, self.class_names, score_thr, iou_thr
        )


def convert_mmrotate_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an MMRotate 0.x R3Det ``state_dict`` to this module's keys (dev-1.x keys pass through).

    The map lives in :mod:`rdet.mmrotate` (``rdet.load_checkpoint`` applies it); this keeps the old name.
    """
    from rdet.mmrotate import r3det_0x_to_rdet

    return {r3det_0x_to_rdet(k): v for k, v in state.items()}
