"""``DenseDetector``: what every rdet detector is, and the one place images become network inputs.

A dense detector predicts at every location of every FPN level (one or more anchors each). The base
class owns what all of them share, and its methods are the interface the rest of rdet relies on
(training, distillation, evaluation, tiled inference, ONNX export, benchmarks):

=========================================  ===========================================================
``preprocess_image(images)``               0-255 RGB (uint8 or float) -> normalised float32, padded
                                           to a multiple of 32 (``size_divisibility``). THE pre-processing.
``forward(images, targets=None)``          :class:`HeadOutputs` (no targets) or the training losses
                                           (one ``forward`` for DistributedDataParallel)
``head_outputs(images)``                   :class:`HeadOutputs`: the flattened raw outputs
``loss(images, targets)``                  ``{'loss_cls': ..., 'loss_bbox': ...}`` (names per model)
``predict(images, score_thr, iou_thr)``    one :class:`~rdet.detections.Detections` per image
``decode(images)``                         every anchor's box (centre clamped into the image) and class
                                           probabilities (ONNX ``none``)
``anchors(featmap_sizes, device)``         the anchors per level (cached)
``assign(anchors, targets, stage=0)``      :class:`~rdet.models.heads.Targets` of a stage
``loss_from_outputs(out, targets)``        the losses of given head outputs (distillation adds its own)
``class_names``, ``cfg``, ``config``       class list; the ``ModelConfig``; the full ``Config`` or None
=========================================  ===========================================================

The input contract. ``images`` is a ``Tensor[B, 3, H, W]`` or a list of ``Tensor[3, H_i, W_i]``
(the data loader's batches), RGB, pixel values 0-255 as uint8 or float, on any device. Normalisation with
``pixel_mean``/``pixel_std`` (ImageNet statistics, as MMRotate's ``data_preprocessor``) and padding at the
bottom/right with the mean colour (0 after normalisation; a list is padded to its largest image first)
happen inside. Every method that takes ``images`` also takes ``normalized=True`` for inputs that already
went through :meth:`preprocess_image` (they are then only padded), so a caller can pre-process once and
reuse the tensor (distillation, benchmarks). Boxes come back in input pixels: padding never moves them.

``cfg`` (the ``ModelConfig``) holds the settings that are not modules (anchors, coder, assignment,
losses, test thresholds); constructors take modules with defaults built from it, so a model can be built
without the config system: ``RotatedRetinaNet(["plane", "ship"], backbone=ResNet(18))``.
``config`` is the whole :class:`~rdet.config.Config` when the model came from ``build_model`` or
``rdet.load_checkpoint`` (None when built directly); checkpoints store it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdet.config import Config, LossConfig, ModelConfig
from rdet.detections import Detections
from rdet.losses.regression import regression_loss
from rdet.models import anchors as A
from rdet.models.backbone import ResNet
from rdet.models.coder import DeltaXYWHTCoder, clamp_centres
from rdet.models.fpn import FPN
from rdet.models.heads import Targets, sigmoid_focal
from rdet.models.selection import detections_per_image

# ImageNet statistics in RGB order, pixel values 0-255: MMRotate's data_preprocessor (mean/std, bgr_to_rgb).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Images = Tensor | Sequence[Tensor]


@dataclass
class HeadOutputs:
    """Raw outputs of a dense head, flattened: one row per anchor, location-major then anchor, levels in order.

    Attributes:
        cls (Tensor[B, N, C]): class logits.
        reg (Tensor[B, N, R]): regression outputs (``R = 5`` deltas, or ``5 * (reg_max + 1)`` bin logits).
        anchors (Tensor[N, 5] | Tensor[B, N, 5]): the anchors the deltas refer to, shared
            or per image (a refine stage's rois).
        num_per_level (list[int]): rows per FPN level (``sum == N``).
        stages (list[HeadOutputs]): multi-stage detectors (R3Det): every stage, the first one first and these
            outputs (the last stage) last; empty for single-stage detectors.
    """

    cls: Tensor
    reg: Tensor
    anchors: Tensor
    num_per_level: list[int]
    stages: list[HeadOutputs] = field(default_factory=list)

    def anchors_per_image(self) -> Tensor:
        """``Tensor[B, N, 5]``."""
        a = self.anchors
        return a if a.dim() == 3 else a[None].expand(self.reg.shape[0], -1, -1)

    def levels(self) -> Tensor:
        """``Tensor[N]`` int64: the FPN level of each row."""
        sizes = torch.tensor(self.num_per_level, device=self.cls.device)
        return torch.repeat_interleave(torch.arange(len(self.num_per_level), device=self.cls.device), sizes)


def flatten_levels(maps: list[Tensor], channels: int) -> Tensor:
    """``[B, A*K, H, W]`` per level -> ``[B, sum(H*W*A), K]`` (location-major, then anchor)."""
    b = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, channels) for m in maps], 1)


def _channels(module: nn.Module, kind: type):
    """A component's ``out_channels`` (a tuple for a backbone, an int for a neck), or a clear error."""
    value = getattr(module, "out_channels", None)
    if not isinstance(value, kind):
        raise ValueError(
            f"{type(module).__name__} needs an out_channels attribute ({kind.__name__}) to build the parts after it"
        )
    return value


def default_backbone(cfg: ModelConfig) -> ResNet:
    """The ResNet of ``cfg.backbone`` (random weights: ``build_model`` loads ``backbone.weights``)."""
    b = cfg.backbone
    return ResNet(b.depth, b.frozen_stages, b.norm_eval)


def default_neck(cfg: ModelConfig, in_channels: tuple[int, ...]) -> FPN:
    """The FPN of ``cfg.neck`` on a backbone with ``in_channels`` (C2..C5)."""
    n = cfg.neck
    return FPN(in_channels, n.out_channels, n.start_level, n.num_outs, n.add_extra_convs)


class DenseDetector(nn.Module):
    """Base of rdet's dense detectors (module docstring). Subclasses implement :meth:`forward_features`,
    :meth:`assign` and :meth:`loss_from_outputs`.

    Args:
        class_names: one name per class (``len == cfg.head.num_classes``).
        cfg: the model's settings.
        backbone: a module ``[B, 3, H, W] -> [C2, C3, C4, C5]`` with ``out_channels`` (default: ``cfg.backbone``'s
            ResNet).
        neck: a module ``[C2..C5] -> P3..`` with ``out_channels`` (default: ``cfg.neck``'s FPN).
        pixel_mean, pixel_std: per-channel RGB statistics on the 0-255 scale.
    """

    size_divisibility = 32  # the coarsest backbone stride an input side must be a multiple of
    config: Config | None
    backbone: nn.Module
    neck: nn.Module
    pixel_mean: Tensor  # [3, 1, 1]
    pixel_std: Tensor  # [3, 1, 1]

    def __init__(
        self,
        class_names: Sequence[str],
        cfg: ModelConfig,
        backbone: nn.Module | None = None,
        neck: nn.Module | None = None,
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        if len(class_names) != cfg.head.num_classes:
            raise ValueError(f"{len(class_names)} class names for model.head.num_classes={cfg.head.num_classes}")
        self.cfg, self.class_names, self.config = cfg, list(class_names), None
        self.backbone = backbone if backbone is not None else default_backbone(cfg)
        self.neck = neck if neck is not None else default_neck(cfg, _channels(self.backbone, tuple))
        self.neck_channels: int = _channels(self.neck, int)  # what the head(s) read
        self.coder = DeltaXYWHTCoder(**asdict(cfg.coder))
        self.num_anchors = A.num_base_anchors(cfg.anchors.scales_per_octave, cfg.anchors.ratios)
        # not persistent: checkpoints (and MMRotate's) hold no pixel statistics, and old files must still load
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        self._anchor_cache: dict = {}

    # ----------------------------------------------------------------- pre-processing

    def preprocess_image(self, images: Images, normalized: bool = False) -> Tensor:
        """Images -> the network input: normalised float32 ``[B, 3, H', W']`` on the model's device.

        Args:
            images: ``Tensor[B, 3, H, W]`` or a list of ``Tensor[3, H_i, W_i]``; RGB 0-255, uint8 or float.
            normalized: the images already went through this method: only pad them.

        Returns:
            Tensor[B, 3, H', W']: ``(x - pixel_mean) / pixel_std``, padded at the bottom/right with 0 (the
            mean colour) to the largest image, then to multiples of ``size_divisibility``.
        """
        if isinstance(images, Tensor):
            if images.dim() != 4 or images.shape[1] != self.pixel_mean.shape[0]:
                raise ValueError(f"images must be [B, 3, H, W] RGB, got shape {list(images.shape)}")
            return self._pad(self._normalize(images, normalized))
        if not images:
            raise ValueError("images is an empty list")
        items = [self._normalize(img[None], normalized)[0] for img in images]
        if any(x.dim() != 3 or x.shape[0] != self.pixel_mean.shape[0] for x in items):
            raise ValueError(f"each image must be [3, H, W] RGB, got {[list(x.shape) for x in items]}")
        h, w = max(x.shape[1] for x in items), max(x.shape[2] for x in items)
        batch = items[0].new_zeros((len(items), items[0].shape[0], h, w))
        for i, x in enumerate(items):
            batch[i, :, : x.shape[1], : x.shape[2]] = x
        return self._pad(batch)

    def _normalize(self, x: Tensor, normalized: bool) -> Tensor:
        x = x.to(self.pixel_mean.device)
        if normalized:
            return x
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise ValueError(f"images must be uint8 or float 0-255, got {x.dtype}")
        # contiguous: an NHWC view (e.g. permuted HWC tiles) would otherwise select other conv kernels
        return ((x.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std).contiguous()

    def _pad(self, x: Tensor) -> Tensor:
        div = self.size_divisibility
        pad_h, pad_w = -x.shape[-2] % div, -x.shape[-1] % div
        if pad_h or pad_w:  # fixed-size (exported) inputs are multiples already: no op in the graph
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    # ----------------------------------------------------------------- the network

    def forward(self, images: Images, targets: list[dict] | None = None, *, normalized: bool = False):
        """:class:`HeadOutputs`, or the training losses when ``targets`` are given (``targets[i]``:
        ``{'boxes': Tensor[G, 5], 'labels': Tensor[G]}``) so DistributedDataParallel sees one ``forward``."""
        out = self.forward_features(self.preprocess_image(images, normalized))
        if targets is None:
            return out
        return self.loss_from_outputs(out, targets)

    def forward_features(self, x: Tensor) -> HeadOutputs:
        """Backbone, neck and head(s) on a pre-processed batch ``[B, 3, H, W]``."""
        raise NotImplementedError

    def head_outputs(self, images: Images, *, normalized: bool = False) -> HeadOutputs:
        """The flattened raw outputs (:class:`HeadOutputs`) of a batch, through ``forward``."""
        return self(images, normalized=normalized)

    def anchors(self, featmap_sizes: list[tuple[int, int]], device) -> list[Tensor]:
        """Anchors per level, ``Tensor[H_l * W_l * A, 5]``, in the convention of ``cfg.anchors.mmrotate_version``
        (angle 0 for ``'0.x'``; :mod:`rdet.models.anchors`), cached per feature-map sizes and device."""
        a = self.cfg.anchors
        key = (tuple(featmap_sizes), str(device), a.mmrotate_version)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = A.grid_anchors(
                featmap_sizes,
                a.strides,
                a.octave_base_scale,
                a.scales_per_octave,
                a.ratios,
                device,
                a.mmrotate_version,
                self.cfg.coder.angle_version,
            )
        return self._anchor_cache[key]

    def deltas(self, reg: Tensor) -> Tensor:
        """Box deltas ``[..., 5]`` from regression outputs ``[..., R]`` (identity unless the head predicts bins)."""
        return reg

    def decode_boxes(self, out: HeadOutputs, image_sizes: Tensor | None = None) -> Tensor:
        """Every row's decoded box, ``Tensor[B, N, 5]`` float32.

        Args:
            image_sizes (Tensor[B or 1, 2] | None): each image's ``(H, W)`` before padding (:meth:`image_sizes`):
                centres are clamped into the image as MMRotate does at test time (:func:`clamp_centres`);
                None: no clamp (training, R3Det's rois, MMRotate's ``decode`` without ``max_shape``).
        """
        boxes = self.coder.decode(out.anchors_per_image(), self.deltas(out.reg).float())
        return boxes if image_sizes is None else clamp_centres(boxes, image_sizes)

    def image_sizes(self, images: Images) -> Tensor:
        """``Tensor[B, 2]`` int64 (``[1, 2]`` for a ``Tensor`` batch: one size for all, and a batch size that stays
        symbolic in an exported graph): each image's ``(H, W)`` as given, before the padding of
        :meth:`preprocess_image` (MMRotate's ``img_shape``: the resized image, not the padded batch). A
        ``normalized=True`` batch counts as given, padding included."""
        if isinstance(images, Tensor):
            return torch.tensor([list(images.shape[-2:])], dtype=torch.int64)
        return torch.tensor([list(img.shape[-2:]) for img in images], dtype=torch.int64)

    # ----------------------------------------------------------------- training

    def loss(self, images: Images, targets: list[dict], *, normalized: bool = False) -> dict[str, Tensor]:
        """Training losses of a batch (``forward`` with targets)."""
        return self(images, targets, normalized=normalized)

    def assign(self, anchors: Tensor, targets: list[dict], stage: int = 0) -> Targets:
        """Assign the anchors ``[N, 5]`` (or per image ``[B, N, 5]``) of ``stage`` to each image's targets."""
        raise NotImplementedError

    def loss_from_outputs(
        self, out: HeadOutputs, targets: list[dict], assigned: list[Targets] | None = None
    ) -> dict[str, Tensor]:
        """The losses of head outputs. ``assigned``: one :class:`Targets` per stage, when the caller has them."""
        raise NotImplementedError

    def dense_losses(
        self, out: HeadOutputs, tg: Targets, loss_bbox: LossConfig, decoded: bool
    ) -> tuple[Tensor, Tensor]:
        """Focal loss over the non-ignored rows and the regression loss (THE table, ``rdet.losses.regression``)
        over the positives, both normalised by the number of positives.

        Args:
            decoded: compare decoded boxes (``True``) or coder deltas (``False``).

        Returns:
            ``(loss_cls, loss_bbox)``, scalars.
        """
        fc = self.cfg.head.loss_cls
        valid = tg.label_weights > 0
        focal = sigmoid_focal(out.cls[valid].float(), tg.labels[valid], self.cfg.head.num_classes, fc.gamma, fc.alpha)
        loss_cls = focal.sum() / tg.num_pos * fc.loss_weight
        anchors = out.anchors_per_image()[tg.pos]  # [P, 5]
        deltas = self.deltas(out.reg[tg.pos].float())  # [P, 5]
        if decoded:
            pred, target = self.coder.decode(anchors, deltas), tg.gt_boxes[tg.pos]
        else:
            pred, target = deltas, self.coder.encode(anchors, tg.gt_boxes[tg.pos])
        level = out.levels().expand_as(tg.pos)[tg.pos]  # [P]
        return loss_cls, regression_loss(loss_bbox, pred, target, tg.num_pos, level)

    # ----------------------------------------------------------------- inference

    def decode(self, images: Images, *, normalized: bool = False) -> tuple[Tensor, Tensor]:
        """Every row's decoded box and class probabilities, no selection (the exported graph's ``none`` mode).

        Returns:
            boxes (Tensor[B, N, 5]) in input pixels, centres clamped into each image (MMRotate's test-time
            decode, as :meth:`predict`); scores (Tensor[B, N, C]) sigmoid probabilities.
        """
        boxes, scores, _ = self.decode_levels(images, normalized=normalized)
        return boxes, scores

    def decode_levels(self, images: Images, *, normalized: bool = False) -> tuple[Tensor, Tensor, list[int]]:
        """:meth:`decode` plus the rows per FPN level (``num_per_level``, what the per-level selection needs).

        Returns:
            boxes (Tensor[B, N, 5]), centres clamped into each image (as :meth:`predict`); scores
            (Tensor[B, N, C]); num_per_level (list[int], ``sum == N``).
        """
        out = self.head_outputs(images, normalized=normalized)
        sizes = self.image_sizes(images).to(out.cls.device)
        return self.decode_boxes(out, sizes), out.cls.sigmoid(), out.num_per_level

    @torch.no_grad()
    def predict(
        self,
        images: Images,
        score_thr: float | None = None,
        iou_thr: float | None = None,
        *,
        normalized: bool = False,
    ) -> list[Detections]:
        """Detections per image: centres clamped into the image (MMRotate's test-time decode), per-level score
        filter and top-k, class-wise rotated NMS (``cfg.test`` unless ``score_thr``/``iou_thr`` are given), boxes
        regularised to the model's angle version."""
        out = self.head_outputs(images, normalized=normalized)
        return detections_per_image(
            out.cls,
            self.decode_boxes(out, self.image_sizes(images).to(out.cls.device)),
            out.num_per_level,
            self.cfg.test,
            self.cfg.coder.angle_version,
            self.class_names,
            score_thr,
            iou_thr,
        )


def level_sizes(maps: list[Tensor]) -> list[tuple[int, int]]:
    """``(H_l, W_l)`` of per-level maps ``[B, K, H_l, W_l]``."""
    return [tuple(m.shape[-2:]) for m in maps]  # type: ignore[misc]


def rows_per_level(sizes: list[tuple[int, int]], per_location: int) -> list[int]:
    """Rows of each level after :func:`flatten_levels`: ``H_l * W_l * per_location``."""
    return [math.prod(s) * per_location for s in sizes]
