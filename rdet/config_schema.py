"""The config dataclasses: the schema of a :class:`Config` (loading, paths and validation: :mod:`rdet.config`).

Every class has ``__slots__``, so assigning an unknown field is an ``AttributeError``, never a silent
no-op; ``Literal`` fields list their choices (``rdet.config.validate`` checks them).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Literal

# Choices. A Literal field holding anything else fails in validate() (and in --set), naming the field.
ModelType = Literal["rotated_retinanet", "r3det"]
AngleVersion = Literal["oc", "le90", "le135"]
#: regression losses: the keys of rdet.losses.regression.REGRESSION_LOSSES (a test keeps the two equal)
LossType = Literal["l1", "smooth_l1", "kld", "gwd"]
GaussianFun = Literal["log1p", "sqrt", "none"]
AssignIoU = Literal["rotated", "horizontal"]
#: how a Gaussian loss turns per-positive losses into one value (rdet.losses.regression)
Reduction = Literal["num_pos", "level_means"]
#: which MMRotate laid out the anchors (rdet.models.anchors): 0.x angle-0 anchors or dev-1.x regularised ones
AnchorVersion = Literal["0.x", "1.x"]
Optimizer = Literal["sgd", "adamw"]


@dataclass(slots=True)
class BackboneConfig:
    depth: int = 50  # 18, 34 or 50 (ResNet, torchvision parameter names)
    frozen_stages: int = 1  # stem + layer1 frozen, as the published configs
    norm_eval: bool = True  # BatchNorm in eval mode during training
    weights: str | None = None  # local torchvision/ImageNet checkpoint (never downloaded), loaded by build_model


@dataclass(slots=True)
class NeckConfig:
    out_channels: int = 256
    start_level: int = 1  # FPN starts at C3
    num_outs: int = 5  # P3-P7
    add_extra_convs: Literal["on_input"] = "on_input"  # P6 from C5, as mmdet's FPN(add_extra_convs='on_input')


@dataclass(slots=True)
class AnchorConfig:
    octave_base_scale: float = 4.0
    scales_per_octave: int = 3
    ratios: tuple[float, ...] = (1.0, 0.5, 2.0)  # order matters: it fixes the channel layout of weights
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    # Which MMRotate's anchors (rdet.models.anchors): '0.x' angle-0 anchors (MMRotate 0.x, which trained the
    # published checkpoints; dev-1.x with angle_version=None) or '1.x' (dev-1.x's published configs: anchors
    # regularised to coder.angle_version, e.g. le90 turns the tall and square ones). Weights decode right only
    # with the convention they were trained with; stored in every checkpoint (old ones: '0.x').
    mmrotate_version: AnchorVersion = "0.x"


@dataclass(slots=True)
class CoderConfig:
    """DeltaXYWHT coder (MMRotate 1.x ``DeltaXYWHTRBBoxCoder``)."""

    angle_version: AngleVersion = "le90"
    edge_swap: bool = True
    proj_xy: bool = True
    norm_factor: float | None = None
    means: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    wh_ratio_clip: float = 16 / 1000


@dataclass(slots=True)
class LossConfig:
    """A regression loss: a row of ``rdet.losses.regression.REGRESSION_LOSSES`` and its settings.

    ``type`` picks the row; each row reads only some of the fields below (``validate`` rejects a changed
    field the row does not read, e.g. ``beta`` for ``'kld'``).
    """

    type: LossType = "l1"
    loss_weight: float = 1.0
    beta: float = 1.0  # smooth_l1 only
    fun: GaussianFun = "log1p"  # kld/gwd post-processing: 'log1p', 'sqrt' or 'none'
    tau: float = 1.0
    alpha: float = 1.0
    sqrt: bool = True  # MMRotate GDLoss's `sqrt` (stable kld only; ignored when not stable)
    normalize: bool = True  # gwd only (stable only)
    stable: bool = False  # False: GDLoss_v1 (KLD paper); True: GDLoss ("kld-stable")
    # kld/gwd: 'num_pos' divides the summed per-positive losses by the batch's positive count (MMDetection's
    # avg_factor, GDLoss); 'level_means' averages the positives of each FPN level and sums the levels, what
    # MMRotate's GDLoss_v1 + MMEngine's loss parsing compute (the *_kld_* configs set it: a quirk, see
    # rdet.losses.regression)
    reduction: Reduction = "num_pos"


@dataclass(slots=True)
class FocalConfig:
    gamma: float = 2.0
    alpha: float = 0.25
    loss_weight: float = 1.0


@dataclass(slots=True)
class HeadConfig:
    num_classes: int = 15
    stacked_convs: int = 4
    feat_channels: int = 256
    assign_iou: AssignIoU = "rotated"  # 'rotated' (rbox-*) or 'horizontal' (hbox-*)
    pos_iou_thr: float = 0.5
    neg_iou_thr: float = 0.4
    min_pos_iou: float = 0.0
    # MaxIoUAssigner's gt_max_assign_all: every gt claims *all* anchors tied at its highest IoU (MMDetection's
    # default), or only the first. Small objects inside several equal anchors tie exactly in rdet (see
    # docs/architecture.md, "Assignment ties"); MMRotate's float noise keeps some of them.
    gt_max_assign_all: bool = True
    reg_decoded_bbox: bool = False  # True when the loss compares decoded boxes (Gaussian losses)
    reg_max: int = 0  # > 0: general-distribution regression head (reg_max + 1 bins)
    reg_range: tuple[float, float] = (-2.0, 2.0)  # bin range for x, y, w, h deltas (Rotated-LD)
    angle_range: tuple[float, float] = (-5.0, 2.0)  # bin range for the angle delta (Rotated-LD)
    loss_cls: FocalConfig = field(default_factory=FocalConfig)
    loss_bbox: LossConfig = field(default_factory=LossConfig)


@dataclass(slots=True)
class RefineConfig:
    """R3Det refinement stages (only for ``model.type == 'r3det'``)."""

    num_stages: int = 1
    stage_loss_weights: tuple[float, ...] = (1.0,)
    stacked_convs: int = 2
    pos_iou_thr: float = 0.6
    neg_iou_thr: float = 0.5
    loss_bbox: LossConfig = field(default_factory=lambda: LossConfig(type="smooth_l1", beta=0.11))
    # Feature refinement module: MMRotate calls mmcv's rotated_feature_align with points=1 (the centre only)
    # and mmcv's kernel reads that centre as (y, x): the published models computed that (rdet.models.frm).
    # points=5, swap_xy=False samples the centre and four corners where the box is (the paper's FRM).
    frm_points: int = 1
    frm_swap_xy: bool = True


@dataclass(slots=True)
class TestConfig:
    nms_pre: int = 2000
    score_thr: float = 0.05
    iou_thr: float = 0.1
    max_per_img: int = 2000


@dataclass(slots=True)
class ModelConfig:
    type: ModelType = "rotated_retinanet"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    coder: CoderConfig = field(default_factory=CoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    refine: RefineConfig | None = None
    test: TestConfig = field(default_factory=TestConfig)


@dataclass(slots=True)
class DataConfig:
    train_images: str = ""  # folder of images (paths: relative to the config file, see the module docstring)
    train_labels: str = ""  # folder of labels
    val_images: str = ""
    val_labels: str = ""
    format: str = "dota"  # label format, see rdet.data.read_labels
    classes: tuple[str, ...] = ()  # class names; empty: the named list `class_list`
    class_list: str = "dota1.0"  # see rdet.data.classes.get_classes
    img_size: tuple[int, int] = (1024, 1024)  # (height, width) after resize
    flip: tuple[float, float, float] = (0.25, 0.25, 0.25)  # horizontal, vertical, diagonal
    rotate_prob: float = 0.0  # random rotation ("rr" configs)
    rotate_range: float = 180.0  # degrees
    filter_empty: bool = False


@dataclass(slots=True)
class TrainConfig:
    epochs: int = 12
    max_iters: int = 0  # > 0: stop after this many iterations (quickstart / tests)
    batch_size: int = 2  # per process
    workers: int = 2
    optimizer: Optimizer = "sgd"
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 500
    warmup_ratio: float = 1 / 3
    milestones: tuple[int, ...] = (8, 11)  # epochs (or iterations when max_iters > 0)
    gamma: float = 0.1
    grad_clip: float | None = 35.0
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    seed: int = 0
    deterministic: bool = False
    eval_interval: int = 1  # epochs between evaluations (0: never)
    log_interval: int = 10
    work_dir: str = "work_dirs/run"  # checkpoints, log.jsonl, loss.png and the final weights-only model.pt
    keep_checkpoints: int = 2  # epoch_N.pt files kept (the newest ones; 0: none written); last.pt always
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'cuda:1', ...


@dataclass(slots=True)
class DistillConfig:
    teacher: str = ""  # teacher config file
    teacher_weights: str = ""  # teacher checkpoint
    ld_weight: float = 10.0  # Rotated-LD: loss_ld weight 10, T 5
    kd_weight: float = 20.0  # Rotated-LD: loss_kd weight 20, T 5 (set per config)
    temperature: float = 5.0
    vlr_alpha: float = 0.25  # Rotated-LD's alpha
    vlr_horizontal: bool = False  # True reproduces Rotated-LD's horizontal-IoU region
    cache_dir: str = ""  # non-empty: cache teacher outputs there


@dataclass(slots=True)
class Config:
    name: str = "rdet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig | None = None
    source: str = ""  # the config file it was loaded from
    reference: str = ""  # the published config it reproduces


def class_names(config: Config) -> list[str]:
    """The class names of a config: ``data.classes``, or the named list ``data.class_list``
    (:func:`rdet.data.classes.get_classes`)."""
    if config.data.classes:
        return list(config.data.classes)
    from rdet.data.classes import get_classes

    return list(get_classes(config.data.class_list))


# Type check of untrusted config dicts (a checkpoint's stored config) before from_dict rebuilds them.
def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value, tp, where: str) -> None:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = ValueError(f"config field {where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ValueError:
                pass
        raise bad
    if dataclasses.is_dataclass(tp):
        check_config_types(tp, value, where)
    elif tp is bool:
        if type(value) is not bool:
            raise bad
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad
    elif tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise bad
    elif tp is str:
        if not isinstance(value, str):
            raise bad
    elif origin is typing.Literal:
        if value not in args:
            raise bad
    elif origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            raise ValueError(f"config field {where}: expected {len(args)} values, got {len(value)}: {value!r}")
        if args:
            items = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else args
            for i, (v, item) in enumerate(zip(value, items)):
                _check_value(v, item, f"{where}[{i}]")
    elif origin is dict and not isinstance(value, dict):
        raise bad


def check_config_types(cls, data, where: str = "") -> None:
    """Check a stored config dict against the dataclass annotations of ``cls`` before it is rebuilt.

    ``from_dict`` takes values as they come; a checkpoint's config is untrusted data, so every value must fit its
    field's annotation (``int``/``float``/``str``/``bool``, ``X | None``, tuples and their lengths, nested
    configs, ``Literal``). Unknown keys are left to ``from_dict`` (which names the closest valid key).

    Raises:
        ValueError: ``config field <dotted.name>: expected <type>, got <value>``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"config field {where or '(root)'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key in hints:
            _check_value(value, hints[key], f"{where}.{key}" if where else str(key))
