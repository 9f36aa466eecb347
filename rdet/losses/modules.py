"""Thin ``nn.Module`` shells around the loss functions: ``loss_weight`` and ``reduction``, MMDetection-style.

Every module's ``forward(pred, target, weight=None, avg_factor=None)`` computes the per-element loss with
the pure function, multiplies by ``weight``, reduces and scales by ``loss_weight``:

* ``reduction='mean'``: ``sum / (avg_factor + eps)`` when ``avg_factor`` is given (``eps`` = float32
  machine epsilon, as MMDetection's ``weight_reduce_loss``), else the plain mean over all elements;
* ``'sum'``: the sum (``avg_factor`` is then an error, as in MMDetection); ``'none'``: no reduction.

Empty inputs give a zero that stays connected to the graph (never the NaN of an empty mean).

``PUBLISHED_LOSS_SETTINGS`` lists the loss settings of the published configs rdet reproduces; the
keys of each ``loss_bbox`` dict are fields of ``rdet.config.LossConfig`` and arguments of the module
``build_regression_loss`` picks for its ``type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rdet.losses.distill import CLASS_REDUCTIONS, knowledge_distillation_kl_div
from rdet.losses.distribution import distribution_focal_loss
from rdet.losses.focal import focal_loss, smooth_l1
from rdet.losses.gaussian import VALID_KFIOU_FUNS, _check_fun, _check_scalars, gwd_loss, kfiou_loss, kld_loss

REDUCTIONS = ("none", "mean", "sum")
_EPS = torch.finfo(torch.float32).eps


def weight_reduce(
    loss: Tensor, weight: Tensor | None = None, reduction: str = "mean", avg_factor: float | Tensor | None = None
) -> Tensor:
    """Weight and reduce an element-wise loss (MMDetection's ``weight_reduce_loss`` semantics).

    Args:
        loss (Tensor[N] or Tensor[N, K]): element-wise loss.
        weight (Tensor[N] or Tensor[N, K], optional): per-row weight (broadcast over ``K``) or per element.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor: with ``'mean'``, divide the sum by ``avg_factor + eps`` instead of the element count.

    Returns:
        Tensor: scalar, or ``loss`` weighted for ``'none'``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}")
    if weight is not None:
        if not isinstance(weight, Tensor):
            raise ValueError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
        if weight.shape == loss.shape[:1] and loss.ndim > 1:
            weight = weight.reshape(-1, *([1] * (loss.ndim - 1)))
        elif weight.shape != loss.shape:
            raise ValueError(
                f"weight has shape {list(weight.shape)}; expected [{loss.shape[0] if loss.ndim else ''}]"
                f" or {list(loss.shape)}"
            )
        loss = loss * weight.to(loss.dtype)
    if reduction == "none":
        return loss
    if avg_factor is not None and reduction == "sum":
        raise ValueError("avg_factor can only be used with reduction='mean'")
    if loss.numel() == 0:
        return loss.sum()  # 0, still connected to the graph (DDP needs every parameter used)
    if reduction == "sum":
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    return loss.sum() / (avg_factor + _EPS)


class _Weighted(nn.Module):
    def __init__(self, loss_weight: float, reduction: str) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}")
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def _finish(self, loss: Tensor, weight: Tensor | None, avg_factor) -> Tensor:
        return weight_reduce(loss, weight, self.reduction, avg_factor) * self.loss_weight


class KLDLoss(_Weighted):
    """KLD regression loss on decoded boxes (see :func:`rdet.losses.gaussian.kld_loss`).

    ``stable=False`` is MMRotate ``GDLoss_v1(loss_type='kld')``, ``stable=True`` is ``GDLoss(loss_type='kld')``.
    ``forward(pred[N, 5], target[N, 5], weight[N]=None, avg_factor=None)``.
    """

    def __init__(
        self,
        fun: str = "log1p",
        tau: float = 1.0,
        alpha: float = 1.0,
        stable: bool = False,
        sqrt: bool | None = None,
        loss_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(loss_weight, reduction)
        _check_fun(fun)
        _check_scalars(tau, alpha)
        if sqrt and not stable:
            raise ValueError("sqrt=True needs stable=True (GDLoss_v1 never takes a square root)")
        self.fun, self.tau, self.alpha, self.stable, self.sqrt = fun, tau, alpha, stable, sqrt

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        loss = kld_loss(pred, target, self.fun, self.tau, self.alpha, stable=self.stable, sqrt=self.sqrt)
        return self._finish(loss, weight, avg_factor)


class GWDLoss(_Weighted):
    """GWD regression loss on decoded boxes (see :func:`rdet.losses.gaussian.gwd_loss`).

    Note MMRotate ``GDLoss``'s module default ``tau=0`` (loss ``= log1p(D)``), which the published GWD
    configs rely on; here ``tau`` defaults to 1 like the function, so pass ``tau=0`` to reproduce them.
    """

    def __init__(
        self,
        fun: str = "log1p",
        tau: float = 1.0,
        alpha: float = 1.0,
        normalize: bool = True,
        stable: bool = True,
        loss_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(loss_weight, reduction)
        _check_fun(fun)
        _check_scalars(tau, alpha)
        if normalize and not stable:
            raise ValueError("normalize=True needs stable=True (GDLoss_v1's GWD has no normalisation)")
        self.fun, self.tau, self.alpha, self.normalize, self.stable = fun, tau, alpha, normalize, stable

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        loss = gwd_loss(pred, target, self.fun, self.tau, self.alpha, normalize=self.normalize, stable=self.stable)
        return self._finish(loss, weight, avg_factor)


class KFIoULoss(_Weighted):
    """KFIoU loss (MMRotate ``KFLoss``); needs both the deltas and the decoded boxes.

    ``forward(pred_deltas, target_deltas, pred_boxes, target_boxes, weight[N]=None, avg_factor=None)``.
    """

    def __init__(
        self,
        fun: str = "none",
        beta: float = 1.0 / 9.0,
        eps: float = 1e-6,
        loss_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(loss_weight, reduction)
        if fun not in VALID_KFIOU_FUNS:
            raise ValueError(f"fun must be one of {', '.join(repr(f) for f in VALID_KFIOU_FUNS)}; got {fun!r}")
        self.fun, self.beta, self.eps = fun, beta, eps

    def forward(
        self,
        pred_deltas: Tensor,
        target_deltas: Tensor,
        pred_boxes: Tensor,
        target_boxes: Tensor,
        weight: Tensor | None = None,
        avg_factor=None,
    ) -> Tensor:
        loss = kfiou_loss(pred_deltas, target_deltas, pred_boxes, target_boxes, self.fun, self.beta, self.eps)
        return self._finish(loss, weight, avg_factor)


class FocalLoss(_Weighted):
    """Sigmoid focal loss (see :func:`rdet.losses.focal.focal_loss`).

    ``forward(pred[N, C] logits, target[N, C] float or [N] labels, weight[N] or [N, C], avg_factor)``.
    """

    def __init__(
        self, gamma: float = 2.0, alpha: float = 0.25, loss_weight: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__(loss_weight, reduction)
        self.gamma, self.alpha = gamma, alpha

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        return self._finish(focal_loss(pred, target, self.gamma, self.alpha), weight, avg_factor)


class SmoothL1Loss(_Weighted):
    """Smooth-L1 loss on deltas; ``beta=0`` is MMDetection's ``L1Loss``.

    ``forward(pred[N, K], target[N, K], weight[N] or [N, K], avg_factor)``.
    """

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(loss_weight, reduction)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        return self._finish(smooth_l1(pred, target, self.beta), weight, avg_factor)


class DistributionFocalLoss(_Weighted):
    """Distribution focal loss (GFL). ``forward(pred[N, reg_max+1], target[N] in bin units, weight[N], avg_factor)``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(loss_weight, reduction)

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        return self._finish(distribution_focal_loss(pred, target), weight, avg_factor)


class KDLoss(_Weighted):
    """Temperature-scaled KL distillation loss (LD on bin logits, KD on class logits).

    ``forward(pred[N, C] student, target[N, C] teacher logits, weight[N], avg_factor)``; the teacher
    is detached. ``class_reduction='mean'`` reproduces MMDetection's ``KnowledgeDistillationKLDivLoss``.
    """

    def __init__(
        self, T: float = 10.0, class_reduction: str = "sum", loss_weight: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__(loss_weight, reduction)
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}")
        if class_reduction not in CLASS_REDUCTIONS:
            raise ValueError(
                f"class_reduction must be one of {', '.join(repr(r) for r in CLASS_REDUCTIONS)}; "
                f"got {class_reduction!r}"
            )
        self.T, self.class_reduction = T, class_reduction

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None, avg_factor=None) -> Tensor:
        loss = knowledge_distillation_kl_div(pred, target, self.T, self.class_reduction)
        return self._finish(loss, weight, avg_factor)


# --------------------------------------------------------------------------- building from settings

# type -> (module, accepted keys besides 'type'); 'l1' is smooth-L1 with beta 0
REGRESSION_LOSSES: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "l1": (SmoothL1Loss, ("loss_weight", "reduction")),
    "smooth_l1": (SmoothL1Loss, ("beta", "loss_weight", "reduction")),
    "kld": (KLDLoss, ("fun", "tau", "alpha", "stable", "sqrt", "loss_weight", "reduction")),
    "gwd": (GWDLoss, ("fun", "tau", "alpha", "normalize", "stable", "loss_weight", "reduction")),
    "kfiou": (KFIoULoss, ("fun", "beta", "eps", "loss_weight", "reduction")),
}


def build_regression_loss(settings: Mapping[str, Any]) -> nn.Module:
    """Build a box-regression loss module from a settings dict such as ``PUBLISHED_LOSS_SETTINGS[..]['loss_bbox']``.

    Args:
        settings: ``{'type': 'l1' | 'smooth_l1' | 'kld' | 'gwd' | 'kfiou', ...}`` plus only the keys that
            loss takes (``REGRESSION_LOSSES[type][1]``); anything else is an error naming the key.

    Returns:
        nn.Module: the configured loss.
    """
    kind = settings.get("type")
    if kind not in REGRESSION_LOSSES:
        raise ValueError(f"loss type must be one of {', '.join(repr(k) for k in REGRESSION_LOSSES)}; got {kind!r}")
    cls, accepted = REGRESSION_LOSSES[kind]
    kwargs = {k: v for k, v in settings.items() if k != "type"}
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"loss type {kind!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")
    if kind == "l1":
        kwargs["beta"] = 0.0
    return cls(**kwargs)


# --------------------------------------------------------------------------- published settings

_MMR = "open-mmlab/mmrotate@dev-1.x:configs/"
_LD = "Zzh-tju/Rotated-LD@main:configs/"
_FOCAL = {"gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}  # mmdet.FocalLoss in every config
_L1 = {"type": "l1", "loss_weight": 1.0}  # mmdet.L1Loss
_SL1 = {"type": "smooth_l1", "beta": 0.11, "loss_weight": 1.0}  # mmdet.SmoothL1Loss (R3Det)
_KLD_V1 = {"type": "kld", "stable": False, "fun": "log1p", "tau": 1.0, "loss_weight": 1.0}  # GDLoss_v1
# GDLoss(loss_type='gwd', loss_weight=5.0): fun, tau, alpha, normalize are GDLoss/gwd_loss defaults
_GWD = {"type": "gwd", "stable": True, "fun": "log1p", "tau": 0.0, "alpha": 1.0, "normalize": True, "loss_weight": 5.0}
_V1_NOTE = (
    "GDLoss_v1 ignores weight and avg_factor: it keeps boxes with weight > 0 and returns their "
    "unreduced losses, which MMEngine averages per FPN level and sums over levels; reproduce with "
    "reduction='mean' on the positives of each level, without avg_factor, summed over levels"
)


def _kld_stable(weight: float) -> dict[str, Any]:
    return {"type": "kld", "stable": True, "fun": "log1p", "tau": 1.0, "sqrt": False, "loss_weight": weight}


def _retina(source: str, loss_bbox: dict[str, Any], note: str = "") -> dict[str, Any]:
    entry = {
        "source": _MMR + source,
        "loss_cls": dict(_FOCAL),
        "loss_bbox": dict(loss_bbox),
        "reg_decoded_bbox": loss_bbox["type"] in ("kld", "gwd"),
    }
    if note:
        entry["note"] = note
    return entry


def _r3det(source: str, loss_bbox: dict[str, Any], stages: tuple[float, ...] = (1.0,), note: str = "") -> dict:
    entry = _retina(source, loss_bbox, note)
    entry.update(refine_loss_cls=dict(_FOCAL), refine_loss_bbox=dict(loss_bbox), stage_loss_weights=stages)
    return entry


def _ld(source: str, loss_bbox: dict[str, Any], ld: float, kd: float, note: str = "") -> dict[str, Any]:
    entry = _retina("", loss_bbox, note)
    entry.update(
        source=_LD + source,
        reg_max=8,
        loss_ld={"T": 5.0, "class_reduction": "mean", "loss_weight": ld},
        loss_kd={"T": 5.0, "class_reduction": "mean", "loss_weight": kd},
    )
    return entry


#: config name -> loss settings of that published config (``source`` cites the file; ``loss_bbox`` keys
#: are ``rdet.config.LossConfig`` fields, ``loss_cls`` keys ``FocalConfig`` fields).
PUBLISHED_LOSS_SETTINGS: dict[str, dict[str, Any]] = {
    # Rotated RetinaNet baselines: L1 on deltas (mmdet.L1Loss, loss_weight 1.0)
    **{
        name: _retina(f"rotated_retinanet/{name}.py", _L1)
        for name in (
            "rotated-retinanet-hbox-oc_r50_fpn_1x_dota",
            "rotated-retinanet-hbox-le90_r50_fpn_1x_dota",
            "rotated-retinanet-hbox-le135_r50_fpn_1x_dota",
            "rotated-retinanet-rbox-oc_r50_fpn_1x_dota",
            "rotated-retinanet-rbox-le90_r50_fpn_1x_dota",
            "rotated-retinanet-rbox-le135_r50_fpn_1x_dota",
            "rotated-retinanet-rbox-le90_r50_fpn_amp-1x_dota",
            "rotated-retinanet-rbox-le90_r50_fpn_rr-1x_dota-ms",
            "rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc",
            "rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc",
            "rotated-retinanet-rbox-le90_r50_fpn_1x_dior",
            "rotated-retinanet-rbox-oc_r50_fpn_1x_dior",
        )
    },
    # KLD (GDLoss_v1) and KLD-stable (GDLoss, fun='log1p', tau=1, sqrt=False)
    "rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota": _retina(
        "kld/rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota.py", _KLD_V1, _V1_NOTE
    ),
    "rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota": _retina(
        "kld/rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota.py", _KLD_V1, _V1_NOTE
    ),
    "rotated-retinanet-hbox-oc_r50_fpn_kld-stable_1x_dota": _retina(
        "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_1x_dota.py", _kld_stable(5.5)
    ),
    "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota": _retina(
        "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py", _kld_stable(5.5)
    ),
    "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota": _retina(
        "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota.py",
        _kld_stable(5.5),
        "inherits the losses of rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota (only the optimizer changes)",
    ),
    "rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc": _retina(
        "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc.py", _kld_stable(5.5)
    ),
    "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc": _retina(
        "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc.py", _kld_stable(1.0)
    ),
    # GWD (GDLoss(loss_type='gwd', loss_weight=5.0); module default tau=0 -> loss = log1p(D / scale))
    "rotated-retinanet-hbox-oc_r50_fpn_gwd_1x_dota": _retina(
        "gwd/rotated-retinanet-hbox-oc_r50_fpn_gwd_1x_dota.py", _GWD
    ),
    "rotated-retinanet-rbox-le90_r50_fpn_gwd_1x_dota": _retina(
        "gwd/rotated-retinanet-rbox-le90_r50_fpn_gwd_1x_dota.py", _GWD
    ),
    "rotated-retinanet-rbox-le135_r50_fpn_gwd_1x_dota": _retina(
        "gwd/rotated-retinanet-rbox-le135_r50_fpn_gwd_1x_dota.py",
        _GWD,
        "its _base_ names rotated_retinanet/rotated-retinanet-obb-le135_r50_fpn_1x_dota.py, which does not "
        "exist in dev-1.x (intended: rotated-retinanet-rbox-le135_r50_fpn_1x_dota.py)",
    ),
    # R3Det: smooth-L1 (beta 0.11) in the initial and every refine stage; KLD variants in both
    "r3det-oc_r50_fpn_1x_dota": _r3det("r3det/r3det-oc_r50_fpn_1x_dota.py", _SL1),
    "r3det-refine-oc_r50_fpn_1x_dota": _r3det("r3det/r3det-refine-oc_r50_fpn_1x_dota.py", _SL1, (1.0, 1.0)),
    "r3det-tiny-oc_r50_fpn_1x_dota": _r3det("r3det/r3det-tiny-oc_r50_fpn_1x_dota.py", _SL1),
    "r3det-oc_r50_fpn_kld_1x_dota": _r3det("kld/r3det-oc_r50_fpn_kld_1x_dota.py", _KLD_V1, note=_V1_NOTE),
    "r3det-tiny-oc_r50_fpn_kld_1x_dota": _r3det(
        "kld/r3det-tiny-oc_r50_fpn_kld_1x_dota.py",
        _KLD_V1,
        note=_V1_NOTE + "; its _base_ is r3det-oc (not r3det-tiny-oc) with stacked_convs=2 overridden",
    ),
    "r3det-oc_r50_fpn_kld-stable_1x_dota": _r3det("kld/r3det-oc_r50_fpn_kld-stable_1x_dota.py", _kld_stable(5.0)),
    # Rotated-LD (distribution head reg_max=8; LD/KD = mmdet KnowledgeDistillationKLDivLoss, mean over bins).
    # Its GDLoss is a copy of MMRotate's from before PR #206 (clamps at 0 instead of 1e-7).
    "rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc": {
        **_retina("", _GWD),
        "source": _LD + "gwd/rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc.py",
        "reg_max": 8,
    },
    "rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc": {
        **_retina("", _KLD_V1, _V1_NOTE),
        "source": _LD + "kld/rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py",
        "reg_max": 8,
    },
    "rotated_retinanet_distribution_hbb_gwd_r18_r34_fpn_1x_dota_oc": _ld(
        "ld/rotated_retinanet_distribution_hbb_gwd_r18_r34_fpn_1x_dota_oc.py", _GWD, ld=10.0, kd=20.0
    ),
    "rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc": _ld(
        "ld/rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc.py", _KLD_V1, ld=15.0, kd=15.0, note=_V1_NOTE
    ),
    "rotated_retinanet_distribution_hbb_gwd_r18_r50_fpn_1x_dota_oc": _ld(
        "ld/rotated_retinanet_distribution_hbb_gwd_r18_r50_fpn_1x_dota_oc.py",
        _GWD,
        ld=30.0,
        kd=30.0,
        note="also a feature-imitation loss (IMLoss, loss_weight 2.0) not covered here",
    ),
}
