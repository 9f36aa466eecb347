"""Rotated RetinaNet hbox-oc, ResNet-50 FPN, KLD loss (GDLoss_v1), 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/kld/rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota.py, whose _base_ is
  configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py
  (reproduced in this repository under the same path).
Published: 69.94 mAP on DOTA v1.0 test (configs/kld/README.md).
The train flips are the base's horizontal-only RandomFlip(prob=0.5), as in dev-1.x; 0.x's
rotated_retinanet_hbb_kld_r50_fpn_1x_dota_oc.py, which trained the published checkpoint, flipped
horizontally, vertically and diagonally with 0.25 each.
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota"

config = load_base("../rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/kld/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# bbox_head=dict(reg_decoded_bbox=True, loss_bbox=dict(_delete_=True, type='GDLoss_v1', loss_type='kld',
#                fun='log1p', tau=1, loss_weight=1.0)); GDLoss_v1 (the KLD paper's form) takes no sqrt argument.
config.model.head.reg_decoded_bbox = True
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
config.model.head.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
