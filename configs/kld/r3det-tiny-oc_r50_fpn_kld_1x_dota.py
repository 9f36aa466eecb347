"""R3Det-tiny oc, ResNet-50 FPN, KLD loss (GDLoss_v1) in both stages, 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/kld/r3det-tiny-oc_r50_fpn_kld_1x_dota.py. Its _base_ is configs/r3det/r3det-oc_r50_fpn_1x_dota.py,
  *not* the tiny baseline: the init head keeps stacked_convs=4 and only the refine head has stacked_convs=2
  (the same in 0.x's configs/kld/r3det_tiny_kld_r50_fpn_1x_dota_oc.py, which trained the published model).
Published: 72.76 mAP on DOTA v1.0 test, 14.0 fps (configs/kld/README.md; checkpoint
r3det_tiny_kld_r50_fpn_1x_dota_oc-589e142a.pth).
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "r3det-tiny-oc_r50_fpn_kld_1x_dota"

config = load_base("../r3det/r3det-oc_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/kld/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# bbox_head_init=dict(reg_decoded_bbox=True, loss_bbox=dict(_delete_=True, type='GDLoss_v1', loss_type='kld',
#                     fun='log1p', tau=1.0, loss_weight=1.0)); stacked_convs=4 from the base.
config.model.head.stacked_convs = 4
config.model.head.reg_decoded_bbox = True
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
config.model.head.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
# bbox_head_refine=[dict(type='R3RefineHead', stacked_convs=2, ..., reg_decoded_bbox=True,
#                        loss_bbox=dict(type='GDLoss_v1', loss_type='kld', fun='log1p', tau=1.0, loss_weight=1.0))]
config.model.refine.stacked_convs = 2
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
config.model.refine.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
