"""LD + KD student: R-18 <- R-34 teacher, Rotated RetinaNet with distribution head and GWD, 1x, DOTA v1.0.

Reproduces Zzh-tju/Rotated-LD (MMRotate 0.x), branch main:
  configs/ld/rotated_retinanet_distribution_hbb_gwd_r18_r34_fpn_1x_dota_oc.py, teacher
  configs/gwd/rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc.py (here: next to this file).
Published (Rotated-LD README, DOTA-1.0, "GWD, LD + KD"): R-18 alone 63.1 AP50 (37.1 AP),
R-18 <- R-34 66.4 AP50 (40.2 AP). Compare on AP50 (see the KLD student's note on their AP).
"""

from rdet.config import DistillConfig, from_cwd, load_base

NAME = "rotated_retinanet_distribution_hbb_gwd_r18_r34_fpn_1x_dota_oc"
TEACHER = "rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc"
RESNET18_IMAGENET = from_cwd("checkpoints/resnet18-f37072fd.pth")

config = load_base(f"../ld/{TEACHER}.py")
config.name = NAME
config.reference = f"https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/ld/{NAME}.py"
config.model.backbone.depth = 18  # depth=18, init_cfg torchvision://resnet18
config.model.backbone.weights = RESNET18_IMAGENET
t = config.train
t.epochs, t.milestones, t.eval_interval = 12, (8, 11), 1  # the 0.x base schedule_1x
t.work_dir = from_cwd(f"work_dirs/{NAME}")
config.distill = DistillConfig(
    teacher=f"{TEACHER}.py",  # teacher_config (relative to this file)
    teacher_weights=from_cwd(f"work_dirs/{TEACHER}/epoch_24.pt"),  # teacher_ckpt='r34-gwd-2x.pth'
    ld_weight=10.0,  # loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=10, T=5)
    kd_weight=20.0,  # loss_kd=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=20, T=5)
    temperature=5.0,
    vlr_alpha=0.25,  # get_ld_region: 0.25 * (mean + std)
    vlr_horizontal=True,  # the paper's axis-aligned IoU
    cache_dir="",
)
