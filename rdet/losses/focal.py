"""Classification and delta-regression losses: sigmoid focal loss and smooth-L1 (L1 at ``beta=0``).

Both return element-wise values without weighting or reduction, computed in at least float32; the heads
and :mod:`rdet.losses.regression` weight and reduce them as MMDetection does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _upcast(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def focal_loss(pred: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25) -> Tensor:
    """Sigmoid focal loss (Lin et al., RetinaNet), element-wise, as MMDetection's ``FocalLoss(use_sigmoid=True)``.

    With ``p = sigmoid(x)``: ``loss = BCE(p, t) * (alpha t + (1 - alpha)(1 - t)) * ((1 - p) t + p (1 - t))^gamma``;
    for binary ``t`` the last factor is the paper's ``(1 - p_t)^gamma``.

    Args:
        pred (Tensor[N, C]): logits, one column per foreground class (no background column).
        target: either ``Tensor[N, C]`` float (one-hot or soft targets in [0, 1]) or ``Tensor[N]``
            integer labels in ``[0, C]``, where ``C`` means background (an all-zero row).
        gamma: focusing parameter (>= 0).
        alpha: weight of the positive term, in [0, 1].

    Returns:
        Tensor[N, C]: per-element loss.
    """
    if not isinstance(pred, Tensor) or pred.ndim != 2 or not pred.is_floating_point():
        raise ValueError(
            f"pred must be a floating-point Tensor[N, C], got "
            f"{list(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__}"
        )
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    n, c = pred.shape
    if not target.is_floating_point():
        if target.shape != (n,):
            raise ValueError(f"integer target must be Tensor[N] labels with N={n}, got {list(target.shape)}")
        if target.numel() and (int(target.min()) < 0 or int(target.max()) > c):
            raise ValueError(
                f"target labels must be in [0, {c}] ({c} = background), got [{int(target.min())}, {int(target.max())}]"
            )
        target = F.one_hot(target.long(), c + 1)[:, :c]
    elif target.shape != pred.shape:
        raise ValueError(f"target has shape {list(target.shape)}, which does not match pred shape {list(pred.shape)}")
    pred = _upcast(pred)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        target = target.to(pred.dtype)
        p = torch.sigmoid(pred)
        ce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        modulating = ((1.0 - p) * target + p * (1.0 - target)).pow(gamma)
        weight = alpha * target + (1.0 - alpha) * (1.0 - target)
        return ce * weight * modulating


def smooth_l1(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Smooth-L1 (Huber / beta) loss on coder deltas, element-wise, as MMDetection's ``smooth_l1_loss``.

    ``0.5 x^2 / beta`` for ``|x| < beta``, else ``|x| - 0.5 beta``, with ``x = pred - target``;
    ``beta = 0`` is the plain L1 loss (MMDetection's ``L1Loss``, used by the Rotated RetinaNet baselines).

    Args:
        pred (Tensor[N, K]): predicted deltas (any shape).
        target (Tensor[N, K]): target deltas, same shape.
        beta: transition point (>= 0).

    Returns:
        Tensor[N, K]: per-element loss.
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch.Tensor")
    if pred.shape != target.shape:
        raise ValueError(f"target has shape {list(target.shape)}, which does not match pred shape {list(pred.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    pred, target = _upcast(pred), _upcast(target)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        diff = (pred - target.to(pred.dtype)).abs()
        if beta == 0:
            return diff
        return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
