"""General-distribution regression: decode by expectation, train with distribution focal loss (GFL).

A general-distribution head predicts, for every regressed quantity, ``reg_max + 1`` logits over bins
``y_0 < y_1 < ... < y_n`` (``n = reg_max``); the value is the expectation ``sum_i softmax(z)_i y_i``
(Li et al., Generalized Focal Loss, NeurIPS 2020). GFL uses the unit bins ``y_i = i``; Rotated-LD
(Zzh-tju/Rotated-LD, ``rotated_retina_head_distribution.py``) uses ``linspace(-2, 2, n + 1)`` for the
x, y, w, h deltas and ``linspace(-5, 2, n + 1)`` for the angle delta: pass ``lo``/``hi``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_logits(logits: Tensor, name: str) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor")
    if logits.ndim == 0 or logits.shape[-1] < 2:
        raise ValueError(f"{name} must have shape [..., reg_max + 1] with reg_max >= 1, got {list(logits.shape)}")


def _upcast(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def distribution_expectation(logits: Tensor, lo: float = 0.0, hi: float | None = None) -> Tensor:
    """Decode bin logits to values by expectation (GFL's ``Integral``).

    Args:
        logits (Tensor[..., reg_max + 1]): bin logits (softmax over the last dim).
        lo, hi: positions of the first and last bin; ``hi=None`` means ``reg_max`` (unit bins, GFL).

    Returns:
        Tensor[...]: ``sum_i softmax(logits)_i * linspace(lo, hi, reg_max + 1)_i``, in ``[lo, hi]``.
    """
    _check_logits(logits, "logits")
    n = logits.shape[-1] - 1
    hi = float(n) if hi is None else hi
    if not hi > lo:
        raise ValueError(f"hi must be > lo, got lo={lo}, hi={hi}")
    logits = _upcast(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        bins = torch.linspace(lo, hi, n + 1, dtype=logits.dtype, device=logits.device)
        return (F.softmax(logits, dim=-1) * bins).sum(dim=-1)


def to_bin_units(values: Tensor, reg_max: int, lo: float = 0.0, hi: float | None = None) -> Tensor:
    """Map values in ``[lo, hi]`` to bin units ``[0, reg_max]`` (the label space of the DFL), clamped.

    Args:
        values (Tensor[...]): regression targets in the head's value space.
        reg_max: number of bins minus one.
        lo, hi: as :func:`distribution_expectation` (``hi=None`` means ``reg_max``).

    Returns:
        Tensor[...]: ``(values - lo) / (hi - lo) * reg_max`` clamped to ``[0, reg_max]``.
    """
    hi = float(reg_max) if hi is None else hi
    if not hi > lo:
        raise ValueError(f"hi must be > lo, got lo={lo}, hi={hi}")
    return ((values - lo) / (hi - lo) * reg_max).clamp(0.0, float(reg_max))


def distribution_focal_loss(pred: Tensor, label: Tensor) -> Tensor:
    """Distribution focal loss (GFL): cross-entropy towards the two bins around a continuous label.

    With ``l = floor(y)`` (``reg_max - 1`` when ``y = reg_max``) and ``r = l + 1``:
    ``DFL = (r - y) * CE(pred, l) + (y - l) * CE(pred, r)``. Its minimum, over softmax outputs, puts
    mass ``r - y`` on bin ``l`` and ``y - l`` on bin ``r``, whose expectation is exactly ``y``.

    Args:
        pred (Tensor[N, reg_max + 1]): bin logits.
        label (Tensor[N]): targets in bin units, in ``[0, reg_max]`` (see :func:`to_bin_units`).

    Returns:
        Tensor[N]: per-row loss.
    """
    _check_logits(pred, "pred")
    if pred.ndim != 2:
        raise ValueError(f"pred must have shape [N, reg_max + 1], got {list(pred.shape)}")
    if not isinstance(label, Tensor) or label.shape != pred.shape[:1]:
        raise ValueError(
            f"label must be Tensor[N] with N={pred.shape[0]}, got "
            f"{list(label.shape) if isinstance(label, Tensor) else type(label).__name__}"
        )
    reg_max = pred.shape[1] - 1
    if label.numel() and (float(label.min()) < 0 or float(label.max()) > reg_max):
        raise ValueError(
            f"label must lie in [0, reg_max={reg_max}] (bin units), got [{float(label.min())}, {float(label.max())}]"
        )
    pred = _upcast(pred)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        label = label.to(pred.dtype)
        left = label.floor().long().clamp(max=reg_max - 1)
        right = left + 1
        w_left = right.to(pred.dtype) - label
        w_right = label - left.to(pred.dtype)
        return (
            F.cross_entropy(pred, left, reduction="none") * w_left
            + F.cross_entropy(pred, right, reduction="none") * w_right
        )
