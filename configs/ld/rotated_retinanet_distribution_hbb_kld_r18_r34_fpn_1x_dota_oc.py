"""LD + KD student: R-18 <- R-34 teacher, Rotated RetinaNet with distribution head and KLD, 1x, DOTA v1.0.

Reproduces Zzh-tju/Rotated-LD (MMRotate 0.x), branch main:
  configs/ld/rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc.py
  (KnowledgeDistillationRotatedSingleStageDetector + LDRotatedRetinaHead), teacher
  configs/kld/rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py (here: next to this file).
Published (Rotated-LD README, DOTA-1.0, "Rotated-RetinaNet, LD + KD"): R-18 alone 58.0 AP50 (33.7 AP),
R-18 <- R-34 63.8 AP50 (39.1 AP). The README calls the row "Rotated-RetinaNet"; the config it ships for it,
reproduced here, trains with KLD (GDLoss_v1). Compare on AP50: its AP(0.50:0.95) comes from an evaluation
that accumulates a running mean across thresholds.
The student architecture, loss and data are the teacher's; only the backbone (R-18) and schedule (1x) change.
"""

from rdet.config import DistillConfig, from_cwd, load_base

NAME = "rotated_retinanet_distribution_hbb_kld_r18_r34_fpn_1x_dota_oc"
TEACHER = "rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc"
RESNET18_IMAGENET = from_cwd("checkpoints/resnet18-f37072fd.pth")

config = load_base(f"../ld/{TEACHER}.py")
config.name = NAME
config.reference = f"https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/ld/{NAME}.py"
# backbone=dict(type='ResNet', depth=18, frozen_stages=1, norm_eval=True,
#               init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'))
config.model.backbone.depth = 18
config.model.backbone.weights = RESNET18_IMAGENET
# the 0.x base schedule_1x: 12 epochs, steps at 8 and 11, evaluation every epoch
t = config.train
t.epochs, t.milestones, t.eval_interval = 12, (8, 11), 1
t.work_dir = from_cwd(f"work_dirs/{NAME}")
config.distill = DistillConfig(
    teacher=f"{TEACHER}.py",  # teacher_config (relative to this file)
    # teacher_ckpt='r34-kld-2x.pth': the teacher trained first, in ./work_dirs of the current folder
    teacher_weights=from_cwd(f"work_dirs/{TEACHER}/epoch_24.pt"),
    ld_weight=15.0,  # loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=15, T=5)
    kd_weight=15.0,  # loss_kd=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=15, T=5)
    temperature=5.0,
    vlr_alpha=0.25,  # get_ld_region: IoU >= 0.25 * (mean + std) of the 9-per-level candidates
    vlr_horizontal=True,  # get_ld_region: axis-aligned IoU, angles dropped (False: rotated IoU)
    cache_dir="",  # online teacher, as the reference
)
# Not reproduced: loss_im=dict(type='IMLoss', loss_weight=0) (weight 0: no effect); the reference distils only
# inside its region, rdet also distils the positives outside it (weighted by their assignment IoU).
