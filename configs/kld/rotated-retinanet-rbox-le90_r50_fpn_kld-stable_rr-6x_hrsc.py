"""Rotated RetinaNet rbox-le90, ResNet-50 FPN, KLD-stable loss (GDLoss), random rotation, 6x, HRSC2016.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc.py, whose _base_ is
  configs/rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py
  (reproduced in this repository under the same path).
Published: 54.15 mAP (AP50:95), 86.20 AP50, 60.60 AP75 on HRSC2016 test (configs/kld/README.md).
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc"

config = load_base("../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/kld/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# bbox_head=dict(reg_decoded_bbox=True, loss_bbox=dict(_delete_=True, type='GDLoss', loss_type='kld',
#                fun='log1p', tau=1, sqrt=False, loss_weight=1.0))   <- 1.0 here, 5.5 in the other kld-stable configs
config.model.head.reg_decoded_bbox = True
config.model.head.loss_bbox = LossConfig(
    type="kld", stable=True, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0
)
