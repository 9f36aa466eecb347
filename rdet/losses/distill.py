"""Temperature-scaled KL divergence for localization (LD) and classification (KD) distillation.

``knowledge_distillation_kl_div(pred, soft_label, T) = T^2 * KL(softmax(soft_label/T) || softmax(pred/T))``
per row (Hinton et al. 2015; Zheng et al., Localization Distillation, CVPR 2022). The ``T^2`` keeps the
gradient scale independent of ``T``: the gradient of the KL w.r.t. the student logits is
``(softmax(pred/T) - softmax(soft_label/T)) / T``.

MMDetection's ``KnowledgeDistillationKLDivLoss`` (used by Zzh-tju/Rotated-LD) *averages* over the
bins instead of summing (``.mean(1)``): pass ``class_reduction='mean'`` to reproduce its magnitudes
(the published LD/KD loss weights assume it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CLASS_REDUCTIONS = ("sum", "mean")


def knowledge_distillation_kl_div(pred: Tensor, soft_label: Tensor, T: float, class_reduction: str = "sum") -> Tensor:
    """Temperature-scaled KL divergence from the teacher's to the student's distribution, per row.

    Args:
        pred (Tensor[N, C]): student logits (gradients flow into these).
        soft_label (Tensor[N, C]): teacher logits (detached: no gradient reaches the teacher).
        T: temperature (> 0).
        class_reduction: ``'sum'`` (the KL divergence) or ``'mean'`` (the KL divided by ``C``, as
            MMDetection's LD/KD loss).

    Returns:
        Tensor[N]: ``T^2 * KL(softmax(soft_label/T) || softmax(pred/T))`` (``/ C`` for ``'mean'``);
        0 where student and teacher logits are equal.
    """
    for name, x in (("pred", pred), ("soft_label", soft_label)):
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 2:
            raise ValueError(
                f"{name} must be a floating-point Tensor[N, C], got "
                f"{list(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
    if soft_label.shape != pred.shape:
        raise ValueError(
            f"soft_label has shape {list(soft_label.shape)}, which does not match pred shape {list(pred.shape)}"
        )
    if not T > 0:
        raise ValueError(f"T must be > 0, got {T}")
    if class_reduction not in CLASS_REDUCTIONS:
        raise ValueError(
            f"class_reduction must be one of {', '.join(repr(r) for r in CLASS_REDUCTIONS)}; got {class_reduction!r}"
        )
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=pred.device.type, enabled=False):
        log_student = F.log_softmax(pred.to(dtype) / T, dim=1)
        # log-space target: exact zeros where the teacher's probability underflows, no 0 * log 0
        log_teacher = F.log_softmax(soft_label.detach().to(dtype) / T, dim=1)
        kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True)
        kl = kl.sum(dim=1) if class_reduction == "sum" else kl.mean(dim=1)
        return kl * (T * T)
