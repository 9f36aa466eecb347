"""Quickstart localization distillation: R-18 student <- R-34 teacher (``ld_r34_teacher_synthetic.py``), synthetic data.

Same small architecture and schedule as the quickstart detector, with the distribution head of the
teacher (``reg_max=8``, same bins) and Rotated-LD's LD + KD settings (Zzh-tju/Rotated-LD
``configs/ld/rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc.py``: loss_ld and loss_kd weight 15,
T=5; valuable localization region at 0.25 * (mean + std) of the candidates' IoU), but with the rotated IoU
for the region (rdet's default; ``distill.vlr_horizontal=True`` reproduces the paper's axis-aligned IoU).

    rdet train configs/quickstart/ld_r34_teacher_synthetic.py       # the teacher, once
    rdet distill configs/quickstart/ld_r18_r34_synthetic.py
"""

from rdet.config import DistillConfig, from_cwd, load_base

NAME = "ld_r18_r34_synthetic"

config = load_base("rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py")
config.name = NAME
config.reference = (
    "https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/ld/"
    "rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc.py (scaled down)"
)
config.model.head.reg_max = 8
config.model.head.reg_range = (-2.0, 2.0)
config.model.head.angle_range = (-5.0, 2.0)
config.train.work_dir = from_cwd(f"work_dirs/quickstart_{NAME}")
config.distill = DistillConfig(
    teacher="ld_r34_teacher_synthetic.py",  # relative to this file
    teacher_weights=from_cwd("work_dirs/quickstart_ld_r34_teacher_synthetic/last.pt"),
    ld_weight=15.0,
    kd_weight=15.0,
    temperature=5.0,
    vlr_alpha=0.25,  # get_ld_region: 0.25 * (mean + std)
    vlr_horizontal=False,
    cache_dir="",
)
