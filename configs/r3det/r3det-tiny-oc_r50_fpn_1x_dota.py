"""R3Det-tiny, oc targets, ResNet-50 FPN, 1x, DOTA v1.0: R3Det with 2 stacked convs in both heads.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/r3det/r3det-tiny-oc_r50_fpn_1x_dota.py, which equals configs/r3det/r3det-oc_r50_fpn_1x_dota.py
  (reproduced next to this file; see its docstring for the 0.x/dev-1.x differences) except
  bbox_head_init.stacked_convs=2 and bbox_head_refine[0].stacked_convs=2.
Published: 70.18 mAP on DOTA v1.0 test, 15.6 fps (configs/r3det/README.md), trained with 0.x's
configs/r3det/r3det_tiny_r50_fpn_1x_dota_oc.py (checkpoint r3det_tiny_r50_fpn_1x_dota_oc-c98a616c.pth).
"""

from rdet.config import from_cwd, load_base

NAME = "r3det-tiny-oc_r50_fpn_1x_dota"

# '../r3det/' (not just the file name) so this file also loads as a base from configs/kld/*.
config = load_base("../r3det/r3det-oc_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/r3det/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

config.model.head.stacked_convs = 2  # bbox_head_init=dict(..., stacked_convs=2)
config.model.refine.stacked_convs = 2  # bbox_head_refine=[dict(..., stacked_convs=2)]
