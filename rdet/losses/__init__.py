"""Losses of rdet: Gaussian box losses (KLD, KLD-stable, GWD, KFIoU), focal / smooth-L1, distribution
focal loss and the temperature-scaled KL of localization distillation.

Pure functions return per-element values; :mod:`rdet.losses.regression` is THE table of box-regression
losses (weighting, normalisation, which settings each reads) that the heads and the config validation use.
What ``stable`` means is documented in :mod:`rdet.losses.gaussian`.
"""

from rdet.losses.distill import knowledge_distillation_kl_div
from rdet.losses.distribution import distribution_expectation, distribution_focal_loss, to_bin_units
from rdet.losses.focal import focal_loss, smooth_l1
from rdet.losses.gaussian import gwd_loss, kfiou_loss, kld_loss, xywha_to_gaussian
from rdet.losses.regression import REGRESSION_LOSSES, RegressionLoss, regression_loss

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
    "REGRESSION_LOSSES",
    "RegressionLoss",
    "regression_loss",
]
