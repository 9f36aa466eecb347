"""Rotated RetinaNet, horizontal-IoU assignment ("hbox"), oc, ResNet-50 FPN, random rotation, 6x, HRSC2016.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc.py, with _base_ files
  configs/_base_/datasets/hrsc.py, configs/_base_/schedules/schedule_6x.py, configs/_base_/default_runtime.py.
That file differs from rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py in exactly two lines (angle_version='oc'
and iou_calculator=dict(type='FakeRBboxOverlaps2D')), so this file starts from the le90 one.
Published: 45.09 mAP (AP50:95), 79.30 AP50, 46.90 AP75 on HRSC2016 test (configs/rotated_retinanet/README.md).
"""

from rdet.config import from_cwd, load_base

NAME = "rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc"

config = load_base("../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/rotated_retinanet/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# angle_version = 'oc' (anchor generator and coder). The dev-1.x file keeps edge_swap=True and proj_xy=True
# with 'oc' (unlike the DOTA hbox-oc config); 0.x's rotated_retinanet_hbb_r50_fpn_6x_hrsc_rr_oc.py, which
# trained the published checkpoint, had edge_swap=False, proj_xy=False. We follow dev-1.x.
c = config.model.coder
c.angle_version = "oc"
c.norm_factor = None
c.edge_swap = True
c.proj_xy = True

# assigner iou_calculator=dict(type='FakeRBboxOverlaps2D'): horizontal IoU of the enclosing boxes.
config.model.head.assign_iou = "horizontal"
