"""Rotated RetinaNet, horizontal-IoU assignment ("hbox"), oc targets, ResNet-50 FPN, 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py, whose _base_ is
  configs/rotated_retinanet/rotated-retinanet-rbox-oc_r50_fpn_1x_dota.py, whose _base_ is
  configs/rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py (reproduced next to this file).
Published: 64.55 mAP on DOTA v1.0 test (configs/rotated_retinanet/README.md, configs/kld/README.md).
"""

from rdet.config import from_cwd, load_base

NAME = "rotated-retinanet-hbox-oc_r50_fpn_1x_dota"

# '../rotated_retinanet/' (not just the file name) so this file also loads as a base of configs/kld/*.
config = load_base("../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/rotated_retinanet/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# rotated-retinanet-rbox-oc_r50_fpn_1x_dota.py: angle_version = 'oc';
# bbox_coder=dict(angle_version='oc', norm_factor=None, edge_swap=False, proj_xy=False)
c = config.model.coder
c.angle_version = "oc"
c.norm_factor = None
c.edge_swap = False
c.proj_xy = False

# rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py: assigner iou_calculator=dict(type='FakeRBboxOverlaps2D'),
# i.e. IoU of the horizontal boxes enclosing anchors and ground truths.
config.model.head.assign_iou = "horizontal"

# Its train_pipeline replaces the flips of _base_/datasets/dota.py with mmdet.RandomFlip(prob=0.5), whose
# direction defaults to 'horizontal': horizontal flips only, with probability 0.5.
config.data.flip = (0.5, 0.0, 0.0)
