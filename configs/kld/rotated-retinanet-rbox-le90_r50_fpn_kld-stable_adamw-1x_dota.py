"""Rotated RetinaNet rbox-le90, ResNet-50 FPN, KLD-stable loss (GDLoss), AdamW, 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota.py, whose _base_ is
  configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py (reproduced next to this file).
Published: 71.30 mAP on DOTA v1.0 test (configs/kld/README.md).
"""

from rdet.config import from_cwd, load_base

NAME = "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota"

config = load_base("../kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/kld/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

# optim_wrapper=dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999),
# weight_decay=0.05)). Only the optimizer is replaced: clip_grad (max_norm 35), the 500-iteration linear
# warm-up from 1/3 and the step decay at epochs 8 and 11 of schedule_1x.py still apply. No paramwise_cfg in
# dev-1.x: weight decay applies to every parameter (0.x's custom_keys matched no ResNet/FPN parameter name).
t = config.train
t.optimizer = "adamw"
t.lr = 0.0001
t.betas = (0.9, 0.999)
t.weight_decay = 0.05
