"""Losses of rdet: Gaussian box losses (KLD, KLD-stable, GWD, KFIoU), focal / smooth-L1, distribution
focal loss and the temperature-scaled KL of localization distillation.

Pure functions return per-element values; the ``nn.Module`` shells in :mod:`rdet.losses.modules` add
``loss_weight`` and ``reduction``. What ``stable`` means is documented in :mod:`rdet.losses.gaussian`.
"""

from rdet.losses.distill import knowledge_distillation_kl_div
from rdet.losses.distribution import distribution_expectation, distribution_focal_loss, to_bin_units
from rdet.losses.focal import focal_loss, smooth_l1
from rdet.losses.gaussian import gwd_loss, kfiou_loss, kld_loss, xywha_to_gaussian
from rdet.losses.modules import (
    PUBLISHED_LOSS_SETTINGS,
    REGRESSION_LOSSES,
    DistributionFocalLoss,
    FocalLoss,
    GWDLoss,
    KDLoss,
    KFIoULoss,
    KLDLoss,
    SmoothL1Loss,
    build_regression_loss,
    weight_reduce,
)

__all__ = [
    "xywha_to_gaussian",
    "kld_loss",
    "gwd_loss",
    "kfiou_loss",
    "focal_loss",
    "smooth_l1",
    "distribution_expectation",
    "distribution_focal_loss",
    "to_bin_units",
    "knowledge_distillation_kl_div",
    "KLDLoss",
    "GWDLoss",
    "KFIoULoss",
    "FocalLoss",
    "SmoothL1Loss",
    "DistributionFocalLoss",
    "KDLoss",
    "weight_reduce",
    "build_regression_loss",
    "REGRESSION_LOSSES",
    "PUBLISHED_LOSS_SETTINGS",
]
