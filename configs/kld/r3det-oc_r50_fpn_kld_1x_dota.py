"""R3Det oc, ResNet-50 FPN, KLD loss (GDLoss_v1) in both stages, 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/kld/r3det-oc_r50_fpn_kld_1x_dota.py, whose _base_ is configs/r3det/r3det-oc_r50_fpn_1x_dota.py
  (reproduced in this repository under the same path).
Published: 71.83 mAP on DOTA v1.0 test, 12.4 fps (configs/kld/README.md; that row names the kld-stable config but
links the checkpoint r3det_kld_r50_fpn_1x_dota_oc-31866226.pth trained by 0.x's
configs/kld/r3det_kld_r50_fpn_1x_dota_oc.py, which is this setting).
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "r3det-oc_r50_fpn_kld_1x_dota"

config = load_base("../r3det/r3det-oc_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/kld/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# bbox_head_init=dict(reg_decoded_bbox=True, loss_bbox=dict(_delete_=True, type='GDLoss_v1', loss_type='kld',
#                     fun='log1p', tau=1.0, loss_weight=1.0)); GDLoss_v1 takes no sqrt argument.
config.model.head.reg_decoded_bbox = True
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
config.model.head.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
# bbox_head_refine=[dict(type='R3RefineHead', stacked_convs=4, ..., reg_decoded_bbox=True,
#                        loss_bbox=dict(type='GDLoss_v1', loss_type='kld', fun='log1p', tau=1.0, loss_weight=1.0))];
# the rest of the refine head (FRM, coder, focal loss) as the base. rdet regresses decoded boxes in a refine
# stage exactly when its loss is Gaussian, which is reg_decoded_bbox=True here.
config.model.refine.stacked_convs = 4
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
config.model.refine.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
