"""Quickstart teacher for localization distillation: R-34 Rotated RetinaNet with a distribution head, synthetic data.

The quickstart detector (``rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py``: 64-channel FPN/head,
256 px, KLD-stable) with a ResNet-34 and the general-distribution regression head of Rotated-LD
(``reg_max=8``, bins over (-2, 2) for x, y, w, h and (-5, 2) for the angle, as Zzh-tju/Rotated-LD
``configs/kld/rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py``, scaled down). Train it first:

    rdet train configs/quickstart/ld_r34_teacher_synthetic.py
    rdet distill configs/quickstart/ld_r18_r34_synthetic.py
"""

from rdet.config import from_cwd, load_base

NAME = "ld_r34_teacher_synthetic"

config = load_base("rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py")
config.name = NAME
config.reference = (
    "https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/kld/"
    "rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py (scaled down)"
)
config.model.backbone.depth = 34
config.model.head.reg_max = 8
config.model.head.reg_range = (-2.0, 2.0)  # Rotated-LD Integral: linspace(-2, 2, reg_max + 1)
config.model.head.angle_range = (-5.0, 2.0)  # Rotated-LD Integral_angle: linspace(-5, 2, reg_max + 1)
config.train.work_dir = from_cwd(f"work_dirs/quickstart_{NAME}")
