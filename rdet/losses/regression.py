"""THE table of box-regression losses: the heads, R3Det's refine stages and ``config.validate`` all read it.

Adding a loss is one row here (plus its pure function, tested on its own, and its name in the
``LossType`` choices of :mod:`rdet.config`)::

    REGRESSION_LOSSES["my_loss"] = RegressionLoss(
        fn=my_loss,                              # (pred [P, 5], target [P, 5], **params) -> Tensor[P]
        params=lambda s: {"beta": s.beta},       # the settings (a LossConfig) -> keyword arguments of fn
        reads=("beta",),                         # LossConfig fields it reads, besides type and loss_weight
        decoded=False,                           # True: compares decoded boxes (needs reg_decoded_bbox=True)
    )

A row turns a settings object (``rdet.config.LossConfig``: ``type``, ``loss_weight`` and the fields
of ``reads``) into one scalar: ``reduce(fn(pred, target, **params(s)), level, num_pos, s) * loss_weight``.
``reduce`` is the row's normaliser: :func:`mean_over_positives` (sum over positives / number of positives,
MMDetection's ``avg_factor``) for L1/smooth-L1; the Gaussian rows read their ``reduction`` setting
(:func:`gaussian_reduce`), which can also reproduce MMRotate's ``GDLoss_v1`` normalisation (below).

MMRotate quirk: ``GDLoss_v1`` (the non-stable KLD of the ``*_kld_*`` configs) ignores ``avg_factor`` and
returns one value per positive; MMDetection computes the head's losses per FPN level (``loss_by_feat_single``)
and MMEngine's ``parse_losses`` (mmdet 2.x's ``_parse_losses`` in 0.x) takes ``.mean()`` of each level's
tensor and sums the levels. So the published ``*_kld_*`` models trained on ``sum over levels of (mean over that
level's positives of the batch)``; levels without positives add 0. With most positives on one level this is
about ``num_levels_with_positives`` times the ``num_pos`` normalisation, and the weight of one positive depends
on how crowded its level is. ``reduction='level_means'`` reproduces it (the ``*_kld_*`` configs set it);
``reduction='num_pos'`` (the default) divides by the batch's positive count like every other loss. The parity
tests check ``level_means`` against MMRotate's numbers on a real batch.

The settings are duck-typed (any object with the fields), so this module does not import the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rdet.losses.focal import smooth_l1
from rdet.losses.gaussian import gwd_loss, kld_loss

#: ``reduce(per_box [P], level [P] int64, num_pos, settings) -> scalar``
Reduce = Callable[[Tensor, Tensor, float, Any], Tensor]


def mean_over_positives(loss: Tensor, level: Tensor, num_pos: float, settings: Any) -> Tensor:
    """``sum(loss) / num_pos``: the positives' loss averaged by the batch's positive count (``avg_factor``)."""
    return loss.sum() / num_pos


def level_means(loss: Tensor, level: Tensor, num_pos: float, settings: Any) -> Tensor:
    """Sum over FPN levels of the mean of that level's positives (MMRotate ``GDLoss_v1`` + loss parsing).

    Args:
        loss (Tensor[P]), level (Tensor[P] int64): per-positive losses of the batch and their FPN levels.

    Returns:
        scalar; 0 (still connected to the graph) without positives.
    """
    total = loss.sum() * 0.0
    for lv in level.unique():
        total = total + loss[level == lv].mean()
    return total


def gaussian_reduce(loss: Tensor, level: Tensor, num_pos: float, settings: Any) -> Tensor:
    """The Gaussian rows' normaliser: ``settings.reduction`` picks :func:`level_means` or
    :func:`mean_over_positives`."""
    if getattr(settings, "reduction", "num_pos") == "level_means":
        return level_means(loss, level, num_pos, settings)
    return mean_over_positives(loss, level, num_pos, settings)


def l1_per_box(pred: Tensor, target: Tensor) -> Tensor:
    """L1 over the 5 deltas, summed per box (MMDetection ``L1Loss`` with weight 1). ``[P, 5] x [P, 5] -> [P]``."""
    return smooth_l1(pred, target, beta=0.0).sum(-1)


def smooth_l1_per_box(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Smooth-L1 over the 5 deltas, summed per box. ``[P, 5] x [P, 5] -> [P]``."""
    return smooth_l1(pred, target, beta=beta).sum(-1)


@dataclass(frozen=True)
class RegressionLoss:
    """One row of :data:`REGRESSION_LOSSES` (module docstring).

    Attributes:
        fn: the pure per-box loss, ``fn(pred [P, 5], target [P, 5], **params) -> Tensor[P]``.
        params: settings -> keyword arguments of ``fn``.
        reads: settings fields the row reads besides ``type`` and ``loss_weight``; every other field of the
            settings must keep its default (a value nothing reads is a config error, not a silent no-op).
        decoded: ``True`` when ``fn`` compares decoded boxes (Gaussian losses), ``False`` for coder deltas.
        reduce: per-box losses -> the scalar loss before ``loss_weight``.
    """

    fn: Callable[..., Tensor]
    params: Callable[[Any], dict[str, Any]]
    reads: tuple[str, ...]
    decoded: bool
    reduce: Reduce = mean_over_positives

    def per_box(self, settings: Any, pred: Tensor, target: Tensor) -> Tensor:
        """``fn`` with the settings' parameters: ``Tensor[P]`` (before reduction and ``loss_weight``)."""
        return self.fn(pred, target, **self.params(settings))


REGRESSION_LOSSES: dict[str, RegressionLoss] = {
    "l1": RegressionLoss(l1_per_box, lambda s: {}, reads=(), decoded=False),
    "smooth_l1": RegressionLoss(smooth_l1_per_box, lambda s: {"beta": s.beta}, reads=("beta",), decoded=False),
    # GDLoss_v1 (stable=False) takes no square root: `sqrt` is read only with stable=True
    "kld": RegressionLoss(
        kld_loss,
        lambda s: {
            "fun": s.fun,
            "tau": s.tau,
            "alpha": s.alpha,
            "stable": s.stable,
            "sqrt": s.sqrt if s.stable else None,
        },
        reads=("fun", "tau", "alpha", "stable", "sqrt", "reduction"),
        decoded=True,
        reduce=gaussian_reduce,
    ),
    # GDLoss_v1's GWD has no normalisation: `normalize` is read only with stable=True
    "gwd": RegressionLoss(
        gwd_loss,
        lambda s: {
            "fun": s.fun,
            "tau": s.tau,
            "alpha": s.alpha,
            "stable": s.stable,
            "normalize": s.normalize and s.stable,
        },
        reads=("fun", "tau", "alpha", "stable", "normalize", "reduction"),
        decoded=True,
        reduce=gaussian_reduce,
    ),
}


def loss_row(settings: Any) -> RegressionLoss:
    """The table row of ``settings.type``; ``ValueError`` listing the known types otherwise."""
    row = REGRESSION_LOSSES.get(settings.type)
    if row is None:
        raise ValueError(f"type {settings.type!r} is not one of {', '.join(map(repr, REGRESSION_LOSSES))}")
    return row


def check_settings(settings: Any) -> list[str]:
    """Problems with a loss's settings, as ``'field: message'`` strings (empty when fine).

    Checks the type, that no field the row does not read was changed from its default, and the
    parameter values themselves (by calling the row's function on empty inputs, so the pure function
    stays the one place that knows its valid range).
    """
    try:
        row = loss_row(settings)
    except ValueError as e:
        return [f"type: {e}"]
    problems = []
    fields = dataclasses.fields(settings) if dataclasses.is_dataclass(settings) else ()
    for f in fields:
        if f.name in ("type", "loss_weight") or f.name in row.reads or f.default is dataclasses.MISSING:
            continue
        if getattr(settings, f.name) != f.default:
            reads = ", ".join(row.reads) or "nothing but loss_weight"
            problems.append(f"{f.name}: {settings.type!r} does not read {f.name} (it reads {reads})")
    try:
        empty = torch.zeros(0, 5)
        row.per_box(settings, empty, empty)
    except ValueError as e:
        problems.append(f"{settings.type}: {e}")
    return problems


def regression_loss(settings: Any, pred: Tensor, target: Tensor, num_pos: float, level: Tensor | None = None) -> Tensor:
    """The weighted, reduced regression loss of a batch's positives.

    Args:
        settings: a ``LossConfig`` (``type``, ``loss_weight`` and the fields its row reads).
        pred, target (Tensor[P, 5]): coder deltas, or decoded boxes when the row is ``decoded``.
        num_pos: the batch's positive count (at least 1), the default normaliser.
        level (Tensor[P] int64, optional): FPN level of each positive, for rows that normalise per level.

    Returns:
        Tensor: scalar, ``reduce(per_box) * loss_weight``; 0 (still connected to the graph) without positives.
    """
    row = loss_row(settings)
    if level is None:
        level = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    return row.reduce(row.per_box(settings, pred, target), level, num_pos, settings) * settings.loss_weight
